r"""Training: teachers on hard labels, students by knowledge distillation (docs/SPEC.md §6).

* :func:`train_teacher` trains a teacher full-batch with cross-entropy on the training nodes
  and returns its log-probabilities on **all** nodes (the soft labels).
* :func:`distill_student` trains a student on

  .. math::
      \mathcal{L} = \lambda\,\mathrm{CE}(s, y)\big|_{V_L}
                    + (1 - \lambda)\,T^2\,\mathrm{KL}\big(p_t^{T} \,\|\, p_s^{T}\big)\big|_{V_D},

  with :math:`V_L` the labelled training nodes and :math:`V_D` the distillation node set (all
  nodes by default: the transductive setting of GLNN and the paper), optionally in
  mini-batches over nodes. Defaults :math:`\lambda = 0`, :math:`T = 1`. The two terms are summed
  into one loss per step (the reference took two optimiser steps per epoch).

Both use Adam and early stopping on the validation score of the run's ``metric``
(:mod:`framekd.metrics`: accuracy by default, balanced accuracy or ROC-AUC): an epoch improves
when its validation score is higher than the best so far, or equal with a lower validation
loss (:class:`EarlyStopping`). Training stops after ``patience`` epochs without improvement,
and the best weights are restored **after** the loop. With ``seed`` set, dropout and batch
order are reproducible and the caller's global RNG state is left untouched.

Training never finishes with NaN: non-finite features, soft labels or graph knowledge, and a
loss or weights that become NaN/Inf (a learning rate or ε too large) raise
:class:`~framekd.errors.TrainingError` (:class:`~framekd.errors.GraphError` for the features)
naming the epoch and the setting to change, before anything is returned or saved.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from framekd.errors import ConfigError, GraphError, SplitError, TimeLimitError, TrainingError
from framekd.metrics import check_metric, score
from framekd.models.students import StudentOutput


@dataclass
class TrainResult:
    """Outcome of :func:`train_teacher` or :func:`distill_student`.

    Accuracies are in ``[0, 1]`` and measured with the restored best weights; ``val_score``
    and ``test_score`` are the same nodes' scores of ``metric`` (:mod:`framekd.metrics`; the
    accuracies themselves when the metric is accuracy). ``log_probs`` holds log-softmax
    outputs ``[N, classes]`` for all nodes (a teacher's soft labels); ``gates`` the student's
    gates on all nodes (``None`` for teachers and the MLP). ``history`` has one
    ``(train_loss, validation score)`` pair per epoch run.
    """

    val_acc: float
    test_acc: float
    train_acc: float
    best_epoch: int
    epochs: int
    seconds: float
    log_probs: Tensor
    gates: Tensor | None = None
    history: list[tuple[float, float]] = field(default_factory=list, repr=False)
    metric: str = "accuracy"
    val_score: float | None = None
    test_score: float | None = None

    def __post_init__(self) -> None:
        if self.val_score is None:
            self.val_score = self.val_acc
        if self.test_score is None:
            self.test_score = self.test_acc


def as_index(nodes: Tensor, num_nodes: int | None = None) -> Tensor:
    """Node set as an ``int64`` index tensor (a boolean mask is converted)."""
    nodes = torch.as_tensor(nodes)
    if nodes.dtype == torch.bool:
        return nodes.nonzero().view(-1)
    if nodes.dtype.is_floating_point:
        raise SplitError(f"node sets must be integer indices or boolean masks, got {nodes.dtype}")
    index = nodes.long().view(-1)
    if num_nodes is not None and index.numel() and (index.min() < 0 or index.max() >= num_nodes):
        raise SplitError(f"node index out of range [0, {num_nodes}) in a split or node set")
    return index


def _split_indices(split: Any, num_nodes: int) -> tuple[Tensor, Tensor, Tensor]:
    try:
        parts = split.train, split.val, split.test
    except AttributeError as err:
        raise SplitError(
            "split must have .train, .val and .test node sets (see framekd.splits.Split)"
        ) from err
    train, val, test = (as_index(p, num_nodes) for p in parts)
    if train.numel() == 0:
        raise SplitError("the split has no training nodes")
    if val.numel() == 0:
        raise SplitError("the split has no validation nodes; early stopping needs them")
    return train, val, test


def accuracy(logits: Tensor, y: Tensor, index: Tensor | None = None) -> float:
    """Fraction of nodes in ``index`` (all when ``None``) whose arg-max class equals ``y``."""
    pred = logits.argmax(dim=-1)
    if index is not None:
        pred, y = pred[index], y[index]
    if y.numel() == 0:
        return float("nan")
    return float((pred == y).float().mean())


def evaluate(log_probs: Tensor, y: Tensor, split: Any) -> dict[str, float]:
    """Accuracy on the ``train``, ``val`` and ``test`` nodes of ``split``."""
    train, val, test = _split_indices(split, log_probs.size(0))
    return {
        name: accuracy(log_probs, y, idx)
        for name, idx in (("train", train), ("val", val), ("test", test))
    }


def kd_loss(
    student_logits: Tensor,
    teacher_logp: Tensor,
    labels: Tensor,
    train_mask_or_idx: Tensor,
    *,
    lam: float = 0.0,
    T: float = 1.0,
) -> Tensor:
    r"""Distillation loss on a batch of :math:`B` nodes (the distillation node set):

    .. math::
        \lambda \cdot \frac{1}{|V_L|}\sum_{i \in V_L} -\log p_s(y_i \mid i)
        + (1 - \lambda)\,T^2 \cdot \frac{1}{B}\sum_{i=1}^{B}\sum_k
          p_t^T(k \mid i)\,\big(\log p_t^T(k \mid i) - \log p_s^T(k \mid i)\big),

    where :math:`p^T = \mathrm{softmax}(\cdot / T)` (the teacher's log-probabilities are
    tempered the same way) and :math:`V_L` are the batch rows selected by
    ``train_mask_or_idx`` (mask over the batch or indices into it). The CE term is 0 when the
    batch holds no labelled node. All tensors are aligned row by row.
    """
    if not 0.0 <= lam <= 1.0:
        raise ConfigError(f"lam must lie in [0, 1], got {lam}")
    if not T > 0:
        raise ConfigError(f"temperature T must be > 0, got {T}")
    loss = student_logits.new_zeros(())
    if lam > 0:
        idx = as_index(train_mask_or_idx)
        if idx.numel() > 0:
            loss = loss + lam * F.cross_entropy(student_logits[idx], labels[idx])
    if lam < 1:
        log_ps = F.log_softmax(student_logits / T, dim=-1)
        log_pt = F.log_softmax(teacher_logp / T, dim=-1)
        kl = F.kl_div(log_ps, log_pt, reduction="batchmean", log_target=True)
        loss = loss + (1 - lam) * T * T * kl
    return loss


class EarlyStopping:
    """Tracks the best epoch and a snapshot of its weights.

    An epoch is better when its validation score (of the run's metric, higher is better) is
    higher than the best so far, or equal with a lower validation loss; training stops after
    ``patience`` epochs in a row without a better one. :meth:`restore` loads the best
    weights back.
    """

    def __init__(self, model: nn.Module, patience: int) -> None:
        self.model, self.patience = model, patience
        self.best = (-math.inf, math.inf)
        self.best_epoch, self.bad, self.state = 0, 0, None

    def step(self, epoch: int, val_score: float, val_loss: float) -> bool:
        """Record one epoch; ``True`` when training should stop."""
        if val_score > self.best[0] or (val_score == self.best[0] and val_loss < self.best[1]):
            self.best, self.best_epoch, self.bad = (val_score, val_loss), epoch, 0
            self.state = copy.deepcopy(self.model.state_dict())
        else:
            self.bad += 1
        return self.bad >= self.patience

    def restore(self) -> None:
        if self.state is not None:
            self.model.load_state_dict(self.state)


def _check_schedule(epochs: int, patience: int) -> None:
    if epochs < 1:
        raise ConfigError(f"epochs must be >= 1, got {epochs}")
    if patience < 1:
        raise ConfigError(f"patience must be >= 1, got {patience}")


def _progress(epochs: int, progress: bool, desc: str):
    from tqdm.auto import tqdm

    # disable=None: tqdm draws only on a terminal, so a log file never holds bar redraws.
    return tqdm(range(1, epochs + 1), disable=None if progress else True, desc=desc,
                leave=False, unit="ep")


# ------------------------------------------------------------------ divergence guard
# A non-finite loss or weight stops training with a TrainingError naming the setting to
# change, instead of finishing with NaN accuracies and NaN soft labels.


def _fmt(value: float) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) else repr(value)


def _finite(t: Tensor) -> bool:
    return t.is_sparse or bool(torch.isfinite(t).all())


def _weights_finite(model: nn.Module) -> bool:
    params = [p.detach() for p in model.parameters()]
    return not params or bool(torch.stack([torch.isfinite(p).all() for p in params]).all())


def _check_inputs(role: str, x: Tensor, nodes: Tensor | None = None,
                  **others: Tensor | None) -> None:
    """Features and other inputs must be finite before any training (checked once); with
    ``nodes``, only those rows of ``teacher_logp`` (node dim 0) and ``knowledge`` (node dim 2)
    count: soft labels outside the distillation set may be NaN by design."""
    if not _finite(x):
        bad = ~torch.isfinite(x)
        row, col = (int(v) for v in bad.nonzero()[0])
        raise GraphError(
            f"{role} training: features x contain {int(bad.sum())} non-finite values (NaN or "
            f"Inf), first at node {row}, column {col}; impute or drop them before training"
        )
    hints = {
        "teacher_logp": "the teacher's soft labels contain NaN or Inf; retrain the teacher "
                        "(lower teacher.lr) and pass its log-probabilities",
        "knowledge": "the graph knowledge contains NaN or Inf: the framelet operator "
                     "overflowed; lower |teacher.epsilon| or check the framelet settings "
                     "and the feature scale",
    }
    for name, value in others.items():
        if value is None or _finite(value):
            continue
        if nodes is not None and _finite(value.index_select(0 if name == "teacher_logp" else 2,
                                                            nodes)):
            continue
        raise TrainingError(f"{role} training: {hints[name]}")


def _diverged(role: str, model: nn.Module, epoch: int, what: str, lr: float,
              weight_decay: float, first: bool) -> TrainingError:
    """The error for a loss or weights that became NaN/Inf at ``epoch`` (1-based); ``first``:
    the loss was computed before any optimiser step."""
    name = type(model).__name__
    if first and what.startswith("loss"):
        # Before the first update: the initial model's outputs are already non-finite, so the
        # learning rate is not the cause; the model's inputs or its graph operator are.
        given = model.__dict__.get("_given_operator")  # a framelet teacher's shared operator
        eps = getattr(given, "epsilon", None) or getattr(model, "epsilon", None)
        fix = (f"lower |{role}.epsilon| (now {_fmt(eps)}), which makes the framelet operator "
               "overflow, or scale the features" if eps else
               "scale the features down (they overflow the model) or check the framelet "
               "settings")
        return TrainingError(
            f"{role} {name}: the training loss is {what.split()[-1]} at epoch 1, before any "
            f"update (the untrained model's outputs are not finite); {fix}"
        )
    return TrainingError(
        f"{role} {name}: the training {what} at epoch {epoch}; lower {role}.lr (now "
        f"{_fmt(lr)})" + (f" or {role}.weight_decay (now {_fmt(weight_decay)})"
                          if weight_decay > 1 else "")
        + " or check the features"
    )


def _check_step(role: str, model: nn.Module, epoch: int, loss: float, lr: float,
                weight_decay: float, *, first: bool) -> None:
    """After an optimiser step: its loss (computed before the step) and the new weights."""
    if not math.isfinite(loss):
        raise _diverged(role, model, epoch, f"loss is {loss}", lr, weight_decay, first)
    if not _weights_finite(model):
        raise _diverged(role, model, epoch, "weights became NaN or infinite", lr,
                        weight_decay, first)


class _Seeded:
    """Context: fork the CPU (and current CUDA) RNG and seed it, when a seed is given."""

    def __init__(self, seed: int | None, device: torch.device) -> None:
        self.seed, self.device = seed, device

    def __enter__(self) -> torch.Generator | None:
        if self.seed is None:
            return None
        devices = []
        if self.device.type == "cuda":
            index = self.device.index
            devices = [torch.cuda.current_device() if index is None else index]
        self._fork = torch.random.fork_rng(devices=devices)
        self._fork.__enter__()
        torch.manual_seed(self.seed)
        gen = torch.Generator(device="cpu")
        gen.manual_seed(self.seed)
        return gen

    def __exit__(self, *exc: Any) -> None:
        if self.seed is not None:
            self._fork.__exit__(*exc)


@torch.no_grad()
def predict_teacher(model: nn.Module, data: Any) -> Tensor:
    """Log-probabilities ``[N, classes]`` of a teacher on all nodes, in eval mode."""
    was_training = model.training
    model.eval()
    try:
        return F.log_softmax(model(data.x, data.edge_index), dim=-1)
    finally:
        model.train(was_training)


def _check_deadline(deadline: float | None, role: str, epoch: int) -> None:
    if deadline is not None and time.monotonic() > deadline:
        raise TimeLimitError(f"{role} training passed its time limit before epoch {epoch}")


def train_teacher(
    model: nn.Module,
    data: Any,
    split: Any,
    *,
    lr: float = 0.01,
    weight_decay: float = 5e-4,
    epochs: int = 500,
    patience: int = 50,
    seed: int | None = None,
    progress: bool = False,
    metric: str = "accuracy",
    deadline: float | None = None,
) -> TrainResult:
    """Train a teacher full-batch on the labelled training nodes of ``split``.

    ``data`` has ``x``, ``edge_index`` and ``y``; ``split`` has ``train``/``val``/``test``
    node sets (index tensors or masks). Cross-entropy on the training nodes, Adam, early
    stopping on the validation score of ``metric`` (:data:`framekd.metrics.METRICS`); the
    best weights are restored after the loop and the result carries the log-probabilities
    on all nodes. The model's initial weights are the caller's (seed before building it);
    ``seed`` makes dropout reproducible. ``deadline``, a :func:`time.monotonic` time: an
    epoch that would start after it raises :class:`~framekd.errors.TimeLimitError`.
    """
    _check_schedule(epochs, patience)
    check_metric(metric)
    train, val, test = (i.to(data.x.device) for i in _split_indices(split, data.x.size(0)))
    _check_inputs("teacher", data.x)
    y = data.y
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    stopper = EarlyStopping(model, patience)
    history: list[tuple[float, float]] = []
    start = time.perf_counter()
    with _Seeded(seed, data.x.device):
        bar = _progress(epochs, progress, "teacher")
        for epoch in bar:
            _check_deadline(deadline, "teacher", epoch)
            model.train()
            optimizer.zero_grad()
            loss = F.cross_entropy(model(data.x, data.edge_index)[train], y[train])
            loss.backward()
            optimizer.step()
            loss = float(loss.detach())
            _check_step("teacher", model, epoch, loss, lr, weight_decay, first=epoch == 1)
            logp = predict_teacher(model, data)
            val_score = score(metric, logp, y, val, where="validation")
            history.append((loss, val_score))
            bar.set_postfix(loss=f"{loss:.3f}", val=f"{val_score:.3f}", refresh=False)
            if stopper.step(epoch, val_score, float(F.nll_loss(logp[val], y[val]))):
                break
        bar.close()
    stopper.restore()
    seconds = time.perf_counter() - start
    logp = predict_teacher(model, data)
    return _result(logp, logp, y, (train, val, test), metric, stopper, history, seconds)


def _result(logits: Tensor, log_probs: Tensor, y: Tensor, sets: tuple[Tensor, Tensor, Tensor],
            metric: str, stopper: EarlyStopping, history: list[tuple[float, float]],
            seconds: float, gates: Tensor | None = None) -> TrainResult:
    """The :class:`TrainResult` of the restored best weights' ``logits`` (and their
    ``log_probs``) on all nodes."""
    train, val, test = sets
    val_acc, test_acc = accuracy(logits, y, val), accuracy(logits, y, test)
    same = metric == "accuracy"
    return TrainResult(
        val_acc=val_acc,
        test_acc=test_acc,
        train_acc=accuracy(logits, y, train),
        best_epoch=stopper.best_epoch,
        epochs=len(history),
        seconds=seconds,
        log_probs=log_probs,
        gates=gates,
        history=history,
        metric=metric,
        val_score=val_acc if same else score(metric, logits, y, val, where="validation"),
        test_score=test_acc if same else score(metric, logits, y, test, where="test"),
    )


def _feature_rows(student: nn.Module, x: Tensor, index: Tensor) -> Tensor:
    # framekd's students cut sparse batches from one CSR copy of x; any other module gets x[index].
    rows = getattr(student, "input_rows", None)
    return x[index] if rows is None else rows(x, index)


def _rows(knowledge: Tensor | None, index: Tensor | None) -> Tensor | None:
    if knowledge is None or index is None:
        return knowledge
    return knowledge[:, :, index]


@torch.no_grad()
def predict_student(
    student: nn.Module,
    x: Tensor,
    knowledge: Tensor | None = None,
    *,
    batch_size: int | None = None,
) -> StudentOutput:
    """A student's logits (and gates) on all ``N`` nodes, in eval mode, batched when asked.

    Gates are concatenated over the node dimension (``[N, C]`` or ``[K, N, C]``).
    """
    was_training = student.training
    student.eval()
    try:
        n = x.size(0)
        if batch_size is None or batch_size >= n:
            return student(x, knowledge)
        outs = []
        for i in range(0, n, batch_size):
            j = min(i + batch_size, n)
            rows = torch.arange(i, j, device=x.device)
            # A block's knowledge is a view: gathering it would copy all the knowledge once
            # more per pass, which costs more than a framelet student's own products.
            block = None if knowledge is None else knowledge[:, :, i:j]
            outs.append(student(_feature_rows(student, x, rows), block))
    finally:
        student.train(was_training)
    logits = torch.cat([o.logits for o in outs])
    gates = None if outs[0].gates is None else torch.cat([o.gates for o in outs], dim=-2)
    return StudentOutput(logits, gates)


def distill_student(
    student: nn.Module,
    data: Any,
    knowledge: Tensor | None,
    teacher_logp: Tensor,
    split: Any,
    *,
    lam: float = 0.0,
    T: float = 1.0,
    lr: float = 0.01,
    weight_decay: float = 5e-4,
    epochs: int = 500,
    patience: int = 50,
    batch_size: int | None = None,
    distill_nodes: Tensor | None = None,
    seed: int | None = None,
    progress: bool = False,
    metric: str = "accuracy",
    deadline: float | None = None,
) -> TrainResult:
    r"""Distil a teacher's soft labels (and, with ``lam > 0``, the hard labels) into a student.

    ``data`` has ``x`` ``[N, d]`` and ``y`` ``[N]``; ``knowledge`` is the full
    ``[C, K, N, width]`` graph knowledge (``None`` for the MLP); ``teacher_logp`` the
    teacher's log-probabilities ``[N, classes]`` (:attr:`TrainResult.log_probs`).

    ``distill_nodes`` (index or mask; default all nodes, transductive) is the node set
    :math:`V_D` the KL term runs over; an inductive setting passes the observed nodes. The CE
    term uses the training nodes of ``split``, which must then lie in ``distill_nodes``.
    With ``batch_size`` the distillation nodes are visited in shuffled mini-batches
    (one optimiser step each); otherwise each epoch is one full-batch step. Validation runs
    on all nodes after every epoch (batched with the same ``batch_size``); early stopping
    follows the validation score of ``metric`` (:data:`framekd.metrics.METRICS`).
    ``deadline`` as for :func:`train_teacher`.
    """
    _check_schedule(epochs, patience)
    check_metric(metric)
    x, y = data.x, data.y
    n = x.size(0)
    train, val, test = (i.to(x.device) for i in _split_indices(split, n))
    if teacher_logp.shape[0] != n:
        raise ConfigError(
            f"teacher_logp has {teacher_logp.shape[0]} rows but the graph has {n} nodes; "
            "pass the teacher's log-probabilities for all nodes"
        )
    if knowledge is not None and knowledge.size(2) != n:
        raise ConfigError(
            f"knowledge has {knowledge.size(2)} node rows (dim 2) but the graph has {n} nodes"
        )
    if batch_size is not None and batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1 or None, got {batch_size}")
    nodes = (
        torch.arange(n, device=x.device)
        if distill_nodes is None
        else as_index(distill_nodes, n).to(x.device)
    )
    is_train = torch.zeros(n, dtype=torch.bool, device=x.device)
    is_train[train] = True
    if lam > 0 and int(is_train[nodes].sum()) < train.numel():
        raise ConfigError(
            "with lam > 0 every training node must be in distill_nodes (the CE term is taken "
            "over the labelled nodes of each batch)"
        )
    teacher_logp = teacher_logp.to(x.device, x.dtype)
    _check_inputs("student", x, None if distill_nodes is None else nodes,
                  teacher_logp=teacher_logp, knowledge=knowledge)
    full = distill_nodes is None and batch_size is None
    optimizer = torch.optim.Adam(student.parameters(), lr=lr, weight_decay=weight_decay)
    stopper = EarlyStopping(student, patience)
    history: list[tuple[float, float]] = []
    start = time.perf_counter()
    with _Seeded(seed, x.device) as gen:
        bar = _progress(epochs, progress, type(student).__name__)
        for epoch in bar:
            _check_deadline(deadline, "student", epoch)
            student.train()
            if batch_size is None:
                batches = [nodes]
            else:
                perm = torch.randperm(nodes.numel(), generator=gen).to(nodes.device)
                batches = nodes[perm].split(batch_size)
            total = 0.0
            for batch in batches:
                if lam == 1.0 and not bool(is_train[batch].any()):
                    continue  # labels alone and none in this batch: nothing to learn from
                optimizer.zero_grad()
                rows = None if full else batch
                xb = x if full else _feature_rows(student, x, batch)
                out = student(xb, _rows(knowledge, rows))
                loss = kd_loss(
                    out.logits, teacher_logp[batch], y[batch], is_train[batch], lam=lam, T=T
                )
                loss.backward()
                optimizer.step()
                value = float(loss.detach())
                _check_step("student", student, epoch, value, lr, weight_decay,
                            first=epoch == 1 and batch is batches[0])
                total += value * batch.numel()
            out = predict_student(student, x, knowledge, batch_size=batch_size)
            val_score = score(metric, out.logits, y, val, where="validation")
            history.append((total / nodes.numel(), val_score))
            bar.set_postfix(loss=f"{history[-1][0]:.3f}", val=f"{val_score:.3f}",
                            refresh=False)
            val_loss = float(F.cross_entropy(out.logits[val], y[val]))
            if stopper.step(epoch, val_score, val_loss):
                break
        bar.close()
    stopper.restore()
    seconds = time.perf_counter() - start
    out = predict_student(student, x, knowledge, batch_size=batch_size)
    return _result(out.logits, F.log_softmax(out.logits, dim=-1), y, (train, val, test), metric,
                   stopper, history, seconds, out.gates)
