"""The gate study (``framekd analyze --csbm-sweep`` / ``--syn-cora``) in the inductive
setting: gates read at test time, accuracy of the unseen nodes, the Spearman criterion."""

from __future__ import annotations

import json
import math

from framekd.cli import main
from framekd.studies import RHO_GOAL, _verdicts

TINY = ["--set", "teacher.epochs=5", "--set", "teacher.patience=5", "--set", "student.epochs=5",
        "--set", "student.patience=5"]


def test_inductive_sweep_reports_unseen_accuracy_and_test_gates(tmp_path):
    out = tmp_path / "sweep"
    argv = ["analyze", "--csbm-sweep", "csbm:n=200,c=3,d=6,f=8", "--quick", "--seeds", "1",
            "--no-geometry", "--out", str(out), "--quiet", "--set", "setting=inductive", *TINY]
    assert main(argv) == 0
    sweep = json.loads((out / "summary.json").read_text())["sweep"]
    runs = sorted((out / "runs").glob("sweep-*"))
    assert runs
    for rec in sweep["records"]:
        assert set(rec["gates"]) == {"fmlp-s", "fmlp-o"}  # not the stored test_nodes ids
        slug = next(p for p in runs if p.name.endswith(f"h{rec['level']}_seed{rec['realisation']}"))
        metrics = json.loads((slug / "metrics.json").read_text())
        assert metrics["setting"] == "inductive"
        for model, acc in rec["accuracy"].items():
            assert acc == metrics["models"][model]["ind_accuracy"][0]
    text = (out / "summary.md").read_text()
    assert "setting `inductive`" in text and "`ind` (unseen test nodes)" in text


def _curve(diffs):
    """One student's curve whose low-minus-high reliance equals ``diffs`` per level."""
    levels = [i / (len(diffs) - 1) for i in range(len(diffs))]
    return {"levels": levels, "mean": {"low": [0.5 + d / 2 for d in diffs],
                                       "high": [0.5 - d / 2 for d in diffs]}}


def test_spearman_criterion_on_monotone_and_flat_curves():
    rising = _verdicts({"s": _curve([-0.4, -0.2, 0.0, 0.2, 0.4])}, ["low", "high"])[0]
    assert "ρ(high − low, h) = -1.00" in rising and ": met)" in rising
    flat = _verdicts({"s": _curve([0.01, -0.01, 0.01, -0.01, 0.01])}, ["low", "high"])[0]
    assert "not met" in flat
    assert not math.isnan(RHO_GOAL)
