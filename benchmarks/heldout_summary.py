"""The held-out readings of many studies side by side, from ``heldout_folds.py``'s CSVs.

Each CSV holds one study's chosen settings and its baseline, split by split (validation
score). This prints one row per CSV: the splits the study never saw (``--seen``: the
study's ``--folds``), the mean difference in points, its spread, the ahead / level / behind
counts, the one-sided p-value of a paired t-test of a gain, the strict bar (student
settings) and the teacher bar, ahead on the mean (``heldout_folds.compare``). It reads no
label and trains nothing (BENCHMARKS.md §8.20, §8.27).

Usage::

    python benchmarks/heldout_summary.py benchmarks/results/heldout/*.csv \\
        benchmarks/results/heldout/prior/*.csv
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from heldout_folds import compare, p_text


def read(path: Path, seen: int) -> tuple[list[float], list[float], str]:
    """``(default, chosen, label)``: the two settings' scores on the splits ``seen..`` both
    hold."""
    scores: dict[str, dict[int, float]] = {}
    for row in csv.DictReader(path.open()):
        scores.setdefault(row["settings"], {})[int(row["fold"])] = float(row["val"])
    if "default" not in scores or len(scores) != 2:
        raise SystemExit(f"{path}: expected the rows of 'default' and of one chosen setting, "
                         f"found {sorted(scores)}")
    label = next(k for k in scores if k != "default")
    folds = sorted(i for i in set(scores["default"]) & set(scores[label]) if i >= seen)
    return [scores["default"][i] for i in folds], [scores[label][i] for i in folds], label


def row(path: Path, seen: int) -> str:
    default, chosen, label = read(path, seen)
    c = compare(default, chosen, 0)
    if c is None:
        return f"| {path} | {label} | – | nothing held out | | | | | |"
    return (f"| {path} | {label} | {len(c['diff'])} | {c['mean']:+.2f} | {c['sd']:.2f} | "
            f"{c['ahead']} / {c['level']} / {c['behind']} | {p_text(c['p'])} | "
            f"{'passes' if c['passes'] else 'fails'} | "
            f"{'passes' if c['passes_mean'] else 'fails'} |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv", nargs="+", type=Path)
    ap.add_argument("--seen", type=int, default=5, help="the studies' --folds (default 5)")
    args = ap.parse_args(argv)
    print("| held-out CSV | chosen | splits | mean (points) | sd | ahead / level / behind "
          "| paired t, one-sided p | strict bar | teacher bar |")
    print("|---|---|---:|---:|---:|---|---:|---|---|")
    for path in args.csv:
        print(row(path, args.seen))
    return 0


if __name__ == "__main__":
    sys.exit(main())
