"""A study's best trial against the configuration's own settings on folds the study never saw.

``framekd tune --folds 5`` selects on the validation nodes of splits 0..4. This scores the
best trial of a study and the configuration's own settings (the study's first, queued
trials) with the study's own objective (``framekd.tune.objective``: mean validation score;
in the inductive setting the students are distilled without the validation nodes) on every
split 0..FOLDS-1, so splits 5..9 read as validation data neither was chosen on. With
several default trials (``teacher.smooth: auto``: one per mode) the default of each fold is
the mode with the best validation score there, as a run's ``auto`` decides (with
``--draws``, the mode with the best mean over the split's draws). That is ``auto`` with
``teacher.smooth_se: 0``; with a larger ``smooth_se`` a run may keep a mode that scores
lower on validation (§8.24), never a higher one, so the default's score here bounds it from
above and the bar below never favours the chosen trial. Test labels are never read. A
study that tuned only student settings trains each fold's teacher once.

The last line is the shipping bar for a study's settings. For student settings it is the
strict bar: ahead of the defaults on the mean of the splits the study never saw **and
behind on none of them**; a mean alone can be two validation nodes on a small graph
(Cornell, BENCHMARKS.md §9.9). For a study of the teacher alone (no ``--students``) it is
the mean alone: the strict bar turned away five best teacher trials that all gained on test,
and never one that lost (§8.27). The line gives both readings and says which applies, and
the one-sided p-value of a paired t-test of the held-out gain, as a reading of the splits'
noise; it is reported, not part of either bar. Which reading a bar is applied to (plain
validation, ``--prior teacher``, or both for fgkd student settings) is §8.20's rule.

Usage (the settings of the study's own ``framekd tune`` command)::

    FRAMEKD_DATA=../shared/data OMP_NUM_THREADS=1 python benchmarks/heldout_folds.py \
        --study runs/tune/chameleon-preset-ind-fmlpc --dataset chameleon --protocol geom \
        --setting inductive --students fmlp-c --search student --folds 10 \
        --csv benchmarks/results/heldout/chameleon-ind-fmlpc.csv

The scores on splits 0..K-1 (K the study's ``--folds``) of the chosen trial and of the
default trials are read from the study's database, where it holds them (complete trials),
and only the other splits are trained; ``--rescore`` trains every split. ``--preset FILE
--seen K`` scores a preset a study wrote instead of one of the study's trials, for when the
study's database is gone (every split is trained). ``--jobs 2`` scores the settings (the
default's modes and the chosen trial) in two processes at once.

``--prior teacher`` scores every split with the prior-weighted objective
(``framekd tune --prior teacher``: validation accuracy weighted to the fold teacher's
predicted class shares); a study made with another objective then holds no usable score and
every split is trained. ``--heldout-only`` trains only the splits the study never saw
(K..FOLDS-1), all the bar reads. ``--baseline package`` scores the package defaults
instead of the configuration's own settings: the comparison a study made before its
settings shipped in the dataset's preset.
"""

from __future__ import annotations

import argparse
import copy
import csv
import dataclasses
import multiprocessing
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import optuna
import scipy.stats
import yaml

from _env import environment
from framekd.config import DEFAULTS
from framekd.tune import best_trial, default_trials, objective, preset_params, storage_url
from seed_halves import halves


def known_values(study: optuna.Study | None, params: dict, seen: int,
                 skip: bool = False) -> list[float | None]:
    """The scores of splits ``0..seen-1`` a complete trial of ``study`` with ``params``
    holds (none without a study or such a trial); ``skip``: ``None`` for each (not scored)."""
    if skip:
        return [None] * seen
    if study is None:
        return []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        if t.params == params:
            return list(t.user_attrs.get("fold_values") or [])[:seen]
    return []


def fold_values(obj, params: dict, known: list[float | None]) -> list[float | None]:
    """The objective's per-fold validation scores for fixed ``params``: ``known`` for the
    first folds (``None``: not scored), the others trained."""
    if len(known) >= obj.setup.folds:
        return known[:obj.setup.folds]
    obj.fold_ids = list(range(len(known), obj.setup.folds))
    trial = optuna.trial.FixedTrial(params)
    value = obj(trial)
    if value != value:  # nan: a failed trial
        raise SystemExit(f"the settings failed: {trial.user_attrs.get('fail_reason')}")
    if known and known[0] is not None:
        print(f"  splits 0..{len(known) - 1} read from the study, "
              f"{len(known)}..{obj.setup.folds - 1} trained")
    return [*known, *trial.user_attrs["fold_values"]]


