r"""Answering for nodes that are new to the graph: what each model must compute, and no more.

A node that did not exist at training has no precomputed knowledge row, and a teacher has no
stored output for it. ``framekd bench speed --query new`` times what a deployment then does
(see :func:`framekd.bench.speed_benchmark`); the pieces are here:

* :func:`append_copies` makes the new nodes: copies of random existing nodes' feature rows,
  each joined to the neighbours of the node it copies (seeded);
* a student computes the new nodes' knowledge rows from their receptive field
  (:func:`framekd.receptive.knowledge_rows`, :func:`student_rows`), then runs on those rows;
* a teacher runs on the query nodes' receptive-field subgraph (:func:`teacher_on_subgraph`)
  with the hop radius :func:`teacher_radius` computed from its depth and framelet settings.

Both keep the training graph's :math:`\lambda_{\max}` (stored with the model in a
deployment; estimating it on the grown graph would be a whole-graph computation). Every
answer equals the whole grown graph's (``tests/test_bench_newnode.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.data import Data

from framekd.errors import ConfigError


def append_copies(data: Data, count: int, *, seed: int = 0) -> tuple[Data, Tensor]:
    """``data`` with ``count`` new nodes appended, and the new nodes' source nodes.

    New node ``N + j`` copies the feature row (and label) of a distinct random existing node
    ``source[j]`` and gets an undirected edge to every neighbour of ``source[j]`` (not to
    ``source[j]`` itself): a structural twin that, like a real newcomer, also changes its
    neighbours' degrees. The old nodes keep their ids; edges stay canonical (symmetric,
    sorted, no self-loops).

    Args:
        data: a graph with canonical ``edge_index`` and features ``x`` (``None``: the grown
            graph has none either).
        count: number of new nodes (at most N).
        seed: seed of the choice of source nodes.

    Returns:
        ``(grown, source)``: the grown graph (``N + count`` nodes) and ``source`` ``[count]``;
        the new nodes are ``N + arange(count)``.
    """
    from torch_geometric.utils import coalesce

    n = int(data.num_nodes)
    if not 1 <= count <= n:
        raise ConfigError(f"the number of new nodes must be in [1, {n}], got {count}")
    ei = data.edge_index
    gen = torch.Generator().manual_seed(int(seed))
    source = torch.randperm(n, generator=gen)[:count].to(ei.device)
    slot = torch.full((n,), -1, dtype=torch.long, device=ei.device)
    slot[source] = torch.arange(count, device=ei.device)
    hit = slot[ei[0]] >= 0
    new = n + slot[ei[0][hit]]
    nbr = ei[1][hit]
    grown_ei = coalesce(torch.cat([ei, torch.stack([new, nbr]), torch.stack([nbr, new])], 1),
                        num_nodes=n + count)
    x = None if data.x is None else torch.cat([data.x, data.x[source]])
    grown = Data(x=x, edge_index=grown_ei, num_nodes=n + count)
    if getattr(data, "y", None) is not None:
        grown.y = torch.cat([data.y, data.y[source]])
    return grown, source


def original_ids(nodes: Tensor, num_nodes: int, source: Tensor) -> Tensor:
    """The existing node whose features each of ``nodes`` (ids of the grown graph) carries:
    itself for an old node, its source for a new one (see :func:`append_copies`)."""
    new = nodes >= num_nodes
    return torch.where(new, source[(nodes - num_nodes).clamp(min=0)], nodes)


def _framelet_spec(model: nn.Module) -> Any:
    spec = getattr(model, "framelet", None)
    if spec is None:
        raise ConfigError(f"{type(model).__name__} was built from a transform without a "
                          "FrameletSpec: its receptive radius is unknown")
    return spec


def teacher_radius(model: nn.Module) -> int | None:
    r"""Hop radius r of a teacher: its output at node i depends only on the features within
    r hops of i and on the degrees of those nodes (``None``: unbounded).

    Computed from the model, never guessed. With Chebyshev framelets every :math:`W_c` is a
    polynomial of degree at most :math:`\mathrm{Lev}\,(\mathrm{order}-1)` in the normalised
    adjacency (:func:`framekd.receptive.knowledge_radius`) and :math:`\hat A_c` has degree 1:

    * spatial: each layer is :math:`\sum_c W_c\,\mathrm{ReLU}(\hat A_c W_c H\Theta_c)`, so
      :math:`r = L\,(2\,\mathrm{Lev}(\mathrm{order}-1) + 1)` for L layers;
    * simplified: :math:`(W_c \hat A_c W_c)^{\ell}`, :math:`r = \ell\,(2\,\mathrm{Lev}
      (\mathrm{order}-1)+1)`;
    * spectral: per layer :math:`2\,\mathrm{Lev}(\mathrm{order}-1)`, plus 1 when it smooths
      with :math:`\hat A_c` (``smooth`` other than ``"none"``);
    * GCN, GraphSAGE, GAT: one hop per layer.

    The ``exact`` framelet method (dense eigenvectors) has no finite radius.
    """
    from framekd.models.spectral import SpectralFramelet
    from framekd.models.teachers import (
        GAT,
        GCN,
        GraphSAGE,
        SimplifiedFramelet,
        SpatialFramelet,
    )

    if isinstance(model, (GCN, GraphSAGE, GAT)):
        return int(model.num_layers)
    if not isinstance(model, (SpatialFramelet, SimplifiedFramelet, SpectralFramelet)):
        raise ConfigError(f"no receptive radius known for {type(model).__name__}")
    spec = _framelet_spec(model)
    if spec.method == "exact":
        return None
    per = spec.levels * (spec.order - 1)  # degree of every W_c
    if isinstance(model, SpatialFramelet):
        return len(model.convs) * (2 * per + 1)
    if isinstance(model, SimplifiedFramelet):
        return model.num_layers * (2 * per + 1)
    return sum(2 * per + (conv.smooth != "none") for conv in model.convs)


def teacher_on_subgraph(
    model: nn.Module, edge_index: Tensor, num_nodes: int, nodes: Tensor,
    features: Callable[[Tensor], Tensor], *, radius: int | None,
) -> tuple[Tensor, int]:
    r"""A teacher's logits for ``nodes``, computed on their receptive field only.

    The subgraph is induced by the nodes within ``radius + 1`` hops
    (:func:`torch_geometric.utils.k_hop_subgraph`): the outputs need the features within
    ``radius`` hops and the *degrees* of those nodes, and a node at distance ``radius`` keeps
    all its neighbours (hence its degree) only if the ring at ``radius + 1`` is in. Nodes at
    distance ``radius + 1`` have wrong degrees, but no walk of ``radius`` steps reaches them.

    Args:
        model: the teacher, called as ``model(x, edge_index)``; a framelet teacher must build
            the operators of the graph it is given (no ``operator=``) from a
            :class:`~framekd.framelets.FrameletSpec` holding the training graph's λ_max.
        edge_index, num_nodes: the whole (grown) graph.
        nodes: the query nodes.
        features: ``features(subset)`` gives the feature rows of nodes ``subset`` (e.g. cut
            from a CSR copy of the features made once).
        radius: :func:`teacher_radius` (``None``: the whole graph).

    Returns:
        ``(logits [len(nodes), classes], subgraph nodes)``.
    """
    from torch_geometric.utils import k_hop_subgraph

    if radius is None:
        subset = torch.arange(num_nodes, device=edge_index.device)
        sub, at = edge_index, nodes
    else:
        subset, sub, at, _ = k_hop_subgraph(nodes, radius + 1, edge_index, relabel_nodes=True,
                                            num_nodes=num_nodes)
    return model(features(subset), sub)[at], int(subset.numel())


def student_rows(
    grown: Data, nodes: Tensor, spec: Any, framelet: Any, *, epsilon: float,
    lambda_max: float | None, dtype: torch.dtype, tol: float = 0.0,
) -> Tensor:
    r"""The knowledge rows ``[C, K, len(nodes), width]`` of ``nodes`` of the grown graph,
    from their receptive field (:func:`framekd.receptive.knowledge_rows`; approximate, from
    the significant field, when ``tol > 0``), with the training graph's
    :math:`\lambda_{\max}`; ``x`` is read only by ``features`` knowledge."""
    from framekd.receptive import knowledge_rows

    x = grown.x if spec.mode == "features" else None
    return knowledge_rows(grown.edge_index, grown.num_nodes, x, nodes, spec, framelet=framelet,
                          epsilon=epsilon, dtype=dtype, lambda_max=lambda_max, tol=tol)


def new_node_timings(
    rows: list[dict[str, Any]], built: dict[str, tuple[Any, str]], data: Any, cfg: Any,
    spec: Any, operator: Any, *, query_size: int, repeats: int, warmup: int, seed: int,
    device: torch.device, tol: float = 0.0,
) -> None:
    """Fill the ``new_*``, ``radius`` and ``field_nodes`` columns of ``rows``: the new-node
    query of :func:`framekd.bench.speed_benchmark` (``query="new"``; see its docstring).

    Args:
        rows: one dict per model, ``{"model", "role", ...}``, filled in place.
        built: ``{name: (model, role)}``, in eval mode on ``device``; framelet teachers may
            hold the training graph's operator (a twin that builds the operators of the
            subgraphs, same weights, is made here).
        data, cfg, spec, operator: the training graph, its :class:`RunConfig`, the
            knowledge's :class:`~framekd.knowledge.KnowledgeSpec` and framelet operator
            (for λ_max).
        query_size, repeats, warmup, seed: new nodes per call, timed and untimed calls,
            seed of the first call's new nodes (call i uses ``seed + 1 + i``).
        tol: > 0 for the students' approximate rows (``knowledge_rows``'s ``tol``).
    """
    import statistics
    from dataclasses import replace

    from framekd.graph import ensure_canonical
    from framekd.models import teacher_from_config
    from framekd.receptive import knowledge_radius, receptive_field
    from framekd.timing import time_once as _once

    if repeats < 1 or warmup < 0:
        raise ConfigError(f"new_repeats must be >= 1 and new_warmup >= 0, got {repeats} and "
                          f"{warmup}")
    t = operator.transform
    lam = float(t.lambda_max) if getattr(t, "spec", None) is not None and \
        t.spec.method == "chebyshev" else None
    fspec = replace(cfg.framelet, lambda_max=lam) if lam is not None else cfg.framelet
    # Teachers that build the operators of the graph they are given, with the training λ_max.
    local_cfg = replace(cfg, framelet=fspec)
    d, c = data.x.size(1), int(data.y.max()) + 1
    local = {}
    for name, (model, role) in built.items():
        if role != "teacher":
            continue
        smooth = getattr(model.convs[0], "smooth", None) if hasattr(model, "convs") else None
        twin = teacher_from_config(name, local_cfg, d, c, smooth=smooth).to(device).eval()
        twin.load_state_dict(model.state_dict())
        local[name] = twin
    sparse = {name: getattr(model, "_sparse_input", None) for name, (model, _) in built.items()}
    x, n = data.x, data.num_nodes
    students = [name for name, (_, role) in built.items() if role == "student"]
    times: dict[str, list[float]] = {name: [] for name in built}
    rows_times: list[float] = []
    forward: dict[str, list[float]] = {name: [] for name in students}
    fields: dict[str, int | None] = {}
    radii: dict[str, int | None] = {name: teacher_radius(m) for name, m in local.items()}
    k_radius = knowledge_radius(fspec, spec.powers)
    # Only features knowledge reads the grown graph's features: do not copy x otherwise.
    base = Data(x=x if spec.mode == "features" else None, edge_index=data.edge_index,
                num_nodes=n)
    for call in range(warmup + repeats):
        grown, source = append_copies(base, query_size, seed=seed + 1 + call)
        ensure_canonical(grown.edge_index, grown.num_nodes)  # the graph arrives validated
        new = torch.arange(n, n + query_size, device=device)
        x_new = x[source]
        keep = call >= warmup
        knowledge_rows = None
        if any(name != "mlp" for name in students):
            knowledge_rows, t_rows = _once(lambda g=grown, q=new: student_rows(
                g, q, spec, fspec, epsilon=cfg.teacher.epsilon, lambda_max=lam,
                dtype=x.dtype, tol=tol), device)
            if keep:
                rows_times.append(t_rows)
        for name in students:
            model = built[name][0]
            k = None if name == "mlp" else knowledge_rows
            _, t_fwd = _once(lambda m=model, k=k, xq=x_new: m(xq, k), device)
            if keep:
                forward[name].append(t_fwd)
                times[name].append(t_fwd + (0.0 if k is None else rows_times[-1]))
        for name, twin in local.items():
            sp = sparse[name]

            def features(subset, g_n=n, src=source, sp=sp):
                ids = original_ids(subset, g_n, src)
                return sp.rows(x, ids) if sp is not None else x[ids]

            (out, size), t_new = _once(lambda m=twin, g=grown, q=new, f=features, r=radii[name]:
                                       teacher_on_subgraph(m, g.edge_index, g.num_nodes, q, f,
                                                           radius=r), device)
            fields.setdefault(name, size)
            if keep:
                times[name].append(t_new)
        if call == 0 and knowledge_rows is not None:
            field = receptive_field(grown.edge_index, grown.num_nodes, new, spec, framelet=fspec,
                                    tol=tol)
            for name in students:
                fields[name] = None if name == "mlp" else field.num_nodes
    for row in rows:
        name = row["model"]
        row["new_ms"] = 1000 * statistics.median(times[name])
        if name in forward:
            row["new_forward_ms"] = 1000 * statistics.median(forward[name])
            if name != "mlp" and rows_times:
                row["new_rows_ms"] = 1000 * statistics.median(rows_times)
                row["radius"] = k_radius
        else:
            row["radius"] = radii[name]
        row["field_nodes"] = fields.get(name)
