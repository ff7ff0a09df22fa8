"""How much a 10-seed mean owes to the weights' initial draw: the teacher and MLP rows of
BENCHMARKS §8.6 retrained on the same splits with other initialisations (§8.23).

A row of §8.6 is 10 runs, one per split, each seeded with its split's number: the split, the
initial weights and the dropout masks all follow that seed. Here draw ``k`` of split ``s``
seeds the weights and the dropout with ``s + 1000 k`` (:func:`framekd.tune.draw_seed`, as
``framekd tune --draws`` does) and keeps split ``s``, so draw 0 is §8.6's run itself (a
check: it must reproduce those rows) and draws 1.. are the same models on the same splits
from other starting points. Rows (``--variants``):

* ``mlp``: the MLP on raw features with the package's default settings (§8.6's MLP row);
* ``spectral smooth={none,low,all}`` with the package defaults; their per-run best on
  validation is the default teacher (``teacher.smooth: auto``, §8.6's "default teacher");
* ``shipped``: the teacher of the dataset's shipped preset (``framekd/configs/D.yaml``);
* ``preset=FILE``: the teacher of a ``framekd tune`` preset over the shipped one;
* ``spectral smooth=M own``: the same with per-channel projections
  (``teacher.shared_weights: false``, §8.25); with the three ``smooth`` rows they give
  ``auto`` over six teachers;
* ``default smooth_se=X``: the package's default teacher as ``framekd run`` trains it
  (:func:`framekd.experiment.fit_teacher`, ``teacher.smooth: auto``) with
  ``teacher.smooth_se`` X (§8.24); with X = 0 it is the default row computed from the three
  ``smooth`` rows;
* ``none, gains frozen`` and ``none, gains frozen, MLP's weights``: the default spectral
  teacher with its band gains held at the identity, from its own initial draw or from the
  MLP's: by SPEC §4 the latter is the MLP, so it separates what the gains do from what the
  initial draw does.

Resumable: one CSV row per (dataset, variant, split, draw), appended when finished.

Usage (data from $FRAMEKD_DATA)::

    OMP_NUM_THREADS=1 python benchmarks/init_draws.py --datasets wisconsin --draws 5 \
        --csv benchmarks/results/init_draws.csv
    python benchmarks/init_draws.py --csv benchmarks/results/init_draws.csv --table OUT.md
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from _env import appended_csv, finished
from ablation_heterophily import DATASETS, package_defaults
from ablation_heterophily import _model as ablation_model
from framekd.config import RunConfig, resolve
from framekd.data import load_dataset
from framekd.distill import train_teacher
from framekd.experiment import fit_teacher
from framekd.models import teacher_from_config
from framekd.models.spectral import AUTO_SMOOTH
from framekd.splits import make_split
from framekd.tune import draw_seed

FROZEN, FROZEN_MLP = "none, gains frozen", "none, gains frozen, MLP's weights"
VARIANTS = ("mlp", *(f"spectral smooth={m}" for m in AUTO_SMOOTH), "shipped", FROZEN, FROZEN_MLP)
AUTO = "default teacher (auto)"
#: ``auto`` over the three modes with shared and with own projections (§8.25).
AUTO6 = "auto over 6 (shared and own projections)"
OWN_VARIANTS = tuple(f"spectral smooth={m} own" for m in AUTO_SMOOTH)
DEFAULT_SE = "default smooth_se="
FIELDS = ["dataset", "protocol", "variant", "seed", "draw", "val", "test"]


def _config(name: str, variant: str, protocol: str) -> RunConfig:
    overrides = [f"protocol={protocol}"]
    if variant.startswith("preset="):
        return RunConfig.from_dict(resolve(name, config_file=variant.split("=", 1)[1],
                                           overrides=overrides))
    if variant != "shipped":
        overrides += package_defaults()
    if variant.startswith(DEFAULT_SE):
        overrides.append(f"teacher.smooth_se={variant.split('=')[1]}")
    elif variant.startswith("spectral smooth="):
        mode, *own = variant.split("=")[1].split()
        overrides += [f"teacher.smooth={mode}",
                      *(["teacher.shared_weights=false"] if own == ["own"] else [])]
    elif variant in (FROZEN, FROZEN_MLP):
        overrides.append("teacher.smooth=none")
    return RunConfig.from_dict(resolve(name, overrides=overrides))


def _model(variant: str, rc: RunConfig, d: int, c: int) -> nn.Module:
    """The model of ``variant``, built right after the draw's ``torch.manual_seed``."""
    if variant == "mlp":
        return ablation_model("mlp", rc, d, c)
    # the MLP's draw comes first
    mlp = ablation_model("mlp", rc, d, c).mlp if variant == FROZEN_MLP else None
    model = teacher_from_config(rc.teacher.name, rc, d, c)
    if variant in (FROZEN, FROZEN_MLP):
        for i, conv in enumerate(model.convs):
            conv.band.requires_grad_(False)  # no gradient: Adam leaves the gains at 1
            if mlp is not None:
                conv.lin.load_state_dict(mlp.lins[i].state_dict())
    return model


