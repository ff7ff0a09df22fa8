"""How ``teacher.smooth: auto`` should choose its mode, judged on validation nodes it never
used (BENCHMARKS §8.24).

The default teacher trains the spectral teacher once per ``smooth`` mode (``none``, ``low``,
``all``) and keeps one by validation. With 59 to 80 validation nodes (WebKB) the best
validation score is mostly noise: :func:`framekd.metrics.simplest_within` keeps instead the
least-smoothed mode whose score is within ``se`` paired standard errors of the best's (the
one-standard-error rule of model selection; ``se = 0`` is the best score).

Every label this script reads is a validation label: each split's validation nodes are cut
in two class-stratified halves (:func:`framekd.splits.stratified_subset`, seeded by the
run). Half A is the validation set of the run (early stopping and the choice of mode);
half B takes the place of the test set and scores the chosen mode. The real test nodes are
neither trained on nor scored. Draw ``k`` of split ``s`` seeds the weights, the dropout and
the halving with ``s + 1000 k`` (:func:`framekd.tune.draw_seed`).

The bar, fixed before the runs: ``smooth_se: 1`` becomes the package default if, on the
held-out halves B, its mean score is at least that of ``se = 0`` (the old rule) minus 0.10
points on every dataset measured, and above it on the unweighted mean over the datasets.
The other values of ``se`` in the table are shown, not chosen from.

§8.25 adds per-channel projections (``teacher.shared_weights: false``, variants
``"MODE own"``) and asks whether ``auto`` should choose among the six teachers (each mode,
shared or own projections) instead of the three. Its bar, fixed before its runs: the six
become the default if, on half B, their ``auto`` (best score on half A, the first of ties
in the order of :data:`WIDE`) is at least the three's minus 0.10 points on every one of
§8.24's nine datasets and above it on the unweighted mean; a dataset whose runs are not
complete by 08:05 UTC on 2026-12-05 counts as a failure.

Neither passed (BENCHMARKS §8.24, §8.25): the package default is unchanged.

Resumable: one CSV row per (dataset, split, draw, mode), appended when finished.

Usage (data from $FRAMEKD_DATA)::

    OMP_NUM_THREADS=1 python benchmarks/auto_rule.py --datasets "texas;wisconsin" --draws 5 \
        --csv benchmarks/results/auto_rule.csv
    python benchmarks/auto_rule.py --csv benchmarks/results/auto_rule.csv --table OUT.md
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time
from collections import Counter, defaultdict
from pathlib import Path

import torch
import torch.nn.functional as F

from _env import appended_csv, finished
from ablation_heterophily import DATASETS, package_defaults
from framekd.config import RunConfig, resolve
from framekd.data import load_dataset
from framekd.distill import train_teacher
from framekd.metrics import paired_standard_error, simplest_within
from framekd.models import teacher_from_config
from framekd.models.spectral import AUTO_SMOOTH
from framekd.splits import Split, make_split, stratified_subset
from framekd.tune import draw_seed

FIELDS = ["dataset", "protocol", "split", "draw", "mode", "a_score", "b_score", "a_pred", "a_y"]
#: The rule the bar judges, fixed before the runs (BENCHMARKS §8.24), and the others shown.
CANDIDATE, SHOWN = 1.0, (0.0, 0.5, 1.0, 2.0)
#: Per-channel projections (``teacher.shared_weights: false``) in a variant's name (§8.25).
OWN = "own"
#: §8.25's candidates, in the order ``auto`` would try them (the first of ties is kept).
WIDE = tuple(v for m in AUTO_SMOOTH for v in (m, f"{m} {OWN}"))


def halves(split: Split, y: torch.Tensor, seed: int) -> Split:
    """``split`` with validation half A as its validation set and half B as its test set."""
    a = stratified_subset(split.val, y, 0.5, seed)
    b = split.val[~torch.isin(split.val, a)]
    return Split(split.train, a, b, split.protocol, split.seed, [*split.notes, "val halves"])


def _sets(variant: str) -> list[str]:
    """``--set`` overrides of a variant: a ``smooth`` mode, ``own`` for per-channel
    projections (``teacher.shared_weights: false``)."""
    mode, *own = variant.split()
    if mode not in AUTO_SMOOTH or own not in ([], [OWN]):
        raise SystemExit(f"auto_rule.py: unknown variant {variant!r} (MODE or 'MODE {OWN}', "
                         f"MODE one of {', '.join(AUTO_SMOOTH)})")
    return [f"teacher.smooth={mode}", *(["teacher.shared_weights=false"] if own else [])]


def run(args: argparse.Namespace) -> None:
    path = Path(args.csv)
    done = finished(path, lambda r: (r["dataset"], int(r["split"]), int(r["draw"]),
                                     r["mode"]))
    with appended_csv(path, FIELDS) as write:
        for name in args.datasets.split(";"):
            protocol = DATASETS.get(name, "fgkd")
            data = load_dataset(name)
            d, c = data.x.size(1), int(data.num_classes)
            for draw in range(args.draws):
                for s in range(args.seeds):
                    seed = draw_seed(s, draw)
                    split = halves(make_split(data, protocol, s), data.y, seed)
                    for mode in args.variants.split(";"):
                        if (name, s, draw, mode) in done:
                            continue
                        rc = RunConfig.from_dict(resolve(name, overrides=[
                            f"protocol={protocol}", *package_defaults(), *_sets(mode)]))
                        t = rc.teacher
                        torch.manual_seed(seed)
                        model = teacher_from_config(t.name, rc, d, c)
                        start = time.perf_counter()
                        res = train_teacher(model, data, split, lr=t.lr,
                                            weight_decay=t.weight_decay, epochs=t.epochs,
                                            patience=t.patience, seed=seed)
                        pred = res.log_probs[split.val].argmax(-1)
                        write({"dataset": name, "protocol": protocol, "split": s,
                               "draw": draw, "mode": mode, "a_score": f"{res.val_acc:.6f}",
                               "b_score": f"{res.test_acc:.6f}",
                               "a_pred": " ".join(map(str, pred.tolist())),
                               "a_y": " ".join(map(str, data.y[split.val].tolist()))})
                        print(f"{name} split {s} draw {draw} {mode}: A {res.val_acc:.4f} "
                              f"B {res.test_acc:.4f} ({time.perf_counter() - start:.1f} s)",
                              flush=True)


def _runs(path: Path) -> dict[str, dict[tuple[int, int], dict[str, dict]]]:
    runs: dict[str, dict[tuple[int, int], dict[str, dict]]] = defaultdict(dict)
    with path.open() as f:
        for r in csv.DictReader(f):
            runs[r["dataset"]].setdefault((int(r["split"]), int(r["draw"])), {})[r["mode"]] = r
    return runs


def _ints(text: str) -> torch.Tensor:
    return torch.tensor([int(v) for v in text.split()])


def _half_a(modes: dict[str, dict], names: tuple[str, ...] = AUTO_SMOOTH
            ) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The logits on half A of the variants ``names`` and the labels (the stored arg-max
    classes stand in for the logits: accuracy reads nothing else)."""
    y = _ints(modes[names[0]]["a_y"])
    preds = [_ints(modes[m]["a_pred"]) for m in names]
    classes = 1 + max(int(t.max()) for t in (y, *preds))
    return [F.one_hot(p, classes).float() for p in preds], y


