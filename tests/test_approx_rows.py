"""Approximate knowledge rows (``tol > 0``): the significant field is what its definition says
(a dense brute force), a tolerance below every walk weight gives the exact rows, the error
shrinks as the tolerance does, and bad tolerances are one clear error."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_geometric.utils import k_hop_subgraph

from framekd.data import csbm
from framekd.errors import ConfigError
from framekd.framelets import FrameletSpec, framelet_operator
from framekd.knowledge import KnowledgeSpec, graph_knowledge
from framekd.receptive import knowledge_rows, receptive_field, significant_nodes

F64 = torch.float64


@pytest.fixture(scope="module")
def graph():
    return csbm(num_nodes=300, num_classes=3, avg_degree=4.0, homophily=0.7, num_features=6,
                seed=3)


def _brute_force(edge_index, n, query, radius, tol):
    """The definition, densely: w_0 = e_i, w_h = prune(P w_{h-1}), P = D^-1/2 A D^-1/2."""
    a = np.zeros((n, n))
    a[edge_index[0].numpy(), edge_index[1].numpy()] = 1.0
    deg = a.sum(1)
    dinv = np.where(deg > 0, 1.0 / np.sqrt(np.maximum(deg, 1.0)), 0.0)
    p = dinv[:, None] * a * dinv[None, :]
    keep = np.zeros(n, dtype=bool)
    for i in query:
        w = np.zeros(n)
        w[i] = 1.0
        keep[i] = True
        for _ in range(radius):
            w = p @ w
            w[np.abs(w) < tol] = 0.0
            keep |= w != 0
    return np.flatnonzero(keep)


@pytest.mark.parametrize("tol", [0.02, 0.1, 0.3])
def test_significant_nodes_match_the_definition(graph, tol):
    query = [5, 17, 250, 17]  # a repeat
    got = significant_nodes(graph.edge_index, graph.num_nodes, torch.tensor(query), 6, tol)
    want = _brute_force(graph.edge_index, graph.num_nodes, query, 6, tol)
    assert got.tolist() == want.tolist()
    ball, _, _, _ = k_hop_subgraph(torch.tensor(query), 6, graph.edge_index,
                                   num_nodes=graph.num_nodes)
    assert set(got.tolist()) <= set(ball.tolist())  # never beyond the exact field


def test_zero_tolerance_is_the_exact_ball(graph):
    query = torch.tensor([5, 250])
    got = significant_nodes(graph.edge_index, graph.num_nodes, query, 4, 0.0)
    ball, _, _, _ = k_hop_subgraph(query, 4, graph.edge_index, num_nodes=graph.num_nodes)
    assert got.tolist() == ball.tolist()


def _setup(graph, order=4, powers=2):
    op = framelet_operator(graph.edge_index, graph.num_nodes, FrameletSpec(order=order),
                           dtype=F64)
    spec = KnowledgeSpec(mode="features", powers=powers)
    return op, spec, graph.x.to(F64)


@pytest.mark.parametrize("mode", ["features", "sketch"])
def test_a_tolerance_below_every_walk_weight_gives_the_exact_rows(graph, mode):
    op = framelet_operator(graph.edge_index, graph.num_nodes, FrameletSpec(order=2), dtype=F64)
    spec = KnowledgeSpec(mode=mode, powers=1, sketch_dim=8)
    x, nodes = graph.x.to(F64), torch.tensor([5, 17, 250])
    # Radius 3 and degrees far below 10^4: every walk weight exceeds 1e-12.
    full = graph_knowledge(graph.edge_index, graph.num_nodes, x, spec, operator=op)
    rows, field = knowledge_rows(graph.edge_index, graph.num_nodes, x, nodes, spec, operator=op,
                                 tol=1e-12, return_field=True)
    exact = receptive_field(graph.edge_index, graph.num_nodes, nodes, spec, operator=op)
    assert field.num_nodes == exact.num_nodes < graph.num_nodes and field.tol == 1e-12
    torch.testing.assert_close(rows, full[:, :, nodes], rtol=0, atol=1e-10)


def test_error_shrinks_with_the_tolerance_and_the_field_grows(graph):
    op, spec, x = _setup(graph)  # radius 2 * (2 * 3 + 1) = 14 hops: the whole component
    nodes = torch.tensor([5, 17, 250])
    full = graph_knowledge(graph.edge_index, graph.num_nodes, x, spec, operator=op)[:, :, nodes]
    errors, sizes = [], []
    for tol in (0.3, 0.1, 0.03, 0.01, 1e-3):
        rows, field = knowledge_rows(graph.edge_index, graph.num_nodes, x, nodes, spec,
                                     operator=op, tol=tol, return_field=True)
        errors.append(float((rows - full).norm() / full.norm()))
        sizes.append(field.num_nodes)
    assert sizes == sorted(sizes) and sizes[0] < 0.1 * graph.num_nodes
    assert errors == sorted(errors, reverse=True)
    # Measured 0.67 at tol 0.3 and 5.8e-4 at tol 1e-3 (float64, this graph).
    assert errors[0] > 0.1 and errors[-1] < 5e-3


@pytest.mark.parametrize("tol", [-0.1, 1.0, True, "0.1", float("nan")])
def test_bad_tolerance_is_a_config_error(graph, tol):
    op, spec, x = _setup(graph, order=2, powers=1)
    with pytest.raises(ConfigError, match="tol must be a number in"):
        knowledge_rows(graph.edge_index, graph.num_nodes, x, [1, 2], spec, operator=op, tol=tol)
    with pytest.raises(ConfigError, match="tol must be a number in"):
        receptive_field(graph.edge_index, graph.num_nodes, [1, 2], spec, operator=op, tol=tol)