def run(args: argparse.Namespace) -> None:
    path = Path(args.csv[0])
    done = finished(path, lambda r: (r["dataset"], r["variant"], int(r["seed"]),
                                     int(r["draw"])))
    variants = args.variants.split(";") if args.variants else VARIANTS
    with appended_csv(path, FIELDS) as write:
        for name in args.datasets.split(";"):
            protocol = DATASETS.get(name, "fgkd")
            data = load_dataset(name)
            d, c = data.x.size(1), int(data.num_classes)
            for variant in variants:
                rc = _config(name, variant, protocol)
                if variant == "shipped" and rc.teacher.smooth == "auto":
                    print(f"{name}: {variant} is the default teacher (no teacher preset "
                          "ships); see its own row", flush=True)
                    continue
                for draw in range(args.draws):
                    for seed in range(args.seeds):
                        if (name, variant, seed, draw) in done:
                            continue
                        split = make_split(data, protocol, seed)
                        run_seed = draw_seed(seed, draw)
                        t = rc.teacher
                        start = time.perf_counter()
                        if variant.startswith(DEFAULT_SE):
                            res = fit_teacher(t.name, data, split, rc, run_seed, None)[1]
                        else:
                            torch.manual_seed(run_seed)
                            model = _model(variant, rc, d, c)
                            res = train_teacher(model, data, split, lr=t.lr,
                                                weight_decay=t.weight_decay, epochs=t.epochs,
                                                patience=t.patience, seed=run_seed)
                        write({"dataset": name, "protocol": protocol, "variant": variant,
                               "seed": seed, "draw": draw, "val": f"{res.val_acc:.6f}",
                               "test": f"{res.test_acc:.6f}"})
                        print(f"{name} {variant} split {seed} draw {draw}: val "
                              f"{res.val_acc:.4f} test {res.test_acc:.4f} "
                              f"({time.perf_counter() - start:.1f} s)", flush=True)


def _runs(rows: list[dict], dataset: str) -> dict[str, dict[tuple[int, int], float]]:
    """variant -> {(split, draw): test accuracy (%)}, with the default teacher added: per
    run the ``smooth`` mode of :data:`AUTO_SMOOTH` with the best validation accuracy, the
    first on ties (as ``framekd run`` keeps the first)."""
    by: dict[str, dict[tuple[int, int], dict]] = {}
    for r in rows:
        if r["dataset"] == dataset:
            by.setdefault(r["variant"], {})[int(r["seed"]), int(r["draw"])] = r
    out = {v: {k: 100 * float(r["test"]) for k, r in runs.items()} for v, runs in by.items()}
    modes = [by.get(f"spectral smooth={m}", {}) for m in AUTO_SMOOTH]
    out[AUTO] = _best_val(modes)
    wide = [m for mode, own in zip(modes, (by.get(v, {}) for v in OWN_VARIANTS), strict=True)
            for m in (mode, own)]
    out[AUTO6] = _best_val(wide)
    return {v: runs for v, runs in out.items() if runs}


