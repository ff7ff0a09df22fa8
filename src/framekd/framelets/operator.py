r"""The framelet knowledge operator :math:`K_c = W_c^\top \hat A_c W_c` of one graph
(docs/SPEC.md §3–4).

:class:`FrameletOperator` bundles the framelet transform :math:`\{W_c\}` and the per-channel
propagation :math:`\hat A_c` (with the energy perturbation ε). It is the one place where
:math:`K_c^k` is computed: the graph knowledge handed to the students
(:func:`framekd.knowledge.graph_knowledge`) and both framelet teachers use it, so teacher and
students cannot drift apart.

:func:`framelet_operator` returns the operator of a graph from a small cache keyed by the
graph's hash (not its size), the framelet settings, ε, dtype and device: building one costs a
λ_max estimate, which then happens once per graph however many seeds or models use it.
"""

from __future__ import annotations

import copy
import weakref
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from framekd.errors import ConfigError
from framekd.framelets.spec import FrameletSpec
from framekd.framelets.transform import FrameletTransform, Transform
from framekd.graph import graph_hash
from framekd.operators import ChannelPropagation

#: The fixed products of the input features (:meth:`FrameletOperator.input_product`) a
#: teacher may precompute; ``W``: :math:`W_c X`, ``AW``: :math:`\hat A_c W_c X`, ``WW``:
#: :math:`W_c W_c X`, ``WAW``: :math:`K_c X = W_c \hat A_c W_c X`.
INPUT_PRODUCTS = ("W", "AW", "WW", "WAW")
#: Feature columns per block of the precompute: one sparse product of a few hundred columns
#: runs out of cache, blocks of this width do not.
INPUT_BLOCK = 64


class FrameletOperator(nn.Module):
    r"""The channel operators of one graph and the knowledge operator built from them:

    .. math::
        K_c = W_c^\top \hat A_c W_c = W_c \hat A_c W_c, \qquad
        \hat A_c = \hat A \mp \varepsilon \tilde D^{-1}
        \text{ (low pass } -\text{, high passes } +\text{)}.

    Args:
        edge_index: canonical ``[2, E]`` edges.
        num_nodes: N.
        framelet: the :class:`~framekd.framelets.FrameletSpec` (or a mapping of its fields);
            ignored when ``transform`` is given.
        epsilon: the energy perturbation ε.
        dtype: floating dtype of the operators.
        transform: a prebuilt :class:`~framekd.framelets.FrameletTransform` of this graph.

    Shapes:
        :meth:`powers`: ``[N, d]`` (one input for every channel) or ``[C, N, d]`` (one per
        channel) → ``[C, N, d]`` per power.
    """

    def __init__(
        self,
        edge_index: Tensor,
        num_nodes: int,
        framelet: FrameletSpec | Mapping[str, Any] | None = None,
        *,
        epsilon: float = 0.0,
        dtype: torch.dtype = torch.float32,
        transform: Transform | None = None,
    ) -> None:
        super().__init__()
        if transform is None:
            transform = FrameletTransform(edge_index, num_nodes, framelet, dtype=dtype)
        elif transform.num_nodes != num_nodes:
            raise ConfigError(
                f"the transform was built for {transform.num_nodes} nodes but the graph has "
                f"{num_nodes}; build FrameletTransform on this graph"
            )
        self.transform = transform
        self.propagate = ChannelPropagation(
            edge_index, num_nodes, transform.num_channels, epsilon, dtype=transform.dtype
        ).to(transform.device)

    @property
    def spec(self) -> FrameletSpec:
        return self.transform.spec

    @property
    def num_channels(self) -> int:
        return self.transform.num_channels

    @property
    def num_nodes(self) -> int:
        return self.transform.num_nodes

    @property
    def epsilon(self) -> float:
        return self.propagate.epsilon

    @property
    def dtype(self) -> torch.dtype:
        return self.transform.dtype

    @property
    def device(self) -> torch.device:
        return self.transform.device

    def powers(self, m: Tensor, num_powers: int) -> Iterator[Tensor]:
        r"""Yield :math:`K_c^k m_c` for :math:`k = 1..` ``num_powers``, each ``[C, N, d]``.

        A ``[N, d]`` input is shared by every channel, and its analysis :math:`W_c m` shares
        the low-pass chain between channels; a ``[C, N, d]`` input has one slice per channel.
        Each power costs one propagation :math:`\hat A_c` and two channel-wise transforms.
        Inputs wider than ``2 * INPUT_BLOCK`` columns are processed in column blocks of
        :data:`INPUT_BLOCK` (the same values; all powers are then held until the last block).
        """
        if m.size(-1) > 2 * INPUT_BLOCK:
            # Column blocks: every map acts on columns separately, and a few hundred columns
            # at once run out of cache (the knowledge of a dense graph, BENCHMARKS.md §10).
            blocks = [list(self._powers(b.contiguous(), num_powers))
                      for b in m.split(INPUT_BLOCK, -1)]
            for k in range(num_powers):
                yield torch.cat([b[k] for b in blocks], -1)
            return
        yield from self._powers(m, num_powers)

    def _powers(self, m: Tensor, num_powers: int) -> Iterator[Tensor]:
        t = self.transform
        v = t.apply(m) if m.dim() == 2 else t.apply_each(m)
        for k in range(num_powers):
            if k > 0:
                v = t.apply_each(v)
            v = t.apply_each(self.propagate(v))
            yield v

    def power(self, m: Tensor, k: int) -> Tensor:
        r""":math:`K_c^k m_c` for one power ``k >= 1`` (see :meth:`powers`)."""
        out = m
        for out in self.powers(m, k):  # noqa: B007 - only the last power is kept
            pass
        return out

    def input_product(self, x: Tensor, kind: str) -> Tensor:
        r"""A fixed product of the input features ``x`` ``[N, d]``, ``[C, N, d]``, computed
        once and kept while the same ``x``, unmodified, comes back.

        ``kind`` is one of :data:`INPUT_PRODUCTS`: ``"W"`` (:math:`W_c X`), ``"AW"``
        (:math:`\hat A_c W_c X`), ``"WW"`` (:math:`W_c W_c X`) or ``"WAW"``
        (:math:`K_c X`). A teacher whose first layer applies these operators to
        :math:`X\Theta` gets the same values from :math:`(\cdot X)\Theta` (associativity;
        only the rounding differs) without the graph products at every step. Computed
        without gradient (``x`` is data, not a parameter), in column blocks of
        :data:`INPUT_BLOCK`.
        """
        if kind not in INPUT_PRODUCTS:
            raise ConfigError(f"kind must be one of {', '.join(INPUT_PRODUCTS)}, got {kind!r}")
        key = (x._version, tuple(x.shape), x.dtype, x.device)
        cache = self.__dict__.get("_inputs")
        if cache is None or cache[0]() is not x or cache[1] != key:
            cache = (weakref.ref(x), key, {})
            self.__dict__["_inputs"] = cache
        products = cache[2]
        if kind not in products:
            with torch.no_grad():
                products[kind] = self._input_product(x, kind, products)
        return products[kind]

    def _input_product(self, x: Tensor, kind: str, done: dict[str, Tensor]) -> Tensor:
        t = self.transform
        if kind == "W":
            blocks = [t.apply(b.contiguous()) for b in x.split(INPUT_BLOCK, 1)]
            return torch.cat(blocks, 2)
        source = "AW" if kind == "WAW" else "W"
        if source not in done:
            done[source] = self._input_product(x, source, done)
        step = self.propagate if kind == "AW" else t.apply_each
        return torch.cat([step(b.contiguous()) for b in done[source].split(INPUT_BLOCK, 2)], 2)

    def input_product_bytes(self, x: Tensor) -> int:
        """Bytes of one :meth:`input_product` of ``x`` (``C·N·d`` values)."""
        return self.num_channels * x.numel() * x.element_size()

    def extra_repr(self) -> str:
        return f"channels={self.num_channels}"


