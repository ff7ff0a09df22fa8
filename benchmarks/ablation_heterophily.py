"""Ablation: why the paper's spatial framelet teacher loses to an MLP under heterophily.

Each variant is one teacher configuration (``--set``-style overrides on top of the package
defaults, so a dataset's shipped preset, which later sessions added, does not enter)
trained on the same splits as the others: the paper's SpatUFG (``spatial``) with one
setting changed at a time (ε, levels, filter bank, Chebyshev order,
input-feature normalisation, lr / weight decay / dropout, early-stopping patience), the
spectral framelet teacher that contains an MLP (``spectral``, with Â on no, the low-pass or
every channel), and GCN and an MLP on raw features as references. Only validation and test
accuracy of the teacher are recorded (no students).

Resumable: one CSV row per (dataset, variant, seed) is appended to ``--csv`` as soon as it
is finished, and finished rows are skipped on a re-run. ``--table`` writes the mean ± std
table (test accuracy; the variant with the best mean *validation* accuracy is marked).

Usage (data from $FRAMEKD_DATA)::

    OMP_NUM_THREADS=1 python benchmarks/ablation_heterophily.py --seeds 10 \
        --csv benchmarks/results/ablation_heterophily.csv
    python benchmarks/ablation_heterophily.py --table benchmarks/results/ablation_heterophily.md
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time
from pathlib import Path

import torch
from torch import Tensor, nn
from torch_geometric.transforms import NormalizeFeatures

from _env import appended_csv, finished
from framekd.config import DEFAULTS, RunConfig, resolve
from framekd.data import load_dataset
from framekd.distill import train_teacher
from framekd.models import MLP, teacher_from_config
from framekd.splits import make_split

DATASETS = {
    "texas": "geom",
    "wisconsin": "geom",
    "cornell": "geom",
    "csbm:n=1500,c=4,d=8,h=0.1,signal=1.0,f=32,seed=0": "fgkd",  # `framekd demo`'s graph
    "chameleon": "geom",
    # The comparison table (BENCHMARKS §8.2) also covers these, with --variants table.
    "actor": "geom",
    "squirrel": "geom",
    "cora": "fgkd",
    "citeseer": "fgkd",
    "photo": "fgkd",
    "computers": "fgkd",
    "cs": "fgkd",
    "physics": "fgkd",
}
#: The datasets of the ablation proper (the default of --datasets).
ABLATION = ("texas", "wisconsin", "cornell",
            "csbm:n=1500,c=4,d=8,h=0.1,signal=1.0,f=32,seed=0", "chameleon")
#: name -> (teacher, overrides, normalise input features)
VARIANTS: dict[str, tuple[str, list[str], bool]] = {
    "spatial": ("spatial", [], False),
    "spatial eps=+0.5": ("spatial", ["teacher.epsilon=0.5"], False),
    "spatial eps=-0.5": ("spatial", ["teacher.epsilon=-0.5"], False),
    "spatial levels=2": ("spatial", ["framelet.levels=2"], False),
    "spatial linear bank": ("spatial", ["framelet.filters=linear"], False),
    "spatial order=2": ("spatial", ["framelet.order=2"], False),
    "spatial order=16": ("spatial", ["framelet.order=16"], False),
    "spatial normalised x": ("spatial", [], True),
    "spatial lr=0.005,wd=5e-3": ("spatial", ["teacher.lr=0.005", "teacher.weight_decay=5e-3"],
                                 False),
    "spatial dropout=0.8": ("spatial", ["teacher.dropout=0.8"], False),
    "spatial patience=200": ("spatial", ["teacher.patience=200"], False),
    "spectral smooth=all": ("spectral", ["teacher.smooth=all"], False),
    "spectral smooth=low": ("spectral", ["teacher.smooth=low"], False),
    "spectral smooth=none": ("spectral", ["teacher.smooth=none"], False),
    "spectral smooth=learn": ("spectral", ["teacher.smooth=learn"], False),
    "spectral smooth=none, normalised x": ("spectral", ["teacher.smooth=none"], True),
    "gcn": ("gcn", [], False),
    "mlp": ("mlp", [], False),
}
#: The variants run on the larger graphs (Chameleon) to keep the study within hours.
SHORT = ("spatial", "spatial eps=+0.5", "spatial normalised x", "spectral smooth=all",
         "spectral smooth=low", "spectral smooth=none", "gcn", "mlp")
#: ``--variants table``: the side-by-side teachers of the comparison table; the default
#: ``spectral`` teacher (``teacher.smooth: auto``) is the seed-wise best-validation choice of
#: its ``none`` and ``all`` rows, exactly what ``framekd run`` trains (same seeds and splits).
TABLE = ("mlp", "gcn", "spatial", "spectral smooth=none", "spectral smooth=low",
         "spectral smooth=all")
AUTO = "spectral auto (best val of none/low/all)"
FIELDS = ["dataset", "protocol", "variant", "seed", "val", "test", "epoch", "seconds"]


#: ``--preset DATASET=FILE``: a ``framekd tune`` preset as one more row.
TUNED = "tuned preset"


def package_defaults() -> list[str]:
    """``--set`` overrides that put the teacher and framelet sections back to the package
    defaults over a dataset's shipped preset: every variant is the defaults with one change,
    whichever presets ship when it is run."""
    return [f"{section}.{k}={'null' if v is None else v}"
            for section in ("teacher", "framelet") for k, v in DEFAULTS[section].items()]


def _preset_variant(path: str) -> tuple[str, list[str], bool]:
    """(teacher, ``--set``-style overrides, normalise) of a preset YAML file."""
    import yaml

    from framekd.tune.space import flatten

    flat = flatten(yaml.safe_load(Path(path).read_text()))
    flat.pop("protocol", None)  # the row uses the dataset's protocol like every other
    return str(flat.get("teacher.name", "spectral")), [f"{k}={v}" for k, v in flat.items()], False


class _FeaturesOnly(nn.Module):
    """The MLP reference with the teachers' call signature ``model(x, edge_index)``."""

    def __init__(self, mlp: MLP) -> None:
        super().__init__()
        self.mlp = mlp

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        return self.mlp(x).logits


