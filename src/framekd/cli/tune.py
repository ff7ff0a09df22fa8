"""``framekd tune``: hyper-parameter search on Optuna, written out as a ``run`` preset."""

from __future__ import annotations

import argparse
import contextlib
import shlex
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

EPILOG = """\
objective: mean validation score (--metric, default accuracy) over --folds splits (fold i:
split seed i); with --students, the mean over the listed students distilled from the
trial's teacher (teacher and student settings searched jointly; `mlp` is the MLP distilled
with the trial's lambda).
With --prior teacher each fold's validation accuracy is weighted to the class shares its
teacher predicts on the nodes outside train and validation: sum_c share_c * recall_c(val).
With --draws K each fold is the mean of K trainings on its split from other initial weights.
Test labels are never read. Failed settings (rejected values, a diverging loss, out of
memory) are recorded as failed trials, with the reason printed. A new study first runs the
configuration's own settings (one trial per mode for teacher.smooth=auto), so the preset is
never below them on validation.

study: --study DIR keeps the study in the SQLite file DIR/study.db and writes the preset to
DIR/best.yaml; any Optuna storage URL (containing ://) is accepted too. Re-running the same
command continues the study (--trials more trials); several processes may share one study
(give each its own --seed).

exit status: 0 done; 1 no trial of the study has completed (no preset written); 2 bad
option; 130 interrupted (Ctrl-C), 143 terminated (SIGTERM, e.g. a batch system's time
limit): finished trials are kept, the trial in progress is recorded as failed, the best so
far is printed and its preset written. A trial whose process was killed outright is failed
by the next process that opens the study (after 10 minutes without its heartbeat) and
queued again with the same settings, once, so resuming after a crash reruns it.
"""


def register(sub: argparse._SubParsersAction) -> None:
    from framekd.config import PROTOCOLS

    p = sub.add_parser(
        "tune",
        help="search teacher / student / SDRF settings with Optuna; write a run preset",
        description="Search the settings of a teacher (and of students distilled from it)\n"
        "with Optuna (seeded TPE sampler, median pruning after each fold). Settings given\n"
        "with --config / --set are fixed for every trial and not searched. Prints one line\n"
        "per trial and the best trial, and writes a YAML preset that `framekd run --config`\n"
        "accepts, headed by the study's provenance. Search spaces: framekd.tune.space.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--dataset", required=True,
                   help="dataset name (see `framekd datasets`), csbm:... spec or graph folder")
    p.add_argument("--teacher", help="teacher to tune (default: the configuration's teacher.name)")
    p.add_argument("--students",
                   help="comma-separated students (mlp,fmlp-s,fmlp-o) to tune jointly with the "
                   "teacher; default: tune the teacher alone")
    p.add_argument("--trials", type=int, required=True, metavar="N",
                   help="number of NEW trials this process runs (a resumed study keeps its "
                   "earlier trials)")
    p.add_argument("--timeout", type=float, metavar="S",
                   help="start no new trial after S seconds (the one running finishes)")
    p.add_argument("--trial-timeout", type=float, metavar="S",
                   help="stop a trial once it has run S seconds (at its next training "
                   "epoch) and record it as pruned, so that a slow draw cannot spend the "
                   "study's time; it favours settings that train fast (default: no limit)")
    p.add_argument("--study", metavar="DIR_OR_URL",
                   help="study folder (SQLite DIR/study.db) or Optuna storage URL (default: "
                   "runs/tune/<study name>)")
    p.add_argument("--study-name", metavar="NAME",
                   help="default: framekd-<dataset>-<teacher>[-<students>]")
    p.add_argument("--protocol", choices=PROTOCOLS,
                   help="split protocol (default: the configuration's, fgkd)")
    p.add_argument("--folds", type=int, default=3, metavar="K",
                   help="splits per trial, seeds 0..k-1 (default 3)")
    p.add_argument("--draws", type=int, default=1, metavar="K",
                   help="initial draws per fold (default 1): each fold is trained K times on "
                   "its split, weights and dropout seeded fold + 1000 k, and scores their "
                   "mean; for small graphs, where the draw moves validation as much as the "
                   "settings do")
    p.add_argument("--seed", type=int, default=0, metavar="N",
                   help="sampler seed (default 0); give each process that shares a study "
                   "its own")
    p.add_argument("--epochs", type=int, metavar="E",
                   help="cap on teacher and student epochs while tuning (default: the "
                   "configuration's; not written to the preset)")
    p.add_argument("--rewire", choices=("none", "sdrf"),
                   help="sdrf: rewire the graph with SDRF and search iterations, tau, C+")
    p.add_argument("--device", help="cpu (default) or cuda[:i]")
    p.add_argument("--config", type=Path, metavar="FILE", help="YAML file of fixed settings")
    p.add_argument("--metric", metavar="{accuracy,balanced_accuracy,roc_auc}",
                   help="the validation score maximised and early-stopped on (default "
                   "accuracy); same as --set metric=...")
    p.add_argument("--setting", choices=("transductive", "inductive"),
                   help="transductive (default) or inductive: every fold trains on the "
                   "observed graph of `framekd run --setting inductive` (unseen test nodes "
                   "and their edges removed), the students distilled without the validation nodes "
                   "so that these are scored as unseen nodes are; same as --set setting=...")
    p.add_argument("--search", metavar="GROUPS_OR_KEYS",
                   help="search only these settings, comma-separated groups (teacher, "
                   "framelet, knowledge, student, sdrf) or keys (student.feature_dropout); "
                   "the others keep their configured values. With student settings only, "
                   "each fold's teacher is trained once and shared by the trials")
    p.add_argument("--prior", choices=("none", "teacher"),
                   help="teacher: weight each fold's validation accuracy to the class shares "
                   "its teacher predicts on the nodes outside train and validation (for "
                   "protocols such as fgkd whose validation set is class-balanced and whose "
                   "test set is not); no label is read. Default none")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="fix one setting for every trial, e.g. --set teacher.hidden=32 "
                   "(repeatable)")
    p.add_argument("--out", type=Path, metavar="FILE",
                   help="preset file (default DIR/best.yaml for a folder study, else "
                   "./<study name>.yaml)")
    p.add_argument("--quiet", action="store_true", help="no line per trial")
    p.set_defaults(handler=handle)


