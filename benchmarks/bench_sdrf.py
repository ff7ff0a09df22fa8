"""Benchmark: Balanced Forman curvature and SDRF, incremental vs full recomputation.

For each graph: the curvature of all edges (:func:`framekd.rewire.balanced_forman_curvature`),
then SDRF with incremental curvature updates (:func:`framekd.rewire.sdrf`), side by side
with a straightforward SDRF that recomputes every curvature after every edit (as the
reference implementation does, but with the same exact sparse curvature). Both use the
same seed, so their edit sequences must agree; the script checks that they do on the
iterations both ran. Every measurement runs in a fresh child process, so peak memory
(``ru_maxrss``) is per measurement.

Usage::

    python benchmarks/bench_sdrf.py --data /path/to/shared/data \
        [--graphs cornell,chameleon,squirrel] [--iterations 1000] \
        [--full-iterations cornell=100,chameleon=5,squirrel=2] \
        [--incremental-iterations squirrel=50] [--csbm 10000,100000] [--csbm-iterations 100]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time

PRESETS = {"cornell": ("WebKB", "Cornell"), "texas": ("WebKB", "Texas"),
           "wisconsin": ("WebKB", "Wisconsin"), "chameleon": ("WikipediaNetwork", "chameleon"),
           "squirrel": ("WikipediaNetwork", "squirrel")}


def load(name: str, data_dir: str):
    """``(edge_index, num_nodes)`` of a PyG dataset (from a /tmp copy) or a CSBM graph."""
    if name.startswith("csbm"):
        from framekd.data import csbm

        n = int(name.split("-")[1])
        data = csbm(num_nodes=n, avg_degree=10.0, homophily=0.5, num_features=4, seed=0)
        return data.edge_index, data.num_nodes
    from torch_geometric.datasets import WebKB, WikipediaNetwork

    family, pyg_name = PRESETS[name]
    root = os.path.join(tempfile.gettempdir(), "framekd_bench_pyg", family)
    if not os.path.isdir(root):
        shutil.copytree(os.path.join(data_dir, family), root)
    cls = WebKB if family == "WebKB" else WikipediaNetwork
    data = cls(root, pyg_name)[0]
    return data.edge_index, data.num_nodes


def settings(name: str) -> dict:
    from framekd.rewire import sdrf_preset

    if name.startswith("csbm"):
        return {"tau": 100.0, "removal_bound": None}
    preset = sdrf_preset(name)
    return {"tau": preset["tau"], "removal_bound": preset["removal_bound"]}


def full_recompute_sdrf(edge_index, num_nodes, *, iterations, tau, removal_bound, seed=0):
    """SDRF that recomputes the curvature of every edge after every edit."""
    import numpy as np
    import torch

    from framekd.rewire import balanced_forman_curvature, sdrf_candidates

    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    ei, curv = balanced_forman_curvature(edge_index, num_nodes)
    initial_s = time.perf_counter() - start
    added, removed = [], []
    for _ in range(iterations):
        upper = (ei[0] < ei[1]).nonzero().view(-1)
        low = upper[torch.argmin(curv[upper])]  # first minimum = smallest pair
        x, y = int(ei[0, low]), int(ei[1, low])
        pairs, gains = sdrf_candidates(ei, num_nodes, (x, y))
        did = False
        if pairs.size(0):
            g = gains.numpy()
            p = np.exp(tau * (g - g.max()))
            k, l = pairs[int(rng.choice(g.size, p=p / p.sum()))].tolist()
            ei, curv = balanced_forman_curvature(
                torch.cat([ei, torch.tensor([[k, l], [l, k]])], 1), num_nodes)
            added.append((k, l))
            did = True
        if removal_bound is not None:
            upper = (ei[0] < ei[1]).nonzero().view(-1)
            high = upper[torch.argmax(curv[upper])]
            if float(curv[high]) > removal_bound:
                a, b = int(ei[0, high]), int(ei[1, high])
                keep = ~(((ei[0] == a) & (ei[1] == b)) | ((ei[0] == b) & (ei[1] == a)))
                ei, curv = balanced_forman_curvature(ei[:, keep], num_nodes)
                removed.append((a, b))
                did = True
        if not did:
            break
    return added, removed, initial_s


def child(name: str, method: str, iterations: int, data_dir: str) -> dict:
    from framekd.rewire import balanced_forman_curvature, sdrf

    edge_index, n = load(name, data_dir)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    opts = settings(name)
    out: dict = {"graph": name, "method": method, "nodes": n,
                 "edges": int(edge_index.size(1))}
    start = time.perf_counter()
    if method == "curvature":
        ei, curv = balanced_forman_curvature(edge_index, n)
        out.update(seconds=time.perf_counter() - start, undirected_edges=ei.size(1) // 2,
                   min=float(curv.min()), mean=float(curv.mean()))
    elif method == "incremental":
        _, rep = sdrf(edge_index, n, iterations=iterations, seed=0, **opts)
        out.update(seconds=rep.timings["total_s"], initial_s=rep.timings["initial_curvature_s"],
                   iterations=rep.iterations_run, per_iteration_s=rep.timings["per_iteration_s"],
                   added=[list(e) for e in rep.added], removed=[list(e) for e in rep.removed])
    else:
        added, removed, initial_s = full_recompute_sdrf(edge_index, n, iterations=iterations,
                                                        **opts)
        total = time.perf_counter() - start
        # Like the incremental run's, the time per iteration leaves out the initial curvature.
        out.update(seconds=total, initial_s=initial_s, iterations=iterations,
                   per_iteration_s=(total - initial_s) / iterations,
                   added=[list(e) for e in added], removed=[list(e) for e in removed])
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["peak_rss_over_loaded_mb"] = (out["peak_rss_mb"] - rss0 / 1024)
    out.update(opts)
    return out


def run_child(name, method, iterations, data_dir) -> dict:
    cmd = [sys.executable, __file__, "--child", name, method, str(iterations), data_dir]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def parse_map(text: str) -> dict[str, int]:
    return {k: int(v) for k, v in (kv.split("=") for kv in text.split(",") if kv)}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        name, method, iterations, data_dir = sys.argv[2:6]
        print(json.dumps(child(name, method, int(iterations), data_dir)))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=os.environ.get("FRAMEKD_DATA", "/work/shared/data"))
    ap.add_argument("--graphs", default="cornell,chameleon,squirrel")
    ap.add_argument("--iterations", type=int, default=1000)
    ap.add_argument("--incremental-iterations", default="",
                    help="per-graph override of --iterations for the incremental run")
    ap.add_argument("--full-iterations", default="cornell=100,chameleon=5,squirrel=2")
    ap.add_argument("--csbm", default="", help="CSBM sizes (avg degree 10), e.g. 10000,100000")
    ap.add_argument("--csbm-iterations", type=int, default=100)
    args = ap.parse_args()

    import torch
    import torch_geometric

    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
          f"torch {torch.__version__}, PyG {torch_geometric.__version__}")
    inc_iters = parse_map(args.incremental_iterations)
    full_iters = parse_map(args.full_iterations)
    rows = []
    for name in [g for g in args.graphs.split(",") if g]:
        curv = run_child(name, "curvature", 0, args.data)
        inc = run_child(name, "incremental", inc_iters.get(name, args.iterations), args.data)
        full = run_child(name, "full", full_iters.get(name, 2), args.data)
        # The speed-up compares the same iterations (later iterations may be costlier).
        same = run_child(name, "incremental", full["iterations"], args.data)
        steps = min(len(full["added"]), len(inc["added"]))
        agree = (inc["added"][:steps] == full["added"][:steps]
                 and inc["removed"][:len(full["removed"])] == full["removed"])
        rows.append((name, curv, inc, full, agree))
        ratio = full["per_iteration_s"] / same["per_iteration_s"]
        print(f"{name}: N={curv['nodes']} undirected E={curv['undirected_edges']} | "
              f"BFC all edges {curv['seconds']:.2f} s (peak RSS {curv['peak_rss_mb']:.0f} MB, "
              f"min {curv['min']:.4f}, mean {curv['mean']:.4f}) | incremental SDRF "
              f"{inc['iterations']} it: {inc['seconds']:.1f} s total, "
              f"{inc['per_iteration_s'] * 1e3:.1f} ms/it, peak RSS {inc['peak_rss_mb']:.0f} MB "
              f"(+{len(inc['added'])} -{len(inc['removed'])}) | full recompute "
              f"{full['iterations']} it: {full['per_iteration_s'] * 1e3:.1f} ms/it, peak RSS "
              f"{full['peak_rss_mb']:.0f} MB | incremental on those {same['iterations']} it: "
              f"{same['per_iteration_s'] * 1e3:.1f} ms/it | speed-up per iteration {ratio:.1f}x | "
              f"same edits on the common prefix: {agree}", flush=True)
    for size in [s for s in args.csbm.split(",") if s]:
        name = f"csbm-{int(size)}"
        inc = run_child(name, "incremental", args.csbm_iterations, args.data)
        est = inc["initial_s"] + 1000 * inc["per_iteration_s"]
        total = (f"measured total {inc['seconds']:.0f} s" if inc["iterations"] >= 1000
                 else f"1000 iterations est. {est:.0f} s")
        print(f"{name}: E={inc['edges'] // 2} | initial curvature {inc['initial_s']:.2f} s | "
              f"{inc['iterations']} it {inc['per_iteration_s'] * 1e3:.1f} ms/it | peak RSS "
              f"{inc['peak_rss_mb']:.0f} MB | {total}", flush=True)


if __name__ == "__main__":
    main()
