"""Resuming a run: a finished seed is skipped only when its files are whole (issue #16).

Every seed's ``metrics.json`` records the size and sha256 of the seed's files; a seed whose
weights were truncated, deleted or overwritten, or whose ``metrics.json`` is not a usable
record (no ``models``, a JSON list, a NaN accuracy, no ``artifacts`` from an older framekd),
is run again with a one-line ``framekd: `` notice, never a traceback.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from pathlib import Path

import pytest

import framekd.experiment as experiment
from framekd import ConfigError
from framekd.config import resolve
from framekd.experiment import CLAIM_FILE, claim_seed, load_trained, run_experiment
from helpers import spy

TINY = "csbm:n=150,c=3,d=6,h=0.8,signal=2.0,f=8,seed=0"
FAST = [
    "teacher.epochs=20", "teacher.patience=10", "teacher.hidden=16",
    "student.epochs=20", "student.patience=10", "student.hidden=16",
    "knowledge.sketch_dim=16", "framelet.order=4",
]
WEIGHTS = "fmlp-s.safetensors"


def _cfg() -> dict:
    return resolve(TINY, flags={"seeds": 2}, overrides=FAST)


def _run(out: Path, cache: Path, logs: list[str] | None = None) -> dict:
    return run_experiment(_cfg(), out, progress=False, cache_dir=cache,
                          log=(logs if logs is not None else []).append)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted 2-seed run: its folder, its metrics and the knowledge cache."""
    root = tmp_path_factory.mktemp("resume")
    metrics = _run(root / "ref", root / "cache")
    return root / "ref", metrics, root / "cache"


def _copy(reference, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(reference[0], out)
    return out


def _accuracies(metrics: dict) -> dict:
    """Every per-seed accuracy list of ``metrics`` (timings are left out on purpose)."""
    return {name: {k: v for k, v in m.items() if k.endswith("accuracy")}
            for name, m in metrics["models"].items()}


def _edit_metrics(seed_dir: Path, edit) -> None:
    path = seed_dir / "metrics.json"
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))


def _truncate(seed_dir: Path) -> None:
    path = seed_dir / WEIGHTS
    path.write_bytes(path.read_bytes()[:10])


def _delete(seed_dir: Path) -> None:
    (seed_dir / WEIGHTS).unlink()


def _random_bytes(seed_dir: Path) -> None:
    path = seed_dir / WEIGHTS
    path.write_bytes(random.Random(0).randbytes(path.stat().st_size))


def _no_models(seed_dir: Path) -> None:
    _edit_metrics(seed_dir, lambda d: {k: v for k, v in d.items() if k != "models"})


def _json_list(seed_dir: Path) -> None:
    _edit_metrics(seed_dir, lambda d: [d])


def _nan_accuracy(seed_dir: Path) -> None:
    def edit(d):
        d["models"]["glnn"]["accuracy"] = float("nan")  # json writes the NaN literal
        return d

    _edit_metrics(seed_dir, edit)


def _no_artifacts(seed_dir: Path) -> None:
    _edit_metrics(seed_dir, lambda d: {k: v for k, v in d.items() if k != "artifacts"})


def _half_written(seed_dir: Path) -> None:
    path = seed_dir / "metrics.json"
    path.write_text(path.read_text()[:50])


DAMAGES = [
    pytest.param(1, _truncate, f"{WEIGHTS}: size 10 bytes, expected ", id="truncated-weights"),
    pytest.param(0, _delete, f"{WEIGHTS} is missing", id="deleted-weights"),
    pytest.param(1, _random_bytes, f"{WEIGHTS}: sha256 differs", id="random-bytes-same-size"),
    pytest.param(0, _no_models, 'no "models" mapping', id="no-models"),
    pytest.param(1, _json_list, "not a JSON object", id="json-list"),
    pytest.param(0, _nan_accuracy, "accuracy of glnn is nan, not a finite number",
                 id="nan-accuracy"),
    pytest.param(1, _no_artifacts, 'no "artifacts" record: written by an older framekd',
                 id="no-artifacts"),
    pytest.param(0, _half_written, "not valid JSON", id="half-written-metrics"),
]


def test_artifacts_record_every_file_of_the_seed(reference):
    out = reference[0]
    for seed in (0, 1):
        seed_dir = out / f"seed_{seed}"
        record = json.loads((seed_dir / "metrics.json").read_text())["artifacts"]
        files = {p.name for p in seed_dir.iterdir() if p.suffix == ".safetensors"}
        assert set(record) == files and WEIGHTS in files and "gates.safetensors" in files
        for name, rec in record.items():
            data = (seed_dir / name).read_bytes()
            assert rec == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def test_undamaged_rerun_runs_nothing(reference, tmp_path, monkeypatch):
    out = _copy(reference, tmp_path)
    calls = spy(monkeypatch, experiment, "run_seed")
    logs: list[str] = []
    metrics = _run(out, reference[2], logs)
    assert calls == [] and not [m for m in logs if "damaged" in m]
    assert metrics["seeds"] == [0, 1]
    assert _accuracies(metrics) == _accuracies(reference[1])


@pytest.mark.parametrize(("seed", "damage", "why"), DAMAGES)
def test_damaged_seed_is_run_again(reference, tmp_path, monkeypatch, seed, damage, why):
    out = _copy(reference, tmp_path)
    damage(out / f"seed_{seed}")
    calls = spy(monkeypatch, experiment, "run_seed")
    logs: list[str] = []
    metrics = _run(out, reference[2], logs)
    assert [c["seed"] for c in calls] == [seed]  # exactly the damaged seed
    notices = [m for m in logs if "damaged" in m]
    assert len(notices) == 1, logs
    assert notices[0].startswith(f"framekd: seed {seed} in {out / f'seed_{seed}'} is damaged (")
    assert why in notices[0] and notices[0].endswith("; running it again")
    assert "\n" not in notices[0]
    # Same seeds, same inputs, same code path run again: the accuracies are equal exactly,
    # not approximately (timings differ from run to run and are not compared).
    assert metrics["seeds"] == [0, 1]
    assert _accuracies(metrics) == _accuracies(reference[1])
    on_disk = json.loads((out / "metrics.json").read_text())
    assert _accuracies(on_disk) == _accuracies(reference[1])
    assert load_trained(out, seed, "fmlp-s") is not None  # the weights are whole again
    calls.clear()
    _run(out, reference[2])  # repaired: the next run skips both seeds
    assert calls == []


def test_damaged_seed_claimed_by_another_process_is_left_to_it(reference, tmp_path,
                                                               monkeypatch):
    out = _copy(reference, tmp_path)
    _truncate(out / "seed_1")
    held = claim_seed(out / "seed_1")  # this test process is alive: a live claim
    assert held is not None
    calls = spy(monkeypatch, experiment, "run_seed")
    logs: list[str] = []
    metrics = _run(out, reference[2], logs)
    assert calls == [] and metrics["seeds"] == [0]
    assert any("seed(s) 1 are being run by another process" in m for m in logs)
    held.unlink()
    metrics = _run(out, reference[2], logs)
    assert [c["seed"] for c in calls] == [1] and metrics["seeds"] == [0, 1]
    assert not (out / "seed_1" / CLAIM_FILE).exists()
    assert _accuracies(metrics) == _accuracies(reference[1])


def test_other_configuration_still_refused(reference, tmp_path):
    out = _copy(reference, tmp_path)
    _edit_metrics(out / "seed_1", lambda d: {**d, "config_hash": "0" * 16, "models": None})
    with pytest.raises(ConfigError, match="different configuration.*--force"):
        _run(out, reference[2])
