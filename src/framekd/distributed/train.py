r"""Data-parallel distillation of a student with DistributedDataParallel (DDP).

Every rank holds the rows of its node shard (:class:`~framekd.distributed.shard.Shard`):
features, labels, the teacher's soft labels and the graph knowledge. The loss is
:func:`framekd.distill.kd_loss` of the *global* batch, split into per-rank sums:

.. math::
    \mathcal L = \sum_r \Big[\frac{\lambda}{|B \cap V_L|}\sum_{i \in B_r \cap V_L}
        \mathrm{CE}_i + \frac{(1-\lambda)T^2}{|B|}\sum_{i \in B_r}\mathrm{KL}_i\Big],

with :math:`B_r` the batch rows rank r holds. DDP averages gradients over the P ranks, so each
rank back-propagates P times its term and the averaged gradient is the gradient of
:math:`\mathcal L`, the one-process gradient of the same batch. The batches are the same for
every P: each epoch every rank draws the same permutation of all N nodes from a generator
seeded with ``seed`` (as :func:`framekd.distill.distill_student` does), splits it into global
batches of ``batch_size`` and keeps the nodes of its shard; full-batch training is one global
batch of all N nodes.

Validation after every epoch: each rank counts the correct predictions and sums the
cross-entropy on its validation rows; one ``all_reduce`` gives the global accuracy and loss.
Rank 0 decides improvement and stopping (the rule of :func:`~framekd.distill.distill_student`:
higher validation accuracy, or equal with lower loss; ``patience`` epochs without) and
broadcasts the decision, so every rank snapshots and stops at the same epoch.

What is deterministic: for one P, the same seed gives the same weights on CPU (the
collectives reduce in a fixed order). Across P the batches, initial weights and loss are the
same, so with ``dropout = 0`` the training follows the one-process trajectory up to float
rounding of the sums (tests/test_distributed.py checks the weights after training against
one process, atol 1e-5). Dropout masks are drawn per rank (rank r seeds its generator with
``seed + r·2³²``; rank 0 with ``seed``), so with dropout > 0 runs with different P differ as
runs with different dropout draws do.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from framekd.distill import (
    TrainResult,
    _check_inputs,
    _check_schedule,
    _check_step,
    _feature_rows,
    _progress,
    _rows,
    _Seeded,
    _split_indices,
    predict_student,
)
from framekd.distributed.shard import Shard
from framekd.errors import ConfigError


def _all_reduce(t: Tensor, shard: Shard, op: str = "sum") -> Tensor:
    import torch.distributed as dist

    if shard.world_size > 1:
        dist.all_reduce(t, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
    return t


def _broadcast(t: Tensor, shard: Shard) -> Tensor:
    import torch.distributed as dist

    if shard.world_size > 1:
        dist.broadcast(t, src=0)
    return t


def reduced_max(value: float, shard: Shard, device: torch.device) -> float:
    """The largest ``value`` over the ranks (e.g. a wall time: the slowest rank's)."""
    return float(_all_reduce(torch.tensor([value], dtype=torch.float64, device=device),
                             shard, "max"))


class _SharedStopping:
    """Early stopping decided on rank 0 and broadcast; every rank keeps its own snapshot."""

    def __init__(self, model: nn.Module, patience: int, shard: Shard, device: torch.device):
        self.model, self.patience, self.shard, self.device = model, patience, shard, device
        self.best = (-1.0, float("inf"))
        self.best_epoch, self.bad, self.state = 0, 0, None

    def step(self, epoch: int, val_acc: float, val_loss: float) -> bool:
        better = val_acc > self.best[0] or (val_acc == self.best[0] and val_loss < self.best[1])
        decision = torch.tensor([1 if better else 0], device=self.device)
        better = bool(_broadcast(decision, self.shard))  # rank 0's call wins
        if better:
            self.best, self.best_epoch, self.bad = (val_acc, val_loss), epoch, 0
            self.state = copy.deepcopy(self.model.state_dict())
        else:
            self.bad += 1
        return self.bad >= self.patience

    def restore(self) -> None:
        if self.state is not None:
            self.model.load_state_dict(self.state)


def _counts(logits: Tensor, y: Tensor, index: Tensor) -> tuple[float, float]:
    """Correct predictions and summed cross-entropy on local rows ``index``."""
    if index.numel() == 0:
        return 0.0, 0.0
    correct = float((logits[index].argmax(-1) == y[index]).sum())
    return correct, float(F.cross_entropy(logits[index], y[index], reduction="sum"))


def distill_ddp(
    student: nn.Module,
    x: Tensor,
    y: Tensor,
    knowledge: Tensor | None,
    teacher_logp: Tensor,
    split: Any,
    shard: Shard,
    *,
    lam: float = 0.0,
    T: float = 1.0,
    lr: float = 0.01,
    weight_decay: float = 5e-4,
    epochs: int = 500,
    patience: int = 50,
    batch_size: int | None = None,
    seed: int | None = None,
    progress: bool = False,
) -> TrainResult:
    r"""Distil a teacher into ``student`` over the ranks of the default process group.

    Args:
        student: the student (same initial weights on every rank: seed before building it;
            DDP also broadcasts rank 0's).
        x, y: this rank's rows ``[n_r, d]`` and labels ``[n_r]`` (rows ``shard.lo..hi``).
        knowledge: this rank's knowledge rows ``[C, K, n_r, width]`` (``None`` for the MLP).
        teacher_logp: the teacher's log-probabilities of this rank's rows ``[n_r, classes]``.
        split: the *global* split (``train``/``val``/``test`` node sets of all N nodes).
        shard: this rank's :class:`~framekd.distributed.shard.Shard`.
        lam, T, lr, weight_decay, epochs, patience, batch_size, seed, progress: as in
            :func:`framekd.distill.distill_student` (transductive: every node distils).

    Returns:
        A :class:`~framekd.distill.TrainResult`: accuracies over all N nodes (reduced),
        ``seconds`` of the slowest rank, ``log_probs`` and ``gates`` of this rank's rows.
    """
    from torch.nn.parallel import DistributedDataParallel

    _check_schedule(epochs, patience)
    if not 0.0 <= lam <= 1.0:
        raise ConfigError(f"lam must lie in [0, 1], got {lam}")
    if not T > 0:
        raise ConfigError(f"temperature T must be > 0, got {T}")
    if batch_size is not None and batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1 or None, got {batch_size}")
    n, dev = shard.num_nodes, x.device
    if x.size(0) != shard.size or teacher_logp.size(0) != shard.size or (
            knowledge is not None and knowledge.size(2) != shard.size):
        raise ConfigError(f"rank {shard.rank} holds rows [{shard.lo}, {shard.hi}) of {n}: x, "
                          "teacher_logp and knowledge (dim 2) need that many rows")
    train, val, test = (i.to(dev) for i in _split_indices(split, n))
    is_train = torch.zeros(n, dtype=torch.bool, device=dev)
    is_train[train] = True
    local_train = is_train[shard.lo:shard.hi]
    local = {name: shard.local(idx) for name, idx in (("train", train), ("val", val),
                                                       ("test", test))}
    sizes = {"train": train.numel(), "val": val.numel(), "test": test.numel()}
    teacher_logp = teacher_logp.to(dev, x.dtype)
    _check_inputs("student", x, teacher_logp=teacher_logp, knowledge=knowledge)
    model = DistributedDataParallel(student) if shard.world_size > 1 else student
    optimizer = torch.optim.Adam(student.parameters(), lr=lr, weight_decay=weight_decay)
    stopper = _SharedStopping(student, patience, shard, dev)
    history: list[tuple[float, float]] = []
    log_pt_all = F.log_softmax(teacher_logp / T, dim=-1)
    start = time.perf_counter()
    with _Seeded(seed, dev) as gen:
        if seed is not None:
            # Dropout differs per rank (rank 0 draws as one process does); the batch
            # permutation comes from ``gen``, the same on every rank.
            torch.manual_seed(int(seed) + (shard.rank << 32))
        bar = _progress(epochs, progress, type(student).__name__)
        for epoch in bar:
            model.train()
            if batch_size is None:
                batches = [None]
            else:
                batches = torch.randperm(n, generator=gen).to(dev).split(batch_size)
            total = 0.0
            for step, batch in enumerate(batches):
                optimizer.zero_grad()
                if batch is None:  # full batch: every row of the shard, all N globally
                    rows, xb, kb = None, x, knowledge
                    b_glob, l_glob = n, sizes["train"]
                    labelled = local_train
                else:
                    mine = (batch >= shard.lo) & (batch < shard.hi)
                    rows = batch[mine] - shard.lo
                    xb = _feature_rows(student, x, rows)
                    kb = _rows(knowledge, rows)
                    b_glob, l_glob = batch.numel(), int(is_train[batch].sum())
                    labelled = local_train[rows]
                out = model(xb, kb).logits
                log_pt = log_pt_all if rows is None else log_pt_all[rows]
                yb = y if rows is None else y[rows]
                terms = []
                if lam > 0 and l_glob > 0:
                    ce = F.cross_entropy(out[labelled], yb[labelled], reduction="sum")
                    terms.append(lam * ce / l_glob)
                if lam < 1:
                    kl = F.kl_div(F.log_softmax(out / T, dim=-1), log_pt, reduction="sum",
                                  log_target=True)
                    terms.append((1 - lam) * T * T * kl / b_glob)
                # Sums over empty rows are 0 but still reach every parameter, as DDP needs;
                # a batch without any term (lam = 1, no labelled node) gets a zero one.
                loss = sum(terms) if terms else out.sum() * 0.0
                (loss * shard.world_size).backward()  # DDP averages; the sum is wanted
                optimizer.step()
                value = float(loss.detach())
                _check_step("student", student, epoch, value, lr, weight_decay,
                            first=epoch == 1 and step == 0)
                total += value * b_glob
            pred = predict_student(student, x, knowledge, batch_size=batch_size).logits
            correct, ce_sum = _counts(pred, y, local["val"])
            stats = _all_reduce(torch.tensor([correct, ce_sum, total], dtype=torch.float64,
                                             device=dev), shard)
            val_acc = float(stats[0]) / sizes["val"]
            history.append((float(stats[2]) / n, val_acc))
            bar.set_postfix(loss=f"{history[-1][0]:.3f}", val=f"{val_acc:.3f}", refresh=False)
            if stopper.step(epoch, val_acc, float(stats[1]) / sizes["val"]):
                break
        bar.close()
    stopper.restore()
    seconds = reduced_max(time.perf_counter() - start, shard, dev)
    out = predict_student(student, x, knowledge, batch_size=batch_size)
    counts = torch.tensor([_counts(out.logits, y, local[k])[0] for k in ("train", "val", "test")],
                          dtype=torch.float64, device=dev)
    counts = _all_reduce(counts, shard)
    acc = {k: float(c) / sizes[k] if sizes[k] else float("nan")
           for k, c in zip(("train", "val", "test"), counts, strict=True)}
    return TrainResult(
        val_acc=acc["val"], test_acc=acc["test"], train_acc=acc["train"],
        best_epoch=stopper.best_epoch, epochs=len(history), seconds=seconds,
        log_probs=F.log_softmax(out.logits, dim=-1), gates=out.gates, history=history,
    )
