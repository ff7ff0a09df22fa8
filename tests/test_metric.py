"""``--metric {accuracy,balanced_accuracy,roc_auc}`` (issue 16): imbalanced and binary graphs
measured right.

A binary user graph with 80/20 classes under ``--metric roc_auc --protocol random``: stratified
test sets hold both classes in proportion, ``metrics.json`` records ROC-AUC beside accuracy and
the table says ROC-AUC. Early stopping follows the metric (a scripted model whose accuracy and
ROC-AUC peak at different epochs). The scores agree with independent oracles (pair counting for
binary ROC-AUC, scikit-learn's own multi-class one-vs-rest). A bad metric name is one line on
stderr and exit 2.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from framekd.cli import main
from framekd.config import resolve
from framekd.distill import EarlyStopping, train_teacher
from framekd.errors import ConfigError, SplitError
from framekd.io import load_tensors
from framekd.metrics import score
from framekd.results import aggregate, results_table, run_digest
from helpers import write_graph_dir

FAST = ["teacher.epochs=15", "teacher.patience=5", "student.epochs=15", "student.patience=5",
        "baselines=[]"]


def _imbalanced_graph(path, n: int = 200, minority: float = 0.2, seed: int = 0):
    """A binary user graph folder: ``minority`` of the nodes in class 1, homophilous edges,
    features shifted by class."""
    rng = np.random.default_rng(seed)
    y = np.zeros(n, dtype=np.int64)
    y[rng.permutation(n)[: round(minority * n)]] = 1
    src = rng.integers(0, n, 6 * n)
    same = y[src]
    dst = np.array([rng.choice(np.flatnonzero(y == c)) if rng.random() < 0.8
                    else rng.integers(0, n) for c in same])
    keep = src != dst
    edges = "src,dst\n" + "".join(f"{a},{b}\n" for a, b in zip(src[keep], dst[keep],
                                                                  strict=True))
    x = rng.standard_normal((n, 6)).astype(np.float32) + 0.8 * y[:, None]
    write_graph_dir(path, edges=edges, labels="".join(f"{v}\n" for v in y), features=x)
    return y


def test_binary_80_20_roc_auc_random_protocol(tmp_path, capsys):
    y = _imbalanced_graph(tmp_path / "graph")
    out = tmp_path / "run"
    argv = ["run", "--dataset", str(tmp_path / "graph"), "--metric", "roc_auc",
            "--protocol", "random", "--seeds", "2", "--students", "mlp,fmlp-s",
            "--out", str(out), "--quiet", *[a for s in FAST for a in ("--set", s)]]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["metric"] == "roc_auc"
    assert set(metrics["models"]) == {"spectral", "mlp", "glnn", "fmlp-s"}
    for name, m in metrics["models"].items():
        assert len(m["roc_auc"]) == 2 and all(0.0 <= v <= 1.0 for v in m["roc_auc"]), name
        assert m["roc_auc_mean"] == pytest.approx(sum(m["roc_auc"]) / 2, abs=1e-12)
        assert 0.0 <= m["accuracy_mean"] <= 1.0  # accuracy is kept beside the metric
    for text in ((out / "results.md").read_text(), printed):
        assert "ROC-AUC" in text and "| model | role | ROC-AUC | accuracy |" in text
    labels = torch.as_tensor(y)
    for seed in range(2):
        split = load_tensors(out / f"seed_{seed}" / "split.safetensors")
        for part in ("val", "test"):
            share = float(labels[split[part]].float().mean())
            assert 0.17 <= share <= 0.23, (seed, part, share)  # stratified: 20 % class 1
        row = json.loads((out / f"seed_{seed}" / "metrics.json").read_text())["models"]
        assert all("val_roc_auc" in r and "roc_auc" in r for r in row.values())


class _Scripted(nn.Module):
    """A "teacher" whose eval-mode probabilities of class 1 follow a script, one row per
    epoch; in train mode its output depends on one parameter so the trainer can step."""

    def __init__(self, script: list[list[float]]) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))
        self.script, self.calls = torch.tensor(script), 0

    def forward(self, x, edge_index):
        if self.training:
            return self.w * torch.ones(x.size(0), 2)
        p = self.script[min(self.calls, len(self.script) - 1)]
        self.calls += 1
        return torch.log(torch.stack([1 - p, p], 1)) + 0 * self.w


def test_early_stopping_follows_the_metric():
    """Epoch 1: accuracy 0.75, ROC-AUC 0.5; epoch 2: accuracy 0.5, ROC-AUC 1; later epochs
    are worse in both. Accuracy (and balanced accuracy) keep epoch 1, ROC-AUC epoch 2."""
    script = [[0.45, 0.45, 0.55, 0.40], [0.10, 0.20, 0.30, 0.40]] + [[0.6, 0.6, 0.4, 0.4]] * 6
    data = type("G", (), {})()
    data.x, data.edge_index = torch.zeros(4, 1), torch.zeros(2, 0, dtype=torch.long)
    data.y = torch.tensor([0, 0, 1, 1])
    nodes = torch.arange(4)
    split = type("S", (), {"train": nodes, "val": nodes, "test": nodes})()
    best = {}
    for metric in ("accuracy", "balanced_accuracy", "roc_auc"):
        res = train_teacher(_Scripted(script), data, split, epochs=8, patience=3, seed=0,
                            metric=metric)
        best[metric] = res.best_epoch
        assert res.metric == metric and res.epochs == res.best_epoch + 3  # patience 3
        assert res.history[res.best_epoch - 1][1] == max(v for _, v in res.history)
    assert best == {"accuracy": 1, "balanced_accuracy": 1, "roc_auc": 2}


def test_early_stopping_helper_ties_and_patience():
    model = nn.Linear(1, 1)
    stop = EarlyStopping(model, patience=2)
    steps = [(0.5, 1.0), (0.7, 0.9), (0.7, 0.8), (0.7, 0.85), (0.6, 0.1)]
    done = [stop.step(e, s, loss) for e, (s, loss) in enumerate(steps, start=1)]
    assert stop.best_epoch == 3  # a tie on the score is won by the lower validation loss
    assert done == [False, False, False, False, True]


def _pair_auc(y: np.ndarray, s: np.ndarray) -> float:
    """ROC-AUC by definition: the share of (positive, negative) pairs ranked right."""
    pos, neg = s[y == 1], s[y == 0]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(wins / (pos.size * neg.size))


def test_scores_agree_with_oracles():
    gen = torch.Generator().manual_seed(0)
    y2 = torch.tensor([0] * 16 + [1] * 4)
    logits2 = torch.randn(20, 2, generator=gen) + torch.stack([-y2, y2], 1) * 0.5
    p1 = torch.softmax(logits2.double(), -1)[:, 1].numpy()
    assert score("roc_auc", logits2, y2) == pytest.approx(_pair_auc(y2.numpy(), p1), abs=1e-12)
    pred = logits2.argmax(-1)
    recalls = [float((pred[y2 == c] == c).float().mean()) for c in (0, 1)]
    assert score("balanced_accuracy", logits2, y2) == pytest.approx(sum(recalls) / 2)
    assert score("accuracy", logits2, y2) == pytest.approx(float((pred == y2).float().mean()))

    from sklearn.metrics import roc_auc_score

    y3 = torch.tensor([0, 1, 2] * 7)
    logits3 = torch.randn(21, 3, generator=gen)
    want = roc_auc_score(y3.numpy(), torch.softmax(logits3.double(), -1).numpy(),
                         multi_class="ovr", average="macro")
    assert score("roc_auc", logits3, y3) == pytest.approx(want, abs=1e-12)
    # Unlabelled nodes (-1, hidden test labels) are left out.
    y_hidden = torch.cat([y3, torch.tensor([-1, -1])])
    logits_hidden = torch.cat([logits3, torch.randn(2, 3, generator=gen)])
    assert score("roc_auc", logits_hidden, y_hidden) == pytest.approx(want, abs=1e-12)
    assert math.isnan(score("roc_auc", logits3, torch.full((21,), -1)))


def test_roc_auc_of_a_single_class_set_is_an_error():
    with pytest.raises(SplitError, match="validation set.*class 1"):
        score("roc_auc", torch.randn(5, 2), torch.ones(5, dtype=torch.long),
              where="validation")
    with pytest.raises(ConfigError, match="metric must be one of"):
        score("f1", torch.randn(5, 2), torch.ones(5, dtype=torch.long))


@pytest.mark.parametrize("how", [["--metric", "auc"], ["--set", "metric=f1"]])
def test_bad_metric_name_is_one_line_exit_2(tmp_path, capsys, how):
    argv = ["run", "--dataset", "csbm:n=40,c=2,d=4,seed=0", *how, "--out",
            str(tmp_path / "x"), "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("framekd run: error: metric must be one of accuracy, "
                             "balanced_accuracy, roc_auc")
    assert not (tmp_path / "x").exists()


def test_metric_setting_old_runs_and_tables():
    """The default keeps old run folders resumable and old metrics.json documents unchanged;
    another metric changes the digest, adds its keys and names it in the table."""
    cfg = resolve("csbm:n=40,c=2,d=4,seed=0", overrides=["metric=roc_auc"])
    assert cfg["metric"] == "roc_auc"
    old = {k: v for k, v in resolve("csbm:n=40,c=2,d=4,seed=0").items() if k != "metric"}
    assert run_digest(old) == run_digest({**old, "metric": "accuracy"})
    assert run_digest(old) != run_digest({**old, "metric": "roc_auc"})
    # student.feature_dropout joined later: at its default it leaves the digest unchanged
    before = {**old, "student": {k: v for k, v in old["student"].items()
                                 if k != "feature_dropout"}}
    assert run_digest(before) == run_digest(old)
    other = {**old, "student": {**old["student"], "feature_dropout": 0.3}}
    assert run_digest(other) != run_digest(old)
    assert old["student"]["feature_dropout"] == 0.5  # the caller's dict is not touched

    from framekd.results import SeedResult

    rows = [SeedResult(seed=s, models={"gcn": {"role": "teacher", "accuracy": 0.8 + s / 10,
                                               "roc_auc": 0.9 - s / 10,
                                               "train_seconds": 1.0,
                                               "inference_seconds": 0.01}})
            for s in range(2)]
    plain = aggregate(old, rows, {})
    assert "metric" not in plain and "roc_auc_mean" not in plain["models"]["gcn"]
    assert "| model | role | accuracy |" in results_table(plain)
    doc = aggregate({**old, "metric": "roc_auc"}, rows, {})
    assert doc["metric"] == "roc_auc"
    gcn = doc["models"]["gcn"]
    assert gcn["roc_auc"] == [0.9, 0.8] and gcn["roc_auc_mean"] == pytest.approx(0.85)
    assert gcn["accuracy_mean"] == pytest.approx(0.85)
    table = results_table(doc)
    assert "test ROC-AUC mean ± std" in table and "| gcn | teacher | 85.00 ± 5.00 |" in table


def test_inductive_scores_follow_the_metric():
    from framekd.data import load_dataset
    from framekd.inductive import inductive_split, production_row, production_scores

    data = load_dataset("csbm:n=200,c=2,d=4,seed=0")
    isplit = inductive_split(data, "random", 0)
    logits = torch.randn(data.num_nodes, 2, generator=torch.Generator().manual_seed(0))
    row = production_row(logits, data.y, isplit, "roc_auc")
    acc = production_scores(logits, data.y, isplit)
    assert row["accuracy"] == acc["prod"] and row["tran_accuracy"] == acc["tran"]
    rows = isplit.test_nodes
    n_obs = isplit.observed_test.numel()
    tran = score("roc_auc", logits[rows[:n_obs]], data.y[rows[:n_obs]])
    ind = score("roc_auc", logits[rows[n_obs:]], data.y[rows[n_obs:]])
    assert row["tran_roc_auc"] == pytest.approx(tran) and row["ind_roc_auc"] == pytest.approx(ind)
    assert row["roc_auc"] == pytest.approx(0.8 * tran + 0.2 * ind)


def test_tune_objective_is_the_metric(tmp_path):
    from framekd.tune import make_setup, tune

    setup = make_setup("csbm:n=80,c=2,d=4,seed=0", teacher="gcn", protocol="random",
                       folds=1, epochs=4, overrides=["metric=balanced_accuracy"])
    assert "balanced accuracy" in setup.description
    study = tune("csbm:n=80,c=2,d=4,seed=0", teacher="gcn", protocol="random", folds=1,
                 epochs=4, trials=1, overrides=["metric=balanced_accuracy"],
                 study=str(tmp_path / "study"))
    assert 0.0 <= study.trials[0].value <= 1.0


def _one_hot(pred, classes=3):
    return torch.nn.functional.one_hot(torch.as_tensor(pred), classes).float()


def test_simplest_within_with_se_zero_keeps_the_first_best_score():
    from framekd.metrics import simplest_within

    y = torch.tensor([0, 1, 2, 0, 1, 2])
    worse, best, tie = _one_hot([0, 1, 0, 1, 1, 2]), _one_hot(y), _one_hot(y)
    assert simplest_within([worse, best, tie], y, se=0) == 1
    assert simplest_within([best, worse], y, se=0) == 0


def test_simplest_within_standard_error_is_the_paired_bootstrap_oracle():
    """One class, so the stratified bootstrap is the plain one: the SE of the accuracy
    difference tends to the population sd of the per-node difference d over sqrt(n)."""
    from framekd.metrics import paired_standard_error, simplest_within

    gen = torch.Generator().manual_seed(0)
    n = 400
    y = torch.zeros(n, dtype=torch.long)
    right_best = torch.rand(n, generator=gen) < 0.85
    right_simple = torch.where(torch.rand(n, generator=gen) < 0.7, right_best,
                               torch.rand(n, generator=gen) < 0.8)
    d = right_best.double() - right_simple.double()
    gap = float(d.mean())
    assert gap > 0
    se_oracle = float(d.std(unbiased=False)) / math.sqrt(n)
    cands = [_one_hot((~right_simple).long()), _one_hot((~right_best).long())]
    err = paired_standard_error(cands[1], cands[0], y, samples=4000)
    assert err == pytest.approx(se_oracle, rel=0.05)
    # the gap is k oracle standard errors: kept simple just above k, the best just below
    k = gap / se_oracle
    assert simplest_within(cands, y, se=k * 1.1, samples=4000) == 0
    assert simplest_within(cands, y, se=k * 0.9, samples=4000) == 1


def test_simplest_within_pairs_the_candidates_node_by_node():
    """Two candidates that agree on every node but 30 of 1,000: a 3-point gap is 5.6 paired
    standard errors (clear evidence), though an unpaired SE would be about 2 points."""
    from framekd.metrics import simplest_within

    y = torch.arange(1000) % 3
    best = _one_hot(y)
    simple_pred = y.clone()
    simple_pred[:30] = (y[:30] + 1) % 3
    cands = [_one_hot(simple_pred), best]
    assert simplest_within(cands, y, se=1.0) == 1
    assert simplest_within(cands, y, se=8.0) == 0
    # the first of several within the tolerance; the same seed, the same choice
    middle = y.clone()
    middle[:10] = (y[:10] + 1) % 3
    three = [_one_hot(simple_pred), _one_hot(middle), best]
    assert simplest_within(three, y, se=4.0) == 1  # gaps: 5.6 and 3.2 SE
    assert all(simplest_within(three, y, se=4.0, seed=7) == 1 for _ in range(3))
    # balanced accuracy and ROC-AUC take the same route
    assert simplest_within(cands, y, se=8.0, metric="balanced_accuracy") == 0
    assert simplest_within(cands, y, se=1.0, metric="roc_auc", samples=50) in (0, 1)


def test_simplest_within_rejects_bad_arguments():
    from framekd.metrics import simplest_within

    y = torch.tensor([0, 1])
    with pytest.raises(ConfigError, match="se must be"):
        simplest_within([_one_hot([0, 1])], y, se=-1.0)
    with pytest.raises(ConfigError, match="at least one candidate"):
        simplest_within([], y)
    with pytest.raises(ConfigError, match="samples"):
        simplest_within([_one_hot([0, 1])], y, samples=1)
