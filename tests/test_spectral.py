"""The spectral framelet teacher: it contains an MLP and can weight each band."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from framekd.errors import ConfigError
from framekd.models import MLP, SpectralFramelet, build_teacher
from helpers import dense_gcn_adjacency, haar_framelet_operators, random_graph


@pytest.mark.parametrize("filters,levels", [("haar", 1), ("linear", 2), ("quadratic", 1)])
def test_band_weights_at_identity_give_the_mlp_with_the_same_weights(filters, levels):
    ei, n = random_graph(0, sizes=(30, 20), isolated=2)
    x = torch.randn(n, 7, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    teacher = SpectralFramelet(7, 16, 4, num_layers=3, dropout=0.3, filters=filters,
                               levels=levels, order=24).eval()
    mlp = MLP(7, 16, 4, num_layers=3, dropout=0.3).eval()
    for lin, conv in zip(mlp.lins, teacher.convs, strict=True):
        lin.load_state_dict(conv.lin.state_dict())
    torch.testing.assert_close(teacher(x, ei), mlp(x).logits, rtol=0, atol=1e-5)


def test_band_gains_filter_each_channel_like_the_dense_definition():
    ei, n = random_graph(2)
    x = torch.randn(n, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    model = SpectralFramelet(3, 8, 2, num_layers=1, method="exact", smooth="low",
                             epsilon=0.2).double().eval()
    with torch.no_grad():
        model.convs[0].band.copy_(torch.tensor([[[0.5, -0.3]], [[1.0, 2.0]]]))
    w = haar_framelet_operators(ei, n)
    a_hat, d_inv = dense_gcn_adjacency(ei, n)
    lin = model.convs[0].lin
    z = (x @ lin.weight.T).detach().numpy()
    theta = 1.0 + model.convs[0].band.detach().numpy()[:, 0]
    low = w[0] @ (theta[0] * ((a_hat - 0.2 * d_inv) @ (w[0] @ z)))
    high = w[1] @ (theta[1] * (w[1] @ z))
    np.testing.assert_allclose(model(x, ei).detach().numpy(),
                               low + high + lin.bias.detach().numpy(), atol=1e-10)


def test_spectral_teacher_trains_its_band_gains_and_is_registered():
    ei, n = random_graph(4)
    x = torch.randn(n, 5)
    model = build_teacher("spectral", 5, 3, hidden_channels=8, smooth="all")
    model(x, ei).sum().backward()
    assert all(conv.band.grad is not None and conv.band.grad.abs().sum() > 0
               for conv in model.convs)
    assert model.convs[0].gains.shape == (model.num_channels, 8)
    with pytest.raises(ConfigError, match="smooth"):
        build_teacher("spectral", 5, 3, smooth="some")


def test_per_channel_weights_start_at_the_shared_model_and_follow_the_dense_definition():
    ei, n = random_graph(2)
    x = torch.randn(n, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    torch.manual_seed(0)
    shared = SpectralFramelet(3, 8, 2, num_layers=2, method="exact", smooth="low",
                              epsilon=0.2).double().eval()
    torch.manual_seed(0)
    own = SpectralFramelet(3, 8, 2, num_layers=2, method="exact", smooth="low", epsilon=0.2,
                           shared_weights=False).double().eval()
    # Δ_c = 0: the shared model (so, with the gains at 1 and no smoothing, the MLP)
    torch.testing.assert_close(own(x, ei), shared(x, ei), rtol=0, atol=1e-12)
    one = SpectralFramelet(3, 8, 2, num_layers=1, method="exact", smooth="low", epsilon=0.2,
                           shared_weights=False).double().eval()
    conv = one.convs[0]
    with torch.no_grad():
        conv.band.copy_(torch.tensor([[[0.5, -0.3]], [[1.0, 2.0]]]))
        conv.delta.normal_(generator=torch.Generator().manual_seed(4))
    w = haar_framelet_operators(ei, n)
    a_hat, d_inv = dense_gcn_adjacency(ei, n)
    theta = 1.0 + conv.band.detach().numpy()[:, 0]
    proj = [(conv.lin.weight + conv.delta[c]).detach().numpy() for c in range(2)]
    low = w[0] @ (theta[0] * ((a_hat - 0.2 * d_inv) @ (w[0] @ (x.numpy() @ proj[0].T))))
    high = w[1] @ (theta[1] * (w[1] @ (x.numpy() @ proj[1].T)))
    want = low + high + conv.lin.bias.detach().numpy()
    for precompute in (True, False):  # the first layer read from W_c S_c W_c X, or not
        one.precompute = precompute
        np.testing.assert_allclose(one(x, ei).detach().numpy(), want, atol=1e-10)
    assert "shared_weights=False" in repr(one)


def test_shared_weights_setting_reaches_the_teacher_and_is_checked():
    from framekd.config import RunConfig, resolve
    from framekd.models import teacher_from_config

    def rc(value):
        return RunConfig.from_dict(resolve("csbm:n=60,c=2,d=4,h=0.5,f=4,seed=0", overrides=[
            "teacher.name=spectral", "teacher.smooth=none", f"teacher.shared_weights={value}"]))

    assert teacher_from_config("spectral", rc("false"), 4, 2).convs[0].delta is not None
    assert teacher_from_config("spectral", rc("true"), 4, 2).convs[0].delta is None
    with pytest.raises(ConfigError, match="teacher.shared_weights must be true or false"):
        rc("3")


@pytest.mark.parametrize("smooth", ["none", "all", "learn"])
def test_per_channel_weights_read_the_same_from_precomputed_products(smooth):
    ei, n = random_graph(5)
    x = torch.randn(n, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    torch.manual_seed(1)
    model = SpectralFramelet(4, 6, 3, num_layers=2, smooth=smooth, levels=2, filters="linear",
                             shared_weights=False).double().eval()
    with torch.no_grad():
        for conv in model.convs:
            conv.delta.normal_(generator=torch.Generator().manual_seed(7))
    outs = []
    for precompute in (True, False):
        model.precompute = precompute
        model.reset_cache()
        outs.append(model(x, ei))
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=1e-10)
