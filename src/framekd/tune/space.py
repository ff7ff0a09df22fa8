"""The search spaces of ``framekd tune``, declared in one place.

Every searched setting is a :class:`Param`: the dotted configuration key it sets (also its
Optuna parameter name, so a trial's ``params`` read as ``--set`` overrides), its Optuna
distribution, and the group that decides when it is searched:

* ``teacher``: always (``teacher.hidden`` only for teachers with a hidden layer);
* ``framelet``: ε and the framelet bank, when the teacher is a framelet teacher
  (:data:`framekd.models.registry.FRAMELET_TEACHERS`) or a listed student reads the graph
  knowledge (both are computed with the framelet operator);
* ``knowledge``: knowledge mode and sketch width, when a listed student reads the knowledge
  (not for ``mlp`` alone); ``rows`` is never searched (N² memory);
* ``student``: the distillation settings, when students are tuned;
* ``sdrf``: the SDRF settings, with ``--rewire sdrf``.

A setting the user fixes (``--set`` / ``--config``) is never searched; a student setting
counts as fixed when every tuned student sets it for itself (``student.fmlp-c.lam``). The
knowledge powers are ``teacher.layers`` (one power per teacher layer).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

GROUPS = ("teacher", "framelet", "knowledge", "student", "sdrf")
#: ``only_if`` keys known before any trial: the teacher's name and the tuned students.
STATIC_CONDITIONS = ("teacher.name", "student.names")
HIDDEN = (32, 64, 128, 256)


@dataclass(frozen=True)
class Param:
    """One searched setting.

    Attributes:
        key: dotted configuration key (``section.name``), also the Optuna parameter name.
        distribution: the Optuna distribution it is drawn from.
        group: one of :data:`GROUPS` (see the module docstring).
        only_if: ``(key, value)``: drawn only when that setting (drawn earlier in
            :data:`SEARCH_SPACE` or fixed) equals ``value``; for the keys of
            :data:`STATIC_CONDITIONS`, decided once by :func:`search_space` (``teacher.name``
            equals ``value``; ``value`` is one of the tuned ``student.names``).
    """

    key: str
    distribution: BaseDistribution
    group: str
    only_if: tuple[str, Any] | None = None

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(self.key.split("."))


def _log(low: float, high: float) -> FloatDistribution:
    return FloatDistribution(low, high, log=True)


def _choice(*values: Any) -> CategoricalDistribution:
    return CategoricalDistribution(values)


#: Every searchable setting, in the order a trial draws them.
SEARCH_SPACE: tuple[Param, ...] = (
    # teacher
    Param("teacher.lr", _log(1e-3, 5e-2), "teacher"),
    Param("teacher.weight_decay", _log(1e-6, 1e-2), "teacher"),
    Param("teacher.hidden", _choice(*HIDDEN), "teacher"),
    Param("teacher.dropout", FloatDistribution(0.0, 0.8), "teacher"),
    Param("teacher.layers", IntDistribution(1, 4), "teacher"),
    Param("teacher.smooth", _choice("none", "low", "all"), "teacher",
          only_if=("teacher.name", "spectral")),
    Param("teacher.shared_weights", _choice(True, False), "teacher",
          only_if=("teacher.name", "spectral")),
    # framelet operator (framelet teachers, and the students' knowledge)
    Param("teacher.epsilon", FloatDistribution(-0.5, 0.5), "framelet"),
    Param("framelet.filters", _choice("haar", "linear", "quadratic"), "framelet"),
    Param("framelet.levels", IntDistribution(1, 3), "framelet"),
    Param("framelet.order", _choice(4, 8, 12, 16), "framelet"),
    # knowledge handed to the students
    Param("knowledge.mode", _choice("features", "sketch"), "knowledge"),
    Param("knowledge.sketch_dim", _choice(64, 128, 256, 512), "knowledge",
          only_if=("knowledge.mode", "sketch")),
    # students
    Param("student.lam", FloatDistribution(0.0, 1.0), "student"),
    Param("student.temperature", _log(0.5, 4.0), "student"),
    Param("student.hidden", _choice(*HIDDEN), "student"),
    Param("student.dropout", FloatDistribution(0.0, 0.8), "student"),
    Param("student.lr", _log(1e-3, 5e-2), "student"),
    Param("student.feature_dropout", FloatDistribution(0.0, 0.9), "student",
          only_if=("student.names", "fmlp-c")),
    # SDRF (--rewire sdrf); C+ = removal_bound
    Param("rewire.iterations", IntDistribution(10, 2500, log=True), "sdrf"),
    Param("rewire.tau", _log(1.0, 500.0), "sdrf"),
    Param("rewire.removal_bound", _log(0.1, 20.0), "sdrf"),
)


def flatten(nested: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"teacher": {"lr": 0.1}}`` → ``{"teacher.lr": 0.1}``."""
    out: dict[str, Any] = {}
    for key, value in nested.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{"teacher.lr": 0.1}`` → ``{"teacher": {"lr": 0.1}}``."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return out


def get(cfg: Mapping[str, Any], key: str) -> Any:
    """The value of dotted ``key`` in the nested ``cfg`` (``None`` when absent)."""
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def put(cfg: dict[str, Any], key: str, value: Any) -> None:
    """Set dotted ``key`` in the nested ``cfg`` in place."""
    *parents, last = key.split(".")
    node = cfg
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def uses_knowledge(students: Iterable[str]) -> bool:
    """Whether any of ``students`` reads the graph knowledge (every student but the MLPs)."""
    from framekd.models.registry import reads_knowledge

    return any(reads_knowledge(s) for s in students)


