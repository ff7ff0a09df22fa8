"""Simplified framelet teacher: matrix-free (framekd) against a precomputed features tensor.

Usage::

    FRAMEKD_DATA=../shared/data OMP_NUM_THREADS=1 .venv/bin/python \\
        benchmarks/bench_simplified.py --datasets cora,cs --repeats 5

The model is linear, :math:`Y = \\sum_c K_c^\\ell X \\Theta_c + b`. framekd's
:class:`~framekd.models.SimplifiedFramelet` evaluates it right to left (:math:`X\\Theta_c`
first, then :math:`K_c^\\ell` on the narrow product). The reference here evaluates it left
to right, SGC-style: it precomputes the ``features`` knowledge :math:`K_c^\\ell X`
(``[C, N, d]`` dense) once with :func:`framekd.knowledge.graph_knowledge` and then applies
dropout and the channel weights to it every step. Side by side in one process, same
weights: the setup (first call, including the precompute), the median training step
(forward, cross-entropy on all nodes, backward) and eval forward, the memory of the
precomputed tensor, and the largest difference between the two models' eval logits.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from _env import environment
from framekd.data import load_dataset
from framekd.errors import MemoryBudgetError
from framekd.knowledge import graph_knowledge
from framekd.models import SimplifiedFramelet


class Precomputed(torch.nn.Module):
    """The left-to-right reference: ``dropout(K_c^l X) Theta_c`` summed over channels."""

    def __init__(self, model: SimplifiedFramelet, data) -> None:
        super().__init__()
        self.weight, self.bias, self.p = model.weight, model.bias, model.dropout
        self.features = graph_knowledge(
            data.edge_index, data.num_nodes, data.x, transform=model.transform,
            powers=model.num_layers, mode="features",
        )[:, -1].contiguous()

    def forward(self) -> torch.Tensor:
        h = F.dropout(self.features, p=self.p, training=self.training)
        return torch.einsum("cnd,cde->ne", h, self.weight) + self.bias


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _measure(forward, model, y, repeats: int) -> tuple[float, float, torch.Tensor]:
    def step():
        model.train()
        model.zero_grad()
        F.cross_entropy(forward(), y).backward()

    @torch.no_grad()
    def infer():
        model.eval()
        return forward()

    steps = statistics.median(_timed(step) for _ in range(repeats))
    evals = statistics.median(_timed(infer) for _ in range(repeats))
    return steps, evals, infer()


def _row(name: str, args: argparse.Namespace) -> str:
    data = load_dataset(name)
    classes = int(data.y.max()) + 1
    torch.manual_seed(0)
    model = SimplifiedFramelet(data.num_features, classes, num_layers=args.layers,
                               dropout=args.dropout)
    setup_ours = _timed(lambda: model(data.x, data.edge_index))
    ours = _measure(lambda: model(data.x, data.edge_index), model, data.y, args.repeats)
    start = time.perf_counter()
    try:
        ref = Precomputed(model, data)
    except MemoryBudgetError as err:
        return (f"| {name} | {data.num_nodes} | {data.num_features} | not run: {err} | "
                f"{setup_ours:.2f} | – | {ours[0]:.3f} | – | – | {ours[1]:.3f} | – | – |")
    setup_ref = time.perf_counter() - start
    theirs = _measure(ref, ref, data.y, args.repeats)
    gib = ref.features.numel() * ref.features.element_size() / 2**30
    diff = float((ours[2] - theirs[2]).abs().max())
    return (f"| {name} | {data.num_nodes} | {data.num_features} | {setup_ref:.2f} | "
            f"{setup_ours:.2f} | {theirs[0]:.3f} | {ours[0]:.3f} | "
            f"{theirs[0] / ours[0]:.1f}x | {theirs[1]:.3f} | {ours[1]:.3f} | {gib:.2f} | "
            f"{diff:.1e} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="cora,cs")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--dropout", type=float, default=0.5)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    print(f"{environment()}; "
          f"power {args.layers}, dropout {args.dropout}, median of {args.repeats}\n")
    print("| dataset | N | d | setup precomputed (s) | setup framekd (s) | step precomputed (s) "
          "| step framekd (s) | speed-up | eval precomputed (s) | eval framekd (s) "
          "| features tensor (GiB) | max logit diff |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in args.datasets.split(","):
        print(_row(name, args), flush=True)


if __name__ == "__main__":
    main()