_OBJECTIVE = None  # the objective the forked workers of --jobs inherit


def _scored(task: tuple[dict, list[float]]) -> list[float]:
    return fold_values(_OBJECTIVE, *task)


def score_all(obj, tasks: list[tuple[dict, list[float]]], jobs: int) -> list[list[float]]:
    """:func:`fold_values` of every ``(params, known)`` task, in ``jobs`` processes."""
    global _OBJECTIVE
    _OBJECTIVE = obj
    if jobs <= 1:
        return [_scored(t) for t in tasks]
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("fork")) as pool:
        return list(pool.map(_scored, tasks))


def chosen_settings(args: argparse.Namespace) -> tuple[optuna.Study | None, str, str, dict,
                                                        int]:
    """``(study, name, label, params, seen)``: the chosen trial of ``--study`` or
    ``--preset`` (no study)."""
    if args.preset is not None:
        settings = yaml.safe_load(args.preset.read_text())
        settings.pop("protocol", None)
        print(f"preset {args.preset} (the study saw splits 0..{args.seen - 1})")
        params = preset_params(settings, args.students.split(","))
        return None, args.preset.stem, "preset", params, args.seen
    storage = storage_url(args.study)
    names = optuna.get_all_study_names(storage)
    if len(names) != 1:
        raise SystemExit(f"{storage} holds {len(names)} studies; expected one")
    study = optuna.load_study(study_name=names[0], storage=storage)
    chosen = best_trial(study) if args.trial is None else study.trials[args.trial]
    print(f"study {names[0]}: trial {chosen.number} ({chosen.value:.4f} on its folds)")
    # The study's folds are the best trial's: a pruned --trial ran fewer.
    seen = len(best_trial(study).user_attrs.get("fold_values") or [])
    return study, names[0], f"trial {chosen.number}", dict(chosen.params), seen


#: Differences within this many points are level. Validation accuracies are float32 (about
#: seven digits), so two equal means of ``--draws`` scores can differ in their seventh digit;
#: one validation node of 5 draws on a 10^5-node validation set is still 2e-4 points.
LEVEL = 1e-4


def compare(default: list[float], tuned: list[float], seen: int) -> dict | None:
    """``tuned`` against ``default`` on the splits ``seen..`` (points): the per-split
    differences, their mean and spread, the ahead / level / behind counts, the strict bar
    (``passes``), the teacher bar (``passes_mean``: ahead on the mean) and, as a reading of
    how far the mean stands out of the splits' noise, the one-sided p-value of a paired
    t-test of ``mean > 0`` (``None`` with fewer than two splits or no spread)."""
    pairs = list(zip(default, tuned, strict=True))[seen:]
    if not pairs:
        return None
    diff = [100 * (t - d) for d, t in pairs]
    ahead = sum(x > LEVEL for x in diff)
    behind = sum(x < -LEVEL for x in diff)
    gain = statistics.fmean(diff)
    spread = statistics.stdev(diff) if len(diff) > 1 else 0.0
    p = (float(scipy.stats.ttest_1samp(diff, 0.0, alternative="greater").pvalue)
         if spread > 0 else None)
    return {"splits": f"{seen}..{len(default) - 1}", "diff": diff, "mean": gain, "sd": spread,
            "ahead": ahead, "level": len(diff) - ahead - behind, "behind": behind,
            "passes": gain > 0 and behind == 0, "passes_mean": gain > LEVEL, "p": p}


def p_text(p: float | None) -> str:
    """A p-value as the tables print it."""
    return "–" if p is None else "< 0.001" if p < 0.001 else f"{p:.3f}"


def passes(ok: bool) -> str:
    return "passes" if ok else "does not pass"


