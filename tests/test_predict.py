"""`framekd predict` / `framekd.Predictor`: a trained run predicts every node as
`load_trained` + a full-graph forward pass does, on the training graph and on the same graph
with 10 nodes appended (whose knowledge rows come from their receptive field), through the
Python API and the command line; user mistakes are one-line errors (exit 2)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch_geometric.data import Data

import framekd
from framekd.cli import main
from framekd.config import resolve
from framekd.data import load_dataset, save_graph_dir
from framekd.errors import CheckpointError, ConfigError, FramekdError, GraphError
from framekd.experiment import compute_knowledge, load_trained, prepare_graph, run_experiment
from framekd.io import load_tensors, read_json
from framekd.predict import Predictor

SPEC = "csbm:n=120,c=3,d=6,h=0.3,f=8,seed=0"
FAST = ["teacher.epochs=5", "student.epochs=5", "teacher.patience=5", "student.patience=5",
        "baselines=[]"]
STUDENTS = ("mlp", "glnn", "fmlp-s", "fmlp-o")
N_OLD, N_NEW = 120, 10
#: Same code path (the Predictor calls the same forward on the same inputs): state tolerance.
SAME_PATH_ATOL = 1e-6
#: Receptive-field rows against the full recomputation (different sums of the same walks).
LOCAL_ATOL = 1e-5


def _quiet(msg: str) -> None:
    pass


def _appended(data: Data, seed: int = 1) -> Data:
    """``data`` with 10 new nodes appended: Gaussian features, each new node joined to two
    old nodes and to the next new node; their labels unknown (-1)."""
    gen = torch.Generator().manual_seed(seed)
    n, d = data.num_nodes, data.x.size(1)
    new = torch.arange(n, n + N_NEW)
    old = torch.randint(0, n, (2 * N_NEW,), generator=gen)
    src = torch.cat([new.repeat(2), new[:-1]])
    dst = torch.cat([old, new[1:]])
    edges = torch.cat([data.edge_index, torch.stack([src, dst]), torch.stack([dst, src])], 1)
    x = torch.cat([data.x, torch.randn(N_NEW, d, generator=gen)])
    y = torch.cat([data.y, torch.full((N_NEW,), -1)])
    return Data(x=x, edge_index=edges, y=y, num_nodes=n + N_NEW)


def _reference(run_dir, cfg, name, data):
    """``load_trained`` + one full-graph forward pass on ``data`` prepared by the run's
    settings: (logits or log-probs, gates, knowledge)."""
    model = load_trained(run_dir, 0, name).eval()
    graph, _ = prepare_graph(cfg, framekd.canonicalize(data), cache_dir=None, log=_quiet)
    with torch.no_grad():
        if name == "spectral":
            return F.log_softmax(model(graph.x, graph.edge_index), -1), None, None
        k = None
        if name.startswith("fmlp"):
            k, _ = compute_knowledge(graph, cfg, cache_dir=None, device=torch.device("cpu"))
        out = model(graph.x, k)
    return out.logits, out.gates, k


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    cfg = resolve(SPEC, flags={"seeds": 1}, overrides=FAST)
    run_experiment(cfg, root / "run", progress=False, log=_quiet)
    data = load_dataset(SPEC)
    return {"dir": root / "run", "root": root, "cfg": cfg, "data": data,
            "new": _appended(data)}


def _close(a, b, atol):
    assert a.shape == b.shape
    assert (a - b).abs().max().item() <= atol


# ----------------------------------------------------------------------------- (a) same graph


@pytest.mark.parametrize("name", [*STUDENTS, "spectral"])
def test_same_graph_predicts_every_node_as_load_trained_forward(run, name):
    out = framekd.Predictor.from_run(run["dir"], model=name, seed=0).predict(run["data"])
    logits, gates, _ = _reference(run["dir"], run["cfg"], name, run["data"])
    assert torch.equal(out.nodes, torch.arange(N_OLD))
    _close(out.logits, logits, SAME_PATH_ATOL)
    assert torch.equal(out.pred, logits.argmax(-1))
    _close(out.probs.sum(-1), torch.ones(N_OLD), 1e-5)
    assert (out.gates is None) == (gates is None)
    if gates is not None:
        _close(out.gates, gates, SAME_PATH_ATOL)
        assert out.gates.shape == ((N_OLD, 2) if name == "fmlp-s" else (2, N_OLD, 2))


@pytest.mark.parametrize("name", [*STUDENTS, "spectral"])
def test_test_accuracy_on_the_training_graph_is_the_runs(run, name):
    """The graph is prepared as `framekd run` prepared it: the run's recorded accuracy."""
    out = Predictor.from_run(run["dir"], model=name).predict(run["data"])
    test = load_tensors(run["dir"] / "seed_0" / "split.safetensors")["test"]
    recorded = read_json(run["dir"] / "seed_0" / "metrics.json")["models"][name]["accuracy"]
    acc = float((out.pred[test] == run["data"].y[test]).float().mean())
    assert acc == pytest.approx(recorded, abs=1e-6)


