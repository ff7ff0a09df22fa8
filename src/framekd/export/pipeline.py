"""The export itself: :func:`export_student` loads one model of one seed of a finished run,
checks every format it writes against PyTorch on the run's test nodes, and only then moves
the files and ``manifest.json`` into the output folder."""

from __future__ import annotations

import datetime as _dt
import os
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from framekd.errors import ConfigError, FramekdWarning
from framekd.export.constants import (
    DEFAULT_OPSET,
    EXPORTABLE,
    MANIFEST,
    MANIFEST_VERSION,
    PARITY_ATOL,
)
from framekd.export.formats import _save_pt2, _to_onnx, _torch_export
from framekd.export.manifest import _card, _version, _versions
from framekd.export.parity import _accuracy, _parity, _run_onnx, _run_pt2
from framekd.export.quantize import _quantize
from framekd.export.run import _check_formats, _graph_and_knowledge, _load_run, _require_onnx
from framekd.export.wrap import _FMLPDeployable, _io_spec, _MLPDeployable
from framekd.io import file_sha256


def export_student(
    run_dir: str | Path,
    *,
    seed: int = 0,
    model: str = "fmlp-s",
    out_dir: str | Path,
    formats: Sequence[str] = ("onnx",),
    opset: int = DEFAULT_OPSET,
    quantize: bool = False,
    knowledge: Tensor | None = None,
    data: Any = None,
    cache_dir: str | Path | None = None,
    atol: float = PARITY_ATOL,
) -> dict[str, Any]:
    """Export model ``model`` of seed ``seed`` of the finished run ``run_dir`` to ``out_dir``.

    Args:
        run_dir: a folder written by ``framekd run`` (``config.yaml``, ``seed_<i>/``).
        seed: the seed whose weights and split are used.
        model: ``fmlp-s``, ``fmlp-o``, ``glnn`` (the distilled MLP) or ``mlp``.
        out_dir: where the files go (created; files of the same names are replaced).
        formats: any of ``onnx`` and ``pt2``.
        opset: ONNX opset (default :data:`DEFAULT_OPSET`).
        quantize: also write ``<model>.int8.onnx`` (dynamic int8 weights) and measure its
            test accuracy against the float models (needs ``onnx`` in ``formats``).
        knowledge: the run's full knowledge tensor ``[C, K, N, width]``; by default it is
            recomputed from the run's graph and ``config.yaml``
            (:func:`framekd.experiment.compute_knowledge`, cached in ``cache_dir``).
        data: the run's graph when it is not loadable by its dataset name (a graph passed to
            :func:`~framekd.experiment.run_experiment` as ``data``).
        cache_dir: knowledge/rewiring cache (default ``<FRAMEKD_CACHE>/artifacts``, the one
            ``framekd run`` uses).
        atol: the largest ``max |Δ|`` of logits and gates accepted in the parity check.

    Returns:
        ``{"files": {kind: path}, "manifest": dict, "manifest_path": path}``; ``kind`` is
        ``onnx``, ``onnx_int8`` or ``pt2``.

    Raises:
        ExportError: the run, seed or model is missing, a deployment package is missing, or
            an exported model does not reproduce the PyTorch outputs within ``atol``.
        ConfigError: an unknown model name, format or opset.
    """
    from framekd.models.registry import TEACHERS, model_name, reads_knowledge

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    name = model_name(model)
    if name in TEACHERS:
        raise ConfigError(f"{model!r} is a teacher; only students can be exported "
                          f"({', '.join(EXPORTABLE)}): a teacher needs the graph at inference")
    if name not in EXPORTABLE:
        raise ConfigError(f"unknown model {model!r}; choose one of {', '.join(EXPORTABLE)}")
    formats = _check_formats(formats, quantize)
    if isinstance(opset, bool) or not isinstance(opset, int) or not 7 <= opset <= 30:
        raise ConfigError(f"opset must be an integer ONNX opset (e.g. {DEFAULT_OPSET}), "
                          f"got {opset!r}")
    if "onnx" in formats:
        _require_onnx()

    run = _load_run(run_dir, seed, name)
    student = run["model"]
    uses_knowledge = reads_knowledge(name)
    data, full_knowledge, kmode = _graph_and_knowledge(run, uses_knowledge, knowledge, data,
                                                       cache_dir)
    test = run["test"]
    x_test = data.x[test].to(torch.float32)
    y_test = data.y[test]
    k_test = full_knowledge[:, :, test].to(torch.float32) if uses_knowledge else None

    wrapper = (_FMLPDeployable(student) if uses_knowledge else _MLPDeployable(student)).eval()
    with torch.no_grad():
        ref = student(x_test, k_test)
    ref_logits = ref.logits.numpy()
    ref_gates = None if ref.gates is None else ref.gates.numpy()
    gates_axis = None if ref.gates is None else ref.gates.dim() - 2  # the batch axis of gates
    acc_torch = _accuracy(ref_logits, y_test)
    recorded = run["seed_metrics"].get("models", {}).get(name, {})
    # An inductive run records the production score (framekd.inductive), not this accuracy.
    setting = run["seed_metrics"].get("setting", "transductive")
    if (setting == "transductive" and "accuracy" in recorded
            and abs(acc_torch - recorded["accuracy"]) > 0.5 / len(test)):
        warnings.warn(
            f"{name} reaches test accuracy {acc_torch:.4f} here but {recorded['accuracy']:.4f} "
            "in the run: the graph or knowledge recomputed here differ from the run's (another "
            "device or framekd version?); the export reproduces the model on these inputs",
            FramekdWarning, stacklevel=2)
    io_spec = _io_spec(x_test.size(1), ref_logits.shape[1], full_knowledge, gates_axis)

    out_dir.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".framekd-export-", dir=out_dir))
    try:
        ep = _torch_export(wrapper, x_test, k_test)
        files: dict[str, Path] = {}
        parity: dict[str, Any] = {}
        accuracy: dict[str, Any] = {"test_nodes": int(test.numel()), "setting": setting,
                                    "recorded": recorded.get("accuracy"), "pytorch": acc_torch}
        quant: dict[str, Any] | None = None
        card = _card(run, name, student, kmode)
        feeds = {"x": x_test.numpy()}
        if uses_knowledge:
            feeds["knowledge"] = k_test.numpy()
        if "onnx" in formats:
            path = stage / f"{name}.onnx"
            _to_onnx(ep, path, opset, io_spec, card)
            runs, sizes = _run_onnx(path, feeds)
            parity["onnx"] = _parity(runs, ref_logits, ref_gates, sizes, atol, "ONNX",
                                     runtime=f"onnxruntime {_version('onnxruntime')}",
                                     provider="CPUExecutionProvider")
            logits = runs[0][0]
            accuracy["onnx"] = _accuracy(logits, y_test)
            files["onnx"] = path
            if quantize:
                qpath = stage / f"{name}.int8.onnx"
                _quantize(path, qpath, stage)
                qlogits = _run_onnx(qpath, feeds)[0][0][0]
                acc_q = _accuracy(qlogits, y_test)
                accuracy["onnx_int8"] = acc_q
                quant = {
                    "method": "onnxruntime.quantization.quantize_dynamic",
                    "weight_type": "QInt8", "activations": "uint8, quantised at run time",
                    "file": qpath.name,
                    "accuracy_fp32_onnx": accuracy["onnx"], "accuracy_int8_onnx": acc_q,
                    "accuracy_pytorch": acc_torch,
                    "accuracy_change": acc_q - accuracy["onnx"],
                    "prediction_agreement": float(np.mean(
                        qlogits.argmax(1) == logits.argmax(1))),
                    "max_abs_logits_vs_fp32": float(np.abs(qlogits - logits).max()),
                    "bytes_fp32": path.stat().st_size, "bytes_int8": qpath.stat().st_size,
                }
                files["onnx_int8"] = qpath
        if "pt2" in formats:
            path = stage / f"{name}.pt2"
            _save_pt2(ep, path, card)
            runs, sizes = _run_pt2(path, feeds)
            parity["pt2"] = _parity(runs, ref_logits, ref_gates, sizes, atol, "pt2",
                                    runtime="torch.export.load(path).module()")
            files["pt2"] = path

        final = {kind: out_dir / p.name for kind, p in files.items()}
        manifest = {
            "manifest_version": MANIFEST_VERSION,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            **card,
            "interface": io_spec,
            "onnx": ({"opset": opset, "exporter": "torch.onnx.export(dynamo=True)",
                      "file": final["onnx"].name} if "onnx" in formats else None),
            "pt2": ({"file": final["pt2"].name, "saved_with": "torch.export.save",
                     "load_with": "torch.export.load(path).module()"
                                  + ("(x, knowledge)" if uses_knowledge else "(x)")}
                    if "pt2" in formats else None),
            "parity": parity,
            "accuracy": accuracy,
            "quantization": quant,
            "metrics": recorded,
            "files": {p.name: {"kind": kind, "bytes": p.stat().st_size, "sha256": file_sha256(p)}
                      for kind, p in files.items()},
            "versions": _versions(),
        }
        for kind, p in files.items():
            os.replace(p, final[kind])
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    from framekd.io import write_json

    manifest_path = out_dir / MANIFEST
    write_json(manifest_path, manifest)
    return {"files": final, "manifest": manifest, "manifest_path": manifest_path}
