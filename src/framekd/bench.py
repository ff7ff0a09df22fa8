"""Benchmark drivers behind ``framekd bench speed`` and ``framekd bench accuracy``.

* :func:`speed_benchmark` times inference of the spatial framelet teacher, GCN and every
  student on one graph: full-graph inference and the latency of a query for a few random
  nodes, each the median over many repeats after a warm-up. The one-off costs (building the
  teacher's framelet operators, precomputing the students' graph knowledge) and the per-node
  knowledge lookup are reported in their own columns, never folded into the medians.
  With ``query="new"`` it also times a query for nodes that are new to the graph, end to end
  (:mod:`framekd.newnodes`): the students compute the new nodes' knowledge rows, the
  teachers run on the query's receptive-field subgraph.
  Models are randomly initialised: inference cost does not depend on the weights.
* :func:`accuracy_benchmark` drives :func:`framekd.experiment.run_experiment` over datasets,
  protocols and (on heterophilic sets) SDRF rewiring, one seed at a time so that an
  interrupted benchmark resumes where it stopped, and returns one table row per run.
"""

from __future__ import annotations

import copy
import csv
import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from framekd.errors import ConfigError, FramekdError
from framekd.timing import median_time
from framekd.timing import time_once as _once

#: Models timed by :func:`speed_benchmark`, teachers first.
SPEED_MODELS = ("spatial", "gcn", "mlp", "fmlp-s", "fmlp-o")
#: Students whose accuracy counts for "the best student reached its teacher" (distilled ones).
DISTILLED = ("glnn", "fmlp-s", "fmlp-o")
#: Tolerance of the "reached its teacher" test, in accuracy points.
REACH_TOLERANCE = 0.5
ACCURACY_MODELS = ("spatial", "simplified", "gcn", "mlp", "glnn", "fmlp-s", "fmlp-o")


def _notices(message: str) -> None:
    """The ``log`` of the runs inside a benchmark: only the ``framekd: `` notices (e.g. seeds
    another process is still running) are printed."""
    if str(message).startswith("framekd: "):
        print(message, flush=True)


def _build(name: str, data: Any, rc: Any, knowledge_shape: Sequence[int], operator: Any):
    """Model ``name`` from the run configuration (the same path as ``framekd run``); the
    spectral teacher's ``smooth: auto`` (a training-time choice) is timed as ``all``, its
    costliest mode."""
    from framekd.models import student_from_config, teacher_from_config
    from framekd.models.registry import TEACHERS, model_name

    d, c = data.x.size(1), int(data.y.max()) + 1
    if name in TEACHERS:
        smooth = "all" if model_name(name) == "spectral" and rc.teacher.smooth == "auto" else None
        return teacher_from_config(name, rc, d, c, operator=operator, smooth=smooth), "teacher"
    return student_from_config(name, rc, d, c, knowledge_shape=knowledge_shape), "student"


#: ``query`` values of :func:`speed_benchmark`.
QUERY_MODES = ("stored", "new", "both")


