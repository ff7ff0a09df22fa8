r"""Incremental curvature updates after one SDRF edit.

After the edge :math:`\{u, v\}` is added or removed, :func:`_edit` brings the side
statistics of :mod:`framekd.rewire.curvature` (stored in ``_Graph.side``, per directed
edge) and the curvature heaps of :mod:`framekd.rewire.flow` up to date. Edges at
:math:`u` or :math:`v` are recomputed (:func:`_recompute_star`); any other edge whose
curvature can change gains or loses one entry of its 4-cycle matrix and is updated in
place (:func:`_toggle_cycle_entry`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from framekd.rewire.curvature import _ric, _side_stats
from framekd.rewire.store import _Graph, _ranges, _sparse_block

if TYPE_CHECKING:
    from framekd.rewire.flow import _CurvatureHeaps


def _edit(g: _Graph, heaps: _CurvatureHeaps, u: int, v: int, *, add: bool) -> None:
    r"""Toggle ``{u, v}`` and bring the side statistics and heaps up to date.

    Edges at ``u`` or ``v`` are recomputed. For any other edge :math:`i \sim j` only
    its 4-cycle matrix :math:`M = A[S_1(i) \setminus B_1(j), S_1(j) \setminus
    B_1(i)]` can change, and only in the entry :math:`(u, v)`, when
    :math:`u \in S_1(i) \setminus B_1(j)` and :math:`v \in S_1(j) \setminus B_1(i)`
    (:func:`_toggle_cycle_entry`).
    """
    g.toggle(u, v, add)
    if not add:
        heaps.discard(min(u, v), max(u, v))
    nu, nv = g.nbrs(u), g.nbrs(v)
    _recompute_star(g, u)
    _recompute_star(g, v)
    a = np.concatenate([np.full(nu.size, u), np.full(nv.size, v)])
    b = np.concatenate([nu, nv])
    keys = np.unique(np.minimum(a, b) * g.n + np.maximum(a, b))
    at_lo, at_hi = keys // g.n, keys % g.n
    mid_lo, mid_hi = _toggle_cycle_entry(g, u, v, add)
    lo, hi = np.concatenate([at_lo, mid_lo]), np.concatenate([at_hi, mid_hi])
    heaps.set(lo, hi, _ric_from_side(g, lo, hi))


def _ric_from_side(g: _Graph, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Curvature of the undirected edges ``u[e] ~ v[e]`` from ``g.side``."""
    fwd, bwd = g.positions(u, v), g.positions(v, u)
    t, sq, rmax = g.side["t"], g.side["sq"], g.side["rmax"]
    return _ric(g.deg[u], g.deg[v], t[fwd], sq[fwd], sq[bwd],
                np.maximum(rmax[fwd], rmax[bwd]))


def _recompute_sides(g: _Graph, lo: np.ndarray, hi: np.ndarray) -> None:
    """Exact side statistics of both directions of the edges ``lo[e] ~ hi[e]``."""
    src, dst = np.concatenate([lo, hi]), np.concatenate([hi, lo])
    _write_side(g, src, dst, _side_stats(g, src, dst))


def _recompute_star(g: _Graph, u: int) -> None:
    r"""Exact side statistics of both directions of every edge at ``u``.

    ``u -> w`` comes from :func:`_side_stats` with the single centre ``u``. The
    reverse sides ``w -> u`` would need every ``w`` as a centre; instead, their row
    sums are the column sums of the same 4-cycle matrix: for
    :math:`x \in S_1(w) \setminus B_1(u)`,
    :math:`c_x = |S_1(x) \cap S_1(u)| - 1 - |S_1(x) \cap S_1(u) \cap S_1(w)|`
    (the 1 is ``w`` itself).
    """
    nu = g.nbrs(u).copy()
    if nu.size == 0:
        return
    src = np.full(nu.size, u)
    _write_side(g, src, nu, _side_stats(g, src, nu))
    in_b1 = np.zeros(g.n, dtype=bool)
    in_b1[nu] = True
    in_b1[u] = True
    lens = g.deg[nu]
    pw = np.repeat(np.arange(nu.size), lens)
    px = g.indices[_ranges(g.indptr[nu], lens)]
    deg_u = np.bincount(px, minlength=g.n)
    out = ~in_b1[px]
    pw, px = pw[out], px[out]
    c = deg_u[px] - 1 - _common_in(g, px, nu[pw], nu)
    sq = np.bincount(pw[c > 0], minlength=nu.size)
    rmax = np.zeros(nu.size, dtype=np.int64)
    np.maximum.at(rmax, pw, c)
    t = g.side["t"][g.positions(src, nu)]
    _write_side(g, nu, src, (t, sq, rmax))


