r"""Tight filter banks of the undecimated graph framelets (docs/SPEC.md §2).

A filter bank :math:`\{g_0 (\text{low pass}); g_1, \dots, g_R\}` on :math:`\xi \in [0, \pi]`
is *tight* when :math:`\sum_r g_r(\xi)^2 = 1`:

* Haar: :math:`\cos(\xi/2), \sin(\xi/2)`;
* Linear: :math:`\cos^2(\xi/2), \sin(\xi)/\sqrt2, \sin^2(\xi/2)`;
* Quadratic: :math:`\cos^3(\xi/2), \sqrt3\sin(\xi/2)\cos^2(\xi/2),
  \sqrt3\sin^2(\xi/2)\cos(\xi/2), \sin^3(\xi/2)`;
* Sigmoid(α): :math:`\sqrt{1 - s(\xi)}, \sqrt{s(\xi)}`,
  :math:`s(\xi) = 1/(1 + e^{-\alpha(\xi/\pi - 1/2)})`;
* Entropy(α), :math:`0 < \alpha \le 1`, with :math:`x = \xi/\pi`:
  :math:`\sqrt{(1 - 4\alpha x + 4\alpha x^2)[x \le 1/2]}, \sqrt{4\alpha x - 4\alpha x^2},
  \sqrt{(1 - 4\alpha x + 4\alpha x^2)[x > 1/2]}`.

:func:`chebyshev_coefficients` expands a filter in Chebyshev polynomials on
:math:`[0, \pi]` for the matrix-free transform.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from framekd.errors import ConfigError

Filter = Callable[[np.ndarray], np.ndarray]

FILTER_BANKS = ("haar", "linear", "quadratic", "sigmoid", "entropy")
DEFAULT_ALPHA = {"sigmoid": 20.0, "entropy": 0.5}
#: The Chebyshev expansion maps [0, pi] onto [-1, 1] via xi / CHEBYSHEV_A - 1.
CHEBYSHEV_A = math.pi / 2
_QUADRATURE_POINTS = 2000




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
    Banks (docs/SPEC.md §2): ``haar`` (R = 1), ``linear`` (R = 2), ``quadratic`` (R = 3),
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
    values = np.asarray(g(CHEBYSHEV_A * (np.cos(theta) + 1.0)), dtype=np.float64)
    k = np.arange(order)[:, None]
    return 2.0 / m * (np.cos(k * theta[None, :]) @ values)


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
