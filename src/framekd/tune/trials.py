r"""The objective of ``framekd tune``: mean validation score over k splits.

:class:`TuneSetup` holds what a study tunes (dataset, teacher, students, protocol, folds,
the user's fixed settings, the search space); :class:`Objective` is the Optuna objective
built from it. A trial draws its settings (:mod:`framekd.tune.space`), and for fold
``i = 0 .. k-1`` (split ``make_split(data, protocol, seed=i)``, ``torch.manual_seed(i)``
before each model as in :func:`framekd.experiment.run_seed`) trains the teacher and, when
students are tuned, distils each of them from it. The fold's score is the teacher's
validation score, or the mean validation score of the students, by the run setting
``metric`` (accuracy by default, balanced accuracy or ROC-AUC, :mod:`framekd.metrics`; early
stopping follows it too); after each fold the running mean is reported to Optuna, which may
prune the trial.

With ``draws`` K > 1 (``framekd tune --draws K``) each fold is trained K times on its one
split, draw ``k`` seeding weights and dropout with :func:`draw_seed` ``(i, k) = i + 1000 k``
(draw 0 is the fold's own seed), and the fold scores the mean of its draws. On a small graph
the initial draw moves a 10-split mean about as much as the settings a study compares
(BENCHMARKS.md §8.23); averaging draws lowers that noise K-fold in variance, at K times the
cost.

Test labels are never read: each fold trains on a copy of the labels whose test nodes are
set to ``-1`` (unlabelled), and only validation scores enter the objective.

``prior="teacher"`` (``framekd tune --prior teacher``, with the accuracy metric) scores each
fold's validation nodes as if they had the class shares of the nodes the model is for, not
their own: :math:`\sum_c \hat\pi_c\,\mathrm{recall}_c(\text{val})`
(:func:`framekd.metrics.prior_weighted_accuracy`), where :math:`\hat\pi` is the fold
teacher's arg-max class shares on the nodes outside train and validation (and, inductive,
outside the unseen nodes, which the teacher never saw) (:func:`framekd.metrics.class_prior`).
No label enters :math:`\hat\pi`. It is for protocols whose validation set is drawn with
other class shares than the test set: fgkd caps validation per class and leaves the rest
to test, so on a skewed graph plain validation accuracy ranks settings by the wrong mix of
classes (BENCHMARKS.md §8.16). Early stopping still follows the run's ``metric``.

With the run setting ``setting: inductive`` (``framekd tune --setting inductive``) fold ``i``
is :func:`framekd.inductive.inductive_split` of seed ``i``: teacher, knowledge and students
see the observed graph only (the unseen test nodes' edges removed, students distilled on the
observed nodes), as ``framekd run --setting inductive`` trains, with one difference: the
students are distilled on the observed nodes **except the validation nodes**. A run distils
on the validation nodes too (GLNN's protocol), so there a student's validation score is
partly its fit of soft labels it was trained on; held out, the validation nodes are scored
as unseen nodes are, by a student that never fitted them, and the objective rewards
settings that generalise to new nodes instead of settings that memorise (BENCHMARKS.md
§9.7). The teacher is unaffected: it never trains on validation labels.

``trial_timeout`` S (``framekd tune --trial-timeout S``) stops a trial once it has run S
seconds, at the next training epoch (:class:`~framekd.errors.TimeLimitError`), and records it
as pruned with the folds it finished, user attribute ``pruned_reason`` ``"time"``: a search
space's random start-up draws include settings that take hundreds of times the default's
time per fold (a wide, deep network on many framelet channels), and one of them can spend a
study's whole budget. It is a process setting, not part of the study's identity, and it
favours settings that train fast.

A trial whose settings fail (a :class:`~framekd.errors.FramekdError` such as a rejected
combination, a non-finite training loss, an out-of-memory error ...) returns ``nan``, which
Optuna records as a FAILED trial; the reason is the trial's user attribute
``fail_reason``. Ctrl-C (``KeyboardInterrupt``) is not caught.
"""

from __future__ import annotations

import copy
import json
import math
import statistics
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch
from torch import Tensor

