"""One accuracy table from the run folders of several ``framekd bench accuracy`` commands.

Usage::

    .venv/bin/python benchmarks/accuracy_table.py RUN_DIR [RUN_DIR ...] \\
        --out benchmarks/results/accuracy

Each input is a finished run folder (``metrics.json`` + ``config.yaml``, e.g.
``runs/bench-accuracy/runs/cora-fgkd``), whose row is built exactly as ``framekd bench
accuracy`` builds it (:func:`framekd.bench.accuracy_row`, same "reached" rule), or an
``accuracy.csv`` that command wrote, whose rows are taken as they are. A later row with the
same dataset, protocol, graph and knowledge replaces an earlier one (a re-run supersedes).
Written as ``OUT.md`` (the table, then one line per dataset for protocol ``fgkd`` on the
original graph) and ``OUT.csv``. Nothing is trained here.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import yaml

from framekd.bench import (
    ACCURACY_COLUMNS,
    AccuracyJob,
    accuracy_markdown,
    accuracy_row,
    write_csv,
)
from framekd.io import read_json, write_text


def row_of(run_dir: Path) -> dict:
    metrics = read_json(run_dir / "metrics.json")
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    sdrf = (cfg.get("rewire") or {}).get("method") == "sdrf"
    job = AccuracyJob(str(metrics["dataset"]), str(metrics["protocol"]), sdrf=sdrf)
    return accuracy_row(job, metrics)


def rows_of_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        for key, value in list(row.items()):
            if key.endswith(("_mean", "_std")) or key == "gap":
                row[key] = float(value) if value else None
            elif key == "seeds":
                row[key] = int(value)
            elif key == "reached":
                row[key] = {"True": True, "False": False}.get(value)
        for key in [k for k, v in row.items() if v is None]:
            del row[key]
    return rows


def summary_markdown(rows: list[dict]) -> str:
    """One line per dataset and knowledge (protocol fgkd, original graph): the teacher, the
    better FMLP, GLNN and the MLP on labels, and whether the best student reached it."""
    def cell(row: dict, model: str) -> str:
        return f"{row[f'{model}_mean']:.2f} ± {row[f'{model}_std']:.2f}"

    lines = ["| dataset | knowledge | teacher (spatial) | best FMLP | GLNN | MLP on labels "
             "| best student − teacher | reached |", "|---|---|---:|---:|---:|---:|---:|---|"]
    picked = [r for r in rows if r["protocol"] == "fgkd" and r["graph"] == "original"
              and "gap" in r]
    for r in picked:
        fmlp = max(("fmlp-s", "fmlp-o"), key=lambda m: r[f"{m}_mean"])
        lines.append(f"| {r['dataset']} | {r.get('knowledge', '')} | {cell(r, r['teacher'])} | "
                     f"{cell(r, fmlp)} ({fmlp}) | {cell(r, 'glnn')} | {cell(r, 'mlp')} | "
                     f"{r['gap']:+.2f} ({r['best_student']}) | {'yes' if r['reached'] else 'no'} |")
    datasets = {r["dataset"] for r in picked}
    reached = {r["dataset"] for r in picked if r["reached"]}
    return ("\n".join(lines) + f"\n\nfgkd, original graph: the best student reached the "
            f"teacher on {len(reached)} of {len(datasets)} datasets (with at least one of the "
            "knowledge modes listed).\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders or accuracy.csv files")
    parser.add_argument("--out", type=Path, required=True, help="path without extension")
    args = parser.parse_args(argv)
    table: dict[tuple, dict] = {}
    for path in args.runs:
        for row in rows_of_csv(path) if path.suffix == ".csv" else [row_of(path)]:
            key = (row["dataset"], row["protocol"], row["graph"], row.get("knowledge"))
            table.pop(key, None)  # a re-run moves to the end, after what it supersedes
            table[key] = row
    rows = list(table.values())
    text = accuracy_markdown(rows) + "\n" + summary_markdown(rows)
    write_text(args.out.with_suffix(".md"), text)
    write_csv(args.out.with_suffix(".csv"), rows, ACCURACY_COLUMNS)
    print(text)


if __name__ == "__main__":
    main()
