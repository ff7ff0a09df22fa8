r"""Sharded graph knowledge: column blocks propagated per rank, rows exchanged by ``all_to_all``.

The knowledge :math:`K_c^k M` (:func:`framekd.knowledge.graph_knowledge`) is linear in the
columns of :math:`M`: column :math:`j` of :math:`K_c^k M` is :math:`K_c^k` applied to column
:math:`j` of :math:`M` alone. With P ranks, rank r

1. propagates its contiguous block of columns :math:`M_{:, J_r}` (features ``X``, the sketch
   ``R`` or identity columns) through the framelet polynomial over the full, replicated
   graph, giving :math:`K_c^k M_{:, J_r}` for every node;
2. sends rank q the rows :math:`I_q` of that block and receives from every rank q the block
   :math:`(K_c^k M)_{I_r, J_q}`, in one :func:`torch.distributed.all_to_all_single` per
   power and round (the blocks flattened, with split sizes: gloo's list ``all_to_all``
   needs tensors of equal sizes, and blocks differ by a row or a column; gloo and nccl
   both support ``all_to_all_single`` with split sizes);

so that it ends with :math:`(K_c^k M)_{I_r, :}`, the knowledge rows of its node shard
:math:`I_r` (:func:`block_range`: contiguous, sizes differ by at most one). Nothing changes in
the maths: the sketch is drawn exactly as :func:`framekd.knowledge.sketch_matrix` draws it
(:func:`sketch_columns` streams the same generator and keeps the block's columns), and each
column passes through the same operator as in one process.

Memory per rank: the rows ``C·K·(N/P)·width`` it keeps plus one round's working set,
:math:`\approx 10\,C\,N\,b` values for ``b = min(width/P, block)`` columns (the
propagation's recurrence terms, the block sent and the rows received); the operator and the
edges are replicated. Traffic: each rank sends and receives ``C·K·N·width·(P-1)/P²`` values.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from framekd.errors import ConfigError, FramekdWarning
from framekd.framelets import FrameletOperator
from framekd.knowledge import (
    _BLOCK_BYTES,
    KnowledgeSpec,
    _check_budget,
    checked_inputs,
    knowledge_key,
)

_SHARD_FORMAT = "framekd-knowledge-shard-1"
#: Values of the sketch drawn at once by :func:`sketch_columns`.
_SKETCH_CHUNK = 1 << 22


def block_range(total: int, parts: int, index: int) -> tuple[int, int]:
    """The contiguous block ``[lo, hi)`` of ``total`` items that part ``index`` of ``parts``
    holds: ``lo = ⌊index·total/parts⌋``; block sizes differ by at most one."""
    if parts < 1 or not 0 <= index < parts:
        raise ConfigError(f"part {index} of {parts} does not exist")
    return index * total // parts, (index + 1) * total // parts


@dataclass(frozen=True)
class Shard:
    """The node rows ``[lo, hi)`` of ``num_nodes`` that rank ``rank`` of ``world_size`` holds."""

    rank: int
    world_size: int
    num_nodes: int

    @property
    def lo(self) -> int:
        return block_range(self.num_nodes, self.world_size, self.rank)[0]

    @property
    def hi(self) -> int:
        return block_range(self.num_nodes, self.world_size, self.rank)[1]

    @property
    def size(self) -> int:
        return self.hi - self.lo

    def sizes(self) -> list[int]:
        """Rows of every rank, in rank order."""
        return [b - a for a, b in (block_range(self.num_nodes, self.world_size, q)
                                   for q in range(self.world_size))]

    def local(self, index: Tensor) -> Tensor:
        """The entries of a global node index that fall in this shard, as local rows."""
        index = index.view(-1)
        return index[(index >= self.lo) & (index < self.hi)] - self.lo


def _group_info() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def default_block(num_nodes: int, num_channels: int, width: int, dtype: torch.dtype) -> int:
    """Columns per round: about 1 GiB of working memory (8·C·N values per column), as
    :func:`framekd.knowledge.graph_knowledge` aims at, but without its floor of 32 columns:
    a rank propagates over all N nodes, and on large graphs the working set, not the
    per-pass overhead, is what limits it (1 column at 10⁸ nodes is already ~7 GB)."""
    size = torch.empty((), dtype=dtype).element_size()
    fit = _BLOCK_BYTES // max(1, 8 * num_channels * num_nodes * size)
    return max(1, min(max(width, 1), int(fit)))


def sketch_columns(
    num_nodes: int, sketch_dim: int, start: int, stop: int, *, seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    r"""Columns ``[start, stop)`` of :func:`framekd.knowledge.sketch_matrix`, ``[N, stop-start]``,
    without the full ``[N, m]`` matrix in memory.

    ``sketch_matrix`` draws a float32 ``randn`` of N rounded up to 16 rows and cuts it; the
    CPU generator fills such a tensor in order, 16 values at a time, so drawing the same rows
    in chunks of a multiple of 16 rows reproduces it value for value. Only the wanted
    columns of each chunk are kept.
    """
    gen = torch.Generator().manual_seed(int(seed))
    total = -(-int(num_nodes) // 16) * 16
    rows = 16 * max(1, _SKETCH_CHUNK // (16 * sketch_dim))
    scale = math.sqrt(sketch_dim)
    out = torch.empty(num_nodes, stop - start, dtype=dtype)
    for i in range(0, total, rows):
        take = min(rows, total - i)
        r = torch.randn(take, sketch_dim, generator=gen, dtype=torch.float32)
        keep = min(take, num_nodes - i)
        out[i:i + keep] = (r[:keep, start:stop] / scale).to(dtype)
    return out


def _source_block(spec: KnowledgeSpec, n: int, x: Tensor | None, start: int, stop: int,
                  dtype: torch.dtype, device: torch.device) -> Tensor:
    """Columns ``[start, stop)`` of M (sketch, features or identity), ``[N, stop-start]``."""
    if spec.mode == "sketch":
        block = sketch_columns(n, spec.sketch_dim, start, stop, seed=spec.seed, dtype=dtype)
        return block.to(device)
    if spec.mode == "features":
        return x.detach()[:, start:stop].to(device=device, dtype=dtype).contiguous()
    m = torch.zeros((n, stop - start), dtype=dtype, device=device)
    idx = torch.arange(start, stop, device=device)
    m[idx, idx - start] = 1.0
    return m


def sharded_knowledge(
    edge_index: Tensor,
    num_nodes: int,
    x: Tensor | None = None,
    spec: KnowledgeSpec | None = None,
    *,
    operator: FrameletOperator,
    block_size: int | None = None,
    memory_budget: int | None = None,
) -> Tensor:
    r"""This rank's rows of the graph knowledge :math:`K_c^k M`, ``[C, K, hi-lo, width]``.

    Every rank of the default process group calls it with the same graph, ``x`` and
    ``spec``; rank r gets the rows ``[lo, hi)`` of :class:`Shard` (``r``, P, N). Without a
    process group (one process) the result is the whole :func:`graph_knowledge`.

    Args:
        edge_index: canonical ``[2, E]`` edges (replicated on every rank).
        num_nodes: N.
        x: node features ``[N, d]`` (``features`` mode; replicated).
        spec: the :class:`~framekd.knowledge.KnowledgeSpec`.
        operator: the graph's :class:`~framekd.framelets.FrameletOperator` (the teacher's).
        block_size: columns propagated per round (default :func:`default_block`: about
            1 GiB of working memory).
        memory_budget: bytes this rank's rows may take (default 4 GiB), checked first.

    Returns:
        ``out[c, k-1, i]`` = knowledge of node ``lo + i`` for channel c and power k, equal to
        ``graph_knowledge(...)[:, :, lo:hi]`` up to float rounding.
    """
    import torch.distributed as dist

    spec = checked_inputs(edge_index, num_nodes, x, spec, {})
    if operator.num_nodes != num_nodes:
        raise ConfigError(f"the operator was built for {operator.num_nodes} nodes but the graph "
                          f"has {num_nodes}; build it on this graph")
    rank, world = _group_info()
    width = spec.width(num_nodes, x)
    c, k, dt, dev = operator.num_channels, spec.powers, operator.dtype, operator.device
    shard = Shard(rank, world, num_nodes)
    rows = [block_range(num_nodes, world, q) for q in range(world)]
    cols = [block_range(width, world, q) for q in range(world)]
    widest = max(b - a for a, b in cols)
    block = block_size or default_block(num_nodes, c, widest, dt)
    # The budget of one process holding N/P rows (the estimate's block term is per round).
    _check_budget(spec.mode, shard.size, c, k, width, dt, 0, memory_budget)
    rounds = max(1, math.ceil(widest / block))

    def chunk(q: int, j: int) -> tuple[int, int]:
        a, b = cols[q]
        lo, hi = block_range(b - a, rounds, j)
        return a + lo, a + hi

    out = torch.empty((c, k, shard.size, width), dtype=dt, device=dev)
    with torch.no_grad():
        for j in range(rounds):
            start, stop = chunk(rank, j)
            if stop > start:
                m = _source_block(spec, num_nodes, x, start, stop, dt, dev)
                powers = operator.powers(m, k)
            else:  # fewer columns than rounds on this rank: it still takes part in the exchange
                powers = (torch.empty((c, num_nodes, 0), dtype=dt, device=dev) for _ in range(k))
            for p, v in enumerate(powers):
                if world == 1:
                    out[:, p, :, start:stop] = v
                    continue
                # gloo's list all_to_all wants equal sizes; blocks differ by a row or a
                # column, so the blocks travel flattened through one all_to_all_single.
                send = torch.cat([v[:, a:b].reshape(-1) for a, b in rows])
                widths = [hi - lo for lo, hi in (chunk(q, j) for q in range(world))]
                recv = torch.empty(c * shard.size * sum(widths), dtype=dt, device=dev)
                dist.all_to_all_single(
                    recv, send, output_split_sizes=[c * shard.size * w for w in widths],
                    input_split_sizes=[c * (b - a) * (stop - start) for a, b in rows])
                offset = 0
                for q, w in enumerate(widths):
                    lo, hi = chunk(q, j)
                    size = c * shard.size * w
                    out[:, p, :, lo:hi] = recv[offset:offset + size].view(c, shard.size, w)
                    offset += size
                del send, recv
    return out


# ----------------------------------------------------------------------------- rows


def gather_rows(local: Tensor, shard: Shard, dim: int = 0) -> Tensor | None:
    """Rank 0 gets the shards' rows concatenated along ``dim`` (in rank order); the others
    ``None``. The shards differ by at most one row; they are padded to the largest for the
    collective."""
    import torch.distributed as dist

    if shard.world_size == 1:
        return local
    sizes = shard.sizes()
    pad = max(sizes) - local.size(dim)
    shape = list(local.shape)
    shape[dim] = max(sizes)
    padded = torch.cat([local, local.new_zeros(*shape[:dim], pad, *shape[dim + 1:])], dim)
    parts = [torch.empty_like(padded) for _ in sizes] if shard.rank == 0 else None
    dist.gather(padded, parts, dst=0)
    if shard.rank != 0:
        return None
    return torch.cat([p.narrow(dim, 0, s) for p, s in zip(parts, sizes, strict=True)], dim)


def scatter_rows(full: Tensor | None, shard: Shard, shape: tuple[int, ...],
                 dtype: torch.dtype, device: torch.device) -> Tensor:
    """Rank 0's ``full`` ``[N, *shape]`` cut into the shards' rows: every rank gets its
    ``[hi-lo, *shape]`` (the others pass ``full=None``)."""
    import torch.distributed as dist

    if shard.world_size == 1:
        return full
    sizes = shard.sizes()
    most = max(sizes)
    out = torch.empty((most, *shape), dtype=dtype, device=device)
    parts = None
    if shard.rank == 0:
        parts = []
        for q, s in enumerate(sizes):
            lo, hi = block_range(shard.num_nodes, shard.world_size, q)
            part = torch.zeros((most, *shape), dtype=dtype, device=device)
            part[:s] = full[lo:hi]
            parts.append(part)
    dist.scatter(out, parts, src=0)
    return out[:shard.size]


# ----------------------------------------------------------------------------- shard files


def shard_path(cache_dir: str | Path, key: str, shard: Shard) -> Path:
    """``cache_dir/knowledge-<key>.rows-<lo>-<hi>.pt``: one rank's rows of one knowledge."""
    return Path(cache_dir) / f"knowledge-{key}.rows-{shard.lo}-{shard.hi}.pt"


