"""The model contract: what every teacher and every student promises, whatever its maths.

Every model is built by name through the public registry
(``framekd.models.build_teacher`` / ``build_student``) and checked for the same things:
``reset_parameters()`` redraws every parameter and is reproducible under
``torch.manual_seed``; ``repr`` names the class; ``.to(torch.float64)`` moves every
parameter; the output shape; invariance to the order of the edges; the same output for
the same seed; and, through a small :func:`framekd.experiment.run_experiment`, that a
saved model (:func:`framekd.experiment.load_trained`) gives back what the run recorded.

Teachers are called as ``model(x, edge_index)``, students as ``model(x, knowledge)`` with
knowledge ``[C, K, N, width]`` from :func:`framekd.knowledge.graph_knowledge`.
"""

from __future__ import annotations

import pytest
import torch

from framekd.config import resolve
from framekd.data import load_dataset
from framekd.distill import accuracy
from framekd.experiment import compute_knowledge, load_trained, run_experiment
from framekd.io import load_tensors
from framekd.knowledge import graph_knowledge
from framekd.models import build_student, build_teacher

GRAPH = "csbm:n=60,c=3,d=4,h=0.3,f=8,seed=1"
TEACHERS = ("spatial", "simplified", "spectral", "gcn", "sage", "gat")
STUDENTS = ("mlp", "fmlp-s", "fmlp-o")
MODELS = [("teacher", n) for n in TEACHERS] + [("student", n) for n in STUDENTS]
IDS = [name for _, name in MODELS]
CLASSES = {"spatial": "SpatialFramelet", "simplified": "SimplifiedFramelet",
           "spectral": "SpectralFramelet", "gcn": "GCN",
           "sage": "GraphSAGE", "gat": "GAT", "mlp": "MLP", "fmlp-s": "FMLPS",
           "fmlp-o": "FMLPO"}
# Dropout 0.5 everywhere, so the train-mode checks see random masks.
TEACHER_OPTIONS = {
    "spatial": {"hidden_channels": 8, "dropout": 0.5},
    "simplified": {"dropout": 0.5},
    "spectral": {"hidden_channels": 8, "dropout": 0.5, "smooth": "low"},
    "gcn": {"hidden_channels": 8, "dropout": 0.5},
    "sage": {"hidden_channels": 8, "dropout": 0.5},
    "gat": {"hidden_channels": 8, "heads": 2, "dropout": 0.5},
}
STUDENT_OPTIONS = {"hidden_channels": 8, "dropout": 0.5}
# Sums taken in another order (edges permuted) differ by float32 rounding, ~1e-7 here.
ORDER_TOL = {"rtol": 1e-5, "atol": 1e-5}


@pytest.fixture(scope="module")
def graph():
    """The tiny generated graph and its sketch knowledge ``[2, 2, 60, 16]``."""
    data = load_dataset(GRAPH)
    knowledge = graph_knowledge(data.edge_index, data.num_nodes, mode="sketch", sketch_dim=16,
                                powers=2)
    return data, knowledge


def build(role: str, name: str, data, knowledge, seed: int = 0) -> torch.nn.Module:
    """Model ``name`` for ``data``, its parameters drawn under ``torch.manual_seed(seed)``."""
    torch.manual_seed(seed)
    d, c = data.num_features, int(data.num_classes)
    if role == "teacher":
        return build_teacher(name, d, c, **TEACHER_OPTIONS[name])
    return build_student(name, d, c, knowledge_shape=tuple(knowledge.shape), **STUDENT_OPTIONS)


