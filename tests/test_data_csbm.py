"""The CSBM generator: homophily and degree targets, determinism, validation."""

from __future__ import annotations

import pytest
import torch

from framekd import ConfigError, canonicalize
from framekd.data import csbm, load_dataset, parse_csbm_spec


def _edge_homophily(data) -> float:
    # Brute-force definition: share of (directed) edges whose endpoints share a label.
    row, col = data.edge_index
    return (data.y[row] == data.y[col]).double().mean().item()


@pytest.mark.parametrize("h", [0.1, 0.5, 0.9])
def test_hits_target_homophily_at_10k_nodes(h):
    data = csbm(num_nodes=10_000, num_classes=5, avg_degree=10.0, homophily=h, seed=7)
    assert abs(_edge_homophily(data) - h) <= 0.03
    assert data.edge_index.size(1) / data.num_nodes == pytest.approx(10.0, abs=1e-3)


def test_output_is_already_canonical():
    data = csbm(num_nodes=500, num_classes=4, avg_degree=6.0, homophily=0.3, seed=1)
    canon = canonicalize(data, warn=False)
    torch.testing.assert_close(canon.edge_index, data.edge_index, rtol=0, atol=0)  # integers
    assert (data.edge_index[0] != data.edge_index[1]).all()
    assert data.x.dtype == torch.float32 and data.y.dtype == torch.int64
    assert data.num_classes == 4


def test_balanced_classes():
    data = csbm(num_nodes=103, num_classes=4, seed=0)
    counts = torch.bincount(data.y).tolist()
    assert sorted(counts) == [25, 26, 26, 26]


def test_same_seed_same_graph_other_seed_other_graph():
    a, b = (csbm(num_nodes=300, homophily=0.4, seed=3) for _ in range(2))
    c = csbm(num_nodes=300, homophily=0.4, seed=4)
    # exact: same code path (csbm, same arguments and seed) run twice in one process.
    assert torch.equal(a.edge_index, b.edge_index) and torch.equal(a.x, b.x)
    assert torch.equal(a.y, b.y)  # exact: same code path, same seed
    assert a.edge_index.tolist() != c.edge_index.tolist()


def test_feature_signal_sets_class_mean_norm():
    data = csbm(num_nodes=20_000, num_classes=2, avg_degree=2.0, feature_signal=3.0,
                num_features=16, seed=0)
    for c in range(2):
        mean = data.x[data.y == c].mean(0)
        # Noise averages out: std of the norm's estimate ~ sqrt(16 / 10^4) = 0.04.
        assert mean.norm().item() == pytest.approx(3.0, abs=0.2)
    zero = csbm(num_nodes=20_000, num_classes=2, avg_degree=2.0, feature_signal=0.0, seed=0)
    assert zero.x[zero.y == 0].mean(0).norm().item() < 0.2


def test_pure_homophily_near_saturation():
    # Two classes of 10 nodes have 90 same-class pairs; 80 are asked for.
    data = csbm(num_nodes=20, num_classes=2, avg_degree=8.0, homophily=1.0, seed=2)
    assert _edge_homophily(data) == 1.0
    assert data.edge_index.size(1) == 160


def test_too_dense_request_is_rejected():
    with pytest.raises(ConfigError, match=r"cannot place 100 same-class .* lower avg_degree"):
        csbm(num_nodes=20, num_classes=2, avg_degree=10.0, homophily=1.0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(homophily=1.5), r"homophily must lie in \[0, 1\], got 1.5"),
        (dict(num_classes=1), r"num_classes must be an integer in \[2, num_nodes"),
        (dict(num_nodes=1), r"num_nodes must be an integer >= 2"),
        (dict(avg_degree=-1.0), r"avg_degree must lie in"),
        (dict(num_features=0), r"num_features must be an integer >= 1"),
        (dict(feature_signal=float("nan")), r"feature_signal must be finite"),
    ],
)
def test_invalid_parameters(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        csbm(**kwargs)


def test_spec_string_matches_keyword_call():
    assert parse_csbm_spec("csbm:n=300,h=0.2,seed=3,c=3,d=4") == dict(
        num_nodes=300, homophily=0.2, seed=3, num_classes=3, avg_degree=4.0)
    data = load_dataset("CSBM:n=300,h=0.2,seed=3")
    ref = csbm(num_nodes=300, homophily=0.2, seed=3)
    # exact: same code path (the spec is parsed into the same csbm call), integer indices.
    assert torch.equal(data.edge_index, ref.edge_index) and data.name == "csbm"
    assert load_dataset("csbm", num_nodes=50, seed=1).num_nodes == 50


@pytest.mark.parametrize("spec, message", [
    ("csbm:n=abc", r"n='abc' .* is not a number"),
    ("csbm:n=10.5", r"must be an integer"),
    ("csbm:zzz=1", r"bad csbm option 'zzz=1'"),
])
def test_bad_spec_strings(spec, message):
    with pytest.raises(ConfigError, match=message):
        parse_csbm_spec(spec)
