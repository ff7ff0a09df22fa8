"""Approximate knowledge rows (``tol > 0``): error, field size, time and accuracy of a trained
student, against the exact rows.

Usage::

    FRAMEKD_DATA=../shared/data OMP_NUM_THREADS=1 .venv/bin/python \\
        benchmarks/bench_approx_rows.py --run RUN_DIR --model fmlp-o \\
        --tols 0.1,0.03,0.01,3e-3,1e-3 [--nodes unseen|test] [--batch 10] [--limit L] \
        [--out FILE.md]

``RUN_DIR`` is a finished ``framekd run`` (an inductive run's ``unseen`` nodes are the natural
query: nodes the student never saw). The run's graph is prepared as ``framekd predict`` does;
the exact rows of the chosen nodes come from the whole graph's knowledge
(:meth:`framekd.Predictor.knowledge` with ``rows="full"``). Then, per tolerance, the nodes
are queried in batches of ``--batch`` (as a deployment answers them) through
:meth:`Predictor.knowledge` with ``rows_tol``: per batch the relative Frobenius error of the
rows against the exact ones, the significant field's size and the seconds; over all nodes
the student's accuracy on the approximate rows and the share of predictions that differ from
the exact rows' predictions. ``--limit L`` keeps a seeded random L of the nodes (large test
sets).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from _env import environment
from framekd import Predictor
from framekd.data import load_dataset
from framekd.distill import predict_student
from framekd.io import load_tensors, write_text


def _predict(p: Predictor, graph, nodes: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out = predict_student(p.model, graph.x[nodes], rows,
                              batch_size=p.config.student.batch_size)
    return out.logits.argmax(-1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--model", default="fmlp-o")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--nodes", choices=("unseen", "test"), default="unseen")
    ap.add_argument("--tols", default="0.1,0.03,0.01,3e-3,1e-3")
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--limit", type=int)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    print(environment(), flush=True)

    exact_p = Predictor.from_run(args.run, model=args.model, seed=args.seed, rows="full")
    graph = exact_p.prepare(load_dataset(exact_p.config.dataset))
    split = load_tensors(args.run / f"seed_{args.seed}" / "split.safetensors")
    nodes = split[args.nodes if args.nodes in split else "test"]
    if args.limit is not None and args.limit < nodes.numel():
        keep = torch.randperm(nodes.numel(), generator=torch.Generator().manual_seed(0))
        nodes = nodes[keep[:args.limit].sort().values]
    y = graph.y[nodes]
    start = time.perf_counter()
    exact, _ = exact_p.knowledge(graph, nodes)
    full_s = time.perf_counter() - start
    exact_pred = _predict(exact_p, graph, nodes, exact)
    exact_acc = float((exact_pred == y).float().mean())
    lines = [
        f"{args.run} ({exact_p.config.dataset}), {args.model}, seed {args.seed}: "
        f"{nodes.numel()} {args.nodes} nodes in batches of {args.batch}; {environment()}",
        f"exact rows from the whole graph's knowledge: {full_s:.2f} s for all of them, "
        f"accuracy {100 * exact_acc:.2f} %",
        "",
        "| tol | rel. error (median / max) | field nodes (median) | ms per batch (median) "
        "| accuracy (%) | predictions changed |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for tol in (float(t) for t in args.tols.split(",")):
        p = Predictor.from_run(args.run, model=args.model, seed=args.seed, rows_tol=tol)
        errors, sizes, secs, parts = [], [], [], []
        for b in range(0, nodes.numel(), args.batch):
            batch = nodes[b:b + args.batch]
            rows, info = p.knowledge(graph, batch)
            want = exact[:, :, b:b + args.batch]
            errors.append(float((rows - want).norm() / want.norm().clamp(min=1e-30)))
            sizes.append(info["receptive_field"]["num_nodes"])
            secs.append(info["seconds"])
            parts.append(rows)
        pred = _predict(p, graph, nodes, torch.cat(parts, 2))
        acc = float((pred == y).float().mean())
        changed = int((pred != exact_pred).sum())
        lines.append(f"| {tol:g} | {statistics.median(errors):.2e} / {max(errors):.2e} | "
                     f"{statistics.median(sizes):.0f} of {graph.num_nodes} | "
                     f"{1000 * statistics.median(secs):.1f} | {100 * acc:.2f} | "
                     f"{changed} of {nodes.numel()} |")
        print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        write_text(args.out, text)


if __name__ == "__main__":
    main()
