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

from framekd.config import config_hash
from framekd.errors import CheckpointError, ConfigError
from framekd.io import load_tensors, read_json, save_tensors, write_json, write_text
from framekd.timing import median_time

# Table order of the model rows.
ROW_ORDER = ("spatial", "simplified", "gcn", "sage", "gat", "mlp", "glnn", "fmlp-s", "fmlp-o")
#: A process running a seed holds this file in the seed's folder.
CLAIM_FILE = "CLAIM"


@dataclass
class SeedResult:
    """Per-model metrics of one seed: accuracy, train and inference seconds."""

    seed: int
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _device(cfg: dict[str, Any]) -> torch.device:
    name = str(cfg["device"])
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device '{name}' requested but CUDA is not available; use device=cpu")
    return torch.device(name)


def prepare_graph(
    cfg: dict[str, Any], data: Data | None = None, *, cache_dir: Path | None = None,
    log: Callable[[str], None] = print,
) -> tuple[Data, dict[str, Any]]:
    """Load (or take) the graph and apply the configured rewiring; return it with notes."""
    from framekd.data import load_dataset

    info: dict[str, Any] = {}
    if data is None:
        data = load_dataset(cfg["dataset"])
    rw = cfg["rewire"]
    if rw["method"] == "sdrf":
        data, info["rewire"] = _rewire(data, cfg, cache_dir=cache_dir, log=log)
    return data, info


def _sdrf_settings(cfg: dict[str, Any]) -> dict[str, Any]:
    from framekd.rewire import sdrf_preset

    rw = cfg["rewire"]
    given = {k: rw[k] for k in ("iterations", "tau", "removal_bound") if rw[k] is not None}
    if len(given) < 3:
        try:
            base = sdrf_preset(str(cfg["dataset"]))
        except ConfigError:
            if "iterations" not in given or "tau" not in given:
                raise
            base = {}
        base.update(given)
        given = base
    return {
        "iterations": int(given["iterations"]),
        "tau": float(given["tau"]),
        "removal_bound": given.get("removal_bound"),
        "seed": 0,
    }


def _rewire(
    data: Data, cfg: dict[str, Any], *, cache_dir: Path | None, log: Callable[[str], None]
) -> tuple[Data, dict[str, Any]]:
    """SDRF once, cached on disk by graph hash and settings."""
    from framekd.graph import graph_hash
    from framekd.rewire import sdrf

    settings = _sdrf_settings(cfg)
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


def knowledge_mode(cfg: dict[str, Any], data: Data) -> str:
    """The knowledge mode a run uses: ``knowledge.mode``, with ``auto`` resolved.

    ``auto`` picks ``features`` (propagated features K_c^k X, width d) when they take at most
    :data:`AUTO_FEATURES_BYTES`, and ``sketch`` (width ``sketch_dim``) otherwise. With the
    same teachers, ``features`` gave the best student 0.4-2.7 points more than ``sketch`` on
    Cora, CiteSeer and Chameleon (BENCHMARKS.md §3.1), but its width grows with the features.
    """
    from framekd.framelets import framelet_channels

    mode = cfg["knowledge"]["mode"]
    if mode != "auto":
        return mode
    fr = cfg["framelet"]
    channels = len(framelet_channels(fr["filters"], int(fr["levels"])))
    size = 4 * channels * int(cfg["teacher"]["layers"]) * data.num_nodes * data.x.size(1)
    return "features" if size <= AUTO_FEATURES_BYTES else "sketch"


def compute_knowledge(
    data: Data, cfg: dict[str, Any], *, cache_dir: Path | None, device: torch.device
) -> tuple[Tensor, float]:
    """The students' graph knowledge ``[C, K, N, width]`` and the seconds it took."""
    from framekd.knowledge import cached_graph_knowledge

    k, fr = cfg["knowledge"], cfg["framelet"]
    framelet = {key: fr[key] for key in ("filters", "levels", "scale", "order")}
    if fr.get("alpha") is not None:
        framelet["alpha"] = fr["alpha"]
    start = time.perf_counter()
    knowledge = cached_graph_knowledge(
        data.edge_index,
        data.num_nodes,
        data.x,
        cache_dir=cache_dir,
        framelet=framelet,
        powers=int(cfg["teacher"]["layers"]),
        mode=knowledge_mode(cfg, data),
        sketch_dim=int(k["sketch_dim"]),
        epsilon=float(cfg["teacher"]["epsilon"]),
        seed=int(k["seed"]),
        device=device,
    )
    return knowledge.to(device), time.perf_counter() - start


