"""Training time on a dense graph (~12 k nodes, ~1 M directed edges), issue 16.

Usage (before/after side by side: each source tree is imported by its own worker process,
the two alternate item by item and round by round, so both see the same machine load)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_dense.py \\
        --sources before=/tmp/before/src,after=src --epochs 8 --rounds 2 \\
        --csv benchmarks/results/bench_dense.csv --markdown benchmarks/results/bench_dense.md

Without ``--sources`` the installed framekd is measured alone. The graph is
:func:`framekd.data.csbm.csbm` (``--nodes``, ``--degree``, ``--features``, ``--classes``,
seed 0); every model is built and trained with the run's default settings
(:func:`framekd.config.resolve`, the ``fgkd`` split of seed 0) except the epoch schedule:
each model trains exactly ``--epochs`` epochs (patience above the epoch count, so early
stopping never ends a measurement), timed by the trainer itself
(:attr:`framekd.distill.TrainResult.seconds`).

Items: ``operator`` (the framelet operator of the graph, λ_max included, once per graph),
``knowledge`` (the students' knowledge, once per graph, no disk cache), the teachers
``spatial``, ``spectral-none``, ``spectral-low``, ``spectral-all`` (``teacher.smooth: auto``
trains all three per seed) and ``gcn``, the student ``fmlp-s``, and ``spectral-MODE-own``,
the spectral teachers with per-channel projections (``teacher.shared_weights: false``,
BENCHMARKS §8.25). A model is trained twice
in its worker: a 1-epoch warm-up model first (its time, minus one steady epoch, is the
model's one-off ``setup``: what is built once per graph and shared by later models and
seeds), then a fresh model for ``--epochs`` epochs (``per_epoch`` = its time / epochs).
Per seed at the default schedule = ``per_epoch`` × 500 (``teacher.epochs``, an upper bound:
early stopping ends both versions at the same epoch when the maths is the same).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

AUTO_ITEMS = ("spectral-none", "spectral-low", "spectral-all")
ITEMS = ("operator", "knowledge", "spatial", *AUTO_ITEMS, "gcn", "fmlp-s",
         *(f"{i}-own" for i in AUTO_ITEMS))
DEFAULT_EPOCHS = 500  # teacher.epochs and student.epochs of the defaults


def _graph(args):
    from framekd.data.csbm import csbm

    return csbm(num_nodes=args.nodes, num_classes=args.classes, avg_degree=args.degree,
                homophily=args.homophily, feature_signal=1.0, num_features=args.features,
                seed=0)


def _config(epochs: int, own: bool = False):
    from framekd.config import RunConfig, resolve

    sets = [f"teacher.epochs={epochs}", f"teacher.patience={epochs + 1}",
            f"student.epochs={epochs}", f"student.patience={epochs + 1}",
            *(["teacher.shared_weights=false"] if own else [])]
    return RunConfig.from_dict(resolve("csbm:bench", overrides=sets))


def worker(args) -> dict:
    """Measure one item with the framekd on ``sys.path``; return its record."""
    import torch

    import framekd
    from framekd.distill import distill_student, train_teacher
    from framekd.experiment import compute_knowledge, graph_operator
    from framekd.models import student_from_config, teacher_from_config
    from framekd.splits import make_split

    torch.set_num_threads(1)
    item = args.worker
    data = _graph(args)
    rc = _config(args.epochs)
    rec = {"item": item, "framekd": str(Path(framekd.__file__).parent),
           "nodes": data.num_nodes, "edges": int(data.edge_index.size(1)),
           "features": data.x.size(1), "epochs": args.epochs}
    start, cpu = time.perf_counter(), time.process_time()
    operator = graph_operator(rc, data)
    if item == "operator":
        rec["seconds"] = time.perf_counter() - start
        rec["cpu"] = time.process_time() - cpu
        return rec
    if item == "knowledge":
        cpu = time.process_time()
        rec["seconds"] = compute_knowledge(data, rc, cache_dir=None, device=data.x.device,
                                           operator=operator)[1]
        rec["cpu"] = time.process_time() - cpu
        return rec
    split = make_split(data, "fgkd", 0)
    c = int(data.num_classes)
    d = data.x.size(1)
    times = []
    if item == "fmlp-s":
        knowledge, _ = compute_knowledge(data, rc, cache_dir=None, device=data.x.device,
                                         operator=operator)
        gen = torch.Generator().manual_seed(0)
        teacher_logp = torch.log_softmax(torch.randn(data.num_nodes, c, generator=gen), -1)
        for epochs in (1, args.epochs):
            torch.manual_seed(0)
            model = student_from_config(item, rc, d, c, knowledge_shape=knowledge.shape)
            cpu = time.process_time()
            res = distill_student(model, data, knowledge, teacher_logp, split, epochs=epochs,
                                  patience=epochs + 1, seed=0)
            times.append((res.seconds, time.process_time() - cpu, res.epochs))
    else:
        name, _, smooth = item.partition("-")
        smooth, _, own = smooth.partition("-")
        rc = _config(args.epochs, own=bool(own))
        for epochs in (1, args.epochs):
            torch.manual_seed(0)
            model = teacher_from_config(name, rc, d, c, operator=operator,
                                        smooth=smooth or None)
            cpu = time.process_time()
            res = train_teacher(model, data, split, epochs=epochs, patience=epochs + 1, seed=0)
            times.append((res.seconds, time.process_time() - cpu, res.epochs))
    (first, first_cpu, _), (total, total_cpu, run) = times
    rec["per_epoch"] = total / run
    rec["cpu_per_epoch"] = total_cpu / run
    rec["setup"] = max(first - rec["per_epoch"], 0.0)
    rec["cpu_setup"] = max(first_cpu - rec["cpu_per_epoch"], 0.0)
    rec["seconds"] = total
    rec["cpu"] = total_cpu
    return rec


def _load() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def _run_worker(path: str, item: str, args) -> dict:
    cmd = [sys.executable, __file__, "--worker", item, "--epochs", str(args.epochs),
           "--nodes", str(args.nodes), "--degree", str(args.degree),
           "--features", str(args.features), "--classes", str(args.classes),
           "--homophily", str(args.homophily)]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    if path:
        env["PYTHONPATH"] = str(Path(path).resolve())
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"worker {item} ({path or 'installed'}) failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _fmt(value: float) -> str:
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def _markdown(rows: list[dict], names: list[str], args, env: str, loads: list[str]) -> str:
    def score(r: dict) -> float:
        return r.get("cpu_per_epoch", r["cpu"])

    best: dict[tuple[str, str], dict] = {}
    for r in rows:  # the fastest round of each (item, source): the least disturbed by load
        key = (r["item"], r["source"])
        if key not in best or score(r) < score(best[key]):
            best[key] = r
    first = rows[0]
    head = (f"Graph: CSBM, {first['nodes']} nodes, {first['edges']} directed edges, "
            f"{first['features']} dense features, {args.classes} classes; {env}; "
            f"{args.epochs} epochs per timed model, fastest of {args.rounds} round(s) by CPU "
            f"time; load average (1, 5, 15 min) at start {loads[0]}, at end {loads[-1]}.\n\n")
    cols = " | ".join(names)
    ratio = f" | {names[0]}/{names[-1]}" if len(names) > 1 else ""
    lines = [head, f"| item | quantity | {cols}{ratio} |",
             "|---|---|" + "---:|" * (len(names) + (len(names) > 1))]
    per_seed: dict[str, float] = {n: 0.0 for n in names}

    def line(item: str, label: str, vals: list[float]) -> None:
        rat = ""
        if len(names) > 1:
            rat = f" | {vals[0] / vals[-1]:.1f}×" if vals[-1] > 0 else " | –"
        lines.append(f"| {item} | {label} | {' | '.join(_fmt(v) for v in vals)}{rat} |")

    for item in [i for i in ITEMS if any(k[0] == i for k in best)]:
        recs = [best.get((item, n)) for n in names]
        if any(r is None for r in recs):
            continue
        if "per_epoch" in recs[0]:
            quantities = [("CPU s / epoch", "cpu_per_epoch", 1),
                          ("wall s / epoch", "per_epoch", 1),
                          (f"CPU s per seed ({DEFAULT_EPOCHS} epochs)", "cpu_per_epoch",
                           DEFAULT_EPOCHS),
                          ("one-off CPU s (first model of a graph)", "cpu_setup", 1)]
        else:
            quantities = [("CPU s, once per graph", "cpu", 1),
                          ("wall s, once per graph", "seconds", 1)]
        for label, key, mult in quantities:
            line(item, label, [r[key] * mult for r in recs])
        if len(names) > 1:  # the ratio within each round: how much the load moved it
            key = "cpu_per_epoch" if "per_epoch" in recs[0] else "cpu"
            ratios = []
            for rnd in sorted({r["round"] for r in rows}):
                got = {r["source"]: r[key] for r in rows
                       if r["item"] == item and r["round"] == rnd}
                if names[0] in got and names[-1] in got and got[names[-1]] > 0:
                    ratios.append(got[names[0]] / got[names[-1]])
            if ratios:
                lines.append(f"| {item} | CPU ratio within each round | "
                             + " | " * (len(names) - 1)
                             + f" | {', '.join(f'{v:.1f}×' for v in ratios)} |")
        if item in AUTO_ITEMS:
            for n, r in zip(names, recs, strict=True):
                per_seed[n] += r["cpu_per_epoch"] * DEFAULT_EPOCHS
    if all(("spectral-" + m, n) in best for m in ("none", "low", "all") for n in names):
        line("spectral, smooth=auto (3 modes)", f"CPU s per seed ({DEFAULT_EPOCHS} epochs)",
             [per_seed[n] for n in names])
    return "\n".join(lines) + "\n"


def _table_from(args) -> None:
    """Print (and with ``--markdown`` write) the table of the rows in ``args.table_from``."""
    with args.table_from.open() as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for key, value in list(r.items()):
            if key in ("item", "source", "load", "framekd"):
                continue
            if value == "":
                del r[key]
            else:
                r[key] = float(value) if "." in value or "e" in value else int(value)
    names = list(dict.fromkeys(r["source"] for r in rows))
    args.epochs = rows[0]["epochs"]
    args.rounds = len({r["round"] for r in rows})
    env = "torch/PyG as when measured (see the run's output), 1 thread per worker"
    table = _markdown(rows, names, args, env, [rows[0]["load"], rows[-1]["load"]])
    print(table)
    if args.markdown:
        args.markdown.write_text(table)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sources", default="",
                    help="name=path,... : source trees (src folders) to compare side by side")
    ap.add_argument("--items", default=",".join(ITEMS))
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--nodes", type=int, default=12000)
    ap.add_argument("--degree", type=float, default=87.0)
    ap.add_argument("--features", type=int, default=500)
    ap.add_argument("--classes", type=int, default=5)
    ap.add_argument("--homophily", type=float, default=0.5)
    ap.add_argument("--csv", type=Path)
    ap.add_argument("--markdown", type=Path)
    ap.add_argument("--table-from", type=Path, metavar="CSV",
                    help="only write the table of an earlier run's --csv")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return
    if args.table_from:
        _table_from(args)
        return
    sources = [s.split("=", 1) for s in args.sources.split(",") if s] or [["installed", ""]]
    names = [n for n, _ in sources]
    items = [i for i in args.items.split(",") if i]
    unknown = sorted(set(items) - set(ITEMS))
    if unknown:
        raise SystemExit(f"unknown item(s) {', '.join(unknown)}; use {', '.join(ITEMS)}")
    import torch
    import torch_geometric

    env = (f"torch {torch.__version__}, PyG {torch_geometric.__version__}, 1 thread per "
           f"worker, {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print(env, flush=True)
    loads, rows = [_load()], []
    for rnd in range(args.rounds):
        for item in items:
            order = sources if rnd % 2 == 0 else sources[::-1]
            for name, path in order:
                rec = _run_worker(path, item, args)
                rec.update(source=name, round=rnd, load=_load())
                rows.append(rec)
                shown = {k: (round(v, 4) if isinstance(v, float) else v)
                         for k, v in rec.items() if k not in ("nodes", "edges", "features")}
                print(json.dumps(shown), flush=True)
    loads.append(_load())
    if args.csv:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        keys = ["item", "source", "round", "cpu", "seconds", "cpu_per_epoch", "per_epoch",
                "cpu_setup", "setup", "epochs", "nodes", "edges", "features", "load",
                "framekd"]
        with args.csv.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)
    table = _markdown(rows, names, args, env, loads)
    print(table)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(table)


if __name__ == "__main__":
    main()
