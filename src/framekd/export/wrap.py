"""The exportable wrappers of the students and the interface they expose.

:class:`_FMLPDeployable` and :class:`_MLPDeployable` wrap a student in a module with plain
tensor inputs and outputs; :func:`_io_spec` describes those inputs and outputs (names, dtypes,
shapes with the dynamic batch axis ``B``) for the manifest and the ONNX graph.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn


class _FMLPDeployable(nn.Module):
    """A knowledge student with tensor-only inputs and outputs: ``(x, knowledge) -> (logits,
    gates)`` for FMLP-S/O, ``(x, knowledge) -> logits`` for FMLP-C (it has no gates)."""

    def __init__(self, student: nn.Module) -> None:
        super().__init__()
        self.student = student

    def forward(self, x: Tensor, knowledge: Tensor) -> tuple[Tensor, Tensor] | Tensor:
        out = self.student(x, knowledge)
        return out.logits if out.gates is None else (out.logits, out.gates)


class _MLPDeployable(nn.Module):
    """The MLP (GLNN) as ``x -> logits``: it takes no knowledge, so its graph has no such input."""

    def __init__(self, student: nn.Module) -> None:
        super().__init__()
        self.student = student

    def forward(self, x: Tensor) -> Tensor:
        return self.student(x, None).logits

def _io_spec(d: int, classes: int, knowledge: Tensor | None,
             gates_axis: int | None) -> dict[str, Any]:
    inputs = [{"name": "x", "dtype": "float32", "shape": ["B", d],
               "meaning": "node features of the batch"}]
    outputs = [{"name": "logits", "dtype": "float32", "shape": ["B", classes],
                "meaning": "unnormalised class scores"}]
    if knowledge is not None:
        c, k, _, w = (int(v) for v in knowledge.shape)
        inputs.append({"name": "knowledge", "dtype": "float32", "shape": [c, k, "B", w],
                       "meaning": "the batch's rows (dim 2) of the graph knowledge "
                       "[C, K, N, width] (see 'knowledge')"})
    if knowledge is not None and gates_axis is not None:
        gshape: list[Any] = ["B", c] if gates_axis == 0 else [k, "B", c]
        outputs.append({"name": "gates", "dtype": "float32", "shape": gshape,
                        "meaning": "gate value per node and framelet channel"
                        + (" and layer" if gates_axis == 1 else "")})
    return {"inputs": inputs, "outputs": outputs, "dynamic_axes": "B (batch of nodes)"}

