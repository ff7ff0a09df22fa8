"""Datasets for framekd: named benchmarks (offline, via PyG), CSBM graphs, user graphs.

Every loader returns the canonical graph of :func:`framekd.graph.canonicalize`
(symmetric, no self-loops, no duplicate edges) with float32 ``x`` and int64 ``y``.
"""

from framekd.data.csbm import csbm, parse_csbm_spec
from framekd.data.datasets import (
    cache_root,
    data_root,
    is_available,
    load_dataset,
    missing_files,
    resolve_name,
)
from framekd.data.registry import DATASETS, REAL_DATASETS, DatasetInfo
from framekd.data.stats import dataset_stats
from framekd.data.syn_cora import load_syn_cora
from framekd.data.user import from_data, load_graph_dir, save_graph_dir

__all__ = [
    "DATASETS",
    "REAL_DATASETS",
    "DatasetInfo",
    "cache_root",
    "csbm",
    "data_root",
    "dataset_stats",
    "from_data",
    "is_available",
    "load_dataset",
    "load_graph_dir",
    "load_syn_cora",
    "missing_files",
    "parse_csbm_spec",
    "resolve_name",
    "save_graph_dir",
]
