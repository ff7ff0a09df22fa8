"""Graph knowledge: rows/sketch/features against dense oracles, budgets and the cache."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch_geometric.data import Data

import framekd.knowledge as kn
from framekd.errors import ConfigError, FramekdWarning, MemoryBudgetError
from framekd.framelets import FrameletTransform
from framekd.io import load_metadata, save_tensors
from framekd.knowledge import (
    KnowledgeTransform,
    cached_graph_knowledge,
    clear_sketch_cache,
    graph_knowledge,
    sketch_matrix,
)
from framekd.operators import gcn_adjacency
from helpers import (
    dense_gcn_adjacency,
    dense_operators,
    haar_framelet_operators,
    random_graph,
    spy,
)

F64 = torch.float64


def oracle_knowledge(edge_index, n, powers, epsilon):
    """K_c^k from a dense eigendecomposition, Haar, 1 level (independent of framekd)."""
    w = haar_framelet_operators(edge_index, n)
    a_hat, dt_inv = dense_gcn_adjacency(edge_index, n)
    adj = [a_hat - epsilon * dt_inv, a_hat + epsilon * dt_inv]
    k = [w[c] @ adj[c] @ w[c] for c in range(2)]
    return np.stack([[np.linalg.matrix_power(k[c], p) for p in range(1, powers + 1)]
                     for c in range(2)])


def test_gcn_adjacency_matches_definition_with_shift():
    ei, n = random_graph(0, sizes=(16, 10), isolated=2)
    a_hat, dt_inv = dense_gcn_adjacency(ei, n)
    expected = a_hat + 0.25 * dt_inv
    got = gcn_adjacency(ei, n, shift=0.25, dtype=F64)
    assert got.layout == torch.sparse_csr
    np.testing.assert_allclose(got.to_dense().numpy(), expected, atol=1e-14)
    assert got.to_dense()[n - 1, n - 1] == pytest.approx(1.25)  # isolated node: 1 + shift


@pytest.mark.parametrize("method", ["exact", "chebyshev"])
def test_rows_equal_dense_powers(method):
    ei, n = random_graph(1, sizes=(16, 10), isolated=2)
    t = FrameletTransform(ei, n, method=method, order=20, dtype=F64)
    rows = graph_knowledge(ei, n, transform=t, mode="rows", powers=3, epsilon=0.2, block_size=5)
    assert rows.shape == (2, 3, n, n)
    np.testing.assert_allclose(rows.numpy(), oracle_knowledge(ei, n, 3, 0.2), atol=1e-10)


def test_rows_equal_dense_powers_of_the_transforms_own_operators():
    ei, n = random_graph(2, sizes=(16, 10), isolated=2)
    t = FrameletTransform(ei, n, filters="linear", levels=2, dtype=F64)  # default order 8
    w = dense_operators(t)
    adj = gcn_adjacency(ei, n, dtype=F64).to_dense()
    rows = graph_knowledge(ei, n, transform=t, mode="rows", powers=2)
    for c in range(t.num_channels):
        k = w[c] @ adj @ w[c]
        torch.testing.assert_close(rows[c, 0], k, rtol=0, atol=1e-12)
        torch.testing.assert_close(rows[c, 1], k @ k, rtol=0, atol=1e-12)
        torch.testing.assert_close(rows[c, 1], rows[c, 1].T, rtol=0, atol=1e-12)


def test_features_equal_knowledge_times_x():
    ei, n = random_graph(3, sizes=(16, 10), isolated=2)
    t = FrameletTransform(ei, n, levels=2, dtype=F64)
    x = torch.randn(n, 5, generator=torch.Generator().manual_seed(0), dtype=F64)
    rows = graph_knowledge(ei, n, transform=t, mode="rows", powers=2, epsilon=0.1)
    feats = graph_knowledge(ei, n, x, transform=t, mode="features", powers=2, epsilon=0.1)
    assert feats.shape == (3, 2, n, 5)
    torch.testing.assert_close(feats, rows @ x, rtol=0, atol=1e-12)


def test_sketch_is_rows_times_the_seeded_sketch_matrix():
    ei, n = random_graph(4, sizes=(16, 10), isolated=2)
    t = FrameletTransform(ei, n, dtype=F64)
    rows = graph_knowledge(ei, n, transform=t, mode="rows")
    sk = graph_knowledge(ei, n, transform=t, mode="sketch", sketch_dim=24, seed=7, block_size=10)
    assert sk.shape == (2, 2, n, 24)
    torch.testing.assert_close(sk, rows @ sketch_matrix(n, 24, seed=7, dtype=F64), rtol=0,
                               atol=1e-12)
    # Another block size sums in another order: equal up to rounding, not bitwise (BLAS
    # kernels differ between CPUs).
    again = graph_knowledge(ei, n, transform=t, mode="sketch", sketch_dim=24, seed=7)
    torch.testing.assert_close(sk, again, rtol=0, atol=1e-12)
    other = graph_knowledge(ei, n, transform=t, mode="sketch", sketch_dim=24, seed=8)
    assert not torch.allclose(sk, other)


def test_sketch_preserves_inner_products_in_expectation():
    """E[S Sᵀ] = G Gᵀ for S = G R, E[R Rᵀ] = I.

    Averaging the Gram matrix over 64 seeds with m = 32 is an estimate from 2048
    Gaussian columns; its relative Frobenius error is about sqrt(2/2048) ≈ 0.03, so the
    tolerance 0.1 is about 3 standard deviations. One seed with m = 2048 keeps every
    squared row norm within 20% (χ²/m has std sqrt(2/m) ≈ 0.031; 0.2 is > 6 std).
    """
    ei, n = random_graph(5, sizes=(16, 10), isolated=2)
    t = FrameletTransform(ei, n, dtype=F64)
    g = graph_knowledge(ei, n, transform=t, mode="rows", powers=2)[:, 1]
    gram = g @ g.transpose(1, 2)
    mean = torch.zeros_like(gram)
    for seed in range(64):
        s = graph_knowledge(ei, n, transform=t, mode="sketch", sketch_dim=32, seed=seed)[:, 1]
        mean += s @ s.transpose(1, 2) / 64
    assert float((mean - gram).norm() / gram.norm()) < 0.1
    big = graph_knowledge(ei, n, transform=t, mode="sketch", sketch_dim=2048, seed=0)[:, 1]
    ratio = (big**2).sum(-1) / (g**2).sum(-1)
    assert float((ratio - 1).abs().max()) < 0.2


def test_knowledge_is_finite_on_isolated_and_single_nodes():
    empty = torch.empty(2, 0, dtype=torch.long)
    for n in (1, 4):
        out = graph_knowledge(empty, n, mode="rows", powers=2, epsilon=0.5)
        assert torch.isfinite(out).all()
    ei, n = random_graph(6, sizes=(16, 10), isolated=5)
    assert torch.isfinite(graph_knowledge(ei, n, mode="sketch", sketch_dim=8)).all()


def test_rows_refused_over_budget_naming_sketch():
    ei, n = random_graph(7, sizes=(16, 10), isolated=2)
    with pytest.raises(MemoryBudgetError, match="sketch") as info:
        graph_knowledge(ei, n, mode="rows", memory_budget=1000)
    assert "GiB" in str(info.value)
    # The estimate for PubMed-sized rows exceeds the default 4 GiB budget.
    assert kn.knowledge_memory(19717, 2, 2, 19717, torch.float32) > kn.DEFAULT_MEMORY_BUDGET


def test_invalid_requests_raise_config_error():
    ei, n = random_graph(8, sizes=(16, 10), isolated=2)
    with pytest.raises(ConfigError, match="mode"):
        graph_knowledge(ei, n, mode="dense")
    with pytest.raises(ConfigError, match="powers"):
        graph_knowledge(ei, n, powers=0)
    with pytest.raises(ConfigError, match="features"):
        graph_knowledge(ei, n, mode="features")
    with pytest.raises(ConfigError, match="nodes"):
        graph_knowledge(ei, n, transform=FrameletTransform(ei[:, :0], n + 1))


def test_default_transform_is_float32_haar():
    ei, n = random_graph(9, sizes=(16, 10), isolated=2)
    out = graph_knowledge(ei, n, sketch_dim=16)
    assert out.dtype == torch.float32 and out.shape == (2, 2, n, 16)
    ref = graph_knowledge(ei, n, sketch_dim=16, dtype=F64)
    torch.testing.assert_close(out.double(), ref, atol=1e-5, rtol=1e-4)


# ----------------------------------------------------------------------------- cache


def test_cache_round_trip_and_key(tmp_path, monkeypatch):
    calls = spy(monkeypatch, kn, "graph_knowledge")
    ei, n = random_graph(10, sizes=(16, 10), isolated=2)
    opts = {"framelet": {"levels": 2}, "sketch_dim": 8, "cache_dir": tmp_path}
    first = cached_graph_knowledge(ei, n, **opts)
    files = list(tmp_path.glob("knowledge-*.safetensors"))
    assert len(files) == 1 and len(calls) == 1
    second = cached_graph_knowledge(ei, n, **opts)
    # exact: the second is the file read back
    assert len(calls) == 1 and torch.equal(first, second)
    meta = load_metadata(files[0])
    assert meta["shape"] == f"[3, 2, {n}, 8]"
    # A different seed, mode or framelet config is a different file.
    cached_graph_knowledge(ei, n, **{**opts, "seed": 1})
    cached_graph_knowledge(ei, n, **{**opts, "framelet": {"levels": 1}})
    assert len(list(tmp_path.glob("knowledge-*.safetensors"))) == 3 and len(calls) == 3
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporary behind


def test_corrupt_cache_file_is_rebuilt(tmp_path, monkeypatch):
    ei, n = random_graph(11, sizes=(16, 10), isolated=2)
    fresh = cached_graph_knowledge(ei, n, cache_dir=tmp_path, sketch_dim=8)
    (path,) = tmp_path.glob("knowledge-*.safetensors")
    path.write_bytes(path.read_bytes()[:50])  # truncated
    calls = spy(monkeypatch, kn, "graph_knowledge")
    with pytest.warns(FramekdWarning, match="unusable"):
        rebuilt = cached_graph_knowledge(ei, n, cache_dir=tmp_path, sketch_dim=8)
    # exact: the same computation on the same input and block size runs twice, then a file read
    assert len(calls) == 1 and torch.equal(rebuilt, fresh)
    reread = cached_graph_knowledge(ei, n, cache_dir=tmp_path, sketch_dim=8)
    assert torch.equal(reread, fresh)  # exact: the file written above, read back
    assert len(calls) == 1


def test_tampered_cache_contents_fail_the_checksum(tmp_path):
    ei, n = random_graph(12, sizes=(16, 10), isolated=2)
    fresh = cached_graph_knowledge(ei, n, cache_dir=tmp_path, sketch_dim=8)
    (path,) = tmp_path.glob("knowledge-*.safetensors")
    save_tensors(path, {"knowledge": fresh + 1.0}, load_metadata(path))  # valid file, wrong data
    with pytest.warns(FramekdWarning, match="checksum"):
        again = cached_graph_knowledge(ei, n, cache_dir=tmp_path, sketch_dim=8)
    assert torch.equal(again, fresh)  # exact: the same computation recomputed, same code path


def test_knowledge_transform_attaches_knowledge(tmp_path):
    ei, n = random_graph(13, sizes=(16, 10), isolated=2)
    x = torch.randn(n, 3, generator=torch.Generator().manual_seed(0))
    data = Data(x=x, edge_index=ei, num_nodes=n)
    out = KnowledgeTransform(mode="features", powers=3, cache_dir=tmp_path, levels=2)(data)
    assert "knowledge" not in data  # BaseTransform works on a copy
    assert out.knowledge.shape == (3, 3, n, 3)
    assert out.knowledge_channels == [(0, 2), (1, 1), (1, 2)]
    t = FrameletTransform(ei, n, levels=2)
    torch.testing.assert_close(
        out.knowledge, graph_knowledge(ei, n, x, transform=t, mode="features", powers=3)
    )
    with pytest.raises(ConfigError, match="data.x"):
        KnowledgeTransform(mode="features")(Data(edge_index=ei, num_nodes=n))
    with pytest.raises(ConfigError, match="scale"):
        KnowledgeTransform(scale=1.0)
    assert "sketch" in repr(KnowledgeTransform())


@pytest.mark.data
def test_cora_sketch_knowledge_matches_features_mode():
    root = os.environ.get("FRAMEKD_DATA")
    if not root or not (Path(root) / "Planetoid" / "Cora" / "raw").is_dir():
        pytest.skip("FRAMEKD_DATA is unset or has no Planetoid/Cora/raw (real-data test)")
    load_dataset = pytest.importorskip("framekd.data").load_dataset
    data = load_dataset("cora", root=root)
    n = data.num_nodes
    t = FrameletTransform(data.edge_index, n)
    sk = graph_knowledge(data.edge_index, n, transform=t, sketch_dim=64)
    r = sketch_matrix(n, 64)
    feats = graph_knowledge(data.edge_index, n, r, transform=t, mode="features")
    assert sk.shape == (2, 2, n, 64) and torch.isfinite(sk).all()
    torch.testing.assert_close(sk, feats)
    assert t.frame_error() < 1e-3


@pytest.mark.parametrize("m", [7, 16, 24])
def test_sketch_rows_do_not_depend_on_the_node_count(m):
    # Appending nodes (framekd predict on a grown graph) must leave the old rows alone.
    # Each draw fresh (no cached sketch): the generator itself must give the same prefix.
    clear_sketch_cache()
    small = sketch_matrix(97, m, seed=3)
    clear_sketch_cache()
    grown = sketch_matrix(300, m, seed=3)
    assert torch.equal(small, grown[:97])  # exact: the same draws from the same generator
    clear_sketch_cache()
    assert not torch.equal(grown[97:110], sketch_matrix(110, m, seed=4)[97:])


def test_cached_sketch_gives_the_fresh_draw_and_callers_own_their_copy():
    clear_sketch_cache()
    first = sketch_matrix(300, 8, seed=5)
    first[0] = 0.0  # a caller's in-place change must not reach the cache
    cached = sketch_matrix(300, 8, seed=5)
    clear_sketch_cache()
    want = sketch_matrix(300, 8, seed=5)  # a fresh draw
    assert torch.equal(cached, want) and want[0].abs().sum() > 0
    assert torch.equal(sketch_matrix(40, 8, seed=5), want[:40])  # served from the cache
    rows = torch.tensor([299, 3, 3, 120])
    assert torch.equal(sketch_matrix(300, 8, seed=5, rows=rows), want[rows])
    assert torch.equal(sketch_matrix(300, 8, seed=5, dtype=torch.float64, rows=rows),
                       want[rows].double())
