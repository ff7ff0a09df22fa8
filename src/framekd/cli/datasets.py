"""``framekd datasets``: list datasets with their statistics and local availability.

``framekd datasets`` lists every named dataset; ``framekd datasets NAME|DIR ...`` loads
only the given ones (a directory is validated as a user graph, a ``csbm:...`` spec is
generated), which is the quickest way to check your own graph.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

COLUMNS = ("name", "nodes", "edges", "features", "classes", "homophily", "available")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "datasets",
        help="list datasets, their statistics and whether they are available offline",
        description="List every dataset framekd knows with nodes, edges (directed count of "
        "the symmetrised graph), features, classes, edge homophily and availability. "
        "Statistics of available datasets are measured (and cached); those of missing ones "
        "are published values (source 'static').",
    )
    parser.add_argument("names", nargs="*", metavar="NAME|DIR",
                        help="only these datasets, csbm specs (csbm:n=2000,h=0.2) or graph "
                        "directories (edges.csv, features.npy|csv, labels.csv)")
    parser.add_argument("--json", action="store_true", help="print a JSON list of objects")
    parser.add_argument("--root", metavar="DIR",
                        help="data root with the raw files (default: $FRAMEKD_DATA, else "
                        "<cache>/data)")
    parser.add_argument("--no-cache", action="store_true",
                        help="measure again instead of reading cached statistics")
    parser.set_defaults(handler=run)


def _check_root(root: str | None) -> None:
    from framekd.data import data_root
    from framekd.errors import DatasetNotFoundError

    if root is None and not os.environ.get("FRAMEKD_DATA"):
        return  # the default cache folder may legitimately not exist yet
    path = data_root(root)
    if not path.is_dir():
        origin = "--root" if root is not None else "FRAMEKD_DATA"
        raise DatasetNotFoundError(
            f"data root {path} (from {origin}) is not a directory; point it at the folder "
            "that holds Planetoid/, WebKB/, ... (e.g. shared/data)"
        )


def _row(name: str, root: str | None, use_cache: bool) -> dict:
    from framekd.data import DATASETS, dataset_stats, load_dataset
    from framekd.data.stats import _measure

    lowered = name.lower()
    if lowered in DATASETS or lowered.startswith("syn-cora") or not (
        os.path.isdir(name) or lowered.startswith("csbm:")
    ):
        return dataset_stats(name, root, use_cache=use_cache)
    data = load_dataset(name, root)
    return _measure(data, getattr(data, "name", name)) | {
        "available": True, "source": "generated" if lowered.startswith("csbm") else "user"}


def _table(rows: list[dict]) -> str:
    header = COLUMNS + ("source",)
    cells = [[_fmt(r.get(c)) for c in header] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    for c in cells:
        lines.append("  ".join(v.rjust(w) if v[:1].isdigit() else v.ljust(w)
                               for v, w in zip(c, widths, strict=True)))
    return "\n".join(lines)


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from framekd.data import DATASETS

    if not args.names:  # graph directories and csbm specs need no data root
        _check_root(args.root)
    names = args.names or list(DATASETS)
    rows = []
    for name in tqdm(names, desc="datasets", unit="set", file=sys.stderr,
                     disable=None, leave=False):  # None: drawn only on a terminal
        rows.append(_row(name, args.root, use_cache=not args.no_cache))
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(_table(rows))
        missing = [r["name"] for r in rows if not r["available"]]
        if missing:
            print(f"\n{len(missing)} not available offline ({', '.join(missing)}): statistics "
                  "shown are published values; see README 'Data' to add the files.")
    return 0
