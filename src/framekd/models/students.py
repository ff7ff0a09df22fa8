r"""Student MLPs: the GLNN baseline, the framelet MLPs FMLP-S and FMLP-O (docs/SPEC.md §5) and
framekd's own FMLP-C (an MLP on the features and all knowledge side by side).

Every student is called as ``student(x, knowledge) -> StudentOutput(logits, gates)`` on a
batch of ``B`` nodes:

* ``x``: node features ``[B, d]``;
* ``knowledge``: the batch's rows of :func:`framekd.knowledge.graph_knowledge`, a
  ``[C, K, B, width]`` tensor (``C`` framelet channels, ``K`` powers; ``width`` is ``N`` for
  ``rows``, ``m`` for ``sketch`` and ``d`` for ``features`` knowledge). :class:`MLP` ignores it;
* ``logits``: unnormalised class scores ``[B, num_classes]``;
* ``gates``: the gate values :math:`\alpha_c \in [0, 1]`, ``[B, C]`` for FMLP-S,
  ``[K, B, C]`` for FMLP-O (one slice per layer, the last is the output layer), ``None`` for
  the MLP and FMLP-C.

Unlike the reference release, every channel (the low pass and **all** high passes) has its own
encoder and its own classifier, and gates are returned for analysis instead of printed.

Inference (``model.eval()``, no forward hook on a submodule) takes a batched path with the
same maths: the per-channel
products become one batched product over the channels (:func:`torch.baddbmm`), and FMLP-S,
linear up to its gates, multiplies its input by the composed maps (classifier and gate ∘
encoder) instead of encoding to the hidden width first. It agrees with the training-mode
code (a Python loop over channels, kept as it is so that training draws the same dropout
masks) up to float32 rounding (``tests/test_bench_newnode.py``: 1e-5). The composed and
stacked weights are kept between calls under ``torch.no_grad()`` and rebuilt when a
parameter changes (its version counter moves).

For inference in bfloat16 (or float16), cast the model and its inputs as in PyTorch:
``model.to(torch.bfloat16)(x.to(torch.bfloat16), knowledge.to(torch.bfloat16))``. Sparse
features are still multiplied in float32 (CPU has no half-precision sparse product;
:func:`framekd.models.sparse_input.linear`) and the rest runs in the low precision, which
pays where the CPU multiplies bfloat16 natively (BENCHMARKS.md §11.6). Knowledge or dense
features in another dtype than the weights raise a :class:`~framekd.errors.ConfigError`.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from framekd.errors import ConfigError
from framekd.models.sparse_input import SPARSE_INPUT_DENSITY, SparseInput, dtype_name, linear
from framekd.models.stack import layer_widths


class StudentOutput(NamedTuple):
    """What a student returns: ``logits`` ``[B, classes]`` and ``gates`` (or ``None``)."""

    logits: Tensor
    gates: Tensor | None


class _Student(nn.Module):
    """What every student shares: the input features' sparse path (:class:`SparseInput`)."""

    def __init__(self, sparse_input: float) -> None:
        super().__init__()
        self._sparse_input = SparseInput(sparse_input)

    def reset_parameters(self) -> None:
        """Re-draw every linear layer's weights (PyTorch's default initialisation)."""
        for mod in self.modules():
            if isinstance(mod, nn.Linear):
                mod.reset_parameters()

    def input_rows(self, x: Tensor, index: Tensor) -> Tensor:
        """The features of nodes ``index`` as ``forward`` takes them (a CSR batch cut from a
        sparse copy of ``x`` made once, when ``x`` is mostly zeros); the trainers in
        :mod:`framekd.distill` batch with it."""
        return self._sparse_input.rows(x, index)

    def _encode_features(self, x: Tensor) -> Tensor:
        """The feature encoder :math:`E_x x + e_x`, ``x`` through the sparse path."""
        return _apply(self.feature_encoder, self._sparse_input(x))

    def _batched(self) -> bool:
        """Whether this call takes the eval path: in eval mode, unless a forward hook watches
        a submodule (the eval path skips the per-channel module calls that hooks observe,
        e.g. :func:`framekd.analysis.student_energies`)."""
        if self.training:
            return False
        return not any(m._forward_hooks or m._forward_pre_hooks
                       for m in self.modules() if m is not self)

    def _inference_weights(self) -> tuple[Tensor, ...]:
        """The stacked/composed weights of the eval path (:meth:`_build_inference_weights`).

        Kept between calls when no gradient is being recorded: the key is every parameter's
        identity, storage, version counter (bumped by optimiser steps, ``load_state_dict``
        and in-place initialisation), dtype and device. With gradients on, and while
        ``torch.export`` traces the model, they are rebuilt on every call, so that they stay
        differentiable and the exported graph computes them from the parameters.
        """
        if torch.is_grad_enabled() or torch.compiler.is_compiling():
            return self._build_inference_weights()
        key = tuple((id(p), p.data_ptr(), p._version, p.dtype, p.device)
                    for p in self.parameters())
        cached = self.__dict__.get("_inference_cache")
        if cached is None or cached[0] != key:
            cached = (key, self._build_inference_weights())
            self.__dict__["_inference_cache"] = cached
        return cached[1]

    def _build_inference_weights(self) -> tuple[Tensor, ...]:
        raise NotImplementedError


