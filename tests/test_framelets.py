"""Graph framelets: tightness, Chebyshev convergence, symmetry and the dense oracle."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from framekd.errors import ConfigError, FramekdWarning, GraphError
from framekd.framelets import (
    EXACT_MAX_NODES,
    FILTER_BANKS,
    FrameletTransform,
    chebyshev_coefficients,
    filter_bank,
)
from framekd.operators import estimate_lambda_max
from helpers import dense_laplacian, dense_operators, haar_framelet_operators, random_graph

F64 = torch.float64


# ----------------------------------------------------------------------------- filter banks


@pytest.mark.parametrize("name", FILTER_BANKS)
def test_filter_banks_are_tight_and_low_pass_first(name):
    bank = filter_bank(name)
    xi = np.linspace(0, np.pi, 777)
    assert np.abs(sum(g(xi) ** 2 for g in bank) - 1).max() < 1e-12
    assert bank[0](np.array([0.0]))[0] == pytest.approx(1.0, abs=1e-4)  # low pass keeps DC
    assert bank[-1](np.array([0.0]))[0] == pytest.approx(0.0, abs=1e-2)


def test_filter_bank_sizes_and_formulas():
    assert [len(filter_bank(n)) for n in FILTER_BANKS] == [2, 3, 4, 2, 3]
    xi = np.array([0.3, 1.7, 3.0])
    lin = filter_bank("linear")
    np.testing.assert_allclose(lin[1](xi), np.sin(xi) / np.sqrt(2))
    sig = filter_bank("sigmoid", alpha=5.0)
    s = 1 / (1 + np.exp(-5.0 * (xi / np.pi - 0.5)))
    np.testing.assert_allclose(sig[1](xi) ** 2, s)
    ent = filter_bank("entropy", alpha=0.25)
    x = xi / np.pi
    np.testing.assert_allclose(ent[1](xi) ** 2, x * (1 - x))  # 4·0.25·x(1-x)


@pytest.mark.parametrize("alpha", [0.0, -0.5, 1.5, float("nan")])
def test_entropy_rejects_alpha_outside_unit_interval(alpha):
    with pytest.raises(ConfigError, match="0 < alpha <= 1"):
        filter_bank("entropy", alpha=alpha)


def test_filter_bank_errors():
    with pytest.raises(ConfigError, match="haar, linear"):
        filter_bank("daubechies")
    with pytest.raises(ConfigError, match="sigmoid"):
        filter_bank("sigmoid", alpha=-1)
    with pytest.raises(ConfigError, match="no shape parameter"):
        filter_bank("haar", alpha=0.5)


# ----------------------------------------------------------------------------- exact method


@pytest.mark.parametrize("name", FILTER_BANKS)
@pytest.mark.parametrize("levels", [1, 2, 3])
def test_exact_transform_is_a_tight_frame(name, levels):
    ei, n = random_graph(levels)
    t = FrameletTransform(ei, n, filters=name, levels=levels, method="exact", dtype=F64)
    x = torch.randn(n, 3, generator=torch.Generator().manual_seed(1), dtype=F64)
    y = t.apply(x)
    assert y.shape == (t.num_channels, n, 3)
    energy = (y**2).sum((0, 1))
    torch.testing.assert_close(energy, (x**2).sum(0), rtol=0, atol=1e-10)
    torch.testing.assert_close(t.reconstruct(y), x, rtol=0, atol=1e-10)


def test_exact_matches_dense_eigendecomposition_oracle():
    ei, n = random_graph(5)
    lmax = np.linalg.eigvalsh(dense_laplacian(ei, n)).max()
    t = FrameletTransform(ei, n, method="exact", levels=2, dtype=F64)
    assert t.lambda_max == pytest.approx(lmax, abs=1e-12)
    # Haar, 2 levels, s = 2: t_2 = pi / lmax, t_1 = t_2 / 2; channels (0, 2), (1, 1), (1, 2).
    expected = haar_framelet_operators(ei, n, levels=2)
    w = dense_operators(t).numpy()
    assert t.channels == [(0, 2), (1, 1), (1, 2)]
    for c in range(len(t.channels)):
        np.testing.assert_allclose(w[c], expected[c], atol=1e-12)


def test_exact_refuses_large_graphs_naming_chebyshev():
    ei = torch.empty(2, 0, dtype=torch.long)
    with pytest.raises(ConfigError, match="chebyshev"):
        FrameletTransform(ei, EXACT_MAX_NODES + 1, method="exact")


# ----------------------------------------------------------------------------- Chebyshev


def test_haar_order_two_reproduces_reference_coefficients_and_error():
    c = np.stack([chebyshev_coefficients(g, 2) for g in filter_bank("haar")])
    np.testing.assert_allclose(c, [[1.2044, -0.5136], [1.2044, 0.5136]], atol=1e-4)
    ei, n = random_graph(2, sizes=(60, 40), p=0.1)
    t = FrameletTransform(ei, n, order=2, dtype=F64)
    np.testing.assert_allclose(t.coefficients, c)
    lo, hi = t.frame_bounds()
    assert lo == pytest.approx(0.7253, abs=1e-3) and hi == pytest.approx(1.2529, abs=1e-3)
    # The spectral worst case is 1 - 0.7253 = 0.275 at lambda_max / 2.
    assert 0.25 < t.frame_error(iters=60) <= 0.2748


def test_chebyshev_converges_to_exact():
    ei, n = random_graph(3)
    exact = dense_operators(FrameletTransform(ei, n, method="exact", dtype=F64))
    errors = []
    for order in (2, 4, 6, 8):
        t = FrameletTransform(ei, n, order=order, dtype=F64)
        # Same lambda_max (dense estimate for small graphs), so only the filter differs.
        errors.append(float((dense_operators(t) - exact).abs().max()))
    assert all(a > 10 * b for a, b in zip(errors, errors[1:], strict=False)), errors
    assert errors[-1] < 1e-6


@pytest.mark.parametrize("name", ["haar", "linear", "quadratic"])
def test_default_order_frame_error_below_1e3(name):
    ei, n = random_graph(4)
    t = FrameletTransform(ei, n, filters=name, levels=2, dtype=F64)
    assert t.order == 8
    assert t.frame_error() < 1e-3
    lo, hi = t.frame_bounds()
    assert 1 - 1e-3 < lo <= hi < 1 + 1e-3


def test_frame_error_detects_non_tight_entropy():
    ei, n = random_graph(6)
    with pytest.warns(FramekdWarning, match="discontinuous"):
        cheb = FrameletTransform(ei, n, filters="entropy", dtype=F64)
    assert cheb.frame_error() > 0.05
    exact = FrameletTransform(ei, n, filters="entropy", method="exact", dtype=F64)
    assert exact.frame_error() < 1e-12


@pytest.mark.parametrize("method", ["chebyshev", "exact"])
def test_operators_are_symmetric(method):
    ei, n = random_graph(7)
    t = FrameletTransform(ei, n, filters="linear", levels=2, method=method, dtype=F64)
    w = dense_operators(t)
    torch.testing.assert_close(w, w.transpose(1, 2), rtol=0, atol=1e-12)


def test_apply_each_and_reconstruct_agree_with_dense_operators():
    ei, n = random_graph(8)
    t = FrameletTransform(ei, n, filters="quadratic", levels=3, dtype=F64)
    w = dense_operators(t)
    xs = torch.randn(t.num_channels, n, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    torch.testing.assert_close(t.apply_each(xs), w @ xs, rtol=0, atol=1e-12)
    torch.testing.assert_close(t.reconstruct(xs), (w.transpose(1, 2) @ xs).sum(0), atol=1e-12,
                               rtol=0)
    # Chebyshev levels form the product structure W_{r,l} = p_r(t_l L) W_{0,l-1}.
    lo1 = FrameletTransform(ei, n, filters="quadratic", levels=1, dtype=F64)
    assert t.scales[-1] * t.lambda_max == pytest.approx(math.pi)
    assert t.scales[0] == pytest.approx(t.scales[2] / 4)
    assert lo1.scales[0] == pytest.approx(t.scales[2])


def test_levels_share_scales_with_dilation():
    ei, n = random_graph(9)
    t = FrameletTransform(ei, n, levels=3, scale=3.0, dtype=F64)
    np.testing.assert_allclose(np.diff(np.log(t.scales)), np.log(3.0))
    assert t.channels == [(0, 3), (1, 1), (1, 2), (1, 3)]
    assert t.num_channels == 4


def test_autograd_through_all_three_operations():
    """The operations are linear, so backward must apply the adjoint (W symmetric)."""
    ei, n = random_graph(10, sizes=(8, 5), isolated=1)
    t = FrameletTransform(ei, n, levels=2, order=5, dtype=F64)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(n, 2, dtype=F64, generator=gen, requires_grad=True)
    xs = torch.randn(t.num_channels, n, 2, dtype=F64, generator=gen, requires_grad=True)
    g = torch.randn(t.num_channels, n, 2, dtype=F64, generator=gen)
    (t.apply(x) * g).sum().backward()
    torch.testing.assert_close(x.grad, t.reconstruct(g), rtol=0, atol=1e-12)
    (t.apply_each(xs) * g).sum().backward()
    torch.testing.assert_close(xs.grad, t.apply_each(g), rtol=0, atol=1e-12)
    xs.grad = None
    (t.reconstruct(xs) * g[0]).sum().backward()
    torch.testing.assert_close(xs.grad, t.apply(g[0]), rtol=0, atol=1e-12)
    small = torch.randn(4, 1, dtype=F64, requires_grad=True)
    path = torch.tensor([[0, 1, 1, 2, 2, 3], [1, 0, 2, 1, 3, 2]])
    assert torch.autograd.gradcheck(FrameletTransform(path, 4, order=3, dtype=F64).apply, (small,))


# ----------------------------------------------------------------------------- edge cases


@pytest.mark.parametrize("method", ["chebyshev", "exact"])
def test_single_node_and_edgeless_graphs_are_finite(method):
    empty = torch.empty(2, 0, dtype=torch.long)
    for n in (1, 5):
        t = FrameletTransform(empty, n, method=method)
        x = torch.randn(n, 3)
        y = t.apply(x)
        assert torch.isfinite(y).all()
        assert t.lambda_max == pytest.approx(1.0)  # L = I
        torch.testing.assert_close(t.reconstruct(y), x, atol=1e-5, rtol=0)


def test_lambda_max_estimate_is_deterministic_and_accurate():
    ei, n = random_graph(11, sizes=(200, 150), p=0.05, isolated=4)
    lam = np.linalg.eigvalsh(dense_laplacian(ei, n)).max()
    first = estimate_lambda_max(ei, n)
    assert first == estimate_lambda_max(ei, n)
    assert first == pytest.approx(lam, abs=1e-6)
    assert FrameletTransform(ei, n, lambda_max="bound").lambda_max == 2.0
    assert FrameletTransform(ei, n, lambda_max=1.5).lambda_max == 1.5


def test_float32_default_and_dtype_checks():
    ei, n = random_graph(12)
    t = FrameletTransform(ei, n)
    assert t.apply(torch.randn(n, 4)).dtype == torch.float32
    with pytest.raises(GraphError, match="transform.to"):
        t.apply(torch.randn(n, 4, dtype=F64))
    with pytest.raises(GraphError, match=r"\[N, d\]"):
        t.apply(torch.randn(n + 1, 4))
    t.to(dtype=F64)
    assert t.apply(torch.randn(n, 4, dtype=F64)).dtype == F64


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"scale": 1.0}, "scale"),
        ({"scale": 0.5}, "scale"),
        ({"levels": 0}, "levels"),
        ({"order": 0}, "order"),
        ({"filters": "meyer"}, "unknown filter bank"),
        ({"method": "lanczos"}, "unknown method"),
        ({"lambda_max": -1.0}, "lambda_max"),
        ({"filters": "entropy", "alpha": 2.0}, "alpha"),
    ],
)
def test_invalid_options_raise_config_error(kwargs, match):
    ei, n = random_graph(13)
    with pytest.raises(ConfigError, match=match):
        FrameletTransform(ei, n, **kwargs)


def test_non_canonical_edges_are_rejected():
    directed = torch.tensor([[0, 1], [1, 2]])
    with pytest.raises(GraphError, match="canonicalize"):
        FrameletTransform(directed, 3)
    loops = torch.tensor([[0, 0, 1], [0, 1, 0]])
    with pytest.raises(GraphError, match="self-loops"):
        FrameletTransform(loops, 2)
    with pytest.raises(GraphError, match="num_nodes"):
        FrameletTransform(torch.tensor([[0, 5], [5, 0]]), 3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    ei, n = random_graph(14)
    t = FrameletTransform(ei, n, levels=2, dtype=F64)
    x = torch.randn(n, 3, dtype=F64)
    cpu = t.apply(x)
    t.to("cuda")
    torch.testing.assert_close(t.apply(x.cuda()).cpu(), cpu)
    torch.testing.assert_close(t.reconstruct(cpu.cuda()).cpu(), t.to("cpu").reconstruct(cpu))