def _teacher_kwargs(name: str, cfg: dict[str, Any]) -> dict[str, Any]:
    t, fr = cfg["teacher"], cfg["framelet"]
    kw: dict[str, Any] = {"num_layers": int(t["layers"]), "dropout": float(t["dropout"])}
    if name != "simplified":
        kw["hidden_channels"] = int(t["hidden"])
    if name in ("spatial", "simplified"):
        kw["epsilon"] = float(t["epsilon"])
        kw.update({key: fr[key] for key in ("filters", "levels", "scale", "order")})
        if fr.get("alpha") is not None:
            kw["alpha"] = fr["alpha"]
    return kw


def _train_teacher(
    name: str, data: Data, split: Any, cfg: dict[str, Any], seed: int, progress: bool
) -> tuple[torch.nn.Module, dict[str, Any], Tensor]:
    from framekd.distill import predict_teacher, train_teacher
    from framekd.models import build_teacher

    t = cfg["teacher"]
    torch.manual_seed(seed)
    model = build_teacher(
        name, data.x.size(1), int(data.num_classes), **_teacher_kwargs(name, cfg)
    ).to(data.x.device)
    res = train_teacher(
        model, data, split, lr=float(t["lr"]), weight_decay=float(t["weight_decay"]),
        epochs=int(t["epochs"]), patience=int(t["patience"]), seed=seed, progress=progress,
    )
    infer = median_time(lambda: predict_teacher(model, data), repeats=5, warmup=1,
                        device=data.x.device)
    row = {"accuracy": res.test_acc, "val_accuracy": res.val_acc, "train_seconds": res.seconds,
           "inference_seconds": infer, "best_epoch": res.best_epoch}
    return model, row, res.log_probs


def _distil(
    name: str, data: Data, knowledge: Tensor, teacher_logp: Tensor, split: Any,
    cfg: dict[str, Any], seed: int, progress: bool, *, lam: float | None = None,
) -> tuple[torch.nn.Module, dict[str, Any], Tensor | None]:
    from framekd.distill import distill_student, predict_student
    from framekd.models import build_student

    s = cfg["student"]
    graph_free = name == "mlp"
    kw: dict[str, Any] = {"hidden_channels": int(s["hidden"]), "dropout": float(s["dropout"])}
    if not graph_free:
        kw["knowledge_shape"] = tuple(knowledge.shape)
    torch.manual_seed(seed)
    student = build_student(name, data.x.size(1), int(data.num_classes), **kw).to(data.x.device)
    k = None if graph_free else knowledge
    res = distill_student(
        student, data, k, teacher_logp, split,
        lam=float(s["lam"] if lam is None else lam), T=float(s["temperature"]),
        lr=float(s["lr"]), weight_decay=float(s["weight_decay"]), epochs=int(s["epochs"]),
        patience=int(s["patience"]), batch_size=s["batch_size"], seed=seed, progress=progress,
    )
    infer = median_time(
        lambda: predict_student(student, data.x, k, batch_size=s["batch_size"]),
        repeats=5, warmup=1, device=data.x.device,
    )
    row = {"accuracy": res.test_acc, "val_accuracy": res.val_acc, "train_seconds": res.seconds,
           "inference_seconds": infer, "best_epoch": res.best_epoch}
    return student, row, res.gates


