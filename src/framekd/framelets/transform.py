r"""The undecimated graph framelet transform of one graph (docs/SPEC.md §2).

With the normalised Laplacian :math:`L = I - D^{-1/2} A D^{-1/2}` (isolated nodes get
:math:`L_{ii} = 1`), dilation :math:`s > 1` and :math:`\mathrm{Lev}` levels,

.. math::
    J = \log_s(\lambda_{\max} / \pi) + \mathrm{Lev} - 1, \qquad t_l = s^{-J + l - 1},

    W_{0,l} = g_0(t_l L)\, W_{0,l-1}, \quad W_{0,0} = I, \qquad
    W_{r,l} = g_r(t_l L)\, W_{0,l-1}, \quad r = 1..R,

so the finest level :math:`l = \mathrm{Lev}` maps :math:`\lambda_{\max}` to :math:`\pi`. The
channels are :math:`\{(0, \mathrm{Lev})\} \cup \{(r, l)\}` and, with exact filters, form a
tight frame: :math:`\sum_c W_c^\top W_c = I`. Every :math:`W_c` is a polynomial (or spectral
function) of :math:`L`, hence symmetric.

Two realisations of :math:`g(tL)`:

* ``method="chebyshev"`` (default): a degree ``order - 1`` Chebyshev expansion in
  :math:`Y = (t/a) L - I`, :math:`a = \pi/2`, applied matrix-free with the three-term
  recurrence (``order - 1`` sparse-dense products per level; levels share the low-pass
  chain). ``W`` is never formed.
* ``method="exact"``: a dense eigendecomposition :math:`L = U \Lambda U^\top`,
  :math:`W = U\, g(t\Lambda)\, U^\top`; small graphs only (:data:`EXACT_MAX_NODES`).

A polynomial of low order is not tight: :meth:`FrameletTransform.frame_error` and
:meth:`FrameletTransform.frame_bounds` report how far a given transform is from it (steep
banks such as Sigmoid(20) need a higher order; the Entropy bank with ``alpha < 1`` is
discontinuous at :math:`\xi = \pi/2` and is tight only with ``method="exact"``).
BENCHMARKS.md §2 lists the frame errors measured at the default order.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor, nn

from framekd.errors import ConfigError, FramekdWarning, GraphError
from framekd.framelets.banks import CHEBYSHEV_A, chebyshev_coefficients, filter_bank
from framekd.framelets.spec import FrameletSpec
from framekd.graph import ensure_canonical
from framekd.operators import (
    SparseBuffers,
    estimate_lambda_max,
    normalized_adjacency,
    sparse_csr,
    symmetric_matmul,
)

#: ``method="exact"`` refuses graphs above this size (dense N×N float64 eigenvectors).
EXACT_MAX_NODES = 5000


@runtime_checkable
class Transform(Protocol):
    """What the framelet teachers and the knowledge need of a framelet transform:
    :class:`FrameletTransform` or any other implementation (e.g. a dense test oracle)."""

    num_nodes: int
    num_channels: int
    channels: list[tuple[int, int]]

    @property
    def dtype(self) -> torch.dtype: ...

    @property
    def device(self) -> torch.device: ...

    def apply(self, x: Tensor) -> Tensor:
        """``[N, d] -> [C, N, d]``: :math:`W_c x` for every channel."""

    def apply_each(self, xs: Tensor) -> Tensor:
        """``[C, N, d] -> [C, N, d]``: :math:`W_c x_c`."""

    def reconstruct(self, ys: Tensor) -> Tensor:
        r"""``[C, N, d] -> [N, d]``: :math:`\sum_c W_c y_c`."""


class FrameletTransform(SparseBuffers, nn.Module):
    r"""The undecimated graph framelet transform :math:`\{W_c\}_{c \in C}` of one graph.

    Args:
        edge_index: canonical ``[2, E]`` edges (symmetric, no self-loops; see
            :func:`framekd.graph.canonicalize`).
        num_nodes: number of nodes N.
        spec: the :class:`~framekd.framelets.FrameletSpec` (or a mapping of its fields);
            keyword ``options`` (``filters=``, ``levels=``, ...) override its fields.
        dtype: floating dtype of the operators and outputs (default float32).

    Attributes:
        spec: the validated settings.
        channels: ``[(0, Lev), (1, 1), ..., (1, Lev), ..., (R, Lev)]``.
        num_channels: ``len(channels)``.
        lambda_max: the λ_max used (``spec.lambda_max`` resolved: the deterministic
            estimate of :func:`framekd.operators.estimate_lambda_max`, the exact largest
            eigenvalue for ``method="exact"``, 2.0 for ``"bound"``, or the given number).
        scales: ``[t_1, ..., t_Lev]``.
        coefficients: ``[R + 1, order]`` float64 Chebyshev coefficients (chebyshev only).

    Shapes:
        :meth:`apply` (also ``forward``): ``[N, d] -> [C, N, d]``;
        :meth:`apply_each`: ``[C, N, d] -> [C, N, d]``;
        :meth:`reconstruct`: ``[C, N, d] -> [N, d]``.

    The operators are non-persistent buffers: ``.to(device, dtype)`` moves them and they
    stay out of ``state_dict``. Inputs must have the transform's device and dtype. All
    three maps are differentiable with respect to their input.
    """

    def __init__(
        self,
        edge_index: Tensor,
        num_nodes: int,
        spec: FrameletSpec | Mapping[str, Any] | None = None,
        *,
        dtype: torch.dtype = torch.float32,
        **options: Any,
    ) -> None:
        super().__init__()
        self.spec = FrameletSpec.coerce(spec, **options)
        if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise ConfigError(f"dtype must be a torch floating dtype, got {dtype!r}")
        ensure_canonical(edge_index, num_nodes)
        if self.method == "exact" and num_nodes > EXACT_MAX_NODES:
            raise ConfigError(
                f"method='exact' needs a dense {num_nodes}x{num_nodes} eigendecomposition and "
                f"is limited to {EXACT_MAX_NODES} nodes; use method='chebyshev' "
                "(matrix-free, linear in edges)"
            )
        self.num_nodes = int(num_nodes)
        self.bank = filter_bank(self.filters, self.alpha)
        self.channels: list[tuple[int, int]] = self.spec.channels
        self.num_channels = len(self.channels)
        if self.method == "chebyshev" and self.filters == "entropy" and self.alpha < 1.0:
            warnings.warn(
                f"the entropy bank with alpha={self.alpha} is discontinuous at xi = pi/2, so "
                "its Chebyshev approximation is not tight there at any order; use "
                "method='exact' on small graphs or alpha=1",
                FramekdWarning,
                stacklevel=2,
            )
        ei, w = normalized_adjacency(edge_index, num_nodes)
        if self.method == "exact":
            self._init_exact(ei, w, dtype)
        else:
            self.lambda_max = self._resolve_lambda_max(edge_index)
            self._set_scales()
            self.coefficients = np.stack(
                [chebyshev_coefficients(g, self.order) for g in self.bank]
            )
            coef = torch.tensor(self.coefficients, dtype=dtype)  # a copy: halved below
            coef[:, 0] /= 2  # the c_0 / 2 convention, folded in once
            self.register_buffer("_coef", coef, persistent=False)
            self.register_buffer("_p", sparse_csr(ei, w, num_nodes, dtype), persistent=False)

    # -- settings (read from the spec) -------------------------------------------

    filters = property(lambda self: self.spec.filters)
    alpha = property(lambda self: self.spec.alpha)
    levels = property(lambda self: self.spec.levels)
    scale = property(lambda self: self.spec.scale)
    order = property(lambda self: self.spec.order)
    method = property(lambda self: self.spec.method)

    # -- construction ----------------------------------------------------------

    def _resolve_lambda_max(self, edge_index: Tensor, eigenvalues: Tensor | None = None) -> float:
        spec = self.spec.lambda_max
        if spec == "bound":
            return 2.0
        if spec != "estimate":
            return float(spec)
        if eigenvalues is not None:
            return float(eigenvalues.max().clamp(max=2.0))
        return estimate_lambda_max(edge_index, self.num_nodes)

    def _set_scales(self) -> None:
        s, lev = self.scale, self.levels
        self.J = math.log(self.lambda_max / math.pi) / math.log(s) + lev - 1
        self.scales = [s ** (-self.J + l - 1) for l in range(1, lev + 1)]

    def _init_exact(self, ei: Tensor, w: Tensor, dtype: torch.dtype) -> None:
        n = self.num_nodes
        lap = torch.eye(n, dtype=torch.float64)
        lap.index_put_((ei[0], ei[1]), -w, accumulate=True)
        lam, u = torch.linalg.eigh(lap)
        lam = lam.clamp(0.0, 2.0)
        self.lambda_max = self._resolve_lambda_max(ei, lam)
        self._set_scales()
        self.coefficients = None
        self.register_buffer("_u", u.to(dtype), persistent=False)
        h = torch.as_tensor(self.spectral_response(lam.numpy()), dtype=dtype)
        self.register_buffer("_h", h, persistent=False)

    # -- spectral view ---------------------------------------------------------

    def _filter_values(self, f: int, xi: np.ndarray) -> np.ndarray:
        if self.method == "exact":
            # Eigenvalues above the lambda_max in use would leave [0, pi].
            return self.bank[f](np.clip(xi, 0.0, math.pi))
        from numpy.polynomial import chebyshev as cheb

        c = self.coefficients[f].copy()
        c[0] /= 2
        return cheb.chebval(xi / CHEBYSHEV_A - 1.0, c)

    def spectral_response(self, lam: np.ndarray) -> np.ndarray:
        r"""``[C, len(lam)]``: the function :math:`h_c(\lambda)` with :math:`W_c = h_c(L)`.

        Uses the exact filters (``exact``) or the Chebyshev polynomials (``chebyshev``),
        with the level product structure :math:`h_{r,l} = g_r(t_l\lambda)\prod_{j<l}
        g_0(t_j\lambda)`.
        """
        lam = np.asarray(lam, dtype=np.float64)
        low = np.ones_like(lam)
        out = np.zeros((self.num_channels, lam.size))
        for l, t in enumerate(self.scales, start=1):
            for r in range(1, len(self.bank)):
                out[self._index(r, l)] = self._filter_values(r, t * lam) * low
            low = self._filter_values(0, t * lam) * low
        out[0] = low
        return out

    def frame_bounds(self, num_points: int = 4097) -> tuple[float, float]:
        r"""Min and max of :math:`\sum_c h_c(\lambda)^2` over :math:`[0, \lambda_{\max}]`.

        A tight frame has bounds ``(1, 1)``; these are the worst case over the whole
        spectral interval, independent of which eigenvalues the graph actually has.
        """
        total = (self.spectral_response(np.linspace(0, self.lambda_max, num_points)) ** 2).sum(0)
        return float(total.min()), float(total.max())

    def _index(self, r: int, l: int) -> int:
        return 0 if r == 0 else 1 + (r - 1) * self.levels + (l - 1)

    # -- device handling -------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return (self._u if self.method == "exact" else self._coef).device

    @property
    def dtype(self) -> torch.dtype:
        return (self._u if self.method == "exact" else self._coef).dtype

    def _check_input(self, x: Tensor, dims: int, what: str) -> None:
        if not isinstance(x, Tensor) or x.dim() != dims or x.size(-2) != self.num_nodes:
            shape = list(x.shape) if isinstance(x, Tensor) else type(x).__name__
            want = "[N, d]" if dims == 2 else f"[{self.num_channels}, N, d]"
            raise GraphError(f"{what} must have shape {want} with N={self.num_nodes}, got {shape}")
        if dims == 3 and x.size(0) != self.num_channels:
            raise GraphError(
                f"{what} must have one slice per channel ({self.num_channels}), got {x.size(0)}"
            )
        if x.dtype != self.dtype or x.device != self.device:
            raise GraphError(
                f"{what} is {x.dtype} on {x.device} but the transform is {self.dtype} on "
                f"{self.device}; call transform.to(device, dtype) or cast the input"
            )

    # -- Chebyshev kernel ------------------------------------------------------

    def _polys(self, u: Tensor, t: float, coef: Tensor) -> Tensor:
        r"""Return :math:`\sum_k coef[:, k] \odot T_k(Y) u` for :math:`Y = (t/a)L - I`.

        ``u`` is ``[N, w]``; ``coef`` is ``[F, order, w]`` or ``[F, order, 1]`` (column-wise
        coefficients let one recurrence serve several filters and inputs). Returns
        ``[F, N, w]``. Uses :math:`Yu = (t/a - 1)u - (t/a) D^{-1/2}AD^{-1/2} u`.
        """
        beta = t / CHEBYSHEV_A
        # torch.addmm fuses the sparse product with the axpy (and is faster than
        # torch.sparse.mm on CPU); the in-place updates never touch saved tensors.
        acc = coef[:, 0, None, :] * u
        if self.order == 1:
            return acc
        prev, cur = u, symmetric_matmul(self._p, u, u, beta=beta - 1.0, alpha=-beta)
        acc.addcmul_(coef[:, 1, None, :], cur)
        for k in range(2, self.order):
            nxt = symmetric_matmul(self._p, cur, prev, beta=-1.0, alpha=-2.0 * beta)
            prev, cur = cur, nxt.add_(cur, alpha=2.0 * (beta - 1.0))
            acc.addcmul_(coef[:, k, None, :], cur)
        return acc

    # -- the transform ---------------------------------------------------------

    def apply(self, x: Tensor) -> Tensor:  # type: ignore[override]
        r"""Framelet coefficients :math:`W_c x` for every channel: ``[N, d] -> [C, N, d]``.

        Chebyshev: one recurrence per level evaluates all R + 1 filters at once and
        passes the low pass on to the next level, :math:`\mathrm{Lev}(\mathrm{order}-1)`
        sparse products of width d in all.
        """
        if not isinstance(x, Tensor):  # nn.Module.apply(fn) on a module tree
            return super().apply(x)
        self._check_input(x, 2, "x")
        if self.method == "exact":
            return self._u @ (self._h[:, :, None] * (self._u.T @ x)[None])
        outs: list[Tensor | None] = [None] * self.num_channels
        low = x
        for l, t in enumerate(self.scales, start=1):
            res = self._polys(low, t, self._coef[:, :, None])
            for r in range(1, len(self.bank)):
                outs[self._index(r, l)] = res[r]
            low = res[0]
        outs[0] = low
        return torch.stack(outs)

    def apply_each(self, xs: Tensor) -> Tensor:
        r"""Channel-wise :math:`W_c x_c`: ``[C, N, d] -> [C, N, d]``.

        At level j, every channel still below its own level gets :math:`g_0(t_j L)` and
        channel (r, j) gets :math:`g_r(t_j L)`; all active channels share one recurrence
        on their concatenated columns.
        """
        self._check_input(xs, 3, "xs")
        if self.method == "exact":
            return self._u @ (self._h[:, :, None] * (self._u.T @ xs))
        n, d = xs.shape[1], xs.shape[2]
        cur = list(xs.unbind(0))
        for j, t in enumerate(self.scales, start=1):
            active = [i for i, (r, l) in enumerate(self.channels) if r == 0 or l >= j]
            filt = [0 if (r == 0 or l > j) else r for (r, l) in (self.channels[i] for i in active)]
            u = torch.stack([cur[i] for i in active], 1).reshape(n, len(active) * d)
            coef = self._coef[filt].repeat_interleave(d, 0).T[None]  # [1, order, A*d]
            res = self._polys(u, t, coef)[0].reshape(n, len(active), d)
            for pos, i in enumerate(active):
                cur[i] = res[:, pos]
        return torch.stack(cur)

    def reconstruct(self, ys: Tensor) -> Tensor:
        r"""Synthesis :math:`\sum_c W_c^\top y_c = \sum_c W_c y_c`: ``[C, N, d] -> [N, d]``.

        Nested from the coarsest level down,
        :math:`z_l = g_0(t_l L) z_{l+1} + \sum_r g_r(t_l L) y_{r,l}` with
        :math:`z_{\mathrm{Lev}+1} = y_{0,\mathrm{Lev}}`; each level costs ``order - 1`` sparse
        products of width d (Clenshaw's recurrence, :meth:`_clenshaw`).
        ``reconstruct(apply(x)) == x`` for a tight frame.
        """
        self._check_input(ys, 3, "ys")
        if self.method == "exact":
            return self._u @ (self._h[:, :, None] * (self._u.T @ ys)).sum(0)
        f = len(self.bank)
        z = ys[0]
        for l in range(self.levels, 0, -1):
            blocks = torch.stack([z] + [ys[self._index(r, l)] for r in range(1, f)])
            z = self._clenshaw(blocks, self.scales[l - 1])
        return z

    def _clenshaw(self, u: Tensor, t: float) -> Tensor:
        r"""Return :math:`\sum_r g_r(tL)\, u_r = \sum_k T_k(Y)\, w_k` for ``u`` ``[F, N, d]``,
        :math:`w_k = \sum_r coef[r, k]\, u_r`, :math:`Y = (t/a) L - I`.

        Clenshaw's recurrence :math:`b_k = w_k + 2Y b_{k+1} - b_{k+2}`, result
        :math:`w_0 + Y b_1 - b_2`: the filters are summed *before* each product, so the
        ``order - 1`` sparse products have width d, not F·d as a forward recurrence per
        filter would need (the same polynomial; the rounding differs).
        """
        beta = t / CHEBYSHEV_A
        f, n, d = u.shape
        # Every w_k in one product [order, F] x [F, N·d] (F is small: one call, not order).
        ws = (self._coef.T @ u.reshape(f, n * d)).reshape(self.order, n, d)

        def w(k: int) -> Tensor:
            return ws[k]

        if self.order == 1:
            return w(0)
        b1, b2 = w(self.order - 1), None
        for k in range(self.order - 2, 0, -1):
            nxt = symmetric_matmul(self._p, b1, b1, beta=2.0 * (beta - 1.0), alpha=-2.0 * beta)
            nxt = nxt + w(k) if b2 is None else nxt + (w(k) - b2)
            b1, b2 = nxt, b1
        out = symmetric_matmul(self._p, b1, b1, beta=beta - 1.0, alpha=-beta) + w(0)
        return out if b2 is None else out - b2

    def frame_error(self, num_probes: int = 4, iters: int = 30, seed: int = 0) -> float:
        r"""Estimate :math:`\|\sum_c W_c^\top W_c - I\|_2` by block power iteration.

        ``num_probes`` seeded Gaussian probes are iterated ``iters`` times through the
        symmetric operator :math:`E = \sum_c W_c^\top W_c - I`; the result is the largest
        :math:`\|Ev\|/\|v\|`, a lower bound that converges to the norm. Deterministic for
        a given ``seed``.
        """
        gen = torch.Generator().manual_seed(seed)
        v = torch.randn(self.num_nodes, num_probes, generator=gen, dtype=torch.float64)
        v = v.to(device=self.device, dtype=self.dtype)
        est = 0.0
        with torch.no_grad():
            for _ in range(max(1, iters)):
                v = v / v.norm(dim=0, keepdim=True).clamp(min=torch.finfo(self.dtype).tiny)
                ev = self.reconstruct(self.apply(v)) - v
                est = float(ev.norm(dim=0).max())
                if est == 0.0:
                    break
                v = ev
        return est

    def forward(self, x: Tensor) -> Tensor:
        """The analysis :meth:`apply`: ``[N, d] -> [C, N, d]``."""
        return self.apply(x)

    def extra_repr(self) -> str:
        alpha = f", alpha={self.alpha}" if self.alpha is not None else ""
        order = f", order={self.order}" if self.method == "chebyshev" else ""
        return (
            f"num_nodes={self.num_nodes}, filters={self.filters!r}{alpha}, "
            f"levels={self.levels}, scale={self.scale}{order}, method={self.method!r}, "
            f"lambda_max={self.lambda_max:.6g}"
        )
