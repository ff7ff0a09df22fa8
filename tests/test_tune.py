"""`framekd tune` (Optuna) on a tiny CSBM graph: study on disk, resume, preset, test labels
never read, failed trials, the search-space declaration."""

from __future__ import annotations

import math
import sqlite3

import optuna
import pytest
import torch
import yaml
from optuna.distributions import CategoricalDistribution

import framekd.tune.trials as tune_trials
from framekd.cli import main
from framekd.config import DEFAULTS, resolve
from framekd.tune import SEARCH_SPACE, best_trial, objective, open_study, search_space, tune
from framekd.tune.space import Param, get
from helpers import poison_common_test_labels

SPEC = "csbm:n=120,c=3,d=6,h=0.3,f=8,seed=0"
FAST = ["--folds", "2", "--epochs", "5", "--quiet"]


def _trial_states(db) -> list[str]:
    with sqlite3.connect(db) as con:
        return [row[0] for row in con.execute("SELECT state FROM trials ORDER BY number")]


def test_tune_cli_creates_resumes_and_writes_a_preset_run_accepts(tmp_path, capsys):
    study = tmp_path / "study"
    argv = ["tune", "--dataset", SPEC, "--teacher", "spatial", "--students", "fmlp-s",
            "--trials", "3", "--study", str(study), *FAST]
    assert main(argv) == 0
    db = study / "study.db"
    assert db.is_file()
    assert len(_trial_states(db)) == 3
    first = optuna.load_study(study_name=f"framekd-{SPEC}-spatial-fmlp-s",
                              storage=f"sqlite:///{db}")
    first_params = [t.params for t in first.trials]

    assert main(argv) == 0  # resume: three more trials in the same study
    assert len(_trial_states(db)) == 6
    again = optuna.load_study(study_name=f"framekd-{SPEC}-spatial-fmlp-s",
                              storage=f"sqlite:///{db}")
    assert [t.params for t in again.trials[:3]] == first_params
    assert all(t.params not in first_params for t in again.trials[3:])  # not redrawn
    out = capsys.readouterr().out
    assert "best trial" in out and "preset written to" in out

    preset = study / "best.yaml"
    text = preset.read_text()
    head = text.splitlines()[:12]
    assert head[0].startswith("# framekd tune preset")
    for word in ("# dataset:", "# protocol:", "# objective:", "# best value:", "# trials:",
                 "# date:", "# code:", "# command: framekd tune"):
        assert any(line.startswith(word) for line in head), word
    assert "validation accuracy" in text
    settings = yaml.safe_load(text)
    assert settings["teacher"]["name"] == "spatial"
    assert settings["student"]["names"] == ["fmlp-s"]
    assert "epochs" not in settings["teacher"]  # the tuning cap is not part of the preset
    best = max((t for t in again.trials if t.value is not None), key=lambda t: t.value)
    for key, value in best.params.items():  # one tuned student: they are its own settings
        assert get(settings, key.replace("student.", "student.fmlp-s.", 1)) == value
    assert set(settings["student"]) == {"names", "fmlp-s"}
    resolve(SPEC, config_file=preset)  # a valid configuration

    run_argv = ["run", "--dataset", SPEC, "--config", str(preset), "--seeds", "1",
                "--set", "teacher.epochs=3", "--set", "student.epochs=3",
                "--out", str(tmp_path / "run"), "--quiet"]
    assert main(run_argv) == 0
    assert (tmp_path / "run" / "metrics.json").is_file()


def _study_values(data, splits, monkeypatch, spy=None):
    monkeypatch.setattr(tune_trials, "make_split",
                        lambda graph, protocol, seed: splits[seed])
    obj = objective(SPEC, data=data, students=["mlp"], folds=2, epochs=5)
    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=0))
    study.optimize(obj, n_trials=3)
    return [(t.state, t.value, t.params, t.user_attrs) for t in study.trials]


