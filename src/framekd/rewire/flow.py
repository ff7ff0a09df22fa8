r"""Stochastic Discrete Ricci Flow (Topping et al., ICLR 2022, Algorithm 1).

:func:`sdrf` repeatedly takes the most negatively curved edge :math:`x \sim y`,
samples a new edge :math:`\{k, l\}`, :math:`k \in B_1(x)`, :math:`l \in B_1(y)`, with
probability :math:`\propto \exp(\tau\,\Delta_{kl})` where :math:`\Delta_{kl}` is the
exact gain in :math:`\mathrm{Ric}(x,y)` (:mod:`framekd.rewire.candidates`), then removes
the most positively curved edge if its curvature exceeds :math:`C^+`.

Every edge keeps the counts its curvature is made of (triangles, 4-cycle rows, their
maximum, per direction); after an edit only the counts that can change are updated,
most of them by one (:mod:`framekd.rewire.incremental`). The curvatures live in a
min-heap and a max-heap with lazy deletion (:class:`_CurvatureHeaps`). What a run did
is recorded in an :class:`SDRFReport`.
"""

from __future__ import annotations

import heapq
import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from framekd.errors import FramekdWarning
from framekd.rewire.candidates import _candidates
from framekd.rewire.curvature import _side_stats
from framekd.rewire.incremental import _edit, _ric_from_side
from framekd.rewire.presets import _check_sdrf_args
from framekd.rewire.store import _canonical_keys, _Graph


