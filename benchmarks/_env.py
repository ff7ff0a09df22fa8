"""What every benchmark shares: the one-line description of the software and machine it prints
first, interleaved timing, and result CSVs that a re-run appends to."""

from __future__ import annotations

import contextlib
import csv
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
import torch_geometric


def environment() -> str:
    """``torch 2.13.0+cpu, PyG 2.8.1, 1 thread(s), x86_64, CPU kernels AVX512 (amx_bf16)``:
    what a timing depends on (bfloat16 products are fast only with AMX or AVX-512 BF16)."""
    return (f"torch {torch.__version__}, PyG {torch_geometric.__version__}, "
            f"{torch.get_num_threads()} thread(s), {platform.processor() or platform.machine()}, "
            f"CPU kernels {torch.backends.cpu.get_cpu_capability()}{_bf16_flags()}")


def _bf16_flags() -> str:
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())  # Linux only
    except OSError:
        return ""
    found = [f for f in ("amx_bf16", "avx512_bf16") if f in flags]
    return f" ({', '.join(found)})" if found else ""


def interleaved_median_ms(calls: dict[str, Callable[[], object]], repeats: int
                          ) -> dict[str, float]:
    """Median time of each call in ms, interleaved: one untimed call each, then ``repeats``
    rounds over all (so a slow spell of a loaded machine hits every call alike)."""
    times: dict[str, list[float]] = {k: [] for k in calls}
    with torch.no_grad():
        for call in calls.values():
            call()
        for _ in range(repeats):
            for key, call in calls.items():
                start = time.perf_counter()
                call()
                times[key].append(time.perf_counter() - start)
    return {k: 1000 * statistics.median(v) for k, v in times.items()}


def finished(path: Path, key: Callable[[dict], tuple]) -> set[tuple]:
    """``key(row)`` of every row a resumable result CSV holds (none when it is new)."""
    if not path.is_file():
        return set()
    with path.open() as f:
        return {key(r) for r in csv.DictReader(f)}


@contextlib.contextmanager
def appended_csv(path: Path, fields: list[str]) -> Iterator[Callable[[dict], None]]:
    """``write(row)`` appending rows to the CSV at ``path`` (header first when it is new),
    each flushed at once so that an interrupted benchmark resumes from its last row."""
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.is_file()
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        if new:
            writer.writeheader()

        def write(row: dict) -> None:
            writer.writerow(row)
            f.flush()

        yield write
