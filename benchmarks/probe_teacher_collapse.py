"""Why the spatial teacher sometimes collapses on Amazon Photo (BENCHMARKS.md §6).

Usage::

    FRAMEKD_DATA=../shared/data OMP_NUM_THREADS=1 .venv/bin/python \\
        benchmarks/probe_teacher_collapse.py --seeds 0,1,2,6 --lrs 0.01,0.005 --epochs 60

Trains the spatial teacher (framekd's defaults, fgkd split of each seed) for a few epochs
and reports the largest training loss seen, the last one, validation/test accuracy and the
fraction of *dead* output units: entries (channel, class) of the last layer whose
pre-activation :math:`\\hat A_c W_c H \\Theta_c` is ≤ 0 at every node, so that the ReLU
inside the layer passes neither signal nor gradient through them.
"""

from __future__ import annotations

import argparse
import warnings

import torch

from framekd.data import load_dataset
from framekd.distill import train_teacher
from framekd.models import build_teacher
from framekd.splits import make_split


@torch.no_grad()
def dead_output_units(model, data) -> float:
    model.eval()
    operator = model.operator(data.x, data.edge_index)
    h = data.x
    for conv in model.convs[:-1]:
        h = conv(h, operator)
    z = model.convs[-1].channel_outputs(h, operator)  # [C, N, classes], after the ReLU
    return float((z <= 0).all(dim=1).float().mean())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="photo")
    parser.add_argument("--seeds", default="0,1,2,6")
    parser.add_argument("--lrs", default="0.01,0.005")
    parser.add_argument("--epochs", type=int, default=60)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    data = load_dataset(args.dataset)
    classes = int(data.y.max()) + 1
    print(f"{args.dataset}: mean feature row sum {float(data.x.sum(1).mean()):.1f}, "
          f"{args.epochs} epochs\n")
    print("| lr | seed | max train loss | last | val acc | test acc | dead output units |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for lr in (float(v) for v in args.lrs.split(",")):
        for seed in (int(v) for v in args.seeds.split(",")):
            split = make_split(data, "fgkd", seed)
            torch.manual_seed(seed)
            model = build_teacher("spatial", data.num_features, classes, dropout=0.5)
            res = train_teacher(model, data, split, lr=lr, epochs=args.epochs,
                                patience=args.epochs, seed=seed)
            losses = [loss for loss, _ in res.history]
            print(f"| {lr} | {seed} | {max(losses):.2f} | {losses[-1]:.2f} | "
                  f"{res.val_acc:.3f} | {res.test_acc:.3f} | "
                  f"{dead_output_units(model, data):.2f} |", flush=True)


if __name__ == "__main__":
    main()