def _digest(t: Tensor) -> str:
    data = t.detach().cpu().contiguous()
    return hashlib.blake2b(data.view(torch.uint8).numpy().data, digest_size=16).hexdigest()


def save_shard(path: str | Path, rows: Tensor, key: str, shard: Shard) -> None:
    """Write a rank's knowledge rows atomically (``torch.save`` of tensors and strings only,
    read back with ``weights_only=True``), with the knowledge key, its rows and a checksum."""
    from framekd.io import atomic_path

    doc = {"format": _SHARD_FORMAT, "key": key, "rows": [shard.lo, shard.hi],
           "num_nodes": shard.num_nodes, "knowledge": rows.detach().cpu().contiguous(),
           "checksum": _digest(rows)}
    with atomic_path(path) as tmp:
        torch.save(doc, tmp)


def load_shard(path: str | Path, key: str, shard: Shard) -> Tensor | None:
    """The rows saved by :func:`save_shard`, memory mapped (pages are read on use), or
    ``None`` when the file is missing, or (with a warning) unreadable or not these rows."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        doc = torch.load(path, mmap=True, weights_only=True, map_location="cpu")
        rows = doc["knowledge"]
        ok = (doc.get("format") == _SHARD_FORMAT and doc.get("key") == key
              and list(doc.get("rows", ())) == [shard.lo, shard.hi]
              and doc.get("num_nodes") == shard.num_nodes and rows.size(2) == shard.size)
        why = "its key or rows do not match the request"
        if ok and doc.get("checksum") != _digest(rows):
            ok, why = False, "its checksum does not match its contents"
    except (RuntimeError, OSError, KeyError, TypeError, AttributeError, ValueError,
            EOFError) as err:
        ok, why = False, f"it cannot be read ({str(err).splitlines()[0] if str(err) else err})"
    if ok:
        return rows
    warnings.warn(f"knowledge shard {path} is unusable ({why}); recomputing it",
                  FramekdWarning, stacklevel=2)
    return None


def cached_sharded_knowledge(
    data_edge_index: Tensor, num_nodes: int, x: Tensor | None, spec: KnowledgeSpec, *,
    operator: FrameletOperator, cache_dir: str | Path | None,
    memory_budget: int | None = None,
) -> tuple[Tensor, bool]:
    """:func:`sharded_knowledge` with one file per rank in ``cache_dir``
    (:func:`shard_path`): a rank reloads its rows (memory mapped) when every rank has its
    file, else all ranks compute again (the exchange needs every rank). Returns the rows and
    whether they came from the cache."""
    import torch.distributed as dist

    rank, world = _group_info()
    shard = Shard(rank, world, num_nodes)
    key, _ = knowledge_key(data_edge_index, num_nodes, x, spec, framelet=operator.spec,
                           epsilon=operator.epsilon, dtype=operator.dtype)
    path = None if cache_dir is None else shard_path(cache_dir, key, shard)
    rows = load_shard(path, key, shard) if path is not None else None
    have = torch.tensor([0 if rows is None else 1], device=operator.device)
    if world > 1:
        dist.all_reduce(have, op=dist.ReduceOp.MIN)
    if int(have) == 1:
        return rows.to(operator.device), True
    rows = sharded_knowledge(data_edge_index, num_nodes, x, spec, operator=operator,
                             memory_budget=memory_budget)
    if path is not None:
        save_shard(path, rows, key, shard)
    return rows, False
