"""The results of a run: per-seed records, claims on seeds, aggregation and tables.

A finished seed is ``OUT/seed_<i>/metrics.json`` (:class:`SeedResult`), checked against the
run's configuration digest (:func:`run_digest`) and against the size and sha256 of every file
of the seed (its ``artifacts`` record, :func:`artifact_record`) before it is reused
(:func:`inspect_seed`; a damaged seed is run again); a seed in progress holds
a claim file (:func:`claim_seed`) so that several processes on one ``OUT`` split the seeds.
:func:`aggregate` turns the seeds into the ``metrics.json`` document and
:func:`results_table` into Markdown.
"""

from __future__ import annotations

import math
import os
import socket
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from framekd.config import RunConfig, run_config_digest
from framekd.errors import CheckpointError, ConfigError
from framekd.io import file_sha256, read_json
from framekd.models.registry import ROW_ORDER

#: A process running a seed holds this file in the seed's folder.
CLAIM_FILE = "CLAIM"


@dataclass
class SeedResult:
    """Per-model metrics of one seed: accuracy, train and inference seconds; ``info`` holds
    the inductive setting's per-seed facts (unseen nodes, knowledge timings)."""

    seed: int
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


def run_digest(cfg: RunConfig | dict[str, Any]) -> str:
    """The configuration hash a finished seed is checked against:
    :func:`framekd.config.run_config_digest` (keys added later leave it at their defaults)."""
    return run_config_digest(cfg.raw if isinstance(cfg, RunConfig) else cfg)


#: The file of a finished seed; written last, atomically, so it marks the seed as done.
SEED_METRICS = "metrics.json"


def artifact_record(seed_dir: str | Path, names: list[str]) -> dict[str, dict[str, Any]]:
    """``{name: {"size": bytes, "sha256": hex}}`` of the files ``names`` in ``seed_dir``, read
    back from disk (a seed's ``metrics.json`` holds it as ``artifacts``)."""
    seed_dir = Path(seed_dir)
    return {name: {"size": (seed_dir / name).stat().st_size,
                   "sha256": file_sha256(seed_dir / name)} for name in names}




def _finite(value: Any) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value))


def metric_keys(metric: str, inductive: bool = False) -> tuple[str, ...]:
    """The score keys of a model's row: ``accuracy`` (and ``tran_``/``ind_`` in the inductive
    setting), plus the same for ``metric`` when it is not accuracy."""
    names = ("accuracy",) if metric == "accuracy" else ("accuracy", metric)
    if not inductive:
        return names
    return tuple(f"{p}{n}" for n in names for p in ("", "tran_", "ind_"))


def metric_row(res: Any) -> dict[str, float]:
    """The extra entries of a model's row for a run scored by a metric other than accuracy:
    ``{metric: test score, "val_<metric>": validation score}`` of a
    :class:`~framekd.distill.TrainResult` (empty for accuracy)."""
    if res.metric == "accuracy":
        return {}
    return {res.metric: res.test_score, f"val_{res.metric}": res.val_score}


def _check_models(models: Any, inductive: bool, metric: str = "accuracy") -> str | None:
    """Why the ``models`` mapping of a seed cannot be aggregated, or ``None``."""
    if not isinstance(models, dict) or not models:
        return f'{SEED_METRICS} has no "models" mapping'
    keys = (*metric_keys(metric, inductive), "train_seconds", "inference_seconds")
    for name, row in models.items():
        if not isinstance(row, dict) or not isinstance(row.get("role"), str):
            return f"{SEED_METRICS}: the entry of model {name!r} is not a result row"
        for key in keys:
            if not _finite(row.get(key)):
                return (f"{SEED_METRICS}: {key} of {name} is {row.get(key)!r}, "
                        "not a finite number")
    return None


