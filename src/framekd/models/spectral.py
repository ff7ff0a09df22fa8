r"""A framelet teacher that contains an MLP: learnable band weights in the framelet domain
(docs/SPEC.md §4, "under heterophily").

The paper's spatial framelet network (:class:`~framekd.models.SpatialFramelet`) smooths every
band with :math:`\hat A_c` and has no identity path, so it cannot fall back to ignoring the
graph. :class:`SpectralFramelet` filters each framelet channel with a learnable gain instead,
in the spirit of UFGConv (Zheng et al., ICML 2021):

.. math::
    H' = \sum_{c \in \mathcal C} W_c^\top \big(\theta_c \odot S_c W_c H \Theta\big) + b,
    \qquad \theta_c = 1 + \delta_c \in \mathbb R^{d_{out}},

with one weight :math:`\Theta` shared by the channels, a gain per channel and output unit,
and :math:`S_c = \hat A_c` on the smoothed channels (``smooth``: ``"low"`` or ``"all"``),
:math:`I` elsewhere; ``smooth="learn"`` learns :math:`S_c = I + \gamma_c(\hat A_c - I)` with a
scalar :math:`\gamma_c` per channel, starting from :math:`\gamma_c = 1` (every band smoothed).
The
gains start at the identity (:math:`\delta_c = 0`); with them there and no smoothing, tightness
:math:`\sum_c W_c^\top W_c = I` gives :math:`H' = H\Theta + b`: the network *is* an MLP with the
same weights, and training moves each band's gain away from 1 only where that helps. Weight
decay acts on :math:`\delta_c`, so it pulls towards the MLP rather than towards a zero filter.
With one layer the model is linear (the simplified counterpart).

With ``shared_weights=False`` each channel has its own projection
:math:`\Theta_c = \Theta + \Delta_c`,

.. math::
    H' = \sum_{c} W_c^\top \big(\theta_c \odot S_c W_c H (\Theta + \Delta_c)\big) + b,

so that, as in H2GCN's or ACM-GCN's separate ego and neighbour weights, what a band says
about a node can be read through other features than the node's own. :math:`\Delta_c`
starts at 0 (the shared model, hence the MLP) and weight decay pulls it back there.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from framekd.errors import ConfigError
from framekd.framelets import FrameletOperator, FrameletSpec
from framekd.framelets.transform import Transform
from framekd.models.sparse_input import SPARSE_INPUT_DENSITY, SparseInput
from framekd.models.stack import layer_widths
from framekd.models.teachers import _FrameletTeacher

#: Which channels :class:`SpectralFramelet` smooths with :math:`\hat A_c`.
SMOOTH_MODES = ("none", "low", "all", "learn")
#: ``teacher.smooth: auto`` (a run setting, not a model option): the experiment trains one
#: spectral teacher per mode here and keeps the one with the best validation accuracy.
AUTO_SMOOTH = ("none", "low", "all")


class SpectralFrameletConv(nn.Module):
    r"""One band-weighted framelet layer:
    :math:`H' = \sum_c W_c (\theta_c \odot S_c W_c H\Theta) + b`, :math:`\theta_c = 1 + \delta_c`.

    Args:
        in_channels: :math:`d_{in}`.
        out_channels: :math:`d_{out}`.
        num_channels: number of framelet channels C.
        smooth: ``"none"``, ``"low"`` (:math:`\hat A_0` on the low pass), ``"all"`` or
            ``"learn"`` (:math:`I + \gamma_c(\hat A_c - I)`, :math:`\gamma_c` learnt from 1).

    Shapes:
        ``h`` ``[N, d_in]`` (dense or sparse CSR) → ``[N, d_out]``.
    """

    def __init__(
        self, in_channels: int, out_channels: int, *, num_channels: int, smooth: str = "none",
        shared_weights: bool = True,
    ) -> None:
        super().__init__()
        if smooth not in SMOOTH_MODES:
            hint = (" ('auto' is a run setting: the experiment tries each mode and keeps the "
                    "best on validation)") if smooth == "auto" else ""
            raise ConfigError(
                f"smooth must be one of {', '.join(SMOOTH_MODES)}, got {smooth!r}{hint}"
            )
        self.smooth = smooth
        self.lin = nn.Linear(in_channels, out_channels)
        #: δ_c: the band gains are 1 + δ_c.
        self.band = nn.Parameter(torch.zeros(num_channels, 1, out_channels))
        #: γ_c (``smooth="learn"``): S_c = I + γ_c (Â_c - I), starting at γ_c = 1 (S_c = Â_c).
        self.mix = nn.Parameter(torch.zeros(num_channels, 1, 1)) if smooth == "learn" else None
        #: Δ_c (``shared_weights=False``): channel c projects with Θ + Δ_c.
        self.delta = None if shared_weights else nn.Parameter(
            torch.zeros(num_channels, out_channels, in_channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.lin.reset_parameters()
        nn.init.zeros_(self.band)
        if self.mix is not None:
            nn.init.ones_(self.mix)
        if self.delta is not None:
            nn.init.zeros_(self.delta)

    def _weights(self) -> Tensor:
        """Each channel's projection, ``[C, d_out, d_in]`` (or ``[d_out, d_in]`` shared)."""
        return self.lin.weight if self.delta is None else self.lin.weight + self.delta

    @property
    def gains(self) -> Tensor:
        r"""The band gains :math:`\theta_c = 1 + \delta_c`, ``[C, d_out]``."""
        return 1.0 + self.band.detach()[:, 0]

    def forward(self, h: Tensor, operator: FrameletOperator) -> Tensor:
        t = operator.transform
        if self.delta is None:
            z = t.apply(F.linear(h, self.lin.weight))  # W_c H Θ, sharing the low-pass chain
        else:  # W_c H (Θ + Δ_c): one product for every channel's projection
            c, d_out, d_in = self.delta.shape
            hw = F.linear(h, self._weights().reshape(c * d_out, d_in))
            z = t.apply_each(hw.view(-1, c, d_out).transpose(0, 1).contiguous())
        if self.smooth == "all":
            z = operator.propagate(z)
        elif self.smooth == "low":
            z = torch.cat([operator.propagate(z)[:1], z[1:]])
        elif self.smooth == "learn":
            z = z + self.mix * (operator.propagate(z) - z)
        return t.reconstruct((1.0 + self.band) * z) + self.lin.bias

    def products(self) -> tuple[str, ...]:
        """The :meth:`~framekd.framelets.FrameletOperator.input_product` kinds
        :meth:`from_products` reads for this layer's ``smooth``."""
        return {"none": ("WW",), "all": ("WAW",)}.get(self.smooth, ("WW", "WAW"))

    def from_products(self, products: dict[str, Tensor]) -> Tensor:
        r"""The layer on a fixed input :math:`X` from its precomputed products
        (:meth:`products`): :math:`\sum_c (M_c\Theta) \odot \theta_c + b` with
        :math:`M_c = W_c S_c W_c X`, which is :meth:`forward`'s
        :math:`\sum_c W_c(\theta_c \odot S_c W_c X\Theta)` reordered (the gains act on
        output columns, :math:`\Theta` on input ones): no graph product at all."""
        if self.smooth == "none":
            m = products["WW"]
        elif self.smooth == "all":
            m = products["WAW"]
        elif self.smooth == "low":
            m = torch.cat([products["WAW"][:1], products["WW"][1:]])
        else:  # learn: W_c (I + γ_c (Â_c - I)) W_c X
            m = products["WW"] + self.mix * (products["WAW"] - products["WW"])
        w = self._weights()
        mw = F.linear(m, w) if w.dim() == 2 else torch.bmm(m, w.transpose(1, 2))
        return ((1.0 + self.band) * mw).sum(0) + self.lin.bias

    def extra_repr(self) -> str:
        shared = "" if self.delta is None else ", shared_weights=False"
        return f"channels={self.band.size(0)}, smooth={self.smooth!r}{shared}"


