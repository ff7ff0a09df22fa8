"""Mean scores over two halves of the seeds: the splits a tuning study selected on and the
splits it never saw (BENCHMARKS.md §8.3, §9.7).

A ``framekd tune`` study with ``--folds 5`` chooses on the validation nodes of splits 0..4;
splits 5..9 are data it never read. This prints, for each source, the mean over seeds 0..4,
over 5..9 and over all of them (%):

* ``--metrics FILE [...]``: a run's ``metrics.json`` (``ind`` accuracy of every model for an
  inductive run, test accuracy for a transductive one);
* ``--students-csv CSV --run NAME --variant V``: the rows of
  ``benchmarks/inductive_students.py`` (``ind`` where present, else ``tran``);
* ``--ablation CSV --dataset D --variant V``: teacher rows of
  ``benchmarks/ablation_heterophily.py`` (validation and test); ``--variant auto`` takes, per
  split, the ``spectral smooth=…`` row with the best validation accuracy, as
  ``teacher.smooth: auto`` does;
* ``--study DB``: a study's trial counts and wall time (first trial start to last end).

``--per-seed`` also prints each score list of ``--metrics`` and ``--ablation`` by seed.

Usage::

    python benchmarks/seed_halves.py --per-seed \
        --metrics benchmarks/results/tuned_students/chameleon-inductive.json
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
from pathlib import Path

HALVES = {"0..4": range(0, 5), "5..9": range(5, 10)}


def halves(by_seed: dict[int, float]) -> str:
    """``all (0..4 / 5..9)`` means of ``by_seed`` (%)."""
    def mean(seeds) -> str:
        vals = [by_seed[s] for s in seeds if s in by_seed]
        return f"{statistics.fmean(vals):.2f}" if vals else "–"

    parts = " / ".join(f"{name} {mean(seeds)}" for name, seeds in HALVES.items())
    return f"{mean(sorted(by_seed))} over {len(by_seed)} seeds ({parts})"


def listed(by_seed: dict[int, float]) -> str:
    return "    " + " ".join(f"{by_seed[s]:.2f}" for s in sorted(by_seed))


def from_metrics(path: Path, per_seed: bool) -> list[str]:
    m = json.loads(path.read_text())
    key = "ind_accuracy" if m.get("setting") == "inductive" else "accuracy"
    lines = [f"{path} ({key}):"]
    for name, row in m["models"].items():
        by_seed = {s: 100.0 * v for s, v in zip(m["seeds"], row[key], strict=True)}
        lines.append(f"  {name}: {halves(by_seed)}")
        if per_seed:
            lines.append(listed(by_seed))
    return lines


def from_students_csv(path: Path, run: str, variant: str) -> list[str]:
    rows = [r for r in csv.DictReader(path.open())
            if r["run"] == run and r["variant"] == variant]
    groups: dict[str, dict[int, float]] = {}
    for r in rows:
        groups.setdefault(r["student"], {})[int(r["seed"])] = float(r["ind"] or r["tran"])
    return [f"{path} {run} [{variant}]:"] + [f"  {s}: {halves(v)}"
                                             for s, v in sorted(groups.items())]


def from_ablation(path: Path, dataset: str, variant: str, per_seed: bool) -> list[str]:
    rows = [r for r in csv.DictReader(path.open()) if r["dataset"] == dataset]
    if variant == "auto":
        rows = [r for r in rows if r["variant"].startswith("spectral smooth=")]
    else:
        rows = [r for r in rows if r["variant"] == variant]
    best: dict[int, dict] = {}
    for r in rows:
        seed = int(r["seed"])
        if seed not in best or float(r["val"]) > float(best[seed]["val"]):
            best[seed] = r
    lines = [f"{path} {dataset} [{variant}]:"]
    for col in ("val", "test"):
        by_seed = {s: 100.0 * float(r[col]) for s, r in best.items()}
        lines.append(f"  {col}: " + halves(by_seed))
        if per_seed:
            lines.append(listed(by_seed))
    return lines


def from_study(path: Path) -> list[str]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    url = f"sqlite:///{path}"
    lines = []
    for summary in optuna.get_all_study_summaries(url):
        trials = optuna.load_study(study_name=summary.study_name, storage=url).trials
        states: dict[str, int] = {}
        for t in trials:
            states[t.state.name.lower()] = states.get(t.state.name.lower(), 0) + 1
        ends = [t.datetime_complete for t in trials if t.datetime_complete]
        wall = (max(ends) - min(t.datetime_start for t in trials)).total_seconds() / 60
        first: dict[str, int] = {}
        same = [(first.setdefault(repr(sorted(t.params.items())), t.number), t.number)
                for t in trials]
        same = [pair for pair in same if pair[0] != pair[1]]
        lines.append(f"{path} {summary.study_name}: {len(trials)} trials {states}, "
                     f"{wall:.0f} min from the first start to the last end; trials with "
                     f"another's settings: {same or 'none'}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--metrics", nargs="*", type=Path, default=[])
    ap.add_argument("--per-seed", action="store_true")
    ap.add_argument("--students-csv", type=Path)
    ap.add_argument("--run")
    ap.add_argument("--ablation", type=Path)
    ap.add_argument("--dataset")
    ap.add_argument("--variant", default="base")
    ap.add_argument("--study", nargs="*", type=Path, default=[])
    args = ap.parse_args()
    lines: list[str] = []
    for path in args.metrics:
        lines += from_metrics(path, args.per_seed)
    if args.students_csv:
        if not args.run:
            ap.error("--students-csv needs --run")
        lines += from_students_csv(args.students_csv, args.run, args.variant)
    if args.ablation:
        if not args.dataset:
            ap.error("--ablation needs --dataset")
        lines += from_ablation(args.ablation, args.dataset, args.variant, args.per_seed)
    for path in args.study:
        lines += from_study(path)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
