"""Experiment configuration: defaults, per-dataset presets and overrides.

A configuration is a nested dict. It is resolved from, in increasing priority:

1. :data:`DEFAULTS` below;
2. the preset shipped for the dataset (``framekd/configs/<dataset>.yaml``), if any;
3. a user YAML file (``--config FILE``);
4. command-line flags (``--teacher``, ``--seeds`` ...);
5. ``--set key.sub=value`` overrides (values parsed as YAML scalars).

Later sources override earlier ones key by key, never the other way round. The
resolved configuration is validated by :func:`validate` and written next to the
results so a run can be repeated exactly.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from framekd.errors import ConfigError
from framekd.framelets import FrameletSpec
from framekd.models.registry import STUDENTS as _STUDENT_MODELS
from framekd.models.registry import TEACHERS as _TEACHER_MODELS
from framekd.models.registry import model_name

TEACHERS = tuple(_TEACHER_MODELS)
STUDENTS = tuple(_STUDENT_MODELS)
PROTOCOLS = ("fgkd", "geom", "public", "cpf", "random")  # random:TRAIN,VAL,TEST sets ratios
KNOWLEDGE_MODES = ("auto", "sketch", "rows", "features")

DEFAULTS: dict[str, Any] = {
    "dataset": None,
    "protocol": "fgkd",
    "seeds": 10,
    "device": "cpu",
    # transductive: every node and edge seen in training; inductive: GLNN's production
    # setting (framekd.inductive, docs/SPEC.md §9 "Settings").
    "setting": "transductive",
    # What early stopping, the tables and `framekd tune` score by (framekd.metrics):
    # accuracy, balanced_accuracy or roc_auc (binary: P(class 1); multi-class: one-vs-rest
    # macro). Accuracy is always reported as well.
    "metric": "accuracy",
    "teacher": {
        # The spectral framelet teacher contains an MLP and, with smooth=auto, picks by
        # validation whether to smooth its bands (BENCHMARKS.md §8); "spatial" is the
        # paper's SpatUFG.
        "name": "spectral",
        "hidden": 64,
        "layers": 2,
        "dropout": 0.5,
        "epsilon": 0.0,
        # spectral teacher only: channels smoothed by Â_c (none, low, all, learn; auto:
        # the best of none, low and all on validation)
        "smooth": "auto",
        # smooth=auto keeps the least-smoothed mode within this many paired standard errors
        # of the best validation score (0: the best score; framekd.metrics.simplest_within)
        "smooth_se": 0.0,
        # spectral teacher only: one projection for every framelet channel (true), or one
        # per channel starting from the shared one (false)
        "shared_weights": True,
        "lr": 0.01,
        "weight_decay": 5e-4,
        "epochs": 500,
        "patience": 50,
    },
    # Extra teachers trained only as comparison rows of the table (never distilled).
    "baselines": ["gcn"],
    "framelet": {"filters": "haar", "levels": 1, "scale": 2.0, "order": 8, "alpha": None},
    # auto: `features` (K_c^k X) when it takes at most 1 GiB, else `sketch`; see
    # framekd.experiment.knowledge_mode and BENCHMARKS.md §3.1 for why.
    "knowledge": {"mode": "auto", "sketch_dim": 256, "seed": 0},
    "student": {
        "names": ["mlp", "fmlp-s", "fmlp-o"],
        "hidden": 64,
        "dropout": 0.1,
        # FMLP-C only: probability of dropping a node's whole feature row in training
        "feature_dropout": 0.5,
        "lr": 0.01,
        "weight_decay": 5e-4,
        "epochs": 500,
        "patience": 50,
        "lam": 0.0,
        "temperature": 1.0,
        "batch_size": None,
    },
    "rewire": {"method": None, "iterations": None, "tau": None, "removal_bound": None},
}


_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+")


def _numbers(value: Any) -> Any:
    """YAML 1.1 reads ``1e-3`` (no dot) as text; read every such scalar as the number it is."""
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        return float(value)
    if isinstance(value, Mapping):
        return {k: _numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    return value


#: What one student may set for itself under ``student.<name>`` (``glnn``: the distilled
#: MLP; ``mlp`` holds for both MLPs), over the ``student`` settings shared by all.
PER_STUDENT_KEYS = ("hidden", "dropout", "feature_dropout", "lr", "weight_decay", "epochs",
                    "patience", "lam", "temperature")
STUDENT_SECTIONS = (*STUDENTS, "glnn")


def student_sections(name: str) -> tuple[str, ...]:
    """The ``student.<section>`` mappings that hold for student ``name``, later ones
    winning: GLNN reads ``mlp`` and then ``glnn``."""
    key = model_name(name)
    return ("mlp", "glnn") if key == "glnn" else (key,)


def _open_key(path: tuple[str, ...], key: str) -> bool:
    """Whether ``key`` may be added under ``path`` although the defaults lack it: a
    student's own section, or a setting inside one."""
    if path == ("student",):
        return key in STUDENT_SECTIONS
    return len(path) == 2 and path[0] == "student" and path[1] in STUDENT_SECTIONS \
        and key in PER_STUDENT_KEYS


