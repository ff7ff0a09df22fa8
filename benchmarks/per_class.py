r"""Per-class test accuracy of the models of a finished ``framekd run``.

Usage::

    FRAMEKD_DATA=../shared/data PYTHONPATH=src .venv/bin/python benchmarks/per_class.py RUN_DIR \\
        --models spectral,gcn,glnn,fmlp-o [--seeds 0,1,2] [--prior] [--out FILE.md]

Each model of each seed is loaded with :meth:`framekd.Predictor.from_run` (the run's
``config.yaml`` and safetensors) and predicts the run's graph. The scored nodes are the test
nodes of the seed's split (``split.safetensors``, else :func:`framekd.splits.make_split` with
the run's protocol and the seed); in an inductive run, the unseen test nodes, whose knowledge
rows come from the full graph as in the run, so that their accuracy is the run's ``ind``
(printed beside it as a check). The table gives, per class, the number of scored nodes and
each model's recall (mean over the seeds), then accuracy and balanced accuracy (the mean
recall over the classes, :func:`sklearn.metrics.balanced_accuracy_score`). It shows where two
models' accuracies part when the test set is skewed and the validation set is not (the fgkd
protocol caps train and validation per class; the test set is the rest). Nothing is trained.

``--prior`` adds what a tuning objective could read without test labels: each model's
validation recall per class, its validation accuracy, and the validation accuracy reweighted
to :math:`\hat\pi`, the teacher's arg-max class shares on the nodes outside train and
validation (and, inductive, outside the unseen nodes):
:math:`\sum_c \hat\pi_c\,\mathrm{recall}_c(\text{val})` (:func:`framekd.metrics.class_prior`,
:func:`framekd.metrics.prior_weighted_accuracy`, what ``framekd tune --prior teacher``
maximises). In an inductive run the validation
nodes are predicted from the full graph, not from the observed graph the run used, so these
are close to, not exactly, the run's validation scores.
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
from framekd.io import load_tensors, read_json
from framekd.metrics import class_prior, prior_weighted_accuracy
from framekd.splits import make_split
from framekd.trained import finished_seeds


def _seeds(run: Path, given: str | None) -> list[int]:
    if given:
        return [int(s) for s in given.split(",")]
    return finished_seeds(run)


def _split(run: Path, data, cfg: dict, seed: int) -> dict[str, torch.Tensor]:
    """The seed's train / val / test (and, inductive, unseen) node ids."""
    saved = run / f"seed_{seed}" / "split.safetensors"
    if saved.exists():
        return load_tensors(saved)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FramekdWarning)  # capped classes: said by the run
        split = make_split(data, cfg["protocol"], seed)
    return {"train": split.train, "val": split.val, "test": split.test}


def _prior(run: Path, seed: int, split: dict[str, torch.Tensor]) -> torch.Tensor:
    r""":math:`\hat\pi`: the teacher's arg-max class shares outside train and validation.

    An inductive run's unseen nodes are left out too: the teacher never saw them, and its
    saved rows there are its answer for a node without features or edges (one class for all).
    """
    logp = load_tensors(run / f"seed_{seed}" / "teacher_logp.safetensors")["log_probs"]
    return class_prior(logp, [split[p] for p in ("train", "val", "unseen") if p in split])


def _recall(y: torch.Tensor, pred: torch.Tensor, classes: int) -> torch.Tensor:
    r = recall_score(y, pred, labels=list(range(classes)), average=None, zero_division=0)
    return torch.as_tensor(r, dtype=torch.float)


class _Tally:
    """Means over the seeds of one node set's per-class recall, accuracy, balanced accuracy."""

    def __init__(self, models: list[str], classes: int, seeds: int) -> None:
        self.k, self.classes = seeds, classes
        self.counts = torch.zeros(classes)
        self.recall = {m: torch.zeros(classes) for m in models}
        self.acc = dict.fromkeys(models, 0.0)
        self.bal = dict.fromkeys(models, 0.0)
        self.weighted = dict.fromkeys(models, 0.0)

    def nodes(self, y: torch.Tensor) -> None:
        self.counts += torch.bincount(y, minlength=self.classes) / self.k

    def add(self, m: str, y: torch.Tensor, pred: torch.Tensor, prior: torch.Tensor | None) -> None:
        r = _recall(y, pred, self.classes)
        self.recall[m] += r / self.k
        self.acc[m] += (pred == y).float().mean().item() / self.k
        self.bal[m] += balanced_accuracy_score(y, pred) / self.k
        if prior is not None:
            logits = torch.nn.functional.one_hot(pred, self.classes).float()
            self.weighted[m] += prior_weighted_accuracy(logits, y, None, prior) / self.k


