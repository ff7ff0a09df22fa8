r"""Graph knowledge (SPEC §3): what the framelet teacher hands to the student.

For each framelet channel :math:`c` the teacher's structural operator is

.. math::
    K_c = W_c^\top \hat A_c W_c = W_c \hat A_c W_c, \qquad
    \hat A = \tilde D^{-1/2} (A + I) \tilde D^{-1/2},

with the energy perturbation :math:`\hat A_c = \hat A - \varepsilon \tilde D^{-1}` for the
low-pass channel and :math:`\hat A + \varepsilon \tilde D^{-1}` for the high passes. The
knowledge of power k is :math:`K_c^k M`, in one of three modes:

* ``rows``: :math:`M = I`, the dense rows of :math:`K_c^k` (width N; memory N² per channel
  and power, estimated first and refused above a budget);
* ``sketch``: :math:`M = R`, a seeded Gaussian :math:`R \in \mathbb{R}^{N \times m} / \sqrt m`
  (width m). A linear layer :math:`K_c^k E` restricted to :math:`E = R B` sees exactly these
  rows, and :math:`\mathbb{E}[R R^\top] = I` keeps their inner products in expectation;
* ``features``: :math:`M = X` (SGC/SIGN-style propagated features, width d).

All three are computed by repeated matrix-free products over column blocks of M (never a
dense N×N power), costing :math:`O(k \cdot \mathrm{nnz} \cdot \mathrm{width})` time.
:func:`cached_graph_knowledge` and :class:`KnowledgeTransform` add an on-disk cache.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform

from framekd.errors import CheckpointError, ConfigError, FramekdWarning, MemoryBudgetError
from framekd.framelets import (
    FrameletTransform,
    framelet_channels,
    framelet_config,
    sparse_csr,
)
from framekd.graph import check_edge_index, check_features, graph_hash

MODES = ("rows", "sketch", "features")
#: Default memory budget of :func:`graph_knowledge` (bytes): 4 GiB.
DEFAULT_MEMORY_BUDGET = 4 * 2**30
#: Working memory aimed at per column block (bytes).
_BLOCK_BYTES = 2**30
_CACHE_FORMAT = "framekd-knowledge-1"


def gcn_adjacency(
    edge_index: Tensor,
    num_nodes: int,
    *,
    shift: float = 0.0,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    r"""The GCN-normalised adjacency :math:`\hat A + \mathrm{shift}\cdot\tilde D^{-1}`.

    :math:`\hat A = \tilde D^{-1/2}(A + I)\tilde D^{-1/2}`, :math:`\tilde D = D + I`
    (PyG ``gcn_norm`` with self-loops). The shift only touches the diagonal; the spatial
    teacher uses ``shift = -epsilon`` for the low pass and ``+epsilon`` for high passes.
    Returns a sparse CSR ``[N, N]`` tensor (use it with ``torch.sparse.mm``).
    """
    ei, w, dinv = _gcn_parts(edge_index, num_nodes)
    diag = ei[0] == ei[1]
    w = w.clone()
    w[diag] = w[diag] + float(shift) * dinv[ei[0][diag]]
    return sparse_csr(ei, w, num_nodes, dtype)


def _gcn_parts(edge_index: Tensor, num_nodes: int) -> tuple[Tensor, Tensor, Tensor]:
    """Row-sorted GCN edges with weights (float64) and the vector of 1/D̃."""
    from torch_geometric.nn.conv.gcn_conv import gcn_norm

    check_edge_index(edge_index, num_nodes)
    ei, w = gcn_norm(
        edge_index.long().cpu(), None, num_nodes, add_self_loops=True, dtype=torch.float64
    )
    order = torch.argsort(ei[0] * num_nodes + ei[1])
    ei, w = ei[:, order], w[order]
    deg = torch.bincount(edge_index[0].long().cpu(), minlength=num_nodes).to(torch.float64)
    return ei, w, 1.0 / (deg + 1.0)


def sketch_matrix(
    num_nodes: int, sketch_dim: int, *, seed: int = 0, dtype: torch.dtype = torch.float32
) -> Tensor:
    r"""The sketch :math:`R = G / \sqrt m`, :math:`G_{ij} \sim \mathcal N(0, 1)`, ``[N, m]``.

    Drawn in float32 on CPU from ``torch.Generator().manual_seed(seed)`` and then cast,
    so every device and dtype sees the same matrix.
    """
    gen = torch.Generator().manual_seed(int(seed))
    r = torch.randn(num_nodes, sketch_dim, generator=gen, dtype=torch.float32)
    return (r / math.sqrt(sketch_dim)).to(dtype)


def knowledge_memory(
    num_nodes: int, num_channels: int, powers: int, width: int, dtype: torch.dtype,
    block: int | None = None,
) -> int:
    """Estimated peak bytes of :func:`graph_knowledge`: the output plus one column block.

    Output ``C·P·N·width`` values; a block of ``b`` columns needs about ``8·C·N·b`` more
    (recurrence terms, accumulators and the block of M).
    """
    size = torch.empty((), dtype=dtype).element_size()
    block = width if block is None else min(block, width)
    return size * num_nodes * (num_channels * powers * width + 8 * num_channels * block)


def _block_width(num_nodes: int, num_channels: int, width: int, dtype: torch.dtype) -> int:
    size = torch.empty((), dtype=dtype).element_size()
    fit = _BLOCK_BYTES // max(1, 8 * num_channels * num_nodes * size)
    # Below ~32 columns sparse products lose more to per-pass overhead than they save.
    return max(1, min(width, max(32, int(fit))))


def graph_knowledge(
    edge_index: Tensor,
    num_nodes: int,
    x: Tensor | None = None,
    *,
    transform: FrameletTransform | None = None,
    powers: int = 2,
    mode: str = "sketch",
    sketch_dim: int = 256,
    epsilon: float = 0.0,
    seed: int = 0,
    memory_budget: int | None = None,
    dtype: torch.dtype | None = None,
    block_size: int | None = None,
) -> Tensor:
    r"""Graph knowledge :math:`K_c^k M` for every channel c and power k = 1..``powers``.

    Args:
        edge_index: canonical ``[2, E]`` edges (see :func:`framekd.graph.canonicalize`).
        num_nodes: number of nodes N.
        x: node features ``[N, d]``; required for ``mode="features"``.
        transform: the :class:`~framekd.framelets.FrameletTransform` of this graph;
            ``None`` builds the default (Haar, 1 level, order 8, float32 unless ``dtype``).
            The computation runs on the transform's device.
        powers: number of powers K (the teacher's depth).
        mode: ``"rows"`` (M = I), ``"sketch"`` (M = :func:`sketch_matrix`) or
            ``"features"`` (M = x).
        sketch_dim: sketch width m.
        epsilon: energy perturbation ε of :math:`\hat A` (low pass −, high passes +).
        seed: seed of the sketch.
        memory_budget: bytes the result may take (:func:`knowledge_memory`); default
            :data:`DEFAULT_MEMORY_BUDGET` (4 GiB).
        dtype: dtype of the default transform (float32); a given transform keeps its own.
        block_size: columns of M processed at once (default: about 1 GiB of working memory).

    Returns:
        ``[num_channels, powers, N, width]``; ``out[c, k-1, i]`` is node i's knowledge of
        channel ``transform.channels[c]`` and power k.

    Raises:
        MemoryBudgetError: the estimate exceeds ``memory_budget`` (for ``rows`` the message
            names ``sketch``, whose memory is linear in N).
        ConfigError: invalid mode, powers, sketch_dim or a transform of another graph.
    """
    if mode not in MODES:
        raise ConfigError(f"unknown knowledge mode {mode!r}; choose one of {', '.join(MODES)}")
    if isinstance(powers, bool) or not isinstance(powers, int) or powers < 1:
        raise ConfigError(f"powers must be an integer >= 1 (the teacher's depth), got {powers!r}")
    if mode == "sketch" and (not isinstance(sketch_dim, int) or sketch_dim < 1):
        raise ConfigError(f"sketch_dim must be an integer >= 1, got {sketch_dim!r}")
    if not math.isfinite(float(epsilon)):
        raise ConfigError(f"epsilon must be a finite number, got {epsilon!r}")
    check_edge_index(edge_index, num_nodes)
    if mode == "features":
        if x is None:
            raise ConfigError("mode='features' needs node features x [N, d]; pass x=data.x")
        check_features(x, num_nodes)
    if transform is None:
        transform = FrameletTransform(edge_index, num_nodes, dtype=dtype or torch.float32)
    elif transform.num_nodes != num_nodes:
        raise ConfigError(
            f"the transform was built for {transform.num_nodes} nodes but the graph has "
            f"{num_nodes}; build FrameletTransform on this graph"
        )
    width = {"rows": num_nodes, "sketch": sketch_dim, "features": 0 if x is None else x.size(1)}
    width = width[mode]
    c, dt, dev = transform.num_channels, transform.dtype, transform.device
    block = block_size or _block_width(num_nodes, c, width, dt)
    _check_budget(mode, num_nodes, c, powers, width, dt, block, memory_budget)

    ei, w, dinv = _gcn_parts(edge_index, num_nodes)
    adj = sparse_csr(ei, w, num_nodes, dt).to(dev)
    # Channel-wise diagonal shift: -eps on the low pass (channel 0), +eps on high passes.
    shift = None
    if epsilon:
        shift = torch.full((c, 1, 1), float(epsilon), dtype=dt, device=dev)
        shift[0] = -float(epsilon)
        shift = shift * dinv.to(device=dev, dtype=dt)[None, :, None]

    if mode == "sketch":
        source = sketch_matrix(num_nodes, sketch_dim, seed=seed, dtype=dt)
    elif mode == "features":
        source = x.detach()
    else:
        source = None
    out = torch.empty((c, powers, num_nodes, width), dtype=dt, device=dev)
    with torch.no_grad():
        for start in range(0, width, block):
            stop = min(width, start + block)
            if source is None:
                m = torch.zeros((num_nodes, stop - start), dtype=dt, device=dev)
                idx = torch.arange(start, stop, device=dev)
                m[idx, idx - start] = 1.0
            else:
                m = source[:, start:stop].to(device=dev, dtype=dt)
            _powers_into(out[..., start:stop], transform, adj, shift, m)
    return out


def _powers_into(out: Tensor, transform: FrameletTransform, adj: Tensor,
                 shift: Tensor | None, m: Tensor) -> None:
    r"""Fill ``out[c, k-1] = K_c^k m``, with :math:`K_c v = W_c(\hat A v + s_c \odot v)` after W."""
    c, n, b = out.shape[0], m.shape[0], m.shape[1]
    v = transform.apply(m)  # W_c m, sharing the low-pass chain across channels
    for k in range(out.shape[1]):
        if k > 0:
            v = transform.apply_each(v)
        flat = v.permute(1, 0, 2).reshape(n, c * b)
        av = torch.mm(adj, flat).reshape(n, c, b).permute(1, 0, 2)
        v = transform.apply_each(av if shift is None else av + shift * v)
        out[:, k] = v


def _check_budget(mode: str, n: int, c: int, powers: int, width: int, dtype: torch.dtype,
                  block: int, budget: int | None) -> None:
    budget = DEFAULT_MEMORY_BUDGET if budget is None else int(budget)
    need = knowledge_memory(n, c, powers, width, dtype, block)
    if need <= budget:
        return
    gib = 2**30
    what = f"{c} channels x {powers} powers x N={n} x width {width} {dtype}"
    if mode == "rows":
        advice = (
            "use mode='sketch' (memory N x sketch_dim, e.g. 256) or raise memory_budget "
            "if the machine has the memory"
        )
    else:
        advice = "lower sketch_dim, powers or the feature width, or raise memory_budget"
    raise MemoryBudgetError(
        f"{mode} knowledge needs about {need / gib:.2f} GiB ({what}), more than the memory "
        f"budget of {budget / gib:.2f} GiB; {advice}"
    )


# ----------------------------------------------------------------------------- cache


def knowledge_key(
    edge_index: Tensor,
    num_nodes: int,
    x: Tensor | None = None,
    *,
    framelet: Mapping[str, Any] | None = None,
    powers: int = 2,
    mode: str = "sketch",
    sketch_dim: int = 256,
    epsilon: float = 0.0,
    seed: int = 0,
) -> tuple[str, dict]:
    """The cache key (hex) and the JSON-able description it hashes.

    The description holds :func:`framekd.graph.graph_hash`, the normalised framelet
    configuration (:func:`framekd.framelets.framelet_config`), the mode and its
    parameters (the sketch's width and seed; a hash of x for ``features``).
    """
    desc: dict[str, Any] = {
        "format": _CACHE_FORMAT,
        "graph": graph_hash(edge_index, num_nodes),
        "num_nodes": int(num_nodes),
        "framelet": framelet_config(**dict(framelet or {})),
        "mode": mode,
        "powers": int(powers),
        "epsilon": float(epsilon),
    }
    if mode == "sketch":
        desc.update(sketch_dim=int(sketch_dim), seed=int(seed))
    if mode == "features" and x is not None:
        xc = x.detach().cpu().contiguous()
        desc["features"] = hashlib.sha256(xc.numpy().tobytes()).hexdigest()[:32]
        desc["features_shape"] = list(xc.shape)
    text = json.dumps(desc, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32], desc


def _checksum(t: Tensor) -> str:
    data = t.detach().cpu().contiguous()
    return hashlib.blake2b(data.view(torch.uint8).numpy().data, digest_size=16).hexdigest()


def _load_cached(path: Path, key: str) -> Tensor | None:
    """The cached tensor, or None (with a warning) when the file is corrupt or stale."""
    from framekd.io import load_metadata, load_tensors

    try:
        meta = load_metadata(path)
        tensor = load_tensors(path)["knowledge"]
    except (CheckpointError, KeyError) as err:
        reason = str(err)
    else:
        if meta.get("key") != key:
            reason = "its key does not match the request"
        elif list(tensor.shape) != json.loads(meta.get("shape", "null") or "null"):
            reason = "its shape does not match its metadata"
        elif meta.get("checksum") != _checksum(tensor):
            reason = "its checksum does not match its contents"
        else:
            return tensor
    warnings.warn(
        f"knowledge cache file {path} is unusable ({reason}); recomputing it",
        FramekdWarning,
        stacklevel=3,
    )
    return None


def cached_graph_knowledge(
    edge_index: Tensor,
    num_nodes: int,
    x: Tensor | None = None,
    *,
    cache_dir: str | os.PathLike | None,
    framelet: Mapping[str, Any] | None = None,
    powers: int = 2,
    mode: str = "sketch",
    sketch_dim: int = 256,
    epsilon: float = 0.0,
    seed: int = 0,
    memory_budget: int | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """:func:`graph_knowledge` with an on-disk cache in ``cache_dir``.

    ``framelet`` holds :class:`~framekd.framelets.FrameletTransform` keyword arguments
    (filters, levels, scale, order, method, lambda_max, dtype, alpha). The file is
    ``cache_dir/knowledge-<key>.safetensors`` (see :func:`knowledge_key`), written
    atomically with its key, shape and a checksum in the metadata; a corrupt, stale or
    tampered file is reported with a :class:`~framekd.errors.FramekdWarning` and rebuilt.
    ``cache_dir=None`` computes without caching. The result is on ``device`` (default
    CPU).
    """
    framelet = dict(framelet or {})
    key, desc = knowledge_key(
        edge_index, num_nodes, x, framelet=framelet, powers=powers, mode=mode,
        sketch_dim=sketch_dim, epsilon=epsilon, seed=seed,
    )
    path = None if cache_dir is None else Path(cache_dir) / f"knowledge-{key}.safetensors"
    if path is not None and path.exists():
        cached = _load_cached(path, key)
        if cached is not None:
            return cached.to(device) if device is not None else cached
    transform = FrameletTransform(edge_index, num_nodes, **framelet)
    if device is not None:
        transform.to(device)
    out = graph_knowledge(
        edge_index, num_nodes, x, transform=transform, powers=powers, mode=mode,
        sketch_dim=sketch_dim, epsilon=epsilon, seed=seed, memory_budget=memory_budget,
    )
    if path is not None:
        from framekd.io import save_tensors

        meta = {
            "key": key,
            "description": json.dumps(desc, sort_keys=True),
            "shape": json.dumps(list(out.shape)),
            "checksum": _checksum(out),
            "lambda_max": repr(transform.lambda_max),
            "channels": json.dumps(transform.channels),
        }
        save_tensors(path, {"knowledge": out}, meta)
    return out


class KnowledgeTransform(BaseTransform):
    r"""Attach graph knowledge :math:`K_c^k M` to a :class:`~torch_geometric.data.Data`.

    Sets ``data.knowledge`` (``[C, powers, N, width]``, see :func:`graph_knowledge`) and
    ``data.knowledge_channels`` (the framelet channels, in order). The graph must be
    canonical (:func:`framekd.graph.canonicalize`); ``mode="features"`` uses ``data.x``.

    Args:
        cache_dir: folder of the on-disk cache (:func:`cached_graph_knowledge`); ``None``
            disables caching.
        powers, mode, sketch_dim, epsilon, seed, memory_budget: as in
            :func:`graph_knowledge`.
        device: where to compute (the result stays there).
        **framelet: :class:`~framekd.framelets.FrameletTransform` options (filters,
            levels, scale, order, method, lambda_max, dtype, alpha).

    Example::

        data = KnowledgeTransform(mode="sketch", powers=2, cache_dir="cache")(data)
    """

    def __init__(
        self,
        *,
        powers: int = 2,
        mode: str = "sketch",
        sketch_dim: int = 256,
        epsilon: float = 0.0,
        seed: int = 0,
        memory_budget: int | None = None,
        cache_dir: str | os.PathLike | None = None,
        device: torch.device | str | None = None,
        **framelet: Any,
    ) -> None:
        if mode not in MODES:
            raise ConfigError(f"unknown knowledge mode {mode!r}; choose one of {', '.join(MODES)}")
        self.framelet = framelet_config(**framelet)  # validate early, before any data
        self._framelet_kwargs = dict(framelet)
        self.powers, self.mode, self.sketch_dim = powers, mode, sketch_dim
        self.epsilon, self.seed, self.memory_budget = epsilon, seed, memory_budget
        self.cache_dir, self.device = cache_dir, device

    def forward(self, data: Data) -> Data:
        if "edge_index" not in data or data.num_nodes is None:
            raise ConfigError("KnowledgeTransform needs data.edge_index and data.num_nodes")
        x = data.x if self.mode == "features" else None
        if self.mode == "features" and x is None:
            raise ConfigError("mode='features' needs node features: data.x is missing")
        data.knowledge = cached_graph_knowledge(
            data.edge_index, data.num_nodes, x, cache_dir=self.cache_dir,
            framelet=self._framelet_kwargs, powers=self.powers, mode=self.mode,
            sketch_dim=self.sketch_dim, epsilon=self.epsilon, seed=self.seed,
            memory_budget=self.memory_budget, device=self.device,
        )
        data.knowledge_channels = framelet_channels(
            self.framelet["filters"], self.framelet["levels"]
        )
        return data

    def __repr__(self) -> str:
        f = self.framelet
        return (
            f"{self.__class__.__name__}(mode={self.mode!r}, powers={self.powers}, "
            f"filters={f['filters']!r}, levels={f['levels']}, order={f['order']}, "
            f"cache_dir={self.cache_dir!r})"
        )
