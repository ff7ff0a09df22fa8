"""Validation weighted to a predicted class prior (``framekd tune --prior teacher``).

The two functions against brute-force definitions, the special cases they must reduce to
(the node set's own shares: accuracy; uniform shares: balanced accuracy), and the tuning
objective: each fold's value is the prior-weighted validation accuracy of its model with the
prior taken from its teacher's arg-max outside train and validation, and it never reads a
test label.
"""

from __future__ import annotations

import optuna
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score

import framekd.distill
import framekd.experiment
import framekd.tune.trials
from framekd.cli import main
from framekd.data import load_dataset
from framekd.errors import ConfigError
from framekd.metrics import class_prior, prior_weighted_accuracy
from framekd.splits import make_split
from framekd.tune import tune
from helpers import poison_common_test_labels

SPEC = "csbm:n=120,c=3,d=6,h=0.3,f=8,seed=0"


def _weighted_brute(logits, y, index, prior) -> float:
    """The definition, one node at a time."""
    classes = {int(y[v]) for v in index if int(y[v]) >= 0}
    total = sum(float(prior[c]) for c in classes)
    out = 0.0
    for c in classes:
        nodes = [v for v in index if int(y[v]) == c]
        right = sum(int(logits[v].argmax()) == c for v in nodes)
        out += float(prior[c]) / total * right / len(nodes)
    return out


def _random(n=60, c=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, generator=g), torch.randint(0, c, (n,), generator=g), g


def test_prior_weighted_accuracy_matches_its_definition():
    logits, y, g = _random()
    y[:5] = -1  # unlabelled nodes are left out
    index = torch.randperm(60, generator=g)[:40]
    prior = torch.rand(4, generator=g)
    got = prior_weighted_accuracy(logits, y, index, prior)
    assert got == pytest.approx(_weighted_brute(logits, y, index.tolist(), prior), abs=1e-12)


def test_prior_weighted_accuracy_reduces_to_accuracy_and_balanced_accuracy():
    logits, y, _ = _random(n=80, seed=1)
    own = torch.bincount(y, minlength=4).double() / y.numel()
    acc = float((logits.argmax(1) == y).double().mean())
    assert prior_weighted_accuracy(logits, y, None, own) == pytest.approx(acc, abs=1e-12)
    balanced = balanced_accuracy_score(y.numpy(), logits.argmax(1).numpy())
    assert prior_weighted_accuracy(logits, y, None, torch.ones(4)) == pytest.approx(
        balanced, abs=1e-12)