def logits(role: str, model, x, edge_index, knowledge) -> torch.Tensor:
    """The model's logits: teachers read the edges, students the knowledge."""
    if role == "teacher":
        return model(x, edge_index)
    return model(x, knowledge).logits


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A copy of every parameter, by name."""
    return {k: p.detach().clone() for k, p in model.named_parameters()}


@pytest.mark.parametrize(("role", "name"), MODELS, ids=IDS)
def test_repr_names_the_class(graph, role, name):
    model = build(role, name, *graph)
    assert type(model).__name__ == CLASSES[name]
    assert repr(model).startswith(f"{CLASSES[name]}(")


@pytest.mark.parametrize(("role", "name"), MODELS, ids=IDS)
def test_output_shape(graph, role, name):
    data, knowledge = graph
    model = build(role, name, data, knowledge).eval()
    n, c = data.num_nodes, int(data.num_classes)
    with torch.no_grad():
        if role == "teacher":
            out = model(data.x, data.edge_index)
        else:
            out, gates = model(data.x, knowledge)
            channels, powers = knowledge.shape[0], knowledge.shape[1]
            expected = {"mlp": None, "fmlp-s": (n, channels), "fmlp-o": (powers, n, channels)}
            assert (None if gates is None else tuple(gates.shape)) == expected[name]
    assert out.shape == (n, c) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


@pytest.mark.parametrize(("role", "name"), MODELS, ids=IDS)
def test_reset_parameters_redraws_every_parameter_reproducibly(graph, role, name):
    model = build(role, name, *graph)
    built = snapshot(model)
    with torch.no_grad():  # a sentinel no initialiser draws: whatever keeps it was not reset
        for p in model.parameters():
            p.fill_(7.0)
    torch.manual_seed(1)
    model.reset_parameters()
    first = snapshot(model)
    untouched = [k for k, p in first.items() if bool((p == 7.0).all())]
    assert untouched == []
    torch.manual_seed(1)
    model.reset_parameters()
    second = snapshot(model)
    for key in first:
        # exact: same code path (reset_parameters) from the same torch.manual_seed.
        assert torch.equal(first[key], second[key]), key
    # Another seed than the one the model was built with: every random tensor changes.
    drawn = [k for k, p in built.items() if p.unique().numel() > 1]
    assert drawn
    assert [k for k in drawn if torch.allclose(built[k], first[k])] == []


@pytest.mark.parametrize(("role", "name"), MODELS, ids=IDS)
def test_to_float64_moves_every_parameter(graph, role, name):
    data, knowledge = graph
    model = build(role, name, data, knowledge).to(torch.float64).eval()
    assert {p.dtype for p in model.parameters()} == {torch.float64}
    assert {b.dtype for b in model.buffers() if b.is_floating_point()} <= {torch.float64}
    with torch.no_grad():
        out = logits(role, model, data.x.double(), data.edge_index, knowledge.double())
    assert out.dtype == torch.float64 and torch.isfinite(out).all()


@pytest.mark.parametrize(("role", "name"), MODELS, ids=IDS)
def test_same_seed_same_output(graph, role, name):
    data, knowledge = graph
    outs = []
    for seed in (3, 3, 4):
        model = build(role, name, data, knowledge, seed=seed).train()
        torch.manual_seed(5)  # the dropout masks
        outs.append(logits(role, model, data.x, data.edge_index, knowledge).detach())
    # exact: same code path, same seeds for the parameters and the dropout masks.
    assert torch.equal(outs[0], outs[1])
    assert not torch.allclose(outs[0], outs[2])


@pytest.mark.parametrize(("role", "name"), MODELS, ids=IDS)
def test_invariant_to_edge_order(graph, role, name):
    data, knowledge = graph
    perm = torch.randperm(data.edge_index.size(1), generator=torch.Generator().manual_seed(0))
    shuffled = data.edge_index[:, perm]
    assert shuffled.tolist() != data.edge_index.tolist()
    model = build(role, name, data, knowledge).eval()
    # A second model with the same weights, so no operator cached for one edge order is
    # reused for the other.
    twin = build(role, name, data, knowledge, seed=1).eval()
    twin.load_state_dict(model.state_dict())
    if role == "student":  # the edges reach a student through its knowledge
        shuffled_knowledge = graph_knowledge(shuffled, data.num_nodes, mode="sketch",
                                             sketch_dim=16, powers=2)
        torch.testing.assert_close(shuffled_knowledge, knowledge, **ORDER_TOL)
    else:
        shuffled_knowledge = knowledge
    with torch.no_grad():
        a = logits(role, model, data.x, data.edge_index, knowledge)
        b = logits(role, twin, data.x, shuffled, shuffled_knowledge)
    torch.testing.assert_close(b, a, **ORDER_TOL)


# ----------------------------------------------------------------------------- save / load

FAST = [
    "teacher.epochs=6", "teacher.patience=6", "teacher.hidden=8",
    "student.epochs=6", "student.patience=6", "student.hidden=8",
    "knowledge.sketch_dim=16", "framelet.order=4",
]
SAVED = ("spatial", "simplified", "spectral", "gcn", "sage", "gat", "mlp", "glnn", "fmlp-s",
         "fmlp-o")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """One seed of every teacher and student on the tiny graph, written to disk."""
    tmp = tmp_path_factory.mktemp("contract")
    cfg = resolve(GRAPH, flags={"seeds": 1, "baselines": list(TEACHERS),
                                "student": {"names": list(STUDENTS)}}, overrides=FAST)
    out, cache = tmp / "run", tmp / "cache"
    metrics = run_experiment(cfg, out, progress=False, cache_dir=cache, log=lambda m: None)
    return cfg, out, cache, metrics


def test_the_run_saved_every_model(trained_run):
    _, out, _, metrics = trained_run
    assert set(metrics["models"]) == set(SAVED)
    assert {p.stem for p in (out / "seed_0").glob("*.safetensors")} >= set(SAVED)


@pytest.mark.parametrize("name", SAVED)
def test_saved_model_gives_the_recorded_accuracy(trained_run, name):
    cfg, out, cache, metrics = trained_run
    data = load_dataset(GRAPH)
    test_nodes = load_tensors(out / "seed_0" / "split.safetensors")["test"]
    model = load_trained(out, 0, name).eval()
    with torch.no_grad():
        if name in TEACHERS:
            out_logits = model(data.x, data.edge_index)
        else:
            knowledge = None
            if name not in ("mlp", "glnn"):  # as the run computed it (from its cache)
                knowledge, _ = compute_knowledge(data, cfg, cache_dir=cache,
                                                 device=torch.device("cpu"))
            out_logits, gates = model(data.x, knowledge)
    # The accuracy is a count over the same weights, graph and nodes: recorded exactly.
    assert accuracy(out_logits, data.y, test_nodes) == metrics["models"][name]["accuracy"][0]
    seed_dir = out / "seed_0"
    if name == cfg["teacher"]["name"]:
        # The run saved this teacher's log-probabilities; the reloaded model rebuilds its
        # framelet operators, so allow float32 rounding (1e-5) rather than bit equality.
        saved = load_tensors(seed_dir / "teacher_logp.safetensors")["log_probs"]
        torch.testing.assert_close(torch.log_softmax(out_logits, -1), saved,
                                   rtol=1e-5, atol=1e-5)
    if name in ("fmlp-s", "fmlp-o"):
        saved = load_tensors(seed_dir / "gates.safetensors")[name]
        torch.testing.assert_close(gates, saved, rtol=1e-5, atol=1e-5)
