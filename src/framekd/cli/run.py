"""``framekd run``: one whole experiment (teacher per seed, every student, a table)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    from framekd.config import KNOWLEDGE_MODES, PROTOCOLS, TEACHERS
    from framekd.inductive import SETTINGS

    p = sub.add_parser(
        "run",
        help="train a teacher and distil students on one dataset over several seeds",
        description="Train the teacher per seed, save its soft labels, distil every student, "
        "print accuracy mean ± std, training and inference time. Settings: the shipped "
        "preset of the dataset < --config FILE < flags < --set key=value.",
    )
    p.add_argument("--dataset", required=True,
                   help="dataset name (see `framekd datasets`), csbm:... spec or graph folder")
    p.add_argument("--teacher", choices=tuple(TEACHERS))
    p.add_argument("--students", help="comma-separated: mlp,fmlp-s,fmlp-o,fmlp-c")
    p.add_argument("--protocol", choices=PROTOCOLS)
    p.add_argument("--seeds", type=int, help="number of seeds / splits (default 10)")
    p.add_argument("--setting", choices=SETTINGS,
                   help="transductive (default: every node and edge seen in training) or "
                   "inductive (GLNN's production setting: 20%% of the test nodes and their "
                   "edges unseen until test time; reports prod, tran and ind accuracy)")
    p.add_argument("--metric", metavar="{accuracy,balanced_accuracy,roc_auc}",
                   help="what early stopping and the table score (default accuracy; roc_auc: "
                   "binary by P(class 1), multi-class one-vs-rest macro); same as --set "
                   "metric=...")
    p.add_argument("--knowledge", choices=KNOWLEDGE_MODES,
                   help="graph knowledge handed to the students (default auto: features "
                   "when they take at most 1 GiB, else sketch)")
    p.add_argument("--rewire", choices=("none", "sdrf"), help="graph surgery before training")
    p.add_argument("--device", help="cpu (default) or cuda[:i]")
    p.add_argument("--config", type=Path, help="YAML file with settings")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one setting, e.g. --set teacher.hidden=32 (repeatable)")
    p.add_argument("--out", type=Path, help="results folder (default runs/<dataset>)")
    p.add_argument("--force", action="store_true", help="re-run seeds that already have results")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--nproc", type=int, metavar="P",
                   help="run on P processes of this machine (restarts itself under torchrun; "
                   "see README 'Scale out' for several machines)")
    p.set_defaults(handler=handle)


def flags_from_args(args: argparse.Namespace) -> dict:
    """The command-line flags that were given, as a nested configuration dict."""
    flags: dict = {}
    if args.teacher:
        flags["teacher"] = {"name": args.teacher}
    if args.students:
        names = [s.strip() for s in args.students.split(",") if s.strip()]
        flags["student"] = {"names": names}
    for key in ("protocol", "seeds", "device", "setting", "metric"):
        if getattr(args, key) is not None:
            flags[key] = getattr(args, key)
    if args.knowledge:
        flags["knowledge"] = {"mode": args.knowledge}
    if args.rewire:
        flags["rewire"] = {"method": None if args.rewire == "none" else args.rewire}
    return flags


def handle(args: argparse.Namespace) -> int:
    from framekd.config import resolve
    from framekd.experiment import results_table, run_experiment

    cfg = resolve(args.dataset, config_file=args.config, flags=flags_from_args(args),
                  overrides=args.set)
    out = args.out or Path("runs") / str(args.dataset).replace("/", "_").replace(":", "_")
    from framekd.cli import make_log, show_progress
    from framekd.distributed import handle_run

    code = handle_run(args, cfg, out)  # under torchrun, or --nproc: the distributed run
    if code is not None:
        return code
    metrics = run_experiment(cfg, out, force=args.force, progress=show_progress(args.quiet),
                             log=make_log(args.quiet))
    print(results_table(metrics))
    print(f"results written to {out}/ (metrics.json, results.md, config.yaml, seed_*/)")
    return 0
