"""Time and peak memory of framekd's graph knowledge versus the reference's dense approach.

Usage::

    .venv/bin/python benchmarks/bench_knowledge.py                 # all cases
    .venv/bin/python benchmarks/bench_knowledge.py --cases cora,random-10000

Each case runs in its own subprocess so that ``ru_maxrss`` is that case's peak resident
memory. The graph's ``edge_index`` is prepared once by the parent (real datasets through
``framekd.data.load_dataset``, random graphs through ``framekd.data.csbm`` when it is
available, else a uniform random graph), so the child's peak holds the interpreter, the
edges and the knowledge computation, not the dataset's feature matrix.

Measured (framekd): ``sketch`` knowledge, 2 powers, Haar, 1 level, default order (8),
sketch_dim 256, float32, including the λ_max estimate and building the operators.
Measured (dense reference, Cora only): the reference release's approach re-implemented
densely in float64 - dense L, Chebyshev operators as dense matrices, K_c = W_c Â W_c
dense, ``torch.matrix_power(K_c, k)`` for k = 1, 2 - then ``K_c^k R`` for the same sketch,
so the two outputs can be compared.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORK = Path(os.environ.get("BENCH_WORK", Path(tempfile.gettempdir()) / "framekd_bench_knowledge"))
REAL = {"cora": "cora", "coauthor-cs": "cs", "coauthor-physics": "physics"}
RANDOM = {"random-10000": 10_000, "random-100000": 100_000, "random-1000000": 1_000_000}
CASES = ["cora-dense", *REAL, *RANDOM]
GIB = 2**30


def _status(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024  # kB
    raise RuntimeError(f"{field} missing from /proc/self/status")


def peak_rss() -> int:
    """Peak resident memory (VmHWM) of this process's address space, in bytes.

    Not ``ru_maxrss``: that survives fork+exec, so a child would report its parent's
    peak whenever the parent had been larger.
    """
    return _status("VmHWM")


def current_rss() -> int:
    return _status("VmRSS")


# ----------------------------------------------------------------------------- preparation


def uniform_random_graph(n: int, avg_degree: float, seed: int = 0):
    import torch
    from torch_geometric.utils import coalesce, remove_self_loops, to_undirected

    gen = torch.Generator().manual_seed(seed)
    m = round(n * avg_degree / 2)
    ei = torch.randint(0, n, (2, m), generator=gen)
    ei, _ = remove_self_loops(ei)
    return coalesce(to_undirected(ei, num_nodes=n), num_nodes=n)


def prepare(case: str) -> Path:
    """Write the case's canonical edge_index to WORK/<name>.safetensors (once)."""
    from framekd.io import save_tensors

    name = "cora" if case == "cora-dense" else case
    path = WORK / f"{name}.safetensors"
    if path.exists():
        return path
    source = ""
    if name in REAL:
        from framekd.data import load_dataset

        data = load_dataset(REAL[name], root=os.environ.get("FRAMEKD_DATA", "/work/shared/data"))
        ei, n = data.edge_index, data.num_nodes
        source = f"framekd.data.load_dataset({REAL[name]!r})"
    else:
        n = RANDOM[name]
        try:
            from framekd.data import csbm

            ei = csbm(num_nodes=n, avg_degree=10.0, num_features=1, seed=0).edge_index
            source = f"framekd.data.csbm(num_nodes={n}, avg_degree=10, seed=0)"
        except ImportError:
            ei = uniform_random_graph(n, 10.0)
            source = f"uniform random graph (n={n}, avg degree 10, seed 0)"
    save_tensors(path, {"edge_index": ei.contiguous()},
                 {"num_nodes": str(n), "source": source})
    return path


# ----------------------------------------------------------------------------- child cases


def run_framekd(path: Path) -> dict:
    import torch

    from framekd.framelets import FrameletTransform
    from framekd.io import load_metadata, load_tensors
    from framekd.knowledge import DEFAULT_MEMORY_BUDGET, graph_knowledge, knowledge_memory

    ei = load_tensors(path)["edge_index"]
    n = int(load_metadata(path)["num_nodes"])
    base = current_rss()
    t0 = time.perf_counter()
    transform = FrameletTransform(ei, n)  # Haar, 1 level, order 8, float32
    t1 = time.perf_counter()
    # The default 4 GiB budget refuses the 10^6 case (output alone 3.8 GiB): raise it there.
    need = knowledge_memory(n, transform.num_channels, 2, 256, torch.float32, 32)
    budget = max(DEFAULT_MEMORY_BUDGET, 2 * need)
    out = graph_knowledge(ei, n, transform=transform, powers=2, mode="sketch", sketch_dim=256,
                          memory_budget=budget)
    t2 = time.perf_counter()
    assert torch.isfinite(out).all()
    return {
        "nodes": n, "edges": int(ei.size(1)), "lambda_max": transform.lambda_max,
        "transform_s": t1 - t0, "knowledge_s": t2 - t1, "total_s": t2 - t0,
        "output_bytes": out.numel() * out.element_size(), "baseline_rss": base,
        "peak_rss": peak_rss(), "memory_budget": budget,
        "source": load_metadata(path).get("source", ""),
    }