def test_objective_never_reads_test_labels(monkeypatch):
    from framekd import distill
    from framekd.data import load_dataset
    from framekd.splits import make_split

    clean = load_dataset(SPEC)
    splits = [make_split(clean, "fgkd", seed=i) for i in range(2)]
    seen: list[torch.Tensor] = []
    real_train = distill.train_teacher

    def spy(model, data, split, **kw):
        seen.append(data.y[split.test])
        return real_train(model, data, split, **kw)

    monkeypatch.setattr(distill, "train_teacher", spy)
    before = _study_values(clean, splits, monkeypatch)
    assert seen and all(bool((y == -1).all()) for y in seen)  # test labels hidden

    # Poison the nodes that are test nodes in every fold.
    poisoned = poison_common_test_labels(clean, splits)
    after = _study_values(poisoned, splits, monkeypatch)

    assert [s for s, *_ in before] == [optuna.trial.TrialState.COMPLETE] * 3
    assert all(v > 0 for _, v, _, _ in before)  # test accuracy (hidden labels) would be 0
    assert before == after  # same trials, same values, same per-fold scores


def test_bad_setting_is_a_failed_trial_not_a_crash(tmp_path, capsys):
    study = tmp_path / "bad"
    # An infinite learning rate passes the configuration check but diverges in training.
    argv = ["tune", "--dataset", SPEC, "--teacher", "spatial", "--trials", "2",
            "--study", str(study), "--set", "teacher.lr=.inf", "--folds", "2", "--epochs", "5"]
    assert main(argv) == 1  # no trial completed: nothing to write, but no crash
    cap = capsys.readouterr()
    # The trainer's own guard names the setting to change.
    assert cap.out.count("the training weights became NaN or infinite at epoch 1; lower "
                         "teacher.lr (now inf)") == 2
    assert "no trial has completed" in cap.err and "Traceback" not in cap.err
    assert _trial_states(study / "study.db") == ["FAIL", "FAIL"]
    assert not (study / "best.yaml").exists()

    # A sampled setting that fails (hidden width 0) fails that trial; the study goes on.
    space = [Param("teacher.hidden", CategoricalDistribution((8, 0)), "teacher"),
             Param("teacher.dropout", CategoricalDistribution((0.0, 0.5)), "teacher")]
    kw = {"teacher": "gcn", "folds": 1, "epochs": 3, "space": space}
    queued = open_study(tune_trials.make_setup(SPEC, **kw), tmp_path / "mixed")
    for hidden in (0, 8, 0):
        queued.enqueue_trial({"teacher.hidden": hidden, "teacher.dropout": 0.0})
    st = tune(SPEC, trials=3, study=tmp_path / "mixed", **kw)
    assert [t.state.name for t in st.trials] == ["FAIL", "COMPLETE", "FAIL"]
    assert "teacher.hidden must be a positive integer" in st.trials[0].user_attrs["fail_reason"]
    assert math.isfinite(st.trials[1].value) and best_trial(st).number == 1


