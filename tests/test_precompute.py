"""Faster teachers, same maths (issue 16, BENCHMARKS.md §10).

The framelet teachers' first layer can read products of the fixed input features computed
once (``precompute``), the spatial teacher projects before the synthesis in eval mode, the
synthesis runs Clenshaw's recurrence, and GCN multiplies by one CSR matrix instead of PyG's
scatter. Each path is compared with the other one (or PyG's own forward) in float64, in
train mode (same dropout seed), for the gradients and in eval mode: they agree to 1e-10
relative (sums are taken in another order, so never bitwise).
"""

from __future__ import annotations

import pytest
import torch
from torch_geometric.nn import models as pyg_models

from framekd.data.csbm import csbm
from framekd.errors import ConfigError
from framekd.framelets import FrameletOperator, framelet_operator
from framekd.models import build_teacher
from helpers import bag_of_words, dense_operators, random_graph, spy

TOL = {"rtol": 1e-10, "atol": 1e-10}


@pytest.fixture(scope="module")
def graph():
    data = csbm(num_nodes=120, num_classes=3, avg_degree=10, num_features=9, seed=3)
    return data.x.double(), data.edge_index


def _run(model, x, edge_index, forward=None):
    """Train-mode output (dropout seeded), parameter gradients and eval-mode output."""
    forward = forward or model
    model.zero_grad()
    model.train()
    torch.manual_seed(5)
    out = forward(x, edge_index)
    out.square().sum().backward()
    grads = torch.cat([p.grad.flatten() for p in model.parameters()])
    model.eval()
    with torch.no_grad():
        ev = forward(x, edge_index)
    return out.detach(), grads, ev


CASES = [
    ("spatial", {}),
    ("spatial", {"epsilon": 0.3, "framelet": {"levels": 2, "filters": "linear"}}),
    ("spectral", {"smooth": "none"}),
    ("spectral", {"smooth": "low", "epsilon": -0.2}),
    ("spectral", {"smooth": "all", "framelet": {"levels": 2}}),
    ("spectral", {"smooth": "learn", "epsilon": 0.1}),
]


@pytest.mark.parametrize(("name", "options"), CASES)
def test_precomputed_first_layer_equals_graph_products(graph, name, options):
    x, ei = graph
    runs = []
    for precompute in (False, True):
        torch.manual_seed(0)
        model = build_teacher(name, 9, 3, hidden_channels=8, dropout=0.5,
                              precompute=precompute, **options).double()
        runs.append(_run(model, x, ei))
    for got, want in zip(runs[1], runs[0], strict=True):
        torch.testing.assert_close(got, want, **TOL)


def test_spatial_eval_projects_before_the_synthesis(graph):
    """Eval mode: layer 2's Θ_c applied before layer 1's synthesis gives the layer-by-layer
    output (the conv modules called one after the other)."""
    x, ei = graph
    torch.manual_seed(0)
    model = build_teacher("spatial", 9, 3, hidden_channels=16, dropout=0.5,
                          precompute=False).double().eval()
    op = model.operator(x, ei)
    want = model.convs[1](model.convs[0](x, op), op)
    with torch.no_grad():
        torch.testing.assert_close(model(x, ei), want.detach(), **TOL)
    calls = []
    real = model.convs[1].project_synthesis
    model.convs[1].project_synthesis = lambda *a: calls.append(1) or real(*a)
    model(x, ei)
    assert calls == [1]
    model.train()
    model(x, ei)
    assert calls == [1], "train mode has dropout between the layers: no reordering"