# ----------------------------------------------------------------------------- (b) new nodes


@pytest.mark.parametrize("name", STUDENTS)
def test_new_graph_every_node_as_load_trained_forward_on_the_new_graph(run, name):
    new = run["new"]
    out = Predictor.from_run(run["dir"], model=name).predict(new)
    logits, gates, _ = _reference(run["dir"], run["cfg"], name, new)
    assert out.nodes.numel() == N_OLD + N_NEW
    assert out.is_new.tolist() == [False] * N_OLD + [True] * N_NEW
    _close(out.logits, logits, SAME_PATH_ATOL)
    if gates is not None:
        _close(out.gates, gates, SAME_PATH_ATOL)


def test_old_nodes_knowledge_changes_with_the_new_edges(run):
    """Why the old nodes are compared on the new graph: their neighbours' knowledge moved."""
    p = Predictor.from_run(run["dir"], model="fmlp-s")
    before = p.predict(run["data"]).logits
    after = p.predict(run["new"]).logits[:N_OLD]
    touched = torch.unique(run["new"].edge_index[1, run["new"].edge_index[0] >= N_OLD])
    touched = touched[touched < N_OLD]
    assert (before[touched] - after[touched]).abs().max() > 1e-4


@pytest.mark.parametrize("name", ["fmlp-s", "fmlp-o"])
def test_new_nodes_knowledge_from_the_receptive_field_equals_full_recomputation(run, name):
    new = run["new"]
    p = Predictor.from_run(run["dir"], model=name, rows="local")
    nodes = torch.tensor([0, 7, *range(N_OLD, N_OLD + N_NEW)])  # old and new nodes
    graph = p.prepare(new)
    rows, info = p.knowledge(graph, nodes)
    assert info["method"] == "local" and info["receptive_field"]["radius"] == 30
    logits, gates, full = _reference(run["dir"], run["cfg"], name, new)
    _close(rows, full[:, :, nodes], LOCAL_ATOL)
    out = p.predict(new, nodes)
    assert out.knowledge["method"] == "local"
    assert torch.equal(out.nodes, nodes)
    _close(out.logits, logits[nodes], LOCAL_ATOL)
    _close(out.gates, gates[..., nodes, :], LOCAL_ATOL)
    assert out.is_new.tolist() == [False, False] + [True] * N_NEW


def test_rows_full_and_auto_give_the_same_predictions(run):
    nodes = torch.arange(N_OLD, N_OLD + N_NEW)
    outs = {rows: Predictor.from_run(run["dir"], model="fmlp-o", rows=rows).predict(
        run["new"], nodes) for rows in ("local", "full", "auto")}
    assert outs["full"].knowledge["method"] == "full"
    for rows in ("local", "auto"):
        _close(outs[rows].logits, outs["full"].logits, LOCAL_ATOL)


def test_rows_tol_approximates_the_new_nodes_rows_on_a_smaller_field(run):
    """A tolerance below every walk weight reproduces the exact rows; a coarse one computes
    on a smaller field (reported as ``approx``) and still gives probabilities."""
    nodes = torch.arange(N_OLD, N_OLD + N_NEW)
    exact = Predictor.from_run(run["dir"], model="fmlp-o", rows="local").predict(run["new"], nodes)
    fine = Predictor.from_run(run["dir"], model="fmlp-o", rows_tol=1e-12).predict(run["new"],
                                                                                  nodes)
    assert fine.knowledge["method"] == "approx"
    assert fine.knowledge["receptive_field"]["tol"] == 1e-12
    _close(fine.logits, exact.logits, LOCAL_ATOL)
    coarse = Predictor.from_run(run["dir"], model="fmlp-o", rows_tol=0.2).predict(run["new"],
                                                                                 nodes)
    small = coarse.knowledge["receptive_field"]["num_nodes"]
    assert small < exact.knowledge["receptive_field"]["num_nodes"]
    _close(coarse.probs.sum(-1), torch.ones(N_NEW), 1e-5)
    with pytest.raises(ConfigError, match="tol must be a number in"):
        Predictor.from_run(run["dir"], model="fmlp-o", rows_tol=-1.0)