#: How many operators :func:`framelet_operator` keeps (each holds one graph's sparse
#: matrices; the ``exact`` method also holds N×N eigenvectors).
CACHE_SIZE = 4
_OPERATORS: OrderedDict[tuple, FrameletOperator] = OrderedDict()
_TRANSFORMS: OrderedDict[tuple, FrameletTransform] = OrderedDict()


def _lookup(cache: OrderedDict, key: tuple, build) -> Any:
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    value = cache[key] = build()
    while len(cache) > CACHE_SIZE:
        cache.popitem(last=False)
    return value


def framelet_operator(
    edge_index: Tensor,
    num_nodes: int,
    framelet: FrameletSpec | Mapping[str, Any] | None = None,
    *,
    epsilon: float = 0.0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    graph_key: str | None = None,
) -> FrameletOperator:
    """The :class:`FrameletOperator` of a graph, from a cache keyed by
    :func:`framekd.graph.graph_hash` (pass ``graph_key`` when it is already known), the
    framelet settings, ε, dtype and device.

    The transform (and its λ_max estimate) is shared between operators that differ only in
    ε. Cached operators are shared: do not move them with ``.to()``, ask for the device.
    """
    spec = FrameletSpec.coerce(framelet)
    device = torch.device("cpu" if device is None else device)
    graph = graph_key or graph_hash(edge_index, num_nodes)
    base = (graph, int(num_nodes), spec, dtype)

    def build_transform() -> FrameletTransform:
        if device.type == "cpu":
            return FrameletTransform(edge_index, num_nodes, spec, dtype=dtype)
        cpu = _lookup(_TRANSFORMS, (*base, torch.device("cpu")), lambda: FrameletTransform(
            edge_index, num_nodes, spec, dtype=dtype))
        return copy.deepcopy(cpu).to(device)

    def build() -> FrameletOperator:
        transform = _lookup(_TRANSFORMS, (*base, device), build_transform)
        return FrameletOperator(edge_index, num_nodes, transform=transform, epsilon=epsilon)

    return _lookup(_OPERATORS, (*base, float(epsilon), device), build)


def clear_operator_cache() -> None:
    """Forget every cached operator and transform."""
    _OPERATORS.clear()
    _TRANSFORMS.clear()