def choose(modes: dict[str, dict], se: float, names: tuple[str, ...] = AUTO_SMOOTH) -> str:
    """The variant ``auto`` keeps among ``names`` with ``smooth_se = se``, read from half A."""
    return names[simplest_within(*_half_a(modes, names), se=se)]


def gap_errors(modes: dict[str, dict]) -> list[float]:
    """The paired standard errors (points) the rule weighs on half A: of the best mode's
    score minus each less smoothed mode's."""
    logits, y = _half_a(modes)
    best = simplest_within(logits, y, se=0.0)
    return [100 * paired_standard_error(logits[best], logits[j], y) for j in range(best)]


def table(path: Path) -> str:
    lines = ["| dataset | runs | half A nodes | SE of the gaps on A, median (range) | rule | "
             "held-out half B | − se 0 | kept: none/low/all |",
             "|---|---:|---:|---|---|---:|---:|---|"]
    gaps = []
    for name, runs in _runs(path).items():
        runs = {key: m for key, m in runs.items() if all(v in m for v in AUTO_SMOOTH)}
        base = None
        errs = [e for m in runs.values() for e in gap_errors(m)]
        err = f"{statistics.median(errs):.2f} ({min(errs):.2f}–{max(errs):.2f})" if errs else "–"
        size = len(next(iter(runs.values()))[AUTO_SMOOTH[0]]["a_y"].split())
        for se in SHOWN:
            picks = {key: choose(m, se) for key, m in runs.items()}
            score = 100 * statistics.fmean(float(runs[key][p]["b_score"])
                                           for key, p in picks.items())
            base = score if se == 0.0 else base
            if se == CANDIDATE:
                gaps.append(score - base)
            kept = Counter(picks.values())
            lines.append(f"| {name} | {len(runs)} | {size} | {err} | se {se:g} | {score:.2f} | "
                         f"{score - base:+.2f} | "
                         f"{'/'.join(str(kept[m]) for m in AUTO_SMOOTH)} |")
    if gaps:
        lines.append(f"\nse {CANDIDATE:g} − se 0, unweighted mean over the datasets: "
                     f"{statistics.fmean(gaps):+.3f} points; worst dataset {min(gaps):+.3f}")
    return "\n".join(lines) + "\n"


