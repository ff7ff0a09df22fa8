"""One experiment, end to end: graph → (SDRF) → knowledge → teacher → students → report.

:func:`run_experiment` follows the data in one direction:

1. load the canonical graph (:func:`framekd.data.load_dataset`);
2. optionally rewire it once with SDRF (:mod:`framekd.rewire`); teacher and students
   then see the same graph;
3. precompute the graph knowledge once (:mod:`framekd.knowledge`; timed separately);
4. per seed: draw the split (:mod:`framekd.splits`), train the teacher and the
   comparison teachers, save the teacher's soft labels, distil every student
   (:mod:`framekd.distill`), time full-graph inference;
5. aggregate mean ± std over seeds into ``metrics.json`` and ``results.md``.

Each finished seed is written atomically to ``OUT/seed_<i>/``; a re-run with the same
configuration skips those seeds (resume), so an interrupted run loses at most the seed
in progress. A seed in progress is claimed (:func:`claim_seed`), so two processes started
on the same ``OUT`` (one per core or GPU) split the seeds instead of repeating them.
"""

from __future__ import annotations

import copy
import os
import socket
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor
from torch_geometric.data import Data

from framekd.config import RunConfig, config_hash
from framekd.errors import CheckpointError, ConfigError
from framekd.framelets import FrameletOperator, framelet_operator
from framekd.io import load_tensors, read_json, save_tensors, write_json, write_text
from framekd.knowledge import KnowledgeSpec
from framekd.models.registry import DISTILLED_MLP, ROW_ORDER, TEACHERS
from framekd.timing import median_time

#: A process running a seed holds this file in the seed's folder.
CLAIM_FILE = "CLAIM"


@dataclass
class SeedResult:
    """Per-model metrics of one seed: accuracy, train and inference seconds."""

    seed: int
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _device(rc: RunConfig) -> torch.device:
    name = rc.device
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device '{name}' requested but CUDA is not available; use device=cpu")
    return torch.device(name)


def _typed(cfg: RunConfig | dict[str, Any]) -> RunConfig:
    return cfg if isinstance(cfg, RunConfig) else RunConfig.from_dict(cfg)


def prepare_graph(
    cfg: RunConfig | dict[str, Any], data: Data | None = None, *,
    cache_dir: Path | None = None, log: Callable[[str], None] = print,
) -> tuple[Data, dict[str, Any]]:
    """Load (or take) the graph and apply the configured rewiring; return it with notes."""
    from framekd.data import load_dataset

    rc = _typed(cfg)
    info: dict[str, Any] = {}
    if data is None:
        data = load_dataset(rc.dataset)
    if rc.rewire is not None:
        data, info["rewire"] = _rewire(data, rc.rewire, cache_dir=cache_dir, log=log)
    return data, info


def _rewire(
    data: Data, spec: Any, *, cache_dir: Path | None, log: Callable[[str], None]
) -> tuple[Data, dict[str, Any]]:
    """SDRF once (``spec``: an :class:`~framekd.rewire.SDRFSpec`), cached on disk by graph
    hash and settings."""
    from framekd.graph import graph_hash
    from framekd.rewire import sdrf

    settings = spec.to_dict()
    key = f"{graph_hash(data.edge_index, data.num_nodes)}-" + config_hash(settings, ignore=())
    path = cache_dir / f"sdrf-{key}.safetensors" if cache_dir else None
    edge_index = None
    if path is not None and path.is_file():
        try:
            edge_index = load_tensors(path)["edge_index"]
            summary = read_json(path.with_suffix(".json"))
        except CheckpointError:
            edge_index = None  # corrupt cache: rebuild it
    if edge_index is None:
        log(f"rewiring with SDRF ({settings})")
        edge_index, report = sdrf(data.edge_index, data.num_nodes, **settings)
        rep = report.to_dict()
        summary = {
            "settings": settings,
            "edges_added": len(rep.get("added", [])),
            "edges_removed": len(rep.get("removed", [])),
            # edge_index entries: each undirected edge counts twice.
            "edges_before": int(data.edge_index.size(1)),
            "edges_after": int(edge_index.size(1)),
            "edges_counted": "directed entries (each undirected edge twice)",
        }
        if path is not None:
            save_tensors(path, {"edge_index": edge_index})
            write_json(path.with_suffix(".json"), summary)
    out = copy.copy(data)  # shares x and y; only the edges change
    out.edge_index = edge_index
    return out, summary