def _merge(base: dict[str, Any], update: Mapping[str, Any], where: str,
           path: tuple[str, ...] = ()) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in update.items():
        if key not in out and _open_key(path, key):
            out[key] = {} if len(path) == 1 else None
        if key not in out:
            if len(path) == 2 and path[0] == "student":
                known = ", ".join(PER_STUDENT_KEYS)
                raise ConfigError(f"unknown setting '{key}' for student {path[1]} in {where}; "
                                  f"a student may set: {known}")
            known = ", ".join(sorted(out))
            if path == ("student",):
                known += "; per student: " + ", ".join(STUDENT_SECTIONS)
            raise ConfigError(f"unknown configuration key '{key}' in {where}; known keys: {known}")
        if isinstance(out[key], dict):
            if not isinstance(value, Mapping):
                raise ConfigError(
                    f"configuration key '{key}' in {where} must be a mapping, got {value!r}"
                )
            out[key] = _merge(out[key], value, f"{where} [{key}]", (*path, key))
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping from ``path`` (safe loader only)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror}") from err
    except UnicodeDecodeError as err:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {err.start}); save it "
                          "as UTF-8") from err
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from err
    if not isinstance(data, Mapping):
        raise ConfigError(f"config file {path} must hold a mapping at top level")
    return _numbers(dict(data))


