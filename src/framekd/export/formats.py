"""Writing the formats: the ``torch.export`` program with a dynamic batch axis, the ONNX file
(opset check, batch axis named ``B``, provenance embedded as metadata, checked with
:func:`onnx.checker.check_model`) and the ``.pt2`` file (:func:`torch.export.save`)."""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from framekd.errors import ExportError
from framekd.export.constants import DEFAULT_OPSET


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporters' progress logging and deprecation chatter (they concern torch's
    own internals); errors still propagate."""
    names = ("torch.onnx", "torch.export", "torch._export", "torch.fx", "onnxscript",
             "onnx_ir")
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _torch_export(wrapper: nn.Module, x: Tensor, k: Tensor | None) -> Any:
    """The ``torch.export`` program of ``wrapper`` with a dynamic batch axis ``B``."""
    from torch.export import Dim

    batch = Dim("B", min=1)
    # Trace with a batch of 3 (not 0 or 1, which torch.export would specialise on).
    idx = torch.arange(3) % x.size(0)
    args: tuple[Tensor, ...] = (x[idx],)
    shapes: dict[str, Any] = {"x": {0: batch}}
    if k is not None:
        args += (k[:, :, idx],)
        shapes["knowledge"] = {2: batch}
    try:
        with _quiet():
            return torch.export.export(wrapper, args, dynamic_shapes=shapes, strict=False)
    except Exception as err:  # noqa: BLE001 - any tracing failure is an export failure
        raise ExportError(f"torch.export could not trace {type(wrapper.student).__name__} "
                          f"with a dynamic batch: {err}") from err


def _to_onnx(ep: Any, path: Path, opset: int, io_spec: dict[str, Any],
             card: dict[str, Any]) -> None:
    import onnx

    inputs = [i["name"] for i in io_spec["inputs"]]
    outputs = [o["name"] for o in io_spec["outputs"]]
    try:
        with _quiet():
            program = torch.onnx.export(ep, (), None, dynamo=True, opset_version=opset,
                                        input_names=inputs, output_names=outputs,
                                        external_data=False, verbose=False)
    except Exception as err:  # noqa: BLE001
        raise ExportError(f"torch.onnx.export failed at opset {opset}: {err}") from err
    proto = program.model_proto
    # The exporter names the batch symbol after torch.export's (s0, s4, ...): call it B.
    _rename_batch(proto, io_spec)
    proto.doc_string = (f"framekd {card['model']['name']} ({card['model']['class']}) of "
                        f"{card['dataset']}, seed {card['seed']}; see manifest.json")
    for key, value in _embedded(card).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    got = {o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")}
    if got != {opset}:
        raise ExportError(f"the ONNX model has opset {sorted(got)}, not the requested {opset} "
                          f"(version conversion failed); use --opset {DEFAULT_OPSET}")
    onnx.save_model(proto, str(path))
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except onnx.checker.ValidationError as err:
        raise ExportError(f"the exported ONNX model is invalid: {err}") from err


def _rename_batch(proto: Any, io_spec: dict[str, Any]) -> None:
    symbols = set()
    for spec, values in ((io_spec["inputs"], proto.graph.input),
                         (io_spec["outputs"], proto.graph.output)):
        by_name = {v.name: v for v in values}
        for item in spec:
            value = by_name.get(item["name"])
            if value is None:
                raise ExportError(f"the exported ONNX model lacks the {item['name']!r} tensor")
            dims = value.type.tensor_type.shape.dim
            axis = item["shape"].index("B")
            if dims[axis].dim_param:
                symbols.add(dims[axis].dim_param)
            elif dims[axis].dim_value:
                raise ExportError(f"the exported ONNX model has a fixed batch size "
                                  f"{dims[axis].dim_value} on {item['name']!r}")
            dims[axis].dim_param = "B"
    for value in proto.graph.value_info:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param in symbols:
                dim.dim_param = "B"


def _embedded(card: dict[str, Any]) -> dict[str, str]:
    code = card["framekd"]
    return {
        "framekd.model": card["model"]["name"], "framekd.class": card["model"]["class"],
        "framekd.dataset": card["dataset"], "framekd.seed": str(card["seed"]),
        "framekd.config_hash": card["config_hash"],
        "framekd.weights_sha256": card["source"]["weights_sha256"],
        "framekd.version": code["version"], "framekd.git_commit": str(code["git_commit"]),
    }


def _save_pt2(ep: Any, path: Path, card: dict[str, Any]) -> None:
    import json

    try:
        with _quiet():
            torch.export.save(ep, str(path),
                              extra_files={"framekd.json": json.dumps(_embedded(card))})
    except Exception as err:  # noqa: BLE001
        raise ExportError(f"torch.export.save failed: {err}") from err

