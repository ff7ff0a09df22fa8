"""Wall-clock timing of inference calls, shared by `framekd run` and `framekd bench`."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from framekd.errors import ConfigError


def time_once(fn: Callable[[], Any], device: torch.device | str = "cpu") -> tuple[Any, float]:
    """``(fn(), seconds)`` for one call under ``torch.no_grad()``; on CUDA the device is
    synchronised before the clock starts and before it stops."""
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    with torch.no_grad():
        out = fn()
    sync()
    return out, time.perf_counter() - start


def median_time(
    fn: Callable[[], Any], *, repeats: int = 100, warmup: int = 10,
    device: torch.device | str = "cpu",
) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeats`` calls after ``warmup`` calls.

    Runs under ``torch.no_grad()``; on CUDA every call is synchronised before the clock stops.
    """
    if repeats < 1 or warmup < 0:
        raise ConfigError(f"repeats must be >= 1 and warmup >= 0, got {repeats} and {warmup}")
    cuda = torch.device(device).type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    times = []
    with torch.no_grad():
        for _ in range(warmup):
            fn()
        sync()
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - start)
    return statistics.median(times)
