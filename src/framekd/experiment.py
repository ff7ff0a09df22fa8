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

That is the transductive setting (``setting: transductive``, the default). With
``setting: inductive`` (GLNN's production setting, :mod:`framekd.inductive`) step 3 moves into
step 4: per seed, 20 % of the test nodes become unseen, the teacher, the knowledge and the
students see the observed graph only (the knowledge is computed per seed, through the same
cache), and at test time the full graph is restored; every model reports ``tran``, ``ind``
and ``prod`` accuracies (``accuracy`` is ``prod``).

Each finished seed is written atomically to ``OUT/seed_<i>/``, its ``metrics.json`` last,
with the size and sha256 of every file of the seed; a re-run with the same configuration
skips the seeds whose files still match (resume) and runs a damaged one again with a
one-line notice, so an interrupted run loses at most the seed in progress. A seed in
progress is claimed (:func:`claim_seed`), so two processes started on the same ``OUT`` (one
per core or GPU) split the seeds instead of repeating them.
"""

from __future__ import annotations

import copy
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
from framekd.inductive import PROD_WEIGHTS, UNSEEN_FRACTION
from framekd.io import load_tensors, read_json, save_tensors, write_json, write_text
from framekd.knowledge import KnowledgeSpec
from framekd.models.registry import DISTILLED_MLP, reads_knowledge
from framekd.results import (  # noqa: F401 - part of this module's public API
    CLAIM_FILE,
    SEED_METRICS,
    SeedResult,
    _collect_busy,
    _load_seed,
    aggregate,
    artifact_record,
    claim_seed,
    damaged_notice,
    inspect_seed,
    metric_row,
    results_table,
    run_digest,
)
from framekd.timing import median_time
from framekd.trained import load_trained  # noqa: F401 - part of this module's public API


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


def fit_teacher(
    name: str, data: Data, split: Any, rc: RunConfig, seed: int,
    operator: FrameletOperator | None, progress: bool = False, *,
    deadline: float | None = None,
) -> tuple[torch.nn.Module, Any, str | None, float]:
    """Train teacher ``name`` on ``split``: ``(model, result, smooth, seconds)``.

    With ``teacher.smooth: auto`` the spectral teacher is trained once per
    :data:`~framekd.models.spectral.AUTO_SMOOTH` mode (least smoothed first) and one is kept
    by validation: the least-smoothed mode within ``teacher.smooth_se`` paired standard
    errors of the best score (:func:`~framekd.metrics.simplest_within`; 0 keeps the best).
    ``smooth`` is the kept mode, else ``None``; ``seconds`` counts every mode.
    ``deadline``: see :func:`~framekd.distill.train_teacher`.
    """
    from framekd.distill import train_teacher
    from framekd.metrics import simplest_within
    from framekd.models import teacher_from_config
    from framekd.models.spectral import AUTO_SMOOTH

    t = rc.teacher
    auto = name == "spectral" and t.smooth == "auto"
    fits = []
    for smooth in AUTO_SMOOTH if auto else (None,):
        torch.manual_seed(seed)
        model = teacher_from_config(name, rc, data.x.size(1), int(data.num_classes),
                                    operator=operator, smooth=smooth).to(data.x.device)
        res = train_teacher(
            model, data, split, lr=t.lr, weight_decay=t.weight_decay, epochs=t.epochs,
            patience=t.patience, seed=seed, progress=progress, metric=rc.metric,
            deadline=deadline,
        )
        fits.append((model, res, smooth))
    kept = simplest_within([res.log_probs for _, res, _ in fits], data.y, split.val,
                           se=t.smooth_se, metric=rc.metric, seed=seed) if auto else 0
    return (*fits[kept], sum(res.seconds for _, res, _ in fits))


def _train_teacher(
    name: str, data: Data, split: Any, rc: RunConfig, seed: int, progress: bool,
    operator: FrameletOperator | None,
) -> tuple[torch.nn.Module, dict[str, Any], Tensor]:
    """Train teacher ``name`` (:func:`fit_teacher`): the model, its result row (with the
    mode ``teacher.smooth: auto`` kept) and its log-probabilities."""
    from framekd.distill import predict_teacher

    model, res, smooth, seconds = fit_teacher(name, data, split, rc, seed, operator,
                                              progress)
    infer = median_time(lambda: predict_teacher(model, data), repeats=5, warmup=1,
                        device=data.x.device)
    row = {"accuracy": res.test_acc, "val_accuracy": res.val_acc, "train_seconds": seconds,
           "inference_seconds": infer, "best_epoch": res.best_epoch, **metric_row(res)}
    if smooth is not None:
        row["smooth"] = smooth
    return model, row, res.log_probs


def _distil(
    name: str, data: Data, knowledge: Tensor, teacher_logp: Tensor, split: Any,
    rc: RunConfig, seed: int, progress: bool, *, lam: float | None = None,
    distill_nodes: Tensor | None = None,
) -> tuple[torch.nn.Module, dict[str, Any], Tensor | None]:
    from framekd.distill import distill_student, predict_student
    from framekd.models import student_from_config

    s = rc.student.for_model(name)
    torch.manual_seed(seed)
    student = student_from_config(name, rc, data.x.size(1), int(data.num_classes),
                                  knowledge_shape=knowledge.shape).to(data.x.device)
    k = knowledge if reads_knowledge(name) else None
    res = distill_student(
        student, data, k, teacher_logp, split,
        lam=s.lam if lam is None else lam, T=s.temperature, lr=s.lr,
        weight_decay=s.weight_decay, epochs=s.epochs, patience=s.patience,
        batch_size=s.batch_size, distill_nodes=distill_nodes, seed=seed, progress=progress,
        metric=rc.metric,
    )
    infer = median_time(
        lambda: predict_student(student, data.x, k, batch_size=s.batch_size),
        repeats=5, warmup=1, device=data.x.device,
    )
    row = {"accuracy": res.test_acc, "val_accuracy": res.val_acc, "train_seconds": res.seconds,
           "inference_seconds": infer, "best_epoch": res.best_epoch, **metric_row(res)}
    return student, row, res.gates


@dataclass
class _Trained:
    """What one seed trained: every model with its result row, the distilled teacher's soft
    labels and the students' gates (on the training graph)."""

    models: dict[str, tuple[torch.nn.Module, dict[str, Any]]] = field(default_factory=dict)
    teacher_logp: Tensor | None = None
    gates: dict[str, Tensor] = field(default_factory=dict)


def _train_all(
    data: Data, knowledge: Tensor, split: Any, rc: RunConfig, seed: int, progress: bool,
    operator: FrameletOperator, distill_nodes: Tensor | None = None,
) -> _Trained:
    """Train the teacher, the comparison teachers and every student on ``data``."""
    out = _Trained()
    tname = rc.teacher.name
    teacher, row, out.teacher_logp = _train_teacher(tname, data, split, rc, seed, progress,
                                                    operator)
    out.models[tname] = (teacher, {"role": "teacher", **row})
    for name in rc.baselines:
        if name == tname:
            continue
        model, row, _ = _train_teacher(name, data, split, rc, seed, progress, operator)
        out.models[name] = (model, {"role": "teacher", **row})
    for name in rc.student.names:
        if name == "mlp":
            # The plain MLP learns from labels alone; GLNN is the same MLP distilled.
            model, row, _ = _distil(name, data, knowledge, out.teacher_logp, split, rc, seed,
                                    progress, lam=1.0, distill_nodes=distill_nodes)
            out.models["mlp"] = (model, {"role": "student", **row})
            name_out = DISTILLED_MLP
        else:
            name_out = name
        model, row, g = _distil(name_out, data, knowledge, out.teacher_logp, split, rc, seed,
                                progress, distill_nodes=distill_nodes)
        out.models[name_out] = (model, {"role": "student", **row})
        if g is not None:
            out.gates[name_out] = g
    return out


def _save_seed(
    seed_dir: Path, rc: RunConfig, data: Data, result: SeedResult, trained: _Trained,
    knowledge_shape: Any, split: dict[str, Tensor], gates: dict[str, Tensor],
) -> None:
    seed_dir.mkdir(parents=True, exist_ok=True)
    written = ["teacher_logp.safetensors"]
    save_tensors(seed_dir / "teacher_logp.safetensors", {"log_probs": trained.teacher_logp},
                 {"teacher": rc.teacher.name, "seed": str(result.seed)})
    shape = ",".join(str(v) for v in knowledge_shape)
    for name, (model, _) in trained.models.items():
        meta = {"model": name, "knowledge_shape": shape, "num_features": str(data.x.size(1)),
                "num_classes": str(int(data.num_classes))}
        if "smooth" in result.models.get(name, {}):
            meta["smooth"] = result.models[name]["smooth"]  # chosen by validation
        save_tensors(seed_dir / f"{name}.safetensors", model.state_dict(), meta)
        written.append(f"{name}.safetensors")
    if gates:
        save_tensors(seed_dir / "gates.safetensors", gates)
        written.append("gates.safetensors")
    save_tensors(seed_dir / "split.safetensors", split)
    written.append("split.safetensors")
    doc = {"seed": result.seed, "config_hash": run_digest(rc), "models": result.models,
           "notes": result.notes}
    if result.info:
        doc["setting"] = rc.setting
        doc["inductive"] = result.info
    # Size and sha256 of the files as written: a resumed run checks them before it skips
    # the seed (inspect_seed). metrics.json comes last, atomically: it marks the seed done.
    doc["artifacts"] = artifact_record(seed_dir, written)
    write_json(seed_dir / SEED_METRICS, doc)


def run_seed(
    data: Data, knowledge: Tensor | None, cfg: RunConfig | dict[str, Any], seed: int,
    seed_dir: Path, *, progress: bool = False, operator: FrameletOperator | None = None,
    cache_dir: Path | None = None, full_knowledge: Callable[[], Tensor] | None = None,
) -> SeedResult:
    """Train teacher, comparison teachers and students for one seed; save everything.

    ``operator`` is the framelet operator of ``data`` (default: :func:`graph_operator`);
    the knowledge was computed with it and the framelet teachers train with it.

    Transductive setting: ``knowledge`` is the graph's knowledge. Inductive setting
    (:func:`run_seed_inductive`): ``knowledge`` is the full graph's knowledge if it is at
    hand, else ``None`` (then ``full_knowledge`` or :func:`compute_knowledge` gives it when
    the test nodes need it); ``cache_dir`` caches the observed graph's knowledge.
    """
    from framekd.splits import make_split

    rc = _typed(cfg)
    if operator is None:
        operator = graph_operator(rc, data)
    if rc.setting == "inductive":
        if full_knowledge is None:
            full_knowledge = _Lazy(
                lambda: knowledge if knowledge is not None else compute_knowledge(
                    data, rc, cache_dir=cache_dir, device=data.x.device, operator=operator)[0])
        return run_seed_inductive(data, rc, seed, seed_dir, progress=progress,
                                  operator=operator, cache_dir=cache_dir,
                                  full_knowledge=full_knowledge)
    split = make_split(data, rc.protocol, seed)
    result = SeedResult(seed=seed, notes=list(split.notes))
    trained = _train_all(data, knowledge, split, rc, seed, progress, operator)
    result.models = {name: row for name, (_, row) in trained.models.items()}
    _save_seed(seed_dir, rc, data, result, trained, knowledge.shape,
               {"train": split.train, "val": split.val, "test": split.test}, trained.gates)
    return result


class _Lazy:
    """A value computed on the first call and kept."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self._fn, self._done, self._value = fn, False, None

    def __call__(self) -> Any:
        if not self._done:
            self._value, self._done = self._fn(), True
        return self._value


def run_seed_inductive(
    data: Data, cfg: RunConfig | dict[str, Any], seed: int, seed_dir: Path, *,
    progress: bool = False, operator: FrameletOperator | None = None,
    cache_dir: Path | None = None, full_knowledge: Callable[[], Tensor] | None = None,
) -> SeedResult:
    """One seed of the inductive setting (the protocol is :mod:`framekd.inductive`'s).

    ``data`` is the full graph and ``operator`` its framelet operator (used at test time);
    ``full_knowledge()`` returns the full graph's knowledge when the test nodes' rows are
    taken from it (:func:`framekd.inductive.knowledge_at_test_time`). Training runs on
    :func:`framekd.inductive.observed_graph` with its own operator and knowledge (cached in
    ``cache_dir`` by graph hash). Every model's row holds ``accuracy`` (= prod),
    ``tran_accuracy`` and ``ind_accuracy``; a teacher's ``inference_seconds`` is its
    full-graph forward pass, a student's its pass over the test nodes' rows.
    """
    from framekd.distill import predict_student, predict_teacher
    from framekd.inductive import (
        inductive_split,
        knowledge_at_test_time,
        observed_graph,
        production_row,
    )
    from framekd.models import teacher_from_config
    from framekd.receptive import receptive_field

    rc = _typed(cfg)
    device = data.x.device
    if operator is None:
        operator = graph_operator(rc, data)
    if full_knowledge is None:
        full_knowledge = _Lazy(lambda: compute_knowledge(
            data, rc, cache_dir=cache_dir, device=device, operator=operator)[0])
    isplit = inductive_split(data, rc.protocol, seed)
    split = isplit.training_split()
    result = SeedResult(seed=seed, notes=list(split.notes))

    # Training: the observed graph only.
    observed = observed_graph(data, isplit.unseen)
    obs_operator = graph_operator(rc, observed)
    knowledge, k_seconds = compute_knowledge(observed, rc, cache_dir=cache_dir, device=device,
                                             operator=obs_operator)
    trained = _train_all(observed, knowledge, split, rc, seed, progress, obs_operator,
                         distill_nodes=isplit.observed)

    # Test time: the full graph.
    spec = knowledge_spec(rc, data)
    test_nodes = isplit.test_nodes.to(device)
    k_test, k_info = knowledge_at_test_time(data, isplit.test_nodes, spec, operator,
                                            full_knowledge=full_knowledge)
    timing = {"repeats": 5, "warmup": 1, "device": device}
    d, c = data.x.size(1), int(data.num_classes)
    xs, batch = data.x[test_nodes], rc.student.batch_size
    gates: dict[str, Tensor] = {}
    for name, (model, row) in trained.models.items():
        row = dict(row)
        if row["role"] == "teacher":
            full = teacher_from_config(name, rc, d, c, operator=operator,
                                       smooth=row.get("smooth")).to(device)
            full.load_state_dict(model.state_dict())
            logits = predict_teacher(full, data)
            row["inference_seconds"] = median_time(lambda m=full: predict_teacher(m, data),
                                                   **timing)
        else:
            k = k_test if reads_knowledge(name) else None
            out = predict_student(model, xs, k, batch_size=batch)
            logits = out.logits
            if out.gates is not None:
                gates[name] = out.gates
            row["inference_seconds"] = median_time(
                lambda m=model, k=k: predict_student(m, xs, k, batch_size=batch), **timing)
        row.update(production_row(logits, data.y, isplit, rc.metric))
        result.models[name] = row
    if gates:
        gates["test_nodes"] = isplit.test_nodes
    unseen_field = receptive_field(data.edge_index, data.num_nodes, isplit.unseen, spec,
                                   operator=operator)
    result.info = {
        "unseen_fraction": UNSEEN_FRACTION,
        "unseen": int(isplit.unseen.numel()),
        "observed_test": int(isplit.observed_test.numel()),
        "observed_edges": int(observed.edge_index.size(1)) // 2,
        "knowledge_seconds": k_seconds,
        "test_knowledge": k_info,
        "unseen_receptive_field": unseen_field.to_dict(),
    }
    _save_seed(seed_dir, rc, data, result, trained, knowledge.shape,
               {"train": split.train, "val": split.val, "test": isplit.split.test,
                "unseen": isplit.unseen}, gates)
    return result


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
    inductive = rc.setting == "inductive"
    if inductive:
        # Training knowledge is per seed (the observed graph); the full graph's is computed
        # once, and only if the test nodes' rows are taken from it.
        knowledge, k_seconds = None, None
        full = _Lazy(lambda: compute_knowledge(data, rc, cache_dir=cache, device=device,
                                               operator=operator)[0])
    else:
        knowledge, k_seconds = compute_knowledge(data, rc, cache_dir=cache, device=device,
                                                 operator=operator)
        full = None
    seeds: list[SeedResult] = []
    busy: list[int] = []
    # disable=None: bars only on a terminal (a redirected log holds no redraws).
    bar = tqdm(range(rc.seeds), desc=f"{rc.dataset} seeds", disable=None if progress else True)
    for seed in bar:
        seed_dir = out / f"seed_{seed}"
        # A finished seed is skipped only when its metrics.json is whole and every file it
        # lists matches its recorded size and sha256; a damaged one is run again.
        done, damage = (None, None) if force else inspect_seed(seed_dir, rc.raw, seed)
        if done is None:
            claim = claim_seed(seed_dir)
            if claim is None:
                busy.append(seed)
                continue
            try:
                # Another process may have finished the seed between the check and the claim.
                if not force:
                    done, damage = inspect_seed(seed_dir, rc.raw, seed)
                if done is None:
                    if damage is not None:
                        log(damaged_notice(seed, seed_dir, damage))
                    done = run_seed(data, knowledge, rc, seed, seed_dir, progress=progress,
                                    operator=operator, cache_dir=cache, full_knowledge=full)
            finally:
                claim.unlink(missing_ok=True)
        seeds.append(done)
    seeds = sorted(seeds + _collect_busy(out, busy, rc.raw, log), key=lambda r: r.seed)
    spec = knowledge_spec(rc, data)
    extra: dict[str, Any] = {"knowledge_mode": spec.mode}
    if "label_map" in data:
        # The file's labels were renumbered 0..C-1 (framekd.data.user): keep the mapping so
        # predictions can be read back as the file's labels (``label_map[c]``).
        extra["label_map"] = [int(v) for v in data.label_map.tolist()]
    if inductive:
        shape = [operator.num_channels, spec.powers, data.num_nodes,
                 spec.width(data.num_nodes, data.x)]
        per_seed = [{"seed": s.seed, **s.info} for s in seeds if s.info]
        if per_seed:
            extra["knowledge_seconds"] = statistics.fmean(
                s["knowledge_seconds"] for s in per_seed)
        extra["inductive"] = {"unseen_fraction": UNSEEN_FRACTION,
                              "prod_weights": list(PROD_WEIGHTS), "per_seed": per_seed}
    else:
        shape = list(knowledge.shape)
        extra["knowledge_seconds"] = k_seconds
    extra.update(knowledge_shape=shape, config_hash=run_digest(rc), **info)
    notes = sorted({n for s in seeds for n in s.notes})
    if notes:
        extra["split_notes"] = notes
    metrics = aggregate(rc.raw, seeds, extra)
    write_json(out / "metrics.json", metrics)
    write_text(out / "results.md", results_table(metrics))
    return metrics