def preset(dataset: str) -> dict[str, Any]:
    """The shipped preset for ``dataset`` (empty when there is none)."""
    name = dataset.lower().replace("/", "_")
    try:
        text = resources.files("framekd.configs").joinpath(f"{name}.yaml").read_text()
    except (FileNotFoundError, OSError):
        return {}
    return _numbers(dict(yaml.safe_load(text) or {}))


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """Turn ``["teacher.hidden=32", "seeds=3"]`` into a nested dict."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value (e.g. teacher.hidden=32), got '{item}'")
        if not raw.strip():
            raise ConfigError(f"--set {item}: the value is empty; give one (e.g. "
                              f"{key.strip()}=0.5), or {key.strip()}=null to unset it")
        try:
            value = _numbers(yaml.safe_load(raw))
        except yaml.YAMLError as err:
            raise ConfigError(f"--set {item}: cannot parse value '{raw}'") from err
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item}: '{part}' is set twice with different types")
        node[parts[-1]] = value
    return out


def resolve(
    dataset: str,
    *,
    config_file: str | Path | None = None,
    flags: Mapping[str, Any] | None = None,
    overrides: Iterable[str] = (),
) -> dict[str, Any]:
    """Resolve the configuration of a run (see the module docstring for the order)."""
    cfg = _merge(DEFAULTS, {"dataset": dataset}, "defaults")
    cfg = _merge(cfg, preset(dataset), f"the preset for {dataset}")
    if config_file is not None:
        cfg = _merge(cfg, load_yaml(config_file), str(config_file))
    if flags:
        cfg = _merge(cfg, flags, "command-line flags")
    cfg = _merge(cfg, parse_overrides(overrides), "--set")
    validate(cfg)
    return cfg


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


def _positive_int(value: Any, name: str) -> int:
    _check(isinstance(value, int) and not isinstance(value, bool) and value >= 1,
           f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _number(value: Any, name: str) -> float:
    _check(isinstance(value, (int, float)) and not isinstance(value, bool),
           f"{name} must be a number, got {value!r}")
    return float(value)


def _training(d: Mapping[str, Any], section: str) -> dict[str, Any]:
    """The training settings shared by teacher and student sections, checked."""
    out = {key: _positive_int(d[key], f"{section}.{key}") for key in ("hidden", "epochs",
                                                                      "patience")}
    out["dropout"] = _number(d["dropout"], f"{section}.dropout")
    _check(0.0 <= out["dropout"] < 1.0, f"{section}.dropout must be in [0, 1)")
    out["lr"] = _number(d["lr"], f"{section}.lr")
    _check(out["lr"] > 0, f"{section}.lr must be positive, got {d['lr']!r}")
    out["weight_decay"] = _number(d["weight_decay"], f"{section}.weight_decay")
    _check(out["weight_decay"] >= 0, f"{section}.weight_decay must be >= 0")
    return out


@dataclass(frozen=True)
class TeacherSpec:
    """The ``teacher`` section: model, width, depth, ε and its training settings."""

    name: str
    hidden: int
    layers: int
    dropout: float
    epsilon: float
    smooth: str
    smooth_se: float
    shared_weights: bool
    lr: float
    weight_decay: float
    epochs: int
    patience: int

    @classmethod
    def from_dict(cls, t: Mapping[str, Any]) -> TeacherSpec:
        from framekd.models.spectral import SMOOTH_MODES

        _check(t["name"] in TEACHERS,
               f"teacher.name must be one of {', '.join(TEACHERS)}, got {t['name']!r}")
        modes = (*SMOOTH_MODES, "auto")
        _check(t["smooth"] in modes,
               f"teacher.smooth must be one of {', '.join(modes)}, got {t['smooth']!r}")
        smooth_se = _number(t["smooth_se"], "teacher.smooth_se")
        _check(math.isfinite(smooth_se) and smooth_se >= 0,
               f"teacher.smooth_se must be a finite number >= 0, got {t['smooth_se']!r}")
        _check(isinstance(t["shared_weights"], bool),
               f"teacher.shared_weights must be true or false, got {t['shared_weights']!r}")
        return cls(name=t["name"], layers=_positive_int(t["layers"], "teacher.layers"),
                   epsilon=_number(t["epsilon"], "teacher.epsilon"), smooth=t["smooth"],
                   smooth_se=smooth_se, shared_weights=t["shared_weights"],
                   **_training(t, "teacher"))


@dataclass(frozen=True)
class StudentSpec:
    """The ``student`` section: which students, their width and distillation settings.

    The settings are shared by every student unless one sets its own under
    ``student.<name>`` (``student: {fmlp-c: {lam: 0.9}}``, ``--set student.fmlp-c.lam=0.9``);
    :meth:`for_model` gives one student's settings. ``mlp`` holds for the label-only MLP and
    for GLNN, ``glnn`` for GLNN alone, on top of ``mlp``.
    """

    names: tuple[str, ...]
    hidden: int
    dropout: float
    lr: float
    weight_decay: float
    epochs: int
    patience: int
    lam: float
    temperature: float
    batch_size: int | None
    feature_dropout: float = 0.5
    #: ``{student: {setting: value}}``: the settings a student sets for itself.
    own: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, hash=False)

    @classmethod
    def from_dict(cls, s: Mapping[str, Any], section: str = "student") -> StudentSpec:
        names = s["names"]
        _check(isinstance(names, list) and len(names) > 0,
               f"{section}.names must be a non-empty list, e.g. [mlp, fmlp-s, fmlp-o]")
        for name in names:
            _check(name in STUDENTS, f"unknown student {name!r}; use {', '.join(STUDENTS)}")
        lam = _number(s["lam"], f"{section}.lam")
        _check(0.0 <= lam <= 1.0, f"{section}.lam must be in [0, 1], got {s['lam']!r}")
        temperature = _number(s["temperature"], f"{section}.temperature")
        _check(temperature > 0, f"{section}.temperature must be positive")
        feature_dropout = _number(s["feature_dropout"], f"{section}.feature_dropout")
        _check(0.0 <= feature_dropout < 1.0,
               f"{section}.feature_dropout must be in [0, 1), got {s['feature_dropout']!r}")
        batch = s["batch_size"]
        _check(batch is None or (isinstance(batch, int) and not isinstance(batch, bool)
                                 and batch > 0),
               f"{section}.batch_size must be a positive integer or null (full batch)")
        own = {name: dict(s[name]) for name in STUDENT_SECTIONS if s.get(name)}
        spec = cls(names=tuple(names), lam=lam, temperature=temperature, batch_size=batch,
                   feature_dropout=feature_dropout, own=own, **_training(s, section))
        for name in own:  # each student's own settings, checked once here
            spec.for_model(name)
        return spec

    def for_model(self, name: str) -> StudentSpec:
        """The settings of student ``name`` (``glnn`` for the distilled MLP): the shared
        ones with the student's own on top."""
        layers = student_sections(name)
        mine = {k: v for layer in layers for k, v in self.own.get(layer, {}).items()}
        if not mine:
            return self
        base = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "own"}
        merged = {**base, **mine, "names": list(self.names)}
        spec = StudentSpec.from_dict(merged, section=f"student.{layers[-1]}")
        return replace(spec, own=self.own)


