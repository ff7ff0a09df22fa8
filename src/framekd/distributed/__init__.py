"""Scale out on ``torch.distributed``: framekd under ``torchrun`` (docs/SCALING.md).

* :mod:`~framekd.distributed.env`: the process group from torchrun's environment (gloo on
  CPU, nccl on CUDA, a stated timeout ending in :class:`DistributedError`), rank-aware
  logging, :func:`is_main`; without torchrun everything is one process, as before.
* :mod:`~framekd.distributed.shard`: the graph knowledge computed by column blocks and
  redistributed by node rows (:func:`sharded_knowledge`), per-rank shard files.
* :mod:`~framekd.distributed.train`: data-parallel distillation of the students (DDP).
* :mod:`~framekd.distributed.runner`: :func:`run_distributed`, one experiment over the ranks,
  and the ``framekd run`` glue (torchrun workers, ``--nproc`` relaunch).

Launch: ``torchrun --nproc-per-node P -m framekd run ...`` or ``framekd run --nproc P ...``.
"""

from framekd.distributed.env import (
    DEFAULT_TIMEOUT,
    TIMEOUT_ENV,
    DistContext,
    DistributedError,
    current_context,
    init_from_env,
    is_main,
    launched,
    make_rank_log,
    peer_errors,
    rank_log,
    shutdown,
)
from framekd.distributed.runner import handle_run, relaunch, run_distributed, run_seed_distributed
from framekd.distributed.shard import (
    Shard,
    block_range,
    cached_sharded_knowledge,
    gather_rows,
    load_shard,
    save_shard,
    scatter_rows,
    shard_path,
    sharded_knowledge,
    sketch_columns,
)
from framekd.distributed.train import distill_ddp

__all__ = [
    "DEFAULT_TIMEOUT",
    "TIMEOUT_ENV",
    "DistContext",
    "DistributedError",
    "Shard",
    "block_range",
    "cached_sharded_knowledge",
    "current_context",
    "distill_ddp",
    "gather_rows",
    "handle_run",
    "init_from_env",
    "is_main",
    "launched",
    "load_shard",
    "make_rank_log",
    "peer_errors",
    "rank_log",
    "relaunch",
    "run_distributed",
    "run_seed_distributed",
    "save_shard",
    "scatter_rows",
    "shard_path",
    "sharded_knowledge",
    "shutdown",
    "sketch_columns",
]
