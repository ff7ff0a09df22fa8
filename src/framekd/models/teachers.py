r"""Teacher GNNs: graph framelet networks and standard PyG baselines.

Every teacher is a :class:`torch.nn.Module` with ``reset_parameters()`` and the same call
``model(x, edge_index) -> logits`` where ``logits`` is the ``[N, num_classes]`` matrix of
**unnormalised class scores** (no ``log_softmax``); the trainers in :mod:`framekd.distill`
apply ``log_softmax`` where probabilities are needed.

The framelet teachers build their graph operators from ``edge_index`` on the first call and
cache them, like :class:`~torch_geometric.nn.conv.GCNConv` with ``cached=True``: a teacher is
bound to one graph (transductive learning). The cache is rebuilt when the node or edge count
changes; call :meth:`reset_cache` after editing a graph in place.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import models as pyg_models

from framekd.errors import ConfigError
from framekd.framelets import FrameletTransform, framelet_channels, symmetric_matmul
from framekd.knowledge import gcn_adjacency
from framekd.models.sparse_input import SPARSE_INPUT_DENSITY, SparseInput, input_dropout


def _framelet_kwargs(
    filters: str,
    levels: int,
    scale: float,
    order: int,
    method: str,
    lambda_max: float | str | None,
    alpha: float | None,
) -> dict[str, Any]:
    return dict(
        filters=filters,
        levels=levels,
        scale=scale,
        order=order,
        method=method,
        lambda_max=lambda_max,
        alpha=alpha,
    )


class _FrameletTeacher(nn.Module):
    """Shared plumbing: framelet options and the per-graph operator cache."""

    def __init__(
        self,
        *,
        epsilon: float,
        transform: Any | None,
        filters: str,
        levels: int,
        scale: float,
        order: int,
        method: str,
        lambda_max: float | str | None,
        alpha: float | None,
    ) -> None:
        super().__init__()
        self.epsilon = float(epsilon)
        if not math.isfinite(self.epsilon):
            raise ConfigError(f"epsilon must be a finite number, got {epsilon!r}")
        self.framelet_kwargs = _framelet_kwargs(
            filters, levels, scale, order, method, lambda_max, alpha
        )
        if transform is not None:
            self.num_channels = int(transform.num_channels)
        else:
            self.num_channels = len(framelet_channels(filters, levels))
        self._user_transform = transform
        self._transform: Any | None = transform
        self._cache_key: tuple[int, int] | None = None
        self._propagate: EnergyPropagation | None = None

    def reset_cache(self) -> None:
        """Forget the cached graph operators; the next forward call rebuilds them."""
        self._cache_key = None
        self._transform = self._user_transform
        self._propagate = None

    def _refresh(self, x: Tensor, edge_index: Tensor) -> bool:
        """Bind the model to the graph of this call; ``True`` when the caches were rebuilt."""
        key = (int(x.size(0)), int(edge_index.size(1)))
        stale = key != self._cache_key
        if stale:
            self.reset_cache()
            self._cache_key = key
        if self._transform is None:
            self._transform = FrameletTransform(
                edge_index, x.size(0), dtype=x.dtype, **self.framelet_kwargs
            )
        self._transform = self._transform.to(x.device)
        if self._transform.num_channels != self.num_channels:
            raise ConfigError(
                f"the framelet transform has {self._transform.num_channels} channels but the "
                f"model was built for {self.num_channels}; build the model with transform= or "
                "with the same filters/levels as the transform"
            )
        return stale

    def _operators(self, x: Tensor, edge_index: Tensor) -> tuple[Any, EnergyPropagation]:
        """The framelet transform and the per-channel :math:`\\hat A_c` of this call's graph,
        built on first use and cached until the graph changes."""
        stale = self._refresh(x, edge_index)
        if stale or self._propagate is None or self._propagate.adj.device != x.device:
            self._propagate = EnergyPropagation(
                edge_index,
                x.size(0),
                list(self._transform.channels),
                self.epsilon,
                dtype=x.dtype,
                device=x.device,
            )
        return self._transform, self._propagate

    @property
    def transform(self) -> Any | None:
        """The framelet transform in use (``None`` before the first forward call)."""
        return self._transform

    def extra_repr(self) -> str:
        kw = ", ".join(f"{k}={v}" for k, v in self.framelet_kwargs.items())
        return f"channels={self.num_channels}, epsilon={self.epsilon}, {kw}"


def channel_project(h: Tensor, weight: Tensor) -> Tensor:
    r"""The products :math:`H\Theta_c` for every channel: ``[N, d], [C, d, e] -> [C, N, e]``.

    A sparse ``h`` (see :class:`SparseInput`) takes one sparse product with the channels'
    weights side by side, :math:`H\,[\Theta_1 \cdots \Theta_C]`.
    """
    if h.layout == torch.strided:
        return torch.einsum("nd,cde->cne", h, weight)
    c, d, e = weight.shape
    flat = h @ weight.permute(1, 0, 2).reshape(d, c * e)
    return flat.reshape(-1, c, e).permute(1, 0, 2)


class SpatialFrameletConv(nn.Module):
    r"""One spatial framelet layer (SpatUFG, SPEC §4):

    .. math::
        H' = \sum_{c \in \mathcal{C}} W_c \, \mathrm{ReLU}\big(\hat A_c \, W_c \, H \Theta_c\big)
             + b,

    with a weight :math:`\Theta_c \in \mathbb{R}^{d_{in} \times d_{out}}` per framelet channel
    and one shared bias. ``W_c`` acts through the matrix-free transform (``apply_each`` for the
    analysis, ``reconstruct`` for the synthesis, using :math:`W_c^\top = W_c`); ``\hat A_c`` is
    applied as a sparse product plus a diagonal scaling.
    """

    def __init__(self, in_channels: int, out_channels: int, num_channels: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.weight = nn.Parameter(torch.empty(num_channels, in_channels, out_channels))
        self.bias = nn.Parameter(torch.empty(out_channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for theta in self.weight:
            nn.init.xavier_uniform_(theta)
        nn.init.zeros_(self.bias)

    def project(self, h: Tensor) -> Tensor:
        r"""The products :math:`H\Theta_c` of every channel, ``[C, N, d_out]``.

        ``h`` may be a sparse matrix (see :class:`SparseInput`): then one sparse product
        with the channels' weights side by side, :math:`H\,[\Theta_1 \cdots \Theta_C]`.
        """
        return channel_project(h, self.weight)

    def forward(self, h: Tensor, transform: Any, propagate: Callable[[Tensor], Tensor]) -> Tensor:
        # H Θ_c first: cheaper than W_c H when d_out < d_in, and W_c is linear.
        z = propagate(transform.apply_each(self.project(h)))
        return transform.reconstruct(F.relu(z)) + self.bias

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, channels={self.weight.size(0)}"


class EnergyPropagation:
    r"""Applies :math:`\hat A_c` to every channel of a ``[C, N, d]`` stack at once:

    .. math::
        \hat A_c Z_c = \hat A Z_c + s_c \tilde D^{-1} Z_c, \qquad
        s_c = -\varepsilon \text{ (low pass)}, \; +\varepsilon \text{ (high passes)},

    one sparse product over the ``[N, C·d]`` concatenation plus a diagonal scaling.
    """

    def __init__(
        self,
        edge_index: Tensor,
        num_nodes: int,
        channels: list,
        epsilon: float,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | None = None,
    ):
        self.adj = gcn_adjacency(edge_index, num_nodes, dtype=dtype).to(device)
        deg = torch.bincount(edge_index[0].long().cpu(), minlength=num_nodes).to(dtype) + 1.0
        signs = torch.tensor([-1.0 if int(r) == 0 else 1.0 for r, _ in channels], dtype=dtype)
        self.shift = None
        if epsilon != 0.0:
            self.shift = (epsilon * signs[:, None, None] / deg[None, :, None]).to(device)

    def __call__(self, z: Tensor) -> Tensor:
        c, n, d = z.shape
        flat = z.permute(1, 0, 2).reshape(n, c * d)
        out = symmetric_matmul(self.adj, flat).reshape(n, c, d).permute(1, 0, 2)
        return out if self.shift is None else out + self.shift * z


class SpatialFramelet(_FrameletTeacher):
    r"""Spatial graph framelet network (SpatUFG teacher, SPEC §4).

    ``num_layers`` :class:`SpatialFrameletConv` layers (``in -> hidden -> ... -> out``) with
    dropout between layers; the only non-linearity is the ReLU inside each layer, as in the
    reference. Energy perturbation :math:`\varepsilon` (a float) shifts the propagation
    operator per channel: :math:`\hat A_{low} = \hat A - \varepsilon \tilde D^{-1}`,
    :math:`\hat A_{high} = \hat A + \varepsilon \tilde D^{-1}`.

    The framelet transform is built from ``edge_index`` on the first call with the framelet
    options given here (or pass a prebuilt ``transform=``) and cached with the normalised
    adjacency. Features with at most ``sparse_input`` non-zeros enter the first layer as a
    sparse matrix (:class:`SparseInput`). Returns logits ``[N, out_channels]``.
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        out_channels: int,
        num_layers: int = 2,
        dropout: float = 0.0,
        epsilon: float = 0.0,
        *,
        transform: Any | None = None,
        filters: str = "haar",
        levels: int = 1,
        scale: float = 2.0,
        order: int = 8,
        method: str = "chebyshev",
        lambda_max: float | str | None = None,
        alpha: float | None = None,
        sparse_input: float = SPARSE_INPUT_DENSITY,
    ) -> None:
        super().__init__(
            epsilon=epsilon,
            transform=transform,
            filters=filters,
            levels=levels,
            scale=scale,
            order=order,
            method=method,
            lambda_max=lambda_max,
            alpha=alpha,
        )
        if num_layers < 1:
            raise ConfigError(f"SpatialFramelet needs num_layers >= 1, got {num_layers}")
        self.dropout = float(dropout)
        dims = [in_channels] + [hidden_channels] * (num_layers - 1) + [out_channels]
        pairs = zip(dims[:-1], dims[1:], strict=True)
        self.convs = nn.ModuleList(SpatialFrameletConv(a, b, self.num_channels) for a, b in pairs)
        self._sparse_input = SparseInput(sparse_input)

    def reset_parameters(self) -> None:
        for conv in self.convs:
            conv.reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        transform, propagate = self._operators(x, edge_index)
        h = self._sparse_input(x)
        for i, conv in enumerate(self.convs):
            if i > 0:
                h = F.dropout(h, p=self.dropout, training=self.training)
            h = conv(h, transform, propagate)
        return h


