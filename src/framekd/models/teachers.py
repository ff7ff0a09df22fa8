r"""Teacher GNNs: graph framelet networks and standard PyG baselines (docs/SPEC.md §4).

Every teacher is a :class:`torch.nn.Module` with ``reset_parameters()`` and the same call
``model(x, edge_index) -> logits`` where ``logits`` is the ``[N, num_classes]`` matrix of
**unnormalised class scores** (no ``log_softmax``); the trainers in :mod:`framekd.distill`
apply ``log_softmax`` where probabilities are needed. Every constructor takes
``in_channels, hidden_channels, out_channels`` (the simplified framelet network has no hidden
layer) and keyword-only options after them.

The framelet teachers use the :class:`~framekd.framelets.FrameletOperator` of the graph they
are called with (or the one passed as ``operator=``): operators are cached by the graph's
hash (:func:`~framekd.framelets.framelet_operator`), so a teacher follows the graph it is
given, and several teachers of one graph share one λ_max estimate. The graph knowledge of the
students (:func:`framekd.knowledge.graph_knowledge`) is computed by the same operator.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import models as pyg_models

from framekd.errors import ConfigError
from framekd.framelets import FrameletOperator, FrameletSpec, framelet_operator
from framekd.framelets.transform import Transform
from framekd.models.sparse_input import SPARSE_INPUT_DENSITY, SparseInput, input_dropout
from framekd.models.stack import layer_widths


class _FrameletTeacher(nn.Module):
    """Shared plumbing: framelet settings and the operator of the graph in use."""

    def __init__(
        self,
        *,
        epsilon: float,
        framelet: FrameletSpec | Mapping[str, Any] | None,
        operator: FrameletOperator | None,
        transform: Transform | None,
        framelet_options: Mapping[str, Any],
    ) -> None:
        super().__init__()
        self.epsilon = float(epsilon)
        if not math.isfinite(self.epsilon):
            raise ConfigError(f"epsilon must be a finite number, got {epsilon!r}")
        if operator is not None and transform is not None:
            raise ConfigError("pass either operator= or transform=, not both")
        given = operator.transform if operator is not None else transform
        if given is not None and (framelet is not None or framelet_options):
            raise ConfigError(
                "framelet settings come from the given operator/transform; do not pass "
                "framelet options as well"
            )
        unknown = sorted(set(framelet_options) - set(FrameletSpec.__dataclass_fields__))
        if unknown:
            raise TypeError(f"unexpected keyword argument(s) {', '.join(unknown)}")
        if given is not None:
            self.framelet = getattr(given, "spec", None)
            self.num_channels = int(given.num_channels)
        else:
            self.framelet = FrameletSpec.coerce(framelet, **framelet_options)
            self.num_channels = self.framelet.num_channels
        # Plain attributes, not submodules: operators are shared between models and stay out
        # of state_dict, parameters() and .to().
        self.__dict__["_given_operator"] = operator
        self.__dict__["_given_transform"] = transform
        self.reset_cache()

    def reset_cache(self) -> None:
        """Forget the graph bound on the last call; the next call looks it up again."""
        self.__dict__["_bound"] = None

    def operator(self, x: Tensor, edge_index: Tensor) -> FrameletOperator:
        r"""The :class:`~framekd.framelets.FrameletOperator` (:math:`W_c`, :math:`\hat A_c`)
        of this call's graph, on ``x``'s device and dtype."""
        bound = self.__dict__["_bound"]
        key = (x.size(0), edge_index._version, x.dtype, x.device)
        if bound is not None and bound[0]() is edge_index and bound[1] == key:
            return bound[2]
        op = self.__dict__["_given_operator"]
        given = self.__dict__["_given_transform"]
        if op is None and given is not None:
            op = FrameletOperator(edge_index, x.size(0), transform=given, epsilon=self.epsilon)
        elif op is None:
            op = framelet_operator(edge_index, x.size(0), self.framelet, epsilon=self.epsilon,
                                   dtype=x.dtype, device=x.device)
        if op.num_nodes != x.size(0):
            raise ConfigError(
                f"the framelet operator was built for {op.num_nodes} nodes but x has "
                f"{x.size(0)} rows; build it on this graph"
            )
        self.__dict__["_bound"] = (weakref.ref(edge_index), key, op)
        return op

    @property
    def transform(self) -> Transform | None:
        """The framelet transform in use (``None`` before the first forward call)."""
        bound = self.__dict__["_bound"]
        return None if bound is None else bound[2].transform

    def extra_repr(self) -> str:
        spec = self.framelet if self.framelet is not None else "given transform"
        return f"channels={self.num_channels}, epsilon={self.epsilon}, framelet={spec}"


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
    r"""One spatial framelet layer (SpatUFG, docs/SPEC.md §4):

    .. math::
        H' = \sum_{c \in \mathcal{C}} W_c \, \mathrm{ReLU}\big(\hat A_c \, W_c \, H \Theta_c\big)
             + b,

    with a weight :math:`\Theta_c \in \mathbb{R}^{d_{in} \times d_{out}}` per framelet channel
    and one shared bias. :math:`W_c` acts through the operator's matrix-free transform
    (``apply_each`` for the analysis, ``reconstruct`` for the synthesis, using
    :math:`W_c^\top = W_c`); :math:`\hat A_c` is the operator's ``propagate``.

    Args:
        in_channels: :math:`d_{in}`.
        out_channels: :math:`d_{out}`.
        num_channels: number of framelet channels C.

    Shapes:
        ``h`` ``[N, d_in]`` (dense or sparse CSR) → ``[N, d_out]``.
    """

    def __init__(self, in_channels: int, out_channels: int, *, num_channels: int) -> None:
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
        r"""The products :math:`H\Theta_c` of every channel, ``[C, N, d_out]``."""
        return channel_project(h, self.weight)

    def channel_outputs(self, h: Tensor, operator: FrameletOperator) -> Tensor:
        r"""Per channel, :math:`\mathrm{ReLU}(\hat A_c W_c H \Theta_c)`, ``[C, N, d_out]``:
        what the synthesis sums (H Θ_c first: cheaper than W_c H when d_out < d_in)."""
        t = operator.transform
        return F.relu(operator.propagate(t.apply_each(self.project(h))))

    def forward(self, h: Tensor, operator: FrameletOperator) -> Tensor:
        return operator.transform.reconstruct(self.channel_outputs(h, operator)) + self.bias

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, channels={self.weight.size(0)}"


class SpatialFramelet(_FrameletTeacher):
    r"""Spatial graph framelet network (SpatUFG teacher, docs/SPEC.md §4).

    ``num_layers`` :class:`SpatialFrameletConv` layers (``in -> hidden -> ... -> out``) with
    dropout between layers; the only non-linearity is the ReLU inside each layer, as in the
    reference. Energy perturbation :math:`\varepsilon` (a float) shifts the propagation
    operator per channel: :math:`\hat A_{low} = \hat A - \varepsilon \tilde D^{-1}`,
    :math:`\hat A_{high} = \hat A + \varepsilon \tilde D^{-1}`.

    Args:
        in_channels, hidden_channels, out_channels: layer widths.
        num_layers: number of framelet layers (>= 1).
        dropout: dropout probability between layers.
        epsilon: the energy perturbation ε.
        framelet: the :class:`~framekd.framelets.FrameletSpec` (or a mapping); keyword
            ``framelet_options`` (``filters=``, ``levels=``, ...) override its fields.
        operator: a prebuilt :class:`~framekd.framelets.FrameletOperator` to use for every
            call (its settings and ε win); by default the operator of the call's graph.
        transform: a prebuilt transform (anything with the
            :class:`~framekd.framelets.transform.Transform` methods) combined with ε.
        sparse_input: features with at most this fraction of non-zeros enter the first
            layer as a sparse matrix (:class:`SparseInput`; 0 turns it off).

    Shapes:
        ``x`` ``[N, in_channels]``, ``edge_index`` ``[2, E]`` (canonical) →
        ``[N, out_channels]`` logits.
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        out_channels: int,
        *,
        num_layers: int = 2,
        dropout: float = 0.0,
        epsilon: float = 0.0,
        framelet: FrameletSpec | Mapping[str, Any] | None = None,
        operator: FrameletOperator | None = None,
        transform: Transform | None = None,
        sparse_input: float = SPARSE_INPUT_DENSITY,
        **framelet_options: Any,
    ) -> None:
        super().__init__(epsilon=epsilon, framelet=framelet, operator=operator,
                         transform=transform, framelet_options=framelet_options)
        widths = layer_widths(in_channels, hidden_channels, out_channels, num_layers,
                              "SpatialFramelet")
        self.dropout = float(dropout)
        self.convs = nn.ModuleList(
            SpatialFrameletConv(a, b, num_channels=self.num_channels) for a, b in widths
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
                h = F.dropout(h, p=self.dropout, training=self.training)
            h = conv(h, operator)
        return h


class SimplifiedFramelet(_FrameletTeacher):
    r"""Simplified (linear, SGC-like) framelet network (docs/SPEC.md §4):

    .. math::
        Y = \sum_{c \in \mathcal{C}} (W_c^\top \hat A_c W_c)^{\ell} X \Theta_c + b .

    The model is linear, so it is evaluated right to left, matrix-free: :math:`Z_c =
    X\Theta_c` first (``[N, out]``, a sparse product for bag-of-words features, see
    :class:`SparseInput`), then :math:`K_c^\ell Z_c` by the operator's
    :meth:`~framekd.framelets.FrameletOperator.powers` (the same code that computes the
    students' knowledge), summed over channels. The ``features`` knowledge
    :math:`K_c^\ell X` (``[C, N, d]``) is never formed. Dropout acts on the input features.

    Args:
        in_channels, out_channels: input and output widths.
        num_layers: the power :math:`\ell` (>= 1).
        dropout, epsilon, framelet, operator, transform, sparse_input, framelet_options:
            as in :class:`SpatialFramelet`.

    Shapes:
        ``x`` ``[N, in_channels]``, ``edge_index`` ``[2, E]`` → ``[N, out_channels]``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        num_layers: int = 2,
        dropout: float = 0.0,
        epsilon: float = 0.0,
        framelet: FrameletSpec | Mapping[str, Any] | None = None,
        operator: FrameletOperator | None = None,
        transform: Transform | None = None,
        sparse_input: float = SPARSE_INPUT_DENSITY,
        **framelet_options: Any,
    ) -> None:
        super().__init__(epsilon=epsilon, framelet=framelet, operator=operator,
                         transform=transform, framelet_options=framelet_options)
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
        operator = self.operator(x, edge_index)
        h = input_dropout(self._sparse_input(x), self.dropout, self.training)
        return operator.power(channel_project(h, self.weight), self.num_layers).sum(0) + self.bias


class GCN(pyg_models.GCN):
    """PyG :class:`~torch_geometric.nn.models.GCN` with the framekd teacher signature.

    Unlike PyG's, the third positional argument is ``out_channels``; ``num_layers`` and the
    rest are keyword-only, so PyG-style positional calls fail loudly instead of silently
    meaning something else. Features with at most ``sparse_input`` non-zeros enter the first
    layer as a sparse matrix (:class:`SparseInput`); other options go to PyG.

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
        sparse_input: float = SPARSE_INPUT_DENSITY,
        **kwargs: Any,
    ) -> None:
        super().__init__(in_channels, hidden_channels, num_layers, out_channels=out_channels,
                         dropout=dropout, **kwargs)
        self._sparse_input = SparseInput(sparse_input)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:  # type: ignore[override]
        return super().forward(self._sparse_input(x), edge_index)


class GraphSAGE(pyg_models.GraphSAGE):
    """PyG :class:`~torch_geometric.nn.models.GraphSAGE` with the framekd teacher signature
    (``in, hidden, out`` positional, the rest keyword-only; see :class:`GCN`).

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
        **kwargs: Any,
    ) -> None:
        super().__init__(in_channels, hidden_channels, num_layers, out_channels=out_channels,
                         dropout=dropout, **kwargs)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:  # type: ignore[override]
        return super().forward(x, edge_index)


class GAT(pyg_models.GAT):
    """PyG :class:`~torch_geometric.nn.models.GAT` with the framekd teacher signature
    (``in, hidden, out`` positional, the rest keyword-only; see :class:`GCN`).

    ``hidden_channels`` is the total hidden width; it is split over ``heads`` attention heads.

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
        heads: int = 8,
        **kwargs: Any,
    ) -> None:
        if hidden_channels % heads != 0:
            raise ConfigError(
                f"GAT hidden_channels ({hidden_channels}) must be divisible by heads ({heads})"
            )
        super().__init__(in_channels, hidden_channels, num_layers, out_channels=out_channels,
                         dropout=dropout, heads=heads, **kwargs)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:  # type: ignore[override]
        return super().forward(x, edge_index)