def _check_inductive(info: Any) -> str | None:
    """Why the ``inductive`` facts of a seed cannot be aggregated, or ``None``."""
    try:
        ok = (_finite(info["knowledge_seconds"])
              and isinstance(info["test_knowledge"]["method"], str)
              and _finite(info["test_knowledge"]["seconds"])
              and all(_finite(info["unseen_receptive_field"][k]) for k in
                      ("radius", "num_nodes", "num_edges", "graph_nodes", "graph_edges")))
    except (KeyError, TypeError):
        ok = False
    return None if ok else f'{SEED_METRICS} has no valid "inductive" record'


def _check_artifacts(seed_dir: Path, artifacts: Any, models: dict[str, Any]) -> str | None:
    """Why the files of a seed do not match their record, or ``None``."""
    if artifacts is None:
        return (f'{SEED_METRICS} has no "artifacts" record: written by an older framekd, '
                "its files cannot be checked")
    if not isinstance(artifacts, dict):
        return f'{SEED_METRICS}: "artifacts" is not a mapping'
    for name in ("teacher_logp.safetensors", "split.safetensors",
                 *(f"{m}.safetensors" for m in models)):
        if name not in artifacts:
            return f'{SEED_METRICS}: "artifacts" does not list {name}'
    for name, rec in artifacts.items():
        if (not isinstance(name, str) or name in ("", ".", "..", SEED_METRICS, CLAIM_FILE)
                or "/" in name or "\\" in name):
            return f'{SEED_METRICS}: "artifacts" lists {name!r}, not a file of the seed'
        if (not isinstance(rec, dict) or not isinstance(rec.get("size"), int)
                or isinstance(rec.get("size"), bool) or not isinstance(rec.get("sha256"), str)):
            return f'{SEED_METRICS}: the "artifacts" entry of {name} has no size and sha256'
        path = seed_dir / name
        if not path.is_file():
            return f"{name} is missing"
        try:
            size = path.stat().st_size
            if size != rec["size"]:
                return f"{name}: size {size} bytes, expected {rec['size']}"
            if file_sha256(path) != rec["sha256"].lower():
                return f"{name}: sha256 differs from the one recorded"
        except OSError as err:
            return f"{name} cannot be read ({err.strerror or err})"
    return None


def inspect_seed(
    seed_dir: str | Path, cfg: RunConfig | dict[str, Any], seed: int | None = None,
) -> tuple[SeedResult | None, str | None]:
    """Whether ``seed_dir`` holds a finished seed of the run ``cfg``.

    ``(result, None)`` when it does: ``metrics.json`` is a JSON object with ``seed`` (equal
    to ``seed`` when given), ``config_hash``, a ``models`` mapping of finite accuracies and
    timings, and an ``artifacts`` record that every listed file matches in size and sha256.
    ``(None, None)`` when the seed has not finished (no ``metrics.json``), ``(None, why)``
    when it is damaged and must be run again (a folder of an older framekd, without
    ``artifacts``, counts as damaged). A ``metrics.json`` of a different configuration
    raises :class:`ConfigError`: that is another run's folder.
    """
    seed_dir = Path(seed_dir)
    raw = cfg.raw if isinstance(cfg, RunConfig) else cfg
    path = seed_dir / SEED_METRICS
    if not path.exists():
        return None, None
    try:
        saved = read_json(path)
    except CheckpointError:
        return None, f"{SEED_METRICS} is not valid JSON"
    except OSError as err:
        return None, f"{SEED_METRICS} cannot be read ({err.strerror or err})"
    if not isinstance(saved, dict):
        return None, f"{SEED_METRICS} is not a JSON object"
    digest = saved.get("config_hash")
    if not isinstance(digest, str):
        return None, f'{SEED_METRICS} has no "config_hash"'
    if digest != run_digest(raw):
        raise ConfigError(
            f"{seed_dir} holds results of a different configuration; use another --out "
            "directory or pass --force to overwrite"
        )
    got = saved.get("seed")
    if not isinstance(got, int) or isinstance(got, bool) or (seed is not None and got != seed):
        expected = "an integer" if seed is None else seed
        return None, f'{SEED_METRICS}: "seed" is {got!r}, expected {expected}'
    inductive = raw.get("setting", "transductive") == "inductive"
    models = saved.get("models")
    why = _check_models(models, inductive, raw.get("metric", "accuracy"))
    notes = saved.get("notes", [])
    if why is None and not (isinstance(notes, list) and all(isinstance(n, str) for n in notes)):
        why = f'{SEED_METRICS}: "notes" is not a list of strings'
    info = saved.get("inductive", {})
    if why is None and inductive:
        why = _check_inductive(info)
    if why is None:
        why = _check_artifacts(seed_dir, saved.get("artifacts"), models)
    if why is not None:
        return None, why
    return SeedResult(seed=got, models=models, notes=notes, info=info), None


