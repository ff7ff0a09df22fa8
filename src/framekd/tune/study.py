"""Studies of ``framekd tune``: storage, sampler and pruner, trial summaries, the preset.

A study lives in an Optuna storage: ``--study DIR`` is the SQLite file ``DIR/study.db``;
anything containing ``://`` is an Optuna storage URL (``sqlite:///...``,
``postgresql://...``). ``create_study(load_if_exists=True)`` makes a re-run continue the
study and lets several processes share it. The sampler is TPE seeded from the pair
(``seed``, number of trials the study already holds): a fresh study with the same seed
repeats its trials, a resumed one does not redraw its first ones, and processes given
different seeds draw different trials whenever they open the study (a sum ``seed + known``
gave ``--seed 3`` opening at 9 trials the stream of ``--seed 2`` opening at 10); the pruner
is the median pruner on the running mean after each fold. A new study first runs the
configuration's own settings (:func:`enqueue_defaults`), so its best trial is never below
them on validation.

A trial whose process dies (killed, out of memory, machine lost) would stay ``RUNNING`` in the
storage for ever. Every trial of a storage-backed study therefore records a heartbeat every
:data:`HEARTBEAT_SECONDS`; a trial without one for :data:`GRACE_SECONDS` is failed by the next
process that opens the study or starts a trial in it (Optuna's ``fail_stale_trials``),
reported as stopped (:func:`trial_line`), and queued again with the same settings, once
(Optuna's retry callback, :data:`_RETRY`): resuming a study after a crash reruns the trials the
crash cut short instead of losing them, the configuration's own ones included.
"""

from __future__ import annotations

import copy
import datetime as _dt
import re
import subprocess
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import yaml
from optuna.trial import FrozenTrial, TrialState

from framekd.errors import ConfigError
from framekd.tune.space import flatten, get, nest, own_keys, tuned_student
from framekd.tune.trials import TuneSetup

STUDY_FILE = "study.db"
PRESET_FILE = "best.yaml"
#: Seconds a process waits for another one's SQLite write lock.
SQLITE_TIMEOUT = 60
#: Seconds between the heartbeats a running trial writes to the storage.
HEARTBEAT_SECONDS = 60
#: Seconds without a heartbeat after which a running trial counts as stopped (its process
#: died). Generous, so that a busy machine never fails a live trial.
GRACE_SECONDS = 600
#: How often a stopped trial is queued again (once: a setting that kills its process every
#: time, out of memory say, must not do so for ever).
RETRIES = 1
#: ``fail_reason`` of such a trial.
STOPPED = "its process stopped before the trial finished (killed, out of memory, or lost)"


def is_url(study: str | Path) -> bool:
    return "://" in str(study)


def storage_url(study: str | Path) -> str:
    """The Optuna storage URL of ``--study`` (a folder becomes ``sqlite:///DIR/study.db``)."""
    if is_url(study):
        return str(study)
    return f"sqlite:///{(Path(study).expanduser().resolve() / STUDY_FILE).as_posix()}"


def _storage(study: str | Path | None) -> Any:
    if study is None:
        return optuna.storages.InMemoryStorage()
    url = storage_url(study)
    if not is_url(study):
        try:
            Path(study).expanduser().mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ConfigError(f"cannot create study folder {study}: {err.strerror}") from err
    kwargs = {"connect_args": {"timeout": SQLITE_TIMEOUT}} if url.startswith("sqlite") else {}
    try:
        with warnings.catch_warnings():  # the heartbeat is "experimental" in Optuna 3-5
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(url, engine_kwargs=kwargs,
                                              heartbeat_interval=HEARTBEAT_SECONDS,
                                              grace_period=GRACE_SECONDS, **_retry())
    except Exception as err:  # bad URL, missing driver, unreachable server, locked file
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"cannot open study storage {url}: {first}") from err


#: Optuna's callback that queues a stale trial again, and the storage argument taking it
#: (renamed in Optuna 4.9; the old pair is deprecated there).
_RETRY, _RETRY_ARG = (
    (optuna.storages.RetryHeartbeatStaleTrialCallback, "heartbeat_stale_trial_callback")
    if hasattr(optuna.storages, "RetryHeartbeatStaleTrialCallback")
    else (optuna.storages.RetryFailedTrialCallback, "failed_trial_callback"))


