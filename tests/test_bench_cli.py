"""`framekd bench accuracy|speed` and `framekd analyze` end to end on a tiny CSBM graph.

These keep the evidence commands from rotting: one seed, a few epochs, small widths.
"""

from __future__ import annotations

import csv
import json
import math

import pytest

from framekd.bench import REACH_TOLERANCE, AccuracyJob, accuracy_plan, accuracy_row
from framekd.cli import main

SPEC = "csbm:n=200,c=3,d=6,h=0.3,f=8,seed=0"
TINY = ["--set", "teacher.epochs=5", "--set", "teacher.patience=5", "--set", "student.epochs=5",
        "--set", "student.patience=5", "--set", "teacher.hidden=8", "--set", "student.hidden=8",
        "--set", "knowledge.sketch_dim=16"]


def _csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_bench_accuracy_writes_table_and_resumes(tmp_path, capsys):
    out = tmp_path / "acc"
    argv = ["bench", "accuracy", "--datasets", SPEC, "--seeds", "1", "--out", str(out),
            "--quiet", *TINY]
    assert main(argv) == 0
    rows = _csv(out / "accuracy.csv")
    assert len(rows) == 1
    row = rows[0]
    assert row["protocol"] == "fgkd" and row["graph"] == "original" and row["seeds"] == "1"
    assert row["knowledge"] in ("sketch", "features")
    for model in ("spatial", "simplified", "gcn", "mlp", "glnn", "fmlp-s", "fmlp-o"):
        assert 0.0 <= float(row[f"{model}_mean"]) <= 100.0
    best = max(float(row[f"{m}_mean"]) for m in ("glnn", "fmlp-s", "fmlp-o"))
    assert float(row["gap"]) == pytest.approx(best - float(row["spatial_mean"]))
    assert row["reached"] == str(float(row["gap"]) >= -REACH_TOLERANCE)
    md = (out / "accuracy.md").read_text()
    assert "| dataset | protocol |" in md and "fgkd" in md
    seed_file = next(out.glob("runs/*/seed_0/metrics.json"))
    stamp = seed_file.stat().st_mtime_ns
    assert main(argv) == 0  # resume: the finished seed is reused, not retrained
    assert seed_file.stat().st_mtime_ns == stamp
    assert _csv(out / "accuracy.csv")[0]["fmlp-s_mean"] == row["fmlp-s_mean"]


def test_accuracy_plan_protocols_and_sdrf():
    jobs = accuracy_plan(["cornell", "cora", SPEC])
    assert AccuracyJob("cornell", "fgkd") in jobs and AccuracyJob("cornell", "geom") in jobs
    assert AccuracyJob("cornell", "geom", sdrf=True) in jobs
    assert AccuracyJob("cora", "geom") in jobs
    assert not any(j.sdrf for j in jobs if j.dataset in ("cora", SPEC))
    assert [j for j in jobs if j.dataset == SPEC] == [AccuracyJob(SPEC, "fgkd")]
    assert accuracy_plan(["cornell"], protocols=["fgkd"], sdrf=False) == [
        AccuracyJob("cornell", "fgkd")]


def test_accuracy_row_reached_rule():
    def metrics(teacher, student):
        return {"seeds": [0], "models": {
            "spatial": {"role": "teacher", "accuracy_mean": teacher, "accuracy_std": 0.0},
            "fmlp-s": {"role": "student", "accuracy_mean": student, "accuracy_std": 0.0},
            "mlp": {"role": "student", "accuracy_mean": 0.99, "accuracy_std": 0.0}}}

    job = AccuracyJob("x", "fgkd")
    assert accuracy_row(job, metrics(0.80, 0.796))["reached"] is True
    row = accuracy_row(job, metrics(0.80, 0.79))
    assert row["reached"] is False and row["best_student"] == "fmlp-s"  # mlp is not distilled
    assert row["gap"] == pytest.approx(-1.0)