def test_a_class_absent_from_the_node_set_is_left_out_of_the_weights():
    logits = torch.tensor([[2.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    y = torch.tensor([0, 1, 1])  # class 2 absent; recall 1.0 (class 0), 0.5 (class 1)
    assert prior_weighted_accuracy(logits, y, None, torch.tensor([0.25, 0.25, 0.5])) == \
        pytest.approx(0.75, abs=1e-12)
    assert prior_weighted_accuracy(logits, y, None, torch.tensor([0.0, 0.0, 1.0])) != \
        prior_weighted_accuracy(logits, y, None, torch.tensor([0.0, 0.0, 1.0]))  # nan
    with pytest.raises(ConfigError, match="3 finite non-negative"):
        prior_weighted_accuracy(logits, y, None, torch.tensor([0.5, -0.5, 1.0]))
    with pytest.raises(ConfigError, match="3 finite non-negative"):
        prior_weighted_accuracy(logits, y, None, torch.tensor([0.5, 0.5]))


def test_class_prior_counts_the_arg_max_outside_the_excluded_nodes():
    logits, _, g = _random(n=50, c=5, seed=2)
    a = torch.arange(0, 10)
    b = torch.zeros(50, dtype=torch.bool)
    b[40:] = True  # a mask works as well as an index
    got = class_prior(logits.log_softmax(1), [a, b])
    rest = [v for v in range(50) if not (v < 10 or v >= 40)]
    want = [sum(int(logits[v].argmax()) == c for v in rest) / len(rest) for c in range(5)]
    assert got.tolist() == pytest.approx(want, abs=1e-12)
    assert float(got.sum()) == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(ConfigError, match="every node is excluded"):
        class_prior(logits, [torch.arange(50)])


def _capture(monkeypatch):
    """Spies on the teachers and students the objective trains: their results in order."""
    teachers, students = [], []
    real_fit, real_distill = framekd.experiment.fit_teacher, framekd.distill.distill_student

    def fit(*args, **kwargs):
        out = real_fit(*args, **kwargs)
        teachers.append(out[1])
        return out

    def distill(*args, **kwargs):
        out = real_distill(*args, **kwargs)
        students.append(out)
        return out

    monkeypatch.setattr(framekd.experiment, "fit_teacher", fit)
    monkeypatch.setattr(framekd.distill, "distill_student", distill)
    return teachers, students


@pytest.mark.parametrize("setting", ["transductive", "inductive"])
def test_the_objective_weights_validation_to_the_fold_teachers_prior(monkeypatch, setting):
    from framekd.inductive import inductive_split

    data = load_dataset(SPEC)
    teachers, students = _capture(monkeypatch)
    st = tune(SPEC, data=data, trials=1, teacher="gcn", students=("fmlp-s",), folds=2,
              epochs=5, prior="teacher", overrides=[f"setting={setting}"])
    trial = st.trials[0]
    assert trial.state == optuna.trial.TrialState.COMPLETE
    assert len(teachers) == len(students) == 2
    for fold, (res, sres) in enumerate(zip(teachers, students, strict=True)):
        if setting == "inductive":
            isplit = inductive_split(data, "fgkd", seed=fold)
            split, known = isplit.split, set(isplit.unseen.tolist())
        else:
            split, known = make_split(data, "fgkd", seed=fold), set()
        known |= set(split.train.tolist()) | set(split.val.tolist())
        rest = [v for v in range(data.num_nodes) if v not in known]
        pred = res.log_probs.argmax(1)
        prior = [sum(int(pred[v]) == c for v in rest) / len(rest) for c in range(3)]
        want = _weighted_brute(sres.log_probs, data.y, split.val.tolist(), prior)
        assert trial.user_attrs["fold_values"][fold] == pytest.approx(want, abs=1e-9)
        assert trial.user_attrs["teacher_val"][fold] == pytest.approx(
            _weighted_brute(res.log_probs, data.y, split.val.tolist(), prior), abs=1e-9)
    assert "weighted to the teacher's predicted class shares" in \
        st.user_attrs["framekd.objective"]


def test_the_prior_weighted_objective_never_reads_test_labels(monkeypatch):
    clean = load_dataset(SPEC)
    splits = [make_split(clean, "fgkd", seed=i) for i in range(2)]
    poisoned = poison_common_test_labels(clean, splits)
    # The protocol's stratified split reads every label (as `framekd run` does): fix it.
    monkeypatch.setattr(framekd.tune.trials, "make_split", lambda g, p, seed: splits[seed])

    def values(data):
        st = tune(SPEC, data=data, trials=3, students=("mlp",), folds=2, epochs=5,
                  prior="teacher")
        return [(t.state, t.value, t.params, t.user_attrs) for t in st.trials]

    before = values(clean)
    assert [s for s, *_ in before] == [optuna.trial.TrialState.COMPLETE] * 3
    assert values(poisoned) == before


def test_prior_options_are_checked(tmp_path, capsys):
    base = ["tune", "--dataset", SPEC, "--trials", "1", "--folds", "1", "--epochs", "3",
            "--quiet"]
    assert main([*base, "--prior", "teacher", "--metric", "roc_auc"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not apply to metric roc_auc" in err
    with pytest.raises(ConfigError, match="prior must be one of none, teacher"):
        tune(SPEC, trials=1, folds=1, epochs=3, prior="test")
    study = ["--study", str(tmp_path / "s")]
    assert main([*base, *study, "--prior", "teacher"]) == 0
    assert "weighted to the teacher's predicted class shares" in \
        (tmp_path / "s" / "best.yaml").read_text()
    assert main([*base, *study]) == 2  # another objective is another study
    assert "prior='teacher' (now 'none')" in capsys.readouterr().err
