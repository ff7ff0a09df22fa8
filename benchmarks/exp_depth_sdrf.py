"""Experiment: accuracy versus depth with and without SDRF (issue 5, SPEC §8).

For each dataset and each depth L (teacher layers; the students' knowledge powers follow
L), two runs of :func:`framekd.experiment.run_experiment` with the same seeds and splits:
the original graph and the graph rewired once by SDRF with the dataset's provisional
preset (:func:`framekd.rewire.sdrf_preset`). Each run trains the spatial framelet teacher
and distils FMLP-S and FMLP-O from it (no baselines, no plain MLP). The "best FMLP" of a
cell is the one of the two with the higher **mean validation** accuracy (so the test set
does not pick it); both are in the CSV.

Runs are resumable: results live under ``OUT/<dataset>/L<depth>-<none|sdrf>/`` and a
re-run reuses every finished seed. The rewired graphs and the knowledge are cached under
``--cache`` (default ``OUT/cache``). The script also records, per dataset, the SDRF edit
summary, the spectral gap of the normalised Laplacian (largest component) and the
number of negatively curved edges (Balanced Forman) before and after.

Writes ``--results``.md (tables + paired differences + machine/versions/command/date)
and ``--results``.csv (one row per dataset × depth × graph × model).

Usage (data from $FRAMEKD_DATA)::

    OMP_NUM_THREADS=1 python benchmarks/exp_depth_sdrf.py \
        --datasets cornell,texas,wisconsin,chameleon --depths 2,4,6 --seeds 10 \
        --out runs/depth
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import json
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from framekd.config import resolve
from framekd.data import load_dataset
from framekd.experiment import prepare_graph, run_experiment
from framekd.rewire import balanced_forman_curvature, sdrf_preset, spectral_gap

STUDENTS = ("fmlp-s", "fmlp-o")
GRAPHS = ("none", "sdrf")


def _csv_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _per_dataset(items: list[str], what: str) -> dict[str, list[str]]:
    """``["chameleon:student.epochs=200", ...]`` → ``{"chameleon": ["student.epochs=200"]}``."""
    out: dict[str, list[str]] = {}
    for item in items:
        name, sep, rest = item.partition(":")
        if not sep or not rest:
            raise SystemExit(f"{what} expects DATASET:VALUE, got '{item}'")
        out.setdefault(name.strip().lower(), []).append(rest)
    return out


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    import os

    import torch_geometric

    return (f"`lscpu`: {model}, {os.cpu_count()} CPUs; torch {torch.__version__}, "
            f"PyG {torch_geometric.__version__}, Python {platform.python_version()}, "
            f"torch threads {torch.get_num_threads()}, "
            f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")


def graph_stats(edge_index: torch.Tensor, num_nodes: int) -> dict[str, Any]:
    ei, curv = balanced_forman_curvature(edge_index, num_nodes)
    keep = ei[0] < ei[1]  # one value per undirected edge
    c = curv[keep]
    return {
        "undirected_edges": int(keep.sum()),
        "spectral_gap": spectral_gap(edge_index, num_nodes),
        "negative_edges": int((c < 0).sum()),
        "min_curvature": float(c.min()) if c.numel() else 0.0,
        "mean_curvature": float(c.mean()) if c.numel() else 0.0,
    }


def val_means(run_dir: Path, seeds: int) -> dict[str, float]:
    """Mean validation accuracy per model over the seeds of a finished run."""
    vals: dict[str, list[float]] = {}
    for seed in range(seeds):
        saved = json.loads((run_dir / f"seed_{seed}" / "metrics.json").read_text())
        for name, row in saved["models"].items():
            vals.setdefault(name, []).append(float(row["val_accuracy"]))
    return {name: statistics.fmean(v) for name, v in vals.items()}


def pm(values: list[float]) -> str:
    mean = 100 * statistics.fmean(values)
    std = 100 * statistics.pstdev(values) if len(values) > 1 else 0.0
    return f"{mean:.1f} ± {std:.1f}"


def paired(a: list[float], b: list[float]) -> tuple[float, float, int, float | None]:
    """Mean and std of b − a (points), wins of b, and the paired t-test p-value."""
    diff = [100 * (y - x) for x, y in zip(a, b, strict=True)]
    p = None
    if len(diff) > 1 and statistics.pstdev(diff) > 0:
        from scipy.stats import ttest_rel

        p = float(ttest_rel(b, a).pvalue)
    sd = statistics.stdev(diff) if len(diff) > 1 else 0.0
    return statistics.fmean(diff), sd, sum(d > 0 for d in diff), p


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default="cornell,texas,wisconsin,chameleon")
    p.add_argument("--depths", default="2,4,6")
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--seeds-for", action="append", default=[], metavar="DATASET:N",
                   help="fewer/more seeds for one dataset, e.g. chameleon:5")
    p.add_argument("--graphs", default="none,sdrf",
                   help="run only these graph variants (e.g. 'sdrf' in a second process); "
                        "the results files are written only when both are run")
    p.add_argument("--out", default="runs/depth", help="run folders (resumable)")
    p.add_argument("--cache", default=None, help="cache for rewired graphs and knowledge")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="framekd config override for every run (repeatable)")
    p.add_argument("--set-for", action="append", default=[], metavar="DATASET:KEY=VALUE",
                   help="config override for one dataset only (repeatable)")
    p.add_argument("--results", default="benchmarks/results/depth_sdrf",
                   help="path stem of the .md and .csv written")
    p.add_argument("--reading", default=None, metavar="FILE",
                   help="Markdown file with the interpretation, appended under 'Reading'")
    args = p.parse_args()

    datasets = [d.lower() for d in _csv_list(args.datasets)]
    depths = [int(d) for d in _csv_list(args.depths)]
    seeds_for = {k: int(v[-1]) for k, v in _per_dataset(args.seeds_for, "--seeds-for").items()}
    set_for = _per_dataset(args.set_for, "--set-for")
    graphs = [g for g in GRAPHS if g in _csv_list(args.graphs)]
    out = Path(args.out)
    cache = Path(args.cache) if args.cache else out / "cache"
    started = time.perf_counter()

    rows: list[dict[str, Any]] = []
    graph_info: dict[str, dict[str, Any]] = {}
    for ds in datasets:
        seeds = seeds_for.get(ds, args.seeds)
        data = load_dataset(ds)
        for depth in depths:
            for graph in graphs:
                overrides = [
                    f"seeds={seeds}", f"teacher.layers={depth}", "teacher.name=spatial",
                    f"student.names=[{','.join(STUDENTS)}]", "baselines=[]",
                    f"rewire.method={'sdrf' if graph == 'sdrf' else 'null'}",
                    *args.overrides, *set_for.get(ds, []),
                ]
                cfg = resolve(ds, overrides=overrides)
                run_dir = out / ds / f"L{depth}-{graph}"
                t0 = time.perf_counter()
                print(f"== {ds} L={depth} {graph}: {seeds} seeds -> {run_dir}", flush=True)
                metrics = run_experiment(cfg, run_dir, data=data, progress=False,
                                         cache_dir=cache, log=lambda s: print(s, flush=True))
                print(f"   done in {time.perf_counter() - t0:.1f} s", flush=True)
                if graph == "sdrf" and ds not in graph_info:
                    rewired, _ = prepare_graph(cfg, data.clone(), cache_dir=cache,
                                               log=lambda s: None)
                    graph_info[ds] = {
                        "nodes": int(data.num_nodes),
                        "preset": sdrf_preset(ds),
                        "summary": metrics.get("rewire", {}),
                        "before": graph_stats(data.edge_index, data.num_nodes),
                        "after": graph_stats(rewired.edge_index, rewired.num_nodes),
                    }
                vmean = val_means(run_dir, seeds)
                best = max(STUDENTS, key=lambda n: vmean[n])
                for name in ("spatial", *STUDENTS):
                    m = metrics["models"][name]
                    rows.append({
                        "dataset": ds, "depth": depth, "graph": graph, "model": name,
                        "best_fmlp": name == best, "protocol": cfg["protocol"],
                        "seeds": seeds, "acc_mean": m["accuracy_mean"],
                        "acc_std": m["accuracy_std"], "val_mean": vmean[name],
                        "train_seconds": m["train_seconds"], "acc": m["accuracy"],
                    })

    if graphs != list(GRAPHS):
        print("only part of the grid was run: results files not written")
        return
    write_results(args, datasets, depths, rows, graph_info, time.perf_counter() - started)


def _row(rows, ds, depth, graph, model=None, best=False):
    for r in rows:
        if (r["dataset"], r["depth"], r["graph"]) == (ds, depth, graph) and (
            r["model"] == model or (best and r["best_fmlp"])
        ):
            return r
    raise KeyError((ds, depth, graph, model))


def write_results(args, datasets, depths, rows, graph_info, seconds) -> None:
    stem = Path(args.results)
    stem.parent.mkdir(parents=True, exist_ok=True)
    with open(stem.with_suffix(".csv"), "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["dataset", "depth", "graph", "model", "best_fmlp", "protocol", "seeds",
                    "acc_mean", "acc_std", "val_mean", "train_seconds", "acc_per_seed"])
        for r in rows:
            w.writerow([r["dataset"], r["depth"], r["graph"], r["model"], int(r["best_fmlp"]),
                        r["protocol"], r["seeds"], f"{r['acc_mean']:.4f}", f"{r['acc_std']:.4f}",
                        f"{r['val_mean']:.4f}", f"{r['train_seconds']:.3f}",
                        " ".join(f"{a:.4f}" for a in r["acc"])])

    cmd = "OMP_NUM_THREADS=1 FRAMEKD_DATA=... .venv/bin/python " + " ".join(
        shlex.quote(a) for a in sys.argv)
    lines = [
        "# Accuracy versus depth, with and without SDRF",
        "",
        f"- **Date:** {_dt.date.today().isoformat()}. **Machine:** {machine()}.",
        "- **Protocol:** `fgkd` (per class ⌊0.2·N/C⌋ train and ⌊0.2·N/C⌋ val, rest test; "
        "seed i draws its own split; the SDRF and no-SDRF runs of a seed share the split). "
        "Test accuracy, mean ± std (population) over seeds, in %.",
        "- **Models:** spatial framelet teacher with L layers; FMLP-S and FMLP-O distilled from "
        "it with knowledge powers = L. *Best FMLP* = the student with the higher **mean "
        "validation** accuracy in that cell (S or O); both are in the CSV.",
        "- **SDRF:** applied once per graph, provisional presets (`framekd.rewire.sdrf_preset`,"
        " sdrf.md §3.2 source A, unverified), seed 0; teacher and students see the rewired "
        "graph.",
        f"- **Command:** `{cmd}` (this pass: {seconds / 60:.1f} min; seeds finished by "
        "earlier passes are reused, not re-run).",
        "- Other jobs shared the 2 cores; times are not benchmarks.",
        "",
        "## Accuracy",
        "",
        "| dataset | L | teacher, no SDRF | teacher, SDRF | best FMLP, no SDRF | "
        "best FMLP, SDRF | seeds |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for ds in datasets:
        for depth in depths:
            t0, t1 = (_row(rows, ds, depth, g, "spatial") for g in GRAPHS)
            s0, s1 = (_row(rows, ds, depth, g, best=True) for g in GRAPHS)
            lines.append(
                f"| {ds} | {depth} | {pm(t0['acc'])} | {pm(t1['acc'])} | "
                f"{pm(s0['acc'])} ({s0['model'][-1].upper()}) | "
                f"{pm(s1['acc'])} ({s1['model'][-1].upper()}) | {t0['seeds']} |")
    lines += [
        "",
        "## Paired effect of SDRF (SDRF − no SDRF, same seed and split)",
        "",
        "Mean ± sample std of the per-seed difference in points, seeds where SDRF is better, "
        "paired t-test p (two-sided, uncorrected for the many cells).",
        "",
        "| dataset | L | teacher Δ | wins | p | FMLP-S Δ | wins | p | FMLP-O Δ | wins | p |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def fmt(model, ds, depth):
        a = _row(rows, ds, depth, "none", model)["acc"]
        b = _row(rows, ds, depth, "sdrf", model)["acc"]
        mean, sd, wins, pv = paired(a, b)
        ptxt = "–" if pv is None else f"{pv:.2f}"
        return f"{mean:+.1f} ± {sd:.1f} | {wins}/{len(a)} | {ptxt}"

    for ds in datasets:
        for depth in depths:
            cells = " | ".join(fmt(m, ds, depth) for m in ("spatial", *STUDENTS))
            lines.append(f"| {ds} | {depth} | {cells} |")
    lo, hi = min(depths), max(depths)
    if hi > lo:
        lines += [
            "",
            f"## Does SDRF help the deeper model more? (L={hi} versus L={lo})",
            "",
            f"Drop = acc(L={hi}) − acc(L={lo}) in points, without and with SDRF. Interaction = "
            f"per seed (SDRF − none at L={hi}) − (SDRF − none at L={lo}): positive means the "
            "surgery helps the deep model more than the shallow one (the paper's claim); "
            "mean ± sample std, seeds with a positive interaction, one-sample t-test p.",
            "",
            "| dataset | model | drop, no SDRF | drop, SDRF | interaction | positive | p |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for ds in datasets:
            for model in ("spatial", *STUDENTS):
                acc = {(g, d): _row(rows, ds, d, g, model)["acc"] for g in GRAPHS
                       for d in (lo, hi)}
                drop = {g: 100 * (statistics.fmean(acc[g, hi]) - statistics.fmean(acc[g, lo]))
                        for g in GRAPHS}
                inter = [100 * ((b1 - a1) - (b0 - a0)) for a0, b0, a1, b1 in zip(
                    acc["none", lo], acc["sdrf", lo], acc["none", hi], acc["sdrf", hi],
                    strict=True)]
                pv = "–"
                if len(inter) > 1 and statistics.pstdev(inter) > 0:
                    from scipy.stats import ttest_1samp

                    pv = f"{float(ttest_1samp(inter, 0.0).pvalue):.2f}"
                sd = statistics.stdev(inter) if len(inter) > 1 else 0.0
                lines.append(
                    f"| {ds} | {model} | {drop['none']:+.1f} | {drop['sdrf']:+.1f} | "
                    f"{statistics.fmean(inter):+.1f} ± {sd:.1f} | "
                    f"{sum(v > 0 for v in inter)}/{len(inter)} | {pv} |")
    lines += [
        "",
        "## What SDRF changed",
        "",
        "Edges are undirected. Spectral gap λ₁ of the normalised Laplacian on the largest "
        "connected component; curvature is Balanced Forman.",
        "",
        "| dataset | N | iterations / τ / C⁺ | edges before → after | added | removed | "
        "λ₁ before → after | negative edges before → after | min curvature before → after |",
        "|---|---:|---|---|---:|---:|---|---|---|",
    ]
    for ds in datasets:
        g = graph_info.get(ds)
        if not g:
            continue
        pr, s, b, a = g["preset"], g["summary"], g["before"], g["after"]
        lines.append(
            f"| {ds} | {g['nodes']} | {pr['iterations']} / {pr['tau']:g} / "
            f"{pr['removal_bound']:g} | {b['undirected_edges']} → {a['undirected_edges']} | "
            f"{s.get('edges_added', '?')} | {s.get('edges_removed', '?')} | "
            f"{b['spectral_gap']:.4f} → {a['spectral_gap']:.4f} | "
            f"{b['negative_edges']} → {a['negative_edges']} | "
            f"{b['min_curvature']:.3f} → {a['min_curvature']:.3f} |")
    if args.reading:
        lines += ["", "## Reading", "", Path(args.reading).read_text().strip()]
    stem.with_suffix(".md").write_text("\n".join(lines).rstrip() + "\n")
    print(f"wrote {stem.with_suffix('.md')} and {stem.with_suffix('.csv')}")


if __name__ == "__main__":
    main()