def test_bench_speed_writes_table_and_chart(tmp_path):
    out = tmp_path / "speed"
    argv = ["bench", "speed", "--datasets", SPEC, "--repeats", "3", "--warmup", "1",
            "--out", str(out), "--set", "teacher.hidden=8", "--set", "knowledge.sketch_dim=16"]
    assert main(argv) == 0
    rows = _csv(out / "speed.csv")
    assert [r["model"] for r in rows] == ["spatial", "gcn", "mlp", "fmlp-s", "fmlp-o"]
    for r in rows:
        assert float(r["full_ms"]) > 0 and float(r["query_ms"]) > 0
        assert float(r["setup_ms"]) > 0
        assert int(r["threads"]) >= 1 and r["repeats"] == "3"
    spatial = rows[0]
    assert float(spatial["full_speedup"]) == pytest.approx(1.0)
    assert float(spatial["setup_ms"]) > 0 and float(rows[0]["knowledge_seconds"]) > 0
    assert (out / "speed.png").stat().st_size > 1000
    assert "10-node query" in (out / "speed.md").read_text()


def test_bench_speed_rejects_bad_query_size(tmp_path, capsys):
    argv = ["bench", "speed", "--datasets", SPEC, "--repeats", "1", "--query-size", "1000",
            "--out", str(tmp_path)]
    assert main(argv) == 2
    assert "query_size" in capsys.readouterr().err


def test_analyze_dataset_with_geometry(tmp_path):
    out = tmp_path / "an"
    argv = ["analyze", "--dataset", SPEC, "--quick", "--seeds", "1", "--depths", "2",
            "--set", "rewire.iterations=5", "--set", "rewire.tau=1", "--out", str(out),
            "--quiet", *TINY]
    assert main(argv) == 0
    for name in ("summary.md", "energy.png", "curvature.png", "depth.png"):
        assert (out / name).stat().st_size > 0, name
    rep = json.loads((out / "summary.json").read_text())
    (seed,) = rep["dataset"]["seeds"]
    energies = [seed["teacher"]["input"], seed["teacher"]["logits"]]
    energies += [c["contribution"] for layer in seed["teacher"]["layers"]
                 for c in layer["channels"]]
    assert all(0.0 <= e <= 2.0 + 1e-9 for e in energies)
    for name in ("glnn", "fmlp-s", "fmlp-o"):
        agree = seed["students"][name]["agreement_test"]
        assert 0.0 <= agree["agreement"] <= 1.0 and agree["kl"] >= 0.0
    for layer in seed["students"]["fmlp-o"]["gates"]["layers"]:
        for ch in layer["channels"]:
            assert 0.0 <= ch["reliance_mean"] <= 1.0
    geo = rep["geometry"]
    assert geo["after"]["edges"] == geo["before"]["edges"] + geo["edges_added"] \
        - geo["edges_removed"]
    assert {(r["depth"], r["sdrf"]) for r in geo["depth"]} == {(2, False), (2, True)}
    assert "Dirichlet energy" in (out / "summary.md").read_text()


def test_analyze_csbm_sweep(tmp_path):
    out = tmp_path / "sweep"
    argv = ["analyze", "--csbm-sweep", "csbm:n=200,c=3,d=6,f=8", "--quick", "--seeds", "1",
            "--no-geometry", "--out", str(out), "--quiet", *TINY]
    assert main(argv) == 0
    assert (out / "gates.png").stat().st_size > 0
    assert (out / "sweep_accuracy.png").stat().st_size > 0
    sweep = json.loads((out / "summary.json").read_text())["sweep"]
    assert sorted({r["level"] for r in sweep["records"]}) == [0.0, 0.5, 1.0]
    curve = sweep["curves"]["fmlp-s"]
    assert all(0.0 <= v <= 1.0 for vals in curve["mean"].values() for v in vals)
    assert any(abs(r["edge_homophily"] - r["level"]) < 0.1 for r in sweep["records"])
    assert len(sweep["verdicts"]) == len(sweep["curves"])
    assert not any(math.isnan(v) for vals in curve["mean"].values() for v in vals)


def test_analyze_geometry_needs_sdrf_settings(tmp_path, capsys):
    argv = ["analyze", "--dataset", SPEC, "--quick", "--seeds", "1", "--out", str(tmp_path),
            "--quiet", *TINY]
    assert main(argv) == 2
    assert "rewire.iterations" in capsys.readouterr().err


@pytest.mark.data
def test_bench_speed_on_cornell(tmp_path, data_root):
    argv = ["bench", "speed", "--datasets", "cornell", "--repeats", "3", "--warmup", "1",
            "--out", str(tmp_path)]
    assert main(argv) == 0
    rows = _csv(tmp_path / "speed.csv")
    assert {r["nodes"] for r in rows} == {"183"}
