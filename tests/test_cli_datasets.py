"""`framekd datasets`: table and JSON listing, single graphs, errors."""

from __future__ import annotations

import json

import pytest

from framekd.cli import main
from framekd.data import DATASETS, csbm, save_graph_dir

KEYS = {"name", "nodes", "edges", "features", "classes", "homophily", "available"}


def test_json_lists_every_dataset_with_static_stats_when_files_are_absent(tmp_path, capsys):
    assert main(["datasets", "--json", "--root", str(tmp_path)]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == list(DATASETS)
    assert all(KEYS <= set(r) for r in rows)
    cora = next(r for r in rows if r["name"] == "cora")
    assert cora["available"] is False and cora["source"] == "static" and cora["nodes"] == 2708
    generated = next(r for r in rows if r["name"] == "csbm")
    assert generated["available"] is True and generated["homophily"] == pytest.approx(0.8)


def test_table_output(tmp_path, capsys):
    assert main(["datasets", "--root", str(tmp_path), "csbm:n=200,h=0.3,seed=1"]) == 0
    out = capsys.readouterr().out
    header, row = out.splitlines()[:2]
    assert header.split()[:7] == ["name", "nodes", "edges", "features", "classes",
                                  "homophily", "available"]
    assert row.split()[:2] == ["csbm", "200"] and "0.3000" in row


def test_user_graph_directory_is_measured(tmp_path, capsys):
    data = csbm(num_nodes=50, num_classes=2, avg_degree=8.0, homophily=0.9, seed=0)
    save_graph_dir(data, tmp_path / "mygraph")
    assert main(["datasets", "--json", str(tmp_path / "mygraph")]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["name"] == "mygraph" and row["source"] == "user"
    assert (row["nodes"], row["edges"], row["classes"]) == (50, data.edge_index.size(1), 2)
    assert row["homophily"] == pytest.approx(0.9, abs=1e-4)


def test_unknown_name_exits_2(capsys):
    assert main(["datasets", "nosuchset"]) == 2
    assert "unknown dataset 'nosuchset'" in capsys.readouterr().err
