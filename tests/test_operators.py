"""The operator layer: Â_c against its definition, the knowledge operator shared by teachers
and knowledge, and the operator cache keyed by the graph (not its size)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from framekd.errors import ConfigError, GraphError
from framekd.framelets import (
    FrameletOperator,
    FrameletSpec,
    FrameletTransform,
    clear_operator_cache,
    framelet_operator,
)
from framekd.knowledge import graph_knowledge
from framekd.models import SimplifiedFramelet, SpatialFramelet
from framekd.operators import ChannelPropagation, spectral_gap
from helpers import dense_gcn_adjacency, haar_framelet_operators, random_graph

F64 = torch.float64


def test_channel_propagation_matches_the_energy_perturbed_definition():
    ei, n = random_graph(0)
    a_hat, d_inv = dense_gcn_adjacency(ei, n)
    prop = ChannelPropagation(ei, n, num_channels=3, epsilon=0.3, dtype=F64)
    z = torch.randn(3, n, 4, dtype=F64, generator=torch.Generator().manual_seed(1))
    expected = np.stack([(a_hat + s * 0.3 * d_inv) @ z[c].numpy()
                         for c, s in enumerate((-1.0, 1.0, 1.0))])
    np.testing.assert_allclose(prop(z).numpy(), expected, atol=1e-12)
    assert prop.state_dict() == {}  # operators are not parameters


def test_knowledge_operator_matches_dense_haar_oracle():
    ei, n = random_graph(2)
    w = haar_framelet_operators(ei, n)
    a_hat, d_inv = dense_gcn_adjacency(ei, n)
    op = FrameletOperator(ei, n, FrameletSpec(method="exact"), epsilon=0.2, dtype=F64)
    x = torch.randn(n, 3, dtype=F64, generator=torch.Generator().manual_seed(0))
    k = [w[c] @ (a_hat + s * 0.2 * d_inv) @ w[c] for c, s in enumerate((-1.0, 1.0))]
    got = list(op.powers(x, 2))
    for c in range(2):
        np.testing.assert_allclose(got[0][c].numpy(), k[c] @ x.numpy(), atol=1e-10)
        np.testing.assert_allclose(got[1][c].numpy(), k[c] @ k[c] @ x.numpy(), atol=1e-10)
    torch.testing.assert_close(op.power(x, 2), got[1], rtol=0, atol=0)


def test_transform_is_a_module_whose_buffers_move_and_stay_out_of_state_dict():
    ei, n = random_graph(3)
    t = FrameletTransform(ei, n, levels=2)
    assert t.state_dict() == {} and list(t.parameters()) == []
    assert t.to(F64) is t and t.dtype == F64
    x = torch.randn(n, 2, dtype=F64)
    torch.testing.assert_close(t.reconstruct(t(x)), x, rtol=0, atol=1e-5)
    assert "levels=2" in repr(t)


def test_operator_cache_is_keyed_by_the_graph_not_its_size():
    clear_operator_cache()
    n = 12
    ring = torch.tensor([[i, (i + 1) % n] for i in range(n)]).t()
    ring = torch.cat([ring, ring.flip(0)], 1)
    chords = torch.tensor([[i, (i + 5) % n] for i in range(n)]).t()
    chords = torch.cat([chords, chords.flip(0)], 1)
    assert ring.shape == chords.shape  # same node and edge counts, different graphs
    a = framelet_operator(ring, n)
    assert framelet_operator(ring[:, torch.randperm(ring.size(1))], n) is a  # edge order
    assert framelet_operator(chords, n) is not a
    assert framelet_operator(ring, n, epsilon=0.1).transform is a.transform  # one λ_max
    assert framelet_operator(ring, n, {"levels": 2}) is not a


def test_a_teacher_follows_a_new_graph_of_the_same_size():
    """The old cache was keyed on (num_nodes, num_edges): a same-size graph reused stale
    operators. Now the model binds the operator of the graph it is called with."""
    n = 12
    ring = torch.tensor([[i, (i + 1) % n] for i in range(n)]).t()
    ring = torch.cat([ring, ring.flip(0)], 1)
    chords = torch.tensor([[i, (i + 5) % n] for i in range(n)]).t()
    chords = torch.cat([chords, chords.flip(0)], 1)
    torch.manual_seed(0)
    model = SpatialFramelet(4, 8, 3).eval()
    x = torch.randn(n, 4)
    out_ring, out_chords = model(x, ring), model(x, chords)
    fresh = SpatialFramelet(4, 8, 3).eval()
    fresh.load_state_dict(model.state_dict())
    torch.testing.assert_close(out_chords, fresh(x, chords), rtol=0, atol=1e-6)
    assert not torch.allclose(out_ring, out_chords)


def test_simplified_teacher_is_the_knowledge_operator_applied_to_its_projections():
    ei, n = random_graph(4)
    x = torch.randn(n, 5, generator=torch.Generator().manual_seed(2))
    model = SimplifiedFramelet(5, 3, num_layers=3, epsilon=0.1, levels=2).eval()
    op = model.operator(x, ei)
    feats = graph_knowledge(ei, n, x, operator=op, mode="features", powers=3)  # K_c^3 X
    expected = torch.einsum("cnd,cde->ne", feats[:, 2], model.weight) + model.bias
    torch.testing.assert_close(model(x, ei), expected, rtol=1e-4, atol=1e-5)


def test_operator_rejects_bad_graphs_and_settings():
    with pytest.raises(GraphError, match="symmetric"):
        FrameletTransform(torch.tensor([[0], [1]]), 2)
    with pytest.raises(ConfigError, match="scale"):
        FrameletSpec(scale=1.0)
    with pytest.raises(ConfigError, match="unknown framelet option"):
        FrameletSpec.coerce({"level": 2})
    ei, n = random_graph(5)
    with pytest.raises(ConfigError, match="nodes"):
        graph_knowledge(ei, n + 1, operator=framelet_operator(ei, n))


def test_spectral_gap_of_a_cycle_matches_the_closed_form():
    n = 10
    ring = torch.tensor([[i, (i + 1) % n] for i in range(n)]).t()
    ring = torch.cat([ring, ring.flip(0)], 1)
    assert spectral_gap(ring, n) == pytest.approx(1 - np.cos(2 * np.pi / n), abs=1e-10)


@pytest.mark.parametrize("name", ["spectral", "spatial", "simplified", "gcn", "sage", "gat"])
def test_a_teacher_bound_to_its_graph_can_be_deep_copied(name):
    """torch cannot deep-copy sparse CSR tensors; the modules holding them copy their own
    (a snapshot of a model, a cached CPU operator copied for a GPU)."""
    from framekd.models import build_teacher

    ei, n = random_graph(5)
    x = torch.randn(n, 4, generator=torch.Generator().manual_seed(3))
    model = build_teacher(name, 4, 3).eval()
    out = model(x, ei)
    twin = copy.deepcopy(model)
    torch.testing.assert_close(twin(x, ei), out, rtol=0, atol=1e-6)


def test_deep_copies_of_sparse_operators_share_no_memory():
    ei, n = random_graph(6)
    for module, z in ((FrameletTransform(ei, n), torch.randn(n, 2)),
                      (ChannelPropagation(ei, n, 3, epsilon=0.2), torch.randn(3, n, 2))):
        twin = copy.deepcopy(module)
        torch.testing.assert_close(twin(z), module(z), rtol=0, atol=0)
        for name, buf in module.named_buffers():
            other = dict(twin.named_buffers())[name]
            if buf.layout == torch.sparse_csr:
                buf, other = buf.values(), other.values()
            assert other.data_ptr() != buf.data_ptr()