AUTO_FEATURES_BYTES = 1 << 30


def knowledge_spec(cfg: RunConfig | dict[str, Any], data: Data) -> KnowledgeSpec:
    """The knowledge a run computes: ``knowledge.mode`` with ``auto`` resolved, one power per
    teacher layer.

    ``auto`` picks ``features`` (propagated features K_c^k X, width d) when they take at most
    :data:`AUTO_FEATURES_BYTES`, and ``sketch`` (width ``sketch_dim``) otherwise; BENCHMARKS.md
    §3.1 compares the two.
    """
    rc = _typed(cfg)
    mode = rc.knowledge_mode
    if mode == "auto":
        size = 4 * rc.framelet.num_channels * rc.teacher.layers * data.num_nodes * data.x.size(1)
        mode = "features" if size <= AUTO_FEATURES_BYTES else "sketch"
    return KnowledgeSpec(mode=mode, powers=rc.teacher.layers, sketch_dim=rc.sketch_dim,
                         seed=rc.sketch_seed)


def knowledge_mode(cfg: RunConfig | dict[str, Any], data: Data) -> str:
    """The knowledge mode a run uses (see :func:`knowledge_spec`)."""
    return knowledge_spec(cfg, data).mode


def graph_operator(cfg: RunConfig | dict[str, Any], data: Data) -> FrameletOperator:
    """The framelet operator of the run's graph: the framelet teachers train with it and the
    students' knowledge is computed with it."""
    rc = _typed(cfg)
    return framelet_operator(data.edge_index, data.num_nodes, rc.framelet,
                             epsilon=rc.teacher.epsilon, dtype=data.x.dtype,
                             device=data.x.device)


def compute_knowledge(
    data: Data, cfg: RunConfig | dict[str, Any], *, cache_dir: Path | None,
    device: torch.device, operator: FrameletOperator | None = None,
) -> tuple[Tensor, float]:
    """The students' graph knowledge ``[C, K, N, width]`` and the seconds it took
    (``operator`` defaults to :func:`graph_operator`)."""
    from framekd.knowledge import cached_graph_knowledge

    rc = _typed(cfg)
    start = time.perf_counter()
    if operator is None:
        operator = graph_operator(rc, data)
    knowledge = cached_graph_knowledge(
        data.edge_index, data.num_nodes, data.x, knowledge_spec(rc, data),
        cache_dir=cache_dir, operator=operator,
    )
    return knowledge.to(device), time.perf_counter() - start


def _train_teacher(
    name: str, data: Data, split: Any, rc: RunConfig, seed: int, progress: bool,
    operator: FrameletOperator | None,
) -> tuple[torch.nn.Module, dict[str, Any], Tensor]:
    """Train teacher ``name``; with ``teacher.smooth: auto`` the spectral teacher is trained
    once per :data:`~framekd.models.spectral.AUTO_SMOOTH` mode and the one with the best
    validation accuracy is kept (its mode is in the row; training time counts all)."""
    from framekd.distill import predict_teacher, train_teacher
    from framekd.models import teacher_from_config
    from framekd.models.spectral import AUTO_SMOOTH

    t = rc.teacher
    auto = name == "spectral" and t.smooth == "auto"
    best, seconds = None, 0.0
    for smooth in AUTO_SMOOTH if auto else (None,):
        torch.manual_seed(seed)
        model = teacher_from_config(name, rc, data.x.size(1), int(data.num_classes),
                                    operator=operator, smooth=smooth).to(data.x.device)
        res = train_teacher(
            model, data, split, lr=t.lr, weight_decay=t.weight_decay, epochs=t.epochs,
            patience=t.patience, seed=seed, progress=progress,
        )
        seconds += res.seconds
        if best is None or res.val_acc > best[1].val_acc:
            best = (model, res, smooth)
    model, res, smooth = best
    infer = median_time(lambda: predict_teacher(model, data), repeats=5, warmup=1,
                        device=data.x.device)
    row = {"accuracy": res.test_acc, "val_accuracy": res.val_acc, "train_seconds": seconds,
           "inference_seconds": infer, "best_epoch": res.best_epoch}
    if smooth is not None:
        row["smooth"] = smooth
    return model, row, res.log_probs