def dense_operators(lap, lambda_max: float, order: int = 8):
    """Chebyshev Haar operators W_0, W_1 as dense matrices (the reference's layout)."""
    import torch

    from framekd.framelets import chebyshev_coefficients, filter_bank

    n = lap.size(0)
    t = math.pi / lambda_max
    y = (t / (math.pi / 2)) * lap - torch.eye(n, dtype=lap.dtype)
    coef = [chebyshev_coefficients(g, order) for g in filter_bank("haar")]
    prev, cur = torch.eye(n, dtype=lap.dtype), y.clone()
    ops = [c[0] / 2 * prev + c[1] * cur for c in coef]
    for k in range(2, order):
        prev, cur = cur, 2 * y @ cur - prev
        for i, c in enumerate(coef):
            ops[i] += c[k] * cur
    return ops


def run_dense(path: Path) -> dict:
    import torch

    from framekd.framelets import FrameletTransform
    from framekd.io import load_metadata, load_tensors
    from framekd.knowledge import graph_knowledge, sketch_matrix
    from framekd.operators import gcn_adjacency

    ei = load_tensors(path)["edge_index"]
    n = int(load_metadata(path)["num_nodes"])
    base = current_rss()
    t0 = time.perf_counter()
    lam_max = FrameletTransform(ei, n).lambda_max  # same deterministic estimate
    a = torch.zeros(n, n, dtype=torch.float64)
    a[ei[0], ei[1]] = 1.0
    deg = a.sum(1)
    dinv = torch.where(deg > 0, deg.clamp(min=1).rsqrt(), torch.zeros_like(deg))
    lap = torch.eye(n, dtype=torch.float64) - dinv[:, None] * a * dinv[None, :]
    del a
    a_hat = gcn_adjacency(ei, n, dtype=torch.float64).to_dense()
    ws = dense_operators(lap, lam_max)
    del lap
    ks = [w @ a_hat @ w for w in ws]
    knowledge = [[torch.matrix_power(k, p) for p in (1, 2)] for k in ks]
    t1 = time.perf_counter()
    r = sketch_matrix(n, 256, dtype=torch.float64)
    dense_sketch = torch.stack([torch.stack([kp @ r for kp in kc]) for kc in knowledge])
    peak = peak_rss()
    sparse64 = graph_knowledge(ei, n, transform=FrameletTransform(ei, n, dtype=torch.float64),
                               powers=2, sketch_dim=256)
    diff = float((dense_sketch - sparse64).abs().max() / dense_sketch.abs().max())
    return {
        "nodes": n, "edges": int(ei.size(1)), "total_s": t1 - t0, "baseline_rss": base,
        "peak_rss": peak, "matrices": (peak - base) / (8 * n * n),
        "max_rel_diff_vs_framekd_float64": diff,
    }


def child(case: str) -> None:
    """Run one case in this fresh process and print its result as JSON."""
    path = prepare(case)
    result = run_dense(path) if case == "cora-dense" else run_framekd(path)
    print(json.dumps(result))


# ----------------------------------------------------------------------------- report


def environment() -> dict:
    import torch
    import torch_geometric

    model = "unknown"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        model = next(line.split(":", 1)[1].strip() for line in out.splitlines()
                     if line.startswith("Model name"))
    except (OSError, StopIteration):
        pass
    return {
        "cpu": model, "cores": os.cpu_count(), "torch": torch.__version__,
        "torch_geometric": torch_geometric.__version__, "python": platform.python_version(),
        "threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%d"),
    }


def table(results: dict) -> str:
    lines = [
        "| case | nodes | edges (directed) | operators s | knowledge s | total s | "
        "peak RSS MiB | baseline RSS MiB | output MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for case, r in results.items():
        if case == "cora-dense" or "error" in r:
            continue
        lines.append(
            f"| {case} | {r['nodes']:,} | {r['edges']:,} | {r['transform_s']:.2f} | "
            f"{r['knowledge_s']:.2f} | {r['total_s']:.2f} | {r['peak_rss'] / 2**20:,.0f} | "
            f"{r['baseline_rss'] / 2**20:,.0f} | {r['output_bytes'] / 2**20:,.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated case names")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--prepare", help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    if args.child:
        child(args.child)
        return
    if args.prepare:
        prepare(args.prepare)
        return
    results = {}
    for case in args.cases.split(","):
        # Loading datasets happens in its own process, so neither the parent nor the
        # measured child carries the feature matrices.
        subprocess.run([sys.executable, __file__, "--prepare", case], check=True)
        proc = subprocess.run([sys.executable, __file__, "--child", case],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            results[case] = {"error": proc.stderr.strip().splitlines()[-1:]}
        else:
            results[case] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(case, json.dumps(results[case]), flush=True)
    env = environment()
    print(json.dumps(env))
    print(table(results))
    if "cora-dense" in results and "cora" in results and "error" not in results["cora-dense"]:
        d, s = results["cora-dense"], results["cora"]
        per = 8 * d["matrices"]  # bytes per N^2 of the dense approach, measured
        n_max = math.isqrt(int(24e9 / per))
        print(f"dense/framekd on Cora: time x{d['total_s'] / s['total_s']:.1f}, "
              f"peak RSS x{d['peak_rss'] / s['peak_rss']:.1f}; dense uses "
              f"{d['matrices']:.1f} N^2 float64 matrices -> largest N in 24 GB: {n_max:,}")
    if args.json:
        args.json.write_text(json.dumps({"environment": env, "results": results}, indent=2))


if __name__ == "__main__":
    main()
