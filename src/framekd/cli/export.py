"""``framekd export``: a trained student of a finished run as ONNX (+ int8) and ``.pt2``.

Writes into ``--out`` (default ``RUN/export/<model>-seed<i>``) ``<model>.onnx``,
``<model>.int8.onnx`` (``--quantize``), ``<model>.pt2`` (``--format onnx,pt2``) and
``manifest.json``, the model card (see :mod:`framekd.export`). Every file is checked against
the PyTorch model on the run's test nodes before it is written; the command prints one line
per file with the parity (max |Δ| of logits and gates) or the int8 accuracy change.
"""

from __future__ import annotations

import argparse
from pathlib import Path

# framekd.export's DEFAULT_OPSET, EXPORTABLE and FORMATS, spelled out so that registering
# the command imports nothing heavy (framekd.cli's convention; a test checks they agree).
DEFAULT_OPSET = 18
EXPORTABLE = ("fmlp-s", "fmlp-o", "fmlp-c", "mlp", "glnn")
FORMATS = ("onnx", "pt2")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a trained student to ONNX (optionally int8) and torch.export (.pt2)",
        description="Export a student of a finished `framekd run` for deployment: ONNX "
        "(torch.export-based exporter, dynamic batch axis, knowledge rows as an input), "
        "optionally int8 (dynamic quantisation), and a torch.export program (.pt2), with a "
        "manifest.json model card. Outputs are checked against PyTorch on the run's test "
        "nodes in onnxruntime (CPU); a max |Δ| above 1e-5 is an error.",
    )
    parser.add_argument("--run", required=True, type=Path, metavar="DIR",
                        help="folder of a finished `framekd run` (its --out)")
    parser.add_argument("--seed", type=int, default=0, metavar="I",
                        help="seed whose weights and test split are used (default 0)")
    parser.add_argument("--model", default="fmlp-s", metavar="NAME",
                        help=f"student: {', '.join(EXPORTABLE)} (default fmlp-s; glnn is the "
                        "distilled MLP, mlp the one trained on labels alone)")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="output folder (default RUN/export/<model>-seed<I>)")
    parser.add_argument("--format", default="onnx", metavar="LIST",
                        help=f"comma-separated formats among {', '.join(FORMATS)} "
                        "(default onnx)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, metavar="N",
                        help=f"ONNX opset (default {DEFAULT_OPSET}, the exporter's own)")
    parser.add_argument("--quantize", action="store_true",
                        help="also write <model>.int8.onnx (dynamic int8 weights) and measure "
                        "the test accuracy change")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from framekd.export import export_student
    from framekd.models.registry import model_name

    out = args.out or args.run / "export" / f"{model_name(args.model)}-seed{args.seed}"
    result = export_student(args.run, seed=args.seed, model=args.model, out_dir=out,
                            formats=args.format, opset=args.opset, quantize=args.quantize)
    manifest = result["manifest"]
    for kind, path in result["files"].items():
        print(f"wrote {path} ({_describe(kind, manifest)})", flush=True)
    print(f"wrote {result['manifest_path']} (model card, sha256 of every file)", flush=True)
    return 0


def _describe(kind: str, manifest: dict) -> str:
    if kind == "onnx_int8":
        q = manifest["quantization"]
        return (f"int8 weights; test accuracy {100 * q['accuracy_fp32_onnx']:.2f}% fp32 -> "
                f"{100 * q['accuracy_int8_onnx']:.2f}% int8, change "
                f"{100 * q['accuracy_change']:+.2f} points")
    p = manifest["parity"][kind]
    gates = "" if p["max_abs_gates"] is None else f", |Δgates| {p['max_abs_gates']:.2g}"
    head = f"opset {manifest['onnx']['opset']}; " if kind == "onnx" else ""
    return (f"{head}parity max |Δlogits| {p['max_abs_logits']:.2g}{gates} on "
            f"{p['nodes']} test nodes, batch sizes {'/'.join(map(str, p['batch_sizes']))}")
