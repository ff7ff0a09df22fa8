"""The framelet settings, validated once (docs/SPEC.md §2).

:class:`FrameletSpec` is the only way framelet options travel: the transform, both framelet
teachers, the knowledge, its cache key and the CLI's ``framelet.*`` keys all read one.
It checks itself when built, so code that receives one can trust it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from framekd.errors import ConfigError
from framekd.framelets.banks import FILTER_BANKS, framelet_channels, resolve_alpha

METHODS = ("chebyshev", "exact")


def _int_at_least_one(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{what} must be an integer >= 1, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class FrameletSpec:
    r"""Settings of a framelet transform.

    Args:
        filters: filter bank (``haar``, ``linear``, ``quadratic``, ``sigmoid``, ``entropy``).
        levels: number of levels Lev >= 1.
        scale: dilation s > 1 (s <= 1 would make :math:`J = \log_s(\lambda_{max}/\pi)`
            undefined).
        order: number of Chebyshev coefficients (degree ``order - 1``) >= 1.
        method: ``"chebyshev"`` (matrix-free) or ``"exact"`` (dense eigendecomposition,
            small graphs only).
        lambda_max: ``"estimate"`` (deterministic Lanczos; ``None`` means the same),
            ``"bound"`` (2.0) or a positive number.
        alpha: shape parameter of ``sigmoid`` (default 20) and ``entropy``
            (``0 < alpha <= 1``, default 0.5); must be ``None`` for the other banks.

    Raises:
        ConfigError: any invalid value, naming it and the valid range.
    """

    filters: str = "haar"
    levels: int = 1
    scale: float = 2.0
    order: int = 8
    method: str = "chebyshev"
    lambda_max: float | str = "estimate"
    alpha: float | None = None

    def __post_init__(self) -> None:
        name = str(self.filters).lower()
        if name not in FILTER_BANKS:
            raise ConfigError(
                f"unknown filter bank {self.filters!r}; choose one of {', '.join(FILTER_BANKS)}"
            )
        set_ = object.__setattr__
        set_(self, "filters", name)
        set_(self, "alpha", resolve_alpha(name, self.alpha))
        set_(self, "levels", _int_at_least_one(self.levels, "levels"))
        set_(self, "order", _int_at_least_one(
            self.order, "order (number of Chebyshev coefficients, degree order-1; default 8)"))
        set_(self, "scale", _check_scale(self.scale))
        if self.method not in METHODS:
            raise ConfigError(
                f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}"
            )
        set_(self, "lambda_max", _check_lambda_max(self.lambda_max))

    @classmethod
    def coerce(cls, value: FrameletSpec | Mapping[str, Any] | None = None,
               **options: Any) -> FrameletSpec:
        """A spec from a spec, a mapping of its fields (e.g. the ``framelet`` section of a
        run configuration) or keyword options; unknown keys raise :class:`ConfigError`."""
        if isinstance(value, FrameletSpec) and not options:
            return value
        given = asdict(value) if isinstance(value, FrameletSpec) else dict(value or {})
        given.update(options)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(given) - known)
        if unknown:
            raise ConfigError(
                f"unknown framelet option(s) {', '.join(unknown)}; known: "
                f"{', '.join(sorted(known))}"
            )
        return cls(**given)

    @property
    def channels(self) -> list[tuple[int, int]]:
        """``[(0, Lev), (1, 1), ..., (R, Lev)]``: the framelet channels, low pass first."""
        return framelet_channels(self.filters, self.levels)

    @property
    def num_channels(self) -> int:
        return len(self.channels)

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-able dict (used in cache keys and configs)."""
        return asdict(self)


def _check_scale(scale: Any) -> float:
    try:
        value = float(scale)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"scale must be a number > 1, got {scale!r}") from err
    if not (value > 1.0 and math.isfinite(value)):
        raise ConfigError(
            f"scale (dilation) must be > 1, got {value}; with scale <= 1 the number of "
            "scales J = log_s(lambda_max/pi) is undefined (the default is 2)"
        )
    return value


def _check_lambda_max(lambda_max: Any) -> float | str:
    if lambda_max is None or lambda_max == "estimate":
        return "estimate"
    if lambda_max == "bound":
        return "bound"
    if isinstance(lambda_max, str) or isinstance(lambda_max, bool):
        raise ConfigError(
            f"lambda_max must be 'estimate', 'bound' (2.0) or a number, got {lambda_max!r}"
        )
    try:
        lam = float(lambda_max)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"lambda_max must be a positive number, got {lambda_max!r}") from err
    if not (lam > 0 and math.isfinite(lam)):
        raise ConfigError(f"lambda_max must be a positive number, got {lambda_max!r}")
    return lam