def damaged_notice(seed: int, seed_dir: str | Path, why: str) -> str:
    """The one line a run logs before it runs a damaged seed again."""
    return f"framekd: seed {seed} in {seed_dir} is damaged ({why}); running it again"


def _load_seed(seed_dir: Path, cfg: dict[str, Any], seed: int | None = None) -> SeedResult | None:
    """The finished seed in ``seed_dir``, or ``None`` when it is unfinished or damaged
    (:func:`inspect_seed`)."""
    return inspect_seed(seed_dir, cfg, seed)[0]


def claim_seed(seed_dir: str | Path) -> Path | None:
    """Claim a seed for this process: the path of the claim file, or ``None`` when taken.

    The claim is ``seed_dir/CLAIM`` (host and process id), so several ``framekd run``
    processes on one ``--out`` split the seeds between them. It is written whole to a file
    of this process's own and then hard-linked to ``CLAIM``, which fails if ``CLAIM``
    exists: no process ever reads a half-written claim (one created empty and filled after
    could be read as stale and taken over, and two processes then ran the same seed). A
    claim whose process is gone (same host, no such process id) is stale and is taken over
    under a second claim, ``CLAIM.takeover``, so that of two processes that find it stale
    at once only one replaces it. The caller deletes the file when the seed is finished or
    has failed.
    """
    seed_dir = Path(seed_dir)
    seed_dir.mkdir(parents=True, exist_ok=True)
    path = seed_dir / CLAIM_FILE
    mine = seed_dir / f".{CLAIM_FILE}.{socket.gethostname()}.{os.getpid()}"
    mine.write_text(f"{socket.gethostname()} {os.getpid()}\n")
    try:
        for _ in range(2):
            if _link(mine, path):
                return path
            if _claim_alive(path):
                return None
            if _take_over(mine, path):
                return path
        return None
    finally:
        mine.unlink(missing_ok=True)


def _link(mine: Path, path: Path) -> bool:
    """Create ``path`` with ``mine``'s content unless it exists; whether it was created."""
    try:
        os.link(mine, path)
    except FileExistsError:
        return False
    except OSError:  # a file system without hard links: create, then fill (a short window)
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            f.write(mine.read_text())
    return True


def _take_over(mine: Path, path: Path) -> bool:
    """Replace the stale claim ``path`` by ``mine`` while holding ``path.takeover``."""
    lock = path.with_name(f"{path.name}.takeover")
    if not _link(mine, lock):
        if not _claim_alive(lock):  # its process died while taking over
            lock.unlink(missing_ok=True)
        return False
    try:
        if _claim_alive(path):  # read again under the lock: another process took it over
            return False
        path.unlink(missing_ok=True)
        return _link(mine, path)  # fails if a process claimed the free seed meanwhile
    finally:
        lock.unlink(missing_ok=True)