from framekd.config import RunConfig, load_yaml, parse_overrides, resolve
from framekd.errors import ConfigError, FramekdError, TimeLimitError
from framekd.models.registry import DISTILLED_MLP, reads_knowledge
from framekd.splits import make_split
from framekd.tune.space import (
    SEARCH_SPACE,
    STATIC_CONDITIONS,
    Param,
    flatten,
    get,
    own_keys,
    put,
    search_space,
    suggest,
    tuned_student,
    uses_knowledge,
)

#: ``knowledge.mode: features`` larger than this fails the trial (as ``auto`` would switch).
FEATURES_BYTES = 1 << 30
#: How a fold weights its validation nodes' classes (:attr:`TuneSetup.prior`).
PRIORS = ("none", "teacher")
#: Seeds of a fold's draws are this far apart (:func:`draw_seed`).
DRAW_STRIDE = 1000


def draw_seed(fold: int, draw: int) -> int:
    """The seed of initial draw ``draw`` of fold ``fold``: ``fold + 1000 draw``; it seeds the
    weights and dropout, never the split, and draw 0 is the fold's own seed."""
    return fold + DRAW_STRIDE * draw


@dataclass
class TuneSetup:
    """What a study tunes; the same setup must be used to resume it (see :meth:`identity`).

    Attributes:
        dataset: dataset name or spec.
        teacher: registry name of the tuned teacher.
        students: students distilled from it (empty: the teacher alone is tuned).
        protocol, folds: fold ``i`` is ``make_split(data, protocol, seed=i)``.
        fixed: the user's fixed settings (``--config`` file and ``--set``), nested.
        base: the resolved configuration every trial starts from (epochs capped).
        space: the searched parameters, in draw order.
        epochs: the epoch cap during tuning (``None``: the configuration's).
        search: the groups or keys the user restricted the search to (``None``: all).
        prior: ``"none"`` (plain validation score) or ``"teacher"`` (validation accuracy
            weighted to the fold teacher's predicted class shares; see the module).
        draws: initial draws per fold, whose scores the fold averages (see the module).
    """

    dataset: str
    teacher: str
    students: tuple[str, ...]
    protocol: str
    folds: int
    fixed: dict[str, Any]
    base: dict[str, Any]
    space: list[Param]
    epochs: int | None = None
    search: tuple[str, ...] | None = None
    prior: str = "none"
    draws: int = 1

    @property
    def sdrf(self) -> bool:
        return self.base["rewire"]["method"] == "sdrf"

    @property
    def description(self) -> str:
        """The objective in words."""
        if self.students:
            who = (f"students {', '.join(self.students)} (distilled from teacher "
                   f"{self.teacher})")
        else:
            who = f"teacher {self.teacher}"
        from framekd.metrics import LABELS

        graph = ", SDRF-rewired graph" if self.sdrf else ""
        if self.base.get("setting") == "inductive":
            graph += (", inductive: trained on the observed graph"
                      + (", students without the validation nodes" if self.students else ""))
        label = LABELS[self.base.get("metric", "accuracy")]
        if self.prior == "teacher":
            label += " (weighted to the teacher's predicted class shares)"
        draws = f" x {self.draws} initial draws" if self.draws > 1 else ""
        return (f"mean validation {label} of {who} over {self.folds} fold(s){draws} "
                f"(protocol {self.protocol}, splits 0..{self.folds - 1}{graph}), maximised")

    @property
    def fixed_teacher(self) -> bool:
        """Whether every trial trains the same teacher on the same graph and knowledge
        (nothing searched outside the students' own settings)."""
        return all(p.group == "student" for p in self.space)

    def identity(self) -> dict[str, str]:
        """Study user attributes that a resumed or shared study must match."""
        return {
            "framekd.dataset": str(self.dataset),
            "framekd.teacher": self.teacher,
            "framekd.students": ",".join(self.students),
            "framekd.protocol": self.protocol,
            "framekd.folds": str(self.folds),
            "framekd.epochs": str(self.epochs),
            "framekd.rewire": str(self.base["rewire"]["method"]),
            "framekd.fixed": json.dumps(self.fixed, sort_keys=True, default=str),
            "framekd.search": "all" if self.search is None else ",".join(self.search),
            "framekd.prior": self.prior,
            "framekd.draws": str(self.draws),
        }


