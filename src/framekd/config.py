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
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from framekd.errors import ConfigError

TEACHERS = ("spatial", "simplified", "gcn", "sage", "gat")
STUDENTS = ("mlp", "fmlp-s", "fmlp-o")
PROTOCOLS = ("fgkd", "geom", "public", "cpf")
KNOWLEDGE_MODES = ("auto", "sketch", "rows", "features")

DEFAULTS: dict[str, Any] = {
    "dataset": None,
    "protocol": "fgkd",
    "seeds": 10,
    "device": "cpu",
    "teacher": {
        "name": "spatial",
        "hidden": 64,
        "layers": 2,
        "dropout": 0.5,
        "epsilon": 0.0,
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


def _merge(base: dict[str, Any], update: Mapping[str, Any], where: str) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in update.items():
        if key not in out:
            known = ", ".join(sorted(out))
            raise ConfigError(f"unknown configuration key '{key}' in {where}; known keys: {known}")
        if isinstance(out[key], dict):
            if not isinstance(value, Mapping):
                raise ConfigError(
                    f"configuration key '{key}' in {where} must be a mapping, got {value!r}"
                )
            out[key] = _merge(out[key], value, f"{where} [{key}]")
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
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from err
    if not isinstance(data, Mapping):
        raise ConfigError(f"config file {path} must hold a mapping at top level")
    return dict(data)


def preset(dataset: str) -> dict[str, Any]:
    """The shipped preset for ``dataset`` (empty when there is none)."""
    name = dataset.lower().replace("/", "_")
    try:
        text = resources.files("framekd.configs").joinpath(f"{name}.yaml").read_text()
    except (FileNotFoundError, OSError):
        return {}
    return dict(yaml.safe_load(text) or {})


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """Turn ``["teacher.hidden=32", "seeds=3"]`` into a nested dict."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value (e.g. teacher.hidden=32), got '{item}'")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
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


def _positive_int(cfg: Mapping[str, Any], section: str, key: str) -> None:
    value = cfg[section][key] if section else cfg[key]
    name = f"{section}.{key}" if section else key
    _check(
        isinstance(value, int) and not isinstance(value, bool) and value >= 1,
        f"{name} must be a positive integer, got {value!r}",
    )


def validate(cfg: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` for any invalid value, naming the key."""
    _check(cfg["protocol"] in PROTOCOLS,
           f"protocol must be one of {', '.join(PROTOCOLS)}, got {cfg['protocol']!r}")
    _positive_int(cfg, "", "seeds")
    t, s, k = cfg["teacher"], cfg["student"], cfg["knowledge"]
    _check(t["name"] in TEACHERS,
           f"teacher.name must be one of {', '.join(TEACHERS)}, got {t['name']!r}")
    for name in cfg["baselines"] or []:
        _check(name in TEACHERS, f"baselines: unknown teacher {name!r}; use {', '.join(TEACHERS)}")
    names = s["names"]
    _check(isinstance(names, list) and len(names) > 0,
           "student.names must be a non-empty list, e.g. [mlp, fmlp-s, fmlp-o]")
    for name in names:
        _check(name in STUDENTS, f"unknown student {name!r}; use {', '.join(STUDENTS)}")
    for section in ("teacher", "student"):
        for key in ("hidden", "epochs", "patience"):
            _positive_int(cfg, section, key)
        d = cfg[section]
        _check(0.0 <= float(d["dropout"]) < 1.0, f"{section}.dropout must be in [0, 1)")
        _check(float(d["lr"]) > 0, f"{section}.lr must be positive, got {d['lr']!r}")
        _check(float(d["weight_decay"]) >= 0, f"{section}.weight_decay must be >= 0")
    _positive_int(cfg, "teacher", "layers")
    _check(isinstance(t["epsilon"], (int, float)), "teacher.epsilon must be a number")
    _check(0.0 <= float(s["lam"]) <= 1.0, f"student.lam must be in [0, 1], got {s['lam']!r}")
    _check(float(s["temperature"]) > 0, "student.temperature must be positive")
    _check(s["batch_size"] is None or (isinstance(s["batch_size"], int) and s["batch_size"] > 0),
           "student.batch_size must be a positive integer or null (full batch)")
    _check(k["mode"] in KNOWLEDGE_MODES,
           f"knowledge.mode must be one of {', '.join(KNOWLEDGE_MODES)}, got {k['mode']!r}")
    _positive_int(cfg, "knowledge", "sketch_dim")
    _check(cfg["rewire"]["method"] in (None, "sdrf"),
           f"rewire.method must be null or sdrf, got {cfg['rewire']['method']!r}")


def config_hash(cfg: Mapping[str, Any], *, ignore: Iterable[str] = ("seeds",)) -> str:
    """Digest of everything in ``cfg`` that changes a seed's results (not the seed count)."""
    keep = {k: v for k, v in cfg.items() if k not in set(ignore)}
    return hashlib.sha256(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()[:16]