def _model(variant: str, rc: RunConfig, d: int, c: int) -> nn.Module:
    teacher = VARIANTS[variant][0] if variant in VARIANTS else rc.teacher.name
    if teacher == "mlp":
        t = rc.teacher
        return _FeaturesOnly(MLP(d, t.hidden, c, num_layers=t.layers, dropout=t.dropout))
    return teacher_from_config(teacher, rc, d, c)


def run(args: argparse.Namespace) -> None:
    path = Path(args.csv)
    done = finished(path, lambda r: (r["dataset"], r["variant"], int(r["seed"])))
    with appended_csv(path, FIELDS) as write:
        for name in args.datasets.split(";"):
            protocol = DATASETS.get(name, "fgkd")
            base = load_dataset(name)
            if args.variants == "table":
                variants = TABLE
            elif args.variants:
                variants = [v for v in VARIANTS if v in args.variants.split(";")]
            else:
                variants = SHORT if name == "chameleon" and not args.all_variants else VARIANTS
            presets = dict(item.split("=", 1) for item in args.preset)
            if name in presets:  # --preset: the tuned preset of this dataset alone
                variants = [TUNED]
            for variant in variants:
                teacher, overrides, normalise = (
                    _preset_variant(presets[name]) if variant == TUNED else VARIANTS[variant])
                data = NormalizeFeatures()(base.clone()) if normalise else base
                rc = RunConfig.from_dict(resolve(name, overrides=[
                    *package_defaults(),
                    f"teacher.name={teacher if teacher != 'mlp' else 'gcn'}",
                    f"protocol={protocol}", *overrides]))
                for seed in range(args.seeds):
                    if (name, variant, seed) in done:
                        continue
                    split = make_split(data, protocol, seed)
                    torch.manual_seed(seed)
                    model = _model(variant, rc, data.x.size(1), int(data.num_classes))
                    t = rc.teacher
                    start = time.perf_counter()
                    res = train_teacher(model, data, split, lr=t.lr, weight_decay=t.weight_decay,
                                        epochs=t.epochs, patience=t.patience, seed=seed)
                    write({"dataset": name, "protocol": protocol, "variant": variant,
                           "seed": seed, "val": f"{res.val_acc:.6f}",
                           "test": f"{res.test_acc:.6f}", "epoch": res.best_epoch,
                           "seconds": f"{time.perf_counter() - start:.2f}"})
                    print(f"{name} {variant} seed {seed}: val {res.val_acc:.4f} "
                          f"test {res.test_acc:.4f}", flush=True)