def _student_names(students: str | Iterable[str] | None) -> tuple[str, ...]:
    from framekd.models.registry import STUDENTS, model_name

    if students is None:
        return ()
    if isinstance(students, str):
        students = students.split(",")
    out: list[str] = []
    for raw in students:
        if not str(raw).strip():
            continue
        name = model_name(str(raw).strip())
        name = "mlp" if name == DISTILLED_MLP else name
        if name not in STUDENTS:
            raise ConfigError(f"unknown student {raw!r}; use {', '.join(STUDENTS)}")
        if name not in out:
            out.append(name)
    return tuple(out)


def make_setup(
    dataset: str,
    *,
    teacher: str | None = None,
    students: str | Iterable[str] | None = (),
    protocol: str | None = None,
    folds: int = 3,
    epochs: int | None = None,
    rewire: str | None = None,
    device: str | None = None,
    config_file: str | Path | None = None,
    overrides: Iterable[str] = (),
    space: Iterable[Param] = SEARCH_SPACE,
    search: str | Iterable[str] | None = None,
    prior: str = "none",
    draws: int = 1,
) -> TuneSetup:
    """Resolve the settings of a study the way ``framekd run`` resolves a run's.

    ``teacher`` defaults to the configuration's ``teacher.name``; ``students`` empty tunes
    the teacher alone. ``rewire="sdrf"`` searches the SDRF settings. Settings in
    ``config_file`` and ``overrides`` (``key=value``) are fixed for every trial. ``search``
    (groups such as ``"student"`` or dotted keys, a list or a comma-separated string)
    searches only those settings, the others keep their configured values. ``prior``
    ``"teacher"`` weights each fold's validation accuracy to its teacher's predicted class
    shares (module docstring). ``draws`` trains each fold that many times from other
    initial weights and averages (module docstring).
    """
    from framekd.models.registry import TEACHERS, model_name

    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 1:
        raise ConfigError(f"folds must be a positive integer, got {folds!r}")
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int)
                               or epochs < 1):
        raise ConfigError(f"epochs must be a positive integer, got {epochs!r}")
    if rewire not in (None, "none", "sdrf"):
        raise ConfigError(f"rewire must be none or sdrf, got {rewire!r}")
    if prior not in PRIORS:
        raise ConfigError(f"prior must be one of {', '.join(PRIORS)}, got {prior!r}")
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 1:
        raise ConfigError(f"draws must be a positive integer, got {draws!r}")
    if draws > 1 and folds > DRAW_STRIDE:
        raise ConfigError(f"with draws > 1, folds must be at most {DRAW_STRIDE} (their seeds "
                          f"would overlap), got {folds}")
    overrides = list(overrides)
    fixed: dict[str, Any] = {}
    if config_file is not None:
        fixed.update(flatten(load_yaml(config_file)))
    fixed.update(flatten(parse_overrides(overrides)))
    fixed.pop("dataset", None)
    names = _student_names(students)
    flags: dict[str, Any] = {}
    if teacher is not None:
        key = model_name(teacher)
        if key not in TEACHERS:
            raise ConfigError(f"unknown teacher {teacher!r}; choose one of {', '.join(TEACHERS)}")
        flags["teacher"] = {"name": key}
    if names:
        flags["student"] = {"names": list(names)}
    if protocol is not None:
        flags["protocol"] = protocol
    if device is not None:
        flags["device"] = device
    if rewire == "none":
        flags["rewire"] = {"method": None}
    # SDRF is validated per trial, once its searched settings are drawn (a dataset without
    # an SDRF preset cannot be resolved before that).
    base = resolve(dataset, config_file=config_file, flags=flags, overrides=overrides)
    if rewire == "sdrf":
        base["rewire"]["method"] = "sdrf"
    for section in ("teacher", "student"):
        if epochs is not None:
            base[section]["epochs"] = min(int(base[section]["epochs"]), epochs)
    tname = base["teacher"]["name"]
    if isinstance(search, str):
        search = [part.strip() for part in search.split(",") if part.strip()]
    search = None if search is None else tuple(search)
    if prior != "none" and base.get("metric", "accuracy") != "accuracy":
        raise ConfigError(f"prior {prior} weights validation accuracy; it does not apply to "
                          f"metric {base['metric']} (use --metric accuracy or --prior none)")
    chosen = search_space(tname, names, sdrf=base["rewire"]["method"] == "sdrf",
                          fixed=fixed, space=space, only=search)
    return TuneSetup(dataset=str(dataset), teacher=tname, students=names,
                     protocol=base["protocol"], folds=folds, fixed=_nest_sorted(fixed),
                     base=base, space=chosen, epochs=epochs, search=search, prior=prior,
                     draws=draws)


