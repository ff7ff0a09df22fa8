r"""Node-classification metrics: what early stopping, the tables and ``framekd tune`` score
(the run setting ``metric``, ``--metric``; docs/SPEC.md §6).

* ``accuracy``: the fraction of nodes whose arg-max class is their label;
* ``balanced_accuracy``: the mean recall over the classes present in the node set
  (:func:`sklearn.metrics.balanced_accuracy_score`), so a minority class weighs as much as
  a majority one;
* ``roc_auc``: the area under the ROC curve of the predicted probabilities
  (:func:`sklearn.metrics.roc_auc_score`). Binary tasks rank the nodes by the probability of
  class 1; with more classes it is the **one-vs-rest macro average**: the mean over the
  classes present in the node set of the binary ROC-AUC of "class k" against the rest,
  ranked by the probability of class k (a class absent from the set has no ROC curve and is
  left out; sklearn's ``multi_class="ovr", average="macro"`` when every class is present).

Accuracy needs no third-party code; the other two come from scikit-learn, a well-kept
reference implementation. Every metric is in ``[0, 1]``, higher is better.

A validation set can be drawn with other class shares than the nodes a model will be used
on (the fgkd protocol caps train and validation per class; its test set is the rest, and on
Physics 71 % of it is one class, BENCHMARKS.md §8.16). :func:`class_prior` estimates the
shares of the unlabelled nodes without reading a label, from a model's arg-max, and
:func:`prior_weighted_accuracy` scores a node set as if it had those shares
(``framekd tune --prior teacher``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from framekd.errors import ConfigError, SplitError

#: The metrics a run can be scored and early-stopped by.
METRICS = ("accuracy", "balanced_accuracy", "roc_auc")
#: How tables name them.
LABELS = {"accuracy": "accuracy", "balanced_accuracy": "balanced accuracy",
          "roc_auc": "ROC-AUC"}


def check_metric(metric: object) -> str:
    """``metric`` if it is one of :data:`METRICS`; else :class:`ConfigError`."""
    if not isinstance(metric, str) or metric not in METRICS:
        raise ConfigError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    return metric


def score(metric: str, logits: Tensor, y: Tensor, index: Tensor | None = None, *,
          where: str = "node") -> float:
    """``metric`` (:data:`METRICS`) of the predictions ``logits`` ``[N, classes]`` (scores or
    log-probabilities) against the labels ``y`` on the nodes ``index`` (all when ``None``).

    ``nan`` for an empty node set or non-finite predictions. Balanced accuracy and ROC-AUC
    leave out unlabelled nodes (label ``-1``, e.g. the hidden test labels of
    ``framekd tune``). ROC-AUC of a node set holding a single class is undefined:
    :class:`~framekd.errors.SplitError` naming ``where`` (e.g. ``"validation"``) and the
    class.
    """
    check_metric(metric)
    if index is not None:
        logits, y = logits[index], y[index]
    if metric == "accuracy":
        if y.numel() == 0:
            return float("nan")
        return float((logits.argmax(dim=-1) == y).float().mean())
    labelled = y >= 0
    logits, y = logits[labelled], y[labelled]
    if y.numel() == 0:
        return float("nan")
    logits = logits.detach()
    if not bool(torch.isfinite(logits).all()):
        return float("nan")
    labels = y.detach().cpu().numpy()
    if metric == "balanced_accuracy":
        from sklearn.metrics import balanced_accuracy_score

        pred = logits.argmax(dim=-1).cpu().numpy()
        with warnings.catch_warnings():
            # "y_pred contains classes not in y_true": those classes have no recall to
            # average, which is what the metric means on this node set.
            warnings.simplefilter("ignore")
            return float(balanced_accuracy_score(labels, pred))
    return _roc_auc(torch.softmax(logits.double(), dim=-1).cpu().numpy(), labels, where)


def _roc_auc(prob: np.ndarray, labels: np.ndarray, where: str) -> float:
    from sklearn.metrics import roc_auc_score

    present = np.unique(labels)
    if present.size < 2:
        raise SplitError(
            f"roc_auc is undefined on the {where} set: its {labels.size} node(s) all have "
            f"class {int(present[0])}; use a protocol whose sets hold every class (e.g. "
            "--protocol random, stratified) or --metric accuracy"
        )
    if prob.shape[1] == 2:
        return float(roc_auc_score(labels, prob[:, 1]))
    aucs = [roc_auc_score(labels == k, prob[:, k]) for k in present if 0 <= k < prob.shape[1]]
    return float(np.mean(aucs)) if aucs else math.nan


def class_prior(log_probs: Tensor, exclude: Sequence[Tensor] = ()) -> Tensor:
    r"""The arg-max class shares of ``log_probs`` ``[N, C]`` on the nodes outside ``exclude``.

    .. math::
        \hat\pi_c = \frac{|\{v \notin E : \arg\max_k p_{vk} = c\}|}{|\{v \notin E\}|}

    ``exclude`` (node-index tensors, e.g. the training and validation nodes) are the nodes
    whose shares are known or chosen by the protocol; the rest are the nodes the model is
    for. No label is read. :class:`ConfigError` when every node is excluded.
    """
    outside = torch.ones(log_probs.size(0), dtype=torch.bool, device=log_probs.device)
    for nodes in exclude:
        outside[nodes.to(log_probs.device)] = False
    count = int(outside.sum())
    if count == 0:
        raise ConfigError("class_prior: every node is excluded; there is nothing to "
                          "estimate the class shares on")
    pred = log_probs[outside].argmax(dim=-1)
    return torch.bincount(pred, minlength=log_probs.size(1)).double().cpu() / count


def prior_weighted_accuracy(logits: Tensor, y: Tensor, index: Tensor | None,
                            prior: Tensor) -> float:
    r"""Accuracy on the nodes ``index`` reweighted to the class shares ``prior`` ``[C]``.

    .. math::
        \mathrm{acc}_{\hat\pi} = \sum_{c \in P} \frac{\hat\pi_c}{\sum_{k \in P}
        \hat\pi_k}\, \mathrm{recall}_c, \qquad
        \mathrm{recall}_c = \frac{|\{v : y_v = c,\ \arg\max_k z_{vk} = c\}|}
        {|\{v : y_v = c\}|}

    over the classes :math:`P` present among the labelled nodes of ``index`` (unlabelled
    nodes, label ``-1``, are left out). It is the expected accuracy on nodes drawn with the
    shares ``prior`` if each class's recall is what the node set shows; with ``prior`` equal
    to the node set's own shares it is plain accuracy, with uniform shares balanced accuracy.
    ``nan`` for an empty node set, non-finite predictions or a prior without weight on the
    present classes.
    """
    if index is not None:
        logits, y = logits[index], y[index]
    labelled = y >= 0
    logits, y = logits[labelled].detach(), y[labelled]
    if y.numel() == 0 or not bool(torch.isfinite(logits).all()):
        return float("nan")
    classes = logits.size(-1)
    prior = torch.as_tensor(prior, dtype=torch.float64).cpu()
    if prior.numel() != classes or not bool(torch.isfinite(prior).all()) \
            or bool((prior < 0).any()):
        raise ConfigError(f"prior must hold {classes} finite non-negative class shares, "
                          f"got {prior.tolist()}")
    y = y.cpu()
    hit = (logits.argmax(dim=-1).cpu() == y).double()
    size = torch.bincount(y, minlength=classes).double()
    right = torch.bincount(y, weights=hit, minlength=classes)
    present = size > 0
    weight = prior * present
    if float(weight.sum()) <= 0:
        return float("nan")
    recall = torch.where(present, right / size.clamp(min=1), torch.zeros_like(size))
    return float((weight * recall).sum() / weight.sum())


def _stratified_resamples(y: Tensor, samples: int, seed: int) -> Tensor:
    """``[samples, n]`` bootstrap resamples of positions ``0..n-1``, drawn with replacement
    within each class of ``y`` so that every resample keeps the class counts."""
    # scipy.stats.bootstrap pairs but cannot stratify, and a resample that loses a class
    # leaves ROC-AUC undefined and balanced accuracy on other classes.
    gen = torch.Generator().manual_seed(seed)
    y = y.cpu()
    out = torch.empty(samples, y.numel(), dtype=torch.long)
    for c in y.unique().tolist():
        members = (y == c).nonzero().view(-1)
        pick = torch.randint(members.numel(), (samples, members.numel()), generator=gen)
        out[:, members] = members[pick]
    return out


def _check_samples(samples: object) -> None:
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 2:
        raise ConfigError(f"samples must be an integer >= 2, got {samples!r}")


def _resampled_scores(metric: str, logits: Tensor, y: Tensor, resamples: Tensor) -> Tensor:
    if metric == "accuracy":  # one gather instead of a call per resample
        return (logits.argmax(dim=-1).cpu() == y.cpu()).double()[resamples].mean(dim=1)
    return torch.tensor([score(metric, logits[r], y[r]) for r in resamples],
                        dtype=torch.float64)


def paired_standard_error(logits_a: Tensor, logits_b: Tensor, y: Tensor,
                          index: Tensor | None = None, *, metric: str = "accuracy",
                          samples: int = 200, seed: int = 0) -> float:
    r"""The standard error of :math:`s_a - s_b`, the difference of two predictions' scores
    on the same nodes, by a paired, class-stratified bootstrap.

    It is the standard deviation of :math:`s_a - s_b` over ``samples`` resamples of the
    nodes ``index`` (all when ``None``; unlabelled nodes, label ``-1``, left out), drawn
    with replacement within each class so that every resample keeps the class counts, the
    same resample for both (nodes both get right or both get wrong add nothing). For
    accuracy on one class it tends to :math:`\operatorname{sd}(d)/\sqrt n`, :math:`d_v` the
    per-node difference of correctness. ``seed`` makes it deterministic.
    """
    check_metric(metric)
    _check_samples(samples)
    if index is not None:
        logits_a, logits_b, y = logits_a[index], logits_b[index], y[index]
    labelled = y >= 0
    logits_a, logits_b, y = logits_a[labelled].detach(), logits_b[labelled].detach(), y[labelled]
    if y.numel() == 0:
        return float("nan")
    resamples = _stratified_resamples(y, samples, seed)
    return _gap_sd(_resampled_scores(metric, logits_a, y, resamples),
                   _resampled_scores(metric, logits_b, y, resamples))


def _gap_sd(scores_a: Tensor, scores_b: Tensor) -> float:
    """The standard deviation of the paired difference of two predictions' resampled scores."""
    return float((scores_a - scores_b).std())


