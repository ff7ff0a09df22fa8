"""Teacher cost with the input features multiplied dense or sparse (:class:`SparseInput`).

Usage::

    FRAMEKD_DATA=../shared/data OMP_NUM_THREADS=1 .venv/bin/python \\
        benchmarks/bench_sparse_input.py --datasets cora,cs,physics --repeats 5

For each dataset and teacher (spatial framelet, GCN; untrained weights, framekd's
defaults), side by side in one process: the median time of a training step (forward,
cross-entropy on all nodes, backward) and of an eval forward pass, once with
``sparse_input=0`` (always dense) and once with the default threshold, plus the largest
difference between the two models' logits (same weights). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from _env import environment
from framekd.data import load_dataset
from framekd.models import build_teacher
from framekd.models.teachers import SPARSE_INPUT_DENSITY


def _median(fn, repeats: int) -> float:
    fn()  # warm-up: builds the graph operators and the sparse copy
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _measure(model, data, repeats: int) -> tuple[float, float, torch.Tensor]:
    def step():
        model.train()
        model.zero_grad()
        F.cross_entropy(model(data.x, data.edge_index), data.y).backward()

    @torch.no_grad()
    def infer():
        model.eval()
        return model(data.x, data.edge_index)

    return _median(step, repeats), _median(infer, repeats), infer()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="cora,cs,physics")
    parser.add_argument("--teachers", default="spatial,gcn")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    print(f"{environment()}; "
          f"median of {args.repeats} after 1 warm-up; threshold {SPARSE_INPUT_DENSITY}\n")
    print("| dataset | density | teacher | train step dense (s) | sparse (s) | speed-up "
          "| forward dense (s) | sparse (s) | speed-up | max logit diff |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in args.datasets.split(","):
        data = load_dataset(name)
        density = int(torch.count_nonzero(data.x)) / data.x.numel()
        classes = int(data.y.max()) + 1
        for teacher in args.teachers.split(","):
            torch.manual_seed(0)
            sparse = build_teacher(teacher, data.num_features, classes)
            dense = build_teacher(teacher, data.num_features, classes, sparse_input=0.0)
            dense.load_state_dict(sparse.state_dict())
            d_step, d_fwd, d_out = _measure(dense, data, args.repeats)
            s_step, s_fwd, s_out = _measure(sparse, data, args.repeats)
            diff = float((d_out - s_out).abs().max())
            print(f"| {name} | {density:.4f} | {teacher} | {d_step:.3f} | {s_step:.3f} | "
                  f"{d_step / s_step:.1f}x | {d_fwd:.3f} | {s_fwd:.3f} | {d_fwd / s_fwd:.1f}x | "
                  f"{diff:.1e} |", flush=True)


if __name__ == "__main__":
    main()
