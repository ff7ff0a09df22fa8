"""The finished run an export starts from: checks of the requested formats and of the ONNX
packages, the run's configuration, weights, metrics and test split, and its graph and
knowledge as ``framekd run`` prepared them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from framekd.errors import CheckpointError, ConfigError, ExportError
from framekd.export.constants import _INSTALL_HINT, EXPORTABLE, FORMATS


def _check_formats(formats: Sequence[str] | str, quantize: bool) -> tuple[str, ...]:
    if isinstance(formats, str):
        formats = [f for f in formats.split(",") if f.strip()]
    out = tuple(dict.fromkeys(str(f).strip().lower() for f in formats))
    bad = [f for f in out if f not in FORMATS]
    if bad or not out:
        raise ConfigError(f"unknown export format(s) {', '.join(bad) or '(none)'}; "
                          f"choose from {', '.join(FORMATS)}")
    if quantize and "onnx" not in out:
        raise ConfigError("int8 quantisation works on the ONNX model: add the onnx format")
    return out


def _require_onnx() -> None:
    for module in ("onnx", "onnxruntime", "onnxscript"):
        try:
            __import__(module)
        except ImportError as err:
            raise ExportError(f"ONNX export needs the {module!r} package; {_INSTALL_HINT}") \
                from err


def _load_run(run_dir: Path, seed: int, name: str) -> dict[str, Any]:
    """Configuration, weights, metrics and test split of ``name`` in seed ``seed``."""
    from framekd.experiment import load_trained
    from framekd.io import load_tensors, read_json
    from framekd.trained import check_trained, read_config

    seed_dir, weights = check_trained(run_dir, seed, name, error=ExportError,
                                      choices=EXPORTABLE, kind="trained students")
    raw, rc = read_config(run_dir, error=ExportError)
    try:
        student = load_trained(run_dir, seed, name)
        split = load_tensors(seed_dir / "split.safetensors")
        seed_metrics = read_json(seed_dir / "metrics.json")
    except CheckpointError as err:
        raise ExportError(str(err)) from err
    if "test" not in split or split["test"].numel() == 0:
        raise ExportError(f"{seed_dir}/split.safetensors has no test nodes to check the "
                          "export on")
    # Students multiply mostly-zero features as a sparse CSR matrix (SparseInput), chosen on
    # each call from x's row count and a count of its non-zeros. torch.export cannot trace
    # that data-dependent choice (GuardOnDataDependentSymNode) and would pin the batch below
    # SparseInput's row threshold; ONNX has no CSR inputs either. The dense product is the
    # same function (up to float rounding), so the exported graph is built from it.
    # load_trained builds students with the default density: turn the sparse path off here.
    student._sparse_input.max_density = 0.0
    student.eval()  # no dropout in the exported graph
    return {"dir": run_dir, "seed": int(seed), "seed_dir": seed_dir, "weights": weights,
            "raw": raw, "rc": rc, "model": student, "test": split["test"].long(),
            "seed_metrics": seed_metrics}


def _graph_and_knowledge(
    run: dict[str, Any], uses_knowledge: bool, knowledge: Tensor | None, data: Any,
    cache_dir: str | Path | None,
) -> tuple[Any, Tensor | None, str | None]:
    """The run's graph (as ``framekd run`` prepared it, on the CPU), its knowledge and the
    knowledge mode (``auto`` resolved)."""
    from framekd.experiment import compute_knowledge, knowledge_mode
    from framekd.io import load_metadata
    from framekd.trained import default_cache_dir, run_graph

    rc = run["rc"]
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    data = run_graph(rc, data, cache_dir=cache)
    if data.x is None or data.y is None:
        raise ExportError("the run's graph has no features or labels to check the export on")
    if not uses_knowledge:
        return data, None, None
    expected = tuple(int(v) for v in
                     load_metadata(run["weights"])["knowledge_shape"].split(","))
    if knowledge is None:
        knowledge, _ = compute_knowledge(data, rc, cache_dir=cache, device=torch.device("cpu"))
    knowledge = knowledge.detach().cpu()
    if tuple(knowledge.shape) != expected:
        raise ExportError(f"the knowledge has shape {list(knowledge.shape)} but the model was "
                          f"trained on {list(expected)}; pass the run's knowledge tensor")
    return data, knowledge, knowledge_mode(rc, data)

