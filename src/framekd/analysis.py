r"""Analysis of trained teachers and students: the "algebra and geometry" of docs/SPEC.md §8.

* :func:`dirichlet_energy`: the normalised Dirichlet energy of node representations,

  .. math::
      E(H) = \frac{\operatorname{tr}(H^\top L H)}{\|H\|_F^2}, \qquad
      L = I - D^{-1/2} A D^{-1/2},

  computed with one sparse product (``L`` is never formed densely). ``E`` lies in
  :math:`[0, \lambda_{max}] \subseteq [0, 2]`: near 0 for smooth (low-frequency dominated)
  signals, large for oscillating (high-frequency dominated) ones.
* :func:`teacher_energies` and :func:`student_energies`: :math:`E` per layer and per framelet
  channel of a :class:`~framekd.models.SpatialFramelet` teacher and of the FMLP students.
* :func:`channel_reliance` and :func:`gate_statistics`: how much a student leans on each
  channel's graph knowledge, read from its gates with the gate orientation of each model.
* :func:`agreement`: teacher/student KL divergence and prediction agreement.
* :func:`curvature_summary`: Balanced Forman curvature and spectral gap of a graph.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from framekd.errors import ConfigError
from framekd.graph import check_edge_index


def normalized_adjacency_matrix(
    edge_index: Tensor, num_nodes: int, *, dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    r"""Sparse COO :math:`D^{-1/2} A D^{-1/2}` of a symmetric graph without self-loops.

    Self-loops in ``edge_index`` are dropped (``L`` is defined without them); isolated
    nodes get no entry, so :math:`L_{ii} = 1` there and no division by zero occurs.
    """
    from framekd.operators import normalized_adjacency

    ei = edge_index.long().cpu()
    ei = ei[:, ei[0] != ei[1]]
    ei, w = normalized_adjacency(ei, num_nodes)
    adj = torch.sparse_coo_tensor(ei, w.to(dtype), (num_nodes, num_nodes), check_invariants=False)
    return adj.coalesce().to(device)


def dirichlet_energy(
    h: Tensor, edge_index: Tensor | None = None, num_nodes: int | None = None, *,
    adj: Tensor | None = None,
) -> Tensor:
    r"""Normalised Dirichlet energy :math:`E(H) = \operatorname{tr}(H^\top L H) / \|H\|_F^2`.

    With :math:`P = D^{-1/2} A D^{-1/2}`,
    :math:`\operatorname{tr}(H^\top L H) = \|H\|_F^2 - \langle H, P H\rangle`
    :math:`= \tfrac12 \sum_{ij} a_{ij} \|h_i/\sqrt{d_i} - h_j/\sqrt{d_j}\|^2`
    (plus :math:`\|h_i\|^2` for isolated nodes), so one sparse product suffices.

    Args:
        h: node representations ``[N, d]`` (or ``[N]``), or a stack ``[..., N, d]``
            (e.g. ``[C, N, d]`` framelet channels); the energy is taken per leading index.
        edge_index: symmetric ``[2, E]`` edges (canonical graph); or pass ``adj``.
        num_nodes: N (default ``h.size(-2)``).
        adj: a prebuilt :func:`normalized_adjacency_matrix` (saves rebuilding it).

    Returns:
        a float64 tensor of shape ``h.shape[:-2]`` (a scalar for one matrix). The energy of
        the zero signal is undefined and returned as NaN.
    """
    if h.dim() == 1:
        h = h[:, None]
    n = h.size(-2) if num_nodes is None else int(num_nodes)
    if h.size(-2) != n:
        raise ConfigError(f"h has {h.size(-2)} rows (dim -2) but the graph has {n} nodes")
    if adj is None:
        if edge_index is None:
            raise ConfigError("dirichlet_energy needs edge_index or adj")
        check_edge_index(edge_index, n, where="dirichlet_energy edge_index")
        adj = normalized_adjacency_matrix(edge_index, n, dtype=torch.float64, device=h.device)
    lead = h.shape[:-2]
    stack = h.detach().to(torch.float64).reshape(-1, n, h.size(-1))
    b, d = stack.size(0), stack.size(2)
    flat = stack.permute(1, 0, 2).reshape(n, b * d)  # one sparse product for the whole stack
    ph = torch.sparse.mm(adj.to(torch.float64), flat)
    sq = (flat * flat).reshape(n, b, d).sum(dim=(0, 2))
    cross = (flat * ph).reshape(n, b, d).sum(dim=(0, 2))
    energy = torch.where(sq > 0, (sq - cross) / sq.clamp(min=torch.finfo(sq.dtype).tiny),
                         torch.full_like(sq, math.nan))
    return energy.reshape(lead)


@torch.no_grad()
def _spatial_layers(model: nn.Module, data: Any, captured: list) -> Tensor:
    """The eval-mode forward pass of a spatial framelet teacher layer by layer (its own
    forward fuses layers and precomputes the first one, so no layer call is visible), each
    ``(conv, (input, operator), output)`` appended to ``captured``; returns the logits."""
    with torch.no_grad():
        operator = model.operator(data.x, data.edge_index)
        h = model._sparse_input(data.x)
        for conv in model.convs:
            out = conv(h, operator)
            captured.append((conv, (h, operator), out))
            h = out
    return h


def teacher_energies(model: nn.Module, data: Any) -> dict[str, Any]:
    r"""Dirichlet energies of a teacher's representations on ``data`` (eval mode).

    For every layer :math:`\ell` with input :math:`H^{(\ell-1)}` (``H^{(0)} = X``) and output
    :math:`H^{(\ell)}` records ``E(H^{(\ell)})``. For a
    :class:`~framekd.models.SpatialFramelet` also records, per framelet channel ``c``, the
    energy of the channel's analysis coefficients :math:`W_c H^{(\ell-1)} \Theta_c` and of its
    contribution :math:`W_c\,\mathrm{ReLU}(\hat A_c W_c H^{(\ell-1)} \Theta_c)` to the layer
    output (the contributions sum to :math:`H^{(\ell)} - b`). Other teachers with a
    ``convs`` list (PyG models) get the per-layer energies only.

    Returns:
        ``{"input": E(X), "layers": [{"layer", "output", "channels": [{"channel",
        "coefficients", "contribution"}]}]}`` with plain floats.
    """
    from framekd.models import SpatialFrameletConv

    adj = normalized_adjacency_matrix(data.edge_index, data.num_nodes, dtype=torch.float64,
                                      device=data.x.device)
    captured: list[tuple[nn.Module, tuple, Tensor]] = []
    was_training = model.training
    model.eval()
    try:
        if all(isinstance(c, SpatialFrameletConv) for c in getattr(model, "convs", [None])):
            logits = _spatial_layers(model, data, captured)
        else:
            hooks = [conv.register_forward_hook(lambda m, i, o: captured.append((m, i, o)))
                     for conv in getattr(model, "convs", [])]
            try:
                logits = model(data.x, data.edge_index)
            finally:
                for hook in hooks:
                    hook.remove()
    finally:
        model.train(was_training)
    layers = []
    for idx, (conv, inputs, out) in enumerate(captured, start=1):
        row: dict[str, Any] = {"layer": idx, "output": _f(dirichlet_energy(out, adj=adj))}
        if isinstance(conv, SpatialFrameletConv):
            h, operator = inputs[0], inputs[1]
            transform = operator.transform
            coef = transform.apply_each(conv.project(h))
            contrib = transform.apply_each(conv.channel_outputs(h, operator))
            e_coef = dirichlet_energy(coef, adj=adj)
            e_contrib = dirichlet_energy(contrib, adj=adj)
            row["channels"] = [
                {"channel": channel_name(ch), "coefficients": _f(e_coef[c]),
                 "contribution": _f(e_contrib[c])}
                for c, ch in enumerate(transform.channels)
            ]
        layers.append(row)
    return {"input": _f(dirichlet_energy(data.x, adj=adj)),
            "logits": _f(dirichlet_energy(logits, adj=adj)), "layers": layers}


@torch.no_grad()
def student_energies(
    student: nn.Module, x: Tensor, knowledge: Tensor | None, edge_index: Tensor,
    channels: Sequence[tuple[int, int]] | None = None,
) -> dict[str, Any]:
    r"""Dirichlet energies of a student's representations on all nodes (eval mode).

    * FMLP-S: each channel encoding :math:`u_c = E_c z_c` and the feature encoding
      :math:`u_x = E_x x`;
    * FMLP-O: each channel encoding :math:`u_c^{(k)} = \mathrm{ReLU}(E_c z_c^{(k)})` for every
      power ``k`` and the hidden state :math:`h` after every hidden layer;
    * every student: the logits.

    The representations are captured with forward hooks on the encoders and hidden maps, so
    the numbers are those of the student's own forward pass.
    """
    from framekd.models import FMLPO, FMLPS

    adj = normalized_adjacency_matrix(edge_index, x.size(0), dtype=torch.float64,
                                      device=x.device)
    seen: dict[str, list[Tensor]] = {}

    def grab(key: str):
        return lambda m, i, o: seen.setdefault(key, []).append(o)

    hooks = []
    if isinstance(student, (FMLPS, FMLPO)):
        for c, enc in enumerate(student.encoders):
            hooks.append(enc.register_forward_hook(grab(f"channel{c}")))
        hooks.append(student.feature_encoder.register_forward_hook(grab("features")))
    if isinstance(student, FMLPO):
        for k, lin in enumerate(student.hidden):
            hooks.append(lin.register_forward_hook(grab(f"hidden{k}")))
    was_training = student.training
    student.eval()
    try:
        logits = student(x, knowledge).logits
    finally:
        student.train(was_training)
        for hook in hooks:
            hook.remove()
    out: dict[str, Any] = {"logits": _f(dirichlet_energy(logits, adj=adj))}
    if not isinstance(student, (FMLPS, FMLPO)):
        return out
    relu = isinstance(student, FMLPO)
    names = [channel_name(ch) for ch in channels] if channels else None
    rows = []
    for c in range(student.knowledge_channels):
        per_power = [_f(dirichlet_energy(F.relu(u) if relu else u, adj=adj))
                     for u in seen.get(f"channel{c}", [])]
        # FMLP-S encodes the top power only; FMLP-O powers 1..K in order.
        powers = list(range(1, len(per_power) + 1)) if relu else [knowledge.size(1)]
        rows.append({"channel": names[c] if names else str(c),
                     "powers": dict(zip(powers, per_power, strict=True))})
    out["channels"] = rows
    u_x = seen["features"][0]
    out["features"] = _f(dirichlet_energy(F.relu(u_x) if relu else u_x, adj=adj))
    if relu:
        out["hidden"] = [_f(dirichlet_energy(F.relu(seen[f"hidden{k}"][0]), adj=adj))
                         for k in range(len(student.hidden))]
    return out


def channel_name(channel: tuple[int, int]) -> str:
    """``(0, Lev)`` -> ``"low pass"``; ``(r, l)`` -> ``"high pass r, level l"``."""
    r, lev = int(channel[0]), int(channel[1])
    return "low pass" if r == 0 else f"high pass {r}, level {lev}"


def channel_reliance(gates: Tensor, student: str) -> Tensor:
    r"""Per node, how much a student relies on each channel's knowledge, in ``[0, 1]``.

    The gates are oriented differently per model (see :mod:`framekd.models.students`):

    * FMLP-S (``gates [N, C]``): :math:`\alpha_c` weights the **feature** branch, so the
      reliance on channel ``c`` is :math:`1 - \alpha_c`; returns ``[N, C]``;
    * FMLP-O (``gates [K, N, C]``): in hidden layers :math:`\alpha_c` weights the channel's
      knowledge (reliance :math:`\alpha_c`); at the output layer it weights the hidden branch
      (reliance :math:`1 - \alpha_c`); returns ``[K, N, C]``.
    """
    key = student.lower().replace("_", "-")
    if key in ("fmlp-s", "fmlps"):
        if gates.dim() != 2:
            raise ConfigError(f"FMLP-S gates must be [N, C], got {list(gates.shape)}")
        return 1.0 - gates
    if key in ("fmlp-o", "fmlpo"):
        if gates.dim() != 3:
            raise ConfigError(f"FMLP-O gates must be [K, N, C], got {list(gates.shape)}")
        out = gates.clone()
        out[-1] = 1.0 - gates[-1]
        return out
    raise ConfigError(f"no gates for student {student!r}; gates exist for fmlp-s and fmlp-o")


def gate_statistics(
    gates: Tensor, student: str, channels: Sequence[tuple[int, int]] | None = None,
    nodes: Tensor | None = None,
) -> dict[str, Any]:
    """Mean and std over nodes of the raw gates and of :func:`channel_reliance`.

    Returns ``{"student", "layers": [{"layer", "channels": [{"channel", "alpha_mean",
    "alpha_std", "reliance_mean", "reliance_std"}]}]}``; FMLP-S has one layer (``"output"``),
    FMLP-O one per layer (hidden layers ``1..K-1``, then ``"output"``). ``nodes`` (index or
    mask) restricts the statistics to a node subset.
    """
    rel = channel_reliance(gates, student)
    g, r = (gates, rel) if gates.dim() == 3 else (gates[None], rel[None])
    if nodes is not None:
        g, r = g[:, nodes], r[:, nodes]
    k, _, c = g.shape
    names = [channel_name(ch) for ch in channels] if channels else [str(i) for i in range(c)]
    if len(names) != c:
        raise ConfigError(f"gates have {c} channels but {len(names)} channel names were given")
    layers = []
    for layer in range(k):
        rows = [{"channel": names[i],
                 "alpha_mean": _f(g[layer, :, i].double().mean()),
                 "alpha_std": _f(g[layer, :, i].double().std(unbiased=False)),
                 "reliance_mean": _f(r[layer, :, i].double().mean()),
                 "reliance_std": _f(r[layer, :, i].double().std(unbiased=False))}
                for i in range(c)]
        layers.append({"layer": "output" if layer == k - 1 else layer + 1, "channels": rows})
    return {"student": student, "layers": layers}


def agreement(
    teacher: Tensor, student: Tensor, nodes: Tensor | None = None,
) -> dict[str, float]:
    r"""Teacher/student agreement on ``nodes`` (default all).

    ``teacher`` and ``student`` are ``[N, classes]`` logits or log-probabilities (both are
    passed through ``log_softmax``, which leaves log-probabilities unchanged). Returns

    * ``kl``: mean over nodes of :math:`\mathrm{KL}(p_t \,\|\, p_s) = \sum_y p_t (\log p_t -
      \log p_s)`, in nats;
    * ``agreement``: fraction of nodes whose arg-max classes coincide.
    """
    if teacher.shape != student.shape:
        raise ConfigError(f"teacher {list(teacher.shape)} and student {list(student.shape)} "
                          "outputs differ in shape")
    lt = F.log_softmax(teacher.double(), dim=-1)
    ls = F.log_softmax(student.double(), dim=-1)
    if nodes is not None:
        lt, ls = lt[nodes], ls[nodes]
    kl = (lt.exp() * (lt - ls)).sum(-1).mean()
    agree = (lt.argmax(-1) == ls.argmax(-1)).double().mean()
    return {"kl": _f(kl), "agreement": _f(agree)}


def curvature_summary(edge_index: Tensor, num_nodes: int) -> dict[str, Any]:
    """Balanced Forman curvature statistics and spectral gap of an undirected graph.

    Returns ``{"edges", "negative_edges", "negative_fraction", "curvature_min",
    "curvature_mean", "curvature_median", "spectral_gap", "curvature"}`` where the counts
    are of undirected edges and ``curvature`` holds one value per undirected edge (numpy).
    """
    from framekd.rewire import balanced_forman_curvature, spectral_gap

    ei, curv = balanced_forman_curvature(edge_index, num_nodes)
    upper = (ei[0] < ei[1]).numpy()
    values = curv.numpy()[upper]
    m = int(values.size)
    return {
        "edges": m,
        "negative_edges": int((values < 0).sum()),
        "negative_fraction": float((values < 0).mean()) if m else 0.0,
        "curvature_min": float(values.min()) if m else math.nan,
        "curvature_mean": float(values.mean()) if m else math.nan,
        "curvature_median": float(torch.from_numpy(values).median()) if m else math.nan,
        "spectral_gap": spectral_gap(ei, num_nodes),
        "curvature": values,
    }


def _f(value: Tensor | float) -> float:
    return float(value)