@pytest.mark.parametrize("argv, message", [
    (["--trials", "0"], "--trials must be >= 1"),
    (["--trials", "2", "--teacher", "nosuch"], "unknown teacher 'nosuch'"),
    (["--trials", "2", "--students", "nosuch"], "unknown student 'nosuch'"),
    (["--trials", "2", "--folds", "0"], "--folds must be >= 1"),
    (["--trials", "2", "--protocol", "geom"], "protocol 'geom'"),
    (["--trials", "2", "--study", "nosuchdriver://x/y"], "cannot open study storage"),
])
def test_bad_cli_values_exit_2_with_one_line(argv, message, capsys):
    assert main(["tune", "--dataset", SPEC, *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("framekd tune: error:") and message in err


def test_resuming_with_other_settings_is_refused(tmp_path, capsys):
    argv = ["tune", "--dataset", SPEC, "--trials", "1", "--study", str(tmp_path), *FAST]
    assert main([*argv, "--set", "teacher.hidden=8"]) == 0
    assert main([*argv, "--set", "teacher.hidden=16"]) == 2
    assert "made with other settings" in capsys.readouterr().err
    # another search space is another study, and so is the full space after a narrow one
    assert main([*argv, "--set", "teacher.hidden=8", "--search", "teacher.lr"]) == 2
    assert "search='all' (now 'teacher.lr')" in capsys.readouterr().err
    narrow = ["tune", "--dataset", SPEC, "--trials", "1", "--study", str(tmp_path / "n"), *FAST]
    assert main([*narrow, "--search", "teacher.lr"]) == 0
    assert main(narrow) == 2


def test_search_space_declaration():
    from framekd.models import registry

    keys = [p.key for p in SEARCH_SPACE]
    assert len(keys) == len(set(keys))
    for p in SEARCH_SPACE:
        section, name = p.key.split(".")
        assert name in DEFAULTS[section], p.key  # a configuration key `resolve` accepts
        if p.only_if is not None and p.only_if[0] in keys:
            assert keys.index(p.only_if[0]) < keys.index(p.key)  # drawn before it
    assert "knowledge.mode" in keys
    mode = next(p for p in SEARCH_SPACE if p.key == "knowledge.mode")
    assert "rows" not in mode.distribution.choices  # N² memory: never searched
    for name in registry.TEACHERS:
        chosen = {p.key for p in search_space(name)}
        assert {"teacher.lr", "teacher.weight_decay", "teacher.dropout",
                "teacher.layers"} <= chosen
        assert ("framelet.filters" in chosen) == (name in registry.FRAMELET_TEACHERS)
        assert ("teacher.hidden" in chosen) == (name not in registry.NO_HIDDEN)
        assert ("teacher.smooth" in chosen) == (name == "spectral")
        assert ("teacher.shared_weights" in chosen) == (name == "spectral")
        assert not any(k.startswith(("student.", "knowledge.", "rewire.")) for k in chosen)
    joint = {p.key for p in search_space("gcn", ["fmlp-o"], sdrf=True,
                                         fixed=["student.lam"])}
    assert {"framelet.filters", "knowledge.mode", "student.temperature",
            "rewire.iterations", "rewire.tau", "rewire.removal_bound"} <= joint
    assert "student.lam" not in joint  # fixed by the user: not searched
    assert "student.feature_dropout" not in joint  # FMLP-C's setting: not tuned here
    assert "student.feature_dropout" in {p.key for p in search_space("gcn", ["fmlp-c"])}
    assert not any(k.startswith("knowledge.") for k in
                   (p.key for p in search_space("gcn", ["mlp"])))


def test_search_restricts_the_space_to_the_named_groups_and_keys():
    from framekd.errors import ConfigError

    only = search_space("spectral", ["fmlp-c"], only=["student"])
    assert {p.group for p in only} == {"student"} and len(only) == 6
    assert [p.key for p in search_space("spectral", ["fmlp-c"],
                                        only=["student.feature_dropout", "teacher.lr"])] \
        == ["teacher.lr", "student.feature_dropout"]
    with pytest.raises(ConfigError, match="cannot search 'students'"):
        search_space("spectral", ["fmlp-c"], only=["students"])
    with pytest.raises(ConfigError, match="nothing to search"):
        search_space("spectral", ["fmlp-s"], only=["student.feature_dropout"])
    assert main(["tune", "--dataset", SPEC, "--trials", "1", "--search", "nosuch"]) == 2


def test_a_setting_every_tuned_student_fixes_for_itself_is_not_searched():
    def searched(students, fixed):
        return "student.lam" in {p.key for p in search_space("gcn", students, fixed=fixed)}

    assert not searched(["fmlp-c"], {"student.fmlp-c.lam"})
    assert searched(["fmlp-c", "fmlp-s"], {"student.fmlp-c.lam"})  # fmlp-s still draws it
    assert not searched(["mlp"], {"student.mlp.lam"})  # tuned `mlp` is GLNN: reads `mlp`
    assert searched(["fmlp-c"], {"student.fmlp-s.lam"})


def test_a_student_only_study_trains_each_folds_teacher_once(monkeypatch):
    """With only student settings searched every trial would train the same teachers: they
    are trained once per fold and shared, and a trial scores what a fresh objective does."""
    import framekd.distill

    calls = []
    real = framekd.distill.train_teacher

    def spy(*args, **kwargs):
        calls.append(kwargs["seed"])
        return real(*args, **kwargs)

    monkeypatch.setattr(framekd.distill, "train_teacher", spy)
    kw = {"teacher": "gcn", "students": ("fmlp-c",), "folds": 2, "epochs": 3,
          "search": "student", "overrides": ["setting=inductive"]}
    st = tune(SPEC, trials=3, **kw)
    assert [t.state for t in st.trials] == [optuna.trial.TrialState.COMPLETE] * 3
    assert calls == [0, 1]
    assert len({t.value for t in st.trials}) > 1  # the students' settings do change it
    for t in st.trials[1:]:
        fresh = objective(SPEC, **kw)(optuna.trial.FixedTrial(t.params))
        assert fresh == pytest.approx(t.value, abs=1e-9)
    assert st.user_attrs["framekd.search"] == "student"
    # teacher.smooth: auto, not searched, is decided on validation as a run decides it
    auto = tune(SPEC, teacher="spectral", students=("fmlp-s",), search="student.lam",
                trials=1, folds=1, epochs=3)
    assert auto.trials[0].state == optuna.trial.TrialState.COMPLETE


def test_a_new_study_first_runs_the_configurations_own_settings(tmp_path):
    from framekd.tune import default_trials, make_setup

    setup = make_setup(SPEC, teacher="spectral", folds=1, epochs=3)
    queued = default_trials(setup)
    # teacher.smooth=auto is the best of its modes: one trial per mode.
    assert [q["teacher.smooth"] for q in queued] == ["none", "low", "all"]
    base = setup.base
    for q in queued:
        assert q["teacher.lr"] == base["teacher"]["lr"]
        assert q["framelet.order"] == base["framelet"]["order"]
    st = tune(SPEC, teacher="spectral", trials=4, study=tmp_path / "s", folds=1, epochs=3)
    assert [t.params["teacher.smooth"] for t in st.trials[:3]] == ["none", "low", "all"]
    assert st.trials[0].params["teacher.hidden"] == base["teacher"]["hidden"]
    again = tune(SPEC, teacher="spectral", trials=1, study=tmp_path / "s", folds=1, epochs=3)
    assert len(again.trials) == 5  # a resumed study is not queued the defaults again


def test_inductive_tuning_never_sees_the_unseen_nodes():
    """--setting inductive: every fold trains teacher and students on the observed graph, so
    the unseen test nodes' features and edges cannot move the objective (their labels can:
    the protocol's stratified split reads every label, as in `framekd run`)."""
    from framekd.data import load_dataset
    from framekd.inductive import inductive_split

    clean = load_dataset(SPEC)
    # One fold: another fold's unseen nodes may train this one.
    kw = {"teacher": "gcn", "students": ("fmlp-s",), "folds": 1, "epochs": 3,
          "overrides": ["setting=inductive"]}

    def values(data):
        st = tune(SPEC, data=data, trials=2, **kw)
        return [(t.state, t.value, t.user_attrs.get("fold_values")) for t in st.trials]

    before = values(clean)
    poisoned = clean.clone()
    unseen = inductive_split(clean, "fgkd", seed=0).unseen
    poisoned.x[unseen] = 100.0 * torch.randn(unseen.numel(), clean.x.size(1))
    others = torch.randint(0, clean.num_nodes, (unseen.numel(),),
                           generator=torch.Generator().manual_seed(2))
    extra = torch.stack([torch.cat([unseen, others]), torch.cat([others, unseen])])
    poisoned.edge_index = torch.cat([clean.edge_index, extra], 1)
    assert [s for s, *_ in before] == [optuna.trial.TrialState.COMPLETE] * 2
    assert values(poisoned) == before  # exact: the same training on the same inputs

    # The training graph differs from the transductive one: the objective does too.
    trans = tune(SPEC, data=clean, trials=2, **{**kw, "overrides": []})
    assert [t.value for t in trans.trials] != [v for _, v, _ in before]


def test_inductive_tuning_holds_the_validation_nodes_out_of_distillation(monkeypatch):
    """--setting inductive: students are distilled on the observed nodes but the validation
    nodes, so the objective scores them on nodes they never fitted (as unseen ones)."""
    import framekd.distill
    from framekd.data import load_dataset
    from framekd.inductive import inductive_split

    seen = []
    real = framekd.distill.distill_student

    def spy(*args, distill_nodes=None, **kwargs):
        seen.append(distill_nodes.clone())
        return real(*args, distill_nodes=distill_nodes, **kwargs)

    monkeypatch.setattr(framekd.distill, "distill_student", spy)
    data = load_dataset(SPEC)
    st = tune(SPEC, data=data, trials=1, teacher="gcn", students=("fmlp-s",), folds=2,
              epochs=3, overrides=["setting=inductive"])
    assert st.trials[0].state == optuna.trial.TrialState.COMPLETE
    assert len(seen) == 2
    for fold, nodes in enumerate(seen):
        isplit = inductive_split(data, "fgkd", seed=fold)
        expected = set(isplit.observed.tolist()) - set(isplit.split.val.tolist())
        assert set(nodes.tolist()) == expected
        assert set(isplit.split.train.tolist()) <= expected
    # The objective says so, in the study's attributes and every preset's header.
    assert "students without the validation nodes" in st.user_attrs["framekd.objective"]


def test_a_killed_processs_trial_is_failed_when_the_study_is_opened_again(tmp_path,
                                                                          monkeypatch):
    """A trial whose process died stays RUNNING in the storage unless someone fails it: the
    next process to open the study does, once the trial's heartbeat is older than the grace
    period (shortened here), says why, and queues the same settings again, once."""
    import time

    import framekd.tune.study as tune_study
    from framekd.tune import make_setup
    from framekd.tune.study import STOPPED, counts, trial_line

    monkeypatch.setattr(tune_study, "HEARTBEAT_SECONDS", 1)
    monkeypatch.setattr(tune_study, "GRACE_SECONDS", 2)  # margin for a slow machine below
    setup = make_setup(SPEC, teacher="gcn", folds=1, epochs=3)
    dead = open_study(setup, tmp_path / "s")
    with pytest.warns(UserWarning, match="Heartbeat"):  # Optuna: meant for optimize()
        trial = dead.ask()  # started by a process that then died: one heartbeat, no result
    x = trial.suggest_float("x", 0.0, 1.0)
    dead._storage.record_heartbeat(trial._trial_id)
    assert counts(dead)["running"] == 1
    time.sleep(3.5)

    again = open_study(setup, tmp_path / "s")
    assert counts(again) == {"complete": 0, "pruned": 0, "failed": 1, "running": 1}
    assert trial_line(again.trials[0]).startswith(f"trial 0: failed: {STOPPED}")
    assert again.trials[1].state == optuna.trial.TrialState.WAITING
    assert again.trials[1].params == {"x": x}
    with pytest.warns(UserWarning, match="Heartbeat"):
        rerun = again.ask()  # the next trial any process starts is the rerun
        live = again.ask()
    assert rerun.number == 1 and rerun.suggest_float("x", 0.0, 1.0) == x
    for t in (rerun, live):
        again._storage.record_heartbeat(t._trial_id)
    # Live trials keep beating and are left alone.
    assert counts(open_study(setup, tmp_path / "s"))["running"] == 2
    time.sleep(3.5)

    # Both stop: the fresh one is queued again, the rerun (its one retry spent) is not.
    last = open_study(setup, tmp_path / "s")
    assert counts(last) == {"complete": 0, "pruned": 0, "failed": 3, "running": 1}
    assert trial_line(last.trials[1]).startswith(
        f"trial 1 (rerun of stopped trial 0): failed: {STOPPED}")
    assert last.trials[3].state == optuna.trial.TrialState.WAITING
    assert trial_line(last.trials[3]) == "trial 3 (rerun of stopped trial 2): waiting"


def test_processes_with_different_seeds_draw_different_trials(tmp_path):
    """Two processes sharing a study draw different settings when their seeds differ, even
    where ``seed + known trials`` coincides (``--seed 3`` opening at 4 trials, ``--seed 2``
    at 5: once the same stream, and while TPE was still drawing at random both processes
    ran the same trials); a fresh study with the same seed repeats its draws."""
    import warnings

    from framekd.tune import make_setup

    setup = make_setup(SPEC, teacher="gcn", folds=1, epochs=3)
    x = {"x": optuna.distributions.FloatDistribution(0.0, 1.0)}

    def finish_one(study):  # a trial another process has finished
        study.add_trial(optuna.trial.create_trial(params={"x": 0.5}, distributions=x,
                                                  value=0.5))

    def draw(study) -> float:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # Optuna's heartbeat notice
            return study.ask(x).params["x"]

    shared = open_study(setup, tmp_path / "shared", seed=3)
    for _ in range(4):  # fewer than TPE's 10 random start-up trials
        finish_one(shared)
    third = open_study(setup, tmp_path / "shared", seed=3)  # 4 trials known
    finish_one(shared)
    second = open_study(setup, tmp_path / "shared", seed=2)  # 5 trials known
    assert draw(third) != draw(second)
    fresh = [draw(open_study(setup, tmp_path / f"fresh{i}", seed=5)) for i in range(2)]
    assert fresh[0] == fresh[1]


def test_sigterm_stops_the_study_like_ctrl_c(tmp_path, monkeypatch, capsys):
    """SIGTERM (a batch system's time limit) during a trial: that trial is recorded as
    failed, the finished ones are kept, the best preset is written, exit status 143."""
    import os
    import signal

    evaluate = tune_trials.Objective._evaluate
    calls = []

    def evaluate_then_terminate(self, trial, cfg):
        calls.append(trial.number)
        if len(calls) == 2:  # the second trial: terminated while it trains
            os.kill(os.getpid(), signal.SIGTERM)
        return evaluate(self, trial, cfg)

    monkeypatch.setattr(tune_trials.Objective, "_evaluate", evaluate_then_terminate)
    before = signal.getsignal(signal.SIGTERM)
    study = tmp_path / "term"
    argv = ["tune", "--dataset", SPEC, "--teacher", "gcn", "--trials", "5",
            "--study", str(study), *FAST]
    assert main(argv) == 143
    assert signal.getsignal(signal.SIGTERM) == before  # the handler is put back
    assert _trial_states(study / "study.db") == ["COMPLETE", "FAIL"]
    err = capsys.readouterr().err
    assert "terminated; the finished trials are kept" in err and "Traceback" not in err
    assert (study / "best.yaml").is_file()


def test_narrowed_fold_ids_score_each_fold_as_the_full_objective_does():
    """``Objective.fold_ids`` trains only the named folds, each with its own split and seeds:
    the scores equal the full objective's for those folds."""
    obj = objective(SPEC, teacher="spectral", folds=3, epochs=5, search="teacher.lr")
    full = optuna.trial.FixedTrial({"teacher.lr": 0.02})
    obj(full)
    obj.fold_ids = [1, 2]
    part = optuna.trial.FixedTrial({"teacher.lr": 0.02})
    value = obj(part)
    assert part.user_attrs["fold_values"] == pytest.approx(full.user_attrs["fold_values"][1:],
                                                           abs=1e-6)
    assert value == pytest.approx(sum(full.user_attrs["fold_values"][1:]) / 2, abs=1e-6)


@pytest.mark.parametrize("students", [["fmlp-o"], ["mlp"], ["fmlp-s", "fmlp-o"]])
def test_preset_params_inverts_the_presets_student_names(students):
    """A preset written from a trial, read back by ``preset_params``, gives the trial's drawn
    settings under the search space's names (a one-student preset names them as its own)."""
    from framekd.tune import make_setup, preset_params
    from framekd.tune.study import preset_settings

    setup = make_setup(SPEC, teacher="spectral", students=students, folds=2,
                       overrides=["teacher.hidden=32"])
    drawn = {"student.lam": 0.44, "student.temperature": 2.86, "teacher.lr": 0.02}
    trial = optuna.trial.create_trial(
        params=drawn, value=0.5,
        distributions={k: optuna.distributions.FloatDistribution(0.0, 10.0) for k in drawn})
    preset = preset_settings(trial, setup)
    if len(students) == 1:
        assert "lam" not in preset["student"]  # written as the student's own setting
    params = preset_params(preset, students)
    assert {k: params[k] for k in drawn} == drawn
    assert params["teacher.hidden"] == 32  # the fixed settings pass through unchanged


def test_drawn_student_settings_reach_a_student_whose_own_section_the_preset_ships(
        monkeypatch):
    """A dataset preset may ship a student's own settings (``student.fmlp-c.lam``, what a
    shipped study wrote). A study that searches them must train each trial with its drawn
    values, not the preset's; its first trial is the preset's; an own setting the user
    fixed stays fixed."""
    import framekd.distill
    from framekd.tune import default_trials
    from framekd.tune.study import preset_settings

    lams: list[float] = []
    real = framekd.distill.distill_student

    def spy(*args, lam, **kwargs):
        lams.append(lam)
        return real(*args, lam=lam, **kwargs)

    monkeypatch.setattr(framekd.distill, "distill_student", spy)

    def setup_with_preset(students, overrides=()):
        setup = tune_trials.make_setup(SPEC, teacher="gcn", students=students, folds=1,
                                       epochs=3, search="student.lam",
                                       overrides=list(overrides))
        setup.base["student"]["fmlp-c"] = {"lam": 0.7}  # as configs/<dataset>.yaml ships
        return setup

    setup = setup_with_preset(("fmlp-c",))
    assert default_trials(setup) == [{"student.lam": 0.7}]
    obj = tune_trials.Objective(setup)
    for lam in (0.2, 0.9):
        obj(optuna.trial.FixedTrial({"student.lam": lam}))
    assert lams == [0.2, 0.9]

    lams.clear()  # two students, the user fixed fmlp-c's: only fmlp-s draws it
    setup = setup_with_preset(("fmlp-c", "fmlp-s"), ["student.fmlp-c.lam=0.3"])
    setup.base["student"]["fmlp-c"] = {"lam": 0.3}
    assert default_trials(setup) == [{"student.lam": 0.0}]  # they disagree: the shared one
    tune_trials.Objective(setup)(optuna.trial.FixedTrial({"student.lam": 0.9}))
    assert lams == [0.3, 0.9]

    # the preset of several tuned students says what the trial trained
    st = optuna.create_study(direction="maximize")
    st.enqueue_trial({"student.lam": 0.9})
    st.optimize(tune_trials.Objective(setup_with_preset(("fmlp-c", "fmlp-s"))), n_trials=1)
    written = preset_settings(st.best_trial, setup_with_preset(("fmlp-c", "fmlp-s")))
    assert get(written, "student.lam") == get(written, "student.fmlp-c.lam") == 0.9


def test_draws_average_each_folds_trainings_from_other_initial_weights(tmp_path, capsys):
    """``draws=2``: fold i scores the mean of two teachers trained on split i, seeded i and
    i + 1000 (draw 0 is the fold of a one-draw study); a study keeps its draws."""
    from framekd.config import RunConfig
    from framekd.experiment import fit_teacher
    from framekd.splits import make_split
    from framekd.tune import draw_seed

    kw = {"teacher": "gcn", "folds": 2, "epochs": 5, "search": "teacher.lr"}
    params = {"teacher.lr": 0.03}
    one, two = optuna.trial.FixedTrial(params), optuna.trial.FixedTrial(params)
    objective(SPEC, **kw)(one)
    obj = objective(SPEC, draws=2, **kw)
    obj(two)
    rc = RunConfig.from_dict({**obj.setup.base, "teacher": {**obj.setup.base["teacher"],
                                                            "lr": 0.03}})
    data = obj.data.clone()
    for fold in range(2):
        split = make_split(data, obj.setup.protocol, fold)
        vals = [fit_teacher("gcn", data, split, rc, draw_seed(fold, k), None)[1].val_score
                for k in range(2)]
        assert draw_seed(fold, 1) == fold + 1000
        assert vals[0] == pytest.approx(one.user_attrs["fold_values"][fold], abs=1e-9)
        assert two.user_attrs["fold_values"][fold] == pytest.approx(sum(vals) / 2, abs=1e-9)
        assert vals[0] != vals[1]  # the draws differ, so the mean is not either one
    assert "x 2 initial draws" in obj.setup.description
    argv = ["tune", "--dataset", SPEC, "--trials", "1", "--study", str(tmp_path), *FAST]
    assert main([*argv, "--draws", "2"]) == 0
    assert "--draws 2" in (tmp_path / "best.yaml").read_text()
    assert main(argv) == 2
    assert "draws='2' (now '1')" in capsys.readouterr().err
    assert main([*argv, "--draws", "0"]) == 2


def test_inductive_draws_build_each_folds_observed_graph_once(monkeypatch):
    """With ``draws`` the draws of a fold share its observed graph and knowledge (built
    once per fold, not per draw), and each fold still scores the mean of its draws."""
    import framekd.inductive

    calls = []
    real = framekd.inductive.observed_graph

    def spy(data, unseen):
        calls.append(unseen.numel())
        return real(data, unseen)

    monkeypatch.setattr(framekd.inductive, "observed_graph", spy)
    kw = {"teacher": "gcn", "students": ("fmlp-s",), "folds": 2, "epochs": 3,
          "search": "student.lam", "overrides": ["setting=inductive"]}
    trial = optuna.trial.FixedTrial({"student.lam": 0.5})
    value = objective(SPEC, draws=3, **kw)(trial)
    assert len(calls) == 2
    assert math.isfinite(value) and len(trial.user_attrs["fold_values"]) == 2


def test_a_trial_over_its_time_limit_is_stopped_and_pruned(tmp_path, capsys):
    """``trial_timeout``: a trial that has run longer than the limit stops at its next
    training epoch and is recorded as pruned with the folds it finished; one within the
    limit is untouched."""
    from framekd.errors import ConfigError

    kw = {"teacher": "gcn", "folds": 3, "epochs": 5, "search": "teacher.lr"}
    slow = optuna.create_study(direction="maximize")
    slow.optimize(objective(SPEC, trial_timeout=1e-9, **kw), n_trials=2)
    assert [t.state for t in slow.trials] == [optuna.trial.TrialState.PRUNED] * 2
    assert all(not t.intermediate_values for t in slow.trials)  # stopped inside fold 0
    assert all(t.user_attrs["pruned_reason"] == "time" for t in slow.trials)
    roomy = optuna.create_study(direction="maximize")
    roomy.optimize(objective(SPEC, trial_timeout=3600, **kw), n_trials=1)
    assert roomy.trials[0].state == optuna.trial.TrialState.COMPLETE
    assert len(roomy.trials[0].intermediate_values) == 3

    argv = ["tune", "--dataset", SPEC, "--trials", "1", "--study", str(tmp_path),
            "--folds", "2", "--epochs", "5"]
    assert main([*argv, "--trial-timeout", "1e-9"]) == 1  # its one trial pruned: no preset
    assert "over the trial time limit" in capsys.readouterr().out
    assert main([*argv, "--trial-timeout", "0"]) == 2
    assert "--trial-timeout must be a positive" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="trial_timeout must be a positive"):
        objective(SPEC, trial_timeout=-1, **kw)
