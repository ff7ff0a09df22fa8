"""Analysis maths against independent oracles (dense Laplacians, eigenvectors, definitions)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from framekd.analysis import (
    agreement,
    channel_reliance,
    curvature_summary,
    dirichlet_energy,
    gate_statistics,
    student_energies,
    teacher_energies,
)
from framekd.errors import ConfigError, GraphError
from framekd.models import SparseInput, build_student, build_teacher
from helpers import (
    bag_of_words,
    complete_pairs,
    cycle_pairs,
    dense_laplacian,
    random_knowledge,
    undirected_index,
)


def test_energy_matches_dense_trace(small_graph):
    # Add an isolated node: L_ii = 1 there and no NaN anywhere.
    n = small_graph.num_nodes + 1
    h = torch.randn(n, 5, generator=torch.Generator().manual_seed(0))
    lap = dense_laplacian(small_graph.edge_index, n)
    hd = h.double().numpy()
    expected = np.trace(hd.T @ lap @ hd) / (hd**2).sum()
    got = dirichlet_energy(h, small_graph.edge_index, n)
    assert got.dtype == torch.float64 and got.dim() == 0
    assert float(got) == pytest.approx(expected, rel=1e-10)


def test_energy_of_laplacian_eigenvectors_is_their_eigenvalue(small_graph):
    n = small_graph.num_nodes
    vals, vecs = np.linalg.eigh(dense_laplacian(small_graph.edge_index, n))
    stack = torch.from_numpy(vecs.T[:, :, None].copy())  # [N, N, 1]: one signal per eigenvector
    got = dirichlet_energy(stack, small_graph.edge_index).numpy()
    np.testing.assert_allclose(got, vals, atol=1e-9)
    assert got.min() >= -1e-9 and got.max() <= 2 + 1e-9


def test_constant_signal_on_regular_graph_has_zero_energy():
    ei = undirected_index(cycle_pairs(12))
    assert float(dirichlet_energy(torch.ones(12, 3), ei)) == pytest.approx(0.0, abs=1e-12)


def test_alternating_signal_on_bipartite_graph_has_energy_two():
    signs = torch.tensor([(-1.0) ** i for i in range(10)])[:, None]
    energy = dirichlet_energy(signs, undirected_index(cycle_pairs(10)))
    assert float(energy) == pytest.approx(2.0, abs=1e-12)


def test_stacked_energy_is_per_slice_and_zero_signal_is_nan(small_graph):
    ei = small_graph.edge_index
    xs = torch.randn(3, small_graph.num_nodes, 4, generator=torch.Generator().manual_seed(1))
    xs[2] = 0.0
    got = dirichlet_energy(xs, ei)
    assert got.shape == (3,)
    for c in range(2):
        assert float(got[c]) == pytest.approx(float(dirichlet_energy(xs[c], ei)), rel=1e-12)
    assert math.isnan(float(got[2]))
    with pytest.raises(GraphError, match="dirichlet_energy"):
        dirichlet_energy(torch.ones(5, 2), ei)


def test_agreement_identical_and_disjoint():
    logits = torch.randn(20, 4, generator=torch.Generator().manual_seed(0))
    same = agreement(logits, torch.log_softmax(logits, -1))
    assert same["agreement"] == 1.0
    assert same["kl"] == pytest.approx(0.0, abs=1e-12)
    other = torch.roll(torch.eye(4) * 10, 1, dims=1)[torch.arange(20) % 4]
    mine = (torch.eye(4) * 10)[torch.arange(20) % 4]
    assert agreement(mine, other)["agreement"] == 0.0


def test_agreement_kl_matches_definition():
    gen = torch.Generator().manual_seed(2)
    t, s = torch.randn(7, 3, generator=gen), torch.randn(7, 3, generator=gen)
    pt = np.exp(t.double().numpy())
    pt /= pt.sum(1, keepdims=True)
    ps = np.exp(s.double().numpy())
    ps /= ps.sum(1, keepdims=True)
    expected = float(np.mean(np.sum(pt * np.log(pt / ps), axis=1)))
    nodes = torch.tensor([0, 3, 5])
    sub = float(np.mean(np.sum(pt[[0, 3, 5]] * np.log(pt[[0, 3, 5]] / ps[[0, 3, 5]]), 1)))
    assert agreement(t, s)["kl"] == pytest.approx(expected, rel=1e-10)
    assert agreement(t, s, nodes)["kl"] == pytest.approx(sub, rel=1e-10)


def test_fmlps_reliance_zero_means_knowledge_is_ignored():
    torch.manual_seed(0)
    student = build_student("fmlp-s", 6, 3, knowledge_shape=(2, 2, 15, 5), hidden_channels=8)
    for gate in student.gates:  # alpha_c -> 1: the gate picks the feature branch
        torch.nn.init.zeros_(gate.weight)
        torch.nn.init.constant_(gate.bias, 50.0)
    student.eval()
    x = torch.randn(15, 6)
    out1 = student(x, random_knowledge(2, 2, 15, 5, 0))
    out2 = student(x, random_knowledge(2, 2, 15, 5, 1))
    rel = channel_reliance(out1.gates, "fmlp-s")
    assert float(rel.detach().max()) < 1e-6
    # 1 - sigmoid(50) ~ 2e-22 is the knowledge branch's whole weight: far below float32's
    # resolution of logits of size ~1, so the tolerance is a few float32 ulps.
    torch.testing.assert_close(out1.logits, out2.logits, rtol=1e-6, atol=1e-6)


def test_fmlpo_reliance_orientation():
    gates = torch.full((3, 4, 2), 0.9)
    rel = channel_reliance(gates, "fmlp-o")
    # 1 - 0.9 in float32 is 0.1 up to one ulp; 1e-6 states that.
    torch.testing.assert_close(rel[:2], torch.full((2, 4, 2), 0.9), rtol=0, atol=1e-6)
    torch.testing.assert_close(rel[2], torch.full((4, 2), 0.1), rtol=0, atol=1e-6)
    with pytest.raises(ConfigError):
        channel_reliance(torch.rand(4, 2), "fmlp-o")
    with pytest.raises(ConfigError):
        channel_reliance(torch.rand(4, 2), "mlp")


def test_gate_statistics_means():
    gates = torch.tensor([[0.2, 0.6], [0.4, 1.0]])
    stats = gate_statistics(gates, "fmlp-s", channels=[(0, 1), (1, 1)])
    (layer,) = stats["layers"]
    assert layer["layer"] == "output"
    low, high = layer["channels"]
    assert low["channel"] == "low pass" and high["channel"] == "high pass 1, level 1"
    assert low["alpha_mean"] == pytest.approx(0.3) and low["reliance_mean"] == pytest.approx(0.7)
    assert high["reliance_mean"] == pytest.approx(0.2)
    assert high["alpha_std"] == pytest.approx(0.2)
    sub = gate_statistics(gates, "fmlp-s", nodes=torch.tensor([1]))
    assert sub["layers"][0]["channels"][0]["alpha_mean"] == pytest.approx(0.4)


def test_teacher_energies_per_layer_and_channel(small_graph):
    torch.manual_seed(0)
    model = build_teacher("spatial", 8, 3, hidden_channels=6, num_layers=2)
    rep = teacher_energies(model, small_graph)
    assert [layer["layer"] for layer in rep["layers"]] == [1, 2]
    assert [c["channel"] for c in rep["layers"][0]["channels"]] == ["low pass",
                                                                    "high pass 1, level 1"]
    model.eval()
    logits = model(small_graph.x, small_graph.edge_index)
    expected = float(dirichlet_energy(logits, small_graph.edge_index))
    # Layer by layer against the teacher's fused eval path (float32, other sums): 1e-5.
    assert rep["logits"] == pytest.approx(expected, rel=1e-5)
    assert rep["layers"][-1]["output"] == pytest.approx(expected, rel=1e-5)
    assert rep["input"] == pytest.approx(
        float(dirichlet_energy(small_graph.x, small_graph.edge_index)), rel=1e-9)
    for layer in rep["layers"]:
        for ch in layer["channels"]:
            assert 0.0 <= ch["contribution"] <= 2.0 and 0.0 <= ch["coefficients"] <= 2.0


def test_teacher_energies_with_sparse_features():
    from framekd.data import csbm

    data = csbm(num_nodes=100, num_classes=3, avg_degree=4.0, homophily=0.7, num_features=8,
                seed=0)
    data.x = bag_of_words(data.num_nodes, 400, 0.02, seed=0)
    assert SparseInput()(data.x).layout == torch.sparse_csr
    torch.manual_seed(0)
    sparse = build_teacher("spatial", 400, 3, hidden_channels=6)
    dense = build_teacher("spatial", 400, 3, hidden_channels=6, sparse_input=0.0)
    dense.load_state_dict(sparse.state_dict())
    got, want = teacher_energies(sparse, data), teacher_energies(dense, data)
    first, expected = got["layers"][0]["channels"], want["layers"][0]["channels"]
    for a, b in zip(first, expected, strict=True):
        assert a["coefficients"] == pytest.approx(b["coefficients"], rel=1e-5)
        assert a["contribution"] == pytest.approx(b["contribution"], rel=1e-5)
    assert got["logits"] == pytest.approx(want["logits"], rel=1e-5)


def test_student_energies_are_those_of_the_encodings(small_graph):
    n = small_graph.num_nodes
    k = random_knowledge(2, 2, n, 5, 3)
    torch.manual_seed(0)
    fs = build_student("fmlp-s", 8, 3, knowledge_shape=tuple(k.shape), hidden_channels=4).eval()
    rep = student_energies(fs, small_graph.x, k, small_graph.edge_index, [(0, 1), (1, 1)])
    ei = small_graph.edge_index
    with torch.no_grad():
        u1 = fs.encoders[1](k[1, -1])
        ux = fs.feature_encoder(small_graph.x)
    assert rep["channels"][1]["channel"] == "high pass 1, level 1"
    assert rep["channels"][1]["powers"][2] == pytest.approx(float(dirichlet_energy(u1, ei)))
    assert rep["features"] == pytest.approx(float(dirichlet_energy(ux, ei)))
    fo = build_student("fmlp-o", 8, 3, knowledge_shape=tuple(k.shape), hidden_channels=4).eval()
    rep = student_energies(fo, small_graph.x, k, ei)
    with torch.no_grad():
        u0 = torch.relu(fo.encoders[0](k[0, 0]))
    assert sorted(rep["channels"][0]["powers"]) == [1, 2]
    assert rep["channels"][0]["powers"][1] == pytest.approx(float(dirichlet_energy(u0, ei)))
    assert len(rep["hidden"]) == 1


def test_curvature_summary_on_cycle_and_clique():
    n = 8
    rep = curvature_summary(undirected_index(cycle_pairs(n)), n)
    # A cycle longer than 5 has no triangles or 4-cycles: Ric = 2/2 + 2/2 - 2 = 0.
    assert rep["edges"] == n and rep["negative_edges"] == 0
    assert rep["curvature_mean"] == pytest.approx(0.0, abs=1e-12)
    assert rep["spectral_gap"] == pytest.approx(1 - math.cos(2 * math.pi / n), rel=1e-8)
    rep = curvature_summary(undirected_index(complete_pairs(5)), 5)
    assert rep["edges"] == 10 and rep["negative_edges"] == 0 and rep["curvature_min"] > 0
    # K_n: normalised Laplacian eigenvalues are n/(n-1).
    assert rep["spectral_gap"] == pytest.approx(5 / 4, rel=1e-8)
