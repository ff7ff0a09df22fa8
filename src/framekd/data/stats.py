"""Summary statistics of the named datasets, measured once and cached.

``edges`` is ``edge_index.size(1)`` of the canonical graph (each undirected edge counted
twice) and ``homophily`` the edge homophily of :func:`torch_geometric.utils.homophily`
on the canonical graph:

.. math::
    h_{edge} = \\frac{|\\{(i, j) \\in E : y_i = y_j\\}|}{|E|}.

Measured statistics are cached in ``<cache>/stats.json`` keyed by the dataset name and
the paths, sizes and modification times of its raw files, so the second listing is
fast and an edited file is measured again.
"""

from __future__ import annotations

import hashlib
import os

from framekd.data.datasets import cache_root, data_root, missing_files, resolve_name
from framekd.data.registry import DATASETS

_VERSION = 1  # bump when the way statistics are computed changes


def _key(name: str, root) -> str:
    info = DATASETS[name]
    base = data_root(root)
    h = hashlib.sha256(f"v{_VERSION}|{name}|{base.resolve()}".encode())
    for rel in info.raw_files + info.optional_files:
        path = base / rel
        if path.is_file():
            st = path.stat()
            h.update(f"|{rel}:{st.st_size}:{st.st_mtime_ns}".encode())
    return f"{name}:{h.hexdigest()[:16]}"


def _measure(data, name: str) -> dict:
    from torch_geometric.utils import homophily

    labelled = data.y >= 0
    classes = data["num_classes"] if "num_classes" in data else int(data.y[labelled].max()) + 1
    edges = int(data.edge_index.size(1))
    return dict(
        name=name,
        nodes=int(data.num_nodes),
        edges=edges,
        features=int(data.x.size(1)),
        classes=int(classes),
        # No edges: homophily is undefined (shown as '-', never as nan).
        homophily=round(float(homophily(data.edge_index, data.y, method="edge")), 4)
        if edges else None,
    )


def dataset_stats(name: str, root: str | os.PathLike | None = None, *,
                  use_cache: bool = True) -> dict:
    """Statistics of a named dataset.

    Returns a dict with keys ``name, nodes, edges, features, classes, homophily,
    available`` plus ``kind`` (homophilic, heterophilic, synthetic) and ``source``:
    ``measured`` (loaded and counted), ``static`` (published numbers, files absent) or
    ``generated`` (csbm with its default arguments).
    """
    from framekd.data.datasets import load_dataset
    from framekd.io import read_json, write_json

    key_name = resolve_name(name)
    info = DATASETS[key_name]
    row_extra = {"kind": info.kind}
    if info.family == "generated":
        return _measure(load_dataset(key_name), key_name) | {
            "available": True, "source": "generated", **row_extra}
    if missing_files(key_name, root):
        static = info.static or dict.fromkeys(
            ("nodes", "edges", "features", "classes", "homophily"))
        return {"name": key_name, **static, "available": False, "source": "static",
                **row_extra}

    cache_file = cache_root() / "stats.json"
    key = _key(key_name, root)
    cache: dict = {}
    if use_cache and cache_file.is_file():
        try:
            cache = read_json(cache_file)
        except Exception:  # a corrupt cache is only a cache: measure again
            cache = {}
        if key in cache:
            return cache[key]
    row = _measure(load_dataset(key_name, root), key_name) | {
        "available": True, "source": "measured", **row_extra}
    if use_cache:
        cache[key] = row
        write_json(cache_file, cache)
    return row
