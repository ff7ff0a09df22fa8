"""The experiment runner and the `framekd run` / `framekd demo` commands."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from framekd import CheckpointError, ConfigError
from framekd.cli import main
from framekd.config import DEFAULTS, resolve
from framekd.experiment import CLAIM_FILE, claim_seed, load_trained, run_experiment
from helpers import run_together, spy

TINY = "csbm:n=150,c=3,d=6,h=0.8,signal=2.0,f=8,seed=0"
FAST = [
    "teacher.epochs=30", "teacher.patience=10", "teacher.hidden=16",
    "student.epochs=30", "student.patience=10", "student.hidden=16",
    "knowledge.sketch_dim=16", "framelet.order=4",
]


def _cfg(seeds: int = 1, extra: tuple[str, ...] = ()) -> dict:
    return resolve(TINY, flags={"seeds": seeds}, overrides=[*FAST, *extra])


def _run(tmp_path, name: str, cfg: dict, **kw) -> dict:
    return run_experiment(cfg, tmp_path / name, progress=False, cache_dir=tmp_path / "cache",
                          log=lambda m: None, **kw)


def test_metrics_schema_and_files(tmp_path):
    metrics = _run(tmp_path, "a", _cfg(seeds=2))
    assert metrics["dataset"] == TINY and metrics["protocol"] == "fgkd"
    assert metrics["seeds"] == [0, 1]
    assert set(metrics["models"]) == {"spectral", "gcn", "mlp", "glnn", "fmlp-s", "fmlp-o"}
    for name, m in metrics["models"].items():
        assert m["role"] == ("teacher" if name in ("spectral", "gcn") else "student")
        assert len(m["accuracy"]) == 2
        assert 0.0 <= m["accuracy_mean"] <= 1.0 and m["accuracy_std"] >= 0.0
        assert m["train_seconds"] > 0 and m["inference_seconds"] > 0
    out = tmp_path / "a"
    assert json.loads((out / "metrics.json").read_text()) == json.loads(json.dumps(metrics))
    assert "| fmlp-s | student |" in (out / "results.md").read_text()
    assert (out / "config.yaml").is_file()
    for f in ("teacher_logp", "spectral", "glnn", "fmlp-s", "fmlp-o", "gates", "split"):
        assert (out / "seed_1" / f"{f}.safetensors").is_file()
    # The homophilic toy graph is easy: the framelet student must learn it.
    assert metrics["models"]["fmlp-s"]["accuracy_mean"] > 0.8


def test_same_seed_same_metrics(tmp_path):
    a = _run(tmp_path, "a", _cfg())
    b = _run(tmp_path, "b", _cfg())
    for name in a["models"]:
        assert a["models"][name]["accuracy"] == b["models"][name]["accuracy"], name


def test_resume_skips_finished_seeds(tmp_path, monkeypatch):
    import framekd.experiment as experiment

    _run(tmp_path, "r", _cfg(seeds=1))
    calls = spy(monkeypatch, experiment, "run_seed")
    metrics = _run(tmp_path, "r", _cfg(seeds=2))
    assert [c["seed"] for c in calls] == [1]
    assert metrics["seeds"] == [0, 1]
    _run(tmp_path, "r", _cfg(seeds=2), force=True)
    assert [c["seed"] for c in calls] == [1, 0, 1]


def test_claimed_seeds_are_left_to_their_process(tmp_path, monkeypatch):
    import framekd.experiment as experiment

    out = tmp_path / "c"
    held = claim_seed(out / "seed_1")  # this test process is alive: a live claim
    assert held is not None and claim_seed(out / "seed_1") is None
    logs = []
    calls = spy(monkeypatch, experiment, "run_seed")
    metrics = run_experiment(_cfg(seeds=3), out, progress=False, cache_dir=tmp_path / "cache",
                             log=logs.append)
    assert [c["seed"] for c in calls] == [0, 2] and metrics["seeds"] == [0, 2]
    assert any("seed(s) 1 are being run by another process" in m for m in logs)
    assert not (out / "seed_0" / CLAIM_FILE).exists()  # released after the seed
    held.unlink()
    metrics = _run(tmp_path, "c", _cfg(seeds=3))
    assert [c["seed"] for c in calls] == [0, 2, 1] and metrics["seeds"] == [0, 1, 2]


def test_stale_claim_is_taken_over(tmp_path):
    import socket

    seed_dir = tmp_path / "seed_0"
    seed_dir.mkdir()
    # No process has an id above the kernel's pid_max (at most 2**22).
    (seed_dir / CLAIM_FILE).write_text(f"{socket.gethostname()} {2**22 + 1}\n")
    claim = claim_seed(seed_dir)
    assert claim is not None and str(os.getpid()) in claim.read_text()
    (seed_dir / CLAIM_FILE).write_text(f"other-host-{socket.gethostname()} {os.getpid()}\n")
    assert claim_seed(seed_dir) is None  # another machine's claim cannot be checked: kept


def test_resume_refuses_other_configuration(tmp_path):
    _run(tmp_path, "r", _cfg())
    with pytest.raises(ConfigError, match="different configuration.*--force"):
        _run(tmp_path, "r", _cfg(extra=("teacher.hidden=8",)))


def test_load_trained_and_corrupt_weights(tmp_path):
    _run(tmp_path, "w", _cfg())
    model = load_trained(tmp_path / "w", 0, "fmlp-s")
    assert sum(p.numel() for p in model.parameters()) > 0
    path = tmp_path / "w" / "seed_0" / "fmlp-s.safetensors"
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_trained(tmp_path / "w", 0, "fmlp-s")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_trained(tmp_path / "w", 0, "gat")


def test_config_priority_and_errors(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("teacher:\n  hidden: 12\n  layers: 3\nseeds: 4\n")
    cfg = resolve(TINY, config_file=cfg_file, flags={"seeds": 2},
                  overrides=["teacher.hidden=20"])
    assert cfg["teacher"]["hidden"] == 20  # --set beats the file
    assert cfg["teacher"]["layers"] == 3  # the file beats the defaults
    assert cfg["seeds"] == 2  # flags beat the file
    with pytest.raises(ConfigError, match="unknown configuration key 'hiden'"):
        resolve(TINY, overrides=["teacher.hiden=3"])
    with pytest.raises(ConfigError, match="teacher.dropout must be in"):
        resolve(TINY, overrides=["teacher.dropout=1.5"])
    with pytest.raises(ConfigError, match="unknown student 'fmlp'"):
        resolve(TINY, flags={"student": {"names": ["fmlp"]}})


def test_cli_run_writes_results(tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["run", "--dataset", TINY, "--seeds", "1", "--students", "fmlp-s", "--quiet",
            "--out", str(out)]
    for item in FAST:
        args += ["--set", item]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "| fmlp-s | student |" in text and "| spectral | teacher |" in text
    assert set(json.loads((out / "metrics.json").read_text())["models"]) == {
        "spectral", "gcn", "fmlp-s"}


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "--dataset", "no-such-set"], "unknown dataset"),
        (["run", "--dataset", TINY, "--set", "teacher.hiden=3"], "unknown configuration key"),
        (["run", "--dataset", TINY, "--set", "novalue"], "--set expects key=value"),
        (["run", "--dataset", TINY, "--seeds", "0"], "seeds must be a positive integer"),
    ],
)
def test_cli_run_user_errors_exit_2(tmp_path, capsys, args, message):
    assert main([*args, "--out", str(tmp_path / "x"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert "Traceback" not in err


@pytest.mark.data
@pytest.mark.slow
def test_cli_run_cora_two_seeds(data_root, tmp_path, capsys):
    out = tmp_path / "cora"
    args = ["run", "--dataset", "cora", "--seeds", "2", "--quiet", "--out", str(out),
            "--set", "teacher.epochs=40", "--set", "student.epochs=40",
            "--set", "teacher.patience=20", "--set", "student.patience=20",
            "--set", "knowledge.sketch_dim=64"]
    assert main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dataset"] == "cora" and metrics["seeds"] == [0, 1]
    # Even a short schedule is far above chance (1/7) on Cora.
    assert metrics["models"]["spectral"]["accuracy_mean"] > 0.6
    assert metrics["models"]["fmlp-s"]["accuracy_mean"] > 0.6
    assert torch.isfinite(torch.tensor(metrics["models"]["fmlp-o"]["accuracy"])).all()


def test_run_with_sdrf_rewires_once_and_caches(tmp_path, monkeypatch):
    import framekd.rewire as rewire

    calls = spy(monkeypatch, rewire, "sdrf")  # experiment imports framekd.rewire.sdrf per call
    cfg = _cfg(seeds=2, extra=("rewire.method=sdrf", "rewire.iterations=5", "rewire.tau=1.0"))
    metrics = _run(tmp_path, "s", cfg)
    assert len(calls) == 1  # one graph surgery shared by teacher, students and all seeds
    assert calls[0]["iterations"] == 5 and calls[0]["removal_bound"] is None
    assert metrics["rewire"]["edges_added"] == 5
    assert metrics["rewire"]["edges_after"] == metrics["rewire"]["edges_before"] + 10
    _run(tmp_path, "s2", cfg)
    assert len(calls) == 1  # the rewired graph came from the cache


def test_sdrf_without_preset_needs_settings():
    # Settings are validated when the configuration is resolved, before any data loads.
    with pytest.raises(ConfigError, match="no SDRF preset"):
        _cfg(extra=("rewire.method=sdrf",))


def test_shipped_presets_are_valid_and_overridable():
    from importlib import resources

    names = [p.name[:-5] for p in resources.files("framekd.configs").iterdir()
             if p.name.endswith(".yaml")]
    assert "physics" in names
    for name in names:
        cfg = resolve(name)  # validates
        assert cfg["dataset"] == name
    assert resolve("physics")["student"]["batch_size"] == 4096
    cfg = resolve("physics", overrides=["student.batch_size=null"])
    assert cfg["student"]["batch_size"] is None
    # Photo's tuned teacher sets only what its study searched; every other key is the default.
    teacher, default = resolve("photo")["teacher"], DEFAULTS["teacher"]
    searched = {"name", "lr", "weight_decay", "hidden", "dropout", "smooth", "epsilon",
                "shared_weights"}
    assert teacher["epsilon"] != default["epsilon"] and teacher["smooth"] != default["smooth"]
    assert {k: v for k, v in teacher.items() if k not in searched} == {
        k: v for k, v in default.items() if k not in searched}
    # Computers' tuned teacher keeps the lr under the 0.01 that collapsed Amazon teachers.
    assert resolve("computers")["teacher"]["lr"] < 0.01


def test_auto_knowledge_mode_picks_features_when_small():
    from framekd.data import csbm
    from framekd.experiment import AUTO_FEATURES_BYTES, knowledge_mode

    small = csbm(num_nodes=100, num_features=8, seed=0)
    assert knowledge_mode(_cfg(), small) == "features"
    assert knowledge_mode(_cfg(extra=("knowledge.mode=sketch",)), small) == "sketch"
    # 2 channels x 2 powers x N x d float32 values above the threshold -> sketch
    n = AUTO_FEATURES_BYTES // (4 * 2 * 2 * 8) + 1
    big = SimpleNamespace(num_nodes=n, x=torch.empty(0, 8))
    assert knowledge_mode(_cfg(), big) == "sketch"


def test_a_run_validates_its_graph_once(tmp_path, monkeypatch):
    """Validation happens at the edge: the loaded graph is checked once, not by every stage
    (transform, knowledge, each seed's teachers)."""
    import framekd.graph as graph

    seen = spy(monkeypatch, graph, "check_edge_index")
    fresh = TINY.replace("seed=0", "seed=11")  # a graph no other test has loaded (and checked)
    args = ["run", "--dataset", fresh, "--seeds", "2", "--out", str(tmp_path / "r"), "--quiet",
            "--set", "baselines=[gcn,simplified,spectral]"]
    args += [a for s in FAST for a in ("--set", s)]
    assert main(args) == 0
    assert len(seen) == 1, f"check_edge_index ran {len(seen)} times on one graph"


@pytest.mark.data
def test_cora_run_validates_its_graph_once(tmp_path, monkeypatch):
    root = os.environ.get("FRAMEKD_DATA")
    if not root or not os.path.isdir(os.path.join(root, "Planetoid", "Cora", "raw")):
        pytest.skip("FRAMEKD_DATA is unset or has no Planetoid/Cora/raw (real-data test)")
    import framekd.graph as graph

    seen = spy(monkeypatch, graph, "check_edge_index")
    args = ["run", "--dataset", "cora", "--seeds", "2", "--out", str(tmp_path / "cora"),
            "--quiet", "--set", "teacher.epochs=2", "--set", "student.epochs=2"]
    assert main(args) == 0
    assert len(seen) == 1, f"check_edge_index ran {len(seen)} times on one graph"


def _claim_many(root, count):
    return [claim_seed(Path(root) / f"seed_{i}") is not None for i in range(count)]


@pytest.mark.parametrize("stale", [False, True])
def test_simultaneous_claims_have_one_winner(tmp_path, stale):
    """Processes that claim the same seeds at the same moment never both win one: a claim
    is never visible half-written (a half-written claim was once read as stale and taken
    over, and two processes ran the same seed), and of the processes that find a stale
    claim at once only one takes it over."""
    import socket

    count = 300
    if stale:  # left by a process that died: no process id is above 2**22
        for i in range(count):
            (tmp_path / f"seed_{i}").mkdir()
            (tmp_path / f"seed_{i}" / CLAIM_FILE).write_text(
                f"{socket.gethostname()} {2**22 + 1}\n")
    won = run_together(_claim_many, (str(tmp_path), count), procs=4)
    assert [sum(w[i] for w in won) for i in range(count)] == [1] * count
    assert not list(tmp_path.glob("seed_*/.CLAIM.*"))  # the claimers' own files are gone
    assert not list(tmp_path.glob("seed_*/CLAIM.takeover"))


def test_a_students_own_settings_shape_only_that_student(tmp_path):
    out = tmp_path / "own"
    _run(tmp_path, "own", _cfg(extra=("student.fmlp-s.hidden=8", "student.glnn.hidden=12")))

    def widths(name):
        model = load_trained(out, 0, name)  # rebuilt from the run's config.yaml
        return {m.out_features for m in model.modules() if isinstance(m, torch.nn.Linear)}

    assert 8 in widths("fmlp-s") and 16 not in widths("fmlp-s")
    assert 12 in widths("glnn") and 16 not in widths("glnn")
    assert 16 in widths("fmlp-o") and 16 in widths("mlp")  # the shared student.hidden


def test_auto_smooth_keeps_the_simplest_mode_within_smooth_se_of_the_best():
    """``teacher.smooth: auto`` trains one teacher per mode; ``smooth_se: 0`` keeps the best
    validation score (the first of ties), a large ``smooth_se`` the least-smoothed mode,
    and in between the choice is :func:`framekd.metrics.simplest_within`'s."""
    from framekd.config import RunConfig, resolve
    from framekd.data import load_dataset
    from framekd.experiment import fit_teacher
    from framekd.metrics import simplest_within
    from framekd.models.spectral import AUTO_SMOOTH
    from framekd.splits import make_split

    # homophilic: `all` beats `none` by 6 of 30 validation nodes, a margin no CPU's
    # rounding moves
    data = load_dataset("csbm:n=150,c=3,d=6,h=0.8,signal=1.0,f=8,seed=0")
    split = make_split(data, "fgkd", 0)

    def rc(*sets):
        return RunConfig.from_dict(resolve(TINY, overrides=[
            "teacher.name=spectral", "teacher.epochs=20", "teacher.patience=20", *sets]))

    fits = {m: fit_teacher("spectral", data, split, rc(f"teacher.smooth={m}"), 0, None)[1]
            for m in AUTO_SMOOTH}
    vals = [fits[m].val_score for m in AUTO_SMOOTH]
    assert len(set(vals)) > 1  # the modes differ, so the rule has a choice to make
    best = AUTO_SMOOTH[vals.index(max(vals))]
    assert best != "none"  # so that the two ends of smooth_se keep different modes
    assert fit_teacher("spectral", data, split, rc("teacher.smooth_se=0"), 0, None)[2] == best
    assert fit_teacher("spectral", data, split, rc("teacher.smooth_se=1e6"), 0,
                       None)[2] == "none"
    logits = [fits[m].log_probs for m in AUTO_SMOOTH]
    for se in (0.5, 1.0, 2.0):
        kept = fit_teacher("spectral", data, split, rc(f"teacher.smooth_se={se}"), 0, None)
        assert kept[2] == AUTO_SMOOTH[simplest_within(logits, data.y, split.val, se=se)]
        assert kept[1].val_score == pytest.approx(fits[kept[2]].val_score, abs=1e-9)
    with pytest.raises(ConfigError, match="teacher.smooth_se"):
        rc("teacher.smooth_se=-1")


def test_teacher_keys_added_later_keep_old_run_folders_resumable():
    """teacher.smooth_se and teacher.shared_weights joined later: at their defaults a run
    folder written before them has the same digest; another value changes it."""
    from framekd.config import resolve
    from framekd.results import run_digest

    now = resolve(TINY)
    before = {**now, "teacher": {k: v for k, v in now["teacher"].items()
                                 if k not in ("smooth_se", "shared_weights")}}
    assert run_digest(before) == run_digest(now)
    for key, value in (("smooth_se", 1.0), ("shared_weights", False)):
        assert run_digest({**now, "teacher": {**now["teacher"], key: value}}) != \
            run_digest(now)