def test_reconstruct_is_the_sum_of_dense_operators():
    """Clenshaw's synthesis equals Σ_c W_c y_c with the dense W_c (float64, several levels)."""
    ei, n = random_graph(1)
    op = framelet_operator(ei, n, {"levels": 3, "filters": "linear"}, dtype=torch.float64)
    w = dense_operators(op.transform)
    ys = torch.randn(op.num_channels, n, 4, dtype=torch.float64,
                     generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(op.transform.reconstruct(ys), (w @ ys).sum(0), **TOL)


def test_input_products_match_their_definition_and_are_kept():
    ei, n = random_graph(2)
    op = FrameletOperator(ei, n, {"levels": 2}, epsilon=0.2, dtype=torch.float64)
    x = torch.randn(n, 70, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    w = dense_operators(op.transform)
    aw = op.propagate(w @ x)
    want = {"W": w @ x, "AW": aw, "WW": w @ (w @ x), "WAW": w @ aw}
    for kind, value in want.items():
        torch.testing.assert_close(op.input_product(x, kind), value, **TOL)
    assert op.input_product(x, "WW") is op.input_product(x, "WW")
    x.mul_(2.0)  # edited in place: computed again
    torch.testing.assert_close(op.input_product(x, "W"), 2 * want["W"], **TOL)
    with pytest.raises(ConfigError, match="kind must be one of"):
        op.input_product(x, "AWA")


def test_auto_precomputes_dense_features_not_sparse_bag_of_words(monkeypatch):
    """``precompute=None``: dense features on a dense graph take the precomputed products;
    sparse bag-of-words features on a sparse graph keep the sparse path (cheaper there)."""
    calls = spy(monkeypatch, FrameletOperator, "input_product")
    dense = csbm(num_nodes=200, num_classes=3, avg_degree=40, num_features=16, seed=0)
    model = build_teacher("spectral", 16, 3, hidden_channels=8, smooth="all")
    model(dense.x, dense.edge_index)
    assert [c["kind"] for c in calls] == ["WAW"]
    calls.clear()
    sparse = csbm(num_nodes=400, num_classes=3, avg_degree=3, num_features=2000, seed=0)
    words = bag_of_words(400, 2000, 0.01)
    model = build_teacher("spectral", 2000, 3, hidden_channels=8, smooth="all")
    model(words, sparse.edge_index)
    assert calls == []


def test_features_that_need_gradients_are_not_precomputed(graph):
    x, ei = graph
    grads = []
    for precompute in (False, True):
        torch.manual_seed(0)
        model = build_teacher("spatial", 9, 3, hidden_channels=8, precompute=precompute).double()
        xg = x.clone().requires_grad_(True)
        model(xg, ei).sum().backward()
        grads.append(xg.grad)
    torch.testing.assert_close(grads[1], grads[0], **TOL)


@pytest.mark.parametrize("precompute", [None, True, False])
def test_gcn_csr_path_equals_pyg(graph, precompute):
    x, ei = graph
    torch.manual_seed(0)
    model = build_teacher("gcn", 9, 3, hidden_channels=8, dropout=0.5,
                          precompute=precompute).double()
    ours = _run(model, x, ei)
    pyg = _run(model, x, ei, forward=lambda a, b: pyg_models.GCN.forward(model, a, b))
    for got, want in zip(ours, pyg, strict=True):
        torch.testing.assert_close(got, want, **TOL)


def test_gcn_on_a_directed_graph_takes_pygs_path(graph):
    x, ei = graph
    directed = ei[:, ei[0] < ei[1]]  # one direction only: Â is not symmetric
    torch.manual_seed(0)
    model = build_teacher("gcn", 9, 3, hidden_channels=8).double().eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x, directed),
                                   pyg_models.GCN.forward(model, x, directed), **TOL)


def test_bad_precompute_value_is_rejected():
    with pytest.raises(ConfigError, match="precompute must be"):
        build_teacher("spatial", 4, 2, precompute="yes")
    with pytest.raises(ConfigError, match="precompute must be"):
        build_teacher("gcn", 4, 2, precompute=1)


def test_powers_of_wide_inputs_in_column_blocks():
    """Inputs wider than two blocks go through the powers block by block: same values."""
    from framekd.framelets.operator import INPUT_BLOCK

    ei, n = random_graph(4)
    op = FrameletOperator(ei, n, {"levels": 2}, epsilon=0.1, dtype=torch.float64)
    m = torch.randn(n, 2 * INPUT_BLOCK + 5, dtype=torch.float64,
                    generator=torch.Generator().manual_seed(2))
    blocked = list(op.powers(m, 2))
    for k, got in enumerate(blocked):
        want = torch.cat([list(op.powers(m[:, i:i + 3], 2))[k]
                          for i in range(0, m.size(1), 3)], -1)  # narrow: no blocking
        torch.testing.assert_close(got, want, **TOL)
