"""Student mini-batches of mostly-zero features: dense gather per batch against CSR rows.

Usage::

    FRAMEKD_DATA=../shared/data OMP_NUM_THREADS=1 .venv/bin/python \\
        benchmarks/bench_student_batches.py --datasets cs,physics --repeats 3

One distillation epoch's worth of mini-batches (all nodes, shuffled, ``--batch-size``,
forward + backward, no optimiser step) for the MLP student, fed two ways, side by side in
one process with the same weights:

* ``gather``: ``student(x[batch])``: the batch's dense rows are gathered and the model
  converts them to CSR (how framekd's trainer fed students before ``input_rows``);
* ``rows``: ``student(student.input_rows(x, batch))``: CSR rows cut from one sparse copy of
  all features (what :func:`framekd.distill.distill_student` does now).

Prints the median epoch time of each and the largest logit difference.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from _env import environment
from framekd.data import load_dataset
from framekd.models import build_student


def _epoch(student, x, y, batches, feed) -> tuple[float, torch.Tensor]:
    start = time.perf_counter()
    last = None
    for batch in batches:
        student.zero_grad()
        out = student(feed(batch)).logits
        F.cross_entropy(out, y[batch]).backward()
        last = out.detach()
    return time.perf_counter() - start, last


def _row(name: str, args: argparse.Namespace) -> str:
    data = load_dataset(name)
    x, y = data.x, data.y
    torch.manual_seed(0)
    # One model per feed: a model caches the sparse copy of one tensor only.
    models = {k: build_student("mlp", x.size(1), int(y.max()) + 1, hidden_channels=64)
              for k in ("gather", "rows")}
    models["rows"].load_state_dict(models["gather"].state_dict())
    batches = torch.randperm(x.size(0)).split(args.batch_size)
    feeds = {"gather": lambda b: x[b], "rows": lambda b: models["rows"].input_rows(x, b)}
    times: dict[str, list[float]] = {k: [] for k in feeds}
    last = {}
    for _ in range(args.repeats + 1):  # the first round is a warm-up
        for key, feed in feeds.items():
            seconds, last[key] = _epoch(models[key], x, y, batches, feed)
            times[key].append(seconds)
    gather, rows = (statistics.median(times[k][1:]) for k in ("gather", "rows"))
    diff = float((last["gather"] - last["rows"]).abs().max())
    return (f"| {name} | {x.size(0)} | {x.size(1)} | {len(batches)} | {gather:.2f} | "
            f"{rows:.2f} | {gather / rows:.1f}x | {diff:.1e} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="cs,physics")
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"{environment()}; "
          f"MLP student, batch {args.batch_size}, median of {args.repeats} epochs after 1\n")
    print("| dataset | N | d | batches | epoch, gather (s) | epoch, rows (s) | speed-up "
          "| max logit diff |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in args.datasets.split(","):
        print(_row(name, args), flush=True)


if __name__ == "__main__":
    main()