def speed_benchmark(
    dataset: str,
    *,
    models: Sequence[str] = SPEED_MODELS,
    repeats: int = 100,
    warmup: int = 10,
    query_size: int = 10,
    overrides: Iterable[str] = (),
    seed: int = 0,
    data: Any | None = None,
    query: str = "stored",
    new_repeats: int = 5,
    new_warmup: int = 1,
    rows_tol: float = 0.0,
    dtypes: Sequence[str] = ("float32",),
    blocks: Sequence[int] = (),
) -> dict[str, Any]:
    """Time inference of ``models`` on ``dataset`` (untrained weights; see the module doc).

    Settings (hidden width, depth, framelets, knowledge mode, device) come from
    :func:`framekd.config.resolve` with ``overrides`` (``key=value`` strings).

    ``query="stored"`` (and ``"both"``): per model the result row holds ``full_ms`` (median
    forward pass over all N nodes) and ``query_ms`` (median latency to answer ``query_size``
    random nodes). A student answers a query from the query's rows only: the knowledge
    lookup ``knowledge[:, :, idx]`` plus a forward pass on ``query_size`` rows. A teacher
    runs the full-graph forward pass and keeps the query's rows. The framelet teachers use
    the operator the knowledge was computed with (its λ_max estimate and normalised
    adjacency are in ``knowledge_seconds``). ``setup_ms`` is each model's first full-graph
    call: the sparse copy of mostly-zero features (:class:`~framekd.models.SparseInput`).
    Warm-up calls follow it, so the medians leave it out.

    ``query="new"`` (and ``"both"``): the ``query_size`` query nodes are **new**
    (:func:`framekd.newnodes.append_copies`: copies of random nodes' features joined to
    their neighbours; a fresh set, seeded, for each of ``new_warmup + new_repeats`` calls,
    built and validated before the clock starts). End to end, a student computes the new
    nodes' knowledge rows from their receptive field
    (:func:`framekd.receptive.knowledge_rows`, ``new_rows_ms``) and runs on them
    (``new_forward_ms``); the MLP needs no rows. A teacher runs on the query's
    receptive-field subgraph (:func:`framekd.newnodes.teacher_on_subgraph`, radius
    :func:`framekd.newnodes.teacher_radius`), building that subgraph's operators.
    Both keep the training graph's λ_max. The knowledge rows are computed once per call and
    their time added to each FMLP's forward time of that call; ``new_ms`` is the median of
    those sums. ``field_nodes`` is the size of the subgraph a model computes on (first call).
    ``rows_tol > 0`` makes the students' rows approximate (``knowledge_rows``'s ``tol``: the
    significant field instead of the exact one); the teachers stay exact.

    ``dtypes``: the precisions the students are timed in (full graph and stored query; one
    row per student and dtype, ``"dtype"`` in the row). A low-precision student is the
    float32 one cast (``model.to(torch.bfloat16)``) and reads the features and the stored
    knowledge cast once, before the clock starts; the sparse feature product stays float32
    (:func:`framekd.models.sparse_input.linear`). Teachers run in float32 only (CPU has no
    half-precision sparse products) and the new-node query times the float32 models only.
    ``mlp_ratio`` is a row's full-graph time over the float32 MLP's single pass.

    ``blocks``: row-block sizes ``B`` to time the students' full graph in as well (one more
    row per student, dtype and ``B``; ``"block"`` in the row, ``None`` for a single pass):
    :func:`framekd.distill.predict_student` with ``batch_size=B``, the blocked inference of
    a run whose students set ``student.batch_size``. A student's output for a node depends on
    that node's row alone, so the answer is the same up to float rounding; blocks keep the
    ``[B, hidden]`` intermediates in cache where ``[N, hidden]`` ones stream through memory.

    Returns ``{"dataset", "nodes", "edges", "device", "threads", "repeats", "warmup",
    "query_size", "query", "new_repeats", "new_warmup", "rows_tol", "knowledge_mode",
    "knowledge_shape", "knowledge_seconds", "lookup_ms", "dtypes", "blocks", "rows":
    [{"model", "role", "dtype", "block", "full_ms", "query_ms", "setup_ms", "full_speedup",
    "query_speedup", "mlp_ratio", "new_ms", "new_rows_ms", "new_forward_ms", "new_speedup",
    "radius", "field_nodes"}]}``
    where the speed-ups are relative to the spatial teacher (``None`` for columns not
    measured).
    """
    from framekd.config import RunConfig, resolve
    from framekd.data import load_dataset
    from framekd.experiment import compute_knowledge, graph_operator, knowledge_mode
    from framekd.receptive import check_tol

    if query not in QUERY_MODES:
        raise ConfigError(f"query must be one of {', '.join(QUERY_MODES)}, got {query!r}")
    if check_tol(rows_tol) > 0 and query == "stored":
        raise ConfigError("rows_tol (--rows-tol) approximates the knowledge rows of new nodes; "
                          "use it with query 'new' or 'both'")
    low = _low_dtypes(dtypes)
    blocks = _blocks(blocks)
    cfg = RunConfig.from_dict(resolve(str(dataset), overrides=list(overrides)))
    device = torch.device(cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device '{device}' requested but CUDA is not available; use cpu")
    if data is None:
        data = load_dataset(cfg.dataset)
    data = data.to(device)
    n = data.num_nodes
    if not 1 <= query_size <= n:
        raise ConfigError(f"query_size must be in [1, {n}] for {dataset}, got {query_size}")
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(n, generator=gen)[:query_size].to(device)
    # The operator (λ_max estimate, normalised adjacency) is built inside the timed knowledge
    # precompute; the teachers then reuse it from the operator cache.
    knowledge, k_seconds = compute_knowledge(data, cfg, cache_dir=None, device=device)
    operator = graph_operator(cfg, data)
    timing = {"repeats": repeats, "warmup": warmup, "device": device}
    lookup = median_time(lambda: knowledge[:, :, idx], **timing)
    x, ei = data.x, data.edge_index
    built = {}
    for name in models:
        torch.manual_seed(seed)
        model, role = _build(name, data, cfg, knowledge.shape, operator)
        built[name] = (model.to(device).eval(), role)
    timed = [(name, model, role, "float32", x, knowledge, None)
             for name, (model, role) in built.items()]
    for dt in low if query != "new" else ():
        dtype = getattr(torch, dt)
        x_low, k_low = x.to(dtype), knowledge.to(dtype)
        timed += [(name, copy.deepcopy(model).to(dtype), role, dt, x_low, k_low, None)
                  for name, (model, role) in built.items() if role == "student"]
    timed += [(*t[:6], b) for b in (blocks if query != "new" else ())
              for t in list(timed) if t[2] == "student"]
    rows = []
    for name, model, role, dt, xs, kn, block in timed:
        row: dict[str, Any] = {"model": name, "role": role, "dtype": dt, "block": block}
        rows.append(row)
        if query == "new":
            continue
        if role == "teacher":
            _, setup = _once(lambda m=model: m(x, ei), device)
            row["setup_ms"] = 1000 * setup
            row["full_ms"] = 1000 * median_time(lambda m=model: m(x, ei), **timing)
            row["query_ms"] = 1000 * median_time(lambda m=model: m(x, ei)[idx], **timing)
        else:
            k = None if name == "mlp" else kn
            full = _full_pass(model, xs, k, block)
            _, setup = _once(full, device)
            row["setup_ms"] = 1000 * setup
            row["full_ms"] = 1000 * median_time(full, **timing)
            row["query_ms"] = 1000 * median_time(
                lambda m=model, x=xs, k=k: m(x[idx], None if k is None else k[:, :, idx]),
                **timing)
    if query != "stored":
        from framekd.experiment import knowledge_spec
        from framekd.newnodes import new_node_timings

        float32 = [r for r in rows if r["dtype"] == "float32" and r["block"] is None]
        new_node_timings(float32, built, data, cfg, knowledge_spec(cfg, data), operator,
                         query_size=query_size, repeats=new_repeats, warmup=new_warmup,
                         seed=seed, device=device, tol=rows_tol)
    ref = next((r for r in rows if r["model"] == "spatial"), None)
    mlp = next((r for r in rows if r["model"] == "mlp" and r["dtype"] == "float32"
                and r["block"] is None), None)
    for row in rows:
        for col, key in (("full_speedup", "full_ms"), ("query_speedup", "query_ms"),
                         ("new_speedup", "new_ms")):
            ok = ref is not None and ref.get(key) is not None and row.get(key) is not None
            row[col] = ref[key] / row[key] if ok else None
        ok = mlp is not None and mlp.get("full_ms") is not None and row.get("full_ms") is not None
        row["mlp_ratio"] = row["full_ms"] / mlp["full_ms"] if ok else None
    return {
        "dataset": str(dataset), "nodes": n, "edges": int(ei.size(1)) // 2,
        "device": str(device), "threads": torch.get_num_threads(), "repeats": repeats,
        "warmup": warmup, "query_size": query_size, "query": query,
        "new_repeats": new_repeats if query != "stored" else None,
        "new_warmup": new_warmup if query != "stored" else None,
        "rows_tol": rows_tol if query != "stored" else None,
        "knowledge_mode": knowledge_mode(cfg, data),
        "knowledge_shape": list(knowledge.shape), "knowledge_seconds": k_seconds,
        "lookup_ms": 1000 * lookup, "dtypes": ["float32", *(low if query != "new" else ())],
        "blocks": blocks if query != "new" else [], "rows": rows,
    }


def _full_pass(model: Any, x: Tensor, knowledge: Tensor | None,
               block: int | None) -> Callable[[], Any]:
    """A student's full-graph call: one pass, or :func:`predict_student` in row blocks."""
    from framekd.distill import predict_student

    if block is None:
        return lambda: model(x, knowledge)
    return lambda: predict_student(model, x, knowledge, batch_size=block)


def _blocks(blocks: Sequence[int]) -> list[int]:
    """``blocks`` checked: positive integers, duplicates dropped."""
    bad = [b for b in blocks if isinstance(b, bool) or not isinstance(b, int) or b < 1]
    if bad:
        raise ConfigError(f"blocks must be positive integers (rows per block), got "
                          f"{', '.join(map(str, bad))}")
    return list(dict.fromkeys(blocks))


#: Precisions :func:`speed_benchmark` can time the students in.
STUDENT_DTYPES = ("float32", "bfloat16", "float16")


def _low_dtypes(dtypes: Sequence[str]) -> list[str]:
    """The low-precision entries of ``dtypes`` (float32 is always timed), checked."""
    bad = [d for d in dtypes if d not in STUDENT_DTYPES]
    if bad or not dtypes:
        raise ConfigError(f"dtypes must be among {', '.join(STUDENT_DTYPES)}, got "
                          f"{', '.join(map(str, dtypes)) or 'none'}")
    return [d for d in dict.fromkeys(dtypes) if d != "float32"]


SPEED_COLUMNS = ("dataset", "nodes", "edges", "model", "role", "dtype", "block", "full_ms",
                 "query_ms", "full_speedup", "query_speedup", "mlp_ratio", "setup_ms",
                 "knowledge_seconds", "lookup_ms", "new_ms", "new_rows_ms", "new_forward_ms",
                 "new_speedup", "radius", "field_nodes", "device", "threads", "repeats",
                 "new_repeats", "rows_tol")


def speed_rows(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flatten :func:`speed_benchmark` results into one row per (dataset, model)."""
    flat = []
    for res in results:
        for row in res["rows"]:
            flat.append({**{k: res[k] for k in SPEED_COLUMNS if k in res}, **row})
    return flat


def speed_markdown(results: Sequence[dict[str, Any]]) -> str:
    """Markdown tables of :func:`speed_benchmark` results (one block per dataset): the
    stored-knowledge columns and/or the new-node ones, as measured."""
    out = []
    for res in results:
        query = res.get("query", "stored")
        out.append(
            f"**{res['dataset']}** ({res['nodes']} nodes, {res['edges']} undirected edges), "
            f"device {res['device']}, {res['threads']} torch thread(s), untrained weights.\n"
            f"Knowledge precompute ({res['knowledge_mode']}, shape "
            f"{res['knowledge_shape']}): {res['knowledge_seconds']:.3f} s once per graph "
            "(not in any column below)."
        )
        if query != "new":
            out.append(_stored_table(res))
        if query != "stored":
            out.append(_new_table(res))
    return "\n".join(out)


def _stored_table(res: dict[str, Any]) -> str:
    q = res["query_size"]
    lines = [
        f"\nMedian of {res['repeats']} repeats after {res['warmup']} warm-up calls; lookup of "
        f"{q} nodes' stored rows: {res['lookup_ms']:.4f} ms (included in the students' query "
        "latency).\n",
        f"| model | role | full graph (ms) | {q}-node query (ms) | full speed-up vs spatial | "
        "query speed-up vs spatial | full graph × MLP | first call (ms) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in res["rows"]:
        setup = "" if r["setup_ms"] is None else f"{r['setup_ms']:.1f}"
        ratio = "" if r.get("mlp_ratio") is None else f"{r['mlp_ratio']:.2f}"
        lines.append(f"| {row_label(r)} | {r['role']} | {r['full_ms']:.3f} | {r['query_ms']:.4f} | "
                     f"{_x(r['full_speedup'])} | {_x(r['query_speedup'])} | {ratio} | {setup} |")
    lines.append("\nTeachers answer a query with a full-graph forward pass; students read the "
                 "query's precomputed knowledge rows and run on those rows only. First call: a "
                 "model's first full-graph call, before the warm-up (a teacher builds its graph "
                 "operators; both make the sparse copy of mostly-zero features); it is in no "
                 "median. × MLP: the full-graph time over the float32 MLP's single pass.\n")
    if len(res.get("dtypes", ["float32"])) > 1:
        lines.append("Students in a low precision (model, features and stored knowledge cast "
                     "once, before the clock) multiply sparse features in float32; teachers "
                     "run in float32.\n")
    if res.get("blocks"):
        lines.append("Students \"in blocks of B\" run their full graph B rows at a time "
                     "(`predict_student(..., batch_size=B)`); the others in one pass.\n")
    return "\n".join(lines)


def _new_table(res: dict[str, Any]) -> str:
    q = res["query_size"]
    lines = [
        f"\n{q} **new** nodes per call (appended with their edges, a fresh set each call), "
        f"median of {res['new_repeats']} calls after {res['new_warmup']} warm-up call(s), end "
        "to end.\n",
        f"| model | role | {q} new nodes (ms) | of which knowledge rows (ms) | forward (ms) | "
        "radius (hops) | receptive field (nodes) | speed-up vs spatial |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in res["rows"]:
        if r.get("dtype", "float32") != "float32" or r.get("block") is not None:
            continue  # the new-node query times the float32 models, in one pass
        cells = [_f(r.get("new_ms"), 3), _f(r.get("new_rows_ms"), 3),
                 _f(r.get("new_forward_ms"), 4),
                 "" if r.get("radius") is None else str(r["radius"]),
                 "" if r.get("field_nodes") is None else str(r["field_nodes"]),
                 _x(r.get("new_speedup"))]
        lines.append(f"| {r['model']} | {r['role']} | " + " | ".join(cells) + " |")
    tol = res.get("rows_tol") or 0.0
    how = ("their receptive field (the knowledge radius)" if not tol else
           f"their significant field (approximate rows, walks pruned below {tol:g})")
    lines.append(f"\nA student computes the new nodes' knowledge rows from {how} "
                 "and runs on them; the MLP reads features only. A "
                 "teacher runs on the subgraph within its radius + 1 hops (the outer ring keeps "
                 "the degrees right), building that subgraph's operators. Both keep the "
                 "training graph's λ_max.\n")
    return "\n".join(lines)


def row_label(row: dict[str, Any]) -> str:
    """A speed row's model, with its dtype when it is not float32 and its row blocks when it
    ran in blocks: ``fmlp-o (bfloat16, blocks of 16384)``."""
    dtype, block = row.get("dtype", "float32"), row.get("block")
    notes = ([] if dtype == "float32" else [dtype]) + ([] if block is None
                                                       else [f"blocks of {block}"])
    return row["model"] if not notes else f"{row['model']} ({', '.join(notes)})"


def _f(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _x(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}x"


def write_csv(path: str | Path, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    """Write ``rows`` (dicts) to ``path`` with ``columns`` as header, atomically."""
    from framekd.io import write_text

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in columns})
    write_text(path, buf.getvalue())


@dataclass(frozen=True)
class AccuracyJob:
    """One cell group of the accuracy table: a dataset under a protocol, optionally rewired."""

    dataset: str
    protocol: str
    sdrf: bool = False

    @property
    def slug(self) -> str:
        safe = self.dataset.replace("/", "_").replace(":", "_").replace(",", "_")
        return f"{safe}-{self.protocol}" + ("-sdrf" if self.sdrf else "")


def dataset_kind(name: str) -> tuple[str, tuple[str, ...]]:
    """``(kind, protocols)`` of a dataset name; generated graphs count as synthetic."""
    from framekd.data import DATASETS, resolve_name
    from framekd.data.registry import RANDOM_PROTOCOLS

    try:
        info = DATASETS[resolve_name(name)]
    except FramekdError:
        return "synthetic", RANDOM_PROTOCOLS
    return info.kind, info.protocols


def accuracy_plan(
    datasets: Sequence[str], *, protocols: Sequence[str] = ("fgkd", "geom"), sdrf: bool = True,
) -> list[AccuracyJob]:
    """The runs of the accuracy table: every dataset under ``fgkd`` (and each other protocol of
    ``protocols`` that the dataset ships splits for), plus the same with SDRF on
    heterophilic sets."""
    jobs = []
    for name in datasets:
        kind, available = dataset_kind(name)
        for protocol in protocols:
            if protocol not in available:
                continue
            jobs.append(AccuracyJob(name, protocol))
            if sdrf and kind == "heterophilic":
                jobs.append(AccuracyJob(name, protocol, sdrf=True))
    return jobs


def job_config(job: AccuracyJob, seeds: int, overrides: Iterable[str] = ()) -> dict[str, Any]:
    """Configuration of one job: spatial teacher distilled into mlp/fmlp-s/fmlp-o, with the
    simplified framelet and GCN as comparison teachers (none on the SDRF runs)."""
    from framekd.config import resolve

    flags = {
        "protocol": job.protocol,
        "seeds": seeds,
        "teacher": {"name": "spatial"},
        "baselines": [] if job.sdrf else ["simplified", "gcn"],
        "student": {"names": ["mlp", "fmlp-s", "fmlp-o"]},
        "rewire": {"method": "sdrf" if job.sdrf else None},
    }
    return resolve(job.dataset, flags=flags, overrides=list(overrides))


def accuracy_benchmark(
    jobs: Sequence[AccuracyJob],
    out_dir: str | Path,
    *,
    seeds: int = 10,
    overrides: Iterable[str] = (),
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Run every job for ``seeds`` seeds under ``out_dir/runs/<job>/`` and return table rows.

    ``setting=inductive`` in ``overrides`` runs GLNN's production setting (accuracy = prod);
    its runs go to ``runs/<job>-inductive/``, beside the transductive ones.

    Seeds are run one at a time (the configuration hash ignores the seed count, so every call
    of :func:`~framekd.experiment.run_experiment` reuses the finished seeds); a finished or
    interrupted benchmark therefore resumes without repeating work. The progress bar counts
    seeds over all jobs; its time estimate uses only the seeds run in this session. A job
    whose dataset is missing or whose configuration fails is reported in its row's ``note``.
    """
    from tqdm.auto import tqdm

    from framekd.data import load_dataset
    from framekd.experiment import run_experiment

    out = Path(out_dir)
    overrides = list(overrides)
    cfgs, dirs, done = {}, {}, 0
    for job in jobs:
        try:
            cfgs[job] = job_config(job, seeds, overrides)
        except FramekdError as err:
            cfgs[job] = err
        dirs[job] = out / "runs" / _run_slug(job, cfgs[job])
        done += sum((dirs[job] / f"seed_{s}" / "metrics.json").is_file() for s in range(seeds))
    bar = tqdm(total=len(jobs) * seeds, initial=done, desc="bench accuracy", unit="seed",
               disable=None if progress else True)
    rows = []
    for job in jobs:
        cfg = cfgs[job]
        bar.set_postfix_str(job.slug, refresh=True)
        try:
            if isinstance(cfg, FramekdError):
                raise cfg
            data = load_dataset(cfg["dataset"])
            metrics = None
            for s in range(1, seeds + 1):
                seed_done = (dirs[job] / f"seed_{s - 1}" / "metrics.json").is_file()
                metrics = run_experiment({**cfg, "seeds": s}, dirs[job], data=data,
                                         progress=False, log=_notices)
                if not seed_done:
                    bar.update(1)
            rows.append(accuracy_row(job, metrics))
        except FramekdError as err:
            log(f"bench accuracy: {job.slug}: {err}")
            bar.update(seeds - min(seeds, _finished(dirs[job], seeds)))
            rows.append({"dataset": job.dataset, "protocol": job.protocol,
                         "graph": "SDRF" if job.sdrf else "original", "note": str(err)})
    bar.close()
    return rows


def _run_slug(job: AccuracyJob, cfg: Any) -> str:
    """The job's run folder name: its slug, ``-inductive`` added in that setting."""
    inductive = isinstance(cfg, dict) and cfg.get("setting") == "inductive"
    metric = cfg.get("metric", "accuracy") if isinstance(cfg, dict) else "accuracy"
    return (job.slug + ("-inductive" if inductive else "")
            + ("" if metric == "accuracy" else f"-{metric}"))


def _finished(run_dir: Path, seeds: int) -> int:
    return sum((run_dir / f"seed_{s}" / "metrics.json").is_file() for s in range(seeds))


def accuracy_row(job: AccuracyJob, metrics: dict[str, Any]) -> dict[str, Any]:
    """One table row from a :func:`~framekd.experiment.run_experiment` metrics document.

    Scores (the run's metric, accuracy by default) are in %. ``reached`` is whether the best
    distilled student (GLNN, FMLP-S, FMLP-O) scores at least the teacher's mean minus
    :data:`REACH_TOLERANCE` points.
    """
    models = metrics["models"]
    key = metrics.get("metric", "accuracy")
    row: dict[str, Any] = {"dataset": job.dataset, "protocol": job.protocol,
                           "graph": "SDRF" if job.sdrf else "original",
                           "setting": metrics.get("setting", "transductive"),
                           "knowledge": metrics.get("knowledge_mode", ""),
                           "seeds": len(metrics["seeds"]), "note": "", "metric": key}
    for name in ACCURACY_MODELS:
        if name in models:
            row[f"{name}_mean"] = 100 * models[name][f"{key}_mean"]
            row[f"{name}_std"] = 100 * models[name][f"{key}_std"]
    teacher = next(n for n, m in models.items() if m["role"] == "teacher")
    students = [n for n in DISTILLED if n in models]
    row["teacher"] = teacher
    if students:
        best = max(students, key=lambda n: models[n][f"{key}_mean"])
        row["best_student"] = best
        row["gap"] = row[f"{best}_mean"] - row[f"{teacher}_mean"]
        row["reached"] = row["gap"] >= -REACH_TOLERANCE
    return row


ACCURACY_COLUMNS = (("dataset", "protocol", "graph", "setting", "knowledge", "seeds")
                    + tuple(f"{m}_{s}" for m in ACCURACY_MODELS for s in ("mean", "std"))
                    + ("teacher", "best_student", "gap", "reached", "note"))


def accuracy_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown table of :func:`accuracy_benchmark` rows (mean ± std test accuracy, %)."""
    present = [m for m in ACCURACY_MODELS if any(f"{m}_mean" in r for r in rows)]
    head = ("| dataset | protocol | graph | knowledge | seeds | " + " | ".join(present)
            + " | best student − teacher | reached |\n"
            + "|---|---|---|---|---:|" + "---:|" * len(present) + "---:|---|")
    lines = [head]
    for r in rows:
        if r.get("note"):
            lines.append(f"| {r['dataset']} | {r['protocol']} | {r['graph']} | | | "
                         + " | ".join("" for _ in present) + f" | | {r['note']} |")
            continue
        cells = [f"{r[f'{m}_mean']:.2f} ± {r[f'{m}_std']:.2f}" if f"{m}_mean" in r else "–"
                 for m in present]
        gap = f"{r['gap']:+.2f} ({r['best_student']})" if "gap" in r else ""
        reached = {True: "yes", False: "no"}.get(r.get("reached"), "")
        lines.append(f"| {r['dataset']} | {r['protocol']} | {r['graph']} | "
                     f"{r.get('knowledge', '')} | {r['seeds']} | "
                     + " | ".join(cells) + f" | {gap} | {reached} |")
    inductive = any(r.get("setting") == "inductive" for r in rows)
    n_ok = sum(1 for r in rows if r.get("reached") is True)
    n_all = sum(1 for r in rows if "reached" in r)
    from framekd.metrics import LABELS

    label = LABELS.get(next((r["metric"] for r in rows if r.get("metric")), "accuracy"))
    foot = (f"\nTest {label} (%), mean ± std over seeds. Teacher: spatial framelet; "
            f"\"reached\": best distilled student (glnn, fmlp-s, fmlp-o) ≥ teacher − "
            f"{REACH_TOLERANCE} points ({n_ok} of {n_all} runs). mlp is trained on labels only.\n")
    if inductive:
        foot += ("Inductive setting (GLNN's production setting): 20 % of the test nodes and "
                 "their edges are unseen in training; accuracy is prod = 0.8 tran + 0.2 ind "
                 "(tran and ind per model in each run's metrics.json).\n")
    return "\n".join(lines) + "\n" + foot

