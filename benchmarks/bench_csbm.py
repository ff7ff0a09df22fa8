"""Time and accuracy of the CSBM generator (framekd.data.csbm).

Generates N = 10^4 graphs at target edge homophily 0.1, 0.5, 0.9 and N = 10^6 at 0.5
(average degree 10, 5 classes, 32 features), and reports wall time (best of
``--repeat``), measured edge homophily, mean degree and peak resident memory.

    .venv/bin/python benchmarks/bench_csbm.py [--repeat 3] [--skip-large]
"""

from __future__ import annotations

import argparse
import platform
import resource
import time

import torch
import torch_geometric
from torch_geometric.utils import homophily

from framekd.data import csbm

CASES = [(10_000, 0.1), (10_000, 0.5), (10_000, 0.9), (1_000_000, 0.5)]


def _run(n: int, h: float, repeat: int) -> dict:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        data = csbm(num_nodes=n, num_classes=5, avg_degree=10.0, homophily=h,
                    num_features=32, seed=0)
        times.append(time.perf_counter() - start)
    return dict(
        n=n, target=h, seconds=min(times),
        homophily=float(homophily(data.edge_index, data.y, method="edge")),
        degree=data.edge_index.size(1) / n,
        peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-large", action="store_true", help="skip N = 10^6")
    args = parser.parse_args()
    torch.set_num_threads(2)
    print(f"# csbm benchmark: torch {torch.__version__}, torch_geometric "
          f"{torch_geometric.__version__}, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads")
    print("| N | target h | measured h | mean degree | time (s, best of "
          f"{args.repeat}) | peak RSS so far (MB) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n, h in CASES:
        if args.skip_large and n > 10_000:
            continue
        r = _run(n, h, args.repeat)
        print(f"| {r['n']:,} | {r['target']:.2f} | {r['homophily']:.4f} | {r['degree']:.3f} | "
              f"{r['seconds']:.3f} | {r['peak_mb']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
