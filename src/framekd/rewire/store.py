"""The mutable undirected simple graph SDRF edits, and the array helpers it is built on.

:class:`_Graph` stores a graph as the sorted directed keys ``u * N + v`` (both directions
of every edge, no self-loops), from which the CSR arrays (``indptr``, ``indices``,
``deg``) are read; an edge toggle patches them in place of a rebuild. Per-directed-edge
side arrays (the counts of :mod:`framekd.rewire.curvature`) stay aligned with the keys.
The helpers canonicalise an ``edge_index`` (:func:`_canonical_keys`), expand CSR row
ranges without a Python loop (:func:`_ranges`) and read sparse adjacency blocks
(:func:`_sparse_block`).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from framekd.graph import check_edge_index


class _Graph:
    """A mutable simple undirected graph stored as sorted directed keys ``u * N + v``.

    ``side`` optionally holds per-directed-edge arrays aligned with ``keys`` (the side
    statistics of :func:`_side_stats`); :meth:`toggle` keeps them aligned.
    """

    def __init__(self, keys: np.ndarray, num_nodes: int):
        self.n = num_nodes
        self.keys = keys
        self.side: dict[str, np.ndarray] = {}
        self._refresh()

    def _refresh(self) -> None:
        n = self.n
        self.indices = self.keys % n
        self.indptr = np.searchsorted(self.keys, np.arange(n + 1, dtype=np.int64) * n)
        self.deg = np.diff(self.indptr)

    def nbrs(self, u: int) -> np.ndarray:
        return self.indices[self.indptr[u] : self.indptr[u + 1]]

    def has_edge(self, u: int, v: int) -> bool:
        key = u * self.n + v
        pos = np.searchsorted(self.keys, key)
        return bool(pos < self.keys.size and self.keys[pos] == key)

    def toggle(self, u: int, v: int, add: bool) -> None:
        new = np.array(sorted((u * self.n + v, v * self.n + u)), dtype=np.int64)
        pos = np.searchsorted(self.keys, new)
        # O(E) copies but no O(E) arithmetic: the CSR arrays are patched, not rebuilt.
        if add:
            self.keys = _insert_two(self.keys, pos, new)
            self.indices = _insert_two(self.indices, pos, new % self.n)
        else:
            self.keys = _delete_two(self.keys, pos)
            self.indices = _delete_two(self.indices, pos)
        for name, arr in self.side.items():
            self.side[name] = (_insert_two(arr, pos, np.zeros(2, dtype=arr.dtype)) if add
                               else _delete_two(arr, pos))
        step = 1 if add else -1
        for node in (u, v):
            self.indptr[node + 1:] += step
            self.deg[node] += step

    def positions(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        """Positions of the existing directed edges ``src -> dst`` in ``keys``."""
        return np.searchsorted(self.keys, src * self.n + dst)

    def edge_index(self) -> Tensor:
        return torch.from_numpy(np.stack([self.keys // self.n, self.keys % self.n]))


def _insert_two(arr: np.ndarray, pos: np.ndarray, vals: np.ndarray) -> np.ndarray:
    """``np.insert(arr, pos, vals)`` for two sorted positions, as three slice copies."""
    p0, p1 = int(pos[0]), int(pos[1])
    out = np.empty(arr.size + 2, dtype=arr.dtype)
    out[:p0] = arr[:p0]
    out[p0] = vals[0]
    out[p0 + 1 : p1 + 1] = arr[p0:p1]
    out[p1 + 1] = vals[1]
    out[p1 + 2 :] = arr[p1:]
    return out


def _delete_two(arr: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """``np.delete(arr, pos)`` for two distinct sorted positions."""
    p0, p1 = int(pos[0]), int(pos[1])
    return np.concatenate([arr[:p0], arr[p0 + 1 : p1], arr[p1 + 1 :]])


def _canonical_keys(edge_index: Tensor, num_nodes: int) -> np.ndarray:
    """Sorted unique directed keys of the symmetrised graph without self-loops."""
    check_edge_index(edge_index, num_nodes)
    ei = edge_index.detach().cpu().long().numpy()
    src, dst = ei[0], ei[1]
    keep = src != dst
    src, dst = src[keep], dst[keep]
    # Sort, then drop repeats: np.unique's hash path is ~20x slower on 10^7 int64 keys.
    keys = np.sort(np.concatenate([src * num_nodes + dst, dst * num_nodes + src]))
    keep = np.ones(keys.size, dtype=bool)
    keep[1:] = keys[1:] != keys[:-1]
    return keys[keep].astype(np.int64, copy=False)


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + l)`` for every pair, without a Python loop."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.cumsum(lengths) - lengths
    return np.repeat(starts - offsets, lengths) + np.arange(total, dtype=np.int64)


def _sparse_block(g: _Graph, rows: np.ndarray, cols: np.ndarray) -> sp.csr_matrix:
    """Sparse adjacency block ``A[rows, cols]``."""
    pos = np.full(g.n, -1, dtype=np.int64)
    pos[cols] = np.arange(cols.size)
    lens = g.deg[rows]
    ent_row = np.repeat(np.arange(rows.size), lens)
    ent_col = pos[g.indices[_ranges(g.indptr[rows], lens)]]
    hit = ent_col >= 0
    return sp.csr_matrix((np.ones(int(hit.sum())), (ent_row[hit], ent_col[hit])),
                         shape=(rows.size, cols.size))
