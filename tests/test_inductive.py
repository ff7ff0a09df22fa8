"""The inductive (production) setting: unseen nodes, local knowledge rows, prod scores.

docs/SPEC.md §9 "Settings"; the protocol is in :mod:`framekd.inductive`, the local knowledge in
:func:`framekd.receptive.knowledge_rows`.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import replace

import pytest
import torch
from torch_geometric.utils import coalesce, to_undirected

from framekd import ConfigError
from framekd.cli import main
from framekd.config import resolve
from framekd.data import csbm, load_dataset
from framekd.errors import SplitError
from framekd.experiment import (
    graph_operator,
    knowledge_spec,
    load_trained,
    results_table,
    run_experiment,
)
from framekd.framelets import FrameletSpec, clear_operator_cache, framelet_operator
from framekd.graph import canonicalize
from framekd.inductive import (
    PROD_WEIGHTS,
    InductiveSplit,
    inductive_split,
    knowledge_at_test_time,
    observed_graph,
    prod_accuracy,
    production_scores,
)
from framekd.io import load_tensors
from framekd.knowledge import KnowledgeSpec, graph_knowledge
from framekd.receptive import (
    _ball,
    _rows_on_ball,
    knowledge_radius,
    knowledge_rows,
    receptive_field,
)
from framekd.splits import Split, make_split, stratified_subset

TINY = "csbm:n=150,c=3,d=6,h=0.8,signal=2.0,f=8,seed=0"
FAST = [
    "teacher.epochs=30", "teacher.patience=10", "teacher.hidden=16",
    "student.epochs=30", "student.patience=10", "student.hidden=16",
    "knowledge.sketch_dim=16", "framelet.order=4",
]
F64 = torch.float64


def _cfg(seeds: int = 1, setting: str = "inductive", extra: tuple[str, ...] = ()) -> dict:
    return resolve(TINY, flags={"seeds": seeds, "setting": setting}, overrides=[*FAST, *extra])


def _run(out, cfg, cache, **kw) -> dict:
    return run_experiment(cfg, out, progress=False, cache_dir=cache, log=lambda m: None, **kw)


@pytest.fixture(scope="module")
def inductive_run(tmp_path_factory):
    """One inductive run of TINY, 2 seeds (shared by the read-only tests below)."""
    root = tmp_path_factory.mktemp("inductive")
    metrics = _run(root / "run", _cfg(seeds=2), root / "cache")
    return root / "run", metrics


# ----------------------------------------------------------------------------- unseen nodes


def test_unseen_set_is_a_stratified_seeded_fifth_of_the_test_nodes():
    data = csbm(num_nodes=300, num_classes=3, num_features=4, seed=0)  # cpf leaves 150 test
    for protocol in ("fgkd", "cpf"):
        sets = []
        for seed in (0, 1, 2):
            isplit = inductive_split(data, protocol, seed)
            split = make_split(data, protocol, seed)
            test, unseen = split.test, isplit.unseen
            assert torch.equal(isplit.split.test, test)
            assert unseen.numel() == math.floor(0.2 * test.numel() + 0.5)
            assert torch.isin(unseen, test).all()
            assert not torch.isin(unseen, torch.cat([split.train, split.val])).any()
            assert torch.equal(torch.cat([isplit.observed_test, unseen]).sort().values, test)
            for c in range(3):  # stratified: floor(0.2 n_c) or one more per class
                n_c = int((data.y[test] == c).sum())
                u_c = int((data.y[unseen] == c).sum())
                assert math.floor(0.2 * n_c) <= u_c <= math.floor(0.2 * n_c) + 1
            same = inductive_split(data, protocol, seed).unseen
            assert torch.equal(same, unseen)  # same seed, same set
            sets.append(unseen)
        assert not torch.equal(sets[0], sets[1]) and not torch.equal(sets[1], sets[2])


def test_stratified_subset_rounds_per_class_and_total():
    y = torch.tensor([0] * 11 + [1] * 7 + [2] * 2)
    nodes = torch.arange(20)
    sub = stratified_subset(nodes, y, 0.2, seed=3)
    assert sub.numel() == 4  # floor(0.2 * 20 + 0.5)
    counts = torch.bincount(y[sub], minlength=3).tolist()
    assert counts[0] in (2, 3) and counts[1] in (1, 2) and counts[2] in (0, 1)
    assert torch.equal(sub, sub.sort().values) and sub.unique().numel() == 4
    assert stratified_subset(nodes, y, 0.0, seed=0).numel() == 0
    assert torch.equal(stratified_subset(nodes, y, 1.0, seed=0), nodes)
    with pytest.raises(SplitError, match="fraction"):
        stratified_subset(nodes, y, 1.5, seed=0)


def test_tiny_test_set_is_refused():
    data = csbm(num_nodes=60, num_classes=3, num_features=4, seed=0)
    masks = torch.zeros(3, 60, dtype=torch.bool)
    masks[0, :30], masks[1, 30:50], masks[2, 50:52] = True, True, True  # 2 test nodes
    data.train_mask, data.val_mask, data.test_mask = masks
    with pytest.raises(SplitError, match="unseen and observed"):
        inductive_split(data, "public", 0)  # 20 % of 2 nodes rounds to none


def test_observed_graph_drops_the_unseen_nodes_edges_features_and_labels():
    data = load_dataset(TINY)
    unseen = inductive_split(data, "fgkd", 0).unseen
    obs = observed_graph(data, unseen)
    ei = obs.edge_index
    assert not torch.isin(ei, unseen).any()
    keep = ~(torch.isin(data.edge_index[0], unseen) | torch.isin(data.edge_index[1], unseen))
    assert torch.equal(ei, data.edge_index[:, keep])  # the rest, in canonical order
    assert (obs.x[unseen] == 0).all() and (obs.y[unseen] == -1).all()
    rest = torch.ones(data.num_nodes, dtype=torch.bool)
    rest[unseen] = False
    assert torch.equal(obs.x[rest], data.x[rest]) and torch.equal(obs.y[rest], data.y[rest])
    assert obs.num_nodes == data.num_nodes and data.x.abs().sum() > 0  # input untouched


def _poisoned(data, unseen):
    """``data`` with 1e3 noise as the unseen nodes' features and new edges from each unseen
    node to random nodes."""
    gen = torch.Generator().manual_seed(7)
    out = data.clone()
    out.x = data.x.clone()
    out.x[unseen] = 1e3 * torch.randn(unseen.numel(), data.x.size(1), generator=gen)
    far = torch.randint(0, data.num_nodes, (unseen.numel() * 3,), generator=gen)
    extra = torch.stack([unseen.repeat(3), far])
    ei = torch.cat([data.edge_index, extra], 1)
    out.edge_index = coalesce(to_undirected(ei, num_nodes=data.num_nodes),
                              num_nodes=data.num_nodes)
    return canonicalize(out, warn=False)


def test_unseen_nodes_and_edges_reach_nothing_in_training(tmp_path):
    """Poisoning the unseen nodes (features and edges) leaves every trained weight and the
    teacher's soft labels on the observed nodes bit-identical: the observed graph is the same
    tensor, so the same code runs on the same numbers."""
    data = load_dataset(TINY)
    isplit = inductive_split(data, "fgkd", 0)
    bad = _poisoned(data, isplit.unseen)
    assert bad.edge_index.size(1) > data.edge_index.size(1)
    assert torch.equal(inductive_split(bad, "fgkd", 0).unseen, isplit.unseen)
    a, b = observed_graph(data, isplit.unseen), observed_graph(bad, isplit.unseen)
    assert torch.equal(a.edge_index, b.edge_index) and torch.equal(a.x, b.x)

    extra = ("baselines=[gcn,spatial]", "student.names=[mlp,fmlp-s,fmlp-o,fmlp-c]")
    for mode in ("features", "sketch"):
        cfg = _cfg(extra=(*extra, f"knowledge.mode={mode}"))
        clear_operator_cache()
        _run(tmp_path / f"clean-{mode}", cfg, tmp_path / f"cache-clean-{mode}", data=data)
        clear_operator_cache()  # nothing shared between the two runs but the code
        _run(tmp_path / f"bad-{mode}", cfg, tmp_path / f"cache-bad-{mode}", data=bad)
        clean, poisoned = tmp_path / f"clean-{mode}" / "seed_0", tmp_path / f"bad-{mode}" / "seed_0"
        for name in ("spectral", "gcn", "spatial", "mlp", "glnn", "fmlp-s", "fmlp-o", "fmlp-c"):
            wa = load_tensors(clean / f"{name}.safetensors")
            wb = load_tensors(poisoned / f"{name}.safetensors")
            assert wa.keys() == wb.keys() and wa, name
            for key in wa:
                assert torch.equal(wa[key], wb[key]), (mode, name, key)
        la = load_tensors(clean / "teacher_logp.safetensors")["log_probs"]
        lb = load_tensors(poisoned / "teacher_logp.safetensors")["log_probs"]
        observed = isplit.observed
        assert torch.equal(la[observed], lb[observed])


# ----------------------------------------------------------------------------- local rows


@pytest.fixture(scope="module")
def sparse_graph():
    """A sparse CSBM graph whose receptive fields of small radius are proper subgraphs, with
    isolated nodes and leaves, and λ_max < 2 (no bipartite component)."""
    return csbm(num_nodes=300, num_classes=3, avg_degree=3.0, homophily=0.7, num_features=6,
                seed=3)


def _border_nodes(g):
    """An isolated node, a leaf, the highest-degree node, two random nodes, a repeat."""
    deg = torch.bincount(g.edge_index[0], minlength=g.num_nodes)
    isolated = int((deg == 0).nonzero()[0])
    leaf = int((deg == 1).nonzero()[0])
    hub = int(deg.argmax())
    return torch.tensor([isolated, leaf, hub, 17, 250, leaf])


@pytest.mark.parametrize("dtype, atol", [(torch.float32, 1e-5), (F64, 1e-10)])
@pytest.mark.parametrize("epsilon", [0.0, 0.3])
@pytest.mark.parametrize("levels, powers", [(1, 1), (2, 1), (1, 2)])
@pytest.mark.parametrize("mode", ["features", "sketch", "rows"])
def test_knowledge_rows_equal_the_full_computation(sparse_graph, mode, levels, powers,
                                                   epsilon, dtype, atol):
    g = sparse_graph
    framelet = FrameletSpec(filters="haar" if levels == 1 else "linear", levels=levels, order=2)
    op = framelet_operator(g.edge_index, g.num_nodes, framelet, epsilon=epsilon, dtype=dtype)
    spec = KnowledgeSpec(mode=mode, powers=powers, sketch_dim=8, seed=3)
    x = g.x.to(dtype)
    nodes = _border_nodes(g)
    full = graph_knowledge(g.edge_index, g.num_nodes, x, spec, operator=op)
    rows = knowledge_rows(g.edge_index, g.num_nodes, x, nodes, spec, operator=op)
    assert rows.shape == (op.num_channels, powers, nodes.numel(), full.size(-1))
    assert rows.dtype == dtype
    torch.testing.assert_close(rows, full[:, :, nodes], rtol=0, atol=atol)
    field = receptive_field(g.edge_index, g.num_nodes, nodes, spec, operator=op)
    assert field.radius == powers * (2 * levels * (2 - 1) + 1)
    assert field.num_nodes < g.num_nodes  # a proper subgraph ...
    if powers == 1:
        assert field.padding_nodes > 0  # ... whose border nodes lost neighbours


def test_degree_padding_and_full_radius_are_both_needed(sparse_graph):
    """Negative controls: without the full graph's degrees at the border, or one hop short of
    the radius, the rows are wrong; so the radius is tight and the padding does the work."""
    g = sparse_graph
    framelet = FrameletSpec(levels=1, order=2)
    op = framelet_operator(g.edge_index, g.num_nodes, framelet, dtype=F64)
    spec = KnowledgeSpec(mode="features", powers=1)
    x, nodes = g.x.to(F64), _border_nodes(g)
    want = graph_knowledge(g.edge_index, g.num_nodes, x, spec, operator=op)[:, :, nodes]
    local = replace(framelet, lambda_max=op.transform.lambda_max)
    r = knowledge_radius(framelet, 1)
    assert r == 3

    def rows(radius, pad):
        ball = _ball(g.edge_index, g.num_nodes, nodes, radius, pad=pad)
        return _rows_on_ball(ball, g.num_nodes, x, spec, local, 0.0, F64, torch.device("cpu"),
                             None)

    torch.testing.assert_close(rows(r, True), want, rtol=0, atol=1e-12)
    assert (rows(r, False) - want).abs().max() > 1e-4
    assert (rows(r - 1, True) - want).abs().max() > 1e-4
    # The subgraph's own λ_max would change the scales t_l, hence every row.
    ball = _ball(g.edge_index, g.num_nodes, nodes, r)
    own = _rows_on_ball(ball, g.num_nodes, x, spec, framelet, 0.0, F64, torch.device("cpu"),
                        None)
    assert (own - want).abs().max() > 1e-6


def test_knowledge_radius_formula():
    assert knowledge_radius(FrameletSpec(), 2) == 2 * (2 * 1 * 7 + 1)  # defaults: r = 30
    assert knowledge_radius({"levels": 2, "order": 3}, 1) == 9
    assert knowledge_radius({"order": 1}, 3) == 3  # W_c = c0/2·I: only Â moves
    assert knowledge_radius({"method": "exact"}, 2) is None
    with pytest.raises(ConfigError, match="powers"):
        knowledge_radius(FrameletSpec(), 0)


def test_knowledge_rows_without_operator_and_with_exact_method(sparse_graph):
    g = sparse_graph
    nodes = _border_nodes(g)
    spec = KnowledgeSpec(mode="sketch", powers=1, sketch_dim=8)
    framelet = {"levels": 1, "order": 3}
    full = graph_knowledge(g.edge_index, g.num_nodes, None, spec, framelet=framelet,
                           epsilon=0.2, dtype=F64)
    rows = knowledge_rows(g.edge_index, g.num_nodes, None, nodes, spec, framelet=framelet,
                          epsilon=0.2, dtype=F64)  # λ_max estimated on the full graph
    torch.testing.assert_close(rows, full[:, :, nodes], rtol=0, atol=1e-10)
    exact = framelet_operator(g.edge_index, g.num_nodes, {"method": "exact"}, dtype=F64)
    want = graph_knowledge(g.edge_index, g.num_nodes, None, spec, operator=exact)
    got = knowledge_rows(g.edge_index, g.num_nodes, None, nodes, spec, operator=exact)
    torch.testing.assert_close(got, want[:, :, nodes], rtol=0, atol=1e-12)
    field = receptive_field(g.edge_index, g.num_nodes, nodes, spec, operator=exact)
    assert field.radius is None and field.fraction == 1.0


def test_knowledge_at_test_time_local_and_full_agree(sparse_graph):
    g = sparse_graph.clone()
    g.x = g.x.to(F64)
    op = framelet_operator(g.edge_index, g.num_nodes, {"order": 2}, dtype=F64)
    spec = KnowledgeSpec(mode="features", powers=1)
    nodes = _border_nodes(g)
    full = graph_knowledge(g.edge_index, g.num_nodes, g.x, spec, operator=op)
    calls = []

    def provider():
        calls.append(1)
        return full

    local, info = knowledge_at_test_time(g, nodes, spec, op, full_knowledge=provider)
    assert info["method"] == "local" and not calls
    whole, info = knowledge_at_test_time(g, nodes, spec, op, full_knowledge=provider,
                                         max_fraction=0.0)
    assert info["method"] == "full" and calls == [1]
    torch.testing.assert_close(local, whole, rtol=0, atol=1e-10)
    assert info["receptive_field"]["num_nodes"] < g.num_nodes


# ----------------------------------------------------------------------------- scores


def test_prod_is_the_weighted_mean_of_tran_and_ind():
    assert PROD_WEIGHTS == (0.8, 0.2)
    assert prod_accuracy(0.5, 1.0) == pytest.approx(0.6)
    split = Split(torch.tensor([0]), torch.tensor([1]), torch.arange(2, 12), "x", 0)
    isplit = InductiveSplit(split, torch.tensor([10, 11]), torch.arange(2, 10), 12)
    y = torch.zeros(12, dtype=torch.long)
    logits = torch.zeros(12, 2)
    logits[2:8, 0] = 1.0  # 6 of 8 observed test nodes right
    logits[8:10, 1] = 1.0
    logits[10, 0] = 1.0  # 1 of 2 unseen right
    logits[11, 1] = 1.0
    s = production_scores(logits, y, isplit)
    assert s == pytest.approx({"tran": 0.75, "ind": 0.5, "prod": 0.8 * 0.75 + 0.2 * 0.5})
    # Rows of the test nodes only (observed first): the same scores.
    assert production_scores(logits[isplit.test_nodes], y, isplit) == s


def test_run_metrics_prod_per_seed_and_means(inductive_run):
    _, metrics = inductive_run
    for name, m in metrics["models"].items():
        for prod, tran, ind in zip(m["accuracy"], m["tran_accuracy"], m["ind_accuracy"],
                                   strict=True):
            assert prod == pytest.approx(0.8 * tran + 0.2 * ind, abs=1e-12), name
        assert m["accuracy_mean"] == pytest.approx(
            0.8 * m["tran_accuracy_mean"] + 0.2 * m["ind_accuracy_mean"], abs=1e-12)
        for key in ("accuracy", "tran_accuracy", "ind_accuracy"):
            assert m[f"{key}_mean"] == pytest.approx(sum(m[key]) / len(m[key]))


# ----------------------------------------------------------------------------- the run


def test_inductive_metrics_schema_and_table(inductive_run):
    out, metrics = inductive_run
    assert metrics["setting"] == "inductive" and metrics["seeds"] == [0, 1]
    assert json.loads((out / "metrics.json").read_text()) == json.loads(json.dumps(metrics))
    assert set(metrics["models"]) == {"spectral", "gcn", "mlp", "glnn", "fmlp-s", "fmlp-o"}
    for m in metrics["models"].values():
        for key in ("accuracy", "tran_accuracy", "ind_accuracy"):
            assert len(m[key]) == 2 and 0.0 <= m[f"{key}_mean"] <= 1.0
            assert m[f"{key}_std"] >= 0.0
        assert m["train_seconds"] > 0 and m["inference_seconds"] > 0
    per_seed = metrics["inductive"]["per_seed"]
    assert [s["seed"] for s in per_seed] == [0, 1]
    assert all(s["unseen"] == 18 and s["observed_test"] == 72 for s in per_seed)
    assert metrics["knowledge_shape"][2] == 150
    split = load_tensors(out / "seed_0" / "split.safetensors")
    assert torch.isin(split["unseen"], split["test"]).all()
    table = (out / "results.md").read_text()
    assert "| model | role | prod | tran | ind |" in table and "| fmlp-s | student |" in table
    assert table == results_table(metrics)
    seed = json.loads((out / "seed_0" / "metrics.json").read_text())
    assert seed["setting"] == "inductive" and seed["inductive"]["unseen"] == 18


def test_transductive_metrics_schema_is_unchanged(tmp_path):
    metrics = _run(tmp_path / "t", _cfg(setting="transductive"), tmp_path / "cache")
    assert metrics["setting"] == "transductive" and "inductive" not in metrics
    for m in metrics["models"].values():
        assert set(m) == {"role", "accuracy_mean", "accuracy_std", "accuracy", "train_seconds",
                          "inference_seconds"}
    assert "| model | role | accuracy |" in (tmp_path / "t" / "results.md").read_text()


def test_models_are_scored_on_the_full_graph(inductive_run):
    """Rebuilding the saved teacher and student and scoring them on the full graph (teacher:
    forward on the full edge_index; student: the full graph's knowledge rows) gives the
    reported numbers."""
    out, metrics = inductive_run
    from framekd.distill import predict_student, predict_teacher

    cfg = _cfg(seeds=2)
    data = load_dataset(TINY)
    isplit = inductive_split(data, "fgkd", 1)
    teacher = load_trained(out, 1, "spectral").eval()
    s = production_scores(predict_teacher(teacher, data), data.y, isplit)
    assert s["prod"] == pytest.approx(metrics["models"]["spectral"]["accuracy"][1], abs=1e-12)
    assert s["ind"] == pytest.approx(metrics["models"]["spectral"]["ind_accuracy"][1])
    op = graph_operator(cfg, data)
    full = graph_knowledge(data.edge_index, data.num_nodes, data.x, knowledge_spec(cfg, data),
                           operator=op)
    rows = full[:, :, isplit.test_nodes]
    student = load_trained(out, 1, "fmlp-s")
    logits = predict_student(student, data.x[isplit.test_nodes], rows).logits
    s = production_scores(logits, data.y, isplit)
    assert s["tran"] == pytest.approx(metrics["models"]["fmlp-s"]["tran_accuracy"][1])
    assert s["ind"] == pytest.approx(metrics["models"]["fmlp-s"]["ind_accuracy"][1])


def test_setting_key_is_validated_and_set_by_override():
    assert resolve(TINY)["setting"] == "transductive"
    assert resolve(TINY, overrides=["setting=inductive"])["setting"] == "inductive"
    with pytest.raises(ConfigError, match="setting must be one of transductive, inductive"):
        resolve(TINY, overrides=["setting=production"])


def test_cli_run_inductive_end_to_end(tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["run", "--dataset", TINY, "--setting", "inductive", "--seeds", "1", "--students",
            "fmlp-s", "--quiet", "--out", str(out)]
    args += [a for item in FAST for a in ("--set", item)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "| model | role | prod | tran | ind |" in text and "| fmlp-s | student |" in text
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["setting"] == "inductive"
    assert set(metrics["models"]) == {"spectral", "gcn", "fmlp-s"}
    # --set setting=... is the same setting: the finished seed is reused.
    args2 = [a if a != "--setting" else "--set" for a in args]
    args2[args2.index("inductive")] = "setting=inductive"
    assert main(args2) == 0


def test_bench_accuracy_inductive_flag(tmp_path):
    out = tmp_path / "acc"
    argv = ["bench", "accuracy", "--datasets", TINY, "--seeds", "1", "--out", str(out),
            "--quiet", "--setting", "inductive", "--no-sdrf",
            "--set", "baselines=[]", "--set", "student.names=[fmlp-s]"]
    argv += [a for item in FAST for a in ("--set", item)]
    assert main(argv) == 0
    with open(out / "accuracy.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["setting"] for r in rows] == ["inductive"]
    run = next((out / "runs").iterdir())
    assert run.name.endswith("-inductive")
    assert json.loads((run / "metrics.json").read_text())["setting"] == "inductive"
    assert "prod = 0.8 tran + 0.2 ind" in (out / "accuracy.md").read_text()
