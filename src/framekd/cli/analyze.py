"""``framekd analyze``: energies, gates, agreement and geometry of trained models
(docs/SPEC.md §8).

Three parts, each writing PNG plots and a section of ``summary.md`` into ``--out``:

* ``--dataset NAME``: trains (or reuses) the spatial teacher and the students, then reports
  the Dirichlet energy per layer and channel of the teacher and of the students'
  representations (``energy.png``), the students' gate statistics and the teacher/student
  agreement;
* ``--syn-cora`` (or ``--csbm-sweep SPEC`` for generated graphs): the homophily sweep
  h = 0.0 ... 1.0; per level, the mean reliance of FMLP-S and FMLP-O on each framelet channel
  (``gates.png``) and the accuracies (``sweep_accuracy.png``);
* geometry (``--geometry NAME``; skipped with ``--no-geometry``): the curvature histogram and
  spectral gap before/after SDRF (``curvature.png``) and accuracy versus teacher depth with
  and without SDRF (``depth.png``).

Training runs go to ``--work`` (default ``OUT/runs``) and are reused by a later call with the
same settings. The studies themselves live in :mod:`framekd.studies`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

SWEEP_LEVELS = ("0.00", "0.10", "0.20", "0.30", "0.40", "0.50", "0.60", "0.70", "0.80", "0.90",
                "1.00")
QUICK_LEVELS = ("0.00", "0.50", "1.00")
# Tiny training budget of --quick (the user's --set values still win).
QUICK_SETTINGS = ("teacher.epochs=30", "teacher.patience=10", "student.epochs=30",
                  "student.patience=10", "teacher.hidden=16", "student.hidden=16",
                  "knowledge.sketch_dim=32")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "analyze", help="Dirichlet energy, gates vs homophily, agreement, curvature and depth",
        description="Analyse teachers and students: Dirichlet energy per layer and channel, "
        "gate reliance per framelet channel (on one dataset or across the syn-cora homophily "
        "sweep), teacher/student agreement, curvature and spectral gap before/after SDRF and "
        "accuracy versus depth. Writes PNG plots and summary.md into --out.")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--dataset", metavar="NAME", help="dataset name, csbm:... spec or folder")
    what.add_argument("--syn-cora", action="store_true",
                      help="homophily sweep over syn-cora-h{0.00..1.00}-r{1,2,3}")
    what.add_argument("--csbm-sweep", metavar="SPEC",
                      help="homophily sweep over generated graphs: a csbm spec without h "
                      "(e.g. csbm:n=1000,c=5,d=8,f=32); realisation r uses seed=r")
    p.add_argument("--seeds", type=int, default=3, help="seeds per run (default 3)")
    p.add_argument("--realisations", type=int, default=3,
                   help="realisations per homophily level (default 3, --quick 1)")
    p.add_argument("--with-0.99", dest="with_099", action="store_true",
                   help="add syn-cora level 0.99 to the sweep")
    p.add_argument("--geometry", metavar="NAME",
                   help="dataset of the curvature/depth part (default: --dataset, or cornell "
                   "for a sweep)")
    p.add_argument("--no-geometry", action="store_true", help="skip the curvature/depth part")
    p.add_argument("--depths", default="2,4,6",
                   help="teacher depths of the depth study (default 2,4,6; --quick 2,4)")
    p.add_argument("--quick", action="store_true",
                   help="tiny budget: 30 epochs, width 16, 1 realisation, levels 0/0.5/1, "
                   "depths 2,4")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="configuration override for every run (repeatable)")
    p.add_argument("--out", type=Path, default=Path("analysis"),
                   help="folder for plots and summary.md (default analysis)")
    p.add_argument("--work", type=Path, help="folder for training runs (default OUT/runs)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(handler=handle)


def parse_depths(text: str, quick: bool = False) -> list[int]:
    """``--depths`` as a list of positive integers (``--quick`` turns the default into 2,4)."""
    from framekd.cli import parse_ints

    if quick and text == "2,4,6":
        return [2, 4]
    return parse_ints(text, "--depths", "2,4,6")


def handle(args: argparse.Namespace) -> int:
    from framekd.cli import make_log
    from framekd.errors import ConfigError
    from framekd.io import write_json, write_text
    from framekd.studies import (
        StudyContext,
        analyze_dataset,
        analyze_geometry,
        analyze_sweep,
        check_sweep_spec,
    )

    if args.seeds < 1 or args.realisations < 1:
        raise ConfigError("--seeds and --realisations must be >= 1")
    # Every argument is checked before the first (long) training run starts.
    depths = parse_depths(args.depths, args.quick)
    if args.csbm_sweep is not None:
        check_sweep_spec(args.csbm_sweep)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    work = args.work or out / "runs"
    overrides = (list(QUICK_SETTINGS) if args.quick else []) + list(args.set)
    log = make_log(args.quiet)
    ctx = StudyContext(out=out, work=work, overrides=overrides, seeds=args.seeds, log=log)

    sections, report = [], {}
    if args.dataset:
        report["dataset"], text = analyze_dataset(ctx, args.dataset)
        sections.append(text)
    else:
        levels = QUICK_LEVELS if args.quick else SWEEP_LEVELS
        if args.with_099:
            levels = tuple(sorted(set(levels) | {"0.99"}))
        reals = 1 if args.quick else args.realisations
        report["sweep"], text = analyze_sweep(ctx, levels, reals, csbm=args.csbm_sweep)
        sections.append(text)
    if not args.no_geometry:
        name = args.geometry or args.dataset or "cornell"
        report["geometry"], text = analyze_geometry(ctx, name, depths)
        sections.append(text)
    header = ("# framekd analyze\n\nCommand: `framekd analyze "
              + " ".join(_argv(args)) + "`\n\n")
    write_text(out / "summary.md", header + "\n\n".join(sections) + "\n")
    write_json(out / "summary.json", report)
    log(f"written to {out}/ (summary.md, summary.json, PNG plots); runs in {work}/")
    return 0


def _argv(args: argparse.Namespace) -> list[str]:
    """The options of this call, spelled as on the command line."""
    out = []
    for key, value in vars(args).items():
        if key in ("handler", "command") or value in (None, False, [], ""):
            continue
        flag = "--with-0.99" if key == "with_099" else f"--{key.replace('_', '-')}"
        if value is True:
            out.append(flag)
        elif isinstance(value, list):
            out += [f"{flag} {v}" for v in value]
        else:
            out.append(f"{flag} {value}")
    return out
