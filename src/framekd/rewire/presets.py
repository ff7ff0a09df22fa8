"""SDRF settings: the validated :class:`SDRFSpec` and the provisional per-dataset presets.

An SDRF run is set by four values: ``iterations``, the softmax inverse temperature
``tau``, the removal bound :math:`C^+` (``removal_bound``, ``None`` for no removals) and
``seed``. :class:`SDRFSpec` holds them, checks them when built, and merges the values a
caller gives with a dataset's preset (:meth:`SDRFSpec.from_preset`).
:data:`SDRF_PRESETS` are the per-dataset settings of Topping et al. (ICLR 2022) as
transcribed by a third party; :func:`sdrf_preset` looks one up by dataset name.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from framekd.errors import ConfigError


def _check_sdrf_args(iterations, tau, removal_bound, seed) -> None:
    if isinstance(iterations, bool) or not isinstance(iterations, (int, np.integer)):
        raise ConfigError(f"sdrf iterations must be an integer >= 0, got {iterations!r}")
    if iterations < 0:
        raise ConfigError(f"sdrf iterations must be >= 0, got {iterations}")
    if not isinstance(tau, (int, float, np.floating, np.integer)) or isinstance(tau, bool):
        raise ConfigError(f"sdrf tau must be a number >= 0, got {tau!r}")
    if not math.isfinite(tau) or tau < 0:
        raise ConfigError(
            f"sdrf tau (softmax temperature) must be finite and >= 0, got {tau}; "
            "tau = 0 samples candidates uniformly, large tau is greedy"
        )
    if removal_bound is not None and (
        isinstance(removal_bound, bool) or not isinstance(removal_bound, (int, float, np.number))
        or not math.isfinite(removal_bound)
    ):
        raise ConfigError(
            f"sdrf removal_bound must be a finite number or None (never remove), "
            f"got {removal_bound!r}"
        )
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"sdrf seed must be an integer >= 0, got {seed!r}")


#: Provisional per-dataset SDRF settings (iterations, tau, removal_bound C+) from a
#: third-party transcription of the paper's table (``jakubbober/discrete-curvature-
#: rewiring``, ``bronstein_paper/hyperparams.py``). Unverified against the paper's
#: appendix; other transcriptions disagree (e.g. Squirrel/Actor C+).
SDRF_PRESETS: dict[str, dict[str, float | int]] = {
    "cornell": {"iterations": 126, "tau": 145.0, "removal_bound": 0.88},
    "texas": {"iterations": 89, "tau": 22.0, "removal_bound": 1.64},
    "wisconsin": {"iterations": 136, "tau": 12.0, "removal_bound": 7.95},
    "chameleon": {"iterations": 2441, "tau": 252.0, "removal_bound": 2.84},
    "squirrel": {"iterations": 1396, "tau": 436.0, "removal_bound": 5.88},
    "actor": {"iterations": 3249, "tau": 106.0, "removal_bound": 7.91},
    "cora": {"iterations": 100, "tau": 163.0, "removal_bound": 0.95},
    "citeseer": {"iterations": 84, "tau": 180.0, "removal_bound": 0.22},
    "pubmed": {"iterations": 166, "tau": 115.0, "removal_bound": 14.43},
}


def _preset_key(dataset_name: str) -> str:
    """The :data:`SDRF_PRESETS` key a dataset name maps to (whether or not it exists)."""
    key = str(dataset_name).strip().lower().replace("-", "").replace("_", "")
    return {"film": "actor"}.get(key, key)


def has_sdrf_preset(dataset_name: str) -> bool:
    """Whether :func:`sdrf_preset` has settings for ``dataset_name``."""
    return _preset_key(dataset_name) in SDRF_PRESETS


def sdrf_preset(dataset_name: str) -> dict[str, float | int]:
    """Provisional SDRF settings ``{iterations, tau, removal_bound}`` for a dataset.

    **Provisional**: transcribed by a third party from the paper's table and not
    checked against the paper; other transcriptions differ. Computers, Photo and
    CoauthorCS have no preset (the source copies Cora's row).

    Raises:
        ConfigError: no preset for ``dataset_name``.
    """
    key = _preset_key(dataset_name)
    if key not in SDRF_PRESETS:
        raise ConfigError(
            f"no SDRF preset for dataset '{dataset_name}'; presets exist for "
            f"{', '.join(sorted(SDRF_PRESETS))} - pass iterations, tau and removal_bound"
        )
    return dict(SDRF_PRESETS[key])


@dataclass(frozen=True)
class SDRFSpec:
    """Settings of one SDRF run, checked when built.

    ``iterations`` and ``seed`` are stored as ``int`` and ``tau`` as ``float``;
    ``removal_bound`` is kept as given. ``to_dict()`` gives the keyword arguments of
    :func:`framekd.rewire.sdrf`.

    Args:
        iterations: maximum number of SDRF iterations (>= 0).
        tau: softmax inverse temperature (finite, >= 0; 0 samples uniformly).
        removal_bound: :math:`C^+`, or ``None`` for no removals.
        seed: seed of the NumPy generator (>= 0).

    Raises:
        ConfigError: a value is out of range or of the wrong type.
    """

    iterations: int
    tau: float
    removal_bound: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        _check_sdrf_args(self.iterations, self.tau, self.removal_bound, self.seed)
        object.__setattr__(self, "iterations", int(self.iterations))
        object.__setattr__(self, "tau", float(self.tau))
        object.__setattr__(self, "seed", int(self.seed))

    @classmethod
    def from_preset(cls, name: str | None, **given: Any) -> SDRFSpec:
        """The settings ``given``, with the ones not given taken from ``sdrf_preset(name)``.

        A value of ``None`` counts as not given. ``name=None`` (or a dataset without a
        preset) uses no preset, so ``iterations`` and ``tau`` must then be given;
        ``removal_bound`` defaults to ``None`` (no removals) and ``seed`` to 0.

        Raises:
            ConfigError: no preset for ``name`` while ``iterations`` or ``tau`` is
                missing, or an invalid value.
            TypeError: a keyword that is not a field of :class:`SDRFSpec`.
        """
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(given) - set(names))
        if unknown:
            raise TypeError(f"SDRFSpec.from_preset got unknown settings {unknown}; "
                            f"expected some of {names}")
        given = {k: v for k, v in given.items() if v is not None}
        missing = [k for k in ("iterations", "tau") if k not in given]
        if name is not None and (missing or has_sdrf_preset(name)):
            # Raises the "no SDRF preset ..." ConfigError when there is none.
            preset: dict[str, Any] = sdrf_preset(name)
        elif missing:
            raise ConfigError(f"SDRF needs {' and '.join(missing)} when no dataset preset "
                              "is used; pass iterations, tau and removal_bound")
        else:
            preset = {}
        return cls(**{**preset, **given})

    def to_dict(self) -> dict[str, Any]:
        """``{"iterations", "tau", "removal_bound", "seed"}``."""
        return asdict(self)