def _distil(
    name: str, data: Data, knowledge: Tensor, teacher_logp: Tensor, split: Any,
    rc: RunConfig, seed: int, progress: bool, *, lam: float | None = None,
) -> tuple[torch.nn.Module, dict[str, Any], Tensor | None]:
    from framekd.distill import distill_student, predict_student
    from framekd.models import student_from_config

    s = rc.student
    torch.manual_seed(seed)
    student = student_from_config(name, rc, data.x.size(1), int(data.num_classes),
                                  knowledge_shape=knowledge.shape).to(data.x.device)
    k = None if name == "mlp" else knowledge
    res = distill_student(
        student, data, k, teacher_logp, split,
        lam=s.lam if lam is None else lam, T=s.temperature, lr=s.lr,
        weight_decay=s.weight_decay, epochs=s.epochs, patience=s.patience,
        batch_size=s.batch_size, seed=seed, progress=progress,
    )
    infer = median_time(
        lambda: predict_student(student, data.x, k, batch_size=s.batch_size),
        repeats=5, warmup=1, device=data.x.device,
    )
    row = {"accuracy": res.test_acc, "val_accuracy": res.val_acc, "train_seconds": res.seconds,
           "inference_seconds": infer, "best_epoch": res.best_epoch}
    return student, row, res.gates


def run_seed(
    data: Data, knowledge: Tensor, cfg: RunConfig | dict[str, Any], seed: int, seed_dir: Path,
    *, progress: bool = False, operator: FrameletOperator | None = None,
) -> SeedResult:
    """Train teacher, comparison teachers and students for one seed; save everything.

    ``operator`` is the framelet operator the knowledge was computed with (default: the
    graph's, :func:`graph_operator`); the framelet teachers train with it.
    """
    from framekd.splits import make_split

    rc = _typed(cfg)
    if operator is None:
        operator = graph_operator(rc, data)
    split = make_split(data, rc.protocol, seed)
    result = SeedResult(seed=seed, notes=list(split.notes))
    weights: dict[str, dict[str, Tensor]] = {}

    tname = rc.teacher.name
    teacher, row, teacher_logp = _train_teacher(tname, data, split, rc, seed, progress, operator)
    result.models[tname] = {"role": "teacher", **row}
    weights[tname] = teacher.state_dict()
    for name in rc.baselines:
        if name == tname:
            continue
        model, row, _ = _train_teacher(name, data, split, rc, seed, progress, operator)
        result.models[name] = {"role": "teacher", **row}
        weights[name] = model.state_dict()

    gates: dict[str, Tensor] = {}
    for name in rc.student.names:
        if name == "mlp":
            # The plain MLP learns from labels alone; GLNN is the same MLP distilled.
            model, row, _ = _distil(name, data, knowledge, teacher_logp, split, rc, seed,
                                    progress, lam=1.0)
            result.models["mlp"] = {"role": "student", **row}
            weights["mlp"] = model.state_dict()
            name_out = DISTILLED_MLP
        else:
            name_out = name
        model, row, g = _distil(name, data, knowledge, teacher_logp, split, rc, seed, progress)
        result.models[name_out] = {"role": "student", **row}
        weights[name_out] = model.state_dict()
        if g is not None:
            gates[name_out] = g

    seed_dir.mkdir(parents=True, exist_ok=True)
    save_tensors(seed_dir / "teacher_logp.safetensors", {"log_probs": teacher_logp},
                 {"teacher": tname, "seed": str(seed)})
    shape = ",".join(str(v) for v in knowledge.shape)
    for name, state in weights.items():
        meta = {"model": name, "knowledge_shape": shape, "num_features": str(data.x.size(1)),
                "num_classes": str(int(data.num_classes))}
        if "smooth" in result.models.get(name, {}):
            meta["smooth"] = result.models[name]["smooth"]  # chosen by validation
        save_tensors(seed_dir / f"{name}.safetensors", state, meta)
    if gates:
        save_tensors(seed_dir / "gates.safetensors", gates)
    save_tensors(seed_dir / "split.safetensors",
                 {"train": split.train, "val": split.val, "test": split.test})
    write_json(seed_dir / "metrics.json", {
        "seed": seed, "config_hash": rc.digest, "models": result.models,
        "notes": result.notes,
    })
    return result