class SimplifiedFramelet(_FrameletTeacher):
    r"""Simplified (linear, SGC-like) framelet network (SPEC §4):

    .. math::
        Y = \sum_{c \in \mathcal{C}} (W_c^\top \hat A_c W_c)^{\ell} X \Theta_c + b .

    The model is linear, so it is evaluated right to left, matrix-free:
    :math:`Z_c = X\Theta_c` first (``[N, out]``, a sparse product for bag-of-words features,
    see :class:`SparseInput`), then :math:`\ell` applications of :math:`K_c = W_c \hat A_c
    W_c` to the narrow :math:`Z_c`, the last :math:`W_c` merged into the synthesis
    :math:`\sum_c W_c(\cdot)`. The ``features`` knowledge :math:`K_c^\ell X`
    (``[C, N, d]`` dense, 1 GB on Coauthor CS) is never formed, and a step costs
    :math:`O(\mathrm{nnz}(X)\,e + \ell\,\mathrm{order}\,|E|\,C e)` instead of
    :math:`O(C N d e)` (``benchmarks/bench_teacher_step.py``). Dropout acts on the input
    features.
    ``num_layers`` is the power :math:`\ell`. Returns logits ``[N, out_channels]``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_layers: int = 2,
        dropout: float = 0.0,
        epsilon: float = 0.0,
        *,
        transform: Any | None = None,
        filters: str = "haar",
        levels: int = 1,
        scale: float = 2.0,
        order: int = 8,
        method: str = "chebyshev",
        lambda_max: float | str | None = None,
        alpha: float | None = None,
        sparse_input: float = SPARSE_INPUT_DENSITY,
    ) -> None:
        super().__init__(
            epsilon=epsilon,
            transform=transform,
            filters=filters,
            levels=levels,
            scale=scale,
            order=order,
            method=method,
            lambda_max=lambda_max,
            alpha=alpha,
        )
        if num_layers < 1:
            raise ConfigError(f"SimplifiedFramelet needs num_layers >= 1, got {num_layers}")
        self.num_layers = int(num_layers)
        self.dropout = float(dropout)
        self.weight = nn.Parameter(torch.empty(self.num_channels, in_channels, out_channels))
        self.bias = nn.Parameter(torch.empty(out_channels))
        self._sparse_input = SparseInput(sparse_input)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for theta in self.weight:
            nn.init.xavier_uniform_(theta)
        nn.init.zeros_(self.bias)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        transform, propagate = self._operators(x, edge_index)
        h = input_dropout(self._sparse_input(x), self.dropout, self.training)
        z = transform.apply_each(channel_project(h, self.weight))
        for k in range(self.num_layers):
            z = propagate(z)
            if k + 1 < self.num_layers:
                z = transform.apply_each(transform.apply_each(z))
        return transform.reconstruct(z) + self.bias


class GCN(pyg_models.GCN):
    """PyG :class:`~torch_geometric.nn.models.GCN` with the framekd teacher signature.

    Features with at most ``sparse_input`` non-zeros enter the first layer as a sparse matrix
    (:class:`SparseInput`); the other options go to PyG.
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        out_channels: int,
        num_layers: int = 2,
        dropout: float = 0.5,
        sparse_input: float = SPARSE_INPUT_DENSITY,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            in_channels,
            hidden_channels,
            num_layers,
            out_channels=out_channels,
            dropout=dropout,
            **kwargs,
        )
        self._sparse_input = SparseInput(sparse_input)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:  # type: ignore[override]
        return super().forward(self._sparse_input(x), edge_index)


