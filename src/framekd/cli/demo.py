"""``framekd demo``: the whole method on two generated graphs, no data files needed.

A homophilic (h = 0.9) and a heterophilic (h = 0.1) contextual stochastic block model
graph; on each the default framelet teacher (spectral, band smoothing chosen on
validation) and, for comparison, the paper's spatial framelet teacher and GCN are trained,
the default teacher is distilled into the MLP, FMLP-S and FMLP-O students over a few seeds,
and the result table is printed.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

GRAPHS = {
    "homophilic": "csbm:n=1500,c=4,d=8,h=0.9,signal=1.0,f=32,seed=0",
    "heterophilic": "csbm:n=1500,c=4,d=8,h=0.1,signal=1.0,f=32,seed=0",
}
# Small enough for under two minutes on two CPU cores.
DEMO_SETTINGS = [
    "teacher.epochs=150", "teacher.patience=30", "student.epochs=200", "student.patience=40",
    "teacher.hidden=32", "student.hidden=64", "knowledge.sketch_dim=128",
    "baselines=[spatial,gcn]",
]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the method on a generated homophilic and "
                       "heterophilic graph (its run time: BENCHMARKS.md §0)")
    p.add_argument("--seeds", type=int, default=2, help="seeds per graph (default 2)")
    p.add_argument("--out", type=Path, help="results folder (default: a temporary folder)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from framekd.cli import make_log, show_progress
    from framekd.config import resolve
    from framekd.errors import ConfigError
    from framekd.experiment import results_table, run_experiment

    if args.seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {args.seeds}")
    # Bars only on a terminal (`make demo > demo.log 2>&1` holds no redraws); the run's own
    # progress lines are not shown, its `framekd: ` notices always are.
    progress, log = show_progress(args.quiet), make_log(quiet=True)
    with tempfile.TemporaryDirectory(prefix="framekd-demo-") as tmp:
        root = args.out or Path(tmp)
        for kind, spec in GRAPHS.items():
            cfg = resolve(spec, flags={"seeds": args.seeds}, overrides=DEMO_SETTINGS)
            print(f"\n== {kind} graph: {spec}")
            metrics = run_experiment(cfg, root / kind, progress=progress,
                                     cache_dir=root / "cache", log=log)
            print(results_table(metrics))
        if args.out:
            print(f"results written to {args.out}/")
    return 0
