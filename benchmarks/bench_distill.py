"""Benchmark: teachers vs distilled students on one dataset (accuracy and inference time).

For each seed: the ``fgkd`` split, a spatial framelet teacher and a GCN trained on labels,
then an MLP on labels, GLNN (the MLP distilled from the spatial teacher), FMLP-S and FMLP-O
distilled from the spatial teacher with graph knowledge of the chosen mode. Prints a
markdown table of test accuracy (mean ± std over seeds), training seconds and full-graph
inference seconds (median of repeats, eval mode, no grad, operators/knowledge precomputed);
the knowledge precompute time is reported separately.

Usage (data from $FRAMEKD_DATA or --root)::

    python benchmarks/bench_distill.py --dataset cora --seeds 3 --knowledge sketch
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from framekd.data import load_dataset
from framekd.distill import distill_student, predict_student, train_teacher
from framekd.knowledge import graph_knowledge
from framekd.models import build_student, build_teacher
from framekd.splits import make_split


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="cora")
    p.add_argument("--root", default=None)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--protocol", default="fgkd")
    p.add_argument("--knowledge", default="sketch", choices=["rows", "sketch", "features"])
    p.add_argument("--sketch-dim", type=int, default=256)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--dropout", type=float, default=0.5)
    p.add_argument("--epochs", type=int, default=500)
    p.add_argument("--patience", type=int, default=50)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    data = load_dataset(args.dataset, root=args.root)
    n, d = data.x.shape
    classes = int(data.y.max()) + 1
    print(
        f"{args.dataset}: N={n}, E={data.edge_index.size(1)}, d={d}, classes={classes}, "
        f"torch threads={torch.get_num_threads()}"
    )

    start = time.perf_counter()
    z = graph_knowledge(
        data.edge_index,
        n,
        data.x,
        powers=args.layers,
        mode=args.knowledge,
        sketch_dim=args.sketch_dim,
    )
    knowledge_seconds = time.perf_counter() - start
    print(f"knowledge {args.knowledge} {tuple(z.shape)}: {knowledge_seconds:.2f} s")

    res: dict[str, dict[str, list[float]]] = {}

    def record(name, result, infer):
        r = res.setdefault(name, {"acc": [], "train": [], "infer": []})
        r["acc"].append(100 * result.test_acc)
        r["train"].append(result.seconds)
        r["infer"].append(infer)

    train_kw = dict(epochs=args.epochs, patience=args.patience)
    for seed in range(args.seeds):
        split = make_split(data, args.protocol, seed)
        teachers = {}
        for name in ("spatial", "gcn"):
            torch.manual_seed(seed)
            model = build_teacher(
                name,
                d,
                classes,
                hidden_channels=args.hidden,
                num_layers=args.layers,
                dropout=args.dropout,
            )
            result = train_teacher(model, data, split, seed=seed, **train_kw)
            model.eval()
            with torch.no_grad():
                infer = median_time(lambda m=model: m(data.x, data.edge_index), args.repeats)
            record(name, result, infer)
            teachers[name] = result
        soft = teachers["spatial"].log_probs
        students = [
            ("mlp", "mlp", None, 1.0),
            ("glnn", "mlp", None, 0.0),
            ("fmlp-s", "fmlp-s", z, 0.0),
            ("fmlp-o", "fmlp-o", z, 0.0),
        ]
        for label, name, kn, lam in students:
            torch.manual_seed(seed)
            student = build_student(
                name,
                d,
                classes,
                hidden_channels=args.hidden,
                dropout=args.dropout,
                knowledge_shape=None if kn is None else z.shape,
            )
            result = distill_student(student, data, kn, soft, split, lam=lam, seed=seed, **train_kw)
            infer = median_time(lambda s=student, k=kn: predict_student(s, data.x, k), args.repeats)
            record(label, result, infer)
        print(f"seed {seed}: " + ", ".join(f"{k} {v['acc'][-1]:.1f}" for k, v in res.items()))

    print()
    print("| model | test acc (%) | train s | inference s (full graph) | speed-up vs spatial |")
    print("|---|---|---|---|---|")
    t_inf = statistics.mean(res["spatial"]["infer"])
    for name, r in res.items():
        acc = statistics.mean(r["acc"])
        std = statistics.pstdev(r["acc"]) if len(r["acc"]) > 1 else 0.0
        inf = statistics.mean(r["infer"])
        print(
            f"| {name} | {acc:.2f} ± {std:.2f} | {statistics.mean(r['train']):.2f} | "
            f"{inf:.5f} | {t_inf / inf:.1f}× |"
        )
    print(f"\nknowledge precompute ({args.knowledge}): {knowledge_seconds:.2f} s (once per graph)")


if __name__ == "__main__":
    main()
