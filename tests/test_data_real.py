"""The real offline datasets (FRAMEKD_DATA); skipped when they are absent."""

from __future__ import annotations

import json

import pytest
import torch
from torch_geometric.utils import homophily, is_undirected

from framekd.cli import main
from framekd.data import REAL_DATASETS, dataset_stats, is_available, load_dataset
from framekd.splits import make_split
from helpers import run_together

pytestmark = pytest.mark.data


def test_cora(data_root):
    data = load_dataset("cora", root=data_root)
    assert (data.num_nodes, data.x.size(1), data.num_classes) == (2708, 1433, 7)
    assert data.edge_index.size(1) == 10556 and is_undirected(data.edge_index)
    assert homophily(data.edge_index, data.y) == pytest.approx(0.81, abs=0.005)
    assert data.x.dtype == torch.float32 and data.y.dtype == torch.int64
    public = make_split(data, "public", 0)
    assert (public.train.numel(), public.val.numel(), public.test.numel()) == (140, 500, 1000)
    geom = make_split(data, "geom", 0)
    assert (geom.train.numel(), geom.val.numel(), geom.test.numel()) == (1192, 796, 497)


def test_all_offline_sets_are_available(data_root):
    assert [n for n in REAL_DATASETS if not is_available(n, data_root)] == ["pubmed"]
    levels = [f"syn-cora-h{h}-r{r}" for h in ("0.00", "0.50", "1.00") for r in (1, 2, 3)]
    assert all(is_available(n, data_root) for n in levels)


def test_heterophilic_set_is_symmetrised_with_geom_splits(data_root):
    data = load_dataset("wisconsin", root=data_root)
    assert data.num_nodes == 251 and is_undirected(data.edge_index)
    split = make_split(data, "geom", 7)
    assert (split.train.numel(), split.val.numel(), split.test.numel()) != (0, 0, 0)
    assert "split 7 of 10" in split.notes[0]


def test_syn_cora_matches_published_homophily(data_root):
    data = load_dataset("syn-cora-h0.50-r1", root=data_root)
    assert (data.num_nodes, data.x.size(1), data.num_classes) == (1490, 1433, 5)
    assert homophily(data.edge_index, data.y) == pytest.approx(0.511, abs=0.001)


def test_stats_are_cached(data_root):
    first = dataset_stats("texas", data_root)
    assert first["source"] == "measured" and first["nodes"] == 183
    assert dataset_stats("texas", data_root) == first


def test_cli_json_with_shared_data(data_root, capsys):
    args = ["datasets", "--json", "--root", str(data_root), "cora", "texas", "syn-cora-h0.90-r2"]
    assert main(args) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    cora = rows["cora"]
    assert (cora["nodes"], cora["edges"], cora["features"], cora["classes"]) == (
        2708, 10556, 1433, 7)
    assert cora["homophily"] == pytest.approx(0.81, abs=0.005)
    assert rows["syn-cora-h0.90-r2"]["homophily"] == pytest.approx(0.9, abs=0.001)
    assert all(r["available"] and r["source"] == "measured" for r in rows.values())


def _load_cora(root, cache):
    import os

    os.environ["FRAMEKD_CACHE"] = cache
    return load_dataset("cora", root=root).num_nodes


def test_processes_loading_a_fresh_copy_at_once_all_succeed(data_root, tmp_path):
    """The first load processes the copy (PyG writes processed/*.pt); processes that load
    the same copy meanwhile once read half-written files (EOFError, zip errors)."""
    got = run_together(_load_cora, (str(data_root), str(tmp_path / "cache")), procs=4)
    assert got == [2708] * 4