def _write_side(g: _Graph, src: np.ndarray, dst: np.ndarray, stats) -> None:
    pos = g.positions(src, dst)
    g.side["t"][pos], g.side["sq"][pos], g.side["rmax"][pos] = stats


def _toggle_cycle_entry(g: _Graph, u: int, v: int, add: bool):
    r"""Update the edges whose 4-cycle matrix gained or lost the entry ``(u, v)``.

    These are the edges :math:`i \sim j`, :math:`i \in I = S_1(u) \setminus B_1(v)`,
    :math:`j \in J = S_1(v) \setminus B_1(u)` (on the edited graph). Row ``u`` of
    their matrix now sums to :math:`r = |S_1(u) \cap S_1(j)| - 1 - |S_1(u) \cap
    S_1(j) \cap S_1(i)|` (the 1 is ``i`` itself) and column ``v`` to ``c`` likewise,
    so the row/column counts move by one where ``r``/``c`` crossed zero and the
    maximum grows to ``r``/``c`` on an addition. After a removal, an edge whose
    maximum was held by the toggled row or column is recomputed exactly.

    Returns the edges ``(lo, hi)`` whose statistics changed.
    """
    nu, nv = g.nbrs(u), g.nbrs(v)
    in_u = np.zeros(g.n, dtype=bool)
    in_u[nu] = True
    in_v = np.zeros(g.n, dtype=bool)
    in_v[nv] = True
    in_j = np.zeros(g.n, dtype=bool)
    in_j[nv[~in_u[nv] & (nv != u)]] = True
    left = nu[~in_v[nu] & (nu != v)]
    lens = g.deg[left]
    pi = np.repeat(left, lens)
    pj = g.indices[_ranges(g.indptr[left], lens)]
    hit = in_j[pj]
    pi, pj = pi[hit], pj[hit]
    empty = np.zeros(0, dtype=np.int64)
    if pi.size == 0:
        return empty, empty
    r = _count_in(g, pj, in_u) - 1 - _common_in(g, pi, pj, nu)
    c = _count_in(g, pi, in_v) - 1 - _common_in(g, pj, pi, nv)
    fwd, bwd = g.positions(pi, pj), g.positions(pj, pi)
    sq, rmax = g.side["sq"], g.side["rmax"]
    before = (sq[fwd], sq[bwd], np.maximum(rmax[fwd], rmax[bwd]))
    if add:
        sq[fwd] += r == 1
        sq[bwd] += c == 1
        rmax[fwd] = np.maximum(rmax[fwd], r)
        rmax[bwd] = np.maximum(rmax[bwd], c)
    else:
        sq[fwd] -= r == 0
        sq[bwd] -= c == 0
        redo = (rmax[fwd] == r + 1) | (rmax[bwd] == c + 1)
        _recompute_sides(g, pi[redo], pj[redo])
    changed = ((sq[fwd] != before[0]) | (sq[bwd] != before[1])
               | (np.maximum(rmax[fwd], rmax[bwd]) != before[2]))
    pi, pj = pi[changed], pj[changed]
    return np.minimum(pi, pj), np.maximum(pi, pj)


def _count_in(g: _Graph, nodes: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``|S_1(x) ∩ mask|`` for every ``x`` in ``nodes``."""
    uniq, inv = np.unique(nodes, return_inverse=True)
    lens = g.deg[uniq]
    ent = g.indices[_ranges(g.indptr[uniq], lens)]
    cnt = np.bincount(np.repeat(np.arange(uniq.size), lens), weights=mask[ent],
                      minlength=uniq.size)
    return cnt.astype(np.int64)[inv]


def _common_in(g: _Graph, a: np.ndarray, b: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``|S_1(a[e]) ∩ S_1(b[e]) ∩ cols|`` per pair, by one sparse product."""
    if a.size == 0:
        return np.zeros(0, dtype=np.int64)
    ua, ia = np.unique(a, return_inverse=True)
    ub, ib = np.unique(b, return_inverse=True)
    prod = (_sparse_block(g, ua, cols) @ _sparse_block(g, ub, cols).T).tocsr()
    return np.asarray(prod[ia, ib]).ravel().astype(np.int64)