def _load_seed(seed_dir: Path, cfg: dict[str, Any]) -> SeedResult | None:
    path = seed_dir / "metrics.json"
    if not path.is_file():
        return None
    try:
        saved = read_json(path)
    except CheckpointError:
        return None  # unreadable: the seed is run again
    if saved.get("config_hash") != config_hash(cfg):
        raise ConfigError(
            f"{seed_dir} holds results of a different configuration; use another --out "
            "directory or pass --force to overwrite"
        )
    return SeedResult(seed=int(saved["seed"]), models=saved["models"],
                      notes=saved.get("notes", []))


def claim_seed(seed_dir: str | Path) -> Path | None:
    """Claim a seed for this process: the path of the claim file, or ``None`` when taken.

    The claim is ``seed_dir/CLAIM`` (host and process id), created atomically, so several
    ``framekd run`` processes on one ``--out`` split the seeds between them. A claim whose
    process is gone (same host, no such process id) is stale and taken over; the caller
    deletes the file when the seed is finished or has failed.
    """
    seed_dir = Path(seed_dir)
    seed_dir.mkdir(parents=True, exist_ok=True)
    path = seed_dir / CLAIM_FILE
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if _claim_alive(path):
                return None
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as f:
            f.write(f"{socket.gethostname()} {os.getpid()}\n")
        return path
    return None


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
    found = [r for r in (_load_seed(out / f"seed_{s}", cfg) for s in busy) if r is not None]
    missing = sorted(set(busy) - {r.seed for r in found})
    if missing:
        log(f"framekd: seed(s) {', '.join(map(str, missing))} are being run by another "
            f"process ({CLAIM_FILE} in their folder under {out}); this table leaves them "
            "out: run the same command again once that process has finished")
    return found


def aggregate(cfg: dict[str, Any], seeds: list[SeedResult], extra: dict[str, Any]) -> dict:
    """The ``metrics.json`` document: per-model mean ± std over seeds."""
    names = [n for n in ROW_ORDER if any(n in s.models for s in seeds)]
    models = {}
    for name in names:
        rows = [s.models[name] for s in seeds if name in s.models]
        acc = [float(r["accuracy"]) for r in rows]
        models[name] = {
            "role": rows[0]["role"],
            "accuracy_mean": statistics.fmean(acc),
            "accuracy_std": statistics.pstdev(acc) if len(acc) > 1 else 0.0,
            "accuracy": acc,
            "train_seconds": statistics.fmean(float(r["train_seconds"]) for r in rows),
            "inference_seconds": statistics.fmean(float(r["inference_seconds"]) for r in rows),
        }
    return {
        "dataset": str(cfg["dataset"]),
        "protocol": cfg["protocol"],
        "seeds": [s.seed for s in seeds],
        "models": models,
        **extra,
    }


def results_table(metrics: dict[str, Any]) -> str:
    """A Markdown table of ``metrics`` (accuracy in %, times in seconds / milliseconds)."""
    head = (
        f"**{metrics['dataset']}**, protocol `{metrics['protocol']}`, "
        f"{len(metrics['seeds'])} seed(s); test accuracy mean ± std (%)\n\n"
        "| model | role | accuracy | train (s) | inference (ms) |\n"
        "|---|---|---:|---:|---:|\n"
    )
    lines = []
    for name, m in metrics["models"].items():
        lines.append(
            f"| {name} | {m['role']} | {100 * m['accuracy_mean']:.2f} ± "
            f"{100 * m['accuracy_std']:.2f} | {m['train_seconds']:.2f} | "
            f"{1000 * m['inference_seconds']:.2f} |"
        )
    foot = ""
    if "knowledge_seconds" in metrics:
        foot = (f"\nKnowledge precompute ({metrics.get('knowledge_mode')}): "
                f"{metrics['knowledge_seconds']:.2f} s, once per graph, not in inference.\n")
    return head + "\n".join(lines) + "\n" + foot


