"""Dynamic int8 quantisation of an exported ONNX model's weights
(:func:`onnxruntime.quantization.quantize_dynamic`, after onnxruntime's pre-processing)."""

from __future__ import annotations

from pathlib import Path

from framekd.errors import ExportError
from framekd.export.formats import _quiet


def _quantize(src: Path, dst: Path, stage: Path) -> None:
    from onnxruntime.quantization import QuantType, quant_pre_process, quantize_dynamic

    prep = stage / f"{src.stem}.prep.onnx"
    try:
        with _quiet():
            # Shape inference and graph optimisation first, as onnxruntime recommends.
            quant_pre_process(str(src), str(prep))
            quantize_dynamic(str(prep), str(dst), weight_type=QuantType.QInt8)
    except Exception as err:  # noqa: BLE001
        raise ExportError(f"int8 quantisation failed: {err}") from err
    finally:
        prep.unlink(missing_ok=True)
