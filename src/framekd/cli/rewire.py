"""``framekd rewire``: SDRF graph surgery on a dataset, with a report and a histogram.

Writes into ``--out``:

* ``edge_index.safetensors``: the rewired symmetric edge list (``edge_index`` int64
  ``[2, E]``, ``curvature`` float64 per stored direction);
* ``graph/``: the rewired graph as a user-graph directory (``edges.csv``,
  ``features.npy``, ``labels.csv``) that ``--dataset DIR`` of other commands reads;
* ``report.json``: settings, every edit, curvature and spectral-gap summaries, timings;
* ``curvature.png``: histogram of the edge curvature before and after.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "rewire",
        help="rewire a graph with SDRF (Balanced Forman curvature) and report the effect",
        description="Stochastic Discrete Ricci Flow (Topping et al., ICLR 2022) on the "
        "undirected graph. Options not given come from the dataset's provisional preset "
        "when one exists (see framekd.rewire.SDRF_PRESETS).",
    )
    parser.add_argument("--dataset", required=True, metavar="NAME|DIR",
                        help="dataset name, csbm spec (csbm:n=2000,h=0.2) or graph directory")
    parser.add_argument("--root", metavar="DIR",
                        help="data root with the raw files (default: $FRAMEKD_DATA)")
    parser.add_argument("--iterations", type=int, metavar="N", help="SDRF iterations")
    parser.add_argument("--tau", type=float, metavar="T",
                        help="softmax inverse temperature (0 = uniform, large = greedy)")
    removal = parser.add_mutually_exclusive_group()
    removal.add_argument("--removal-bound", type=float, metavar="C",
                         help="remove the most curved edge while its curvature exceeds C")
    removal.add_argument("--no-removal", action="store_true", help="never remove edges")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="seed (default 0)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.set_defaults(handler=run)


def _settings(args: argparse.Namespace) -> tuple[dict, str]:
    """SDRF settings ``{iterations, tau, removal_bound, seed}`` and where they came from."""
    from dataclasses import replace

    from framekd.errors import ConfigError
    from framekd.rewire import SDRFSpec
    from framekd.rewire.presets import has_sdrf_preset

    name = Path(str(args.dataset)).name
    if has_sdrf_preset(name):
        source = f"provisional preset for {args.dataset}"
    else:
        name, source = None, "command line"
        missing = [k for k in ("iterations", "tau") if getattr(args, k) is None]
        if missing:
            flags = " and ".join(f"--{k}" for k in missing)
            raise ConfigError(f"no SDRF preset for '{args.dataset}'; give {flags}")
    spec = SDRFSpec.from_preset(name, iterations=args.iterations, tau=args.tau,
                                removal_bound=args.removal_bound, seed=args.seed)
    if args.no_removal:
        spec = replace(spec, removal_bound=None)
    return spec.to_dict(), source


def run(args: argparse.Namespace) -> int:
    from framekd.data import load_dataset, save_graph_dir
    from framekd.graph import graph_hash
    from framekd.io import save_tensors, write_json
    from framekd.plots import plot_curvature_histogram
    from framekd.rewire import balanced_forman_curvature, sdrf, spectral_gap

    settings, source = _settings(args)
    data = load_dataset(args.dataset, root=args.root)
    n = data.num_nodes
    ei0, curv0 = balanced_forman_curvature(data.edge_index, n)
    gap0 = spectral_gap(ei0, n)
    ei1, report = sdrf(ei0, n, **settings)
    gap1 = spectral_gap(ei1, n)

    out = Path(args.out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    meta = {"dataset": str(args.dataset), "num_nodes": n, **settings}
    save_tensors(out / "edge_index.safetensors",
                 {"edge_index": ei1, "curvature": report.curvature}, meta)
    if data.x is not None and data.y is not None:
        rewired = data.clone()
        rewired.edge_index = ei1
        save_graph_dir(rewired, out / "graph")
    summary = {
        "dataset": str(args.dataset),
        "settings_source": source,
        "graph_hash_before": graph_hash(ei0, n),
        "graph_hash_after": graph_hash(ei1, n),
        "spectral_gap_before": gap0,
        "spectral_gap_after": gap1,
        "sdrf": report.to_dict(),
    }
    write_json(out / "report.json", summary)
    upper0 = (ei0[0] < ei0[1]).numpy()
    upper1 = (ei1[0] < ei1[1]).numpy()
    plot_curvature_histogram(
        out / "curvature.png", curv0.numpy()[upper0], report.curvature.numpy()[upper1],
        f"SDRF on {args.dataset}: {len(report.added)} added, {len(report.removed)} removed",
    )

    bound = settings["removal_bound"]
    print(f"SDRF on {args.dataset} ({source}): iterations={settings['iterations']} "
          f"tau={settings['tau']:g} removal_bound={'none' if bound is None else f'{bound:g}'} "
          f"seed={args.seed}")
    print(f"  iterations run    {report.iterations_run} ({report.stop_reason})")
    print(f"  edges             {report.edges_before} -> {report.edges_after} undirected "
          f"({len(report.added)} added, {len(report.removed)} removed)")
    print(f"  min curvature     {_fmt(report.curvature_min_before)} -> "
          f"{_fmt(report.curvature_min_after)}")
    print(f"  mean curvature    {_fmt(report.curvature_mean_before)} -> "
          f"{_fmt(report.curvature_mean_after)}")
    print(f"  spectral gap      {gap0:.6f} -> {gap1:.6f} (normalised Laplacian, largest "
          "component)")
    print(f"  time              {report.timings['total_s']:.2f} s")
    print(f"  wrote             {out}/{{edge_index.safetensors,report.json,curvature.png}}"
          + (" and graph/" if (out / "graph").is_dir() else ""))
    return 0


def _fmt(value: float) -> str:
    return "n/a" if value != value else f"{value:.4f}"