def run_seed(
    data: Data, knowledge: Tensor, cfg: dict[str, Any], seed: int, seed_dir: Path,
    *, progress: bool = False,
) -> SeedResult:
    """Train teacher, comparison teachers and students for one seed; save everything."""
    from framekd.splits import make_split

    split = make_split(data, cfg["protocol"], seed)
    result = SeedResult(seed=seed, notes=list(split.notes))
    weights: dict[str, dict[str, Tensor]] = {}

    tname = cfg["teacher"]["name"]
    teacher, row, teacher_logp = _train_teacher(tname, data, split, cfg, seed, progress)
    result.models[tname] = {"role": "teacher", **row}
    weights[tname] = teacher.state_dict()
    for name in cfg["baselines"] or []:
        if name == tname:
            continue
        model, row, _ = _train_teacher(name, data, split, cfg, seed, progress)
        result.models[name] = {"role": "teacher", **row}
        weights[name] = model.state_dict()

    gates: dict[str, Tensor] = {}
    for name in cfg["student"]["names"]:
        if name == "mlp":
            # The plain MLP learns from labels alone; GLNN is the same MLP distilled.
            model, row, _ = _distil(name, data, knowledge, teacher_logp, split, cfg, seed,
                                    progress, lam=1.0)
            result.models["mlp"] = {"role": "student", **row}
            weights["mlp"] = model.state_dict()
            name_out = "glnn"
        else:
            name_out = name
        model, row, g = _distil(name, data, knowledge, teacher_logp, split, cfg, seed, progress)
        result.models[name_out] = {"role": "student", **row}
        weights[name_out] = model.state_dict()
        if g is not None:
            gates[name_out] = g

    seed_dir.mkdir(parents=True, exist_ok=True)
    save_tensors(seed_dir / "teacher_logp.safetensors", {"log_probs": teacher_logp},
                 {"teacher": tname, "seed": str(seed)})
    shape = ",".join(str(v) for v in knowledge.shape)
    for name, state in weights.items():
        save_tensors(seed_dir / f"{name}.safetensors", state,
                     {"model": name, "knowledge_shape": shape, "num_features": str(data.x.size(1)),
                      "num_classes": str(int(data.num_classes))})
    if gates:
        save_tensors(seed_dir / "gates.safetensors", gates)
    save_tensors(seed_dir / "split.safetensors",
                 {"train": split.train, "val": split.val, "test": split.test})
    write_json(seed_dir / "metrics.json", {
        "seed": seed, "config_hash": config_hash(cfg), "models": result.models,
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
    cfg: dict[str, Any],
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
    device = _device(cfg)
    if data is not None:
        data = canonicalize(data)
    data, info = prepare_graph(cfg, data, cache_dir=cache, log=log)
    if data.x is None or data.y is None:
        raise ConfigError("the graph needs node features x and labels y to train on")
    if "num_classes" not in data:
        data.num_classes = int(data.y.max()) + 1
    data = data.to(device)
    write_text(out / "config.yaml", yaml.safe_dump(cfg, sort_keys=False))

    knowledge, k_seconds = compute_knowledge(data, cfg, cache_dir=cache, device=device)
    seeds: list[SeedResult] = []
    busy: list[int] = []
    bar = tqdm(range(int(cfg["seeds"])), desc=f"{cfg['dataset']} seeds", disable=not progress)
    for seed in bar:
        seed_dir = out / f"seed_{seed}"
        done = None if force else _load_seed(seed_dir, cfg)
        if done is None:
            claim = claim_seed(seed_dir)
            if claim is None:
                busy.append(seed)
                continue
            try:
                # Another process may have finished the seed between the check and the claim.
                done = None if force else _load_seed(seed_dir, cfg)
                if done is None:
                    done = run_seed(data, knowledge, cfg, seed, seed_dir, progress=progress)
            finally:
                claim.unlink(missing_ok=True)
        seeds.append(done)
    seeds = sorted(seeds + _collect_busy(out, busy, cfg, log), key=lambda r: r.seed)
    extra = {"knowledge_seconds": k_seconds, "knowledge_mode": knowledge_mode(cfg, data),
             "knowledge_shape": list(knowledge.shape), "config_hash": config_hash(cfg), **info}
    notes = sorted({n for s in seeds for n in s.notes})
    if notes:
        extra["split_notes"] = notes
    metrics = aggregate(cfg, seeds, extra)
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
    from framekd.models import build_student, build_teacher

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
    if name in ("spatial", "simplified", "gcn", "sage", "gat"):
        model = build_teacher(name, d, c, **_teacher_kwargs(name, cfg))
    else:
        s = cfg["student"]
        kw = {"hidden_channels": int(s["hidden"]), "dropout": float(s["dropout"])}
        if name not in ("mlp", "glnn"):
            kw["knowledge_shape"] = shape
        model = build_student("mlp" if name == "glnn" else name, d, c, **kw)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(f"{path} does not match the model in config.yaml: {err}") from err
    return model