class GraphSAGE(pyg_models.GraphSAGE):
    """PyG :class:`~torch_geometric.nn.models.GraphSAGE` with the framekd teacher signature."""

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        out_channels: int,
        num_layers: int = 2,
        dropout: float = 0.5,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            in_channels,
            hidden_channels,
            num_layers,
            out_channels=out_channels,
            dropout=dropout,
            **kwargs,
        )

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:  # type: ignore[override]
        return super().forward(x, edge_index)


class GAT(pyg_models.GAT):
    """PyG :class:`~torch_geometric.nn.models.GAT` with the framekd teacher signature.

    ``hidden_channels`` is the total hidden width; it is split over ``heads`` attention heads.
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        out_channels: int,
        num_layers: int = 2,
        dropout: float = 0.5,
        heads: int = 8,
        **kwargs: Any,
    ) -> None:
        if hidden_channels % heads != 0:
            raise ConfigError(
                f"GAT hidden_channels ({hidden_channels}) must be divisible by heads ({heads})"
            )
        super().__init__(
            in_channels,
            hidden_channels,
            num_layers,
            out_channels=out_channels,
            dropout=dropout,
            heads=heads,
            **kwargs,
        )

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:  # type: ignore[override]
        return super().forward(x, edge_index)


TEACHERS: dict[str, type[nn.Module]] = {
    "spatial": SpatialFramelet,
    "simplified": SimplifiedFramelet,
    "gcn": GCN,
    "sage": GraphSAGE,
    "gat": GAT,
}
_TEACHER_ALIASES = {"graphsage": "sage", "spatufg": "spatial", "simplified_ufg": "simplified"}


def build_teacher(name: str, in_channels: int, out_channels: int, **cfg: Any) -> nn.Module:
    """Build a teacher by name: ``spatial``, ``simplified``, ``gcn``, ``sage`` or ``gat``.

    ``cfg`` holds the model's keyword options (``hidden_channels``, ``num_layers``,
    ``dropout``, ``epsilon``, framelet options ...). ``hidden_channels`` defaults to 64 for
    the models that have one.
    """
    key = _TEACHER_ALIASES.get(name.lower(), name.lower())
    if key not in TEACHERS:
        raise ConfigError(f"unknown teacher {name!r}; choose one of {sorted(TEACHERS)}")
    cls = TEACHERS[key]
    if key != "simplified":
        cfg.setdefault("hidden_channels", 64)
    try:
        return cls(in_channels=in_channels, out_channels=out_channels, **cfg)
    except TypeError as err:
        raise ConfigError(f"bad option for teacher {key!r}: {err}") from err
