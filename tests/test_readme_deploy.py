"""README's "Deploy a student" walkthrough runs as written: the commands between
``<!-- deploy:start -->`` and ``<!-- deploy:end -->`` are run by bash in an empty folder with
the installed ``framekd`` command (train, export, predict for new nodes), and what they
write is checked, including the exported ONNX model fed with the new nodes' knowledge rows."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- deploy:start -->", "<!-- deploy:end -->"
#: Probabilities in the CSV (9 significant digits) against onnxruntime's float32 logits.
ATOL = 1e-5


def walkthrough() -> str:
    """The bash block between the deploy markers of README.md."""
    text = README.read_text(encoding="utf-8")
    assert text.count(START) == 1 and text.count(END) == 1, "README needs one pair of markers"
    block = text.split(START, 1)[1].split(END, 1)[0]
    match = re.search(r"```bash\n(.*?)```", block, re.S)
    assert match, "the deploy markers must enclose a ```bash block"
    return match.group(1)


def commands(script: str) -> list[str]:
    """Top-level commands of ``script`` (a here-document's body belongs to its command)."""
    out, until = [], None
    for line in script.splitlines():
        if until is not None:
            until = None if line.strip() == until else until
            continue
        if line.strip() and not line.strip().startswith("#"):
            out.append(line)
            heredoc = re.search(r"<<-?\s*'?\"?(\w+)", line)
            until = heredoc.group(1) if heredoc else None
    return out


def test_walkthrough_has_under_five_commands():
    cmds = commands(walkthrough())
    assert 1 <= len(cmds) < 5, cmds
    assert [c.split()[:2] for c in cmds[1:]] == [["framekd", "run"], ["framekd", "export"],
                                                  ["framekd", "predict"]]


def _bin(folder: Path) -> Path:
    """A folder with ``python`` (this interpreter) and ``framekd`` (the installed console
    script beside it, else ``python -m framekd``)."""
    folder.mkdir()
    script = Path(sys.executable).parent / "framekd"
    framekd = f'exec "{script}" "$@"' if script.is_file() else \
        f'exec "{sys.executable}" -m framekd "$@"'
    for name, body in (("python", f'exec "{sys.executable}" "$@"'), ("framekd", framekd)):
        path = folder / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return folder


@pytest.mark.slow
def test_readme_deploy_walkthrough_runs_end_to_end(tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from framekd import Predictor
    from framekd.data import load_dataset

    work = tmp_path / "work"
    work.mkdir()
    env = dict(os.environ, OMP_NUM_THREADS="1", FRAMEKD_CACHE=str(tmp_path / "cache"),
               PATH=f"{_bin(tmp_path / 'bin')}{os.pathsep}{os.environ.get('PATH', '')}")
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", walkthrough()], cwd=work, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"

    # predict: one line per new node, with probabilities and FMLP-O's gates.
    lines = (work / "new_nodes.csv").read_text().strip().splitlines()
    header = lines[0].split(",")
    gates = [f"gate_k{k}_c{c}" for k in range(2) for c in range(2)]
    assert header == ["node", "predicted_class", "prob_0", "prob_1", "prob_2", *gates]
    rows = np.array([[float(v) for v in line.split(",")] for line in lines[1:]])
    assert rows[:, 0].tolist() == list(range(300, 310))
    np.testing.assert_allclose(rows[:, 2:5].sum(1), 1.0, atol=ATOL)
    assert "wrote new_nodes.csv" in done.stdout and "10 new" in done.stdout

    # export: the ONNX student fed with the new nodes' rows gives the CSV's probabilities.
    onnx_file = work / "runs/graph/export/fmlp-o-seed0/fmlp-o.onnx"
    assert (onnx_file.parent / "manifest.json").is_file()
    p = Predictor.from_run(work / "runs/graph", model="fmlp-o",
                           cache_dir=tmp_path / "cache" / "artifacts")
    graph = p.prepare(load_dataset(str(work / "graph_new")))
    nodes = torch.arange(300, 310)
    knowledge, _ = p.knowledge(graph, nodes)
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    logits, onnx_gates = session.run(None, {"x": graph.x[nodes].numpy(),
                                            "knowledge": knowledge.numpy()})
    probs = torch.softmax(torch.from_numpy(logits), -1).numpy()
    np.testing.assert_allclose(probs, rows[:, 2:5], atol=ATOL)
    assert rows[:, 1].tolist() == probs.argmax(1).tolist()
    np.testing.assert_allclose(onnx_gates.transpose(1, 0, 2).reshape(10, 4), rows[:, 5:],
                               atol=ATOL)
