"""Teacher training, the distillation loss and student distillation."""

from __future__ import annotations

import math
import sys
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch_geometric.data import Data
from torch_geometric.utils import to_undirected

from framekd.distill import (
    TrainResult,
    accuracy,
    distill_student,
    evaluate,
    kd_loss,
    predict_student,
    predict_teacher,
    train_teacher,
)
from framekd.errors import ConfigError, SplitError
from framekd.knowledge import graph_knowledge
from framekd.models import MLP, build_student, build_teacher


def sbm_graph(n_per_class=20, classes=3, p_in=0.25, p_out=0.02, d=8, noise=1.0, seed=0):
    """A small stochastic block model with class-dependent Gaussian features."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(classes).repeat_interleave(n_per_class)
    n = y.numel()
    same = y[:, None] == y[None, :]
    prob = torch.where(same, torch.tensor(p_in), torch.tensor(p_out))
    upper = torch.triu(torch.rand(n, n, generator=gen) < prob, diagonal=1)
    edge_index = to_undirected(upper.nonzero().t(), num_nodes=n)
    means = torch.randn(classes, d, generator=gen)
    x = means[y] + noise * torch.randn(n, d, generator=gen)
    return Data(x=x, edge_index=edge_index, y=y)


def random_split(y, per_class_train=5, per_class_val=5, seed=0):
    gen = torch.Generator().manual_seed(seed)
    train, val, test = [], [], []
    for c in y.unique():
        idx = (y == c).nonzero().view(-1)
        idx = idx[torch.randperm(idx.numel(), generator=gen)]
        train.append(idx[:per_class_train])
        val.append(idx[per_class_train : per_class_train + per_class_val])
        test.append(idx[per_class_train + per_class_val :])
    return SimpleNamespace(train=torch.cat(train), val=torch.cat(val), test=torch.cat(test))


# --------------------------------------------------------------------------- kd_loss


def _log_softmax(row):
    m = max(row)
    z = math.log(sum(math.exp(v - m) for v in row)) + m
    return [v - z for v in row]


def test_kd_loss_equals_hand_computation():
    s = [[2.0, -1.0, 0.5], [0.1, 0.2, 0.3], [-1.0, 3.0, 0.0]]
    t_logits = [[1.0, 0.0, -1.0], [0.0, 2.0, 0.0], [0.5, 0.5, 2.0]]
    t_logp = [_log_softmax(r) for r in t_logits]
    labels = [0, 2, 1]
    train = [0, 2]
    lam, temp = 0.3, 2.0

    ce = -sum(_log_softmax(s[i])[labels[i]] for i in train) / len(train)
    kl = 0.0
    for i in range(3):
        ps = _log_softmax([v / temp for v in s[i]])
        pt = _log_softmax([v / temp for v in t_logp[i]])
        kl += sum(math.exp(pt[k]) * (pt[k] - ps[k]) for k in range(3))
    expected = lam * ce + (1 - lam) * temp**2 * kl / 3

    got = kd_loss(
        torch.tensor(s),
        torch.tensor(t_logp),
        torch.tensor(labels),
        torch.tensor(train),
        lam=lam,
        T=temp,
    )
    assert got.item() == pytest.approx(expected, rel=1e-5)
    mask = torch.tensor([True, False, True])
    got_mask = kd_loss(
        torch.tensor(s), torch.tensor(t_logp), torch.tensor(labels), mask, lam=lam, T=temp
    )
    assert got_mask.item() == pytest.approx(expected, rel=1e-5)


def test_kd_loss_edge_cases():
    torch.manual_seed(0)
    s, t = torch.randn(4, 3), torch.log_softmax(torch.randn(4, 3), -1)
    y, none = torch.tensor([0, 1, 2, 0]), torch.zeros(4, dtype=torch.bool)
    # λ = 0: labels do not matter; matching the teacher gives zero loss.
    assert kd_loss(s, t, y, none).item() == pytest.approx(
        kd_loss(s, t, torch.tensor([2, 2, 2, 2]), torch.ones(4, dtype=torch.bool)).item()
    )
    assert kd_loss(t.clone(), t, y, none).item() == pytest.approx(0.0, abs=1e-6)
    # λ = 1 with no labelled node in the batch: nothing to learn from.
    assert kd_loss(s, t, y, none, lam=1.0).item() == 0.0
    with pytest.raises(ConfigError, match="lam"):
        kd_loss(s, t, y, none, lam=1.5)
    with pytest.raises(ConfigError, match="temperature"):
        kd_loss(s, t, y, none, T=0.0)


# --------------------------------------------------------------------------- teachers


class FeatureLinear(nn.Module):
    """A graph-agnostic 'teacher' whose weights can be set by hand."""

    def __init__(self, d, c):
        super().__init__()
        self.lin = nn.Linear(d, c)

    def forward(self, x, edge_index):
        return self.lin(x)


def test_early_stopping_restores_the_best_epoch():
    """Validation labels contradict training labels, so val accuracy peaks at the start."""
    n = 40
    sign = torch.where(torch.arange(n) % 2 == 0, 1.0, -1.0)
    x = sign[:, None]
    is_pos = (sign > 0).long()
    train, val = torch.arange(0, 20), torch.arange(20, 40)
    y = is_pos.clone()
    y[val] = 1 - is_pos[val]  # the validation rule is the opposite of the training rule
    data = Data(x=x, edge_index=torch.empty(2, 0, dtype=torch.long), y=y)
    split = SimpleNamespace(train=train, val=val, test=val)

    model = FeatureLinear(1, 2)
    with torch.no_grad():  # start out predicting the validation rule
        model.lin.weight.copy_(torch.tensor([[0.5], [-0.5]]))
        model.lin.bias.zero_()
    res = train_teacher(model, data, split, lr=0.1, weight_decay=0.0, epochs=200, patience=10)

    val_accs = [v for _, v in res.history]
    assert res.best_epoch == 1 and val_accs[0] == 1.0
    # Training went on past the best epoch (no per-epoch restore) and then stopped early.
    assert val_accs[-1] == 0.0 and res.epochs == 11 < 200
    # ... and the weights of epoch 1 are back.
    assert res.val_acc == 1.0 and res.train_acc == 0.0
    assert accuracy(predict_teacher(model, data), y, val) == 1.0


def test_train_teacher_learns_and_returns_soft_labels():
    data = sbm_graph()
    split = random_split(data.y)
    torch.manual_seed(0)
    model = build_teacher("gcn", 8, 3, hidden_channels=16)
    res = train_teacher(model, data, split, epochs=100, patience=20, seed=0)
    assert isinstance(res, TrainResult)
    assert res.log_probs.shape == (60, 3)
    torch.testing.assert_close(res.log_probs.exp().sum(-1), torch.ones(60))
    assert res.test_acc > 0.8  # chance is 1/3 on this well-separated graph
    assert evaluate(res.log_probs, data.y, split)["test"] == res.test_acc
    assert 1 <= res.best_epoch <= res.epochs <= 100 and res.seconds > 0


def test_spectral_teacher_with_gains_held_at_identity_trains_like_its_mlp():
    # SPEC §4: with the band gains at 1 and no smoothing the teacher is the MLP with the same
    # weights, so holding the gains there (no gradient) must also give the MLP's training
    # run; the tight frame is exact only to rounding, hence a tolerance, not equality.
    data = sbm_graph(seed=2)
    split = random_split(data.y, seed=2)
    torch.manual_seed(0)
    mlp = MLP(8, 16, 3, num_layers=2, dropout=0.5)
    teacher = build_teacher("spectral", 8, 3, hidden_channels=16, dropout=0.5, smooth="none")
    for lin, conv in zip(mlp.lins, teacher.convs, strict=True):
        conv.lin.load_state_dict(lin.state_dict())
        conv.band.requires_grad_(False)

    class FeaturesOnly(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mlp = mlp

        def forward(self, x, edge_index):
            return self.mlp(x).logits

    a = train_teacher(FeaturesOnly(), data, split, epochs=60, patience=60, seed=3)
    b = train_teacher(teacher, data, split, epochs=60, patience=60, seed=3)
    torch.testing.assert_close(b.log_probs, a.log_probs, rtol=0, atol=1e-4)
    # Accuracies are arg-maxes of floats from two code paths: a node within rounding of a
    # tie may go either way on another CPU, so they may differ by one node, no more.
    assert b.best_epoch == a.best_epoch
    assert b.val_acc == pytest.approx(a.val_acc, abs=1.01 / split.val.numel())
    assert b.test_acc == pytest.approx(a.test_acc, abs=1.01 / split.test.numel())


def test_same_seed_same_teacher_metrics():
    data = sbm_graph(seed=1)
    split = random_split(data.y, seed=1)

    def run():
        torch.manual_seed(0)
        model = build_teacher("gcn", 8, 3, hidden_channels=16, dropout=0.5)
        return train_teacher(model, data, split, epochs=30, patience=30, seed=7)

    a = run()
    b = run()
    assert a.history == b.history and a.test_acc == b.test_acc
    torch.testing.assert_close(a.log_probs, b.log_probs, rtol=0, atol=0)


def test_bad_splits_and_schedules_are_rejected():
    data = sbm_graph()
    model = FeatureLinear(8, 3)
    empty = torch.empty(0, dtype=torch.long)
    with pytest.raises(SplitError, match="validation"):
        train_teacher(model, data, SimpleNamespace(train=torch.arange(5), val=empty, test=empty))
    with pytest.raises(SplitError, match=r"\.train"):
        train_teacher(model, data, {"train": torch.arange(5)})
    with pytest.raises(ConfigError, match="patience"):
        train_teacher(model, data, random_split(data.y), patience=0)


# --------------------------------------------------------------------------- students


def _teacher_soft_labels(data, split):
    torch.manual_seed(0)
    teacher = build_teacher("gcn", data.x.size(1), 3, hidden_channels=16)
    return train_teacher(teacher, data, split, epochs=100, patience=20, seed=0)


def test_training_past_its_deadline_raises_time_limit_error():
    import time

    from framekd.errors import TimeLimitError

    data = sbm_graph()
    split = random_split(data.y)
    past, later = time.monotonic() - 1.0, time.monotonic() + 3600.0
    with pytest.raises(TimeLimitError, match="teacher training passed its time limit"):
        train_teacher(build_teacher("gcn", 8, 3, hidden_channels=16), data, split, epochs=5,
                      deadline=past)
    soft = train_teacher(build_teacher("gcn", 8, 3, hidden_channels=16), data, split,
                         epochs=5, deadline=later).log_probs
    with pytest.raises(TimeLimitError, match="student training passed its time limit"):
        distill_student(MLP(8, 16, 3), data, None, soft, split, epochs=5, deadline=past)
    assert distill_student(MLP(8, 16, 3), data, None, soft, split, epochs=5,
                           deadline=later).epochs == 5


def test_distilled_mlp_follows_the_teacher():
    data = sbm_graph(noise=1.5, seed=2)
    split = random_split(data.y, seed=2)
    teacher = _teacher_soft_labels(data, split)
    torch.manual_seed(0)
    student = MLP(8, 32, 3)
    res = distill_student(student, data, None, teacher.log_probs, split, epochs=150, seed=0)
    agree = (res.log_probs.argmax(-1) == teacher.log_probs.argmax(-1)).float().mean()
    assert agree > 0.8
    assert res.test_acc > 0.6 and res.gates is None


def test_same_seed_same_student_metrics_with_minibatches():
    data = sbm_graph(seed=3)
    split = random_split(data.y, seed=3)
    soft = torch.log_softmax(torch.randn(60, 3, generator=torch.Generator().manual_seed(0)), -1)
    z = torch.randn(2, 2, 60, 5, generator=torch.Generator().manual_seed(1))

    def run():
        torch.manual_seed(0)
        student = build_student(
            "fmlp-o", 8, 3, knowledge_shape=z.shape, hidden_channels=8, dropout=0.3
        )
        return distill_student(
            student, data, z, soft, split, lam=0.5, epochs=15, patience=15, batch_size=16, seed=4
        )

    a, b = run(), run()
    assert a.history == b.history and a.val_acc == b.val_acc
    torch.testing.assert_close(a.gates, b.gates, rtol=0, atol=0)
    assert a.gates.shape == (2, 60, 2)
    # A seeded run leaves the caller's global RNG state where it was.
    torch.manual_seed(0)
    student = build_student("fmlp-o", 8, 3, knowledge_shape=z.shape, hidden_channels=8)
    before = torch.random.get_rng_state()
    distill_student(student, data, z, soft, split, epochs=2, batch_size=16, seed=4)
    assert torch.equal(torch.random.get_rng_state(), before)  # exact: RNG state bytes


@pytest.mark.parametrize("name", ["mlp", "fmlp-s", "fmlp-o", "fmlp-c"])
def test_minibatch_prediction_matches_full_batch(name):
    z = torch.randn(3, 2, 25, 4)
    x = torch.randn(25, 6)
    student = build_student(name, 6, 3, knowledge_shape=z.shape, hidden_channels=8)
    full = predict_student(student, x, z)
    batched = predict_student(student, x, z, batch_size=7)
    torch.testing.assert_close(batched.logits, full.logits, rtol=0, atol=1e-5)
    if full.gates is None:
        assert batched.gates is None
    else:
        torch.testing.assert_close(batched.gates, full.gates, rtol=0, atol=1e-5)
    assert student.training  # the train/eval mode is restored


@pytest.mark.parametrize("name", ["mlp", "fmlp-s"])
def test_minibatches_of_sparse_features_train_like_dense(name):
    # Mostly-zero features: batches are cut from one CSR copy instead of gathered densely.
    data = sbm_graph(n_per_class=40, d=50, seed=6)
    gen = torch.Generator().manual_seed(6)
    data.x = (torch.rand(data.x.shape, generator=gen) < 0.04).float() * (1 + data.y[:, None])
    split = random_split(data.y, seed=6)
    soft = torch.log_softmax(torch.randn(120, 3, generator=gen), -1)
    z = torch.randn(2, 2, 120, 5, generator=gen)
    runs = []
    for density in (0.05, 0.0):
        torch.manual_seed(0)
        student = build_student(name, 50, 3, knowledge_shape=z.shape, hidden_channels=8,
                                sparse_input=density)
        if density:
            assert student.input_rows(data.x, torch.arange(4)).layout == torch.sparse_csr
        runs.append(distill_student(student, data, z, soft, split, epochs=8, patience=8,
                                    batch_size=32, seed=1))
    sparse, dense = runs
    torch.testing.assert_close(sparse.log_probs, dense.log_probs, rtol=1e-4, atol=1e-4)
    assert sparse.val_acc == dense.val_acc and sparse.best_epoch == dense.best_epoch


def test_distill_nodes_restrict_the_kd_set():
    """Soft labels outside distill_nodes are NaN; they must never enter the loss."""
    data = sbm_graph(seed=4)
    split = random_split(data.y, seed=4)
    soft = torch.log_softmax(torch.randn(60, 3), -1)
    observed = torch.cat([split.train, split.val])
    soft[split.test] = float("nan")
    torch.manual_seed(0)
    res = distill_student(
        MLP(8, 16, 3),
        data,
        None,
        soft,
        split,
        lam=0.5,
        epochs=20,
        distill_nodes=observed,
        batch_size=8,
        seed=0,
    )
    assert all(math.isfinite(loss) for loss, _ in res.history)
    assert torch.isfinite(res.log_probs).all()
    with pytest.raises(ConfigError, match="distill_nodes"):
        distill_student(MLP(8, 16, 3), data, None, soft, split, lam=0.5, distill_nodes=split.val)


def test_distill_rejects_misaligned_inputs():
    data = sbm_graph()
    split = random_split(data.y)
    with pytest.raises(ConfigError, match="teacher_logp"):
        distill_student(MLP(8, 16, 3), data, None, torch.zeros(10, 3), split)
    z = torch.zeros(2, 1, 59, 4)
    student = build_student("fmlp-s", 8, 3, knowledge_shape=z.shape)
    with pytest.raises(ConfigError, match="knowledge"):
        distill_student(student, data, z, torch.zeros(60, 3), split)


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def spatial_teacher_run():
    data = sbm_graph(n_per_class=20, noise=2.0, seed=5)
    split = random_split(data.y, seed=5)
    torch.manual_seed(0)
    teacher = build_teacher("spatial", 8, 3, hidden_channels=16)
    return data, split, train_teacher(teacher, data, split, epochs=100, patience=30, seed=0)


@pytest.mark.parametrize("student_name", ["fmlp-s", "fmlp-o"])
def test_spatial_teacher_distils_into_framelet_students(student_name, spatial_teacher_run):
    data, split, t_res = spatial_teacher_run
    assert t_res.test_acc > 0.6  # chance is 1/3
    z = graph_knowledge(data.edge_index, 60, powers=2, mode="sketch", sketch_dim=16)
    torch.manual_seed(0)
    student = build_student(student_name, 8, 3, knowledge_shape=z.shape, hidden_channels=16)
    s_res = distill_student(student, data, z, t_res.log_probs, split, epochs=100, seed=0)
    assert s_res.test_acc > 0.6
    agree = (s_res.log_probs.argmax(-1) == t_res.log_probs.argmax(-1)).float().mean()
    assert agree > 0.7
    assert s_res.gates is not None and ((s_res.gates >= 0) & (s_res.gates <= 1)).all()


def test_progress_bar_runs_and_reports_to_stderr(capsys, monkeypatch):
    data = sbm_graph()
    split = random_split(data.y)
    torch.manual_seed(0)
    # Not a terminal (pytest's capture): no bar at all, so a redirected log holds no redraws.
    train_teacher(FeatureLinear(8, 3), data, split, epochs=3, patience=3, progress=True)
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # a terminal: bars are drawn
    train_teacher(FeatureLinear(8, 3), data, split, epochs=3, patience=3, progress=True)
    distill_student(MLP(8, 8, 3), data, None, torch.zeros(60, 3), split, epochs=3, progress=True)
    err = capsys.readouterr().err
    assert "teacher" in err and "MLP" in err


def test_labels_only_minibatches_skip_batches_without_labelled_nodes():
    """lam = 1 (the MLP on labels) with mini-batches: a batch holding no training node has
    no loss term to learn from; it is skipped, not a crash."""
    data = sbm_graph(seed=5)
    split = random_split(data.y, per_class_train=1, seed=5)  # 3 labelled nodes of 60
    soft = torch.log_softmax(torch.randn(60, 3, generator=torch.Generator().manual_seed(0)), -1)
    torch.manual_seed(0)
    student = MLP(8, 8, 3)
    before = [p.detach().clone() for p in student.parameters()]
    res = distill_student(student, data, None, soft, split, lam=1.0, epochs=3, patience=3,
                          batch_size=4, seed=0)
    assert len(res.history) == 3 and all(math.isfinite(loss) for loss, _ in res.history)
    assert any(not torch.equal(a, b) for a, b in zip(before, student.parameters(),
                                                      strict=True))