def _claim_alive(path: Path) -> bool:
    try:
        host, pid = path.read_text().split()
        pid = int(pid)
    except (OSError, ValueError):
        return False  # unreadable or half-written by a process that died
    if host != socket.gethostname() or os.name != "posix":
        return True  # cannot check another machine's processes: assume it is running
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _collect_busy(out: Path, busy: list[int], cfg: dict[str, Any],
                  log: Callable[[str], None]) -> list[SeedResult]:
    """The seeds other processes held during the loop, as far as they have finished."""
    found, missing = [], []
    for s in busy:
        seed_dir = out / f"seed_{s}"
        result, why = inspect_seed(seed_dir, cfg, s)
        if result is not None:
            found.append(result)
        elif why is not None and not _claim_alive(seed_dir / CLAIM_FILE):
            log(f"framekd: seed {s} in {seed_dir} is damaged ({why}); this table leaves it "
                "out: run the same command again to run it again")
        else:
            missing.append(s)
    if missing:
        log(f"framekd: seed(s) {', '.join(map(str, missing))} are being run by another "
            f"process ({CLAIM_FILE} in their folder under {out}); this table leaves them "
            "out: run the same command again once that process has finished")
    return found


def _stats(prefix: str, values: list[float]) -> dict[str, Any]:
    return {
        f"{prefix}_mean": statistics.fmean(values),
        f"{prefix}_std": statistics.pstdev(values) if len(values) > 1 else 0.0,
        prefix: values,
    }


def aggregate(cfg: dict[str, Any], seeds: list[SeedResult], extra: dict[str, Any], *,
              world_size: int = 1) -> dict:
    """The ``metrics.json`` document: per-model mean ± std over seeds; ``world_size`` is the
    number of processes of the run (1 for one process, P under torchrun).

    Every model has ``accuracy_mean``, ``accuracy_std``, ``accuracy`` (per seed),
    ``train_seconds`` and ``inference_seconds``; in the inductive setting ``accuracy`` is
    ``prod`` and ``tran_accuracy*`` / ``ind_accuracy*`` follow the same pattern. A run
    scored by another metric (``metric: roc_auc`` ...) has the top-level ``"metric"`` and
    the same keys for it (``roc_auc_mean``, ``roc_auc_std``, ``roc_auc``, ``tran_roc_auc*``
    ...) beside the accuracies.
    """
    metric = cfg.get("metric", "accuracy")
    names = [n for n in ROW_ORDER if any(n in s.models for s in seeds)]
    models = {}
    for name in names:
        rows = [s.models[name] for s in seeds if name in s.models]
        models[name] = {"role": rows[0]["role"],
                        **_stats("accuracy", [float(r["accuracy"]) for r in rows])}
        for part in metric_keys(metric, inductive=True)[1:]:
            if all(part in r for r in rows):
                models[name].update(_stats(part, [float(r[part]) for r in rows]))
        models[name].update(
            train_seconds=statistics.fmean(float(r["train_seconds"]) for r in rows),
            inference_seconds=statistics.fmean(float(r["inference_seconds"]) for r in rows),
        )
    doc = {
        "dataset": str(cfg["dataset"]),
        "protocol": cfg["protocol"],
        "setting": cfg.get("setting", "transductive"),
        "world_size": int(world_size),
        "seeds": [s.seed for s in seeds],
        "models": models,
        **extra,
    }
    if metric != "accuracy":
        doc["metric"] = metric
    return doc


def _metric(metrics: dict[str, Any]) -> tuple[str, str]:
    """The run's metric and how the table names it (``roc_auc``, ``ROC-AUC`` ...)."""
    from framekd.metrics import LABELS

    metric = metrics.get("metric", "accuracy")
    return metric, LABELS.get(metric, metric)