def _row(label: str, values, blanks: int = 1) -> str:
    return f"| {label} |" + " |" * blanks + " " + " | ".join(f"{v:.2f}" for v in values) + " |"


def per_class(run: Path, models: list[str], seeds: list[int], prior: bool = False) -> str:
    """The markdown table(s) (see the module docstring)."""
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    inductive = cfg.get("setting", "transductive") == "inductive"
    data = load_dataset(cfg["dataset"])
    classes = int(data.y.max()) + 1
    test, val = _Tally(models, classes, len(seeds)), _Tally(models, classes, len(seeds))
    pi = torch.zeros(classes)
    for seed in seeds:
        split = _split(run, data, cfg, seed)
        scored = split["unseen"] if inductive else split["test"]
        shares = _prior(run, seed, split) if prior else None
        test.nodes(data.y[scored])
        val.nodes(data.y[split["val"]])
        if shares is not None:
            pi += shares / len(seeds)
        for m in models:
            rows = "full" if inductive else "auto"
            pred = Predictor.from_run(run, model=m, seed=seed, rows=rows).predict(data).pred
            test.add(m, data.y[scored], pred[scored], None)
            if prior:
                val.add(m, data.y[split["val"]], pred[split["val"]], shares)
    nodes = "unseen test nodes" if inductive else "test nodes"
    lines = [f"| class | {nodes} | " + " | ".join(models) + " |",
             "|" + "---:|" * (len(models) + 2)]
    lines += [f"| {c} | {test.counts[c]:.0f} | "
              + " | ".join(f"{100 * test.recall[m][c]:.2f}" for m in models) + " |"
              for c in range(classes)]
    lines.append(_row("accuracy", [100 * test.acc[m] for m in models]))
    lines.append(_row("balanced accuracy", [100 * test.bal[m] for m in models]))
    if inductive:
        metrics = read_json(run / "metrics.json")
        at = [metrics["seeds"].index(s) for s in seeds]
        lines.append(_row("the run's `ind`", [
            100 * sum(metrics["models"][m]["ind_accuracy"][i] for i in at) / len(at)
            for m in models]))
    out = (f"{run} ({cfg['dataset']}, {cfg['protocol']}, "
           f"{cfg.get('setting', 'transductive')}), seeds {seeds}\n\n" + "\n".join(lines))
    return out + ("\n\n" + _prior_table(val, pi, models) if prior else "")


def _prior_table(val: _Tally, pi: torch.Tensor, models: list[str]) -> str:
    lines = ["| class | validation nodes | teacher's share outside train, val, unseen (%) | "
             + " | ".join(f"{m} val recall" for m in models) + " |",
             "|" + "---:|" * (len(models) + 3)]
    lines += [f"| {c} | {val.counts[c]:.0f} | {100 * pi[c]:.1f} | "
              + " | ".join(f"{100 * val.recall[m][c]:.2f}" for m in models) + " |"
              for c in range(len(pi))]
    lines.append(_row("validation accuracy", [100 * val.acc[m] for m in models], 2))
    lines.append(_row("validation, prior-weighted", [100 * val.weighted[m] for m in models], 2))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--models", required=True, help="comma-separated model names of the run")
    ap.add_argument("--seeds", help="comma-separated seeds (default: every finished seed)")
    ap.add_argument("--prior", action="store_true",
                    help="also validation recall and the prior-weighted validation accuracy")
    ap.add_argument("--out", type=Path, help="also write the table here")
    args = ap.parse_args()
    table = per_class(args.run, args.models.split(","), _seeds(args.run, args.seeds), args.prior)
    print(table)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
