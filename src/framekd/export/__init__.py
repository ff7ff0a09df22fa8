"""Export a trained student for deployment: ONNX (+ int8) and ``torch.export`` (``.pt2``).

:func:`export_student` reads one model of one seed of a finished run (``framekd run``),
wraps it in a module with plain tensor inputs and outputs, and writes

* ``<model>.onnx``: exported with the ``torch.export``-based ONNX exporter (the default of
  ``torch.onnx.export`` since torch 2.9; it needs the ``onnxscript`` package), opset
  :data:`DEFAULT_OPSET` by default, checked with :func:`onnx.checker.check_model`;
* ``<model>.pt2``: the same :class:`torch.export.ExportedProgram`, saved with
  :func:`torch.export.save` (reload with ``torch.export.load(path).module()``). It was
  preferred to TorchScript, which PyTorch has deprecated;
* ``<model>.int8.onnx`` with ``quantize=True``: dynamic int8 quantisation of the ONNX
  model's weights (:func:`onnxruntime.quantization.quantize_dynamic`);
* ``manifest.json``, the model card that travels with the files: dataset, seed, model,
  input/output names and shapes, opset, the knowledge the model expects, the run's settings
  and metrics, framekd version and git commit, the sha256 of every file, and the parity and
  accuracy numbers measured here.

Interface of every exported model (``B`` is a dynamic batch axis on every input and output):

=============  ============================  ==============================================
name           shape                         meaning
=============  ============================  ==============================================
``x``          ``[B, d]`` float32            node features
``knowledge``  ``[C, K, B, width]`` float32  the nodes' rows of the graph knowledge
                                             (FMLP-S/O only; the MLP/GLNN takes ``x`` only)
``logits``     ``[B, classes]``              unnormalised class scores
``gates``      ``[B, C]`` (FMLP-S),          the students' gates (FMLP-S/O only)
               ``[K, B, C]`` (FMLP-O)
=============  ============================  ==============================================

The knowledge rows are those of :func:`framekd.experiment.compute_knowledge` on the run's
graph and settings (``manifest.json`` spells them out), sliced on dim 2.

Every export is checked before anything is written: on the run's test nodes (the seed's
split) the ONNX model in onnxruntime (``CPUExecutionProvider``) and the reloaded ``.pt2``
must reproduce the PyTorch logits and gates within ``atol`` (default 1e-5), at two batch
sizes; otherwise :class:`~framekd.errors.ExportError` is raised and no file is written.
"""

from framekd.export.constants import (
    DEFAULT_OPSET,
    EXPORTABLE,
    FORMATS,
    MANIFEST,
    MANIFEST_VERSION,
    PARITY_ATOL,
    PARITY_BATCH,
)
from framekd.export.pipeline import export_student

__all__ = [
    "DEFAULT_OPSET",
    "EXPORTABLE",
    "FORMATS",
    "MANIFEST",
    "MANIFEST_VERSION",
    "PARITY_ATOL",
    "PARITY_BATCH",
    "export_student",
]