def tuned_student(name: str) -> str:
    """The model a tuned student ``name`` is: ``mlp`` tuned is the distilled MLP (GLNN)."""
    from framekd.models.registry import DISTILLED_MLP

    return DISTILLED_MLP if name == "mlp" else name


def _own_keys_of(key: str, name: str) -> list[str]:
    """The dotted keys of the own sections of the tuned student ``name`` that would hold the
    student setting ``key``, later ones winning (``student.lam`` -> ``student.fmlp-c.lam``)."""
    from framekd.config import student_sections

    setting = key[len("student."):]
    return [f"student.{section}.{setting}" for section in student_sections(tuned_student(name))]


def own_keys(key: str, students: Iterable[str]) -> list[str]:
    """The dotted keys of the own sections of ``students`` (tuned names) that would hold the
    student setting ``key`` (none for a key outside ``student``)."""
    if not key.startswith("student."):
        return []
    return [own for name in students for own in _own_keys_of(key, name)]


def student_value(cfg: Mapping[str, Any], key: str, students: Iterable[str]) -> Any:
    """The value of ``key`` that ``students`` train with in ``cfg``: a setting their own
    sections agree on (a dataset preset may ship one, e.g. ``student.fmlp-c.lam``), else the
    shared ``student`` value."""
    shared = get(cfg, key)
    students = list(students)
    if not key.startswith("student.") or not students:
        return shared

    def used_by(name: str) -> Any:
        value = shared
        for own in _own_keys_of(key, name):
            mine = get(cfg, own)
            if mine is not None:
                value = mine
        return value

    values = [used_by(name) for name in students]
    return values[0] if all(v == values[0] for v in values) else shared


def _fixed_by_students(key: str, students: tuple[str, ...], fixed: set[str]) -> bool:
    """Whether every one of ``students`` sets the student setting ``key`` for itself."""
    if not students or not key.startswith("student."):
        return False
    return all(any(own in fixed for own in _own_keys_of(key, name)) for name in students)


def search_space(
    teacher: str, students: Iterable[str] = (), *, sdrf: bool = False,
    fixed: Iterable[str] = (), space: Iterable[Param] = SEARCH_SPACE,
    only: Iterable[str] | None = None,
) -> list[Param]:
    """The parameters searched when tuning ``teacher`` (and ``students``), in draw order.

    ``fixed`` holds the dotted keys the user fixed; they are left out. ``only`` (groups of
    :data:`GROUPS` or dotted keys) keeps just those parameters, e.g. ``["student"]`` to tune
    the students on a fixed teacher. Teacher kinds come from :mod:`framekd.models.registry`
    when called, so a teacher added there is covered.
    """
    from framekd.models import registry

    students = tuple(students)
    knowledge = uses_knowledge(students)
    active = {
        "teacher": True,
        "framelet": teacher in registry.FRAMELET_TEACHERS or knowledge,
        "knowledge": knowledge,
        "student": bool(students),
        "sdrf": sdrf,
    }
    fixed = set(fixed)
    out = []
    for p in space:
        if p.group not in active:
            raise ValueError(f"search parameter {p.key}: unknown group {p.group!r}")
        if not active[p.group] or p.key in fixed or _fixed_by_students(p.key, students, fixed):
            continue
        if p.key == "teacher.hidden" and teacher in getattr(registry, "NO_HIDDEN", ()):
            continue
        if p.only_if is not None and p.only_if[0] == "teacher.name" and p.only_if[1] != teacher:
            continue
        if p.only_if is not None and p.only_if[0] == "student.names" \
                and p.only_if[1] not in students:
            continue
        out.append(p)
    if only is not None:
        who = f"teacher {teacher} and " + (f"students {', '.join(students)}" if students
                                            else "no students (tune them with --students)")
        out = _restrict(out, list(space), list(only), who)
    return out


def _restrict(chosen: list[Param], space: list[Param], only: list[str],
              who: str) -> list[Param]:
    """The parameters of ``chosen`` named by group or key in ``only`` (``who``: the tuned
    models, for the error)."""
    from framekd.errors import ConfigError

    names = {p.key for p in space} | set(GROUPS)
    unknown = [name for name in only if name not in names]
    if unknown or not only:
        raise ConfigError(f"cannot search {', '.join(map(repr, unknown)) or 'nothing'}: "
                          f"name groups ({', '.join(GROUPS)}) or keys "
                          f"({', '.join(p.key for p in space)})")
    out = [p for p in chosen if p.group in only or p.key in only]
    if not out:
        raise ConfigError(f"nothing to search: {', '.join(only)} is fixed or not used by "
                          f"{who}")
    return out


def suggest(trial: Any, param: Param) -> Any:
    """Draw ``param`` in ``trial`` (an :class:`optuna.Trial`) with the public suggest API."""
    d = param.distribution
    if isinstance(d, FloatDistribution):
        return trial.suggest_float(param.key, d.low, d.high, log=d.log, step=d.step)
    if isinstance(d, IntDistribution):
        return trial.suggest_int(param.key, d.low, d.high, log=d.log, step=d.step)
    if isinstance(d, CategoricalDistribution):
        return trial.suggest_categorical(param.key, d.choices)
    raise TypeError(f"search parameter {param.key}: unsupported distribution {d!r}")
