"""Teachers and students: shapes, gates, per-channel wiring, dense-oracle maths."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.utils import to_undirected

from framekd.data import csbm
from framekd.errors import ConfigError
from framekd.knowledge import graph_knowledge
from framekd.models import (
    FMLPO,
    FMLPS,
    GAT,
    GCN,
    MLP,
    GraphSAGE,
    SimplifiedFramelet,
    SparseInput,
    SpatialFramelet,
    StudentOutput,
    build_student,
    build_teacher,
)
from framekd.models.sparse_input import csr_rows
from helpers import bag_of_words, dense_gcn_adjacency, haar_framelet_operators


def ring_graph(n: int = 12, chords: int = 4, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    src = torch.arange(n)
    ring = torch.stack([src, (src + 1) % n])
    extra = torch.randint(0, n, (2, chords), generator=gen)
    extra = extra[:, extra[0] != extra[1]]
    return to_undirected(torch.cat([ring, extra], dim=1), num_nodes=n)


class DenseHaar:
    """Exact Haar framelets (Lev = 1) by eigendecomposition: an independent oracle transform."""

    channels = [(0, 1), (1, 1)]
    num_channels = 2

    dtype = torch.float32
    device = torch.device("cpu")

    def __init__(self, edge_index: torch.Tensor, n: int) -> None:
        self.num_nodes = n
        self.w = torch.from_numpy(haar_framelet_operators(edge_index, n)).float()

    def to(self, device):
        return self

    def apply(self, x):
        return self.w @ x

    def apply_each(self, xs):
        return self.w @ xs

    def reconstruct(self, ys):
        return (self.w @ ys).sum(0)


# --------------------------------------------------------------------------- teachers


def test_channel_count_follows_the_filter_bank():
    assert SpatialFramelet(3, 4, 2).num_channels == 2
    assert SpatialFramelet(3, 4, 2, filters="linear", levels=2).num_channels == 5
    assert SimplifiedFramelet(3, 2, filters="quadratic", levels=3).num_channels == 10
    with pytest.raises(ConfigError, match="unknown filter bank"):
        SpatialFramelet(3, 4, 2, filters="mexican-hat")


@pytest.mark.parametrize("epsilon", [0.0, 0.3])
def test_spatial_framelet_matches_dense_formula(epsilon):
    n, d = 12, 5
    edge_index = ring_graph(n)
    torch.manual_seed(0)
    x = torch.randn(n, d)
    transform = DenseHaar(edge_index, n)
    model = SpatialFramelet(d, 4, 3, num_layers=2, epsilon=epsilon, transform=transform)
    torch.nn.init.normal_(model.convs[0].bias)
    torch.nn.init.normal_(model.convs[1].bias)
    model.eval()
    out = model(x, edge_index)

    a_hat, d_inv = (torch.from_numpy(m).float() for m in dense_gcn_adjacency(edge_index, n))
    adjs = [a_hat - epsilon * d_inv, a_hat + epsilon * d_inv]
    w = transform.w
    h = x
    for conv in model.convs:
        h = (
            sum(w[c] @ torch.relu(adjs[c] @ w[c] @ h @ conv.weight[c]) for c in range(2))
            + conv.bias
        )
    assert out.shape == (n, 3)
    torch.testing.assert_close(out, h, rtol=1e-4, atol=1e-5)


def test_spatial_framelet_default_transform_and_cache():
    n = 14
    edge_index = ring_graph(n, seed=1)
    x = torch.randn(n, 6)
    model = SpatialFramelet(6, 8, 3, num_layers=3, dropout=0.5, filters="linear", levels=2)
    assert model.num_channels == 5
    out = model(x, edge_index)
    assert out.shape == (n, 3) and torch.isfinite(out).all()
    first = model.transform
    model(x, edge_index)
    assert model.transform is first  # cached like GCNConv(cached=True)
    smaller = ring_graph(n - 2, seed=2)
    assert model(x[: n - 2], smaller).shape == (n - 2, 3)
    assert model.transform is not first  # a different graph rebuilds the operators


def test_simplified_framelet_matches_dense_formula():
    n, d, ell, eps = 12, 4, 2, 0.2
    edge_index = ring_graph(n)
    torch.manual_seed(1)
    x = torch.randn(n, d)
    transform = DenseHaar(edge_index, n)
    model = SimplifiedFramelet(d, 3, num_layers=ell, epsilon=eps, transform=transform)
    torch.nn.init.normal_(model.bias)
    out = model(x, edge_index)

    a_hat, d_inv = (torch.from_numpy(m).float() for m in dense_gcn_adjacency(edge_index, n))
    w = transform.w
    expected = model.bias.detach().clone()
    for c, sign in enumerate((-1.0, 1.0)):
        k_c = w[c] @ (a_hat + sign * eps * d_inv) @ w[c]
        expected = expected + torch.linalg.matrix_power(k_c, ell) @ x @ model.weight[c].detach()
    torch.testing.assert_close(out.detach(), expected, rtol=1e-4, atol=1e-5)


def test_simplified_framelet_equals_its_features_knowledge():
    # Oracle: the precomputed features knowledge K_c^l X, then the linear model on it.
    data = csbm(num_nodes=120, num_classes=3, avg_degree=4.0, homophily=0.3, num_features=40,
                seed=3)
    x = data.x * (torch.rand(data.x.shape, generator=torch.Generator().manual_seed(0)) < 0.03)
    model = SimplifiedFramelet(40, 3, num_layers=3, epsilon=0.1)
    torch.nn.init.normal_(model.bias)
    model.eval()
    out = model(x, data.edge_index)
    assert model._sparse_input(x).layout == torch.sparse_csr  # the sparse path ran
    k = graph_knowledge(data.edge_index, 120, x, transform=model.transform, powers=3,
                        mode="features", epsilon=0.1)[:, -1]
    expected = torch.einsum("cnd,cde->ne", k, model.weight.detach()) + model.bias.detach()
    torch.testing.assert_close(out.detach(), expected, rtol=1e-4, atol=1e-5)


def test_simplified_framelet_input_dropout_sparse_and_dense():
    data = csbm(num_nodes=100, num_classes=3, avg_degree=4.0, homophily=0.7, num_features=30,
                seed=4)
    x = data.x * (torch.rand(data.x.shape, generator=torch.Generator().manual_seed(1)) < 0.04)
    outs = {}
    for density in (0.0, 0.05):
        torch.manual_seed(0)
        model = SimplifiedFramelet(30, 3, dropout=0.5, sparse_input=density)
        model.eval()
        outs[density] = model(x, data.edge_index)
        model.train()
        a, b = model(x, data.edge_index), model(x, data.edge_index)
        assert not torch.allclose(a, b)  # dropout draws a new mask per call
        a.sum().backward()
        assert model.weight.grad is not None and torch.isfinite(model.weight.grad).all()
    torch.testing.assert_close(outs[0.0], outs[0.05], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name,cls", [("gcn", GCN), ("sage", GraphSAGE), ("gat", GAT)])
def test_pyg_teachers_share_the_interface(name, cls):
    n = 10
    edge_index = ring_graph(n)
    x = torch.randn(n, 7)
    model = build_teacher(name, 7, 4, hidden_channels=16)
    assert isinstance(model, cls)
    out = model(x, edge_index)
    assert out.shape == (n, 4)
    model.reset_parameters()


def test_sparse_input_converts_only_mostly_zero_features():
    sparse_x, dense_x = bag_of_words(80, 200, 0.02), bag_of_words(80, 200, 0.5)
    convert = SparseInput(0.05)
    out = convert(sparse_x)
    assert out.layout == torch.sparse_csr
    torch.testing.assert_close(out.to_dense(), sparse_x, rtol=0, atol=0)
    assert convert(sparse_x) is out  # built once per tensor
    sparse_x[0, 0] = 7.0  # an in-place edit is seen
    assert convert(sparse_x).to_dense()[0, 0] == 7.0
    assert convert(dense_x) is dense_x
    query = sparse_x[:10].clone()  # a few rows stay dense: converting would cost more
    assert convert(query) is query
    assert SparseInput(0.0)(sparse_x) is sparse_x
    grad_x = sparse_x.clone().requires_grad_()
    assert convert(grad_x) is grad_x
    with pytest.raises(ConfigError, match="density"):
        SparseInput(1.5)


def test_csr_rows_equal_dense_row_indexing():
    x = bag_of_words(90, 40, 0.03, seed=5)
    x[3] = 0.0  # an empty row
    csr = SparseInput()(x)
    assert csr.layout == torch.sparse_csr
    for index in ([3, 0, 89, 3, 17], [], list(range(90))[::-1]):
        index = torch.tensor(index, dtype=torch.long)
        rows = csr_rows(csr, index)
        assert rows.layout == torch.sparse_csr and rows.shape == (len(index), 40)
        torch.testing.assert_close(rows.to_dense(), x[index], rtol=0, atol=0)
    # A model's rows(): CSR cut from one cached copy, or dense rows when x is not sparse.
    convert = SparseInput()
    index = torch.tensor([5, 1])
    torch.testing.assert_close(convert.rows(x, index).to_dense(), x[index], rtol=0, atol=0)
    dense_x = bag_of_words(90, 40, 0.5)
    assert convert.rows(dense_x, index).layout == torch.strided


@pytest.mark.parametrize("density", [0.02, 0.5])
def test_rows_decides_on_the_whole_features_once_while_batches_pass_through(density,
                                                                            monkeypatch):
    """Mini-batches (and blocked inference) cut rows and then call the model on them: the
    whole x's non-zeros are counted once, not once per batch."""
    x = bag_of_words(600, 40, density, seed=2)
    counted = []
    real = torch.count_nonzero
    monkeypatch.setattr(torch, "count_nonzero", lambda t: counted.append(t.numel()) or real(t))
    convert = SparseInput()
    for start in range(0, 600, 100):
        batch = convert.rows(x, torch.arange(start, start + 100))
        # exact: the rows are copied values, no arithmetic
        torch.testing.assert_close(batch.to_dense() if batch.is_sparse_csr else batch,
                                   x[start:start + 100], rtol=0, atol=0)
        convert(batch)
    assert counted.count(x.numel()) == 1
    convert(x)  # a call on the whole x takes rows()'s copy: one copy, one count
    assert counted.count(x.numel()) == 1


