"""What makes the framelet knowledge count on unseen nodes? Student variants, same teachers.

Reuses the teachers of an inductive run (``framekd run --setting inductive --out RUN``): per
seed its saved soft labels (``RUN/seed_<i>/teacher_logp.safetensors``) and the same unseen
nodes (redrawn from the seed, checked against the saved ones). Each variant changes the
students' settings (``--set``-style overrides on the run's configuration: dropout, weight
decay, λ, knowledge mode ...); the students are distilled on the observed graph's knowledge
and scored on the test nodes' full-graph rows exactly as ``framekd run`` does
(:func:`framekd.experiment.run_seed_inductive`), so only the students' settings change
between rows. A transductive run works too (same test nodes, checked; the students distilled
on the whole graph as :func:`framekd.experiment.run_seed` does; ``tran`` is then the test
accuracy and ``ind`` / ``prod`` stay empty; one CSV per setting).

``--gates`` instead prints, per run, the mean gate values that ``framekd run`` saved for the
test nodes (``RUN/seed_<i>/gates.safetensors``; FMLP-O's output layer), split into observed
and unseen test nodes: a gate near 1 means the student leans on its feature branch rather
than on that channel's knowledge.

Resumable: one CSV row per (run, variant, student, seed) is appended as soon as it is
finished, and finished rows are skipped on a re-run. ``--table`` prints mean ``ind`` / ``tran``
/ validation accuracy per variant from the CSV; ``--compare VARIANT --runs ...`` sets a variant
against the runs' own students on the same seeds (the run's ``metrics.json``, or the CSV's
``base`` rows for students the run did not train).

Usage (data from $FRAMEKD_DATA)::

    OMP_NUM_THREADS=1 python benchmarks/inductive_students.py --runs runs/inductive/chameleon-geom \
        --seeds 3 --csv benchmarks/results/inductive_students.csv
    python benchmarks/inductive_students.py --csv benchmarks/results/inductive_students.csv --table
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
from pathlib import Path

import torch
import yaml

from framekd.config import resolve, validate
from framekd.data import load_dataset
from framekd.distill import as_index, distill_student, predict_student
from framekd.experiment import compute_knowledge, graph_operator, knowledge_spec
from framekd.inductive import (
    inductive_split,
    knowledge_at_test_time,
    observed_graph,
    production_scores,
)
from framekd.io import load_tensors
from framekd.models import student_from_config
from framekd.splits import make_split

#: name -> overrides of the run's settings (students only; the teacher is the run's).
VARIANTS: dict[str, list[str]] = {
    "base": [],
    "dropout 0.5": ["student.dropout=0.5"],
    "weight decay 5e-3": ["student.weight_decay=0.005"],
    "lam 0.5": ["student.lam=0.5"],
    "sketch knowledge": ["knowledge.mode=sketch"],
    # the propagated features K_c^k X instead of a sketch (which the Coauthor presets set,
    # and the Amazon ones did, to keep their runs light)
    "features knowledge": ["knowledge.mode=features"],
    "T 2": ["student.temperature=2.0"],
    "feature dropout 0": ["student.feature_dropout=0.0"],
    "feature dropout 0.8": ["student.feature_dropout=0.8"],
    # the run's settings, but the validation nodes are left out of distillation, so early
    # stopping reads nodes the student never fitted (inductive runs only)
    "heldout val": [],
}
HELDOUT = {"heldout val"}


def _done(path: Path, inductive: bool) -> set[tuple[str, str, str, int]]:
    """The finished rows of ``path``; one CSV holds one setting (the rows are keyed by the
    run folder's name, the same in ``runs/inductive`` and ``runs/transductive``)."""
    if not path.exists():
        return set()
    with path.open() as f:
        rows = list(csv.DictReader(f))
    if any(bool(r["ind"]) != inductive for r in rows):
        raise SystemExit(f"{path} holds rows of the other setting; use one CSV per setting")
    return {(r["run"], r["variant"], r["student"], int(r["seed"])) for r in rows}


def seed_inputs(run: Path, data, protocol: str, seed: int):
    """The run's seed ``seed``: its unseen nodes (redrawn, checked against the saved ones),
    the teacher's soft labels and the observed graph."""
    folder = run / f"seed_{seed}"
    saved = load_tensors(folder / "split.safetensors")
    isplit = inductive_split(data, protocol, seed)
    if not torch.equal(isplit.unseen.sort().values, saved["unseen"].sort().values):
        raise SystemExit(f"{folder}: the redrawn unseen nodes differ from the saved ones")
    logp = load_tensors(folder / "teacher_logp.safetensors")["log_probs"]
    return isplit, logp, observed_graph(data, isplit.unseen)


def knowledge_pair(rc, data, observed, isplit) -> tuple[torch.Tensor, torch.Tensor]:
    """The observed graph's knowledge (training) and the test nodes' full-graph rows, as
    :func:`framekd.experiment.run_seed_inductive` computes them."""
    cpu = torch.device("cpu")
    op, full_op = graph_operator(rc, observed), graph_operator(rc, data)
    k_obs, _ = compute_knowledge(observed, rc, cache_dir=None, device=cpu, operator=op)
    k_test, _ = knowledge_at_test_time(
        data, isplit.test_nodes, knowledge_spec(rc, data), full_op,
        full_knowledge=lambda: compute_knowledge(data, rc, cache_dir=None, device=cpu,
                                                 operator=full_op)[0])
    return k_obs, k_test


def distil_and_score(student, rc, data, observed, knowledge, test_knowledge, logp, isplit,
                     seed: int, heldout: bool = False) -> tuple[float, dict[str, float]]:
    """Distil ``student`` on the observed nodes (the run's student settings; ``heldout``:
    but the validation nodes) and score it on the test nodes: ``(validation accuracy,
    {"tran", "ind", "prod"})``."""
    s = rc.student
    nodes = isplit.observed
    if heldout:
        nodes = nodes[~torch.isin(nodes, isplit.split.val)]
    res = distill_student(student, observed, knowledge, logp, isplit.training_split(),
                          lam=s.lam, T=s.temperature, lr=s.lr, weight_decay=s.weight_decay,
                          epochs=s.epochs, patience=s.patience, batch_size=s.batch_size,
                          distill_nodes=nodes, seed=seed)
    out = predict_student(student, data.x[isplit.test_nodes], test_knowledge,
                          batch_size=s.batch_size)
    return res.val_acc, production_scores(out.logits, data.y, isplit)


def append_row(csv_path: Path, row: dict) -> None:
    new = not csv_path.exists()
    with csv_path.open("a", newline="") as f:
        w = csv.DictWriter(f, list(row))
        if new:
            w.writeheader()
        w.writerow(row)
    print(row, flush=True)


def _pending(run: Path, base: dict, variants: list[str], students: list[str], seed: int,
             done: set) -> list[tuple[str, object, list[str]]]:
    """``(variant, its run configuration, students still to distil)`` for ``seed``."""
    out = []
    for variant in variants:
        todo = [s for s in students if (run.name, variant, s, seed) not in done]
        if todo:
            out.append((variant, validate(resolve(base["dataset"], config_file=run / "config.yaml",
                                                  overrides=VARIANTS[variant])), todo))
    return out


def transductive_variants(run: Path, base: dict, variants: list[str], students: list[str],
                          seeds: range, csv_path: Path) -> None:
    """:func:`run_variants` for a transductive run: the students are distilled on the whole
    graph's knowledge over all nodes, as :func:`framekd.experiment.run_seed` does, and the
    row's ``tran`` is the test accuracy (``ind`` and ``prod`` stay empty)."""
    done = _done(csv_path, inductive=False)
    data = load_dataset(base["dataset"])
    knowledge: dict[str, torch.Tensor] = {}
    for seed in seeds:
        folder = run / f"seed_{seed}"
        split = make_split(data, base["protocol"], seed)
        saved = load_tensors(folder / "split.safetensors")["test"]
        if not torch.equal(as_index(split.test, data.num_nodes).sort().values,
                           as_index(saved, data.num_nodes).sort().values):
            raise SystemExit(f"{folder}: the redrawn test nodes differ from the saved ones")
        logp = load_tensors(folder / "teacher_logp.safetensors")["log_probs"]
        for variant, rc, todo in _pending(run, base, variants, students, seed, done):
            mode = knowledge_spec(rc, data).mode
            if mode not in knowledge:
                knowledge[mode] = compute_knowledge(
                    data, rc, cache_dir=None, device=torch.device("cpu"),
                    operator=graph_operator(rc, data))[0]
            for name in todo:
                s = rc.student
                torch.manual_seed(seed)
                student = student_from_config(name, rc, data.x.size(1), int(data.num_classes),
                                              knowledge_shape=knowledge[mode].shape)
                res = distill_student(
                    student, data, None if name == "glnn" else knowledge[mode], logp, split,
                    lam=s.lam, T=s.temperature, lr=s.lr, weight_decay=s.weight_decay,
                    epochs=s.epochs, patience=s.patience, batch_size=s.batch_size, seed=seed)
                append_row(csv_path, {
                    "run": run.name, "variant": variant, "student": name, "seed": seed,
                    "val": f"{100 * res.val_acc:.2f}", "tran": f"{100 * res.test_acc:.2f}",
                    "ind": "", "prod": ""})


def run_variants(run: Path, variants: list[str], students: list[str], seeds: range,
                 csv_path: Path) -> None:
    base = yaml.safe_load((run / "config.yaml").read_text())
    if base.get("setting") != "inductive":
        if HELDOUT.intersection(variants):
            raise SystemExit(f"{run}: {sorted(HELDOUT)} needs an inductive run")
        transductive_variants(run, base, variants, students, seeds, csv_path)
        return
    done = _done(csv_path, inductive=True)
    data = load_dataset(base["dataset"])
    for seed in seeds:
        isplit, logp, observed = seed_inputs(run, data, base["protocol"], seed)
        cache: dict[str, tuple] = {}
        for variant, rc, todo in _pending(run, base, variants, students, seed, done):
            mode = knowledge_spec(rc, data).mode
            if mode not in cache:
                cache[mode] = knowledge_pair(rc, data, observed, isplit)
            k_obs, k_test = cache[mode]
            for name in todo:
                torch.manual_seed(seed)
                student = student_from_config(name, rc, data.x.size(1), int(data.num_classes),
                                              knowledge_shape=k_obs.shape)
                glnn = name == "glnn"
                val, sc = distil_and_score(student, rc, data, observed,
                                           None if glnn else k_obs, None if glnn else k_test,
                                           logp, isplit, seed, heldout=variant in HELDOUT)
                append_row(csv_path, {
                    "run": run.name, "variant": variant, "student": name, "seed": seed,
                    "val": f"{100 * val:.2f}", "tran": f"{100 * sc['tran']:.2f}",
                    "ind": f"{100 * sc['ind']:.2f}", "prod": f"{100 * sc['prod']:.2f}"})


def table(csv_path: Path) -> str:
    rows = list(csv.DictReader(csv_path.open()))
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["run"], r["student"], r["variant"]), []).append(r)
    lines = ["| run | student | variant | seeds | val | tran | ind | prod |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for (run, student, variant), rs in sorted(groups.items()):
        cells = [f"{statistics.fmean(float(r[k]) for r in rs):.2f}" if rs[0][k] else ""
                 for k in ("val", "tran", "ind", "prod")]
        lines.append(f"| {run} | {student} | {variant} | {len(rs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _run_score(run: Path, student: str, seed: int, inductive: bool,
               ) -> tuple[float, float] | None:
    """The run's own validation accuracy and score (%) of ``student`` at ``seed`` (``ind``
    for an inductive run, the test accuracy for a transductive one), if the run trained it."""
    row = json.loads((run / f"seed_{seed}" / "metrics.json").read_text())["models"].get(student)
    if row is None:
        return None
    return 100.0 * row["val_accuracy"], 100.0 * row["ind_accuracy" if inductive else "accuracy"]


def compare(csv_path: Path, variant: str, runs: list[Path]) -> str:
    """Per run and student, ``variant``'s mean score against the run's own settings on the
    same seeds: the run's own model where it trained it, else the CSV's ``base`` row. The
    score is ``ind`` for inductive runs, the test accuracy for transductive ones; the mean
    validation accuracies, what a choice between the two may read, come first."""
    rows = list(csv.DictReader(csv_path.open()))
    by_run = {run.name: run for run in runs}
    base = {(r["run"], r["student"], int(r["seed"])): r for r in rows if r["variant"] == "base"}
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        if r["variant"] == variant and r["run"] in by_run:
            groups.setdefault((r["run"], r["student"]), []).append(r)
    lines = [f"| run | student | seeds | val: run's settings | val: {variant} | "
             f"run's settings | {variant} | difference |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for (run, student), rs in sorted(groups.items()):
        key = "ind" if rs[0]["ind"] else "tran"
        pairs = []
        for r in rs:
            own = _run_score(by_run[run], student, int(r["seed"]), key == "ind")
            if own is None:
                b = base.get((run, student, int(r["seed"])))
                own = None if b is None else (float(b["val"]), float(b[key]))
            if own is not None:
                pairs.append((*own, float(r["val"]), float(r[key])))
        if pairs:
            va, a, vb, b = (statistics.fmean(p[i] for p in pairs) for i in range(4))
            lines.append(f"| {run} | {student} | {len(pairs)} | {va:.2f} | {vb:.2f} | "
                         f"{a:.2f} | {b:.2f} | {b - a:+.2f} |")
    return "\n".join(lines)


def gate_table(runs: list[Path], seeds: int) -> str:
    """Mean gates per channel (channel 0 = low pass) of FMLP-S and FMLP-O's output layer on
    the observed / unseen test nodes, averaged over ``seeds``."""
    lines = ["| run | student | seeds | observed test nodes | unseen test nodes |",
             "|---|---|---:|---|---|"]
    for run in runs:
        for name in ("fmlp-s", "fmlp-o"):
            obs, uns = [], []
            for seed in range(seeds):
                folder = run / f"seed_{seed}"
                gates = load_tensors(folder / "gates.safetensors")
                unseen = torch.isin(gates["test_nodes"],
                                    load_tensors(folder / "split.safetensors")["unseen"])
                g = gates[name] if gates[name].dim() == 2 else gates[name][-1]
                obs.append(g[~unseen].mean(0))
                uns.append(g[unseen].mean(0))
            cells = [" ".join(f"{v:.2f}" for v in torch.stack(x).mean(0).tolist())
                     for x in (obs, uns)]
            lines.append(f"| {run.name} | {name} | {seeds} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="*", type=Path, default=[])
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--students", default="fmlp-s,fmlp-o")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0,
                        help="start at this seed (two processes can split the seeds)")
    parser.add_argument("--csv", type=Path)
    parser.add_argument("--table", action="store_true")
    parser.add_argument("--gates", action="store_true")
    parser.add_argument("--compare", metavar="VARIANT",
                        help="print VARIANT against the runs' own settings (same seeds)")
    args = parser.parse_args()
    if args.compare:
        if args.csv is None:
            raise SystemExit("--compare needs --csv")
        print(compare(args.csv, args.compare, args.runs))
        return
    if args.gates:
        print(gate_table(args.runs, args.seeds))
        return
    if args.table:
        print(table(args.csv))
        return
    if args.csv is None:
        raise SystemExit("--csv is required (except with --gates)")
    variants = args.variants.split(",")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; known: {list(VARIANTS)}")
    for run in args.runs:
        run_variants(run, variants, args.students.split(","),
                     range(args.first_seed, args.seeds), args.csv)


if __name__ == "__main__":
    main()