class MLP(_Student):
    r"""Plain MLP on node features (the GLNN student / no-graph baseline).

    ``num_layers`` linear layers with ReLU and dropout in between:
    :math:`\mathrm{Lin} \to \mathrm{ReLU} \to \mathrm{Dropout} \to \dots \to \mathrm{Lin}`.
    Features with at most ``sparse_input`` non-zeros enter the first layer as a sparse matrix
    (:class:`~framekd.models.SparseInput`).
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        out_channels: int,
        *,
        num_layers: int = 2,
        dropout: float = 0.0,
        sparse_input: float = SPARSE_INPUT_DENSITY,
    ) -> None:
        super().__init__(sparse_input)
        widths = layer_widths(in_channels, hidden_channels, out_channels, num_layers, "MLP")
        self.lins = nn.ModuleList(nn.Linear(a, b) for a, b in widths)
        self.dropout = float(dropout)

    def forward(self, x: Tensor, knowledge: Tensor | None = None) -> StudentOutput:
        # In place when no hook can hold a layer's output (a fresh buffer's first touch costs
        # as much as the ReLU on a whole graph, BENCHMARKS.md §11.8; FMLP-O does the same).
        relu = torch.relu_ if self._batched() else F.relu
        h = self._sparse_input(x)
        for i, lin in enumerate(self.lins):
            if i > 0:
                h = F.dropout(relu(h), p=self.dropout, training=self.training)
            h = _apply(lin, h)
        return StudentOutput(h, None)


def _apply(layer: nn.Linear, x: Tensor) -> Tensor:
    """``layer(x)``, a module call that forward hooks observe, unless ``x`` is the float32
    sparse copy of the features and the layer is in low precision (:func:`linear`)."""
    if x.dtype == layer.weight.dtype:
        return layer(x)
    return linear(x, layer.weight, layer.bias)


def _check_knowledge(
    knowledge: Tensor | None, x: Tensor, channels: int, powers: int | None, width: int, who: str,
    dtype: torch.dtype,
) -> None:
    if knowledge is None:
        raise ConfigError(f"{who} needs graph knowledge [C, K, B, width]; got None")
    if knowledge.dim() != 4:
        raise ConfigError(
            f"{who} expects knowledge of shape [C, K, B, width], got {list(knowledge.shape)}"
        )
    c, k, b, w = knowledge.shape
    if knowledge.dtype != dtype:
        name, kname = dtype_name(dtype), dtype_name(knowledge.dtype)
        raise ConfigError(
            f"{who}'s weights are {name} but the knowledge is {kname}; cast it "
            f"(knowledge.to(torch.{name})) or the model (model.to(torch.{kname}))"
        )
    expected_k = k if powers is None else powers
    if (c, k, b, w) != (channels, expected_k, x.size(0), width):
        raise ConfigError(
            f"{who} was built for knowledge [C={channels}, K={expected_k}, B={x.size(0)}, "
            f"width={width}] but got {list(knowledge.shape)}; build it from the same "
            "graph_knowledge configuration and slice the batch's rows on dim 2"
        )


def _gate(gate: nn.Linear, u: Tensor, h: Tensor) -> Tensor:
    r""":math:`\alpha = \sigma(a [u \,\|\, h]) = \sigma(a_u u + a_h h)`, one scalar per
    node: ``[B, 1]``. The split form saves copying both inputs into a ``[B, 2 hidden]``
    concatenation on every call."""
    d = u.size(-1)
    a_u, a_h = gate.weight[:, :d], gate.weight[:, d:]
    return torch.sigmoid(F.linear(u, a_u, gate.bias) + F.linear(h, a_h))


def _linear_relu(x: Tensor, layer: nn.Linear, out: Tensor | None = None) -> Tensor:
    r""":math:`\mathrm{ReLU}(W x + b)`, written into ``out`` when given (a buffer of the
    caller's that it no longer reads), else into a new tensor."""
    if out is None:
        return F.linear(x, layer.weight, layer.bias).relu_()
    return torch.addmm(layer.bias, x, layer.weight.T, out=out).relu_()


def _heads(classifiers: nn.ModuleList, gates: nn.ModuleList, hidden: int) -> tuple[Tensor, Tensor]:
    """Each channel's classifier and the knowledge half of its gate, stacked as one head:
    weights ``[C, classes + 1, hidden]``, biases ``[C, classes + 1]`` (the gate's bias last)."""
    pairs = list(zip(classifiers, gates, strict=True))
    weight = torch.stack([torch.cat([cls.weight, g.weight[:, :hidden]]) for cls, g in pairs])
    bias = torch.stack([torch.cat([cls.bias, g.bias]) for cls, g in pairs])
    return weight, bias


def _feature_head(
    classifier: nn.Linear, gates: nn.ModuleList, hidden: int
) -> tuple[Tensor, Tensor]:
    """The feature/hidden branch's classifier and every gate's other half, stacked:
    weights ``[classes + C, hidden]`` and biases ``[classes + C]`` (zero for the gates, whose
    bias is in :func:`_heads`)."""
    weight = torch.cat([classifier.weight, torch.cat([g.weight[:, hidden:] for g in gates])])
    bias = torch.cat([classifier.bias, classifier.bias.new_zeros(len(gates))])
    return weight, bias


#: Terms per float32 partial sum in :func:`_blocked_matmul`.
ACCUMULATE_BLOCK = 256


def _blocked_matmul(a: Tensor, b: Tensor, bias: Tensor) -> Tensor:
    """``bias + a @ b`` (2-D) with the reduction over ``a``'s last axis split
    into blocks of :data:`ACCUMULATE_BLOCK` terms whose partial products are then added.

    A product with few output columns (FMLP-S's composed maps have ``classes + 1``) runs a
    narrow kernel that sums its terms in one float32 accumulator: over the 1,433 features
    knowledge columns of Cora its rounding error (~1e-5 on logits of ~30) was five times that
    of the per-channel encoders it replaces, more than the ONNX export's 1e-5 parity allows.
    Blocks bring it back to the encoders' level. A sparse ``a`` (CSR) sums only its
    non-zeros and is multiplied at once.
    """
    width = a.size(-1)
    if a.layout != torch.strided:
        return linear(a, b.T, bias)
    if width <= ACCUMULATE_BLOCK:
        return torch.addmm(bias, a, b)
    step = ACCUMULATE_BLOCK
    out = bias + a[..., :step] @ b[..., :step, :]
    for start in range(step, width, step):
        out = out + a[..., start:start + step] @ b[..., start:start + step, :]
    return out


class FMLPS(_Student):
    r"""Simplified framelet MLP (FMLP-S, docs/SPEC.md §5); uses the top knowledge power only.

    For each channel :math:`c` with knowledge :math:`z_c = (K_c^K)_{i,:}`:

    .. math::
        u_c = E_c z_c, \quad u_x = E_x x, \quad
        \alpha_c = \sigma(a_c [u_c \,\|\, u_x]), \quad
        \hat y = \sum_c \big[(1 - \alpha_c)\,\mathrm{Cls}_c(u_c)
                 + \alpha_c\,\mathrm{Cls}_x(u_x)\big].

    :math:`E_c`, :math:`a_c` and :math:`\mathrm{Cls}_c` are per channel; :math:`E_x` and
    :math:`\mathrm{Cls}_x` are shared. The encoders are linear, as specified; dropout
    (``dropout``) is applied to the encodings during training. A large :math:`\alpha_c` means
    the node leans on its features rather than on channel :math:`c`'s knowledge.
    Features with at most ``sparse_input`` non-zeros enter the first layer as a sparse matrix
    (:class:`~framekd.models.SparseInput`).
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        out_channels: int,
        *,
        knowledge_channels: int,
        knowledge_width: int,
        dropout: float = 0.0,
        sparse_input: float = SPARSE_INPUT_DENSITY,
    ) -> None:
        super().__init__(sparse_input)
        self.knowledge_channels = int(knowledge_channels)
        self.knowledge_width = int(knowledge_width)
        self.dropout = float(dropout)
        c = self.knowledge_channels
        self.encoders = nn.ModuleList(nn.Linear(knowledge_width, hidden_channels) for _ in range(c))
        self.gates = nn.ModuleList(nn.Linear(2 * hidden_channels, 1) for _ in range(c))
        self.classifiers = nn.ModuleList(nn.Linear(hidden_channels, out_channels) for _ in range(c))
        self.feature_encoder = nn.Linear(in_channels, hidden_channels)
        self.feature_classifier = nn.Linear(hidden_channels, out_channels)

    def _build_inference_weights(self) -> tuple[Tensor, ...]:
        r"""The composed maps of the eval path. Without dropout, :math:`u_c = E_c z_c + e_c`
        and :math:`u_x = E_x x + e_x` enter only linear maps (classifiers, gates), so

        .. math::
            [\mathrm{Cls}_c(u_c) \,\|\, a_{c,u} u_c + b_c] = z_c P_c + p_c, \quad
            [\mathrm{Cls}_x(u_x) \,\|\, (a_{c,x} u_x)_c] = x Q^\top + q,

        with :math:`P_c = E_c^\top [\mathrm{Cls}_c; a_{c,u}]^\top` (``[C, width, classes+1]``)
        and :math:`Q = [\mathrm{Cls}_x; a_{1,x}; \dots; a_{C,x}] E_x` (stored transposed,
        ``[d, classes+C]``):
        ``classes + 1`` and ``classes + C`` outputs per node instead of the hidden width.
        Dense features wider than :data:`ACCUMULATE_BLOCK` are encoded first instead (``Q``
        would need many blocks there); the last two tensors are for that.
        """
        hid = self.feature_encoder.out_features
        enc_w = torch.stack([e.weight for e in self.encoders])  # [C, H, W]
        enc_b = torch.stack([e.bias for e in self.encoders])[:, :, None]  # [C, H, 1]
        head_w, head_b = _heads(self.classifiers, self.gates, hid)  # [C, cls+1, H], [C, cls+1]
        p_mat = torch.bmm(head_w, enc_w).transpose(1, 2)
        p_bias = (torch.bmm(head_w, enc_b)[:, :, 0] + head_b)[:, None]
        feat_w, feat_b = _feature_head(self.feature_classifier, self.gates, hid)
        q_mat = (feat_w @ self.feature_encoder.weight).T  # [d, cls+C]
        q_bias = feat_w @ self.feature_encoder.bias + feat_b
        return p_mat, p_bias, q_mat, q_bias, feat_w, feat_b

    def _infer(self, x: Tensor, z: Tensor) -> StudentOutput:
        """The eval path (see :meth:`_build_inference_weights`); ``z`` is ``[C, B, width]``."""
        p_mat, p_bias, q_mat, q_bias, feat_w, feat_b = self._inference_weights()
        classes = self.feature_classifier.out_features
        # One product per channel on its own rows (contiguous; a batched product over the
        # strided slice z = knowledge[:, -1] copied it whole first, BENCHMARKS.md §11.6).
        zy = torch.stack([_blocked_matmul(z[i], p_mat[i], p_bias[i])
                          for i in range(z.size(0))])  # [C, B, classes + 1]
        x = self._sparse_input(x)
        if x.layout != torch.strided or x.size(1) <= ACCUMULATE_BLOCK:
            xy = _blocked_matmul(x, q_mat, q_bias)  # [B, classes + C]
        else:  # wide dense features: Q would take many blocks; encode first (as the loop)
            xy = F.linear(self.feature_encoder(x), feat_w, feat_b)
        y_c = zy[:, :, :classes]
        alpha = torch.sigmoid(zy[:, :, classes:] + xy[:, classes:].T[:, :, None])  # [C, B, 1]
        # Σ_c (1 - α_c) y_c + α_c y_x
        logits = (y_c - alpha * y_c).sum(0) + alpha.sum(0) * xy[:, :classes]
        return StudentOutput(logits, alpha[:, :, 0].T)

    def forward(self, x: Tensor, knowledge: Tensor | None = None) -> StudentOutput:
        _check_knowledge(knowledge, x, self.knowledge_channels, None, self.knowledge_width, "FMLPS",
                         self.feature_encoder.weight.dtype)
        z = knowledge[:, -1]
        if self._batched():
            return self._infer(x, z)
        u_x = self._encode_features(x)
        u_x = F.dropout(u_x, p=self.dropout, training=self.training)
        y_x = self.feature_classifier(u_x)
        logits = 0.0
        gates = []
        for c in range(self.knowledge_channels):
            u_c = F.dropout(self.encoders[c](z[c]), p=self.dropout, training=self.training)
            alpha = _gate(self.gates[c], u_c, u_x)
            logits = logits + (1 - alpha) * self.classifiers[c](u_c) + alpha * y_x
            gates.append(alpha)
        return StudentOutput(logits, torch.cat(gates, dim=-1))


class FMLPO(_Student):
    r"""Layer-wise framelet MLP (FMLP-O, docs/SPEC.md §5); mirrors a ``K``-layer teacher.

    With :math:`z_c^{(k)} = (K_c^k)_{i,:}` and per-channel encoders
    :math:`u_c^{(k)} = \mathrm{ReLU}(E_c z_c^{(k)})`:

    .. math::
        h &\leftarrow \mathrm{ReLU}(E_x x) \\
        \text{for } k = 1..K-1:\quad
        \alpha_c &= \sigma(a_c^{(k)} [u_c^{(k)} \,\|\, h]), \quad
        h \leftarrow \mathrm{mean}_c\big[\alpha_c u_c^{(k)} + (1 - \alpha_c) h\big], \quad
        h \leftarrow \mathrm{ReLU}(E_h^{(k)} h) \\
        \text{output } (k = K):\quad
        \alpha_c &= \sigma(a_c^{(K)} [u_c^{(K)} \,\|\, h]), \quad
        \hat y = \sum_c \big[(1 - \alpha_c)\,\mathrm{Cls}_c(u_c^{(K)})
                 + \alpha_c\,\mathrm{Cls}_x(h)\big].

    As in the reference, in hidden layers :math:`\alpha_c` weights the knowledge while at the
    output it weights the feature/hidden branch. Each channel has its own encoder (shared over
    powers, as all powers of one channel live in the same space) and classifier; each layer
    has its own gates and hidden map. The depth is ``num_powers`` (no cap). Gates are returned
    as ``[K, B, C]``.
    Features with at most ``sparse_input`` non-zeros enter the first layer as a sparse matrix
    (:class:`~framekd.models.SparseInput`).
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        out_channels: int,
        *,
        knowledge_channels: int,
        knowledge_width: int,
        num_powers: int,
        dropout: float = 0.0,
        sparse_input: float = SPARSE_INPUT_DENSITY,
    ) -> None:
        super().__init__(sparse_input)
        if num_powers < 1:
            raise ConfigError(f"FMLPO needs num_powers >= 1, got {num_powers}")
        self.knowledge_channels = c = int(knowledge_channels)
        self.knowledge_width = int(knowledge_width)
        self.num_powers = int(num_powers)
        self.dropout = float(dropout)
        self.encoders = nn.ModuleList(nn.Linear(knowledge_width, hidden_channels) for _ in range(c))
        self.classifiers = nn.ModuleList(nn.Linear(hidden_channels, out_channels) for _ in range(c))
        self.gates = nn.ModuleList(
            nn.ModuleList(nn.Linear(2 * hidden_channels, 1) for _ in range(c))
            for _ in range(self.num_powers)
        )
        self.hidden = nn.ModuleList(
            nn.Linear(hidden_channels, hidden_channels) for _ in range(self.num_powers - 1)
        )
        self.feature_encoder = nn.Linear(in_channels, hidden_channels)
        self.feature_classifier = nn.Linear(hidden_channels, out_channels)

    def _encode(self, c: int, z: Tensor) -> Tensor:
        return F.dropout(F.relu(self.encoders[c](z)), p=self.dropout, training=self.training)

    def _build_inference_weights(self) -> tuple[Tensor, ...]:
        """The eval path's weights, stacked over channels (the encoders are used as they
        are): per hidden layer the gates' knowledge halves ``[C, H]`` and their hidden halves
        ``[C, H]`` with biases ``[C]``; the output heads ``[C, classes+1, H]`` (classifier
        and gate side by side) with biases ``[C, classes+1]``, and the hidden branch's
        ``[classes+C, H]`` and ``[classes+C]``."""
        hid = self.feature_encoder.out_features
        gates = []
        for layer in self.gates[:-1]:
            weight = torch.cat([g.weight for g in layer])  # [C, 2H]
            gates += [weight[:, :hid], weight[:, hid:], torch.cat([g.bias for g in layer])]
        head_w, head_b = _heads(self.classifiers, self.gates[-1], hid)
        feat_w, feat_b = _feature_head(self.feature_classifier, self.gates[-1], hid)
        return (*gates, head_w, head_b, feat_w, feat_b)

    def _infer(self, x: Tensor, knowledge: Tensor) -> StudentOutput:
        r"""The eval path, one channel at a time on its own (contiguous) knowledge rows,
        accumulating instead of stacking ``[C, B, H]`` tensors: the hidden-layer mix as
        :math:`\mathrm{mean}_c[\alpha_c u_c + (1-\alpha_c) h]
        = (\sum_c \alpha_c u_c + (C - \sum_c \alpha_c) h) / C`, every gate's hidden half
        in one product per layer, and each channel's classifier and gate in one head.
        Batching the channels (:func:`torch.baddbmm` over ``knowledge[:, k]``, strided over
        the powers) copied the slice first and stacked the encodings: in bfloat16 that took
        longer than the products (BENCHMARKS.md §11.6).

        When nothing is recorded, the call's three ``[B, H]`` tensors (``h``, the current
        encoding ``u``, the mix) are written over again for every channel and layer instead
        of allocated anew: on a whole graph, first touching a fresh buffer's pages cost about
        as much as the product that fills it (BENCHMARKS.md §11.8)."""
        w = self._inference_weights()
        head_w, head_b, feat_w, feat_b = w[-4:]
        c = self.knowledge_channels
        reuse = not torch.is_grad_enabled() and not torch.compiler.is_compiling()
        h = self._encode_features(x).relu_()
        u = mixed = None
        all_gates = []
        for k in range(self.num_powers - 1):
            gate_u, gate_h, gate_b = w[3 * k:3 * k + 3]
            hg = F.linear(h, gate_h, gate_b)  # [B, C]
            alphas = []
            for i in range(c):
                u = _linear_relu(knowledge[i, k], self.encoders[i], u if reuse else None)
                alpha = torch.sigmoid(F.linear(u, gate_u[i:i + 1]) + hg[:, i:i + 1])
                if not reuse:  # u is saved for the gate's backward and must stay as it is
                    mixed = u * alpha if i == 0 else mixed + u * alpha
                elif i == 0:
                    mixed = torch.mul(u, alpha, out=mixed)
                else:
                    mixed.addcmul_(u, alpha)
                alphas.append(alpha)
            alpha = torch.cat(alphas, 1)  # [B, C]
            mixed = mixed.addcmul_(h, c - alpha.sum(1, keepdim=True)).div_(c)
            h = _linear_relu(mixed, self.hidden[k], h if reuse else None)
            all_gates.append(alpha)
        classes = self.feature_classifier.out_features
        hy = F.linear(h, feat_w, feat_b)  # [B, classes + C]
        logits, alphas = None, []
        for i in range(c):
            u = _linear_relu(knowledge[i, -1], self.encoders[i], u if reuse else None)
            zy = F.linear(u, head_w[i], head_b[i])  # [B, classes + 1]
            y_c = zy[:, :classes]
            alpha = torch.sigmoid(zy[:, classes:] + hy[:, classes + i:classes + i + 1])
            term = y_c - alpha * y_c
            logits = term if logits is None else logits + term
            alphas.append(alpha)
        alpha = torch.cat(alphas, 1)
        logits = logits + alpha.sum(1, keepdim=True) * hy[:, :classes]
        all_gates.append(alpha)
        return StudentOutput(logits, torch.stack(all_gates))

    def forward(self, x: Tensor, knowledge: Tensor | None = None) -> StudentOutput:
        _check_knowledge(
            knowledge, x, self.knowledge_channels, self.num_powers, self.knowledge_width, "FMLPO",
            self.feature_encoder.weight.dtype,
        )
        if self._batched():
            return self._infer(x, knowledge)
        h = F.relu(self._encode_features(x))
        h = F.dropout(h, p=self.dropout, training=self.training)
        all_gates = []
        for k in range(self.num_powers - 1):
            mixed, gates = 0.0, []
            for c in range(self.knowledge_channels):
                u_c = self._encode(c, knowledge[c, k])
                alpha = _gate(self.gates[k][c], u_c, h)
                mixed = mixed + alpha * u_c + (1 - alpha) * h
                gates.append(alpha)
            h = mixed / self.knowledge_channels
            h = F.dropout(F.relu(self.hidden[k](h)), p=self.dropout, training=self.training)
            all_gates.append(torch.cat(gates, dim=-1))
        y_h = self.feature_classifier(h)
        logits, gates = 0.0, []
        for c in range(self.knowledge_channels):
            u_c = self._encode(c, knowledge[c, -1])
            alpha = _gate(self.gates[-1][c], u_c, h)
            logits = logits + (1 - alpha) * self.classifiers[c](u_c) + alpha * y_h
            gates.append(alpha)
        all_gates.append(torch.cat(gates, dim=-1))
        return StudentOutput(logits, torch.stack(all_gates))


