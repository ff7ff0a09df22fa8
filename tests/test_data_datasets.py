"""Named datasets without the real files: registry, names, roots, offline loading.

Tiny raw files in PyG's exact layouts (WebKB, syn-cora) stand in for the real data.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from framekd import ConfigError, DatasetNotFoundError
from framekd.data import (
    DATASETS,
    REAL_DATASETS,
    cache_root,
    data_root,
    is_available,
    load_dataset,
    resolve_name,
)
from framekd.splits import make_split


def _write_webkb(root, name="texas", n=12, num_classes=3):
    raw = root / "WebKB" / name / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = ["node_id\tfeature\tlabel"]
    for i in range(n):
        feats = ",".join(str(v) for v in rng.integers(0, 2, 5))
        lines.append(f"{i}\t{feats}\t{i % num_classes}")
    (raw / "out1_node_feature_label.txt").write_text("\n".join(lines) + "\n")
    edges = ["node_id\tnode_id"] + [f"{i}\t{(i + 1) % n}" for i in range(n)]
    (raw / "out1_graph_edges.txt").write_text("\n".join(edges) + "\n")
    for k in range(10):
        part = np.roll(np.arange(n) % 4, k)  # 0, 1 -> train, 2 -> val, 3 -> test
        np.savez(raw / f"{name}_split_0.6_0.2_{k}.npz", train_mask=part < 2,
                 val_mask=part == 2, test_mask=part == 3)
    return root


def _write_syn_cora(root, stem="h0.20-r2", n=10):
    raw = root / "syn-cora" / "raw"
    raw.mkdir(parents=True)
    adj = sp.csr_matrix((np.ones(n), (np.arange(n), (np.arange(n) + 1) % n)), shape=(n, n))
    attr = sp.csr_matrix(np.eye(n, 4))
    np.savez(raw / f"{stem}.npz", adj_data=adj.data, adj_indices=adj.indices,
             adj_indptr=adj.indptr, adj_shape=np.array(adj.shape), attr_data=attr.data,
             attr_indices=attr.indices, attr_indptr=attr.indptr,
             attr_shape=np.array(attr.shape), labels=np.arange(n) % 2,
             metadata="syn-cora:test")
    return root


def _files(root):
    return sorted(p.relative_to(root) for p in root.rglob("*"))


def test_registry_lists_every_dataset_of_the_issue():
    real = {"cora", "citeseer", "pubmed", "computers", "photo", "cs", "physics", "chameleon",
            "squirrel", "cornell", "texas", "wisconsin", "actor"}
    assert set(REAL_DATASETS) == real
    syn = [n for n in DATASETS if n.startswith("syn-cora")]
    assert len(syn) == 36 and "syn-cora-h0.99-r3" in syn and "syn-cora-h1.00-r1" in syn
    assert DATASETS["csbm"].kind == "synthetic"
    chameleon = DATASETS["chameleon"]
    assert chameleon.kind == "heterophilic" and "geom" in chameleon.protocols
    assert "public" in DATASETS["cora"].protocols and "public" not in DATASETS["photo"].protocols


def test_names_are_case_insensitive_and_levels_normalised():
    assert resolve_name("CiteSeer") == "citeseer"
    assert resolve_name("Syn-Cora-h0.5-r1") == "syn-cora-h0.50-r1"
    assert resolve_name("syn-cora-h1-r3") == "syn-cora-h1.00-r3"


def test_unknown_names_get_helpful_errors():
    with pytest.raises(ConfigError, match=r"unknown dataset 'coraa'. Did you mean cora"):
        resolve_name("coraa")
    with pytest.raises(ConfigError, match=r"syn-cora-h<level>-r<1\|2\|3>"):
        resolve_name("syn-cora-h0.55-r1")
    with pytest.raises(DatasetNotFoundError, match=r"needs the `ogb` package"):
        resolve_name("ogbn-arxiv")


def test_data_root_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("FRAMEKD_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("FRAMEKD_DATA", raising=False)
    assert data_root() == tmp_path / "cache" / "data"
    monkeypatch.setenv("FRAMEKD_DATA", str(tmp_path / "env"))
    assert data_root() == tmp_path / "env"
    assert data_root(tmp_path / "arg") == tmp_path / "arg"
    assert cache_root() == tmp_path / "cache"


def test_missing_dataset_names_dataset_folder_and_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("FRAMEKD_DATA", str(tmp_path))
    assert not is_available("cora")
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset("Cora")
    msg = str(err.value)
    assert "dataset 'cora'" in msg and str(tmp_path / "Planetoid" / "Cora") in msg
    assert "FRAMEKD_DATA" in msg and "never downloads" in msg


def test_pubmed_error_says_where_to_put_the_files(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"ind.pubmed.\* files .* Planetoid/PubMed/raw"):
        load_dataset("pubmed", root=tmp_path)


def test_named_datasets_take_no_options(tmp_path):
    with pytest.raises(ConfigError, match=r"'cora' takes no options, got seed"):
        load_dataset("cora", root=tmp_path, seed=1)


def test_webkb_layout_loads_offline_without_writing_to_the_data_root(tmp_path, monkeypatch):
    root = _write_webkb(tmp_path / "data")
    monkeypatch.setenv("FRAMEKD_CACHE", str(tmp_path / "cache"))
    before = _files(root)
    data = load_dataset("Texas", root=root)
    assert _files(root) == before  # PyG processed the cached copy, not the data root
    assert any((tmp_path / "cache").rglob("processed"))
    assert data.name == "texas" and data.num_nodes == 12
    assert data.edge_index.size(1) == 24  # the 12-cycle, symmetrised
    assert data.x.dtype == torch.float32 and data.y.dtype == torch.int64
    assert data.geom_train_mask.shape == (12, 10)
    split = make_split(data, "geom", seed=13)  # seed 13 -> shipped split 3
    part = np.roll(np.arange(12) % 4, 3)
    assert split.train.tolist() == np.flatnonzero(part < 2).tolist()
    assert split.test.tolist() == np.flatnonzero(part == 3).tolist()
    again = load_dataset("texas", root=root)  # second load reuses the processed copy
    torch.testing.assert_close(again.edge_index, data.edge_index, rtol=0, atol=0)  # integers


def test_incomplete_webkb_layout_is_not_downloaded(tmp_path):
    root = _write_webkb(tmp_path / "data", name="cornell")
    (root / "WebKB" / "cornell" / "raw" / "cornell_split_0.6_0.2_9.npz").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"1 raw file\(s\) missing .*split_0.6_0.2_9"):
        load_dataset("cornell", root=root)


def test_syn_cora_loader(tmp_path):
    root = _write_syn_cora(tmp_path)
    data = load_dataset("syn-cora-h0.2-r2", root=root)
    assert data.name == "syn-cora-h0.20-r2"
    assert data.num_nodes == 10 and data.edge_index.size(1) == 20
    assert data.x.shape == (10, 4) and data.x.dtype == torch.float32
    assert data.y.tolist() == [i % 2 for i in range(10)]
