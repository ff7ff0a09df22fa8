r"""SDRF's candidate edges and the exact curvature gain of each.

For the most negatively curved edge :math:`x \sim y`, SDRF (Topping et al., ICLR 2022,
Algorithm 1) considers every non-edge :math:`\{k, l\}`, :math:`k \in B_1(x)`,
:math:`l \in B_1(y)`, and scores it by
:math:`\Delta_{kl} = \mathrm{Ric}_{kl}(x, y) - \mathrm{Ric}(x, y)`, the curvature of
:math:`x \sim y` in :math:`G \cup \{k \sim l\}` minus its current curvature. The gains
are exact and computed locally, from the 4-cycle matrix of :math:`x \sim y` alone
(:func:`_candidates`); :func:`sdrf_candidates` is the public entry point.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from framekd.errors import GraphError
from framekd.rewire.curvature import _ric
from framekd.rewire.store import _canonical_keys, _Graph, _sparse_block


def _block(g: _Graph, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Dense boolean adjacency block ``A[rows, cols]`` (local to one edge, never N x N)."""
    return _sparse_block(g, rows, cols).toarray() > 0


def _candidates(g: _Graph, x: int, y: int) -> tuple[np.ndarray, np.ndarray, float]:
    r"""Candidates ``{k, l}`` for the edge ``x ~ y`` and the exact new ``Ric(x, y)``.

    With ``T = S_1(x) ∩ S_1(y)``, ``A_x = S_1(x) \ B_1(y)``, ``A_y = S_1(y) \ B_1(x)``
    and ``M = A[A_x, A_y]`` (row sums ``c_k``, column sums ``c_w``) the non-edges of
    ``B_1(x) × B_1(y)`` are: ``{x, l}``, ``l ∈ A_y`` (closes a triangle: ``d_x``,
    ``t`` grow, column ``l`` leaves ``M``); ``{k, y}``, ``k ∈ A_x`` (mirror);
    ``{k, l} ∈ A_x × A_y`` with ``M_kl = 0`` (a new 4-cycle: ``M_kl`` becomes 1);
    and pairs touching ``T``, which leave ``Ric(x, y)`` unchanged.

    Returns:
        ``(pairs [C, 2] with k < l sorted lexicographically, new Ric(x, y) [C],
        current Ric(x, y))``.
    """
    nx_, ny_ = g.nbrs(x), g.nbrs(y)
    tri = np.intersect1d(nx_, ny_, assume_unique=True)
    a_x = np.setdiff1d(nx_, np.append(tri, y), assume_unique=True)
    a_y = np.setdiff1d(ny_, np.append(tri, x), assume_unique=True)
    d_x, d_y, t = g.deg[x], g.deg[y], tri.size
    m = _block(g, a_x, a_y)
    rs, cs = m.sum(1), m.sum(0)
    nz_r, nz_c = int((rs > 0).sum()), int((cs > 0).sum())
    g0 = max(int(rs.max(initial=0)), int(cs.max(initial=0)))
    ric0 = float(_ric(d_x, d_y, t, nz_r, nz_c, g0))

    pairs, ric = [], []
    # {k, l} in A_x × A_y, not yet adjacent: one more 4-cycle through k and l.
    ka, lb = np.nonzero(~m)
    if ka.size:
        pairs.append(np.stack([a_x[ka], a_y[lb]], 1))
        gam = np.maximum(np.maximum(rs[ka], cs[lb]) + 1, g0)
        ric.append(_ric(d_x, d_y, t, nz_r + (rs[ka] == 0), nz_c + (cs[lb] == 0), gam))
    # {x, l}, l in A_y: l joins the triangles, column l leaves M.
    if a_y.size:
        left = rs[:, None] - m
        gam = np.maximum(left.max(0, initial=0), _max_without(cs))
        pairs.append(np.stack([np.full(a_y.size, x), a_y], 1))
        ric.append(_ric(d_x + 1, d_y, t + 1, (left > 0).sum(0), nz_c - (cs > 0), gam))
    # {k, y}, k in A_x: the mirror image.
    if a_x.size:
        left = cs[None, :] - m
        gam = np.maximum(left.max(1, initial=0), _max_without(rs))
        pairs.append(np.stack([a_x, np.full(a_x.size, y)], 1))
        ric.append(_ric(d_x, d_y + 1, t + 1, nz_r - (rs > 0), (left > 0).sum(1), gam))
    # Pairs touching a triangle node keep Ric(x, y) as it is.
    for rows, cols in ((tri, tri), (tri, a_y), (a_x, tri)):
        if rows.size and cols.size:
            blk = _block(g, rows, cols)
            ri, ci = np.nonzero(~blk)
            ok = rows[ri] != cols[ci]
            pairs.append(np.stack([rows[ri[ok]], cols[ci[ok]]], 1))
            ric.append(np.full(int(ok.sum()), ric0))
    if not pairs:
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0), ric0
    pairs_a = np.sort(np.concatenate(pairs).astype(np.int64), axis=1)
    ric_a = np.concatenate([np.broadcast_to(r, (len(p),)) for p, r in zip(pairs, ric,
                                                                           strict=True)])
    # Sort lexicographically and drop the duplicates of T × T (seen as (k,l) and (l,k)).
    keys = pairs_a[:, 0] * g.n + pairs_a[:, 1]
    keys, first = np.unique(keys, return_index=True)
    return pairs_a[first], ric_a[first].astype(np.float64), ric0


def _max_without(v: np.ndarray) -> np.ndarray:
    """``out[i] = max(v[j] for j != i)`` (0 for an empty rest)."""
    if v.size < 2:
        return np.zeros(v.size, dtype=np.int64)
    top = np.argmax(v)
    rest = np.delete(v, top)
    out = np.full(v.size, v[top], dtype=np.int64)
    out[top] = rest.max()
    return out


def sdrf_candidates(
    edge_index: Tensor, num_nodes: int, edge: tuple[int, int]
) -> tuple[Tensor, Tensor]:
    r"""SDRF's candidate edges for ``edge = (x, y)`` and the gain of each.

    Candidates are the unordered non-edges :math:`\{k, l\}`, :math:`k \in B_1(x)`,
    :math:`l \in B_1(y)`, :math:`k \ne l`, deduplicated; the gain is
    :math:`\mathrm{Ric}_{kl}(x, y) - \mathrm{Ric}(x, y)` where :math:`\mathrm{Ric}_{kl}`
    is the exact curvature in :math:`G \cup \{k \sim l\}`.

    Returns:
        ``(pairs [C, 2] int64 with k < l, sorted; gains [C] float64)``.
    """
    g = _Graph(_canonical_keys(edge_index, num_nodes), num_nodes)
    x, y = (int(v) for v in edge)
    if not (0 <= x < num_nodes and 0 <= y < num_nodes) or not g.has_edge(x, y):
        raise GraphError(f"({x}, {y}) is not an edge of the graph; pass an existing edge")
    pairs, ric, ric0 = _candidates(g, x, y)
    return torch.from_numpy(pairs), torch.from_numpy(ric - ric0)