def verdict(default: list[float], tuned: list[float], seen: int, teacher_only: bool) -> str:
    """Ahead / level / behind counts of ``tuned`` on the splits ``seen..`` and both bars,
    the one that applies first: the teacher bar for a study of the teacher alone
    (``teacher_only``), the strict bar for one that searched student settings."""
    c = compare(default, tuned, seen)
    if c is None:
        return "no split beyond the study's folds: nothing held out"
    teacher = f"the teacher bar (ahead on the mean): {passes(c['passes_mean'])}"
    strict = f"the strict bar (ahead on the mean, behind on none): {passes(c['passes'])}"
    applies, other = (teacher, strict) if teacher_only else (strict, teacher)
    return (f"splits {c['splits']} (never seen by the study): ahead on {c['ahead']}, "
            f"level on {c['level']}, behind on {c['behind']}; mean {c['mean']:+.2f} "
            f"points (paired t, one-sided p: {p_text(c['p'])}). The bar that applies, "
            f"{applies}; for reference, {other}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--study", help="the study's folder or storage URL")
    where.add_argument("--preset", type=Path, help="a preset YAML written by framekd tune")
    ap.add_argument("--seen", type=int, default=5, help="with --preset: the study's --folds")
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--teacher", default=None)
    ap.add_argument("--students", default="")
    ap.add_argument("--protocol", default=None)
    ap.add_argument("--setting", default=None, choices=(None, "transductive", "inductive"))
    ap.add_argument("--search", default=None)
    ap.add_argument("--folds", type=int, default=10)
    ap.add_argument("--draws", type=int, default=1, help="the study's --draws: initial "
                    "draws per split, averaged")
    ap.add_argument("--epochs", type=int, default=None, help="the study's --epochs cap")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="the study's --set settings (repeatable)")
    ap.add_argument("--trial", type=int, default=None, help="this trial instead of the best")
    ap.add_argument("--csv", type=Path, default=None)
    ap.add_argument("--rescore", action="store_true",
                    help="train every split, also those the study's database holds")
    ap.add_argument("--jobs", type=int, default=1, help="processes (default 1)")
    ap.add_argument("--prior", choices=("none", "teacher"), default="none",
                    help="the objective's validation weighting (framekd tune --prior)")
    ap.add_argument("--baseline", choices=("config", "package"), default="config",
                    help="what the chosen settings are compared with: the configuration's "
                    "own settings (default) or the package defaults")
    ap.add_argument("--heldout-only", action="store_true",
                    help="train only the splits the study never saw")
    args = ap.parse_args(argv)

    study, name, label, params, seen = chosen_settings(args)
    if args.rescore or (study is not None and (
            study.user_attrs.get("framekd.prior", "none") != args.prior
            or study.user_attrs.get("framekd.draws", "1") != str(args.draws))):
        study = None  # its scores are of another objective
    overrides = [*args.set, *([f"setting={args.setting}"] if args.setting else [])]
    obj = objective(args.dataset, teacher=args.teacher, students=args.students,
                    protocol=args.protocol, folds=args.folds, search=args.search,
                    epochs=args.epochs, overrides=overrides, prior=args.prior,
                    draws=args.draws)
    print(environment())
    rows = []
    base = obj.setup if args.baseline == "config" else \
        dataclasses.replace(obj.setup, base=copy.deepcopy(DEFAULTS))
    candidates = [*default_trials(base), params]
    tasks = [(p, known_values(study, p, seen, args.heldout_only)) for p in candidates]
    *defaults, tuned = score_all(obj, tasks, args.jobs)
    default = [None if vals[0] is None else max(vals) for vals in zip(*defaults, strict=True)]
    for settings, values in (("default", default), (label, tuned)):
        scored = {i: v for i, v in enumerate(values) if v is not None}
        print(f"{settings}: {halves({i: 100 * v for i, v in scored.items()})}")
        print("  " + " ".join("–" if v is None else f"{100 * v:.2f}" for v in values))
        rows += [{"study": name, "settings": settings, "fold": i, "val": f"{v:.6f}"}
                 for i, v in scored.items()]
    print(verdict(default, tuned, seen, teacher_only=not args.students))
    if args.csv is not None:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.csv.with_suffix(".tmp")
        with tmp.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        tmp.replace(args.csv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