class SpectralFramelet(_FrameletTeacher):
    r"""A framelet network with learnable band weights that contains an MLP (see the module
    docstring for the maths).

    ``num_layers`` :class:`SpectralFrameletConv` layers with ReLU and dropout between them,
    exactly where :class:`~framekd.models.MLP` has them: with the gains at the identity and
    ``smooth="none"`` the output equals that MLP's with the same linear weights.

    Args:
        in_channels, hidden_channels, out_channels: layer widths.
        num_layers: number of layers (>= 1; 1 is a linear model).
        dropout: dropout probability between layers.
        smooth: channels smoothed by :math:`\hat A_c` (``"none"``, ``"low"``, ``"all"``,
            ``"learn"``).
        shared_weights: one projection :math:`\Theta` for every channel (default), or
            :math:`\Theta_c = \Theta + \Delta_c` per channel with :math:`\Delta_c`
            starting at 0 (``False``; see the module docstring).
        epsilon: energy perturbation ε of :math:`\hat A_c` (only used when smoothing).
        framelet, operator, transform, sparse_input, framelet_options: as in
            :class:`~framekd.models.SpatialFramelet`.
        precompute: the first layer reads :math:`W_c S_c W_c X`, computed once per graph
            and features (:meth:`SpectralFrameletConv.from_products`): ``None`` when that
            is cheaper, ``True`` whenever possible, ``False`` never. Same values up to
            rounding.

    Shapes:
        ``x`` ``[N, in_channels]``, ``edge_index`` ``[2, E]`` → ``[N, out_channels]``.
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        out_channels: int,
        *,
        num_layers: int = 2,
        dropout: float = 0.5,
        smooth: str = "none",
        shared_weights: bool = True,
        epsilon: float = 0.0,
        framelet: FrameletSpec | Mapping[str, Any] | None = None,
        operator: FrameletOperator | None = None,
        transform: Transform | None = None,
        sparse_input: float = SPARSE_INPUT_DENSITY,
        precompute: bool | None = None,
        **framelet_options: Any,
    ) -> None:
        super().__init__(epsilon=epsilon, framelet=framelet, operator=operator,
                         transform=transform, framelet_options=framelet_options,
                         precompute=precompute)
        widths = layer_widths(in_channels, hidden_channels, out_channels, num_layers,
                              "SpectralFramelet")
        self.dropout = float(dropout)
        self.convs = nn.ModuleList(
            SpectralFrameletConv(a, b, num_channels=self.num_channels, smooth=smooth,
                                 shared_weights=shared_weights)
            for a, b in widths
        )
        self._sparse_input = SparseInput(sparse_input)

    def reset_parameters(self) -> None:
        for conv in self.convs:
            conv.reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        operator = self.operator(x, edge_index)
        h = self._sparse_input(x)
        for i, conv in enumerate(self.convs):
            if i > 0:
                h = F.dropout(F.relu(h), p=self.dropout, training=self.training)
                h = conv(h, operator)
            elif self.first_layer_precomputed(x, operator, h, removed=2, dense=1):
                # The first layer is linear in the fixed X (no dropout before it): its graph
                # products W_c S_c W_c X are computed once per graph, not at every call.
                h = conv.from_products({k: operator.input_product(x, k)
                                        for k in conv.products()})
            else:
                h = conv(h, operator)
        return h