def auto_test(rows: list[dict], dataset: str) -> list[float]:
    """Per seed, the test accuracy of whichever of the ``spectral smooth=`` rows of
    :data:`~framekd.models.spectral.AUTO_SMOOTH` has the best validation accuracy (the first
    on ties, as ``framekd run`` keeps the first); seeds missing a mode are left out."""
    from framekd.models.spectral import AUTO_SMOOTH

    by = {(r["variant"], int(r["seed"])): r for r in rows if r["dataset"] == dataset}
    out = []
    for seed in sorted({s for _, s in by}):
        cands = [by.get((f"spectral smooth={mode}", seed)) for mode in AUTO_SMOOTH]
        if all(c is not None for c in cands):
            out.append(float(max(cands, key=lambda r: float(r["val"]))["test"]))
    return out


def table(args: argparse.Namespace) -> None:
    with Path(args.csv).open() as f:
        rows = list(csv.DictReader(f))
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    if args.datasets_only:
        datasets = [d for d in datasets if d in args.datasets_only.split(";")]
    lines = ["| variant | " + " | ".join(f"{d.split(',')[0]} ({DATASETS.get(d, 'fgkd')})"
                                         for d in datasets) + " |",
             "|---|" + "---:|" * len(datasets)]
    cells: dict[tuple[str, str], tuple[float, float, float, int]] = {}
    for d in datasets:
        for v in (*VARIANTS, TUNED):
            sel = [r for r in rows if r["dataset"] == d and r["variant"] == v]
            if sel:
                test = [100 * float(r["test"]) for r in sel]
                val = [100 * float(r["val"]) for r in sel]
                cells[d, v] = (statistics.fmean(test),
                               statistics.pstdev(test) if len(test) > 1 else 0.0,
                               statistics.fmean(val), len(sel))
    for d in datasets:
        auto = auto_test(rows, d)
        if auto:
            test = [100 * t for t in auto]
            cells[d, AUTO] = (statistics.fmean(test),
                              statistics.pstdev(test) if len(test) > 1 else 0.0, -1.0, len(test))
    names = [*VARIANTS, AUTO, TUNED]
    if args.variants == "table":
        names = [*TABLE, AUTO, TUNED]
    names = [v for v in names if any((d, v) in cells for d in datasets)]
    best_val = {d: max((cells[d, v][2], v) for v in (*VARIANTS, TUNED) if (d, v) in cells)[1]
                for d in datasets}
    for v in names:
        out = []
        for d in datasets:
            if (d, v) not in cells:
                out.append("–")
                continue
            mean, std, _, n = cells[d, v]
            mark = " **(best val)**" if best_val[d] == v else ""
            out.append(f"{mean:.2f} ± {std:.2f} (n={n}){mark}")
        lines.append(f"| {v} | " + " | ".join(out) + " |")
    text = ("Teacher test accuracy (%), mean ± std over seeds (geom splits where the dataset "
            "has them, else fgkd); **(best val)** marks the variant with the best mean "
            "validation accuracy.\n\n" + "\n".join(lines) + "\n")
    Path(args.table).write_text(text)
    print(text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=";".join(ABLATION),
                        help="';'-separated dataset names or csbm:... specs")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--csv", default="benchmarks/results/ablation_heterophily.csv")
    parser.add_argument("--table", help="write the Markdown table from --csv and exit")
    parser.add_argument("--datasets-only", help="';'-separated datasets for --table")
    parser.add_argument("--variants", help="';'-separated variant names, or 'table' for the "
                        "comparison table's teachers (default: every variant)")
    parser.add_argument("--preset", action="append", default=[], metavar="DATASET=FILE",
                        help=f"train the preset FILE of `framekd tune` on DATASET as the row "
                        f"{TUNED!r} (repeatable; replaces the variants for that dataset)")
    parser.add_argument("--all-variants", action="store_true",
                        help="every variant on Chameleon too (default: a short list)")
    args = parser.parse_args(argv)
    if args.table:
        table(args)
    else:
        run(args)


if __name__ == "__main__":
    main()
