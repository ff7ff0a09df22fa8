"""One experiment on P processes: :func:`run_distributed`, and ``framekd run`` under torchrun.

:func:`run_distributed` follows :func:`framekd.experiment.run_experiment` step for step and
reuses its pieces (:func:`~framekd.experiment.prepare_graph`,
:func:`~framekd.experiment.knowledge_spec`, :func:`~framekd.experiment.graph_operator`, the
teacher trainer and the seed writer), with three parts spread over the ranks:

* the graph knowledge: each rank computes its column block and keeps the rows of its node
  shard (:func:`~framekd.distributed.shard.sharded_knowledge`), cached per rank on disk;
* the students (MLP, GLNN, FMLP-S, FMLP-O): data-parallel with DDP on the shards' rows
  (:func:`~framekd.distributed.train.distill_ddp`);
* the test and validation metrics: reduced over the ranks.

The graph, its features and labels are replicated: every rank loads (or generates) the same
graph. The teachers (the distilled one and the comparison rows) are trained on every rank,
identically and seeded, on the full graph: a framelet teacher's layer mixes every node with
its neighbours through the framelet operator and a non-linearity, so a node shard cannot be
trained without its neighbours' hidden states at every layer (a halo exchange per layer and
step) — the teacher stays single-process, replicated so that no rank idles in a collective
while it trains. The students distil rank 0's soft labels, scattered by rows, so every rank
uses one teacher even on machines whose kernels round differently.

Only rank 0 writes: ``config.yaml``, the seeds' folders (same files as one process) and
``metrics.json`` (same schema, ``world_size`` = P). Resume works as for one process: rank 0
inspects each seed (:func:`framekd.results.inspect_seed`), claims the ones to run and tells
the others; the inductive setting is single-process only.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor
from torch_geometric.data import Data

from framekd.config import RunConfig
from framekd.distributed.env import (
    DistContext,
    current_context,
    init_from_env,
    launched,
    make_rank_log,
    peer_errors,
    shutdown,
)
from framekd.distributed.shard import Shard, cached_sharded_knowledge, gather_rows, scatter_rows
from framekd.distributed.train import distill_ddp, reduced_max
from framekd.errors import ConfigError
from framekd.framelets import FrameletOperator
from framekd.models.registry import DISTILLED_MLP, reads_knowledge

#: Seed status broadcast by rank 0: finished (skip), to run, held by another process.
_DONE, _RUN, _BUSY = 0, 1, 2


def _status(ctx: DistContext, code: int) -> int:
    import torch.distributed as dist

    t = torch.tensor([code], device=ctx.device)
    if ctx.distributed:
        dist.broadcast(t, src=0)
    return int(t)


#: How long the other ranks wait for rank 0 to prepare the graph (load, SDRF) before giving
#: up; longer than the collective timeout, since SDRF on a large graph takes a while. A rank
#: 0 that dies ends the wait at once.
PREPARE_TIMEOUT = 4 * 3600.0


def _wait_for_main(ctx: DistContext) -> None:
    """Every rank waits here until rank 0 arrives (gloo: a monitored barrier with
    :data:`PREPARE_TIMEOUT`; nccl: a barrier with the group's timeout)."""
    import datetime

    import torch.distributed as dist

    if not ctx.distributed:
        return
    if ctx.backend == "gloo":
        dist.monitored_barrier(timeout=datetime.timedelta(seconds=max(PREPARE_TIMEOUT,
                                                                      ctx.timeout)))
    else:
        dist.barrier()


def _distil(name: str, data: Data, shard: Shard, knowledge: Tensor,
            logp: Tensor, split: Any, rc: RunConfig, seed: int, progress: bool,
            full_shape: tuple[int, ...], lam: float | None = None,
            ) -> tuple[torch.nn.Module, dict[str, Any], Tensor | None]:
    """One student on the shards (the row of :func:`framekd.experiment._distil`)."""
    from framekd.distill import predict_student
    from framekd.models import student_from_config
    from framekd.timing import median_time

    s, dev = rc.student.for_model(name), data.x.device
    torch.manual_seed(seed)
    student = student_from_config(name, rc, data.x.size(1), int(data.num_classes),
                                  knowledge_shape=full_shape).to(dev)
    x, y = data.x[shard.lo:shard.hi], data.y[shard.lo:shard.hi]
    k = knowledge if reads_knowledge(name) else None
    res = distill_ddp(student, x, y, k, logp, split, shard,
                      lam=s.lam if lam is None else lam, T=s.temperature, lr=s.lr,
                      weight_decay=s.weight_decay, epochs=s.epochs, patience=s.patience,
                      batch_size=s.batch_size, seed=seed, progress=progress)
    infer = median_time(lambda: predict_student(student, x, k, batch_size=s.batch_size),
                        repeats=5, warmup=1, device=dev)
    row = {"accuracy": res.test_acc, "val_accuracy": res.val_acc,
           "train_seconds": res.seconds,
           # Every rank predicts its rows at once: the slowest rank's time.
           "inference_seconds": reduced_max(infer, shard, dev), "best_epoch": res.best_epoch}
    gates = None
    if res.gates is not None:
        gates = gather_rows(res.gates, shard, dim=res.gates.dim() - 2)
    return student, {"role": "student", **row}, gates


def run_seed_distributed(
    data: Data, knowledge: Tensor, shard: Shard, rc: RunConfig, seed: int, seed_dir: Path,
    ctx: DistContext, *, operator: FrameletOperator, full_shape: tuple[int, ...],
    progress: bool = False,
) -> Any:
    """Teacher (replicated), comparison teachers (replicated) and every student (DDP) of one
    seed; rank 0 writes ``seed_dir`` as :func:`framekd.experiment.run_seed` does and returns
    the :class:`~framekd.results.SeedResult` (the other ranks return ``None``)."""
    from framekd.experiment import _save_seed, _train_teacher, _Trained
    from framekd.results import SeedResult
    from framekd.splits import make_split

    split = make_split(data, rc.protocol, seed)
    trained = _Trained()
    tname = rc.teacher.name
    teacher, row, logp = _train_teacher(tname, data, split, rc, seed, progress, operator)
    trained.models[tname] = (teacher, {"role": "teacher", **row})
    trained.teacher_logp = logp
    for name in rc.baselines:
        if name != tname:
            model, row, _ = _train_teacher(name, data, split, rc, seed, progress, operator)
            trained.models[name] = (model, {"role": "teacher", **row})
    local_logp = scatter_rows(logp if ctx.is_main else None, shard, (logp.size(1),),
                              logp.dtype, logp.device)
    args = (data, shard, knowledge, local_logp, split, rc, seed, progress, full_shape)
    for name in rc.student.names:
        if name == "mlp":
            # The plain MLP learns from labels alone; GLNN is the same MLP distilled.
            model, row, _ = _distil("mlp", *args, lam=1.0)
            trained.models["mlp"] = (model, row)
            out_name = DISTILLED_MLP
        else:
            out_name = name
        model, row, gates = _distil(out_name, *args)
        trained.models[out_name] = (model, row)
        if gates is not None:
            trained.gates[out_name] = gates
    if not ctx.is_main:
        return None
    result = SeedResult(seed=seed, notes=list(split.notes),
                        models={n: r for n, (_, r) in trained.models.items()})
    _save_seed(seed_dir, rc, data, result, trained, full_shape,
               {"train": split.train, "val": split.val, "test": split.test}, trained.gates)
    return result


def run_distributed(
    cfg: RunConfig | dict[str, Any],
    out_dir: str | Path,
    *,
    data: Data | None = None,
    force: bool = False,
    progress: bool = True,
    cache_dir: str | Path | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any] | None:
    """:func:`framekd.experiment.run_experiment` over the ranks of the default process group
    (joined from torchrun's environment when it is not yet; one process is a group of one).

    Every rank calls it with the same arguments. Returns the metrics on rank 0 (written to
    ``out_dir/metrics.json`` with ``world_size``), ``None`` on the other ranks.

    Raises:
        ConfigError: ``setting: inductive`` or a ``metric`` other than accuracy
            (single-process only), or a graph without features or labels.
        DistributedError: the process group cannot be joined, or a peer stopped answering.
    """
    from framekd.experiment import _typed

    rc = _typed(cfg)
    if rc.setting != "transductive":
        raise ConfigError(f"setting {rc.setting!r} runs in one process only; start it without "
                          "torchrun / --nproc")
    metric = rc.raw.get("metric", "accuracy")
    if metric != "accuracy":
        # The students' scores are reduced as counts of correct predictions; other metrics
        # (balanced accuracy, ROC-AUC) would need per-class counts or gathered scores.
        raise ConfigError(f"metric {metric!r} is computed in one process only; with torchrun "
                          "/ --nproc use metric accuracy")
    ctx = current_context(rc.device)
    with peer_errors(ctx):
        return _run(rc, Path(out_dir), ctx, data=data, force=force, progress=progress,
                    cache_dir=cache_dir, log=log)


def _run(rc: RunConfig, out: Path, ctx: DistContext, *, data: Data | None, force: bool,
         progress: bool, cache_dir: str | Path | None, log: Callable[[str], None],
         ) -> dict[str, Any] | None:
    from tqdm.auto import tqdm

    from framekd.data.datasets import cache_root
    from framekd.experiment import graph_operator, knowledge_spec, prepare_graph
    from framekd.graph import canonicalize
    from framekd.io import write_json, write_text
    from framekd.results import (
        _collect_busy,
        aggregate,
        claim_seed,
        damaged_notice,
        inspect_seed,
        results_table,
        run_digest,
    )

    cache = Path(cache_dir) if cache_dir is not None else cache_root() / "artifacts"
    if data is not None:
        data = canonicalize(data)
    # Rank 0 first: it fills the dataset and SDRF caches once; the others then read them
    # instead of writing the same files (or running SDRF) side by side.
    if ctx.is_main:
        data, info = prepare_graph(rc, data, cache_dir=cache, log=log)
    _wait_for_main(ctx)
    if not ctx.is_main:
        data, info = prepare_graph(rc, data, cache_dir=cache, log=log)
    if data.x is None or data.y is None:
        raise ConfigError("the graph needs node features x and labels y to train on")
    if "num_classes" not in data:
        data.num_classes = int(data.y.max()) + 1
    data = data.to(ctx.device)
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        write_text(out / "config.yaml", yaml.safe_dump(dict(rc.raw), sort_keys=False))

    operator = graph_operator(rc, data)
    spec = knowledge_spec(rc, data)
    shard = Shard(ctx.rank, ctx.world_size, data.num_nodes)
    start = time.perf_counter()
    knowledge, _ = cached_sharded_knowledge(data.edge_index, data.num_nodes, data.x, spec,
                                            operator=operator, cache_dir=cache)
    k_seconds = reduced_max(time.perf_counter() - start, shard, ctx.device)
    full_shape = (operator.num_channels, spec.powers, data.num_nodes,
                  spec.width(data.num_nodes, data.x))
    log(f"knowledge rows [{shard.lo}, {shard.hi}) of {data.num_nodes}: "
        f"{list(knowledge.shape)} in {k_seconds:.2f} s")

    seeds, busy = [], []
    show = progress and ctx.is_main
    bar = tqdm(range(rc.seeds), desc=f"{rc.dataset} seeds", disable=None if show else True)
    for seed in bar:
        seed_dir = out / f"seed_{seed}"
        done = claim = damage = None
        code = _RUN
        if ctx.is_main:
            # A seed is skipped only when its files match their record; a damaged one runs again.
            done, damage = (None, None) if force else inspect_seed(seed_dir, rc.raw, seed)
            if done is None:
                claim = claim_seed(seed_dir)
                if claim is not None and not force:
                    done, damage = inspect_seed(seed_dir, rc.raw, seed)
            code = _DONE if done is not None else _BUSY if claim is None else _RUN
        code = _status(ctx, code)
        try:
            if code == _RUN:
                if damage is not None:
                    log(damaged_notice(seed, seed_dir, damage))
                done = run_seed_distributed(data, knowledge, shard, rc, seed, seed_dir, ctx,
                                            operator=operator, full_shape=full_shape,
                                            progress=show)
        finally:
            if claim is not None:
                claim.unlink(missing_ok=True)
        if code == _BUSY:
            busy.append(seed)
        elif ctx.is_main:
            seeds.append(done)
    if not ctx.is_main:
        return None
    seeds = sorted(seeds + _collect_busy(out, busy, rc.raw, log), key=lambda r: r.seed)
    extra: dict[str, Any] = {"knowledge_mode": spec.mode, "knowledge_seconds": k_seconds,
                             "knowledge_shape": list(full_shape), "config_hash": run_digest(rc),
                             **info}
    notes = sorted({n for s in seeds for n in s.notes})
    if notes:
        extra["split_notes"] = notes
    metrics = aggregate(rc.raw, seeds, extra, world_size=ctx.world_size)
    write_json(out / "metrics.json", metrics)
    write_text(out / "results.md", results_table(metrics))
    return metrics


# ----------------------------------------------------------------------------- command line


def relaunch(nproc: int, argv: list[str] | None = None) -> int:
    """Run this process's ``framekd`` command again as ``nproc`` workers of one machine:
    ``python -m torch.distributed.run --standalone --nproc-per-node nproc -m framekd ARGV``
    (``argv``: this process's arguments, ``sys.argv[1:]``). Returns torchrun's exit status."""
    if nproc < 1:
        raise ConfigError(f"--nproc must be >= 1, got {nproc}")
    argv = list(sys.argv[1:] if argv is None else argv)
    if not any(a == "--nproc" or a.startswith("--nproc=") for a in argv):
        raise ConfigError("--nproc relaunches the command line of this process, which has no "
                          "--nproc; call framekd.distributed.relaunch(nproc, argv) instead")
    # The workers run without --nproc (torchrun's environment says what they are); torchrun
    # would also take it for an abbreviation of its own --nproc-per-node.
    kept, skip = [], False
    for a in argv:
        if skip or a.startswith("--nproc="):
            skip = False
        elif a == "--nproc":
            skip = True
        else:
            kept.append(a)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc-per-node={nproc}", "-m", "framekd", *kept]
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")  # one thread per worker unless the user says
    return subprocess.call(cmd, env=env)


def handle_run(args: Any, cfg: dict[str, Any], out: Path) -> int | None:
    """The distributed branches of ``framekd run``: under torchrun, run this rank's part
    (rank 0 prints the table); with ``--nproc P > 1`` outside torchrun, start P workers.
    ``None``: a plain single-process run, which the caller does as before."""
    from framekd.cli import show_progress
    from framekd.results import results_table

    nproc = getattr(args, "nproc", None)
    if nproc is not None and nproc < 1:
        raise ConfigError(f"--nproc must be >= 1, got {nproc}")
    if not launched():
        return relaunch(nproc) if nproc is not None and nproc > 1 else None
    ctx = init_from_env(cfg.get("device", "cpu"))
    try:
        metrics = run_distributed(cfg, out, force=args.force,
                                  progress=show_progress(args.quiet) and ctx.is_main,
                                  log=make_rank_log(args.quiet, ctx))
    finally:
        shutdown()
    if metrics is not None:
        print(results_table(metrics))
        print(f"results written to {out}/ (metrics.json, results.md, config.yaml, seed_*/); "
              f"{ctx.world_size} processes")
    return 0
