"""Constants of the deployment export: the default ONNX opset, the formats and models that can
be exported, the parity tolerance and batch size, and the manifest's name and version."""

#: ONNX opset of the exports. 18 is the oldest opset the ``torch.export``-based exporter of
#: torch >= 2.9 implements natively; an older one is reached by a version conversion that
#: may fail (it is checked: the file must carry the requested opset).
DEFAULT_OPSET = 18
#: Formats :func:`export_student` writes.
FORMATS = ("onnx", "pt2")
#: Largest allowed ``max |Δ|`` between the exported and the PyTorch outputs.
PARITY_ATOL = 1e-5
#: The second batch size of the parity check (the first is all test nodes at once).
PARITY_BATCH = 64
#: Models that can be exported (``glnn`` is the distilled MLP, ``mlp`` the one trained on
#: labels alone); teachers need the graph at inference and are not exported.
EXPORTABLE = ("fmlp-s", "fmlp-o", "fmlp-c", "mlp", "glnn")
MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
_INSTALL_HINT = "install the deployment extra: pip install 'framekd[deploy]'"
