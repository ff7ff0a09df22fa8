"""Checking the exports: running the ONNX model (onnxruntime, CPU) and the reloaded ``.pt2``
on the test nodes at two batch sizes, the parity of their logits and gates with PyTorch, and
the test accuracy of logits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from framekd.errors import ExportError
from framekd.export.constants import PARITY_BATCH
from framekd.export.formats import _quiet


def _batches(n: int) -> list[int]:
    """The parity batch sizes: all ``n`` nodes at once, and chunks of a different size."""
    second = min(PARITY_BATCH, max(1, (n + 1) // 2))
    return [n, second] if second != n else [n]


def _run_batched(run: Any, feeds: dict[str, np.ndarray]) -> tuple[list[tuple], list[int]]:
    """``(logits, gates)`` of ``run(feeds) -> [logits, gates?]`` on the test nodes, once per
    batch size of :func:`_batches` (the chunks' outputs concatenated), and the sizes."""
    n = feeds["x"].shape[0]
    sizes = _batches(n)
    runs = []
    for size in sizes:
        chunks = []
        for i in range(0, n, size):
            part = {"x": feeds["x"][i:i + size]}
            if "knowledge" in feeds:
                part["knowledge"] = feeds["knowledge"][:, :, i:i + size]
            chunks.append(run(part))
        logits = np.concatenate([c[0] for c in chunks])
        gates = None
        if len(chunks[0]) > 1:  # gates: the batch axis is the second to last
            gates = np.concatenate([c[1] for c in chunks], axis=chunks[0][1].ndim - 2)
        runs.append((logits, gates))
    return runs, sizes


def _run_onnx(path: Path, feeds: dict[str, np.ndarray]) -> tuple[list[tuple], list[int]]:
    """The ONNX model in onnxruntime on the CPU (:func:`_run_batched`)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # errors only
    session = ort.InferenceSession(str(path), sess_options=opts,
                                   providers=["CPUExecutionProvider"])
    return _run_batched(lambda part: session.run(None, part), feeds)


def _run_pt2(path: Path, feeds: dict[str, np.ndarray]) -> tuple[list[tuple], list[int]]:
    """The reloaded ``.pt2`` program (:func:`_run_batched`)."""

    def run(part: dict[str, np.ndarray]) -> list[np.ndarray]:
        with torch.no_grad():
            out = module(*(torch.from_numpy(v) for v in part.values()))
        return [o.numpy() for o in (out if isinstance(out, tuple) else (out,))]

    try:
        with _quiet():
            module = torch.export.load(str(path)).module()
            return _run_batched(run, feeds)
    except Exception as err:  # noqa: BLE001
        raise ExportError(f"the saved {path.name} does not reload and run: {err}") from err


def _parity(runs: list[tuple], ref_logits: np.ndarray, ref_gates: np.ndarray | None,
            sizes: list[int], atol: float, what: str, **info: Any) -> dict[str, Any]:
    """max |Δ| of logits and gates over ``runs``; :class:`ExportError` above ``atol``."""
    d_logits = max(float(np.abs(lo - ref_logits).max()) for lo, _ in runs)
    d_gates = (None if ref_gates is None
               else max(float(np.abs(ga - ref_gates).max()) for _, ga in runs))
    worst = max(d_logits, d_gates or 0.0)
    if not np.isfinite(worst) or worst > atol:
        gates = "" if d_gates is None else f", max |Δgates| = {d_gates:.3g}"
        raise ExportError(f"the {what} export does not reproduce the PyTorch model on the test "
                          f"nodes: max |Δlogits| = {d_logits:.3g}{gates} > {atol:g}; "
                          "nothing was written")
    return {"max_abs_logits": d_logits, "max_abs_gates": d_gates, "atol": atol,
            "batch_sizes": sizes, "nodes": int(ref_logits.shape[0]), **info}


def _accuracy(logits: np.ndarray, y: Tensor) -> float:
    return float(np.mean(np.asarray(logits).argmax(1) == y.cpu().numpy()))
