r"""Undecimated graph framelets (SPEC §2): filter banks and the framelet transform.

A filter bank :math:`\{g_0; g_1, \dots, g_R\}` on :math:`\xi \in [0, \pi]` is *tight* when
:math:`\sum_r g_r(\xi)^2 = 1`. With the normalised Laplacian
:math:`L = I - D^{-1/2} A D^{-1/2}` (isolated nodes get :math:`L_{ii} = 1`), dilation
:math:`s > 1` and :math:`\mathrm{Lev}` levels,

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

The default ``order = 8`` (degree 7) keeps the worst-case frame error
:math:`\max_{\xi}|\sum_r p_r(\xi)^2 - 1|` at 5.5e-8 (Haar), 6.8e-6 (Linear) and 8.0e-5
(Quadratic). Sigmoid(20) is steep and needs ``order = 32`` (2.5e-5; 6.7e-2 at 8). The Entropy
bank is discontinuous at :math:`\xi = \pi/2` unless ``alpha = 1``, so no polynomial order
makes it tight near that frequency (about 0.25 there at any order): use ``method="exact"``
for it on small graphs. :meth:`FrameletTransform.frame_error` and
:meth:`FrameletTransform.frame_bounds` report the error of a given transform. The reference
release used ``order = 2`` (an affine filter): its Haar frame bounds are about
``[0.73, 1.25]`` (frame error ≈ 0.27).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from framekd.errors import ConfigError, FramekdWarning, GraphError
from framekd.graph import check_edge_index

Filter = Callable[[np.ndarray], np.ndarray]

FILTER_BANKS = ("haar", "linear", "quadratic", "sigmoid", "entropy")
DEFAULT_ALPHA = {"sigmoid": 20.0, "entropy": 0.5}
METHODS = ("chebyshev", "exact")

#: ``method="exact"`` refuses graphs above this size (dense N×N float64 eigenvectors).
EXACT_MAX_NODES = 5000
#: Graphs up to this size get λ_max from a dense eigensolver instead of Lanczos.
DENSE_LAMBDA_MAX_NODES = 256

_A = math.pi / 2  # the Chebyshev expansion maps [0, pi] onto [-1, 1] via xi/a - 1
_QUADRATURE_POINTS = 2000


# ----------------------------------------------------------------------------- filter banks


def _haar() -> list[Filter]:
    return [lambda x: np.cos(x / 2), lambda x: np.sin(x / 2)]


def _linear() -> list[Filter]:
    return [
        lambda x: np.cos(x / 2) ** 2,
        lambda x: np.sin(x) / math.sqrt(2),
        lambda x: np.sin(x / 2) ** 2,
    ]


def _quadratic() -> list[Filter]:
    r3 = math.sqrt(3)
    return [
        lambda x: np.cos(x / 2) ** 3,
        lambda x: r3 * np.sin(x / 2) * np.cos(x / 2) ** 2,
        lambda x: r3 * np.sin(x / 2) ** 2 * np.cos(x / 2),
        lambda x: np.sin(x / 2) ** 3,
    ]


def _sigmoid(alpha: float) -> list[Filter]:
    from scipy.special import expit

    def s(x: np.ndarray) -> np.ndarray:
        return expit(alpha * (x / math.pi - 0.5))

    # 1 - s(x) = s(-(...)): computing it that way keeps the low pass accurate near 0.
    return [
        lambda x: np.sqrt(expit(-alpha * (x / math.pi - 0.5))),
        lambda x: np.sqrt(s(x)),
    ]


def _entropy(alpha: float) -> list[Filter]:
    def outer(x: np.ndarray) -> np.ndarray:
        u = x / math.pi
        return np.clip(1 - 4 * alpha * u + 4 * alpha * u**2, 0.0, None)

    def middle(x: np.ndarray) -> np.ndarray:
        u = x / math.pi
        return np.clip(4 * alpha * u - 4 * alpha * u**2, 0.0, None)

    # The clip only removes -1e-17 rounding that would turn sqrt into NaN.
    return [
        lambda x: np.sqrt(outer(x) * (x / math.pi <= 0.5)),
        lambda x: np.sqrt(middle(x)),
        lambda x: np.sqrt(outer(x) * (x / math.pi > 0.5)),
    ]


def resolve_alpha(name: str, alpha: float | None) -> float | None:
    """Validate a filter bank's shape parameter; return it or the bank's default."""
    if name not in DEFAULT_ALPHA:
        if alpha is not None:
            raise ConfigError(
                f"filter bank {name!r} has no shape parameter but alpha={alpha} was given; "
                "alpha only applies to 'sigmoid' and 'entropy'"
            )
        return None
    if alpha is None:
        return DEFAULT_ALPHA[name]
    alpha = float(alpha)
    if name == "entropy" and not 0.0 < alpha <= 1.0:
        raise ConfigError(
            f"the entropy filter bank needs 0 < alpha <= 1, got alpha={alpha} (outside it "
            "1 - 4αx + 4αx² turns negative and the filters are not real); default 0.5"
        )
    if name == "sigmoid" and not (alpha > 0.0 and math.isfinite(alpha)):
        raise ConfigError(
            f"the sigmoid filter bank needs a finite alpha > 0 (its steepness), got {alpha}; "
            "default 20"
        )
    return alpha


def filter_bank(name: str, alpha: float | None = None) -> list[Filter]:
    r"""The tight filter bank ``[g_0 (low pass), g_1, ..., g_R]`` called ``name``.

    Each filter maps a NumPy array of frequencies :math:`\xi \in [0, \pi]` to its values.
    Banks (SPEC §2): ``haar`` (R = 1), ``linear`` (R = 2), ``quadratic`` (R = 3),
    ``sigmoid`` (R = 1, steepness ``alpha``, default 20) and ``entropy`` (R = 2,
    ``0 < alpha <= 1``, default 0.5). Tightness :math:`\sum_r g_r^2 = 1` is checked on a
    grid before the bank is returned.

    Raises:
        ConfigError: unknown name or invalid ``alpha``.
    """
    key = str(name).lower()
    if key not in FILTER_BANKS:
        raise ConfigError(
            f"unknown filter bank {name!r}; choose one of {', '.join(FILTER_BANKS)}"
        )
    a = resolve_alpha(key, alpha)
    bank = {
        "haar": _haar,
        "linear": _linear,
        "quadratic": _quadratic,
        "sigmoid": lambda: _sigmoid(a),
        "entropy": lambda: _entropy(a),
    }[key]()
    check_tight(bank, name=key)
    return bank


def check_tight(bank: Sequence[Filter], *, name: str = "filter bank", tol: float = 1e-10) -> None:
    r"""Raise :class:`ConfigError` unless :math:`\sum_r g_r(\xi)^2 = 1` on a grid of [0, π]."""
    xi = np.linspace(0.0, math.pi, 2001)
    total = sum(np.asarray(g(xi), dtype=np.float64) ** 2 for g in bank)
    err = float(np.max(np.abs(total - 1.0)))
    if not err <= tol:
        raise ConfigError(
            f"{name} is not tight: max |sum_r g_r(xi)^2 - 1| = {err:.3g} on [0, pi] "
            f"(tolerance {tol:g})"
        )


def chebyshev_coefficients(g: Filter, order: int) -> np.ndarray:
    r"""The first ``order`` Chebyshev coefficients of ``g`` on :math:`[0, \pi]`.

    .. math::
        c_k = \frac{2}{\pi} \int_0^\pi \cos(k\theta)\, g\big(a(\cos\theta + 1)\big)\, d\theta,
        \qquad a = \pi / 2,

    so that :math:`g(\xi) \approx c_0/2 + \sum_{k \ge 1} c_k T_k(\xi/a - 1)`. The integral
    uses the midpoint rule on :math:`\theta` (Gauss–Chebyshev), spectrally accurate for
    smooth :math:`g`.
    """
    m = max(_QUADRATURE_POINTS, 8 * order)
    theta = math.pi * (np.arange(m) + 0.5) / m
    values = np.asarray(g(_A * (np.cos(theta) + 1.0)), dtype=np.float64)
    k = np.arange(order)[:, None]
    return 2.0 / m * (np.cos(k * theta[None, :]) @ values)


# ----------------------------------------------------------------------------- Laplacian


def _check_canonical(edge_index: Tensor, num_nodes: int) -> None:
    from torch_geometric.utils import is_undirected

    if edge_index.numel() == 0:
        return
    if bool((edge_index[0] == edge_index[1]).any()):
        raise GraphError(
            "edge_index has self-loops; framelets use the graph without self-loops - "
            "pass the graph through framekd.graph.canonicalize first"
        )
    if not is_undirected(edge_index, num_nodes=num_nodes):
        raise GraphError(
            "edge_index is not symmetric; framelets need an undirected graph - "
            "pass the graph through framekd.graph.canonicalize first"
        )


def normalized_adjacency(edge_index: Tensor, num_nodes: int) -> tuple[Tensor, Tensor]:
    r"""Edges sorted by (row, col) and the weights of :math:`D^{-1/2} A D^{-1/2}`.

    Isolated nodes have degree 0 and get no entry (never :math:`0^{-1/2}`), so
    :math:`L = I - D^{-1/2} A D^{-1/2}` has :math:`L_{ii} = 1` there. Returns
    ``(edge_index, weight)`` in float64.
    """
    ei = edge_index.long().cpu()
    if ei.numel():
        order = torch.argsort(ei[0] * num_nodes + ei[1])
        ei = ei[:, order]
    deg = torch.bincount(ei[0], minlength=num_nodes).to(torch.float64)
    dinv = torch.where(deg > 0, deg.clamp(min=1).rsqrt(), torch.zeros_like(deg))
    return ei, dinv[ei[0]] * dinv[ei[1]]


def sparse_csr(edge_index: Tensor, weight: Tensor, num_nodes: int, dtype: torch.dtype) -> Tensor:
    """A torch sparse CSR matrix from row-sorted ``edge_index`` and ``weight``."""
    counts = torch.bincount(edge_index[0], minlength=num_nodes)
    crow = torch.zeros(num_nodes + 1, dtype=torch.int64)
    crow[1:] = torch.cumsum(counts, 0)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Sparse CSR tensor support is in beta.*")
        return torch.sparse_csr_tensor(
            crow, edge_index[1].contiguous(), weight.to(dtype), (num_nodes, num_nodes),
            check_invariants=False,
        )


class _SymmetricAddmm(torch.autograd.Function):
    """``beta * u + alpha * P @ v`` for a symmetric sparse ``P``, with a cheap backward.

    torch's generic backward of a sparse-dense product forms ``P^T`` (a CSR transpose and
    conversion) on every call; for the symmetric operators used here (``P^T = P``) the
    gradient is simply ``alpha * P @ grad``, which makes training several times faster.
    """

    @staticmethod
    def forward(ctx, u: Tensor, p: Tensor, v: Tensor, beta: float, alpha: float) -> Tensor:
        ctx.save_for_backward(p)
        ctx.beta, ctx.alpha = beta, alpha
        if u is None:
            return torch.sparse.mm(p, v).mul_(alpha) if alpha != 1.0 else torch.sparse.mm(p, v)
        return torch.addmm(u, p, v, beta=beta, alpha=alpha)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (p,) = ctx.saved_tensors
        grad_u = grad * ctx.beta if ctx.needs_input_grad[0] else None
        grad_v = None
        if ctx.needs_input_grad[2]:
            grad_v = torch.sparse.mm(p, grad.contiguous())
            if ctx.alpha != 1.0:
                grad_v = grad_v.mul_(ctx.alpha)
        return grad_u, None, grad_v, None, None


def symmetric_matmul(
    p: Tensor, v: Tensor, u: Tensor | None = None, *, beta: float = 1.0, alpha: float = 1.0
) -> Tensor:
    """``beta * u + alpha * (p @ v)`` for a **symmetric** sparse matrix ``p`` (``u`` optional).

    Differentiable in ``u`` and ``v``; the backward uses ``p`` itself instead of its
    transpose, which is only correct because ``p`` is symmetric.
    """
    return _SymmetricAddmm.apply(u, p, v, beta, alpha)


def _laplacian_scipy(edge_index: Tensor, num_nodes: int):
    import scipy.sparse as sp

    ei, w = normalized_adjacency(edge_index, num_nodes)
    p = sp.csr_matrix((w.numpy(), (ei[0].numpy(), ei[1].numpy())), shape=(num_nodes,) * 2)
    return sp.identity(num_nodes, format="csr") - p


def estimate_lambda_max(edge_index: Tensor, num_nodes: int, *, tol: float = 1e-6) -> float:
    r"""A deterministic estimate of the largest eigenvalue of :math:`L` (at most 2).

    Up to :data:`DENSE_LAMBDA_MAX_NODES` nodes: a dense eigensolver. Above: Lanczos
    (``scipy.sparse.linalg.eigsh``) from a fixed start vector (NumPy ``default_rng(0)``),
    so the same graph always gives the same value. If Lanczos does not converge the
    bound 2 is used, with a warning.
    """
    check_edge_index(edge_index, num_nodes)
    lap = _laplacian_scipy(edge_index, num_nodes)
    if num_nodes <= DENSE_LAMBDA_MAX_NODES:
        return float(min(np.linalg.eigvalsh(lap.toarray())[-1], 2.0))
    from scipy.sparse.linalg import ArpackNoConvergence, eigsh

    v0 = np.random.default_rng(0).standard_normal(num_nodes)
    try:
        lam = eigsh(lap, k=1, which="LA", v0=v0, tol=tol, return_eigenvectors=False)[0]
    except ArpackNoConvergence:
        warnings.warn(
            "Lanczos did not converge for lambda_max; using the bound 2.0",
            FramekdWarning,
            stacklevel=2,
        )
        return 2.0
    return float(min(lam, 2.0))


# ----------------------------------------------------------------------------- transform

_NUM_HIGH_PASSES = {"haar": 1, "sigmoid": 1, "linear": 2, "entropy": 2, "quadratic": 3}


def framelet_channels(filters: str, levels: int) -> list[tuple[int, int]]:
    """The channels ``[(0, Lev)] + [(r, l) for r = 1..R for l = 1..Lev]`` of a bank."""
    name = str(filters).lower()
    if name not in _NUM_HIGH_PASSES:
        raise ConfigError(
            f"unknown filter bank {filters!r}; choose one of {', '.join(FILTER_BANKS)}"
        )
    return [(0, levels)] + [
        (r, l) for r in range(1, _NUM_HIGH_PASSES[name] + 1) for l in range(1, levels + 1)
    ]


def framelet_config(
    *,
    filters: str = "haar",
    levels: int = 1,
    scale: float = 2.0,
    order: int = 8,
    method: str = "chebyshev",
    lambda_max: float | str | None = None,
    dtype: torch.dtype = torch.float32,
    alpha: float | None = None,
) -> dict:
    """Validate framelet options and return them normalised (a JSON-able dict).

    ``lambda_max`` becomes ``"estimate"`` (None), ``"bound"`` (2.0) or a float. Used by
    :class:`FrameletTransform` and as part of knowledge cache keys.
    """
    name = str(filters).lower()
    if name not in FILTER_BANKS:
        raise ConfigError(
            f"unknown filter bank {filters!r}; choose one of {', '.join(FILTER_BANKS)}"
        )
    alpha = resolve_alpha(name, alpha)
    if isinstance(levels, bool) or not isinstance(levels, int) or levels < 1:
        raise ConfigError(f"levels must be an integer >= 1, got {levels!r}")
    if isinstance(order, bool) or not isinstance(order, int) or order < 1:
        raise ConfigError(
            f"order (number of Chebyshev coefficients, degree order-1) must be an integer "
            f">= 1, got {order!r}; the default is 8"
        )
    try:
        scale = float(scale)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"scale must be a number > 1, got {scale!r}") from err
    if not (scale > 1.0 and math.isfinite(scale)):
        raise ConfigError(
            f"scale (dilation) must be > 1, got {scale}; with scale <= 1 the number of "
            "scales J = log_s(lambda_max/pi) is undefined (the default is 2)"
        )
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if lambda_max is None or lambda_max == "estimate":
        lam: float | str = "estimate"
    elif lambda_max == "bound":
        lam = "bound"
    elif isinstance(lambda_max, str):
        raise ConfigError(
            f"lambda_max must be None (estimate), 'bound' (2.0) or a number, got {lambda_max!r}"
        )
    else:
        lam = float(lambda_max)
        if not (lam > 0 and math.isfinite(lam)):
            raise ConfigError(f"lambda_max must be a positive number, got {lambda_max!r}")
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ConfigError(f"dtype must be a torch floating dtype, got {dtype!r}")
    return {
        "filters": name,
        "alpha": alpha,
        "levels": levels,
        "scale": scale,
        "order": order,
        "method": method,
        "lambda_max": lam,
        "dtype": str(dtype).replace("torch.", ""),
    }


class FrameletTransform:
    r"""The undecimated graph framelet transform :math:`\{W_c\}_{c \in C}` of one graph.

    Args:
        edge_index: canonical ``[2, E]`` edges (symmetric, no self-loops; see
            :func:`framekd.graph.canonicalize`).
        num_nodes: number of nodes N.
        filters: filter bank name (see :func:`filter_bank`).
        levels: number of levels Lev >= 1.
        scale: dilation s > 1.
        order: number of Chebyshev coefficients (degree ``order - 1``); default 8.
        method: ``"chebyshev"`` (matrix-free) or ``"exact"`` (dense eigendecomposition,
            at most :data:`EXACT_MAX_NODES` nodes).
        lambda_max: ``None`` for a deterministic estimate (:func:`estimate_lambda_max`;
            the exact method uses the exact largest eigenvalue), ``"bound"`` for 2.0, or
            a number.
        dtype: floating dtype of the operators and outputs (default float32).
        alpha: shape parameter of the ``sigmoid``/``entropy`` banks.

    Attributes:
        channels: ``[(0, Lev), (1, 1), ..., (1, Lev), ..., (R, Lev)]``.
        num_channels: ``len(channels)``.
        lambda_max: the λ_max used.
        scales: ``[t_1, ..., t_Lev]``.
        coefficients: ``[R + 1, order]`` float64 Chebyshev coefficients (chebyshev only).

    The operators live on CPU after construction; :meth:`to` moves them. Inputs must have
    the transform's device and dtype. All of :meth:`apply`, :meth:`apply_each` and
    :meth:`reconstruct` are differentiable with respect to their input.
    """

    def __init__(
        self,
        edge_index: Tensor,
        num_nodes: int,
        *,
        filters: str = "haar",
        levels: int = 1,
        scale: float = 2.0,
        order: int = 8,
        method: str = "chebyshev",
        lambda_max: float | str | None = None,
        dtype: torch.dtype = torch.float32,
        alpha: float | None = None,
    ) -> None:
        self.config = framelet_config(
            filters=filters, levels=levels, scale=scale, order=order, method=method,
            lambda_max=lambda_max, dtype=dtype, alpha=alpha,
        )
        check_edge_index(edge_index, num_nodes)
        _check_canonical(edge_index, num_nodes)
        if method == "exact" and num_nodes > EXACT_MAX_NODES:
            raise ConfigError(
                f"method='exact' needs a dense {num_nodes}x{num_nodes} eigendecomposition and "
                f"is limited to {EXACT_MAX_NODES} nodes; use method='chebyshev' "
                "(matrix-free, linear in edges)"
            )
        self.num_nodes = int(num_nodes)
        self.filters = self.config["filters"]
        self.alpha = self.config["alpha"]
        self.levels = levels
        self.scale = float(scale)
        self.order = order
        self.method = method
        self.dtype = dtype
        self.bank = filter_bank(self.filters, self.alpha)
        self.channels: list[tuple[int, int]] = framelet_channels(self.filters, levels)
        self.num_channels = len(self.channels)

        if method == "chebyshev" and self.filters == "entropy" and self.alpha < 1.0:
            warnings.warn(
                f"the entropy bank with alpha={self.alpha} is discontinuous at xi = pi/2, so "
                "its Chebyshev approximation is not tight there at any order (frame error "
                "about 0.25); use method='exact' on small graphs or alpha=1",
                FramekdWarning,
                stacklevel=2,
            )
        ei, w = normalized_adjacency(edge_index, num_nodes)
        if method == "exact":
            self._init_exact(ei, w)
        else:
            self.lambda_max = self._resolve_lambda_max(edge_index)
            self._set_scales()
            self.coefficients = np.stack([chebyshev_coefficients(g, order) for g in self.bank])
            self._coef = torch.tensor(self.coefficients, dtype=dtype)  # a copy: halved below
            self._coef[:, 0] /= 2  # the c_0 / 2 convention, folded in once
            self._p = sparse_csr(ei, w, num_nodes, dtype)

    # -- construction ----------------------------------------------------------

    def _resolve_lambda_max(self, edge_index: Tensor, eigenvalues: Tensor | None = None) -> float:
        spec = self.config["lambda_max"]
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

    def _init_exact(self, ei: Tensor, w: Tensor) -> None:
        n = self.num_nodes
        lap = torch.eye(n, dtype=torch.float64)
        lap.index_put_((ei[0], ei[1]), -w, accumulate=True)
        lam, u = torch.linalg.eigh(lap)
        lam = lam.clamp(0.0, 2.0)
        self.lambda_max = self._resolve_lambda_max(ei, lam)
        self._set_scales()
        self.coefficients = None
        self._u = u.to(self.dtype)
        self._h = torch.as_tensor(self.spectral_response(lam.numpy()), dtype=self.dtype)

    # -- spectral view ---------------------------------------------------------

    def _filter_values(self, f: int, xi: np.ndarray) -> np.ndarray:
        if self.method == "exact":
            # Eigenvalues above the lambda_max in use would leave [0, pi].
            return self.bank[f](np.clip(xi, 0.0, math.pi))
        from numpy.polynomial import chebyshev as cheb

        c = self.coefficients[f].copy()
        c[0] /= 2
        return cheb.chebval(xi / _A - 1.0, c)

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
        return (self._u if self.method == "exact" else self._p).device

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None):
        """Move the operators to ``device`` and/or cast them to ``dtype``; returns ``self``."""
        if dtype is not None:
            if not dtype.is_floating_point:
                raise ConfigError(f"dtype must be floating point, got {dtype}")
            self.dtype = dtype
            self.config["dtype"] = str(dtype).replace("torch.", "")
        names = ("_u", "_h") if self.method == "exact" else ("_p", "_coef")
        for name in names:
            setattr(self, name, getattr(self, name).to(device=device, dtype=self.dtype))
        return self

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
        beta = t / _A
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

    def apply(self, x: Tensor) -> Tensor:
        r"""Framelet coefficients :math:`W_c x` for every channel: ``[N, d] -> [C, N, d]``.

        Chebyshev: one recurrence per level evaluates all R + 1 filters at once and
        passes the low pass on to the next level, :math:`\mathrm{Lev}(\mathrm{order}-1)`
        sparse products of width d in all.
        """
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
        :math:`z_{\mathrm{Lev}+1} = y_{0,\mathrm{Lev}}`, so each level costs one
        recurrence of width :math:`(R+1)d`. ``reconstruct(apply(x)) == x`` for a tight frame.
        """
        self._check_input(ys, 3, "ys")
        if self.method == "exact":
            return self._u @ (self._h[:, :, None] * (self._u.T @ ys)).sum(0)
        n, d = ys.shape[1], ys.shape[2]
        f = len(self.bank)
        z = ys[0]
        for l in range(self.levels, 0, -1):
            blocks = [z] + [ys[self._index(r, l)] for r in range(1, f)]
            u = torch.stack(blocks, 1).reshape(n, f * d)
            coef = self._coef.repeat_interleave(d, 0).T[None]
            z = self._polys(u, self.scales[l - 1], coef)[0].reshape(n, f, d).sum(1)
        return z

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

    def __repr__(self) -> str:
        alpha = f", alpha={self.alpha}" if self.alpha is not None else ""
        order = f", order={self.order}" if self.method == "chebyshev" else ""
        return (
            f"{self.__class__.__name__}(num_nodes={self.num_nodes}, filters={self.filters!r}"
            f"{alpha}, levels={self.levels}, scale={self.scale}{order}, "
            f"method={self.method!r}, lambda_max={self.lambda_max:.6g})"
        )
