"""``framekd bench speed|accuracy``: the inference-speed and accuracy benchmarks.

``bench speed`` writes ``speed.md``, ``speed.csv``, ``speed.json`` and ``speed.png`` (log-scale
bar chart); ``bench accuracy`` writes ``accuracy.md`` and ``accuracy.csv`` plus one
``framekd run`` results folder per dataset/protocol under ``runs/`` (reused on a re-run).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="speed and accuracy benchmarks (tables and plots)",
                       description="Benchmarks: `bench speed` (inference time) and "
                       "`bench accuracy` (teachers vs students over datasets and seeds).")
    kinds = p.add_subparsers(dest="bench", metavar="KIND")

    s = kinds.add_parser(
        "speed", help="inference time: full graph and a 10-node query, per model",
        description="Time the spatial framelet teacher, GCN and every student (untrained "
        "weights) on each dataset: full-graph inference and the latency of a query for a few "
        "random nodes, median over repeats after warm-up. Knowledge precompute and the "
        "per-node knowledge lookup are reported separately. --query new|both adds the "
        "honest latency for nodes new to the graph: knowledge rows from the receptive field "
        "for the students, the receptive-field subgraph for the teachers.")
    s.add_argument("--datasets", nargs="+", default=["cora"], metavar="NAME",
                   help="dataset names or csbm:... specs (default: cora)")
    s.add_argument("--repeats", type=int, default=100, help="timed calls per model (default 100)")
    s.add_argument("--warmup", type=int, default=10, help="untimed calls first (default 10)")
    s.add_argument("--query-size", type=int, default=10, help="nodes per query (default 10)")
    s.add_argument("--query", choices=("stored", "new", "both"), default="stored",
                   help="stored: query nodes of the graph, students read precomputed knowledge "
                   "rows (default); new: the query nodes are new (appended with their edges), "
                   "students compute their knowledge rows from the receptive field and "
                   "teachers run on the receptive-field subgraph, end to end; both: both tables")
    s.add_argument("--new-repeats", type=int, default=5,
                   help="timed new-node queries, each on a fresh set of new nodes (default 5)")
    s.add_argument("--new-warmup", type=int, default=1,
                   help="untimed new-node queries first (default 1)")
    s.add_argument("--rows-tol", type=float, default=0.0, metavar="TOL",
                   help="with --query new|both: 0 (default) exact knowledge rows; e.g. 1e-3: "
                   "approximate rows from the new nodes' significant field (walks pruned below "
                   "TOL)")
    s.add_argument("--models", default="spatial,gcn,mlp,fmlp-s,fmlp-o",
                   help="comma-separated models to time (default: %(default)s)")
    s.add_argument("--dtypes", default="float32", metavar="D,D",
                   help="precisions to time the students in, comma-separated: float32 "
                   "(always), bfloat16, float16 (default: float32). Low-precision students "
                   "read features and stored knowledge cast once; teachers stay float32")
    s.add_argument("--blocks", default="", metavar="B,B",
                   help="also time the students' full graph in row blocks of B nodes "
                   "(predict_student's batch_size), comma-separated (default: one pass only)")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="configuration override, e.g. teacher.hidden=32 (repeatable)")
    s.add_argument("--out", type=Path, default=Path("bench/speed"),
                   help="output folder (default bench/speed)")
    s.set_defaults(handler=handle_speed)

    a = kinds.add_parser(
        "accuracy", help="accuracy table: teachers and students over datasets and seeds",
        description="Run the spatial framelet teacher (with simplified framelet and GCN as "
        "comparison teachers) distilled into MLP/GLNN, FMLP-S and FMLP-O on every dataset, "
        "protocol fgkd and geom where the dataset ships Geom-GCN splits, plus SDRF-rewired "
        "runs on heterophilic sets. Resumable: finished seeds are reused.")
    a.add_argument("--datasets", nargs="+", metavar="NAME",
                   help="dataset names or csbm:... specs (default: every real dataset whose "
                   "files are available)")
    a.add_argument("--seeds", type=int, default=10, help="seeds / splits per run (default 10)")
    a.add_argument("--protocols", default="fgkd,geom",
                   help="comma-separated protocols, each used where it applies (default: "
                   "%(default)s)")
    a.add_argument("--no-sdrf", action="store_true", help="skip the SDRF runs")
    a.add_argument("--setting", choices=("transductive", "inductive"),
                   help="transductive (default) or inductive (GLNN's production setting; "
                   "accuracy is prod = 0.8 tran + 0.2 ind); same as --set setting=...")
    a.add_argument("--metric", metavar="{accuracy,balanced_accuracy,roc_auc}",
                   help="what early stopping and the tables score (default accuracy); same "
                   "as --set metric=...")
    a.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="configuration override for every run, e.g. teacher.epochs=100")
    a.add_argument("--out", type=Path, default=Path("bench/accuracy"),
                   help="output folder (default bench/accuracy)")
    a.add_argument("--quiet", action="store_true", help="no progress bar")
    a.set_defaults(handler=handle_accuracy)
    p.set_defaults(handler=lambda args: _usage(p))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def handle_speed(args: argparse.Namespace) -> int:
    from framekd.bench import (
        SPEED_COLUMNS,
        speed_benchmark,
        speed_markdown,
        speed_rows,
        write_csv,
    )
    from framekd.cli import parse_ints
    from framekd.errors import ConfigError
    from framekd.io import write_json, write_text
    from framekd.plots import speed_plot

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if args.repeats < 1 or args.new_repeats < 1:
        raise ConfigError(f"--repeats and --new-repeats must be >= 1, got {args.repeats} and "
                          f"{args.new_repeats}")
    results = []
    for name in args.datasets:
        print(f"bench speed: {name} ...", flush=True)
        results.append(speed_benchmark(name, models=models, repeats=args.repeats,
                                       warmup=args.warmup, query_size=args.query_size,
                                       overrides=args.set, query=args.query,
                                       new_repeats=args.new_repeats,
                                       new_warmup=args.new_warmup,
                                       rows_tol=args.rows_tol,
                                       dtypes=[d.strip() for d in args.dtypes.split(",")
                                               if d.strip()],
                                       blocks=parse_ints(args.blocks, "--blocks", "4096,16384",
                                                         required=False)))
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    text = speed_markdown(results)
    write_text(out / "speed.md", text)
    write_csv(out / "speed.csv", speed_rows(results), SPEED_COLUMNS)
    write_json(out / "speed.json", results)
    speed_plot(out / "speed.png", results)
    print(text)
    print(f"written to {out}/ (speed.md, speed.csv, speed.json, speed.png)")
    return 0


def handle_accuracy(args: argparse.Namespace) -> int:
    from framekd.bench import (
        ACCURACY_COLUMNS,
        accuracy_benchmark,
        accuracy_markdown,
        accuracy_plan,
        job_config,
        write_csv,
    )
    from framekd.cli import show_progress
    from framekd.data import REAL_DATASETS, is_available
    from framekd.errors import ConfigError
    from framekd.io import write_text

    if args.seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {args.seeds}")
    datasets = args.datasets or [d for d in REAL_DATASETS if is_available(d)]
    if not datasets:
        raise ConfigError("no dataset files found; set FRAMEKD_DATA to the offline data folder "
                          "or pass --datasets (e.g. a csbm:... spec)")
    protocols = [p.strip() for p in args.protocols.split(",") if p.strip()]
    jobs = accuracy_plan(datasets, protocols=protocols, sdrf=not args.no_sdrf)
    if not jobs:
        raise ConfigError(f"no run applies: protocols {protocols} fit none of {datasets}")
    print(f"bench accuracy: {len(jobs)} run(s) x {args.seeds} seed(s) into {args.out}/runs/",
          flush=True)
    overrides = [*([f"setting={args.setting}"] if args.setting else []),
                 *([f"metric={args.metric}"] if args.metric else []), *args.set]
    job_config(jobs[0], args.seeds, overrides)  # a bad --set: one line and exit 2, up front
    rows = accuracy_benchmark(jobs, args.out, seeds=args.seeds, overrides=overrides,
                              progress=show_progress(args.quiet))
    text = accuracy_markdown(rows)
    write_text(args.out / "accuracy.md", text)
    write_csv(args.out / "accuracy.csv", rows, ACCURACY_COLUMNS)
    print(text)
    print(f"written to {args.out}/ (accuracy.md, accuracy.csv, runs/)")
    return 0 if all(not r.get("note") for r in rows) else 1
