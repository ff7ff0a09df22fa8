"""The shared test oracles and factories (``tests/helpers.py``) against their definitions.

They stand behind other tests' expected values, so they are checked on their own,
without framekd.
"""

from __future__ import annotations

import types

import numpy as np
import pytest

from helpers import (
    complete_pairs,
    dense_gcn_adjacency,
    dense_laplacian,
    haar_framelet_operators,
    random_graph,
    spy,
    undirected_index,
)


def test_random_graph_is_canonical_with_isolated_nodes_last():
    ei, n = random_graph(0, sizes=(6, 5), isolated=2)
    assert n == 13
    pairs = set(map(tuple, ei.t().tolist()))
    assert all((b, a) in pairs for a, b in pairs) and all(a != b for a, b in pairs)
    assert [tuple(e) for e in ei.t().tolist()] == sorted(pairs)  # coalesced: sorted, unique
    assert not {11, 12} & set(ei.flatten().tolist())


def test_laplacian_spectrum_and_isolated_nodes():
    ei, n = random_graph(1)
    lap = dense_laplacian(ei, n)
    lam = np.linalg.eigvalsh(lap)
    assert lam.min() > -1e-12 and lam.max() < 2 + 1e-12
    np.testing.assert_array_equal(lap[-3:, -3:], np.eye(3))  # the 3 isolated nodes
    # K_n: eigenvalues 0 and n/(n-1) (n-1 times).
    k5 = np.linalg.eigvalsh(dense_laplacian(undirected_index(complete_pairs(5)), 5))
    np.testing.assert_allclose(k5, [0] + [5 / 4] * 4, atol=1e-12)


@pytest.mark.parametrize("levels", [1, 2, 3])
def test_haar_oracle_is_a_tight_frame_of_symmetric_operators(levels):
    ei, n = random_graph(2)
    w = haar_framelet_operators(ei, n, levels=levels)
    assert w.shape == (levels + 1, n, n)
    np.testing.assert_allclose(w, w.transpose(0, 2, 1), atol=1e-12)
    np.testing.assert_allclose(np.einsum("cij,cik->jk", w, w), np.eye(n), atol=1e-12)


def test_gcn_adjacency_rows_of_isolated_nodes():
    ei, n = random_graph(3, sizes=(5,), isolated=1)
    a_hat, d_inv = dense_gcn_adjacency(ei, n)
    np.testing.assert_allclose(a_hat, a_hat.T, atol=0)
    assert a_hat[-1, -1] == 1.0 and d_inv[-1, -1] == 1.0


def test_spy_records_named_arguments_and_passes_through(monkeypatch):
    owner = types.SimpleNamespace(f=lambda a, b=2, *, c=3: a + b + c)
    calls = spy(monkeypatch, owner, "f")
    assert owner.f(1, c=10) == 13
    assert calls == [{"a": 1, "b": 2, "c": 10}]