def wide_table(path: Path) -> str:
    """§8.25: ``auto`` over the six variants of :data:`WIDE` against ``auto`` over the three
    modes (both the best score on half A), scored on half B, with each variant's mean."""
    lines = ["| dataset | runs | auto over 3 | auto over 6 | difference | kept with own "
             "projections | " + " | ".join(WIDE) + " |",
             "|---|---:|---:|---:|---:|---:|" + "---:|" * len(WIDE)]
    gaps = []
    for name, runs in _runs(path).items():
        runs = {key: m for key, m in runs.items() if all(v in m for v in WIDE)}
        if not runs:
            continue
        b = {v: 100 * statistics.fmean(float(m[v]["b_score"]) for m in runs.values())
             for v in WIDE}
        three, six = ([choose(m, 0.0, names) for m in runs.values()]
                      for names in (AUTO_SMOOTH, WIDE))
        s3, s6 = (100 * statistics.fmean(float(m[p]["b_score"])
                                         for m, p in zip(runs.values(), picks, strict=True))
                  for picks in (three, six))
        gaps.append(s6 - s3)
        own = sum(p.endswith(OWN) for p in six)
        lines.append(f"| {name} | {len(runs)} | {s3:.2f} | {s6:.2f} | {s6 - s3:+.2f} | "
                     f"{own} | " + " | ".join(f"{b[v]:.2f}" for v in WIDE) + " |")
    if gaps:
        lines.append(f"\nauto over 6 − auto over 3, unweighted mean over the datasets: "
                     f"{statistics.fmean(gaps):+.3f} points; worst dataset {min(gaps):+.3f}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", default="texas;wisconsin;cornell")
    p.add_argument("--seeds", type=int, default=10, help="splits 0..SEEDS-1")
    p.add_argument("--draws", type=int, default=1)
    p.add_argument("--variants", default=";".join(AUTO_SMOOTH),
                   help="';'-separated teachers: a smooth mode, or 'MODE own' for "
                   "per-channel projections (default: the three modes)")
    p.add_argument("--csv", required=True)
    p.add_argument("--table", nargs="?", const="-", default=None,
                   help="write the table (to OUT.md, or print it with no value); no training")
    args = p.parse_args(argv)
    if args.table is not None:
        text = table(Path(args.csv)) + "\n" + wide_table(Path(args.csv))
        if args.table == "-":
            print(text, end="")
        else:
            Path(args.table).write_text(text)
        return
    run(args)


if __name__ == "__main__":
    main()