class FMLPC(_Student):
    r"""Concatenation framelet MLP (FMLP-C): framekd's variant, not one of the paper's students.

    A 2-layer MLP on the node's features and every channel's and power's knowledge side by
    side, with *feature dropout* :math:`p` (``feature_dropout``): during training each node's
    whole feature row is dropped with probability :math:`p` (and kept rows scaled by
    :math:`1/(1-p)`, as :func:`torch.nn.functional.dropout` does), so that the MLP must also
    answer from the knowledge alone:

    .. math::
        m_i \sim \tfrac{1}{1-p}\,\mathrm{Bernoulli}(1-p) \text{ (training)}, \quad
        m_i = 1 \text{ (evaluation)}, \\
        h = \mathrm{ReLU}\big(W_x (m_i x_i) + \textstyle\sum_{c,k} W_{c,k} z_c^{(k)} + b\big),
        \quad \hat y = \mathrm{Cls}(\mathrm{Dropout}(h)).

    :math:`[W_x \,\|\, W_{1,1} \,\|\, \dots \,\|\, W_{C,K}]` is one linear layer on
    :math:`[x \,\|\, z_1^{(1)} \,\|\, \dots \,\|\, z_C^{(K)}]` (its weight is split
    instead of the input concatenated, so sparse features stay sparse). Why: on unseen nodes
    of heterophilic graphs (Chameleon) the gated FMLPs lean on their feature branch, which
    memorised the teacher on the training nodes, and fall far below the teacher, while an MLP
    on the knowledge alone keeps the teacher's accuracy; on WebKB the features are needed
    (BENCHMARKS.md §9.3). Feature dropout lets one model use both; measured, it closes most
    of Chameleon's gap and loses on Cornell and Wisconsin (§9.4), so it is not a default
    student. It has no gates.
    Features with at most ``sparse_input`` non-zeros enter the first layer as a sparse matrix
    (:class:`~framekd.models.SparseInput`).
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        out_channels: int,
        *,
        knowledge_channels: int,
        knowledge_width: int,
        num_powers: int,
        dropout: float = 0.0,
        feature_dropout: float = 0.5,
        sparse_input: float = SPARSE_INPUT_DENSITY,
    ) -> None:
        super().__init__(sparse_input)
        if not 0.0 <= float(feature_dropout) < 1.0:
            raise ConfigError(f"FMLPC needs feature_dropout in [0, 1), got {feature_dropout!r}")
        self.in_channels = int(in_channels)
        self.knowledge_channels = int(knowledge_channels)
        self.knowledge_width = int(knowledge_width)
        self.num_powers = int(num_powers)
        self.dropout = float(dropout)
        self.feature_dropout = float(feature_dropout)
        width = self.knowledge_channels * self.num_powers * self.knowledge_width
        self.lin1 = nn.Linear(self.in_channels + width, hidden_channels)
        self.lin2 = nn.Linear(hidden_channels, out_channels)

    def forward(self, x: Tensor, knowledge: Tensor | None = None) -> StudentOutput:
        _check_knowledge(knowledge, x, self.knowledge_channels, self.num_powers,
                         self.knowledge_width, "FMLPC", self.lin1.weight.dtype)
        d = self.in_channels
        w_x, w_z = self.lin1.weight[:, :d], self.lin1.weight[:, d:]
        h_x = linear(self._sparse_input(x), w_x)
        if self.training and self.feature_dropout > 0:
            keep = F.dropout(h_x.new_ones(h_x.size(0), 1), p=self.feature_dropout)
            h_x = h_x * keep
        # One product per (channel, power) slice, summed: building the concatenated
        # [B, C·K·width] input copied every knowledge row and doubled the layer's time.
        h = h_x + self.lin1.bias
        slices = zip(knowledge.flatten(0, 1), w_z.split(self.knowledge_width, dim=1),
                     strict=True)
        for z, w in slices:
            h = torch.addmm(h, z, w.T)
        h = F.relu(h)
        h = F.dropout(h, p=self.dropout, training=self.training)
        return StudentOutput(self.lin2(h), None)