def test_knowledge_mode_is_the_trained_one_not_resolved_again(run, monkeypatch):
    """`auto` chose `features` for the run; a graph large enough to make `auto` pick
    `sketch` (here: the threshold at 0 bytes) still gets the trained mode."""
    import framekd.experiment as experiment

    monkeypatch.setattr(experiment, "AUTO_FEATURES_BYTES", 0)
    p = Predictor.from_run(run["dir"], model="fmlp-s")
    assert p.knowledge_mode == "features"
    out = p.predict(run["new"])
    monkeypatch.undo()
    logits, _, _ = _reference(run["dir"], run["cfg"], "fmlp-s", run["new"])
    _close(out.logits, logits, SAME_PATH_ATOL)


def test_rows_knowledge_refuses_a_graph_of_another_size(run):
    from framekd.config import RunConfig
    from framekd.models import student_from_config

    rc = RunConfig.from_dict(run["cfg"])
    shape = (2, 2, N_OLD, N_OLD)
    model = student_from_config("fmlp-s", rc, 8, 3, knowledge_shape=shape)
    p = Predictor(model, rc, name="fmlp-s", num_features=8, num_classes=3,
                  knowledge_shape=shape, knowledge_mode="rows")
    with pytest.raises(GraphError, match="'rows' knowledge"):
        p.predict(run["new"])


# ----------------------------------------------------------------------------- SDRF


@pytest.fixture(scope="module")
def sdrf_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict-sdrf")
    cfg = resolve(SPEC, flags={"seeds": 1},
                  overrides=[*FAST, "student.names=[fmlp-s]", "rewire.method=sdrf",
                             "rewire.iterations=10", "rewire.tau=1.0"])
    run_experiment(cfg, root / "run", progress=False, log=_quiet)
    return {"dir": root / "run", "cfg": cfg}


def test_sdrf_run_rewires_the_given_graph_with_the_runs_settings(run, sdrf_run):
    data, new = run["data"], run["new"]
    rewired, _ = prepare_graph(sdrf_run["cfg"], data, cache_dir=None, log=_quiet)
    assert not torch.equal(rewired.edge_index, data.edge_index)  # SDRF changed the graph
    p = Predictor.from_run(sdrf_run["dir"], model="fmlp-s")
    out = p.predict(data)
    test = load_tensors(sdrf_run["dir"] / "seed_0" / "split.safetensors")["test"]
    recorded = read_json(sdrf_run["dir"] / "seed_0" / "metrics.json")["models"]["fmlp-s"]
    assert float((out.pred[test] == data.y[test]).float().mean()) == pytest.approx(
        recorded["accuracy"], abs=1e-6)
    for graph in (data, new):
        logits, gates, _ = _reference(sdrf_run["dir"], sdrf_run["cfg"], "fmlp-s", graph)
        out = p.predict(graph)
        _close(out.logits, logits, SAME_PATH_ATOL)
        _close(out.gates, gates, SAME_PATH_ATOL)


# ----------------------------------------------------------------------------- (c) the CLI


def _read_csv(path):
    lines = path.read_text().strip().splitlines()
    header = lines[0].split(",")
    rows = np.array([[float(v) for v in line.split(",")] for line in lines[1:]])
    return header, rows