@pytest.mark.parametrize("name", ["spatial", "gcn"])
def test_sparse_input_gives_the_dense_logits_and_gradients(name):
    n, d = 80, 300
    edge_index = ring_graph(n, chords=30)
    x = bag_of_words(n, d, 0.03, seed=1)
    assert SparseInput()(x).layout == torch.sparse_csr  # the defaults take the sparse path
    torch.manual_seed(0)
    sparse = build_teacher(name, d, 4, hidden_channels=16, dropout=0.0)
    dense = build_teacher(name, d, 4, hidden_channels=16, dropout=0.0, sparse_input=0.0)
    dense.load_state_dict(sparse.state_dict())
    outs, grads = [], []
    for model in (sparse, dense):
        out = model(x, edge_index)
        out.square().sum().backward()
        outs.append(out.detach())
        grads.append([p.grad for p in model.parameters()])
    first = dict(sparse.named_parameters())
    assert first[next(iter(first))].grad is not None
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-5, atol=1e-5)
    for a, b in zip(grads[0], grads[1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_build_teacher_rejects_bad_names_and_options():
    with pytest.raises(ConfigError, match="unknown teacher"):
        build_teacher("transformer", 3, 2)
    with pytest.raises(ConfigError, match="bad option"):
        build_teacher("spatial", 3, 2, hiden_channels=4)
    with pytest.raises(ConfigError, match="divisible"):
        build_teacher("gat", 3, 2, hidden_channels=10, heads=4)
    assert isinstance(build_teacher("SpatUFG", 3, 2), SpatialFramelet)
    assert isinstance(build_teacher("simplified", 3, 2), SimplifiedFramelet)


def test_framelet_teacher_takes_its_settings_from_a_given_transform():
    n = 8
    edge_index = ring_graph(n, chords=0)
    model = SpatialFramelet(3, 4, 2, transform=DenseHaar(edge_index, n))
    assert model.num_channels == 2 and model.convs[0].weight.size(0) == 2
    with pytest.raises(ConfigError, match="framelet settings come from"):
        SpatialFramelet(3, 4, 2, filters="linear", transform=DenseHaar(edge_index, n))
    with pytest.raises(ConfigError, match="8 nodes"):
        model(torch.randn(n + 1, 3), ring_graph(n + 1, chords=0))


# --------------------------------------------------------------------------- students


def knowledge_batch(c=3, k=2, b=6, width=9, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(c, k, b, width, generator=gen), torch.randn(b, 5, generator=gen)


def test_mlp_shapes_and_no_gates():
    x = torch.randn(6, 5)
    out = MLP(5, 8, 3, num_layers=3, dropout=0.2)(x)
    assert isinstance(out, StudentOutput)
    assert out.logits.shape == (6, 3) and out.gates is None
    assert MLP(5, 8, 3, num_layers=1)(x, None).logits.shape == (6, 3)


def test_fmlps_shapes_and_gates_in_unit_interval():
    z, x = knowledge_batch()
    model = FMLPS(5, 8, 4, knowledge_channels=3, knowledge_width=9, dropout=0.1)
    logits, gates = model(x, z)
    assert logits.shape == (6, 4)
    assert gates.shape == (6, 3)
    assert ((gates >= 0) & (gates <= 1)).all()


@pytest.mark.parametrize("powers", [1, 2, 5])
def test_fmlpo_depth_follows_powers(powers):
    z, x = knowledge_batch(k=powers)
    model = FMLPO(5, 8, 4, knowledge_channels=3, knowledge_width=9, num_powers=powers)
    logits, gates = model(x, z)
    assert logits.shape == (6, 4)
    assert gates.shape == (powers, 6, 3)
    assert ((gates >= 0) & (gates <= 1)).all()
    assert len(model.hidden) == powers - 1  # no cap on the depth


@pytest.mark.parametrize("cls", ["fmlp-s", "fmlp-o"])
def test_every_channel_reaches_the_output(cls):
    """Each channel has its own encoder and classifier, and all of them get gradients."""
    z, x = knowledge_batch(c=4, k=3)
    model = build_student(cls, 5, 3, knowledge_shape=z.shape, hidden_channels=8)
    encoders = {id(m) for m in model.encoders}
    classifiers = {id(m) for m in model.classifiers}
    assert len(encoders) == 4 and len(classifiers) == 4
    model(x, z).logits.sum().backward()
    for mod in [*model.encoders, *model.classifiers]:
        assert mod.weight.grad is not None and mod.weight.grad.abs().sum() > 0
    # And the output depends on every channel's knowledge, high passes included.
    model.eval()
    with torch.no_grad():
        base = model(x, z).logits
        for c in range(4):
            z2 = z.clone()
            z2[c] += 1.0
            assert not torch.allclose(model(x, z2).logits, base)


def test_fmlps_uses_only_the_top_power():
    z, x = knowledge_batch(k=3)
    model = FMLPS(5, 8, 4, knowledge_channels=3, knowledge_width=9).eval()
    z2 = z.clone()
    z2[:, :-1] = torch.randn_like(z2[:, :-1])
    torch.testing.assert_close(model(x, z).logits, model(x, z2).logits)


def test_fmlps_gate_formula():
    """logits = Σ_c (1-α_c) Cls_c(E_c z_c) + α_c Cls_x(E_x x), α_c = σ(a_c[u_c ‖ u_x])."""
    z, x = knowledge_batch(c=2, k=1)
    model = FMLPS(5, 8, 4, knowledge_channels=2, knowledge_width=9).eval()
    u_x = model.feature_encoder(x)
    expected = 0
    for c in range(2):
        u_c = model.encoders[c](z[c, 0])
        alpha = torch.sigmoid(model.gates[c](torch.cat([u_c, u_x], -1)))
        expected = expected + (1 - alpha) * model.classifiers[c](u_c)
        expected = expected + alpha * model.feature_classifier(u_x)
    torch.testing.assert_close(model(x, z).logits, expected)


def _fmlpc_oracle(model, x, z):
    """The MLP on the explicit concatenation [x ‖ z_1^(1) ‖ … ‖ z_1^(K) ‖ z_2^(1) ‖ …]."""
    c, k = z.shape[:2]
    inputs = torch.cat([x, *(z[i, j] for i in range(c) for j in range(k))], dim=1)
    return model.lin2(torch.relu(model.lin1(inputs)))


def test_fmlpc_is_an_mlp_on_features_and_knowledge_side_by_side():
    z, x = knowledge_batch(c=3, k=2, width=9)
    model = build_student("fmlp-c", 5, 4, knowledge_shape=(3, 2, 50, 9), hidden_channels=8,
                          dropout=0.3).eval()
    out = model(x, z)
    assert out.gates is None and out.logits.shape == (6, 4)
    torch.testing.assert_close(out.logits, _fmlpc_oracle(model, x, z), rtol=1e-5, atol=1e-5)


def test_fmlpc_feature_dropout_drops_whole_feature_rows():
    """In training each node sees either all its features (scaled by 1/(1-p)) or none."""
    z, x = knowledge_batch(c=2, k=2, b=64, width=9)
    x = torch.randn(64, 5)
    model = build_student("fmlp-c", 5, 4, knowledge_shape=(2, 2, 64, 9), hidden_channels=8,
                          dropout=0.0, feature_dropout=0.5)
    torch.manual_seed(0)
    got = model(x, z).logits
    kept, dropped = _fmlpc_oracle(model, 2 * x, z), _fmlpc_oracle(model, 0 * x, z)
    is_kept = (got - kept).abs().amax(1) < 1e-5
    is_dropped = (got - dropped).abs().amax(1) < 1e-5
    assert (is_kept ^ is_dropped).all()  # every row one or the other
    assert 10 < int(is_dropped.sum()) < 54  # about half of 64
    model.eval()  # no feature dropout at evaluation
    torch.testing.assert_close(model(x, z).logits, _fmlpc_oracle(model, x, z))


def test_fmlpc_rejects_a_feature_dropout_outside_0_1():
    with pytest.raises(ConfigError, match="feature_dropout"):
        build_student("fmlp-c", 5, 4, knowledge_shape=(2, 2, 6, 9), feature_dropout=1.0)


def test_students_reject_mismatched_knowledge():
    z, x = knowledge_batch(c=3, k=2, width=9)
    model = FMLPO(5, 8, 4, knowledge_channels=3, knowledge_width=9, num_powers=3)
    with pytest.raises(ConfigError, match="K=3"):
        model(x, z)
    with pytest.raises(ConfigError, match="needs graph knowledge"):
        model(x, None)
    with pytest.raises(ConfigError, match="knowledge_shape"):
        build_student("fmlp-s", 5, 3)
    with pytest.raises(ConfigError, match="unknown student"):
        build_student("kan", 5, 3)
    assert isinstance(build_student("glnn", 5, 3), MLP)


@pytest.mark.parametrize("mode", ["rows", "sketch", "features"])
def test_students_accept_every_knowledge_mode(mode):
    n, d = 16, 6
    edge_index = ring_graph(n, seed=3)
    x = torch.randn(n, d)
    kn = graph_knowledge(
        edge_index, n, x if mode == "features" else None, powers=2, mode=mode, sketch_dim=8
    )
    width = {"rows": n, "sketch": 8, "features": d}[mode]
    assert kn.shape[2:] == (n, width)
    batch = torch.tensor([0, 3, 5, 9])
    for name in ("fmlp-s", "fmlp-o", "fmlp-c"):
        model = build_student(name, d, 3, knowledge_shape=kn.shape, hidden_channels=8)
        out = model(x[batch], kn[:, :, batch])
        assert out.logits.shape == (4, 3)


@pytest.mark.parametrize("name", ["mlp", "fmlp-s", "fmlp-o", "fmlp-c"])
def test_students_with_sparse_input_match_dense(name):
    b, d = 80, 300
    x = bag_of_words(b, d, 0.03, seed=2)
    assert SparseInput()(x).layout == torch.sparse_csr
    k, _ = knowledge_batch(c=2, k=2, b=b, width=9)
    torch.manual_seed(0)
    shape = tuple(k.shape)
    extra = {"feature_dropout": 0.0} if name == "fmlp-c" else {}
    sparse = build_student(name, d, 3, knowledge_shape=shape, dropout=0.0, **extra)
    dense = build_student(name, d, 3, knowledge_shape=shape, dropout=0.0, sparse_input=0.0,
                          **extra)
    dense.load_state_dict(sparse.state_dict())
    outs = []
    for model in (sparse, dense):
        out = model(x, k).logits
        out.square().sum().backward()
        outs.append(out.detach())
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-5, atol=1e-5)
    for p, q in zip(sparse.parameters(), dense.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-4)