def _retry() -> dict[str, Any]:
    """The storage's keyword argument that queues a stopped trial again, :data:`RETRIES`
    times."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return {_RETRY_ARG: _RETRY(max_retry=RETRIES)}


def _rerun_of(trial: FrozenTrial) -> int | None:
    """The stopped trial that ``trial`` reruns, if any."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return _RETRY.retried_trial_number(trial)


def default_study_name(setup: TuneSetup) -> str:
    """``framekd-<dataset>-<teacher>[-<student>...]``."""
    parts = ["framekd", str(setup.dataset), setup.teacher, *setup.students]
    return "-".join(parts)


def safe_filename(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "study"


def sampler_seed(seed: int, known: int) -> int:
    """The TPE seed of a process opening a study with ``--seed seed`` at ``known`` trials:
    a hash of the pair (NumPy's ``SeedSequence``), so distinct pairs give distinct streams."""
    return int(np.random.SeedSequence([seed, known]).generate_state(1)[0])


def open_study(
    setup: TuneSetup, study: str | Path | None = None, *, study_name: str | None = None,
    seed: int = 0, prune_startup: int = 5,
) -> optuna.Study:
    """Create or load the study of ``setup`` (``study``: folder, storage URL, or ``None``
    for memory); raise :class:`ConfigError` when an existing study tunes something else."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    storage = _storage(study)
    name = study_name or default_study_name(setup)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=prune_startup, n_warmup_steps=0)
    try:
        first = optuna.create_study(storage=storage, study_name=name, direction="maximize",
                                    load_if_exists=True, pruner=pruner)
    except Exception as err:
        raise ConfigError(f"cannot open study {name!r}: {err}") from err
    if first.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise ConfigError(f"study {name!r} exists and is not maximised; use another "
                          "--study-name")
    _check_identity(first, setup, name)
    if isinstance(storage, optuna.storages.RDBStorage):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(first)
    known = len(first.get_trials(deepcopy=False))
    sampler = optuna.samplers.TPESampler(seed=sampler_seed(seed, known), constant_liar=True)
    return optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)


def _contains(dist: Any, value: Any) -> bool:
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        return value in dist.choices
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(dist, optuna.distributions.IntDistribution) and int(value) != value:
        return False
    return dist.low <= value <= dist.high


def default_trials(setup: TuneSetup) -> list[dict[str, Any]]:
    """The configuration's own values of the searched settings, as trials to run first.

    A tuned preset should never be worse on validation than the settings it replaces, so a
    new study starts from them. Settings whose configured value lies outside the search
    space are left to the sampler; ``teacher.smooth: auto`` (the best of the modes by
    validation) becomes one trial per mode. A student setting is the tuned students' own
    when the dataset's preset ships one they agree on (:func:`~framekd.tune.space.student_value`).
    """
    from framekd.models.spectral import AUTO_SMOOTH
    from framekd.tune.space import STATIC_CONDITIONS, student_value

    params: dict[str, Any] = {}
    modes: tuple[str, ...] = ()
    for p in setup.space:
        value = student_value(setup.base, p.key, setup.students)
        if p.only_if is not None and p.only_if[0] not in STATIC_CONDITIONS:
            if params.get(p.only_if[0], get(setup.base, p.only_if[0])) != p.only_if[1]:
                continue
        if _contains(p.distribution, value):
            params[p.key] = value
        elif p.key == "teacher.smooth" and value == "auto":
            modes = tuple(m for m in AUTO_SMOOTH if _contains(p.distribution, m))
    return [{**params, "teacher.smooth": m} for m in modes] if modes else [params]


def enqueue_defaults(study: optuna.Study, setup: TuneSetup) -> int:
    """Queue :func:`default_trials` in a study that holds no trial yet; the number queued."""
    if study.get_trials(deepcopy=False):
        return 0
    queued = default_trials(setup)
    for params in queued:
        study.enqueue_trial(params, skip_if_exists=True)
    return len(queued)


#: Identity attributes that studies of earlier versions lack, and the value they meant.
_ABSENT = {"framekd.search": "all", "framekd.prior": "none", "framekd.draws": "1"}


def _check_identity(study: optuna.Study, setup: TuneSetup, name: str) -> None:
    want = setup.identity()
    if not any(key in study.user_attrs for key in want):
        if study.get_trials(deepcopy=False):
            raise ConfigError(f"study {name!r} holds trials not made by framekd tune; use "
                              "another --study-name")
        for key, value in want.items():
            study.set_user_attr(key, value)
        study.set_user_attr("framekd.objective", setup.description)
        return
    attrs = {**_ABSENT, **study.user_attrs}
    diff = [f"{key.removeprefix('framekd.')}={attrs.get(key)!r} (now {value!r})"
            for key, value in want.items() if attrs.get(key) != value]
    if diff:
        raise ConfigError(f"study {name!r} was made with other settings: {'; '.join(diff)}; "
                          "repeat them to resume it, or use another --study / --study-name")


# ---------------------------------------------------------------------------- reporting
def counts(study: optuna.Study) -> dict[str, int]:
    """Trials per state: complete, pruned, failed, running."""
    out = {"complete": 0, "pruned": 0, "failed": 0, "running": 0}
    names = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned",
             TrialState.FAIL: "failed", TrialState.RUNNING: "running",
             TrialState.WAITING: "running"}
    for t in study.get_trials(deepcopy=False):
        out[names[t.state]] += 1
    return out


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return max(done, key=lambda t: (t.value, -t.number)) if done else None


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def format_params(params: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={_fmt(v)}" for k, v in params.items())


def trial_line(trial: FrozenTrial, best: FrozenTrial | None = None) -> str:
    """One line about a finished trial: its value, or why it was pruned or failed."""
    secs = ""
    if trial.datetime_start and trial.datetime_complete:
        secs = f" [{(trial.datetime_complete - trial.datetime_start).total_seconds():.1f} s]"
    head = f"trial {trial.number}"
    rerun = _rerun_of(trial)
    if rerun is not None:
        head += f" (rerun of stopped trial {rerun})"
    if trial.state == TrialState.COMPLETE:
        mark = " (best so far)" if best is not None and best.number == trial.number else ""
        return f"{head}: {trial.value:.4f}{mark}{secs} {format_params(trial.params)}"
    if trial.state == TrialState.PRUNED:
        steps = trial.intermediate_values
        where = ""
        if steps:
            last = max(steps)
            where = f" after fold {last} (running mean {steps[last]:.4f})"
        if trial.user_attrs.get("pruned_reason") == "time":
            where += ", over the trial time limit"
        return f"{head}: pruned{where}{secs}"
    if trial.state == TrialState.FAIL:
        # framekd's objective names the reason of every failure it sees; a failed trial
        # without one was failed as stale: its process never came back to say.
        reason = trial.user_attrs.get("fail_reason", STOPPED)
        return f"{head}: failed: {reason}{secs}"
    return f"{head}: {trial.state.name.lower()}"


def printer(log: Callable[[str], None]) -> Callable[[optuna.Study, FrozenTrial], None]:
    """An ``optimize`` callback that logs :func:`trial_line` for every finished trial."""

    def callback(study: optuna.Study, trial: FrozenTrial) -> None:
        log(trial_line(trial, best_trial(study)))

    return callback


def best_text(study: optuna.Study, setup: TuneSetup) -> str:
    """The best trial: value, per-fold values and settings (several lines)."""
    best = best_trial(study)
    c = counts(study)
    tally = (f"{c['complete']} complete, {c['pruned']} pruned, {c['failed']} failed"
             + (f", {c['running']} running" if c["running"] else ""))
    if best is None:
        return f"study {study.study_name!r}: no complete trial yet ({tally})"
    folds = best.user_attrs.get("fold_values") or []
    lines = [f"best trial {best.number} of study {study.study_name!r} ({tally}):",
             f"  {setup.description}: {best.value:.4f}"]
    if folds:
        lines.append("  per fold: " + ", ".join(f"{v:.4f}" for v in folds))
    if best.user_attrs.get("teacher_val"):
        lines.append("  teacher validation score per fold: "
                     + ", ".join(f"{v:.4f}" for v in best.user_attrs["teacher_val"]))
    for key, value in best.params.items():
        lines.append(f"  {key} = {value}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- preset
def code_version() -> str:
    """``git rev-parse --short HEAD`` of the package's checkout (``+dirty`` with local
    changes), else ``framekd <version>``."""
    from framekd import __version__

    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here,
                             capture_output=True, text=True, timeout=10, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=here, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return f"framekd {__version__}"
    commit = rev.stdout.strip()
    if not commit:
        return f"framekd {__version__}"
    mark = "+dirty" if dirty.returncode == 0 and dirty.stdout.strip() else ""
    return f"framekd {__version__}, commit {commit}{mark}"


def _ordered(nested: Mapping[str, Any]) -> dict[str, Any]:
    """``nested`` with sections and keys in the order of :data:`framekd.config.DEFAULTS`."""
    from framekd.config import DEFAULTS

    def order(node: Mapping[str, Any], ref: Any) -> dict[str, Any]:
        keys = list(ref) if isinstance(ref, Mapping) else []
        rank = {k: i for i, k in enumerate(keys)}
        out = {}
        for key in sorted(node, key=lambda k: (rank.get(k, len(keys)), k)):
            value = node[key]
            sub = ref.get(key) if isinstance(ref, Mapping) else None
            out[key] = order(value, sub) if isinstance(value, Mapping) else value
        return out

    return order(nested, DEFAULTS)


def preset_settings(trial: FrozenTrial, setup: TuneSetup) -> dict[str, Any]:
    """The preset of ``trial``: what was tuned (teacher, students, protocol, rewiring),
    the user's fixed settings and the trial's drawn settings, nested by section.

    The student settings of a study that tuned one student are written as that student's
    own (``student.fmlp-c.lam``), so a run with more students keeps theirs. With several
    tuned students a drawn value is also written to the own sections the dataset's preset
    ships for them, as the trial trained.
    """
    flat: dict[str, Any] = flatten(copy.deepcopy(setup.fixed))
    flat["teacher.name"] = setup.teacher
    if setup.students:
        flat["student.names"] = list(setup.students)
    flat["protocol"] = setup.protocol
    if setup.sdrf:
        flat["rewire.method"] = "sdrf"
    params = dict(trial.params)
    if len(setup.students) == 1:
        own = tuned_student(setup.students[0])
        params = {f"student.{own}.{key[8:]}" if key.startswith("student.") else key: value
                  for key, value in params.items()}
    else:  # what the trial trained: a drawn value replaced the preset's own sections
        fixed = set(flat)
        params.update({own: value for key, value in trial.params.items()
                       for own in own_keys(key, setup.students)
                       if get(setup.base, own) is not None and own not in fixed})
    flat.update(params)
    return _ordered(nest(flat))


def preset_params(preset: Mapping[str, Any], students: Iterable[str]) -> dict[str, Any]:
    """A preset's settings under the search space's names, flat: the inverse of the
    renaming in :func:`preset_settings`, so a shipped preset can be scored as a trial.

    A study that tuned one student writes that student's settings as its own
    (``student.fmlp-o.lam``); its trials draw them as ``student.lam``.
    """
    flat: dict[str, Any] = flatten(copy.deepcopy(dict(preset)))
    names = [name for name in students if name]
    if len(names) != 1:
        return flat
    own = f"student.{tuned_student(names[0])}."
    return {f"student.{key[len(own):]}" if key.startswith(own) else key: value
            for key, value in flat.items()}


def preset_text(study: optuna.Study, setup: TuneSetup, *, command: str | None = None,
                where: str | None = None) -> str:
    """The YAML preset of the best trial, headed by the study's provenance as comments."""
    best = best_trial(study)
    if best is None:
        raise ConfigError(f"study {study.study_name!r} has no complete trial; nothing to write")
    c = counts(study)
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    students = ", ".join(setup.students) if setup.students else "none (teacher alone)"
    head = [
        f"framekd tune preset: best trial {best.number} of study {study.study_name!r}"
        + (f" ({where})" if where else ""),
        f"dataset: {setup.dataset}",
        f"teacher: {setup.teacher}; students: {students}",
        f"protocol: {setup.protocol}; folds: {setup.folds} (splits 0..{setup.folds - 1})",
        f"objective: {setup.description}",
        f"best value: {best.value:.6f}",
        f"trials: {c['complete']} complete, {c['pruned']} pruned, {c['failed']} failed",
        f"epochs while tuning: {setup.epochs or 'as configured'}",
        f"date: {now}",
        f"code: {code_version()}",
    ]
    if command:
        head.append(f"command: {command}")
    head.append(f"use: framekd run --dataset {setup.dataset} --config <this file>")
    body = yaml.safe_dump(preset_settings(best, setup), sort_keys=False)
    return "".join(f"# {line}\n" for line in head) + body


def run(study: optuna.Study, objective: Callable[[optuna.Trial], float], *, trials: int,
        timeout: float | None = None, callbacks: Iterable[Callable] = ()) -> None:
    """``study.optimize`` for ``trials`` new trials (``timeout``: no new trial starts after
    that many seconds; the one in progress finishes)."""
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ConfigError(f"trials must be a positive integer, got {trials!r}")
    if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0):
        raise ConfigError(f"timeout must be a positive number of seconds, got {timeout!r}")
    study.optimize(objective, n_trials=trials, timeout=timeout, callbacks=list(callbacks))