def _best_val(variants: list[dict[tuple[int, int], dict]]) -> dict[tuple[int, int], float]:
    """Per run the test accuracy (%) of the variant with the best validation accuracy,
    the first on ties (as ``framekd run`` keeps the first), where every variant ran."""
    keys = set.intersection(*(set(m) for m in variants)) if all(variants) else set()
    return {k: 100 * float(max((m[k] for m in variants), key=lambda r: float(r["val"]))["test"])
            for k in sorted(keys)}


def _draw_means(runs: dict[tuple[int, int], float]) -> list[float]:
    """The 10-split mean of each complete draw (every split present)."""
    seeds = {s for s, _ in runs}
    draws = sorted({k for _, k in runs})
    return [statistics.fmean(runs[s, k] for s in seeds) for k in draws
            if all((s, k) in runs for s in seeds)]


def margin(a: dict[tuple[int, int], float], b: dict[tuple[int, int], float]
           ) -> tuple[float, float, list[float]]:
    """Mean of ``a`` − ``b`` over the runs both have, its standard error over splits and the
    per-split differences: per split the two draw-averaged scores are paired, their
    difference's spread over the splits gives the error (the draws of one split share its
    test nodes)."""
    keys = set(a) & set(b)
    seeds = sorted({s for s, _ in keys})
    diffs = [statistics.fmean(a[k] - b[k] for k in keys if k[0] == s) for s in seeds]
    err = statistics.stdev(diffs) / len(diffs) ** 0.5 if len(diffs) > 1 else float("nan")
    return statistics.fmean(diffs), err, diffs


def table(args: argparse.Namespace) -> str:
    rows = []
    for path in args.csv:
        with Path(path).open() as f:
            rows += list(csv.DictReader(f))
    base = args.baseline
    lines = ["| dataset | row | runs | draw 0 (§8.6's run) | each draw's 10-split mean | "
             f"all runs | − {base} (± s.e. over splits) | per split − {base} |",
             "|---|---|---:|---:|---|---:|---:|---|"]
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        runs = _runs(rows, dataset)
        extra = sorted(v for v in runs if v.startswith(("preset=", DEFAULT_SE)))
        for variant in (*VARIANTS, AUTO, *OWN_VARIANTS, AUTO6, *extra):
            if variant not in runs:
                continue
            r = runs[variant]
            means = _draw_means(r)
            vs = " | "
            if variant != base and base in runs:
                m, e, diffs = margin(r, runs[base])
                vs = f"{m:+.2f} ± {e:.2f} | {', '.join(f'{x:+.2f}' for x in diffs)}"
            lines.append(f"| {dataset} | {variant} | {len(r)} | "
                         f"{means[0]:.2f} | {', '.join(f'{x:.2f}' for x in means)} | "
                         f"{statistics.fmean(r.values()):.2f} | {vs} |" if means else
                         f"| {dataset} | {variant} | {len(r)} | – | – | – | | |")
    text = ("Test accuracy (%), the same splits, weights and dropout drawn with seed "
            "split + 1000 × draw (`benchmarks/init_draws.py`).\n\n"
            + "\n".join(lines) + "\n")
    if args.table:
        Path(args.table).write_text(text)
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="wisconsin", help="';'-separated dataset names")
    parser.add_argument("--variants", help=f"';'-separated rows (default: all of {VARIANTS})")
    parser.add_argument("--seeds", type=int, default=10, help="splits 0..seeds-1")
    parser.add_argument("--draws", type=int, default=5, help="initial draws per split")
    parser.add_argument("--baseline", default="mlp",
                        help=f"the row the table subtracts (default mlp; e.g. {AUTO!r})")
    parser.add_argument("--csv", nargs="+", default=["benchmarks/results/init_draws.csv"],
                        help="the CSV to append to (the first); --table reads them all")
    parser.add_argument("--table", nargs="?", const="", help="print (and write to the path "
                        "given) the table from --csv instead of training")
    args = parser.parse_args(argv)
    if args.table is not None:
        print(table(args))
    else:
        run(args)


if __name__ == "__main__":
    main()
