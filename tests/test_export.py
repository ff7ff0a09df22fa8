"""`framekd export`: ONNX / .pt2 parity with PyTorch at two batch sizes, the manifest, int8
quantisation and the command line's errors (one tiny run, built once for the module)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from framekd.cli import main  # noqa: E402
from framekd.config import resolve  # noqa: E402
from framekd.data import csbm  # noqa: E402
from framekd.errors import ExportError, FramekdError  # noqa: E402
from framekd.experiment import (  # noqa: E402
    compute_knowledge,
    load_trained,
    prepare_graph,
    run_experiment,
)
from framekd.export import export_student  # noqa: E402
from framekd.io import load_tensors, read_json  # noqa: E402
from helpers import bag_of_words  # noqa: E402

SPEC = "csbm:n=120,c=3,d=6,h=0.3,f=8,seed=0"
OVERRIDES = ["teacher.epochs=5", "student.epochs=5", "teacher.patience=5", "student.patience=5",
             "knowledge.sketch_dim=16", "baselines=[]",
             "student.names=[mlp,fmlp-s,fmlp-o,fmlp-c]"]
MODELS = ("fmlp-s", "fmlp-o", "fmlp-c", "mlp", "glnn")
GATED = ("fmlp-s", "fmlp-o")
ATOL = 1e-5


def _quiet(msg: str) -> None:
    pass


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished one-seed run, its graph, knowledge and test split, and every model exported
    (ONNX + .pt2; fmlp-s also int8)."""
    root = tmp_path_factory.mktemp("export")
    cfg = resolve(SPEC, flags={"seeds": 1}, overrides=OVERRIDES)
    run_experiment(cfg, root / "run", progress=False, log=_quiet)
    data, _ = prepare_graph(cfg, log=_quiet)
    knowledge, _ = compute_knowledge(data, cfg, cache_dir=None, device=torch.device("cpu"))
    test = load_tensors(root / "run" / "seed_0" / "split.safetensors")["test"]
    exports = {
        name: export_student(root / "run", model=name, out_dir=root / "out" / name,
                             formats=("onnx", "pt2"), quantize=name == "fmlp-s")
        for name in MODELS
    }
    return {"dir": root / "run", "root": root, "data": data, "knowledge": knowledge,
            "test": test, "exports": exports}


def _inputs(run, name, index):
    x = run["data"].x[index]
    k = None if name in ("mlp", "glnn") else run["knowledge"][:, :, index]
    return x, k


def _reference(run, name, x, k):
    model = load_trained(run["dir"], 0, name).eval()
    with torch.no_grad():
        out = model(x, k)
    return out.logits.numpy(), None if out.gates is None else out.gates.numpy()


@pytest.mark.parametrize("name", MODELS)
def test_onnx_matches_pytorch_in_onnxruntime_at_two_batch_sizes(run, name):
    path = run["exports"][name]["files"]["onnx"]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    uses_knowledge, gated = name.startswith("fmlp"), name in GATED
    assert [i.name for i in session.get_inputs()] == (["x", "knowledge"] if uses_knowledge
                                                       else ["x"])
    assert [o.name for o in session.get_outputs()] == (["logits", "gates"] if gated
                                                        else ["logits"])
    test = run["test"]
    for index in (test[:5], test[5:22]):  # batch sizes 5 and 17: the batch axis is dynamic
        x, k = _inputs(run, name, index)
        feeds = {"x": x.numpy()} | ({"knowledge": k.numpy()} if uses_knowledge else {})
        outs = session.run(None, feeds)
        logits, gates = _reference(run, name, x, k)
        assert outs[0].shape == logits.shape == (len(index), 3)
        assert np.abs(outs[0] - logits).max() <= ATOL
        assert (gates is None) == (not gated)
        if gated:
            assert outs[1].shape == gates.shape
            assert np.abs(outs[1] - gates).max() <= ATOL
    parity = run["exports"][name]["manifest"]["parity"]["onnx"]
    assert parity["max_abs_logits"] <= ATOL and parity["provider"] == "CPUExecutionProvider"
    assert len(parity["batch_sizes"]) == 2 and parity["nodes"] == len(test)
    assert (parity["max_abs_gates"] is None) == (not gated)


