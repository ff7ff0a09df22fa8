r"""Knowledge rows of a few nodes, computed from their receptive field (docs/SPEC.md §3).

Row i of :math:`K_c^k M` only depends on the nodes within the polynomial's reach of i
(:func:`knowledge_radius` hops), so the rows of a handful of nodes (new or unseen nodes at
test time, a query) are computed on that subgraph instead of the whole graph, with the
full graph's degrees and λ_max so that they equal the full computation's rows.
:func:`receptive_field` reports the subgraph's size; :func:`knowledge_rows` computes the rows.

On a small-world graph the exact field of the default settings (30 hops) is the whole graph.
``tol > 0`` computes **approximate** rows on the *significant* field instead
(:func:`significant_nodes`): the nodes that some walk of at most r steps from a query node
reaches with weight at least ``tol``, pruned as the walks spread; ``tol = 0`` is exact.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from torch import Tensor

from framekd.errors import ConfigError, MemoryBudgetError
from framekd.framelets import FrameletOperator, FrameletSpec, FrameletTransform
from framekd.graph import ensure_valid
from framekd.knowledge import (
    DEFAULT_MEMORY_BUDGET,
    KnowledgeSpec,
    _block_width,
    checked_inputs,
    graph_knowledge,
    sketch_matrix,
)
from framekd.operators import estimate_lambda_max


def knowledge_radius(framelet: FrameletSpec | Mapping[str, Any] | None, powers: int) -> int | None:
    r"""Hop radius r of the knowledge: row i of :math:`K_c^k M`, k <= ``powers``, depends
    only on the rows of M within r hops of i (``None``: unbounded, ``method="exact"``).

    With the Chebyshev method every :math:`W_c` is a polynomial in :math:`L` of degree
    :math:`l\,(\mathrm{order}-1) \le \mathrm{Lev}\,(\mathrm{order}-1)`: the transform runs one
    recurrence of ``order - 1`` sparse products per level, and channel (r, l) is
    :math:`g_r(t_l L)` after the ``l - 1`` shared low passes before it (``apply`` shares the
    chain between channels, ``apply_each`` repeats it per channel: the degree is the same).
    :math:`\hat A_c = \hat A \mp \varepsilon \tilde D^{-1}` has degree 1, so
    :math:`K_c = W_c \hat A_c W_c` has degree :math:`2\,\mathrm{Lev}(\mathrm{order}-1) + 1`
    and :meth:`~framekd.framelets.FrameletOperator.powers` applies it k times:

    .. math::
        r = \mathrm{powers} \cdot \big(2\,\mathrm{Lev}\,(\mathrm{order} - 1) + 1\big).

    A polynomial of degree r in sparse matrices of the graph (and diagonal ones) only
    follows walks of at most r edges. The ``exact`` method's :math:`U g(t\Lambda) U^\top` is
    dense on every connected component: no finite radius.
    """
    spec = FrameletSpec.coerce(framelet)
    if isinstance(powers, bool) or not isinstance(powers, int) or powers < 1:
        raise ConfigError(f"powers must be an integer >= 1, got {powers!r}")
    if spec.method == "exact":
        return None
    return powers * (2 * spec.levels * (spec.order - 1) + 1)


@dataclass(frozen=True)
class ReceptiveField:
    """Size of the subgraph :func:`knowledge_rows` computes on (see :func:`receptive_field`).

    Attributes:
        radius: hops (:func:`knowledge_radius`); ``None`` when unbounded (the whole graph).
        num_nodes, num_edges: nodes within ``radius`` hops of the query nodes and the
            undirected edges among them.
        padding_nodes, padding_edges: placeholder leaves (and their undirected edges) that
            give the border nodes their full-graph degree (never reached within the radius).
        graph_nodes, graph_edges: N and the undirected edges of the full graph.
        tol: the pruning tolerance of an approximate field (:func:`significant_nodes`);
            0.0 for the exact ``radius``-hop field.
    """

    radius: int | None
    num_nodes: int
    num_edges: int
    padding_nodes: int
    padding_edges: int
    graph_nodes: int
    graph_edges: int
    tol: float = 0.0

    @property
    def fraction(self) -> float:
        """``num_nodes / graph_nodes``: 1.0 when the field is the whole graph."""
        return self.num_nodes / max(1, self.graph_nodes)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "fraction": self.fraction}


@dataclass
class _Ball:
    subset: Tensor  # [S] sorted original ids of the nodes within the radius
    edge_index: Tensor  # canonical edges of the subset (relabelled) plus the padding
    num_nodes: int  # S + padding
    mapping: Tensor  # position of each query node in subset
    field: ReceptiveField


def _query_nodes(nodes: Any, num_nodes: int) -> Tensor:
    index = torch.as_tensor(nodes).cpu()
    if index.dtype == torch.bool:
        if index.numel() != num_nodes:
            raise ConfigError(f"a node mask must have {num_nodes} entries, got {index.numel()}")
        return index.nonzero().view(-1)
    if index.dtype.is_floating_point:
        raise ConfigError(f"nodes must be integer indices or a boolean mask, got {index.dtype}")
    index = index.long().view(-1)
    if index.numel() and (int(index.min()) < 0 or int(index.max()) >= num_nodes):
        raise ConfigError(f"node index out of range [0, {num_nodes}) in nodes")
    return index


def significant_nodes(edge_index: Tensor, num_nodes: int, nodes: Any, radius: int,
                      tol: float) -> Tensor:
    r"""The query ``nodes`` and every node that a pruned walk of at most ``radius`` steps from
    one of them reaches with weight at least ``tol`` (sorted ids).

    Walk weights are those of :math:`P = D^{-1/2} A D^{-1/2}`, the matrix every framelet
    polynomial is built from: :math:`w_0 = e_i`, :math:`w_h = \mathrm{prune}(P\,w_{h-1})`,
    where ``prune`` drops the entries below ``tol`` (in absolute value) before the next
    step, so the walks stop spreading once their weight is spread thin (as in push-style
    approximate personalised PageRank). One sparse vector per query node, so the cost follows
    the nodes reached, not N (plus one pass over the edges to build P). ``tol = 0`` keeps
    every node within ``radius`` hops: the exact field.
    """
    import numpy as np
    import scipy.sparse as sp

    query = _query_nodes(nodes, num_nodes)
    src, dst = edge_index.cpu().numpy()
    deg = np.bincount(src, minlength=num_nodes).astype(np.float64)
    dinv = np.divide(1.0, np.sqrt(deg), out=np.zeros_like(deg), where=deg > 0)
    p = sp.csr_matrix((dinv[src] * dinv[dst], (src, dst)), shape=(num_nodes, num_nodes))
    q = int(query.numel())
    walks = sp.csr_matrix((np.ones(q), (np.arange(q), query.numpy())), shape=(q, num_nodes))
    keep = np.zeros(num_nodes, dtype=bool)
    keep[query.numpy()] = True
    for _ in range(radius):
        walks = walks @ p  # P is symmetric: row vectors w^T P = (P w)^T
        walks.data[np.abs(walks.data) < tol] = 0.0
        walks.eliminate_zeros()
        if walks.nnz == 0:
            break
        keep[walks.indices] = True
    return torch.from_numpy(np.flatnonzero(keep))


def _ball(edge_index: Tensor, num_nodes: int, nodes: Tensor, radius: int | None,
          *, pad: bool = True, tol: float = 0.0) -> _Ball:
    r"""The ``radius``-hop subgraph around ``nodes`` (relabelled), padded so that every node
    keeps its full-graph degree; with ``tol > 0`` the :func:`significant_nodes` instead.

    Only the nodes at distance exactly ``radius`` lose neighbours in the induced subgraph.
    A border node u missing :math:`\delta_u` neighbours is joined to :math:`\delta_u`
    placeholder nodes (shared between border nodes: ``max δ`` of them). Every walk of at
    most ``radius`` steps from a query node stays within the ball and never reaches a
    placeholder (that takes ``radius + 1`` steps), while every degree a walk weight uses
    (:math:`D^{-1/2} A D^{-1/2}`, :math:`\tilde D^{-1/2}(A + I)\tilde D^{-1/2}`,
    :math:`\tilde D^{-1}`) is the full graph's. In a
    significant field (``tol > 0``) walks do reach placeholders, whose rows of M are zero:
    the rows are then those of the same polynomial on a graph whose insignificant nodes are
    replaced by featureless leaves, an approximation (BENCHMARKS.md §11.5 measures it).
    """
    from torch_geometric.utils import coalesce, k_hop_subgraph, subgraph

    ei = edge_index.long().cpu()
    graph_edges = int(ei.size(1)) // 2
    if radius is None:
        field = ReceptiveField(None, num_nodes, graph_edges, 0, 0, num_nodes, graph_edges)
        return _Ball(torch.arange(num_nodes), ei, num_nodes, nodes, field)
    if tol > 0:
        subset = significant_nodes(ei, num_nodes, nodes, radius, tol)
        sub, _ = subgraph(subset, ei, relabel_nodes=True, num_nodes=num_nodes)
        mapping = torch.searchsorted(subset, nodes)
    else:
        subset, sub, mapping, _ = k_hop_subgraph(nodes, radius, ei, relabel_nodes=True,
                                                 num_nodes=num_nodes)
    s = int(subset.numel())
    inner = int(sub.size(1)) // 2
    deficit = (torch.bincount(ei[0], minlength=num_nodes)[subset]
               - torch.bincount(sub[0], minlength=s))
    extra = int(deficit.max()) if (pad and s) else 0
    total = int(deficit.sum()) if extra else 0
    if extra:
        src = torch.repeat_interleave(torch.arange(s), deficit)
        first = torch.repeat_interleave(torch.cumsum(deficit, 0) - deficit, deficit)
        dst = s + torch.arange(total) - first
        sub = coalesce(torch.cat([sub, torch.stack([src, dst]), torch.stack([dst, src])], 1),
                       num_nodes=s + extra)
    field = ReceptiveField(radius, s, inner, extra, total, num_nodes, graph_edges, float(tol))
    return _Ball(subset, sub, s + extra, mapping, field)


def check_tol(tol: float) -> float:
    """``tol`` as a float after checking it is a pruning tolerance in [0, 1)."""
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0.0 <= tol < 1.0:
        raise ConfigError(f"tol must be a number in [0, 1) (0: exact rows), got {tol!r}")
    return float(tol)


def _local_settings(
    num_nodes: int, operator: FrameletOperator | None, framelet: Any, epsilon: float,
    dtype: torch.dtype | None, lambda_max: float | None, edge_index: Tensor,
) -> tuple[FrameletSpec | None, float, torch.dtype, torch.device, float | None]:
    """``(framelet spec or None for an opaque transform, ε, dtype, device, λ_max)``."""
    if operator is not None:
        if operator.num_nodes != num_nodes:
            raise ConfigError(
                f"the operator was built for {operator.num_nodes} nodes but the graph has "
                f"{num_nodes}; pass the full graph's operator"
            )
        t = operator.transform
        spec = t.spec if isinstance(t, FrameletTransform) else None
        lam = float(t.lambda_max) if spec is not None else None
        return spec, operator.epsilon, operator.dtype, operator.device, lam
    if not math.isfinite(float(epsilon)):
        raise ConfigError(f"epsilon must be a finite number, got {epsilon!r}")
    spec = FrameletSpec.coerce(framelet)
    if lambda_max is None and spec.method == "chebyshev":
        given = spec.lambda_max
        lambda_max = (2.0 if given == "bound" else
                      estimate_lambda_max(edge_index, num_nodes) if given == "estimate"
                      else float(given))
    return spec, float(epsilon), dtype or torch.float32, torch.device("cpu"), lambda_max


def receptive_field(
    edge_index: Tensor,
    num_nodes: int,
    nodes: Any,
    spec: KnowledgeSpec | None = None,
    *,
    operator: FrameletOperator | None = None,
    framelet: FrameletSpec | Mapping[str, Any] | None = None,
    tol: float = 0.0,
    **options: Any,
) -> ReceptiveField:
    """The size of the subgraph :func:`knowledge_rows` would compute ``nodes``' rows on:
    nodes and edges within :func:`knowledge_radius` hops (with ``tol > 0``: the
    :func:`significant_nodes`), plus the degree padding.

    The framelet settings come from ``operator`` (its spec) or ``framelet``; ``powers``
    from ``spec``/``options`` as in :func:`knowledge_rows`. Costs one hop search
    (``radius`` passes over the edge list; with ``tol > 0`` the pruned walks).
    """
    tol = check_tol(tol)
    spec = KnowledgeSpec(**{**(asdict(spec) if spec is not None else {}), **options})
    ensure_valid(edge_index, num_nodes)
    query = _query_nodes(nodes, num_nodes)
    if operator is not None:
        t = operator.transform
        fspec = t.spec if isinstance(t, FrameletTransform) else None
    else:
        fspec = FrameletSpec.coerce(framelet)
    radius = None if fspec is None else knowledge_radius(fspec, spec.powers)
    return _ball(edge_index, num_nodes, query, radius, tol=tol).field


def knowledge_rows(
    edge_index: Tensor,
    num_nodes: int,
    x: Tensor | None,
    nodes: Any,
    spec: KnowledgeSpec | None = None,
    *,
    operator: FrameletOperator | None = None,
    framelet: FrameletSpec | Mapping[str, Any] | None = None,
    epsilon: float = 0.0,
    dtype: torch.dtype | None = None,
    lambda_max: float | None = None,
    memory_budget: int | None = None,
    block_size: int | None = None,
    tol: float = 0.0,
    return_field: bool = False,
    **options: Any,
) -> Tensor | tuple[Tensor, ReceptiveField]:
    r"""The knowledge rows of ``nodes`` only: ``graph_knowledge(...)[:, :, nodes]``, computed
    from their receptive field instead of the whole graph.

    Row i of :math:`K_c^k M` is a sum over walks of at most
    :math:`r` = :func:`knowledge_radius` edges from i (every operator is a polynomial of
    that degree in sparse matrices of the graph), so it only needs the r-hop subgraph around
    ``nodes`` (``torch_geometric.utils.k_hop_subgraph``). Its normalisations must be the
    full graph's: the degrees in :math:`D^{-1/2} A D^{-1/2}`, :math:`\hat A` and
    :math:`\tilde D^{-1}` (nodes at distance r have lost neighbours in the subgraph: each
    gets placeholder leaves restoring its degree, which no walk of r steps reaches) and
    :math:`\lambda_{\max}` (the subgraph's transform is built with the full graph's value,
    hence the same scales :math:`t_l`). M is restricted to the subgraph: the full graph's
    sketch rows ``sketch_matrix(N, m, seed)[subset]`` (``sketch``), the subgraph's feature
    rows (``features``); for ``rows``, :math:`K_c^k` is symmetric, so row i is computed as
    the column :math:`K_c^k e_i` (width ``len(nodes)``) and scattered into N columns. For
    ``sketch`` and ``features`` with fewer query nodes than columns the same symmetry gives
    the rows as :math:`(K_c^k E_q)^\top M`: the q indicator columns are propagated instead
    of the width columns of M.

    **Approximate rows** (``tol > 0``): on a small-world graph the r-hop field is the whole
    graph, so exact rows cost a whole-graph propagation. With ``tol > 0`` the same
    computation runs on the :func:`significant_nodes` instead (walks of
    :math:`D^{-1/2}AD^{-1/2}` pruned below ``tol``), padded the same way: the rows of the
    polynomial on a graph where the nodes outside that field are featureless leaves. The
    error shrinks with ``tol`` (``tol = 0`` is exact); BENCHMARKS.md §11.5 measures it and
    the accuracy of trained students on such rows.

    Cost: one hop search (r passes over the E edges), then :math:`k\,(2\,\mathrm{Lev}
    (\mathrm{order}-1)+1)` sparse products per power on the receptive field (its
    :math:`N_r` nodes and :math:`E_r` edges plus the padding, see :func:`receptive_field`):
    :math:`O(\mathrm{powers}\cdot r/\mathrm{powers}\cdot(E_r + N_r)\cdot\min(q,
    \mathrm{width}))` time plus :math:`O(C\,\mathrm{powers}\,q\,N_r\,\mathrm{width})` for
    the products with M and :math:`O(C\,N_r\,\mathrm{width})` working memory instead of
    :math:`O(C\,N\,\mathrm{width})`. On a small-world graph the field of a large radius is
    the whole connected component (Cora with the defaults: r = 30), and then the full
    computation (cached once per graph) is the cheaper way to many rows.

    Args:
        edge_index, num_nodes, x, spec, options: as in :func:`graph_knowledge` (the full
            graph: x ``[N, d]`` for ``features``).
        nodes: node indices (repeats allowed) or a boolean mask ``[N]``.
        operator: the full graph's :class:`~framekd.framelets.FrameletOperator` (only its
            settings, ε, λ_max, dtype and device are read; nothing is computed on the full
            graph). A transform that is not a Chebyshev :class:`FrameletTransform` (``exact``
            or a custom one) has no finite radius: the rows then come from the full
            computation.
        framelet, epsilon, dtype: the settings when no ``operator`` is given.
        lambda_max: the full graph's λ_max when no ``operator`` is given (default: the
            spec's, estimated on the full graph when ``"estimate"``).
        memory_budget: bytes the result may take (``C·powers·len(nodes)·width`` values).
        block_size: columns of M processed at once.
        tol: 0 for exact rows; in (0, 1) for approximate rows on the significant field
            (see above; a transform without a finite radius always gives exact rows).
        return_field: also return the :class:`ReceptiveField` the rows were computed on
            (what :func:`receptive_field` reports, without a second search).

    Returns:
        ``[C, powers, len(nodes), width]``, on the operator's device and dtype;
        ``out[:, :, a]`` equals ``graph_knowledge(...)[:, :, nodes[a]]`` up to float
        rounding (``tol = 0``). With ``return_field``: ``(rows, field)``.
    """
    spec = checked_inputs(edge_index, num_nodes, x, spec, options)
    tol = check_tol(tol)
    query = _query_nodes(nodes, num_nodes)
    fspec, eps, dt, dev, lam = _local_settings(num_nodes, operator, framelet, epsilon, dtype,
                                               lambda_max, edge_index)
    width = spec.width(num_nodes, x)
    c = operator.num_channels if operator is not None else fspec.num_channels
    need = torch.empty((), dtype=dt).element_size() * c * spec.powers * query.numel() * width
    budget = DEFAULT_MEMORY_BUDGET if memory_budget is None else int(memory_budget)
    if need > budget:
        gib = 2**30
        raise MemoryBudgetError(
            f"{spec.mode} knowledge rows of {query.numel()} nodes need about {need / gib:.2f} "
            f"GiB, more than the memory budget of {budget / gib:.2f} GiB; ask for fewer nodes "
            "at a time" + (" or use mode='sketch'" if spec.mode == "rows" else "")
        )
    radius = None if fspec is None else knowledge_radius(fspec, spec.powers)
    if query.numel() == 0:
        empty = torch.zeros((c, spec.powers, 0, width), dtype=dt, device=dev)
        edges = int(edge_index.size(1)) // 2
        nothing = ReceptiveField(radius, 0, 0, 0, 0, num_nodes, edges, tol)
        return (empty, nothing) if return_field else empty
    ball = _ball(edge_index, num_nodes, query, radius, tol=tol)
    if radius is None:
        full = graph_knowledge(edge_index, num_nodes, x, spec, operator=operator,
                               framelet=fspec, epsilon=eps, dtype=dt)
        rows = full[:, :, query.to(full.device)]
    else:
        rows = _rows_on_ball(ball, num_nodes, x, spec, replace(fspec, lambda_max=lam), eps, dt,
                             dev, block_size)
    return (rows, ball.field) if return_field else rows


def _rows_on_ball(ball: _Ball, num_nodes: int, x: Tensor | None, spec: KnowledgeSpec,
                  framelet: FrameletSpec, epsilon: float, dtype: torch.dtype,
                  device: torch.device, block_size: int | None) -> Tensor:
    """The knowledge rows of the query nodes of ``ball``, computed on it (see
    :func:`knowledge_rows`)."""
    s, n_ball, q = int(ball.subset.numel()), ball.num_nodes, int(ball.mapping.numel())
    transform = FrameletTransform(ball.edge_index, n_ball, framelet, dtype=dtype).to(device)
    op = FrameletOperator(ball.edge_index, n_ball, transform=transform, epsilon=epsilon)
    c = op.num_channels
    width = spec.width(num_nodes, x)
    if spec.mode == "rows":
        cols, source = q, None
    else:
        rows_m = (sketch_matrix(num_nodes, spec.sketch_dim, seed=spec.seed, dtype=dtype,
                                rows=ball.subset) if spec.mode == "sketch"
                  else x.detach()[ball.subset.to(x.device)])
        source = torch.zeros((n_ball, width), dtype=dtype, device=device)
        source[:s] = rows_m.to(device=device, dtype=dtype)
        cols = width
    out = torch.zeros((c, spec.powers, q, width), dtype=dtype, device=device)
    at = ball.mapping.to(device)
    subset = ball.subset.to(device)
    if source is not None and q < width:
        # Fewer query nodes than columns: row i of K^k M is (K^k e_i)^T M (K symmetric), so
        # propagate the q indicator columns instead of the width columns of M.
        e = torch.zeros((n_ball, q), dtype=dtype, device=device)
        e[at, torch.arange(q, device=device)] = 1.0
        with torch.no_grad():
            for k, v in enumerate(op.powers(e, spec.powers)):
                out[:, k] = v.transpose(1, 2) @ source
        return out
    block = block_size or _block_width(n_ball, c, cols, dtype)
    with torch.no_grad():
        for start in range(0, cols, block):
            stop = min(cols, start + block)
            if source is None:
                m = torch.zeros((n_ball, stop - start), dtype=dtype, device=device)
                m[at[start:stop], torch.arange(stop - start, device=device)] = 1.0
            else:
                m = source[:, start:stop]
            for k, v in enumerate(op.powers(m, spec.powers)):
                if source is None:  # column K e_i is row i (K symmetric)
                    rows = out[:, k, start:stop]  # a view: [C, block, N]
                    rows[:, :, subset] = v[:, :s].transpose(1, 2)
                else:
                    out[:, k, :, start:stop] = v[:, at]
    return out