@dataclass
class SDRFReport:
    """What :func:`sdrf` did. ``to_dict()`` is JSON-serialisable.

    ``steps`` holds one record per iteration: the target edge and its curvature
    before and after the addition, the added edge (or ``None``) and the removed
    edge with its curvature (or ``None``). ``curvature`` is the final curvature per
    stored direction of the returned ``edge_index`` (kept incrementally; not part
    of ``to_dict()``).
    """

    num_nodes: int
    iterations: int
    tau: float
    removal_bound: float | None
    seed: int
    edges_before: int = 0
    edges_after: int = 0
    iterations_run: int = 0
    stop_reason: str = ""
    added: list[tuple[int, int]] = field(default_factory=list)
    removed: list[tuple[int, int]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    curvature_min_before: float = float("nan")
    curvature_mean_before: float = float("nan")
    curvature_min_after: float = float("nan")
    curvature_mean_after: float = float("nan")
    timings: dict[str, float] = field(default_factory=dict)
    curvature: Tensor | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("curvature")
        out["added"] = [list(e) for e in self.added]
        out["removed"] = [list(e) for e in self.removed]
        for key, val in out.items():
            if isinstance(val, float) and not math.isfinite(val):
                out[key] = None
        return out


class _CurvatureHeaps:
    """Edge curvatures with a min-heap and a max-heap (lazy deletion by version)."""

    def __init__(self, u: np.ndarray, v: np.ndarray, ric: np.ndarray):
        self.value: dict[tuple[int, int], tuple[float, int]] = {}
        self.version = 0
        self.low: list = []
        self.high: list = []
        self.set(u, v, ric)

    def set(self, u: np.ndarray, v: np.ndarray, ric: np.ndarray) -> None:
        """Record new curvatures; older heap entries of these edges become stale."""
        fresh = not self.value
        for a, b, r in zip(u.tolist(), v.tolist(), ric.tolist(), strict=True):
            self.version += 1
            self.value[(a, b)] = (r, self.version)
            if not fresh:
                heapq.heappush(self.low, (r, a, b, self.version))
                heapq.heappush(self.high, (-r, a, b, self.version))
        if fresh or len(self.low) > 4 * len(self.value) + 1024:
            self._rebuild()

    def _rebuild(self) -> None:
        self.low = [(r, a, b, ver) for (a, b), (r, ver) in self.value.items()]
        self.high = [(-r, a, b, ver) for (a, b), (r, ver) in self.value.items()]
        heapq.heapify(self.low)
        heapq.heapify(self.high)

    def discard(self, a: int, b: int) -> None:
        self.value.pop((a, b), None)

    def _top(self, heap: list) -> tuple[float, int, int] | None:
        while heap:
            r, a, b, ver = heap[0]
            cur = self.value.get((a, b))
            if cur is not None and cur[1] == ver:
                return r, a, b
            heapq.heappop(heap)
        return None

    def argmin(self) -> tuple[float, int, int] | None:
        return self._top(self.low)

    def argmax(self) -> tuple[float, int, int] | None:
        top = self._top(self.high)
        return None if top is None else (-top[0], top[1], top[2])


def _sample(rng: np.random.Generator, gain: np.ndarray, tau: float) -> int:
    """Index drawn with probability softmax(tau * gain), max-shifted so it never overflows."""
    logits = tau * (gain - gain.max())
    p = np.exp(logits)
    p /= p.sum()
    return int(rng.choice(gain.size, p=p))


def sdrf(
    edge_index: Tensor,
    num_nodes: int,
    *,
    iterations: int,
    tau: float,
    removal_bound: float | None = None,
    seed: int = 0,
) -> tuple[Tensor, SDRFReport]:
    r"""Stochastic Discrete Ricci Flow (Algorithm 1) on the undirected graph.

    Each iteration:

    1. takes the edge :math:`x \sim y` of minimal :math:`\mathrm{Ric}`; ties go to the
       smallest ``(min(x, y), max(x, y))`` pair;
    2. scores every candidate :math:`\{k, l\}` (unordered non-edge, :math:`k \in
       B_1(x)`, :math:`l \in B_1(y)`, :math:`k \ne l`) by the exact gain
       :math:`\Delta_{kl} = \mathrm{Ric}_{kl}(x,y) - \mathrm{Ric}(x,y)` and adds one,
       drawn with probability :math:`\propto \exp(\tau(\Delta_{kl} - \max\Delta))`
       from ``numpy.random.default_rng(seed)`` (candidates in sorted order);
    3. after updating the curvatures, removes the edge of maximal
       :math:`\mathrm{Ric}` (ties to the smallest pair) if it exceeds
       ``removal_bound`` (``None`` never removes).

    Only edges near an edit can change curvature: edges at its endpoints, which are
    recomputed, and edges joining a neighbour of one endpoint to a neighbour of the
    other, whose 4-cycle counts move by at most one and are updated in place. The
    curvatures live in two lazily-invalidated heaps. The run stops after
    ``iterations`` or when nothing can be added and nothing removed.

    Args:
        edge_index: ``[2, E]`` edges; symmetrised, self-loops dropped.
        num_nodes: number of nodes N.
        iterations: maximum number of iterations (>= 0).
        tau: softmax inverse temperature (>= 0; 0 is uniform).
        removal_bound: :math:`C^+`, or ``None`` for no removals.
        seed: seed of the NumPy generator; the same seed gives the same graph.

    Returns:
        ``(edge_index, report)``: the rewired canonical symmetric edge list and an
        :class:`SDRFReport`.

    Raises:
        ConfigError: invalid ``iterations``, ``tau``, ``removal_bound`` or ``seed``.
        GraphError: malformed ``edge_index``.
    """
    _check_sdrf_args(iterations, tau, removal_bound, seed)
    start = time.perf_counter()
    keys = _canonical_keys(edge_index, num_nodes)
    if keys.size != edge_index.size(1):
        _warn_if_directed(edge_index, keys)
    g = _Graph(keys, num_nodes)
    report = SDRFReport(num_nodes, int(iterations), float(tau),
                        None if removal_bound is None else float(removal_bound), int(seed))
    report.edges_before = g.keys.size // 2
    src, dst = g.keys // g.n, g.keys % g.n
    t, sq, rmax = _side_stats(g, src, dst)
    g.side = {"t": t, "sq": sq, "rmax": rmax}
    upper = src < dst
    ric = _ric_from_side(g, src[upper], dst[upper])
    if ric.size:
        report.curvature_min_before = float(ric.min())
        report.curvature_mean_before = float(ric.mean())
    heaps = _CurvatureHeaps(src[upper], dst[upper], ric)
    report.timings["initial_curvature_s"] = time.perf_counter() - start

    rng = np.random.default_rng(seed)
    loop_start = time.perf_counter()
    report.stop_reason = "iterations"
    for it in range(int(iterations)):
        step: dict[str, Any] = {"iteration": it, "target": None, "target_before": None,
                                "target_after": None, "added": None, "removed": None,
                                "removed_curvature": None}
        low = heaps.argmin()
        if low is None:
            report.stop_reason = "no edges"
            break
        r0, x, y = low
        step["target"], step["target_before"] = [x, y], r0
        pairs, ric_new, ric0 = _candidates(g, x, y)
        if pairs.shape[0]:
            gains = ric_new - ric0
            k, l = (int(v) for v in pairs[_sample(rng, gains, tau)])
            _edit(g, heaps, k, l, add=True)
            report.added.append((k, l))
            step["added"] = [k, l]
            step["target_after"] = heaps.value[(x, y)][0]
        removed = False
        if removal_bound is not None:
            high = heaps.argmax()
            if high is not None and high[0] > removal_bound:
                rc, a, b = high
                _edit(g, heaps, a, b, add=False)
                report.removed.append((a, b))
                step["removed"], step["removed_curvature"] = [a, b], rc
                removed = True
        if step["added"] is None and not removed:
            report.stop_reason = "converged"
            break
        report.steps.append(step)
        report.iterations_run = it + 1
    report.timings["iterations_s"] = time.perf_counter() - loop_start
    report.timings["per_iteration_s"] = (
        report.timings["iterations_s"] / report.iterations_run if report.iterations_run else 0.0
    )
    report.edges_after = g.keys.size // 2
    out_ei = g.edge_index()
    report.curvature = _final_curvature(g, heaps)
    upper_vals = np.array([val for val, _ in heaps.value.values()], dtype=np.float64)
    if upper_vals.size:
        report.curvature_min_after = float(upper_vals.min())
        report.curvature_mean_after = float(upper_vals.mean())
    report.timings["total_s"] = time.perf_counter() - start
    return out_ei, report


def _final_curvature(g: _Graph, heaps: _CurvatureHeaps) -> Tensor:
    src, dst = g.keys // g.n, g.keys % g.n
    lo, hi = np.minimum(src, dst), np.maximum(src, dst)
    vals = np.array([heaps.value[(a, b)][0] for a, b in zip(lo.tolist(), hi.tolist(),
                                                            strict=True)], dtype=np.float64)
    return torch.from_numpy(vals)


def _warn_if_directed(edge_index: Tensor, keys: np.ndarray) -> None:
    ei = edge_index.detach().cpu().long().numpy()
    if (ei[0] != ei[1]).sum() != keys.size:
        warnings.warn(
            "sdrf symmetrises its input: the graph was directed, had self-loops or "
            "duplicate edges; SDRF works on the undirected simple graph",
            FramekdWarning,
            stacklevel=3,
        )