@pytest.mark.parametrize("name", ["fmlp-s", "fmlp-o", "fmlp-c", "glnn"])
def test_onnx_graph_is_valid_with_a_symbolic_batch_axis(run, name):
    path = run["exports"][name]["files"]["onnx"]
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert {o.version for o in model.opset_import if o.domain in ("", "ai.onnx")} == {18}
    dims = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in [*model.graph.input, *model.graph.output]}
    assert dims["x"] == ["B", 8] and dims["logits"] == ["B", 3]
    if name == "fmlp-s":
        assert dims["knowledge"] == [2, 2, "B", 8] and dims["gates"] == ["B", 2]
    if name == "fmlp-o":
        assert dims["gates"] == [2, "B", 2]
    if name == "fmlp-c":
        assert dims["knowledge"] == [2, 2, "B", 8] and "gates" not in dims
    props = {p.key: p.value for p in model.metadata_props}
    assert props["framekd.model"] == name and props["framekd.dataset"] == SPEC


@pytest.mark.parametrize("name", MODELS)
def test_pt2_reloads_and_matches(run, name):
    path = run["exports"][name]["files"]["pt2"]
    module = torch.export.load(str(path)).module()
    for index in (run["test"][:4], run["test"][4:15]):
        x, k = _inputs(run, name, index)
        with torch.no_grad():
            out = module(x) if k is None else module(x, k)
        logits, gates = _reference(run, name, x, k)
        got = out[0] if name in GATED else out
        assert np.abs(got.numpy() - logits).max() <= ATOL
        if name in GATED:
            assert np.abs(out[1].numpy() - gates).max() <= ATOL
    assert run["exports"][name]["manifest"]["parity"]["pt2"]["max_abs_logits"] <= ATOL


def _sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("name", ["fmlp-s", "glnn"])
def test_manifest_checksums_opset_settings_and_accuracy(run, name):
    result = run["exports"][name]
    manifest = read_json(result["manifest_path"])
    assert manifest == json.loads(json.dumps(result["manifest"]))  # what was returned
    out = result["manifest_path"].parent
    assert set(manifest["files"]) == {p.name for p in result["files"].values()}
    for fname, entry in manifest["files"].items():
        assert entry["sha256"] == _sha256(out / fname)
        assert entry["bytes"] == (out / fname).stat().st_size
    source = manifest["source"]
    assert source["weights_sha256"] == _sha256(run["dir"] / "seed_0" / f"{name}.safetensors")
    assert source["config_sha256"] == _sha256(run["dir"] / "config.yaml")
    assert manifest["onnx"]["opset"] == 18
    assert manifest["dataset"] == SPEC and manifest["seed"] == 0
    assert manifest["model"]["name"] == name
    assert manifest["model"]["class"] == ("FMLPS" if name == "fmlp-s" else "MLP")
    assert manifest["settings"]["student"]["epochs"] == 5  # config.yaml's content
    assert manifest["framekd"]["version"]
    seed_acc = read_json(run["dir"] / "seed_0" / "metrics.json")["models"][name]["accuracy"]
    assert manifest["metrics"]["accuracy"] == seed_acc
    acc = manifest["accuracy"]
    assert acc["test_nodes"] == len(run["test"])
    assert acc["pytorch"] == pytest.approx(seed_acc, abs=1e-6)
    assert acc["onnx"] == pytest.approx(acc["pytorch"])
    names = [i["name"] for i in manifest["interface"]["inputs"]]
    if name == "fmlp-s":
        assert names == ["x", "knowledge"]
        k = manifest["knowledge"]
        assert (k["channels"], k["powers"], k["width"], k["mode"]) == (2, 2, 8, "features")
        assert k["framelet"]["filters"] == "haar"
    else:
        assert names == ["x"] and manifest["knowledge"] is None


def test_quantize_writes_int8_model_and_records_the_accuracy_change(run):
    result = run["exports"]["fmlp-s"]
    path = result["files"]["onnx_int8"]
    assert path.name == "fmlp-s.int8.onnx" and path.is_file()
    q = result["manifest"]["quantization"]
    assert q["file"] == path.name and q["weight_type"] == "QInt8"
    assert q["accuracy_change"] == pytest.approx(q["accuracy_int8_onnx"] - q["accuracy_fp32_onnx"])
    assert q["bytes_int8"] < q["bytes_fp32"]
    model = onnx.load(str(path))
    assert any(n.op_type in ("MatMulInteger", "DynamicQuantizeLinear") for n in model.graph.node)
    # The recorded int8 accuracy is what onnxruntime gives on the test nodes.
    x, k = _inputs(run, "fmlp-s", run["test"])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"x": x.numpy(), "knowledge": k.numpy()})[0]
    y = run["data"].y[run["test"]].numpy()
    assert q["accuracy_int8_onnx"] == pytest.approx(float(np.mean(logits.argmax(1) == y)))
    assert run["exports"]["glnn"]["manifest"]["quantization"] is None


