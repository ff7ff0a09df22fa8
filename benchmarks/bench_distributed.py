"""1 vs P processes (framekd.distributed) on a CSBM: knowledge precompute, one distillation
epoch and peak memory per rank.

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_distributed.py --nodes 1000000
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_distributed.py --nodes 20000  # check

The parent generates the graph once (``framekd.data.csbm``: average degree 10, 32 features,
2 classes, homophily 0.8, seed 0) and saves it; then, side by side in one run, it starts

* ``P = 1``: one process doing what ``framekd run`` does today: ``graph_knowledge``
  (:mod:`framekd.knowledge`) and ``distill_student`` (:mod:`framekd.distill`);
* ``P = --procs`` (default 2): P worker processes joined in a gloo process group (the
  environment torchrun would give them) running ``sharded_knowledge`` and ``distill_ddp``
  (:mod:`framekd.distributed`).

Every process runs with one thread (``OMP_NUM_THREADS=1``; ``--threads-one 2`` gives the
single process two threads instead, for the comparison with one process using both cores).
Measured per rank:

* ``setup_s``: loading the graph and building the framelet operator (λ_max estimate), not
  in the knowledge time;
* ``knowledge_s``: the knowledge (``features`` mode by default: K_c^k X, 2 channels, 2
  powers), including the ``all_to_all`` exchange; the slowest rank counts;
* ``epoch_s``: one full-batch FMLP-S distillation epoch (training step and validation
  pass), the mean of ``--epochs`` epochs; the slowest rank counts;
* ``knowledge_cpu_s``, ``distill_cpu_s``: the same phases in CPU seconds of the process
  (``time.process_time``; the distillation call as a whole: the epochs, the final
  prediction and set-up), which other jobs on the machine do not inflate: their ratio is
  the speed-up the split of the work allows;
* ``knowledge_bytes``: the knowledge rows the rank holds;
* ``knowledge_peak``: peak resident memory during the knowledge phase minus the resident
  memory before it (the result plus the working set), from ``VmHWM`` reset through
  ``/proc/self/clear_refs`` at the start of the phase;
* ``peak_rss``: the process's peak resident memory from the start of the knowledge phase to
  the end (graph, operator, knowledge, training; the whole run where the reset is refused).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = Path(os.environ.get("BENCH_WORK", Path(tempfile.gettempdir()) / "framekd_bench_dist"))
MIB = 2**20


def _status(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} missing from /proc/self/status")


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux ``clear_refs`` 5); False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def prepare(nodes: int, features: int) -> Path:
    """The CSBM graph saved once as safetensors (edges, features, labels)."""
    from framekd.data import csbm
    from framekd.io import save_tensors

    path = WORK / f"csbm-{nodes}-{features}.safetensors"
    if not path.exists():
        data = csbm(num_nodes=nodes, num_classes=2, avg_degree=10.0, homophily=0.8,
                    num_features=features, seed=0)
        save_tensors(path, {"edge_index": data.edge_index, "x": data.x, "y": data.y},
                     {"num_nodes": str(nodes)})
    return path


def worker(args: argparse.Namespace) -> None:
    """One rank (or the single process): measure and print one JSON line."""
    import torch
    from torch_geometric.data import Data

    from framekd.distill import distill_student
    from framekd.distributed import Shard, distill_ddp, init_from_env, sharded_knowledge
    from framekd.framelets import framelet_operator
    from framekd.io import load_tensors
    from framekd.knowledge import KnowledgeSpec, graph_knowledge
    from framekd.models import build_student
    from framekd.splits import make_split

    torch.set_num_threads(args.threads)
    ctx = init_from_env("cpu", timeout=1800)
    t0 = time.perf_counter()
    tensors = load_tensors(args.graph)
    n = tensors["y"].numel()
    data = Data(x=tensors["x"], edge_index=tensors["edge_index"], y=tensors["y"], num_nodes=n)
    op = framelet_operator(data.edge_index, n)
    spec = KnowledgeSpec(mode=args.mode, powers=2, sketch_dim=args.sketch_dim)
    setup = time.perf_counter() - t0

    budget = 64 * 2**30  # measure, do not refuse: the machine's memory is the limit here
    before = _status("VmRSS")
    reset = _reset_peak()
    t0, c0 = time.perf_counter(), time.process_time()
    if args.single:
        k = graph_knowledge(data.edge_index, n, data.x, spec, operator=op, memory_budget=budget)
    else:
        k = sharded_knowledge(data.edge_index, n, data.x, spec, operator=op,
                              memory_budget=budget)
    k_seconds, k_cpu = time.perf_counter() - t0, time.process_time() - c0
    k_peak = (_status("VmHWM") - before) if reset else None

    shard = Shard(ctx.rank, ctx.world_size, n)
    split = make_split(data, "fgkd", 0)
    gen = torch.Generator().manual_seed(1)
    logp = torch.log_softmax(torch.randn(n, 2, generator=gen), -1)
    torch.manual_seed(0)
    student = build_student("fmlp-s", data.x.size(1), 2, knowledge_shape=(*k.shape[:2], n,
                                                                         k.size(3)))
    opts = dict(epochs=args.epochs, patience=args.epochs + 1, seed=0)
    c0 = time.process_time()
    if args.single:
        res = distill_student(student, data, k, logp, split, **opts)
    else:
        rows = slice(shard.lo, shard.hi)
        res = distill_ddp(student, data.x[rows], data.y[rows], k, logp[rows], split, shard,
                          **opts)
    d_cpu = time.process_time() - c0
    print(json.dumps({
        "rank": ctx.rank, "world_size": ctx.world_size, "threads": args.threads,
        "setup_s": setup, "knowledge_s": k_seconds, "epoch_s": res.seconds / res.epochs,
        "knowledge_cpu_s": k_cpu, "distill_cpu_s": d_cpu,
        "knowledge_bytes": k.numel() * k.element_size(), "knowledge_peak": k_peak,
        "rss_before_knowledge": before, "peak_rss": _status("VmHWM"),
        "knowledge_shape": list(k.shape),
    }), flush=True)


def launch(graph: Path, procs: int, args: argparse.Namespace) -> list[dict]:
    """Start ``procs`` workers (``procs == 1``: the single-process path) and collect them."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    single = procs == 1
    threads = args.threads_one if single else 1
    running = []
    for rank in range(procs):
        env = dict(os.environ, RANK=str(rank), WORLD_SIZE=str(procs), LOCAL_RANK=str(rank),
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                   OMP_NUM_THREADS=str(threads))
        cmd = [sys.executable, __file__, "--worker", "--graph", str(graph), "--mode", args.mode,
               "--sketch-dim", str(args.sketch_dim), "--epochs", str(args.epochs),
               "--threads", str(threads)] + (["--single"] if single else [])
        running.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True))
    rows = []
    for proc in running:
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"a worker failed (exit {proc.returncode})")
        rows.append(json.loads(out.strip().splitlines()[-1]))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=int, default=1_000_000)
    p.add_argument("--features", type=int, default=32)
    p.add_argument("--procs", type=int, default=2)
    p.add_argument("--mode", default="features", choices=("features", "sketch"))
    p.add_argument("--sketch-dim", type=int, default=256)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--threads-one", type=int, default=1,
                   help="threads of the single process (each of the P workers has one)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--single", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--graph", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return
    sys.path.insert(0, str(HERE))
    from _env import environment

    WORK.mkdir(parents=True, exist_ok=True)
    print(f"# bench_distributed: {environment()}; CSBM n={args.nodes}, {args.features} "
          f"features, degree 10; knowledge {args.mode}; {time.strftime('%Y-%m-%d')}")
    graph = prepare(args.nodes, args.features)
    one = launch(graph, 1, args)[0]
    many = launch(graph, args.procs, args)

    def slowest(key: str) -> float:
        return max(r[key] for r in many)

    print(f"\n| | 1 process ({args.threads_one} thread) | {args.procs} processes (slowest / "
          "largest rank) | ratio |\n|---|---:|---:|---:|")
    k_speed = one["knowledge_s"] / slowest("knowledge_s")
    e_speed = one["epoch_s"] / slowest("epoch_s")
    mem = slowest("knowledge_bytes") / one["knowledge_bytes"]
    rows = [("setup (graph, operator) s", one["setup_s"], slowest("setup_s"), None),
            ("knowledge s", one["knowledge_s"], slowest("knowledge_s"), k_speed),
            ("distillation epoch s", one["epoch_s"], slowest("epoch_s"), e_speed),
            ("knowledge CPU s", one["knowledge_cpu_s"], slowest("knowledge_cpu_s"),
             one["knowledge_cpu_s"] / slowest("knowledge_cpu_s")),
            (f"distillation CPU s ({args.epochs} epochs + final pass)", one["distill_cpu_s"],
             slowest("distill_cpu_s"), one["distill_cpu_s"] / slowest("distill_cpu_s")),
            ("knowledge held MiB", one["knowledge_bytes"] / MIB,
             slowest("knowledge_bytes") / MIB, mem),
            ("peak resident MiB", one["peak_rss"] / MIB, slowest("peak_rss") / MIB,
             slowest("peak_rss") / one["peak_rss"])]
    if one["knowledge_peak"] is not None and all(r["knowledge_peak"] for r in many):
        rows.append(("knowledge phase peak MiB (result + working set)",
                     one["knowledge_peak"] / MIB, slowest("knowledge_peak") / MIB,
                     slowest("knowledge_peak") / one["knowledge_peak"]))
    for name, a, b, ratio in rows:
        print(f"| {name} | {a:.2f} | {b:.2f} | " + ("" if ratio is None else f"{ratio:.2f}")
              + " |")
    print(f"\nspeed-up: knowledge {k_speed:.2f}x, epoch {e_speed:.2f}x (goal >= 1.7x on 2 "
          f"cores); knowledge memory per rank {mem:.2f}x of one process (goal <= 0.55x)")
    print(json.dumps({"one": one, "many": many}))


if __name__ == "__main__":
    main()