def run_experiment(
    cfg: RunConfig | dict[str, Any],
    out_dir: str | Path,
    *,
    data: Data | None = None,
    force: bool = False,
    progress: bool = True,
    cache_dir: str | Path | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the configured experiment, writing results under ``out_dir``; return the metrics.

    Args:
        cfg: a resolved configuration (:func:`framekd.config.resolve`).
        out_dir: results folder (``config.yaml``, ``metrics.json``, ``results.md``,
            ``seed_<i>/``).
        data: a graph to use instead of loading ``cfg["dataset"]`` (canonicalised here).
        force: re-run seeds that already have results.
        progress: tqdm bars for seeds and epochs.
        cache_dir: where knowledge and rewired graphs are cached (default
            ``<FRAMEKD_CACHE>/artifacts``).
    """
    from tqdm.auto import tqdm

    from framekd.data.datasets import cache_root
    from framekd.graph import canonicalize

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cache = Path(cache_dir) if cache_dir is not None else cache_root() / "artifacts"
    rc = _typed(cfg)
    device = _device(rc)
    if data is not None:
        data = canonicalize(data)
    data, info = prepare_graph(rc, data, cache_dir=cache, log=log)
    if data.x is None or data.y is None:
        raise ConfigError("the graph needs node features x and labels y to train on")
    if "num_classes" not in data:
        data.num_classes = int(data.y.max()) + 1
    data = data.to(device)
    write_text(out / "config.yaml", yaml.safe_dump(dict(rc.raw), sort_keys=False))

    operator = graph_operator(rc, data)
    knowledge, k_seconds = compute_knowledge(data, rc, cache_dir=cache, device=device,
                                             operator=operator)
    seeds: list[SeedResult] = []
    busy: list[int] = []
    bar = tqdm(range(rc.seeds), desc=f"{rc.dataset} seeds", disable=not progress)
    for seed in bar:
        seed_dir = out / f"seed_{seed}"
        done = None if force else _load_seed(seed_dir, rc.raw)
        if done is None:
            claim = claim_seed(seed_dir)
            if claim is None:
                busy.append(seed)
                continue
            try:
                # Another process may have finished the seed between the check and the claim.
                done = None if force else _load_seed(seed_dir, rc.raw)
                if done is None:
                    done = run_seed(data, knowledge, rc, seed, seed_dir, progress=progress,
                                    operator=operator)
            finally:
                claim.unlink(missing_ok=True)
        seeds.append(done)
    seeds = sorted(seeds + _collect_busy(out, busy, rc.raw, log), key=lambda r: r.seed)
    extra = {"knowledge_seconds": k_seconds, "knowledge_mode": knowledge_mode(rc, data),
             "knowledge_shape": list(knowledge.shape), "config_hash": rc.digest, **info}
    notes = sorted({n for s in seeds for n in s.notes})
    if notes:
        extra["split_notes"] = notes
    metrics = aggregate(rc.raw, seeds, extra)
    write_json(out / "metrics.json", metrics)
    write_text(out / "results.md", results_table(metrics))
    return metrics


def load_trained(run_dir: str | Path, seed: int, name: str) -> torch.nn.Module:
    """Rebuild model ``name`` of ``seed`` from a finished run and load its weights.

    Reads ``run_dir/config.yaml`` and ``run_dir/seed_<seed>/<name>.safetensors`` (no
    unpickling). Raises :class:`CheckpointError` when a file is missing, corrupt or does
    not match the configuration.
    """
    from framekd.io import load_metadata
    from framekd.models import student_from_config, teacher_from_config

    run_dir = Path(run_dir)
    try:
        cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    except (OSError, yaml.YAMLError) as err:
        raise CheckpointError(f"{run_dir}/config.yaml is missing or unreadable ({err})") from err
    path = run_dir / f"seed_{seed}" / f"{name}.safetensors"
    state = load_tensors(path)
    meta = load_metadata(path)
    try:
        d, c = int(meta["num_features"]), int(meta["num_classes"])
        shape = tuple(int(v) for v in meta["knowledge_shape"].split(","))
    except (KeyError, ValueError) as err:
        raise CheckpointError(f"{path} lacks framekd metadata (not written by framekd)") from err
    try:
        rc = RunConfig.from_dict(cfg)
    except (ConfigError, KeyError, TypeError) as err:
        raise CheckpointError(f"{run_dir}/config.yaml is not a valid configuration: {err}") from err
    if name in TEACHERS:
        model = teacher_from_config(name, rc, d, c, smooth=meta.get("smooth"))
    else:
        model = student_from_config(name, rc, d, c, knowledge_shape=shape)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(f"{path} does not match the model in config.yaml: {err}") from err
    return model