def _nest_sorted(flat: Mapping[str, Any]) -> dict[str, Any]:
    from framekd.tune.space import nest

    return nest(dict(sorted(flat.items())))


def _reason(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    if isinstance(err, FramekdError):
        return text or type(err).__name__
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


class TrialFailure(FramekdError):
    """A trial's settings cannot be trained (recorded as a FAILED trial, not raised)."""


def _check_finite(history: list[tuple[float, float]], what: str) -> None:
    for epoch, (loss, _) in enumerate(history, start=1):
        if not math.isfinite(loss):
            raise TrialFailure(f"{what} training loss is {loss} at epoch {epoch} "
                               "(diverged: lower the learning rate)")


class Objective:
    """The Optuna objective of a :class:`TuneSetup` (maximise; ``nan`` for a failed trial).

    ``data`` is the graph to use instead of loading ``setup.dataset``. The folds' splits
    are drawn once, here (a protocol that does not fit the graph raises ``SplitError``).
    ``fold_ids`` are the folds a call trains, all of them unless narrowed: a held-out check
    (``benchmarks/heldout_folds.py``) reads folds a study already scored from its database
    and trains the rest; fold ``i`` keeps its split and seeds either way.
    """

    def __init__(self, setup: TuneSetup, data: Any = None, *,
                 trial_timeout: float | None = None) -> None:
        from framekd.data import load_dataset

        if trial_timeout is not None and not (
                isinstance(trial_timeout, (int, float)) and not isinstance(trial_timeout, bool)
                and trial_timeout > 0):
            raise ConfigError("trial_timeout must be a positive number of seconds, got "
                              f"{trial_timeout!r}")
        self.setup = setup
        self.trial_timeout = trial_timeout
        if data is None:
            data = load_dataset(setup.dataset)
        if data.x is None or data.y is None:
            raise ConfigError("the graph needs node features x and labels y to tune on")
        if "num_classes" not in data:
            data.num_classes = int(data.y.max()) + 1
        rc = RunConfig.from_dict({**setup.base, "rewire": {**setup.base["rewire"],
                                                           "method": None}})
        self.device = torch.device(rc.device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"device '{rc.device}' requested but CUDA is not available; "
                              "use device=cpu")
        self.data = data
        self._teachers: dict[tuple[int, int], tuple[Any, ...]] = {}
        self.inductive = rc.setting == "inductive"
        if self.inductive:
            from framekd.inductive import inductive_split

            # Fold i hides the unseen test nodes of seed i (framekd.inductive); training and
            # validation see the observed graph only, as in `framekd run --setting inductive`.
            self.isplits = [inductive_split(data, setup.protocol, seed=i)
                            for i in range(setup.folds)]
            self.splits = [s.training_split() for s in self.isplits]
        else:
            self.isplits = None
            self.splits = [make_split(data, setup.protocol, seed=i) for i in range(setup.folds)]
        self.fold_ids: list[int] = list(range(setup.folds))
        self._user_fixed = set(flatten(setup.fixed))

    # ------------------------------------------------------------------ settings
    def settings(self, trial: optuna.Trial) -> dict[str, Any]:
        """Draw the trial's settings; the full configuration dict of the trial."""
        cfg = copy.deepcopy(self.setup.base)
        for p in self.setup.space:
            if (p.only_if is not None and p.only_if[0] not in STATIC_CONDITIONS
                    and get(cfg, p.only_if[0]) != p.only_if[1]):
                continue
            value = suggest(trial, p)
            put(cfg, p.key, value)
            # A drawn student value must reach the tuned students: an own section the
            # dataset's preset ships (student.fmlp-c.lam) would hide it; one the user
            # fixed stays.
            for own in own_keys(p.key, self.setup.students):
                if get(cfg, own) is not None and own not in self._user_fixed:
                    put(cfg, own, value)
        return cfg

    def __call__(self, trial: optuna.Trial) -> float:
        try:
            cfg = self.settings(trial)
            return self._evaluate(trial, cfg)
        except optuna.TrialPruned:
            raise
        except KeyboardInterrupt:
            trial.set_user_attr("fail_reason", "interrupted")
            raise
        except Exception as err:  # a bad setting must fail the trial, not the study
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            trial.set_user_attr("fail_reason", _reason(err))
            return float("nan")

    # ------------------------------------------------------------------ training
    def _evaluate(self, trial: optuna.Trial, cfg: dict[str, Any]) -> float:
        setup = self.setup
        rc = RunConfig.from_dict(cfg)
        # What the trial's folds share: graph, knowledge, and the time its training must
        # end by (per trial, so that concurrent trials keep their own).
        memo: dict[str, Any] = {"deadline": None if self.trial_timeout is None
                                else time.monotonic() + self.trial_timeout}
        values: list[float] = []
        teacher_vals: list[float] = []
        for fold in self.fold_ids:
            try:
                value, teacher_val = self._fold(rc, fold, self.splits[fold], memo)
            except TimeLimitError as err:
                trial.set_user_attr("pruned_reason", "time")
                raise optuna.TrialPruned(f"fold {fold}: {err}") from err
            values.append(value)
            teacher_vals.append(teacher_val)
            trial.set_user_attr("fold_values", values)
            if setup.students:
                trial.set_user_attr("teacher_val", teacher_vals)
            trial.report(statistics.fmean(values), fold)
            if trial.should_prune():
                raise optuna.TrialPruned(
                    f"pruned after fold {fold} (running mean {statistics.fmean(values):.4f})")
        return statistics.fmean(values)

    def _graph(self, rc: RunConfig, data: Any) -> tuple[Any, Any, Any]:
        """``(data, operator, knowledge)`` of a trial's graph (operator and knowledge only
        when the teacher or a student needs them)."""
        from framekd.experiment import graph_operator, knowledge_spec
        from framekd.knowledge import cached_graph_knowledge
        from framekd.models.registry import FRAMELET_TEACHERS

        knows = uses_knowledge(self.setup.students)
        operator = None
        if self.setup.teacher in FRAMELET_TEACHERS or knows:
            operator = graph_operator(rc, data)
        knowledge = None
        if knows:
            spec = knowledge_spec(rc, data)
            if spec.mode == "features":
                size = 4 * rc.framelet.num_channels * spec.powers * data.num_nodes \
                    * data.x.size(1)
                if size > FEATURES_BYTES:
                    raise TrialFailure(f"features knowledge would take {size / 2**30:.1f} GiB "
                                       f"(> {FEATURES_BYTES / 2**30:.0f} GiB)")
            knowledge = cached_graph_knowledge(data.edge_index, data.num_nodes, data.x, spec,
                                               cache_dir=None, operator=operator)
            knowledge = knowledge.to(self.device)
        return data, operator, knowledge

    def _fold_graph(self, rc: RunConfig, fold: int, memo: dict[str, Any]) -> tuple[Any, ...]:
        """``(graph, operator, knowledge)`` that fold ``fold`` trains on: the trial's graph
        (SDRF-rewired when searched), or its observed graph in the inductive setting."""
        from framekd.experiment import prepare_graph

        if "data" not in memo:
            data, _ = prepare_graph(rc, self.data, cache_dir=None, log=lambda msg: None)
            memo["data"] = data.to(self.device)
        # One graph for the trial, or one per fold (its observed graph) in the inductive
        # setting; only the current one is held, and a fold's draws share it.
        key = fold if self.inductive else "trial"
        if memo.get("graph", (None,))[0] != key:
            graph = memo["data"]
            if self.inductive:
                from framekd.inductive import observed_graph

                graph = observed_graph(graph, self.isplits[fold].unseen)
            memo["graph"] = (key, self._graph(rc, graph))
        return memo["graph"][1]

    def _teacher(self, rc: RunConfig, fold: int, split: Any, memo: dict[str, Any],
                 seed: int) -> tuple[Any, ...]:
        """``(data, knowledge, teacher result, distillation nodes)`` of one fold's draw
        ``seed``: the fold's training graph with its test labels hidden, the students'
        knowledge of it, the trained teacher and the nodes students are distilled on
        (``None``: all)."""
        from framekd.experiment import fit_teacher

        if self.setup.fixed_teacher and (fold, seed) in self._teachers:
            return self._teachers[fold, seed]  # every trial would train this teacher again
        graph, operator, knowledge = self._fold_graph(rc, fold, memo)
        distill_nodes = None
        if self.inductive:
            distill_nodes = _without(self.isplits[fold].observed, split.val)
        data = _hide_test_labels(graph, split)
        # teacher.smooth: auto (when not searched) is decided on validation, as a run does
        _, res, _, _ = fit_teacher(self.setup.teacher, data, split, rc, seed, operator,
                                   deadline=memo["deadline"])
        _check_finite(res.history, f"teacher {self.setup.teacher}")
        out = (data, knowledge, res, distill_nodes)
        if self.setup.fixed_teacher:
            self._teachers[fold, seed] = out
        return out

    def _fold(self, rc: RunConfig, fold: int, split: Any,
              memo: dict[str, Any]) -> tuple[float, float]:
        """(objective score, teacher validation score) of one fold: the means over its
        draws."""
        scores = [self._draw(rc, fold, split, memo, draw_seed(fold, k))
                  for k in range(self.setup.draws)]
        return statistics.fmean(v for v, _ in scores), statistics.fmean(t for _, t in scores)

    def _draw(self, rc: RunConfig, fold: int, split: Any, memo: dict[str, Any],
              seed: int) -> tuple[float, float]:
        """(objective score, teacher validation score) of one fold trained from the initial
        draw ``seed``."""
        from framekd.distill import distill_student
        from framekd.models import student_from_config

        data, knowledge, res, distill_nodes = self._teacher(rc, fold, split, memo, seed)
        val_score = self._val_score(fold, split, data, res.log_probs)
        teacher_val = val_score(res)
        if not self.setup.students:
            return teacher_val, teacher_val
        d, c = data.x.size(1), int(data.num_classes)
        scores = []
        for name in self.setup.students:
            name = tuned_student(name)
            s = rc.student.for_model(name)
            torch.manual_seed(seed)
            shape = None if knowledge is None else knowledge.shape
            student = student_from_config(name, rc, d, c,
                                          knowledge_shape=shape).to(self.device)
            sres = distill_student(
                student, data, knowledge if reads_knowledge(name) else None, res.log_probs,
                split,
                lam=s.lam, T=s.temperature, lr=s.lr, weight_decay=s.weight_decay,
                epochs=s.epochs, patience=s.patience, batch_size=s.batch_size, seed=seed,
                metric=rc.metric, distill_nodes=distill_nodes, deadline=memo["deadline"],
            )
            _check_finite(sres.history, f"student {name}")
            scores.append(val_score(sres))
        return statistics.fmean(scores), teacher_val

    def _val_score(self, fold: int, split: Any, data: Any,
                   teacher_logp: Tensor) -> Callable[[Any], float]:
        r"""How fold ``fold`` scores a trained model: its validation score, or with
        ``prior="teacher"`` its validation accuracy weighted to :math:`\hat\pi`."""
        if self.setup.prior == "none":
            return lambda result: result.val_score
        from framekd.metrics import class_prior, prior_weighted_accuracy

        known = [split.train, split.val]
        if self.inductive:
            known.append(self.isplits[fold].unseen)
        prior = class_prior(teacher_logp, known)
        return lambda result: prior_weighted_accuracy(result.log_probs, data.y, split.val,
                                                      prior)


def _without(nodes: Tensor, held_out: Tensor) -> Tensor:
    """The node indices ``nodes`` that are not in ``held_out`` (order kept)."""
    return nodes[~torch.isin(nodes, held_out.to(nodes.device))]


def _hide_test_labels(data: Any, split: Any) -> Any:
    """A shallow copy of ``data`` whose test nodes are unlabelled (``y = -1``)."""
    out = copy.copy(data)
    y = data.y.clone()
    y[split.test.to(y.device)] = -1
    out.y = y
    return out


def objective(dataset: str, *, data: Any = None, trial_timeout: float | None = None,
              **settings: Any) -> Objective:
    """The Optuna objective of tuning on ``dataset``; ``settings`` as for :func:`make_setup`
    (``trial_timeout``: see the module docstring).

    Use it with any Optuna study (``direction="maximize"``)::

        study = optuna.create_study(direction="maximize")
        study.optimize(objective("cora", teacher="gcn", folds=3), n_trials=20)
    """
    return Objective(make_setup(dataset, **settings), data=data, trial_timeout=trial_timeout)
