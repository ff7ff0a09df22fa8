"""New-node queries (``framekd bench speed --query new``) and the students' eval path.

The receptive-field answers must equal the whole grown graph's: the students' knowledge rows
of the appended nodes against a full recomputation, every teacher's logits on its subgraph
against its full-graph logits (which proves :func:`teacher_radius` is large enough; the
features at exactly that distance move the output, so it is not larger than needed). The
graph is a long ring lattice with irregular degrees, so that every receptive field is a
strict part of it. Float32 throughout; the tolerances
(1e-5) are float rounding of sums taken in another order.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch_geometric.data import Data
from torch_geometric.utils import coalesce

from framekd.cli import main
from framekd.errors import ConfigError
from framekd.framelets import FrameletSpec
from framekd.knowledge import KnowledgeSpec, graph_knowledge
from framekd.models import FMLPO, FMLPS, MLP, build_teacher
from framekd.newnodes import (
    append_copies,
    original_ids,
    student_rows,
    teacher_on_subgraph,
    teacher_radius,
)
from framekd.operators import estimate_lambda_max
from framekd.receptive import knowledge_radius, receptive_field

ATOL = 1e-5
N, D, CLASSES = 400, 6, 3
# Haar, one level, Chebyshev order 2: W_c has degree 1, so a 2-layer spatial teacher reaches
# 2 (2 + 1) = 6 hops and the 2-power knowledge 6 hops; the lattice's diameter is ~170.
FRAMELET = FrameletSpec(order=2)


def lattice() -> Data:
    """Ring of N nodes with a chord (i, i+2) at every 3rd node: degrees 2 to 4 (low degrees
    keep the farthest hop's share of the output well above float rounding)."""
    pairs = [(i, (i + 1) % N) for i in range(N)] + [(i, (i + 2) % N) for i in range(0, N, 3)]
    ei = torch.tensor(pairs).t()
    ei = coalesce(torch.cat([ei, ei.flip(0)], 1), num_nodes=N)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(N, D, generator=gen)
    y = torch.randint(0, CLASSES, (N,), generator=gen)
    return Data(x=x, edge_index=ei, y=y, num_nodes=N)


@pytest.fixture(scope="module")
def grown():
    data = lattice()
    big, source = append_copies(data, 4, seed=3)
    lam = estimate_lambda_max(data.edge_index, N)  # the training graph's, kept for new nodes
    return data, big, source, lam


def test_append_copies_twins_the_source_nodes(grown):
    data, big, source, _ = grown
    assert big.num_nodes == N + 4 and source.unique().numel() == 4
    # exact: copied rows, no arithmetic
    torch.testing.assert_close(big.x[N:], data.x[source], rtol=0, atol=0)
    old = big.edge_index[:, (big.edge_index < N).all(0)]
    assert torch.equal(old, data.edge_index)  # exact: integer ids, canonical order kept
    for j, s in enumerate(source.tolist()):
        mine = big.edge_index[1, big.edge_index[0] == N + j].sort().values
        theirs = data.edge_index[1, data.edge_index[0] == s].sort().values
        assert torch.equal(mine, theirs)  # exact: integer ids
    flipped = coalesce(big.edge_index.flip(0), num_nodes=big.num_nodes)
    assert torch.equal(flipped, big.edge_index)  # exact: integer ids (symmetric)
    assert torch.equal(original_ids(torch.tensor([0, N + 2]), N, source),
                       torch.tensor([0, int(source[2])]))  # exact: integer ids


@pytest.mark.parametrize("mode", ["sketch", "features"])
def test_new_nodes_knowledge_rows_equal_a_full_recomputation(grown, mode):
    _, big, _, lam = grown
    spec = KnowledgeSpec(mode=mode, powers=2, sketch_dim=8)
    fspec = replace(FRAMELET, lambda_max=lam)
    new = torch.arange(N, N + 4)
    field = receptive_field(big.edge_index, big.num_nodes, new, spec, framelet=fspec)
    assert field.radius == knowledge_radius(fspec, 2) == 6
    assert field.num_nodes < big.num_nodes / 2  # a strict part of the graph: a real test
    rows = student_rows(big, new, spec, fspec, epsilon=0.1, lambda_max=lam,
                        dtype=torch.float32)
    full = graph_knowledge(big.edge_index, big.num_nodes, big.x, spec, framelet=fspec,
                           epsilon=0.1)
    torch.testing.assert_close(rows, full[:, :, new], rtol=0, atol=ATOL)


TEACHERS = [
    ("spatial", {"hidden_channels": 8, "epsilon": 0.1}, 6),
    ("simplified", {"num_layers": 2, "epsilon": 0.1}, 6),
    ("spectral", {"hidden_channels": 8, "smooth": "none"}, 4),
    ("spectral", {"hidden_channels": 8, "smooth": "low", "epsilon": 0.1}, 6),
    ("spectral", {"hidden_channels": 8, "smooth": "learn"}, 6),
    ("gcn", {"hidden_channels": 8}, 2),
    ("sage", {"hidden_channels": 8}, 2),
    ("gat", {"hidden_channels": 8, "heads": 2}, 2),
]


@pytest.mark.parametrize(("name", "options", "radius"), TEACHERS,
                         ids=[f"{n}-{o.get('smooth', '')}" for n, o, _ in TEACHERS])
def test_teacher_on_its_subgraph_equals_the_full_graph(grown, name, options, radius):
    _, big, _, lam = grown
    torch.manual_seed(0)
    framelet = {"framelet": replace(FRAMELET, lambda_max=lam)} \
        if name in ("spatial", "simplified", "spectral") else {}
    model = build_teacher(name, D, CLASSES, dropout=0.0, **options, **framelet).eval()
    if name == "spectral":  # move the band gains off the identity, so the bands differ
        with torch.no_grad():
            for conv in model.convs:
                conv.band.normal_(0.0, 0.5)
    assert teacher_radius(model) == radius
    new = torch.arange(N, N + 4)
    with torch.no_grad():
        full = model(big.x, big.edge_index)[new]
        sub, size = teacher_on_subgraph(model, big.edge_index, big.num_nodes, new,
                                        lambda s: big.x[s], radius=radius)
    assert size < big.num_nodes / 2
    torch.testing.assert_close(sub, full, rtol=0, atol=ATOL)
    # r is not larger than needed: the features at distance exactly r move the output.
    from torch_geometric.utils import k_hop_subgraph

    inner = k_hop_subgraph(new, radius - 1, big.edge_index, num_nodes=big.num_nodes)[0]
    ring = k_hop_subgraph(new, radius, big.edge_index, num_nodes=big.num_nodes)[0]
    ring = ring[~torch.isin(ring, inner)]
    x2 = big.x.clone()
    x2[ring] += 100.0 * torch.randn(ring.numel(), D, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        moved = model(x2, big.edge_index)[new]
    assert (moved - full).abs().max() > 1e-3


def test_teacher_radius_follows_the_framelet_settings():
    spec = FrameletSpec(levels=2, order=5)  # W_c of degree 2 (5 - 1) = 8
    spatial = build_teacher("spatial", D, CLASSES, num_layers=3, framelet=spec)
    assert teacher_radius(spatial) == 3 * (2 * 8 + 1)
    spectral = build_teacher("spectral", D, CLASSES, num_layers=2, framelet=spec, smooth="none")
    assert teacher_radius(spectral) == 2 * 16
    exact = build_teacher("spatial", D, CLASSES, framelet=FrameletSpec(method="exact"))
    assert teacher_radius(exact) is None


# ----------------------------------------------------------------------------- students


def _loop_oracle(model, x, z):
    """The training-mode code (per-channel Python loop) with dropout 0: the reference."""
    model.train()
    try:
        return model(x, z)
    finally:
        model.eval()


@pytest.mark.parametrize(("powers", "width", "d"), [(1, 11, 7), (2, 11, 7), (3, 11, 7),
                                                    (2, 700, 300)])
@pytest.mark.parametrize("cls", [FMLPS, FMLPO])
def test_batched_eval_path_equals_the_loop(cls, powers, width, d):
    """Width 700 > ACCUMULATE_BLOCK: FMLP-S's composed products are summed in blocks; dense
    features of width 300 take FMLP-S's encode-first branch."""
    torch.manual_seed(1)
    kw = {"num_powers": powers} if cls is FMLPO else {}
    model = cls(d, 16, 4, knowledge_channels=3, knowledge_width=width, dropout=0.0, **kw).eval()
    x, z = torch.randn(40, d), torch.randn(3, powers, 40, width)
    want = _loop_oracle(model, x, z)
    x0, z0 = x.clone(), z.clone()
    with torch.no_grad():
        got = model(x, z)
        twice = model(x, z)  # FMLP-O writes over its own buffers: nothing carries over
    torch.testing.assert_close(got.logits, want.logits, rtol=0, atol=ATOL)
    torch.testing.assert_close(got.gates, want.gates, rtol=0, atol=ATOL)
    assert torch.equal(twice.logits, got.logits) and torch.equal(twice.gates, got.gates)
    assert torch.equal(x, x0) and torch.equal(z, z0)  # inputs are never written
    # With gradients on, the same path stays differentiable and gives the same values.
    again = model(x, z)
    torch.testing.assert_close(again.logits, want.logits, rtol=0, atol=ATOL)
    again.logits.sum().backward()
    assert model.encoders[0].weight.grad is not None


def test_mlp_relu_in_place_only_where_no_hook_holds_a_layer_output():
    """The eval MLP applies its ReLU in place, except when a forward hook could hold the
    layer output it would overwrite."""
    torch.manual_seed(3)
    model = MLP(5, 8, 3).eval()
    x = torch.randn(10, 5)
    seen = []
    handle = model.lins[0].register_forward_hook(lambda mod, inp, out: seen.append(out))
    with torch.no_grad():
        hooked = model(x).logits
    handle.remove()
    assert (seen[0] < 0).any()  # the hooked output kept its negative entries
    with torch.no_grad():
        plain = model(x).logits
    torch.testing.assert_close(plain, hooked, rtol=0, atol=ATOL)  # relu_ vs relu paths
    ref = model.lins[1](torch.relu(model.lins[0](x)))
    torch.testing.assert_close(plain, ref, rtol=0, atol=ATOL)


def test_eval_path_follows_parameter_updates():
    """The composed weights kept between no-grad calls are rebuilt after a change."""
    torch.manual_seed(2)
    model = FMLPS(5, 8, 3, knowledge_channels=2, knowledge_width=6).eval()
    x, z = torch.randn(10, 5), torch.randn(2, 1, 10, 6)
    with torch.no_grad():
        before = model(x, z).logits
        model.encoders[1].weight.add_(0.5)
        after = model(x, z).logits
    assert (after - before).abs().max() > 1e-3
    torch.testing.assert_close(after, _loop_oracle(model, x, z).logits, rtol=0, atol=ATOL)


# ----------------------------------------------------------------------------- the command


def test_bench_speed_new_node_columns(tmp_path):
    out = tmp_path / "speed"
    argv = ["bench", "speed", "--datasets", "csbm:n=120,c=2,d=4,h=0.5,f=6,seed=0",
            "--repeats", "2", "--warmup", "0", "--query", "both", "--new-repeats", "2",
            "--new-warmup", "0", "--models", "spatial,gcn,mlp,fmlp-s", "--out", str(out),
            "--set", "teacher.hidden=8", "--set", "framelet.order=3"]
    assert main(argv) == 0
    import csv

    rows = {r["model"]: r for r in csv.DictReader((out / "speed.csv").open())}
    assert set(rows) == {"spatial", "gcn", "mlp", "fmlp-s"}
    for r in rows.values():
        assert float(r["new_ms"]) > 0 and float(r["full_ms"]) > 0
    assert float(rows["spatial"]["new_speedup"]) == pytest.approx(1.0)
    assert int(rows["spatial"]["radius"]) == 2 * (2 * 2 + 1)  # order 3, 1 level, 2 layers
    assert int(rows["gcn"]["radius"]) == 2
    assert float(rows["fmlp-s"]["new_rows_ms"]) > 0 and rows["mlp"]["new_rows_ms"] == ""
    text = (out / "speed.md").read_text()
    assert "10 **new** nodes" in text and "10-node query" in text


def test_bench_speed_rows_tol_computes_on_a_smaller_field(tmp_path):
    from framekd.bench import speed_benchmark

    spec = "csbm:n=300,c=2,d=4,h=0.5,f=6,seed=0"
    opts = {"models": ["spatial", "fmlp-s"], "repeats": 1, "warmup": 0, "query": "new",
            "new_repeats": 1, "new_warmup": 0, "overrides": ["teacher.hidden=8"]}
    exact = {r["model"]: r for r in speed_benchmark(spec, **opts)["rows"]}
    res = speed_benchmark(spec, rows_tol=0.05, **opts)
    approx = {r["model"]: r for r in res["rows"]}
    assert res["rows_tol"] == 0.05
    assert approx["fmlp-s"]["field_nodes"] < exact["fmlp-s"]["field_nodes"]
    assert approx["spatial"]["field_nodes"] == exact["spatial"]["field_nodes"]  # stays exact
    with pytest.raises(ConfigError, match="use it with query 'new' or 'both'"):
        speed_benchmark(spec, **{**opts, "query": "stored"}, rows_tol=0.05)
