r"""Graph knowledge (docs/SPEC.md §3): what the framelet teacher hands to the student.

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

:func:`knowledge_rows` computes the knowledge of a few nodes only, from their receptive field
(:func:`knowledge_radius` hops, :func:`receptive_field`): how the inductive setting
(:mod:`framekd.inductive`) gets the knowledge of nodes that arrive after training.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform

from framekd.errors import CheckpointError, ConfigError, FramekdWarning, MemoryBudgetError
from framekd.framelets import FrameletOperator, FrameletSpec, FrameletTransform, framelet_operator
from framekd.graph import check_features, ensure_valid, graph_hash

MODES = ("rows", "sketch", "features")
#: Default memory budget of :func:`graph_knowledge` (bytes): 4 GiB.
DEFAULT_MEMORY_BUDGET = 4 * 2**30
#: Working memory aimed at per column block (bytes).
_BLOCK_BYTES = 2**30
_CACHE_FORMAT = "framekd-knowledge-2"  # 2: sketch rows independent of N


#: Sketches up to this size stay in memory once drawn (per process, the latest one), so that
#: the rows of a few nodes (new nodes' knowledge rows) do not redraw all N rows each query.
SKETCH_CACHE_BYTES = 256 * 2**20
_sketch_cache: dict[tuple[int, int], Tensor] = {}


def _sketch_stream(num_nodes: int, sketch_dim: int, seed: int) -> Tensor:
    r"""The float32 :math:`G/\sqrt m` for at least ``num_nodes`` rows (a multiple of 16)."""
    rows = -(-int(num_nodes) // 16) * 16
    key = (int(seed), int(sketch_dim))
    cached = _sketch_cache.get(key)
    if cached is not None and cached.size(0) >= rows:
        return cached
    gen = torch.Generator().manual_seed(int(seed))
    r = torch.randn(rows, sketch_dim, generator=gen, dtype=torch.float32) / math.sqrt(sketch_dim)
    if r.numel() * 4 <= SKETCH_CACHE_BYTES:
        _sketch_cache.clear()
        _sketch_cache[key] = r
    return r


def clear_sketch_cache() -> None:
    """Forget the sketch kept in memory (the next :func:`sketch_matrix` draws it again)."""
    _sketch_cache.clear()


def sketch_matrix(
    num_nodes: int, sketch_dim: int, *, seed: int = 0, dtype: torch.dtype = torch.float32,
    rows: Tensor | None = None,
) -> Tensor:
    r"""The sketch :math:`R = G / \sqrt m`, :math:`G_{ij} \sim \mathcal N(0, 1)`, ``[N, m]``
    (``rows`` given: only those rows, ``[len(rows), m]``).

    Drawn in float32 on CPU from ``torch.Generator().manual_seed(seed)`` and then cast,
    so every device and dtype sees the same matrix. A node's row does not depend on N:
    appending nodes (``framekd predict`` on a grown graph) leaves the old rows as they
    were. torch draws normals in groups of 16 values and redraws a ragged tail, so the
    matrix is drawn for N rounded up to a multiple of 16 rows and cut. A sketch of at most
    :data:`SKETCH_CACHE_BYTES` stays in memory once drawn (a constant of the knowledge, like
    λ_max): the rows of a few nodes then cost an index, not a new draw of N rows.
    """
    stream = _sketch_stream(num_nodes, sketch_dim, seed)
    if rows is not None:
        return stream[:num_nodes][rows.cpu()].to(dtype)
    out = stream[:num_nodes]
    # A fresh tensor: callers own what they get, the cached stream stays unchanged.
    return out.clone() if dtype == torch.float32 else out.to(dtype)


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


@dataclass(frozen=True)
class KnowledgeSpec:
    r"""What knowledge the students get, validated once.

    Args:
        mode: ``"rows"`` (M = I), ``"sketch"`` (M = :func:`sketch_matrix`) or
            ``"features"`` (M = X).
        powers: number of powers K (the teacher's depth), >= 1.
        sketch_dim: sketch width m, >= 1 (``sketch`` only).
        seed: seed of the sketch.
    """

    mode: str = "sketch"
    powers: int = 2
    sketch_dim: int = 256
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(
                f"unknown knowledge mode {self.mode!r}; choose one of {', '.join(MODES)}"
            )
        for name, what in (("powers", "the teacher's depth"), ("sketch_dim", "the sketch width")):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be an integer >= 1 ({what}), got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ConfigError(f"the sketch seed must be an integer, got {self.seed!r}")

    def width(self, num_nodes: int, x: Tensor | None) -> int:
        """Columns of M: N (rows), m (sketch) or d (features)."""
        if self.mode == "rows":
            return num_nodes
        if self.mode == "sketch":
            return self.sketch_dim
        return 0 if x is None else x.size(1)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def checked_inputs(
    edge_index: Tensor, num_nodes: int, x: Tensor | None, spec: KnowledgeSpec | None,
    options: Mapping[str, Any],
) -> KnowledgeSpec:
    """The :class:`KnowledgeSpec` of ``spec`` with ``options`` applied, after checking the
    graph (once per tensor) and, for ``features``, that ``x`` is there and valid."""
    spec = KnowledgeSpec(**{**(asdict(spec) if spec is not None else {}), **options})
    ensure_valid(edge_index, num_nodes)
    if spec.mode == "features":
        if x is None:
            raise ConfigError("mode='features' needs node features x [N, d]; pass x=data.x")
        check_features(x, num_nodes)
    return spec


def _operator_for(
    edge_index: Tensor, num_nodes: int, operator: FrameletOperator | None,
    transform: FrameletTransform | None, framelet: Any, epsilon: float, dtype: torch.dtype | None,
) -> FrameletOperator:
    if not math.isfinite(float(epsilon)):
        raise ConfigError(f"epsilon must be a finite number, got {epsilon!r}")
    if operator is not None:
        if operator.num_nodes != num_nodes:
            raise ConfigError(
                f"the operator was built for {operator.num_nodes} nodes but the graph has "
                f"{num_nodes}; build it on this graph"
            )
        return operator
    if transform is not None:
        return FrameletOperator(edge_index, num_nodes, transform=transform, epsilon=epsilon)
    return framelet_operator(
        edge_index, num_nodes, framelet, epsilon=epsilon, dtype=dtype or torch.float32
    )


def graph_knowledge(
    edge_index: Tensor,
    num_nodes: int,
    x: Tensor | None = None,
    spec: KnowledgeSpec | None = None,
    *,
    operator: FrameletOperator | None = None,
    transform: FrameletTransform | None = None,
    framelet: FrameletSpec | Mapping[str, Any] | None = None,
    epsilon: float = 0.0,
    memory_budget: int | None = None,
    dtype: torch.dtype | None = None,
    block_size: int | None = None,
    **options: Any,
) -> Tensor:
    r"""Graph knowledge :math:`K_c^k M` for every channel c and power k = 1..``powers``.

    Args:
        edge_index: canonical ``[2, E]`` edges (see :func:`framekd.graph.canonicalize`).
        num_nodes: number of nodes N.
        x: node features ``[N, d]``; required for ``mode="features"``.
        spec: the :class:`KnowledgeSpec`; keyword ``options`` (``mode=``, ``powers=``,
            ``sketch_dim=``, ``seed=``) override its fields.
        operator: the :class:`~framekd.framelets.FrameletOperator` to use (the teacher's:
            its transform and ε); the computation runs on its device and dtype.
        transform: a :class:`~framekd.framelets.FrameletTransform` of this graph, combined
            with ``epsilon`` (when no ``operator`` is given).
        framelet: framelet settings of the default operator (Haar, 1 level, order 8) when
            neither ``operator`` nor ``transform`` is given.
        epsilon: energy perturbation ε of :math:`\hat A` (low pass −, high passes +).
        memory_budget: bytes the result may take (:func:`knowledge_memory`); default
            :data:`DEFAULT_MEMORY_BUDGET` (4 GiB).
        dtype: dtype of the default operator (float32).
        block_size: columns of M processed at once (default: about 1 GiB of working memory).

    Returns:
        ``[num_channels, powers, N, width]``; ``out[c, k-1, i]`` is node i's knowledge of
        channel ``operator.transform.channels[c]`` and power k.

    Raises:
        MemoryBudgetError: the estimate exceeds ``memory_budget`` (for ``rows`` the message
            names ``sketch``, whose memory is linear in N).
        ConfigError: invalid settings or an operator/transform of another graph.
    """
    spec = checked_inputs(edge_index, num_nodes, x, spec, options)
    op = _operator_for(edge_index, num_nodes, operator, transform, framelet, epsilon, dtype)
    width = spec.width(num_nodes, x)
    c, dt, dev = op.num_channels, op.dtype, op.device
    block = block_size or _block_width(num_nodes, c, width, dt)
    _check_budget(spec.mode, num_nodes, c, spec.powers, width, dt, block, memory_budget)

    if spec.mode == "sketch":
        source = sketch_matrix(num_nodes, spec.sketch_dim, seed=spec.seed, dtype=dt)
    elif spec.mode == "features":
        source = x.detach()
    else:
        source = None
    out = torch.empty((c, spec.powers, num_nodes, width), dtype=dt, device=dev)
    with torch.no_grad():
        for start in range(0, width, block):
            stop = min(width, start + block)
            if source is None:
                m = torch.zeros((num_nodes, stop - start), dtype=dt, device=dev)
                idx = torch.arange(start, stop, device=dev)
                m[idx, idx - start] = 1.0
            else:
                m = source[:, start:stop].to(device=dev, dtype=dt)
            for k, v in enumerate(op.powers(m, spec.powers)):
                out[:, k, :, start:stop] = v
    return out


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
    x: Tensor | None,
    spec: KnowledgeSpec,
    *,
    framelet: FrameletSpec,
    epsilon: float = 0.0,
    dtype: torch.dtype = torch.float32,
) -> tuple[str, dict]:
    """The cache key (hex) and the JSON-able description it hashes.

    The description holds :func:`framekd.graph.graph_hash`, the framelet settings, ε, the
    dtype, the mode and its parameters (the sketch's width and seed; a hash of x for
    ``features``).
    """
    desc: dict[str, Any] = {
        "format": _CACHE_FORMAT,
        "graph": graph_hash(edge_index, num_nodes),
        "num_nodes": int(num_nodes),
        "framelet": framelet.to_dict(),
        "dtype": str(dtype).replace("torch.", ""),
        "mode": spec.mode,
        "powers": spec.powers,
        "epsilon": float(epsilon),
    }
    if spec.mode == "sketch":
        desc.update(sketch_dim=spec.sketch_dim, seed=spec.seed)
    if spec.mode == "features" and x is not None:
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
    spec: KnowledgeSpec | None = None,
    *,
    cache_dir: str | os.PathLike | None,
    operator: FrameletOperator | None = None,
    framelet: FrameletSpec | Mapping[str, Any] | None = None,
    epsilon: float = 0.0,
    memory_budget: int | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    **options: Any,
) -> Tensor:
    """:func:`graph_knowledge` with an on-disk cache in ``cache_dir``.

    The operator is ``operator`` (its settings and ε) or the cached default one of
    ``framelet``, ``epsilon``, ``dtype`` on ``device``. The file is
    ``cache_dir/knowledge-<key>.safetensors`` (see :func:`knowledge_key`), written
    atomically with its key, shape and a checksum in the metadata; a corrupt, stale or
    tampered file is reported with a :class:`~framekd.errors.FramekdWarning` and rebuilt.
    ``cache_dir=None`` computes without caching. The result is on the operator's device.
    """
    spec = KnowledgeSpec(**{**(asdict(spec) if spec is not None else {}), **options})
    if operator is None:
        ensure_valid(edge_index, num_nodes)
        operator = _operator_for(edge_index, num_nodes, None, None,
                                 FrameletSpec.coerce(framelet), epsilon, dtype)
        if device is not None and torch.device(device) != operator.device:
            operator = framelet_operator(edge_index, num_nodes, operator.spec,
                                         epsilon=epsilon, dtype=dtype, device=device)
    key, desc = knowledge_key(edge_index, num_nodes, x, spec, framelet=operator.spec,
                              epsilon=operator.epsilon, dtype=operator.dtype)
    path = None if cache_dir is None else Path(cache_dir) / f"knowledge-{key}.safetensors"
    if path is not None and path.exists():
        cached = _load_cached(path, key)
        if cached is not None:
            return cached.to(operator.device)
    out = graph_knowledge(edge_index, num_nodes, x, spec, operator=operator,
                          memory_budget=memory_budget)
    if path is not None:
        from framekd.io import save_tensors

        meta = {
            "key": key,
            "description": json.dumps(desc, sort_keys=True),
            "shape": json.dumps(list(out.shape)),
            "checksum": _checksum(out),
            "lambda_max": repr(operator.transform.lambda_max),
            "channels": json.dumps(operator.transform.channels),
        }
        save_tensors(path, {"knowledge": out}, meta)
    return out


class KnowledgeTransform(BaseTransform):
    r"""Attach graph knowledge :math:`K_c^k M` to a :class:`~torch_geometric.data.Data`.

    Sets ``data.knowledge`` (``[C, powers, N, width]``, see :func:`graph_knowledge`) and
    ``data.knowledge_channels`` (the framelet channels, in order). The graph must be
    canonical (:func:`framekd.graph.canonicalize`); ``mode="features"`` uses ``data.x``.

    Args:
        spec: the :class:`KnowledgeSpec`.
        cache_dir: folder of the on-disk cache (:func:`cached_graph_knowledge`); ``None``
            disables caching.
        epsilon, memory_budget: as in :func:`graph_knowledge`.
        device: where to compute (the result stays there).
        framelet: the :class:`~framekd.framelets.FrameletSpec`.
        **options: fields of :class:`KnowledgeSpec` (``mode``, ``powers``, ``sketch_dim``,
            ``seed``) or of :class:`~framekd.framelets.FrameletSpec` (``filters``,
            ``levels``, ...).

    Example::

        data = KnowledgeTransform(mode="sketch", powers=2, cache_dir="cache")(data)
    """

    def __init__(
        self,
        spec: KnowledgeSpec | None = None,
        *,
        epsilon: float = 0.0,
        memory_budget: int | None = None,
        cache_dir: str | os.PathLike | None = None,
        device: torch.device | str | None = None,
        framelet: FrameletSpec | Mapping[str, Any] | None = None,
        **options: Any,
    ) -> None:
        mine = {k: options.pop(k) for k in list(options) if k in KnowledgeSpec.__dataclass_fields__}
        # Validated here, before any data.
        self.spec = KnowledgeSpec(**{**(asdict(spec) if spec is not None else {}), **mine})
        self.framelet = FrameletSpec.coerce(framelet, **options)
        self.epsilon, self.memory_budget = epsilon, memory_budget
        self.cache_dir, self.device = cache_dir, device

    def forward(self, data: Data) -> Data:
        if "edge_index" not in data or data.num_nodes is None:
            raise ConfigError("KnowledgeTransform needs data.edge_index and data.num_nodes")
        x = data.x if self.spec.mode == "features" else None
        if self.spec.mode == "features" and x is None:
            raise ConfigError("mode='features' needs node features: data.x is missing")
        data.knowledge = cached_graph_knowledge(
            data.edge_index, data.num_nodes, x, self.spec, cache_dir=self.cache_dir,
            framelet=self.framelet, epsilon=self.epsilon, memory_budget=self.memory_budget,
            device=self.device,
        )
        data.knowledge_channels = self.framelet.channels
        return data

    def __repr__(self) -> str:
        f = self.framelet
        return (
            f"{self.__class__.__name__}(mode={self.spec.mode!r}, powers={self.spec.powers}, "
            f"filters={f.filters!r}, levels={f.levels}, order={f.order}, "
            f"cache_dir={self.cache_dir!r})"
        )