@dataclass(frozen=True)
class RunConfig:
    """A resolved run configuration, validated once and typed.

    The YAML/``--set`` form is a nested dict (:func:`resolve`); :meth:`from_dict` checks it
    and turns every section into its spec: :class:`TeacherSpec`, :class:`StudentSpec`,
    :class:`~framekd.framelets.FrameletSpec`, the knowledge settings and, with
    ``rewire.method: sdrf``, an :class:`~framekd.rewire.SDRFSpec` (the dataset's preset
    filling the fields not given). Code after the edge reads these, never the dict.
    """

    dataset: str
    protocol: str
    seeds: int
    device: str
    teacher: TeacherSpec
    baselines: tuple[str, ...]
    framelet: FrameletSpec
    knowledge_mode: str
    sketch_dim: int
    sketch_seed: int
    student: StudentSpec
    rewire: Any = None  # framekd.rewire.SDRFSpec or None
    setting: str = "transductive"  # or "inductive" (framekd.inductive)
    metric: str = "accuracy"  # framekd.metrics.METRICS
    #: The validated dict itself (what ``config.yaml`` holds).
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def digest(self) -> str:
        """:func:`run_config_digest` of the configuration: the hash its seeds record."""
        return run_config_digest(self.raw)

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any]) -> RunConfig:
        """Validate ``cfg``; raise :class:`ConfigError` naming the key of any bad value."""
        _check_protocol(cfg["protocol"])
        baselines = cfg["baselines"] or []
        _check(isinstance(baselines, list),
               f"baselines must be a list of teacher names, got {baselines!r}")
        for name in baselines:
            _check(name in TEACHERS,
                   f"baselines: unknown teacher {name!r}; use {', '.join(TEACHERS)}")
        k = cfg["knowledge"]
        _check(k["mode"] in KNOWLEDGE_MODES,
               f"knowledge.mode must be one of {', '.join(KNOWLEDGE_MODES)}, got {k['mode']!r}")
        seed = k.get("seed", 0)
        _check(isinstance(seed, int) and not isinstance(seed, bool),
               f"knowledge.seed must be an integer, got {seed!r}")
        from framekd.inductive import SETTINGS

        setting = cfg.get("setting", "transductive")
        _check(setting in SETTINGS,
               f"setting must be one of {', '.join(SETTINGS)}, got {setting!r}")
        from framekd.metrics import METRICS

        metric = cfg.get("metric", "accuracy")
        _check(isinstance(metric, str) and metric in METRICS,
               f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
        rw = cfg["rewire"]
        _check(rw["method"] in (None, "sdrf"),
               f"rewire.method must be null or sdrf, got {rw['method']!r}")
        rewire = None
        if rw["method"] == "sdrf":
            from framekd.rewire import SDRFSpec

            given = {key: rw[key] for key in ("iterations", "tau", "removal_bound")}
            rewire = SDRFSpec.from_preset(str(cfg["dataset"]), **given)
        return cls(
            dataset=str(cfg["dataset"]),
            protocol=cfg["protocol"],
            seeds=_positive_int(cfg["seeds"], "seeds"),
            device=str(cfg["device"]),
            teacher=TeacherSpec.from_dict(cfg["teacher"]),
            baselines=tuple(baselines),
            framelet=_framelet(cfg["framelet"]),
            knowledge_mode=k["mode"],
            sketch_dim=_positive_int(k["sketch_dim"], "knowledge.sketch_dim"),
            sketch_seed=seed,
            student=StudentSpec.from_dict(cfg["student"]),
            rewire=rewire,
            setting=setting,
            metric=metric,
            raw=copy.deepcopy(dict(cfg)),
        )


def _check_protocol(value: Any) -> None:
    """A protocol name of :data:`PROTOCOLS`, or a ``random:TRAIN,VAL,TEST`` spec."""
    from framekd.errors import SplitError
    from framekd.splits import parse_protocol

    _check(isinstance(value, str),
           f"protocol must be one of {', '.join(PROTOCOLS)}, got {value!r}")
    try:
        parse_protocol(value)
    except SplitError as err:
        raise ConfigError(f"protocol: {err}") from None


def _framelet(fr: Mapping[str, Any]) -> FrameletSpec:
    try:
        return FrameletSpec.coerce(fr)
    except ConfigError as err:
        raise ConfigError(f"framelet: {err}") from err


def validate(cfg: Mapping[str, Any]) -> RunConfig:
    """Raise :class:`ConfigError` for any invalid value, naming the key; return the typed
    :class:`RunConfig`."""
    return RunConfig.from_dict(cfg)


#: Keys that joined the configuration after run folders existed, with their defaults: at
#: the default they change no result, so :func:`run_config_digest` leaves them out and
#: folders written before them still resume.
LATER_KEYS: tuple[tuple[tuple[str, ...], Any], ...] = (
    (("setting",), "transductive"),
    (("metric",), "accuracy"),
    (("student", "feature_dropout"), 0.5),
    (("teacher", "smooth_se"), 0.0),
    (("teacher", "shared_weights"), True),
)


def run_config_digest(cfg: Mapping[str, Any]) -> str:
    """:func:`config_hash` of a run's configuration without the :data:`LATER_KEYS` that
    hold their defaults (``cfg`` is not modified)."""
    raw = dict(cfg)
    for path, default in LATER_KEYS:
        *parents, key = path
        node = raw
        for name in parents:
            if not isinstance(node.get(name), Mapping):
                break
            child = dict(node[name])
            node[name] = child
            node = child
        else:
            if node.get(key, default) == default:
                node.pop(key, None)
    return config_hash(raw)


def config_hash(cfg: Mapping[str, Any], *, ignore: Iterable[str] = ("seeds",)) -> str:
    """Digest of everything in ``cfg`` that changes a seed's results (not the seed count)."""
    keep = {k: v for k, v in cfg.items() if k not in set(ignore)}
    return hashlib.sha256(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()[:16]