def test_cli_writes_the_csv_for_new_nodes(run, capsys):
    folder = save_graph_dir(run["new"], run["root"] / "graph_new")
    out = run["root"] / "preds.csv"
    code = main(["predict", "--run", str(run["dir"]), "--model", "fmlp-o", "--graph",
                 str(folder), "--nodes", "new", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "10 new" in printed
    header, rows = _read_csv(out)
    gates = [f"gate_k{k}_c{c}" for k in range(2) for c in range(2)]
    assert header == ["node", "predicted_class", "prob_0", "prob_1", "prob_2", *gates]
    assert rows[:, 0].tolist() == list(range(N_OLD, N_OLD + N_NEW))
    expected = Predictor.from_run(run["dir"], model="fmlp-o").predict(
        run["new"], torch.arange(N_OLD, N_OLD + N_NEW))
    assert rows[:, 1].tolist() == expected.pred.tolist()
    np.testing.assert_allclose(rows[:, 2:5], expected.probs.numpy(), atol=1e-6)
    np.testing.assert_allclose(rows[:, 5:], expected.gates.permute(1, 0, 2).reshape(10, 4),
                               atol=1e-6)
    np.testing.assert_allclose(rows[:, 2:5].sum(1), 1.0, atol=1e-6)


def test_cli_rows_tol_says_the_rows_are_approximate(run, capsys):
    folder = save_graph_dir(run["new"], run["root"] / "graph_tol")
    out = run["root"] / "preds_tol.csv"
    assert main(["predict", "--run", str(run["dir"]), "--graph", str(folder), "--nodes", "new",
                 "--rows-tol", "1e-3", "--out", str(out)]) == 0
    assert "approximated (tol 0.001) from the significant field" in capsys.readouterr().out
    _, rows = _read_csv(out)
    assert rows[:, 0].tolist() == list(range(N_OLD, N_OLD + N_NEW))


def test_cli_nodes_as_ranges_or_a_file_and_the_default_out(run, tmp_path, capsys):
    listing = tmp_path / "nodes.txt"
    listing.write_text("node\n3  # a comment\n5,6\n\n121\n")
    folder = save_graph_dir(run["new"], tmp_path / "g")
    for nodes in ("3,5:7,121", str(listing)):
        assert main(["predict", "--run", str(run["dir"]), "--model", "glnn", "--graph",
                     str(folder), "--nodes", nodes, "--quiet"]) == 0
        header, rows = _read_csv(run["dir"] / "predictions" / "glnn-seed0.csv")
        assert header == ["node", "predicted_class", "prob_0", "prob_1", "prob_2"]
        assert rows[:, 0].tolist() == [3, 5, 6, 121]
    capsys.readouterr()


@pytest.mark.parametrize("name", STUDENTS)
def test_bfloat16_predicts_as_float32(run, name):
    """A student in bfloat16 (model, features and knowledge rows cast) answers within
    bfloat16 rounding of float32 and returns float32 outputs."""
    want = Predictor.from_run(run["dir"], model=name).predict(run["new"])
    got = Predictor.from_run(run["dir"], model=name, dtype="bfloat16").predict(run["new"])
    assert got.logits.dtype == torch.float32
    _close(got.probs, want.probs, 0.02)  # 8 significant bits, a few layers
    # Classes agree but where float32's top two probabilities are within that rounding.
    top2 = want.probs.topk(2, dim=-1).values
    clear = (top2[:, 0] - top2[:, 1]) > 0.05
    assert torch.equal(got.pred[clear], want.pred[clear])
    if want.gates is not None:
        _close(got.gates, want.gates, 0.02)


def test_cli_dtype_bfloat16(run, tmp_path, capsys):
    folder = save_graph_dir(run["new"], tmp_path / "g")
    out = tmp_path / "bf16.csv"
    assert main(["predict", "--run", str(run["dir"]), "--graph", str(folder), "--nodes", "new",
                 "--dtype", "bfloat16", "--out", str(out), "--quiet"]) == 0
    _, rows = _read_csv(out)
    expected = Predictor.from_run(run["dir"], model="fmlp-o").predict(
        run["new"], torch.arange(N_OLD, N_OLD + N_NEW))
    np.testing.assert_allclose(rows[:, 2:5], expected.probs.numpy(), atol=0.02)
    capsys.readouterr()


# ----------------------------------------------------------------------------- (d) bad input


@pytest.fixture(scope="module")
def broken(run, tmp_path_factory):
    """Graph folders and damaged copies of the run for the error cases."""
    root = tmp_path_factory.mktemp("predict-bad")
    wide = run["data"].clone()
    wide.x = torch.ones(N_OLD, 5)
    save_graph_dir(wide, root / "wide")
    unfinished = root / "unfinished"
    shutil.copytree(run["dir"], unfinished)
    (unfinished / "seed_0" / "metrics.json").unlink()
    no_config = root / "no_config"
    shutil.copytree(run["dir"], no_config)
    (no_config / "config.yaml").unlink()
    return {"root": root, "wide": root / "wide", "unfinished": unfinished,
            "no_config": no_config}


@pytest.mark.parametrize("argv, message", [
    (["--graph", "{wide}"], "features have width 5 but 'fmlp-o' was trained on 8"),
    (["--seed", "3"], "seed 3 of"),
    (["--run", "{unfinished}"], "seed 0 of"),
    (["--run", "{no_config}"], "is not a framekd run (no config.yaml)"),
    (["--run", "{root}/missing"], "is not a framekd run"),
    (["--model", "gcn"], "has no trained 'gcn'"),
    (["--model", "fmlp-x"], "unknown model 'fmlp-x'"),
    (["--nodes", "120"], "node id 120 is out of range: the graph has 120 nodes"),
    (["--nodes", "3,x"], "'x' is not a node id"),
    (["--nodes", "9:4"], "is empty"),
    (["--nodes", "new"], "there are no new nodes"),
    (["--nodes", "{root}/ids.txt"], "no such file"),
    (["--graph", "{root}/nowhere/"], "does not exist"),
    (["--out", "{root}"], "is a folder"),
    (["--rows-tol", "2"], "tol must be a number in [0, 1)"),
    (["--rows-tol", "1e-3", "--rows", "full"], "need rows 'auto' or 'local'"),
    (["--model", "spectral", "--dtype", "bfloat16"], "teachers run in float32 only"),
])
def test_cli_user_errors_exit_2_with_one_line(run, broken, capsys, argv, message):
    argv = [a.replace("{wide}", str(broken["wide"])).replace("{root}", str(broken["root"]))
            .replace("{unfinished}", str(broken["unfinished"]))
            .replace("{no_config}", str(broken["no_config"])) for a in argv]
    if "--run" not in argv:
        argv = ["--run", str(run["dir"]), *argv]
    if "--graph" not in argv:
        argv = [*argv, "--graph", SPEC]
    out = broken["root"] / "out.csv"
    if "--out" not in argv:
        argv = [*argv, "--out", str(out)]
    assert main(["predict", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("framekd predict: error:"), err
    assert message in err[0], err[0]
    assert not out.exists()


def test_python_errors_are_framekd_errors(run, broken):
    with pytest.raises(CheckpointError, match="not finished"):
        Predictor.from_run(broken["unfinished"])
    with pytest.raises(ConfigError, match="seed must be an integer"):
        Predictor.from_run(run["dir"], seed=-1)
    with pytest.raises(ConfigError, match="dtype must be one of float32, bfloat16"):
        Predictor.from_run(run["dir"], dtype="int8")
    p = Predictor.from_run(run["dir"], model="fmlp-s")
    with pytest.raises(ConfigError, match="out of range"):
        p.predict(run["data"], nodes=[-1])
    with pytest.raises(ConfigError, match="integers"):
        p.predict(run["data"], nodes=[0.5])
    with pytest.raises(ConfigError, match="no node"):
        p.predict(run["data"], nodes=[])
    with pytest.raises(GraphError, match="no node features"):
        p.predict(Data(edge_index=run["data"].edge_index, num_nodes=N_OLD))
    with pytest.raises(FramekdError):
        p.predict(run["data"], nodes=torch.zeros(N_OLD + 1, dtype=torch.bool))
    mask = torch.zeros(N_OLD, dtype=torch.bool)
    mask[[4, 9]] = True
    assert p.predict(run["data"], nodes=mask).nodes.tolist() == [4, 9]


def test_renumbered_labels_are_kept_with_the_run_and_read_back(run, tmp_path):
    """A graph folder whose labels are not 0..C-1 is renumbered (framekd.data.user); the run
    keeps the mapping (metrics.json label_map) and predictions carry the file's labels."""
    folder = save_graph_dir(run["data"], tmp_path / "g")
    original = (10, 20, 30)
    labels = [str(original[int(v)]) for v in run["data"].y]
    (folder / "labels.csv").write_text("\n".join(labels) + "\n")
    with pytest.warns(framekd.errors.FramekdWarning, match="renumbered"):
        cfg = resolve(str(folder), flags={"seeds": 1}, overrides=FAST)
        run_experiment(cfg, tmp_path / "run", progress=False, log=_quiet)
    assert read_json(tmp_path / "run" / "metrics.json")["label_map"] == list(original)
    out = Predictor.from_run(tmp_path / "run", model="fmlp-s").predict(run["data"])
    assert torch.equal(out.label, torch.tensor(original)[out.pred])
    out.write_csv(tmp_path / "p.csv")
    header, first = (tmp_path / "p.csv").read_text().splitlines()[:2]
    assert header.split(",")[:3] == ["node", "predicted_class", "predicted_label"]
    assert int(first.split(",")[2]) == original[int(first.split(",")[1])]