def test_parity_failure_raises_and_writes_nothing(run, monkeypatch):
    import framekd.export.pipeline as ex  # where export_student looks _run_onnx up

    real = ex._run_onnx

    def off(path, feeds):
        runs, sizes = real(path, feeds)
        return [(lo + 1e-3, ga) for lo, ga in runs], sizes

    monkeypatch.setattr(ex, "_run_onnx", off)
    out = run["root"] / "failed"
    with pytest.raises(ExportError, match="does not reproduce"):
        export_student(run["dir"], model="glnn", out_dir=out)
    assert list(out.iterdir()) == []


def test_sparse_features_export_through_the_dense_path(tmp_path):
    """Bag-of-words features make the students multiply sparse CSR batches in PyTorch; the
    exported graph takes dense x and gives the same logits."""
    data = csbm(num_nodes=120, num_classes=3, avg_degree=6.0, homophily=0.3, num_features=40,
                seed=0)
    data.x = bag_of_words(120, 40, 0.03, seed=1)
    cfg = resolve(SPEC, flags={"seeds": 1}, overrides=[*OVERRIDES, "student.names=[fmlp-s]"])
    run_experiment(cfg, tmp_path / "run", data=data, progress=False, log=_quiet)
    result = export_student(tmp_path / "run", model="fmlp-s", out_dir=tmp_path / "out",
                            formats=("onnx",), data=data)
    assert result["manifest"]["parity"]["onnx"]["max_abs_logits"] <= ATOL
    assert result["manifest"]["parity"]["onnx"]["nodes"] >= 64  # sparse path in PyTorch


def test_cli_writes_files_and_prints_one_line_each(run, capsys):
    out = run["root"] / "cli"
    code = main(["export", "--run", str(run["dir"]), "--model", "glnn", "--format", "onnx,pt2",
                 "--out", str(out)])
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[1] for line in lines] == [str(out / "glnn.onnx"), str(out / "glnn.pt2"),
                                                   str(out / "manifest.json")]
    assert "opset 18" in lines[0] and "|Δlogits|" in lines[0] and "|Δlogits|" in lines[1]


@pytest.mark.parametrize("argv, message", [
    (["--run", "{missing}"], "is not a framekd run"),
    (["--model", "fmlp-x"], "unknown model 'fmlp-x'"),
    (["--model", "spectral"], "is a teacher"),
    (["--seed", "3"], "seed 3 of"),
    (["--format", "onnx,tflite"], "unknown export format"),
    (["--format", "pt2", "--quantize"], "add the onnx format"),
    (["--opset", "3"], "opset must be"),
])
def test_cli_user_errors_exit_2_with_one_line(run, capsys, argv, message):
    argv = [a.replace("{missing}", str(run["root"] / "nope")) for a in argv]
    if "--run" not in argv:
        argv = ["--run", str(run["dir"]), *argv]
    assert main(["export", *argv, "--out", str(run["root"] / "err")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("framekd export: error:") and message in err[0]
    assert not (run["root"] / "err").exists() or not any((run["root"] / "err").iterdir())


def test_missing_model_in_the_run_is_an_export_error(run, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run["dir"], copy)
    (copy / "seed_0" / "fmlp-o.safetensors").unlink()
    with pytest.raises(ExportError, match="no trained 'fmlp-o'") as info:
        export_student(copy, model="fmlp-o", out_dir=tmp_path / "out")
    assert isinstance(info.value, FramekdError)


def test_cli_constants_agree_with_the_module():
    import framekd.cli.export as cli
    import framekd.export as ex

    assert (cli.DEFAULT_OPSET, cli.EXPORTABLE, cli.FORMATS) == (
        ex.DEFAULT_OPSET, ex.EXPORTABLE, ex.FORMATS)
