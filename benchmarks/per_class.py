"""Per-class test accuracy of the models of a finished transductive ``framekd run``.

Usage::

    FRAMEKD_DATA=../shared/data PYTHONPATH=src .venv/bin/python benchmarks/per_class.py RUN_DIR \\
        --models spectral,gcn,glnn,fmlp-o [--seeds 0,1,2] [--out FILE.md]

Each model of each seed is loaded with :meth:`framekd.Predictor.from_run` (the run's
``config.yaml`` and safetensors) and predicts the run's graph; the test nodes are the ones of
the run's split (:func:`framekd.splits.make_split` with the run's protocol and the seed). The
table gives, per class, the number of test nodes and each model's recall (mean over the
seeds), then accuracy and balanced accuracy (the mean recall over the classes,
:func:`sklearn.metrics.balanced_accuracy_score`). It shows where two models' accuracies part
when the test set is skewed and the validation set is not (the fgkd protocol caps train and
validation per class; the test set is the rest). Nothing is trained here.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import torch
import yaml
from sklearn.metrics import balanced_accuracy_score, recall_score

from framekd import Predictor
from framekd.data import load_dataset
from framekd.errors import FramekdWarning
from framekd.splits import make_split
from framekd.trained import finished_seeds


def _seeds(run: Path, given: str | None) -> list[int]:
    if given:
        return [int(s) for s in given.split(",")]
    return finished_seeds(run)


def per_class(run: Path, models: list[str], seeds: list[int]) -> str:
    """The markdown table (see the module docstring)."""
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    if cfg.get("setting", "transductive") != "transductive":
        raise SystemExit(f"{run}: an inductive run; this table reads transductive runs only")
    data = load_dataset(cfg["dataset"])
    num_classes = int(data.y.max()) + 1
    recall = {m: torch.zeros(num_classes) for m in models}
    acc = {m: 0.0 for m in models}
    bal = {m: 0.0 for m in models}
    counts = torch.zeros(num_classes)
    for seed in seeds:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FramekdWarning)  # capped classes: said by the run
            test = make_split(data, cfg["protocol"], seed).test
        y = data.y[test]
        counts += torch.bincount(y, minlength=num_classes) / len(seeds)
        for m in models:
            pred = Predictor.from_run(run, model=m, seed=seed).predict(data).pred[test]
            r = recall_score(y, pred, labels=list(range(num_classes)), average=None,
                             zero_division=0)
            recall[m] += torch.as_tensor(r, dtype=torch.float) / len(seeds)
            acc[m] += (pred == y).float().mean().item() / len(seeds)
            bal[m] += balanced_accuracy_score(y, pred) / len(seeds)
    head = "| class | test nodes | " + " | ".join(models) + " |"
    rows = [head, "|" + "---:|" * (len(models) + 2)]
    for c in range(num_classes):
        cells = " | ".join(f"{100 * recall[m][c].item():.2f}" for m in models)
        rows.append(f"| {c} | {counts[c].item():.0f} | {cells} |")
    rows.append("| accuracy | | " + " | ".join(f"{100 * acc[m]:.2f}" for m in models) + " |")
    rows.append("| balanced accuracy | | "
                + " | ".join(f"{100 * bal[m]:.2f}" for m in models) + " |")
    return f"{run} ({cfg['dataset']}, {cfg['protocol']}), seeds {seeds}\n\n" + "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--models", required=True, help="comma-separated model names of the run")
    ap.add_argument("--seeds", help="comma-separated seeds (default: every finished seed)")
    ap.add_argument("--out", type=Path, help="also write the table here")
    args = ap.parse_args()
    table = per_class(args.run, args.models.split(","), _seeds(args.run, args.seeds))
    print(table)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
