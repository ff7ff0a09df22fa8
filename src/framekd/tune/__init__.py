"""Hyper-parameter tuning on Optuna (``framekd tune``).

A study maximises the mean **validation** score (the run setting ``metric``: accuracy by
default, balanced accuracy or ROC-AUC) over ``folds`` splits (fold ``i`` is
``make_split(data, protocol, seed=i)``) of a teacher, or of students distilled from it
(teacher and student settings then tuned jointly). Test labels are never read. The search
spaces are declared once, in :data:`framekd.tune.space.SEARCH_SPACE`.

* :func:`tune`: run ``trials`` new trials of a study and return it;
* :func:`objective`: the Optuna objective alone, for a study of your own;
* :func:`preset_text`: the best trial as a YAML preset for ``framekd run --config``;
* :func:`preset_params`: a preset's settings under the search space's names (to score it).

Studies are stored by Optuna (``study=DIR`` is the SQLite file ``DIR/study.db``, or pass any
storage URL), so a re-run continues a study and several processes can share one (give
each its own ``seed``). A trial whose settings fail is recorded as FAILED with the reason in
its user attribute ``fail_reason``; Ctrl-C stops the study and keeps the finished trials.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import optuna

from framekd.tune.space import SEARCH_SPACE, Param, search_space
from framekd.tune.study import (
    best_text,
    best_trial,
    counts,
    default_study_name,
    default_trials,
    enqueue_defaults,
    open_study,
    preset_params,
    preset_text,
    run,
    storage_url,
    trial_line,
)
from framekd.tune.trials import Objective, TuneSetup, draw_seed, make_setup, objective

__all__ = [
    "SEARCH_SPACE", "Objective", "Param", "TuneSetup", "best_text", "best_trial", "counts",
    "default_study_name", "default_trials", "draw_seed", "enqueue_defaults", "make_setup",
    "objective",
    "open_study", "preset_params", "preset_text",
    "search_space", "storage_url", "trial_line", "tune",
]


def tune(
    dataset: str,
    *,
    teacher: str | None = None,
    students: str | Iterable[str] = (),
    trials: int = 20,
    timeout: float | None = None,
    trial_timeout: float | None = None,
    study: str | Path | None = None,
    study_name: str | None = None,
    seed: int = 0,
    prune_startup: int = 5,
    data: Any = None,
    callbacks: Iterable[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]] = (),
    **settings: Any,
) -> optuna.Study:
    """Run ``trials`` new trials tuning ``teacher`` (and ``students``) on ``dataset``.

    Args:
        dataset: dataset name, ``csbm:...`` spec or graph folder.
        teacher: teacher to tune (default: the configuration's ``teacher.name``).
        students: students distilled from it; their mean validation score is then the
            objective and teacher and student settings are tuned jointly.
        trials: number of new trials this call runs (a resumed study keeps its old ones).
        timeout: seconds after which no new trial starts.
        trial_timeout: stop a trial once it has run this many seconds, at its next training
            epoch, and record it as pruned (:mod:`framekd.tune.trials`).
        study: a folder (SQLite ``study.db`` in it), an Optuna storage URL, or ``None``
            (in memory).
        study_name: default ``framekd-<dataset>-<teacher>[-<students>]``.
        seed: TPE sampler seed (plus the number of trials the study already holds).
        prune_startup: complete trials before the median pruner starts pruning.
        data: a graph to tune on instead of loading ``dataset``.
        callbacks: Optuna ``optimize`` callbacks, called after each trial.
        **settings: ``protocol``, ``folds`` (default 3), ``epochs`` (cap), ``rewire``
            (``"sdrf"`` searches SDRF), ``device``, ``config_file``, ``overrides``
            (``key=value`` settings fixed for every trial), ``space``, ``search`` (the
            groups or keys to search, the rest fixed at their configured values),
            ``prior``, ``draws`` (initial draws per fold, averaged; default 1); see
            :func:`framekd.tune.trials.make_setup`.

    Returns:
        the study; ``best_trial(study)`` is ``None`` when no trial completed. Ctrl-C
        (``KeyboardInterrupt``) propagates; the trials finished before it are kept.
    """
    setup = make_setup(dataset, teacher=teacher, students=students, **settings)
    obj = Objective(setup, data=data, trial_timeout=trial_timeout)
    st = open_study(setup, study, study_name=study_name, seed=seed, prune_startup=prune_startup)
    enqueue_defaults(st, setup)
    run(st, obj, trials=trials, timeout=timeout, callbacks=callbacks)
    return st