def command_line(args: argparse.Namespace) -> str:
    """The command, rebuilt from the parsed options (for the preset's provenance)."""
    parts = ["framekd", "tune", "--dataset", str(args.dataset)]
    for opt in ("teacher", "students", "trials", "timeout", "trial_timeout", "study",
                "study_name", "protocol", "folds", "draws", "seed", "epochs", "rewire",
                "device", "config", "metric", "setting", "search", "prior", "out"):
        value = getattr(args, opt)
        if value is not None and not (opt == "draws" and value == 1):
            parts += [f"--{opt.replace('_', '-')}", str(value)]
    for item in args.set:
        parts += ["--set", item]
    if args.quiet:
        parts.append("--quiet")
    return shlex.join(parts)


def handle(args: argparse.Namespace) -> int:
    import optuna

    from framekd.errors import ConfigError
    from framekd.io import write_text
    from framekd.tune import (
        Objective,
        best_text,
        best_trial,
        default_study_name,
        enqueue_defaults,
        make_setup,
        open_study,
        preset_text,
        run,
        storage_url,
    )
    from framekd.tune.study import is_url, printer, safe_filename

    if args.trials < 1:
        raise ConfigError(f"--trials must be >= 1, got {args.trials}")
    if args.folds < 1:
        raise ConfigError(f"--folds must be >= 1, got {args.folds}")
    if args.draws < 1:
        raise ConfigError(f"--draws must be >= 1, got {args.draws}")
    if args.timeout is not None and not args.timeout > 0:
        raise ConfigError(f"--timeout must be a positive number of seconds, got {args.timeout}")
    if args.trial_timeout is not None and not args.trial_timeout > 0:
        raise ConfigError("--trial-timeout must be a positive number of seconds, got "
                          f"{args.trial_timeout}")
    if args.seed < 0:
        raise ConfigError(f"--seed must be >= 0, got {args.seed}")
    if args.epochs is not None and args.epochs < 1:
        raise ConfigError(f"--epochs must be >= 1, got {args.epochs}")
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # framekd prints its own lines
    log = (lambda msg: None) if args.quiet else (lambda msg: print(msg, flush=True))

    setup = make_setup(args.dataset, teacher=args.teacher, students=args.students,
                       protocol=args.protocol, folds=args.folds, epochs=args.epochs,
                       rewire=args.rewire, device=args.device, config_file=args.config,
                       search=args.search, prior=args.prior or "none", draws=args.draws,
                       overrides=[*([f"metric={args.metric}"] if args.metric else []),
                                  *([f"setting={args.setting}"] if args.setting else []),
                                  *args.set])
    name = args.study_name or default_study_name(setup)
    study_arg = args.study or str(Path("runs") / "tune" / safe_filename(name))
    objective = Objective(setup, trial_timeout=args.trial_timeout)
    study = open_study(setup, study_arg, study_name=name, seed=args.seed)
    defaults = enqueue_defaults(study, setup)
    where = storage_url(study_arg)
    if args.out is not None:
        out = args.out
    elif is_url(study_arg):
        out = Path(f"{safe_filename(name)}.yaml")
    else:
        out = Path(study_arg) / "best.yaml"
    before = len(study.get_trials(deepcopy=False))
    log(f"framekd tune: study {name!r} in {where} ({before} trial(s) so far); "
        f"{args.trials} new trial(s); searching {len(setup.space)} setting(s)")
    log(f"objective: {setup.description}")
    if defaults:
        log(f"the first {defaults} trial(s) run the configuration's own settings")

    stopped = None
    try:
        with _sigterm_as_interrupt():
            run(study, objective, trials=args.trials, timeout=args.timeout,
                callbacks=[printer(log)])
    except _Terminated:
        stopped = 143
        print("framekd tune: terminated; the finished trials are kept", file=sys.stderr)
    except KeyboardInterrupt:
        stopped = 130
        print("framekd tune: interrupted; the finished trials are kept", file=sys.stderr)

    print(best_text(study, setup))
    if best_trial(study) is None:
        print("framekd tune: no trial has completed; no preset written", file=sys.stderr)
        return stopped or 1
    write_text(out, preset_text(study, setup, command=command_line(args), where=where))
    print(f"preset written to {out} (use: framekd run --dataset {args.dataset} "
          f"--config {out})")
    return stopped or 0


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be, so that the study stops the same way."""


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    def handler(signum: int, frame: object) -> None:
        raise _Terminated

    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)