def simplest_within(logits: Sequence[Tensor], y: Tensor, index: Tensor | None = None, *,
                    se: float = 1.0, metric: str = "accuracy", samples: int = 200,
                    seed: int = 0) -> int:
    r"""Model selection by the one-standard-error rule: the first (simplest) of several
    candidates whose score is within ``se`` paired standard errors of the best one's.

    With :math:`s_j` the ``metric`` of candidate :math:`j`'s ``logits`` on the nodes
    ``index`` and :math:`b` the first candidate with the highest score, the rule keeps

    .. math::
        j^\star = \min \{\, j : s_j \ge s_b - \mathrm{se}\cdot\widehat{\mathrm{SE}}
        (s_b - s_j) \,\},

    where :math:`\widehat{\mathrm{SE}}` is :func:`paired_standard_error` (a paired,
    class-stratified bootstrap of the nodes). ``se = 0`` keeps the best score
    (the first of ties). With a handful of validation nodes the best score is mostly noise;
    a larger ``se`` then keeps the simpler candidate unless the evidence against it is
    clear. ``seed`` makes the resamples, and so the choice, deterministic.

    Args:
        logits: one ``[N, classes]`` score tensor per candidate, simplest first.
        y: labels ``[N]``.
        index: the nodes to score (all when ``None``), e.g. the validation set.
        se: the tolerance in standard errors, ``>= 0``.
        metric: one of :data:`METRICS`.
        samples: bootstrap resamples (used only when some candidate scores below the best).
        seed: the resamples' seed.

    Returns:
        The position of the kept candidate in ``logits``.
    """
    check_metric(metric)
    if not logits:
        raise ConfigError("simplest_within needs at least one candidate")
    if not (isinstance(se, (int, float)) and math.isfinite(se) and se >= 0):
        raise ConfigError(f"se must be a finite number >= 0, got {se!r}")
    _check_samples(samples)
    if index is not None:
        logits, y = [lg[index] for lg in logits], y[index]
    labelled = y >= 0
    logits, y = [lg[labelled].detach() for lg in logits], y[labelled]
    scores = [score(metric, lg, y) for lg in logits]
    finite = [s if math.isfinite(s) else -math.inf for s in scores]
    best = max(range(len(finite)), key=lambda j: (finite[j], -j))
    if se == 0 or y.numel() == 0:
        return best
    # paired_standard_error's resamples, drawn once: the same for every candidate
    resamples = _stratified_resamples(y, samples, seed)
    top = _resampled_scores(metric, logits[best], y, resamples)
    for j in range(best):
        if not math.isfinite(finite[j]):
            continue
        err = _gap_sd(top, _resampled_scores(metric, logits[j], y, resamples))
        if finite[j] >= finite[best] - se * err:
            return j
    return best