def results_table(metrics: dict[str, Any]) -> str:
    """A Markdown table of ``metrics`` (scores in %, times in seconds / milliseconds); an
    inductive run has prod, tran and ind columns. A run scored by another metric than
    accuracy (``metrics["metric"]``) shows it first, then accuracy; ROC-AUC of a
    multi-class task is the one-vs-rest macro average (:mod:`framekd.metrics`)."""
    if metrics.get("setting") == "inductive":
        return _inductive_table(metrics)
    metric, label = _metric(metrics)
    keys = ["accuracy"] if metric == "accuracy" else [metric, "accuracy"]
    names = " | ".join(label if k == metric else "accuracy" for k in keys)
    head = (
        f"**{metrics['dataset']}**, protocol `{metrics['protocol']}`, "
        f"{len(metrics['seeds'])} seed(s); test {label} mean ± std (%)"
        + ("" if metric == "accuracy" else ", accuracy beside it") + _metric_note(metric)
        + f"\n\n| model | role | {names} | train (s) | inference (ms) |\n"
        + "|---|---|" + "---:|" * len(keys) + "---:|---:|\n"
    )
    lines = []
    for name, m in metrics["models"].items():
        cells = " | ".join(_pm(m, k) if f"{k}_mean" in m else "–" for k in keys)
        lines.append(
            f"| {name} | {m['role']} | {cells} | {m['train_seconds']:.2f} | "
            f"{1000 * m['inference_seconds']:.2f} |"
        )
    foot = ""
    if "knowledge_seconds" in metrics:
        foot = (f"\nKnowledge precompute ({metrics.get('knowledge_mode')}): "
                f"{metrics['knowledge_seconds']:.2f} s, once per graph, not in inference.\n")
    return head + "\n".join(lines) + "\n" + foot


def _pm(m: dict[str, Any], key: str) -> str:
    return f"{100 * m[f'{key}_mean']:.2f} ± {100 * m[f'{key}_std']:.2f}"


def _metric_note(metric: str) -> str:
    if metric == "roc_auc":
        return " (binary: ranked by P(class 1); multi-class: one-vs-rest, macro average)"
    if metric == "balanced_accuracy":
        return " (mean recall over the classes)"
    return ""


def _inductive_table(metrics: dict[str, Any]) -> str:
    ind = metrics.get("inductive", {})
    share = 100 * ind.get("unseen_fraction", 0.2)
    metric, label = _metric(metrics)
    head = (
        f"**{metrics['dataset']}**, protocol `{metrics['protocol']}`, inductive setting "
        f"({share:.0f} % of the test nodes unseen in training), {len(metrics['seeds'])} "
        f"seed(s); test {label} mean ± std (%){_metric_note(metric)}: tran on observed test "
        "nodes, ind on unseen ones, prod = 0.8 tran + 0.2 ind\n\n"
        "| model | role | prod | tran | ind | train (s) | inference (ms) |\n"
        "|---|---|---:|---:|---:|---:|---:|\n"
    )
    lines = [
        f"| {name} | {m['role']} | {_pm(m, metric)} | {_pm(m, 'tran_' + metric)} | "
        f"{_pm(m, 'ind_' + metric)} | {m['train_seconds']:.2f} | "
        f"{1000 * m['inference_seconds']:.2f} |"
        for name, m in metrics["models"].items()
    ]
    foot = "\nInference: teachers on the full graph, students on the test nodes' rows.\n"
    if "knowledge_seconds" in metrics:
        foot += (f"Knowledge of the observed graph ({metrics.get('knowledge_mode')}): "
                 f"{metrics['knowledge_seconds']:.2f} s per seed (mean), not in inference.\n")
    per_seed = ind.get("per_seed", [])
    if per_seed:
        methods = sorted({s["test_knowledge"]["method"] for s in per_seed})
        secs = statistics.fmean(s["test_knowledge"]["seconds"] for s in per_seed)
        field = [s["unseen_receptive_field"] for s in per_seed]
        foot += (
            f"Test nodes' knowledge rows from the full graph ({', '.join(methods)}): "
            f"{secs:.2f} s per seed (mean); receptive field of the unseen nodes: radius "
            f"{field[0]['radius']}, {statistics.fmean(f['num_nodes'] for f in field):.0f} of "
            f"{field[0]['graph_nodes']} nodes, "
            f"{statistics.fmean(f['num_edges'] for f in field):.0f} of "
            f"{field[0]['graph_edges']} edges (mean).\n"
        )
    return head + "\n".join(lines) + "\n" + foot
