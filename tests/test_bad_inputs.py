"""Bad inputs (issue #16 "Hardening"): every user mistake ends in one readable line.

From the command line: exit status 2 and exactly one line on stderr,
``framekd <command>: error: <what, where, how to fix>``, never a traceback, never a run that
"succeeds" with NaN. Through the API: the package's own exception type. Graphs are tiny and
training runs take two epochs, so the whole file stays fast.
"""

from __future__ import annotations

import io
import math
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch_geometric.data import Data

from framekd.cli import main, make_log, show_progress
from framekd.errors import (
    ConfigError,
    FramekdError,
    GraphError,
    SplitError,
    TrainingError,
)

TINY = "csbm:n=60,c=3,f=8,seed=0"
FAST = ["--set", "teacher.epochs=2", "--set", "student.epochs=2", "--set", "baselines=[]",
        "--set", "student.names=[mlp]"]

# A valid 12-node graph directory (symmetric edges, so loading it warns about nothing).
N = 12
PAIRS = [(i, (i + 1) % N) for i in range(N)] + [(i, (i + 3) % N) for i in range(0, N, 2)]
EDGES = "src,dst\n" + "".join(f"{a},{b}\n{b},{a}\n" for a, b in PAIRS)
LABELS = "label\n" + "".join(f"{i % 3}\n" for i in range(N))


def graph_dir(tmp_path: Path, *, edges: str | bytes = EDGES, labels: str | bytes = LABELS,
              features: np.ndarray | bytes | None = None, features_csv: str | None = None,
              splits: dict | bytes | None = None, name: str = "g") -> Path:
    """Write a user graph folder; each file can be replaced by a broken one."""
    folder = tmp_path / name
    folder.mkdir(parents=True, exist_ok=True)
    for file, body in (("edges.csv", edges), ("labels.csv", labels)):
        (folder / file).write_bytes(body if isinstance(body, bytes) else body.encode())
    if features_csv is not None:
        (folder / "features.csv").write_text(features_csv)
    elif isinstance(features, bytes):
        (folder / "features.npy").write_bytes(features)
    else:
        rng = np.random.default_rng(0)
        np.save(folder / "features.npy", rng.normal(size=(N, 3)) if features is None else features)
    if isinstance(splits, bytes):
        (folder / "splits.npz").write_bytes(splits)
    elif splits is not None:
        np.savez(folder / "splits.npz", **splits)
    return folder


def _npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _features(value: float, row: int = 5, col: int = 1) -> np.ndarray:
    x = np.ones((N, 3))
    x[row, col] = value
    return x


def _masks(s: int = 2) -> dict:
    train = np.zeros((s, N), bool)
    val, test = train.copy(), train.copy()
    train[:, :6], val[:, 6:9], test[:, 9:] = True, True, True
    return {"train": train, "val": val, "test": test}


def _overlapping() -> dict:
    m = _masks()
    m["test"][1, 0] = True  # node 0 is in train and test in split 1
    return m


# ------------------------------------------------------------------ the command-line cases
# Each case: (id, a function of tmp_path returning argv or (argv, env), the regex the one error
# line must match[, marks]).

def _run(*extra: str):
    return lambda tmp: ["run", "--dataset", TINY, "--seeds", "1", "--quiet",
                        "--out", str(tmp / "out"), *FAST, *extra]


def _run_dir(**files):
    return lambda tmp: ["run", "--dataset", str(graph_dir(tmp, **files)), "--seeds", "1",
                        "--quiet", "--out", str(tmp / "out"), *FAST]


def _datasets(**files):
    return lambda tmp: ["datasets", str(graph_dir(tmp, **files))]


def _analyze(*extra: str):
    return lambda tmp: ["analyze", "--quick", "--seeds", "1", "--out", str(tmp / "an"), *extra]


def _file(tmp: Path) -> Path:
    path = tmp / "a_file"
    path.write_text("not a folder\n")
    return path


CASES = [
    # 1. training that diverges: a clear error naming the setting, no NaN table
    ("teacher-lr-inf", _run("--set", "teacher.lr=.inf"),
     r"teacher \w+: the training .* at epoch 1; lower teacher\.lr \(now inf\)"),
    ("student-lr-inf", _run("--set", "student.lr=.inf"),
     r"student MLP: the training .* at epoch 1; lower student\.lr \(now inf\)"),
    ("teacher-epsilon-1.0e+30", _run("--set", "teacher.epsilon=1.0e+30"),
     r"before any update .* lower \|teacher\.epsilon\| \(now 1e\+30\)"),
    ("teacher-epsilon-1e30", _run("--set", "teacher.epsilon=1e30"),
     r"lower \|teacher\.epsilon\| \(now 1e\+30\)"),
    ("gcn-teacher-epsilon-student", _run("--set", "teacher.name=gcn",
                                         "--set", "student.names=[fmlp-s]",
                                         "--set", "teacher.epsilon=1e30"),
     r"student training: the graph knowledge contains NaN or Inf.*teacher\.epsilon"),
    # 3. tracebacks that became one line
    ("out-is-a-file", lambda tmp: _run()(tmp) + ["--out", str(_file(tmp))],
     r"--out .*a_file is a file; give a folder path"),
    ("out-under-a-file",
     lambda tmp: _run()(tmp) + ["--out", str(_file(tmp) / "sub")],
     r"--out .*a_file/sub needs a folder where the file .*a_file is"),
    ("device-banana", _run("--device", "banana"),
     r"device 'banana' \(from --device\) is not a device; use cpu, cuda"),
    ("set-device-banana", _run("--set", "device=banana"),
     r"device 'banana' \(from --set\) is not a device"),
    ("device-cuda-without-cuda", _run("--device", "cuda"),
     r"device 'cuda' \(from --device\): CUDA is not available",
     pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")),
    ("student-dropout-abc", _run("--set", "student.dropout=abc"),
     r"student\.dropout must be a number, got 'abc'"),
    ("student-dropout-empty", _run("--set", "student.dropout="),
     r"--set student\.dropout=: the value is empty"),
    ("student-lam-abc", _run("--set", "student.lam=abc"), r"student\.lam must be a number"),
    ("teacher-weight-decay-abc", _run("--set", "teacher.weight_decay=abc"),
     r"teacher\.weight_decay must be a number"),
    ("baselines-5", _run("--set", "baselines=5"), r"baselines must be a list"),
    ("baselines-foo", _run("--set", "baselines=foo"), r"baselines must be a list .*'foo'"),
    ("rewire-iterations-abc", _run("--set", "rewire.method=sdrf", "--set", "rewire.tau=1",
                                   "--set", "rewire.iterations=abc"),
     r"iterations must be an integer"),
    ("teacher-lr-nan", _run("--set", "teacher.lr=.nan"), r"teacher\.lr must be positive"),
    ("set-without-equals", _run("--set", "teacher.lr"), r"--set expects key=value"),
    ("cache-is-a-file", lambda tmp: (_run()(tmp), {"FRAMEKD_CACHE": str(_file(tmp))}),
     r"FRAMEKD_CACHE=.*a_file is a file, not a folder"),
    ("cache-under-a-file",
     lambda tmp: (_run()(tmp), {"FRAMEKD_CACHE": str(_file(tmp) / "cache")}),
     r"FRAMEKD_CACHE=.*a_file/cache lies under .*a_file, which is a file"),
    ("analyze-depths-abc", _analyze("--dataset", TINY, "--depths", "abc"),
     r"--depths expects comma-separated positive integers such as 2,4,6, got 'abc'"),
    ("analyze-depths-zero", _analyze("--dataset", TINY, "--depths", "2,0"),
     r"--depths expects .* got '2,0'"),
    ("demo-seeds-zero", lambda tmp: ["demo", "--seeds", "0"], r"--seeds must be >= 1"),
    ("rewire-out-is-a-file",
     lambda tmp: ["rewire", "--dataset", TINY, "--iterations", "1", "--tau", "1",
                  "--out", str(_file(tmp))],
     r"--out .*a_file is a file"),
    # 4. accepted without a word before
    ("csbm-duplicate-key", lambda tmp: ["datasets", "csbm:n=60,n=80"],
     r"csbm option n is given twice in 'csbm:n=60,n=80'"),
    ("csbm-duplicate-alias", _run("--dataset", "csbm:n=60,num_nodes=80"),
     r"csbm option num_nodes is given twice"),
    ("csbm-negative-seed", lambda tmp: ["datasets", "csbm:n=60,seed=-1"],
     r"csbm seed must be an integer >= 0"),
    ("csbm-sweep-with-h", _analyze("--csbm-sweep", "csbm:n=60,h=0.3", "--no-geometry"),
     r"the sweep sets h per level .* so h=0\.3 would be ignored"),
    ("csbm-sweep-with-seed", _analyze("--csbm-sweep", "csbm:n=60,seed=4", "--no-geometry"),
     r"so seed=4 would be ignored"),
    ("csbm-sweep-not-csbm", _analyze("--csbm-sweep", "cora", "--no-geometry"),
     r"--csbm-sweep expects a csbm spec"),
    ("csbm-sweep-unknown-key", _analyze("--csbm-sweep", "csbm:n=60,q=2", "--no-geometry"),
     r"bad csbm option 'q=2'"),
    # 7. protocols
    ("protocol-random-two-ratios", _run("--set", "protocol=random:0.6,0.4"),
     r"protocol: protocol 'random:0\.6,0\.4' gives 2 ratio"),
    ("protocol-random-bad-sum", _run("--set", "protocol=random:0.6,0.3,0.3"),
     r"the ratios sum to 1\.2, not 1"),
    ("protocol-random-text", _run("--set", "protocol=random:a,b,c"), r"ratios are not numbers"),
    ("protocol-options-on-fgkd", _run("--set", "protocol=fgkd:1"),
     r"protocol 'fgkd' takes no options"),
    ("public-without-splits",
     lambda tmp: _run_dir()(tmp) + ["--set", "protocol=public"],
     r"protocol 'public' needs the dataset's shipped split, but g has none"),
    # 2. labels: named with their value and file line
    ("label-1e12", _datasets(labels=LABELS.replace("\n2\n", "\n1000000000000\n", 1)),
     r"label 1000000000000 on line 4 of .*labels\.csv \(node 2\): a class id above 1000000"),
    ("label-1e12-run", _run_dir(labels=LABELS.replace("\n2\n", "\n1000000000000\n", 1)),
     r"label 1000000000000 on line 4 of .*labels\.csv"),
    ("label-as-written", _datasets(labels=LABELS.replace("\n2\n", "\n1e20\n", 1)),
     r"label 1e20 on line 4 of"),
    ("labels-like-node-ids", _datasets(labels="label\n" + "".join(f"{3 * i}\n" for i in range(N))),
     r"12 distinct labels for 12 nodes, not numbered 0\.\.C-1 \(label 33 on line 13\)"),
    ("label-minus-3", _datasets(labels=LABELS.replace("\n1\n", "\n-3\n", 1)),
     r"label -3 on line 3 of .*labels\.csv \(node 1\): labels must be class ids 0\.\.C-1"),
    ("label-fraction", _datasets(labels=LABELS.replace("\n1\n", "\n1.5\n", 1)),
     r"label 1\.5 of node 1 \(line 3\) is not an integer"),
    ("label-count", _datasets(labels="label\n0\n1\n"),
     r"labels y have length 2 but the graph has 12 nodes \(rows of features\.npy\)"),
    ("label-text", _datasets(labels=LABELS.replace("\n1\n", "\ncat\n", 1)),
     r"cannot read labels: 'cat' on line 3 is not a number"),
    ("labels-not-utf8", _datasets(labels=LABELS.encode().replace(b"\n1\n", b"\n1\xfe\n", 1)),
     r"labels\.csv: line 3, column 2: byte 0xfe is not UTF-8 text"),
    # 5. edges: the id as written and its 1-based line (header counted)
    ("edge-1e20", _datasets(edges=EDGES.replace("0,1\n", "0,1e20\n", 1)),
     r"edges\.csv: node index 1e20 on line 2 is out of range: the graph has 12 nodes"),
    ("edge-inf", _datasets(edges=EDGES + "3,inf\n"),
     r"edges must be integer node indices, found 'inf' on line 38"),
    ("edge-negative", _datasets(edges=EDGES + "3,-2\n"), r"node index -2 on line 38"),
    ("edge-too-large", _datasets(edges=EDGES + "\n# a comment\n3,12\n"),
     r"node index 12 on line 40 is out of range: the graph has 12 nodes \(one per row of "
     r"features\.npy\), so indices are 0\.\.11"),
    ("edge-fraction", _datasets(edges=EDGES + "1.5,2\n"), r"found '1\.5' on line 38"),
    ("edge-text", _datasets(edges=EDGES + "3,x\n"), r"'x' on line 38 is not a number"),
    ("edge-ragged", _datasets(edges=EDGES + "3\n"),
     r"cannot read edges: line 38 has 1 column\(s\) but line 2 has 2"),
    ("edge-three-columns", _datasets(edges="0,1,1\n1,0,1\n"),
     r"edges must have exactly 2 columns \(src,dst\), found 3 on line 1"),
    ("edges-not-utf8", _datasets(edges=EDGES.encode().replace(b"1,2\n", b"1,2\xff\n", 1)),
     r"edges\.csv: line 4, column 4: byte 0xff is not UTF-8 text"),
    # 1. + 5. features
    ("features-no-columns", _datasets(features=np.ones((N, 0))),
     r"features\.npy: features x have 0 columns \(shape \[12, 0\]\)"),
    ("features-empty-file", _datasets(features=b""),
     r"features\.npy: not a plain numeric \.npy array \(the file is empty \(0 bytes\)\)"),
    ("features-npz", _datasets(features=_npz_bytes(x=np.ones((N, 3)))),
     r"features\.npy is an \.npz archive \(arrays: x\), not a \.npy array"),
    ("features-pickled", _datasets(features=np.array([{"a": 1}] * N, dtype=object)),
     r"features\.npy: not a plain numeric \.npy array"),
    ("features-nan", _datasets(features=_features(np.nan)),
     r"features\.npy: features x contain 1 non-finite values .* row 5, column 1 \(node 5\)"),
    ("features-overflow-float32", _datasets(features=_features(1e300)),
     r"first at row 5, column 1 \(node 5\); 1e\+300 does not fit in float32"),
    ("features-csv-inf", _datasets(features_csv="a,b\n" + "1,2\n" * 5 + "1,inf\n" + "1,2\n" * 6),
     r"features\.csv: .* first at line 7, column 1 \(node 5\)"),
    # 7. splits.npz
    ("splits-overlap", _datasets(splits=_overlapping()),
     r"splits\.npz: in split 1 \(row 1 of the \[S, N\] masks\), 1 node\(s\) are in both train "
     r"and test \(first: node 0\)"),
    ("splits-transposed", _datasets(splits={k: v.T.copy() for k, v in _masks(3).items()}),
     r"'train' has shape \[12, 3\] .* it looks transposed"),
    ("splits-missing-array", _datasets(splits={"train": _masks()["train"]}),
     r"splits\.npz must hold exactly the arrays train, val, test; found train"),
    ("splits-indices", _datasets(splits={"train": np.arange(N), "val": np.arange(N),
                                         "test": np.arange(N)}),
     r"'train' must be a boolean mask .* values other than 0/1 \(node indices\?"),
    ("splits-not-npz", _datasets(splits=b"this is no zip file"),
     r"splits\.npz is not a readable \.npz archive"),
    ("splits-empty-val", _datasets(splits={**_masks(), "val": np.zeros((2, N), bool)}),
     r"split 0 .* has an empty val set"),
]


@pytest.mark.parametrize(("make", "message"), [
    pytest.param(c[1], c[2], id=c[0], marks=c[3:]) for c in CASES
])
def test_cli_bad_input_exits_2_with_one_line(make, message, tmp_path, capsys, monkeypatch):
    made = make(tmp_path)
    argv, env = made if isinstance(made, tuple) else (made, {})
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    capsys.readouterr()
    status = main(argv)
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert status == 2, (out, err)
    assert len(lines) == 1, err
    assert lines[0].startswith(f"framekd {argv[0]}: error: ")
    assert "Traceback" not in err and "nan" not in out.lower()
    assert re.search(message, lines[0]), lines[0]


def test_every_case_has_a_distinct_id():
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 40


def test_a_failed_seed_writes_no_finished_seed(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(_run("--set", "teacher.lr=.inf")(tmp_path)) == 2
    assert not list(out.glob("seed_*/metrics.json")) and not (out / "metrics.json").exists()
    assert not list(out.glob("seed_*/CLAIM"))  # the claim is released


def test_unrelated_os_errors_keep_their_traceback(monkeypatch, tmp_path):
    """Only an OSError on a path the user gave becomes a one-line error; any other is a bug."""
    import framekd.cli.datasets as datasets_cli

    def broken(*args, **kwargs):
        raise PermissionError(13, "Permission denied", "/somewhere/internal")

    monkeypatch.setattr(datasets_cli, "_row", broken)
    with pytest.raises(PermissionError):
        main(["datasets", "csbm:n=60"])


# ------------------------------------------------------------------ the API cases


def _split(y: torch.Tensor, protocol: str = "fgkd"):
    from framekd.splits import make_split

    return make_split(Data(y=y, num_nodes=y.numel()), protocol, 0)


def _toy(n_per_class: int = 10):
    gen = torch.Generator().manual_seed(0)
    y = torch.arange(3).repeat_interleave(n_per_class)
    x = torch.randn(y.numel(), 4, generator=gen) + y[:, None].float()
    ei = torch.stack([torch.arange(y.numel()), torch.arange(y.numel()).roll(1)])
    data = Data(x=x, edge_index=torch.cat([ei, ei.flip(0)], 1), y=y)
    from types import SimpleNamespace

    idx = torch.arange(y.numel())
    split = SimpleNamespace(train=idx[::3], val=idx[1::3], test=idx[2::3])
    return data, split


class Linear(torch.nn.Module):
    """A teacher without a graph: ``forward(x, edge_index)``."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(4, 3)

    def forward(self, x, edge_index):
        return self.lin(x)


def _teacher(lr: float):
    from framekd.distill import train_teacher

    data, split = _toy()
    torch.manual_seed(0)
    return train_teacher(Linear(), data, split, lr=lr, epochs=3, patience=3)


def _student(knowledge=None, x_nan=False, logp_nan=False):
    from framekd.distill import distill_student
    from framekd.models import MLP

    data, split = _toy()
    if x_nan:
        data.x[3, 1] = float("nan")
    logp = torch.log_softmax(torch.randn(data.num_nodes, 3), -1)
    if logp_nan:
        logp[0, 0] = float("nan")
    return distill_student(MLP(4, 8, 3), data, knowledge, logp, split, epochs=2, patience=2)


def _canon(y):
    from framekd.graph import canonicalize

    return canonicalize(Data(x=torch.ones(4, 2), edge_index=torch.tensor([[0, 1], [1, 0]]),
                             y=torch.tensor(y)), warn=False)


def _protocol(text):
    from framekd.splits import parse_protocol

    return parse_protocol(text)


def _csbm(spec):
    from framekd.data import parse_csbm_spec

    return parse_csbm_spec(spec)


API_CASES = [
    ("teacher-lr-inf", lambda: _teacher(math.inf), TrainingError,
     r"teacher Linear: the training .* epoch 1; lower teacher\.lr \(now inf\)"),
    ("student-nan-knowledge", lambda: _student(knowledge=torch.full((2, 1, 30, 4), math.nan)),
     TrainingError, r"graph knowledge contains NaN or Inf"),
    ("student-nan-soft-labels", lambda: _student(logp_nan=True), TrainingError,
     r"soft labels contain NaN or Inf"),
    ("student-nan-features", lambda: _student(x_nan=True), GraphError,
     r"features x contain 1 non-finite .* node 3, column 1"),
    ("features-zero-columns",
     lambda: __import__("framekd.graph").graph.check_features(torch.ones(4, 0), 4),
     GraphError, r"features x have 0 columns"),
    ("label-beyond-node-count", lambda: _canon([0, 1, 0, 10**12]), GraphError,
     r"labels y has value 1000000000000 at node 3 but the graph has only 4 nodes"),
    ("split-huge-label-no-loop", lambda: _split(torch.tensor([0, 1] * 30 + [10**12])),
     SplitError, r"largest label is 1000000000000, .* number the classes 0\.\.C-1"),
    ("protocol-unknown", lambda: _protocol("bogus"), SplitError,
     r"unknown split protocol 'bogus'"),
    ("protocol-zero-ratio", lambda: _protocol("random:0.5,0.5,0"), SplitError,
     r"every ratio must lie in \(0, 1\)"),
    ("csbm-alias-twice", lambda: _csbm("csbm:h=0.2,homophily=0.3"), ConfigError,
     r"csbm option homophily is given twice"),
]


@pytest.mark.filterwarnings("ignore::framekd.errors.FramekdWarning")
@pytest.mark.parametrize(("call", "kind", "message"),
                         [pytest.param(*c[1:], id=c[0]) for c in API_CASES])
def test_api_bad_input_raises_the_package_error(call, kind, message):
    with pytest.raises(kind, match=message) as info:
        call()
    assert isinstance(info.value, FramekdError)
    assert "\n" not in str(info.value)


def test_many_absent_classes_make_one_short_note():
    """A label of 10**6 among 0..2 (via the API) neither loops nor floods the warning."""
    from framekd.splits import make_split

    y = torch.tensor([0, 1, 2] * 100 + [10**6])
    with pytest.warns(Warning) as record:
        split = make_split(Data(y=y, num_nodes=y.numel()), "cpf", 0)
    assert len(split.notes) == 2 and max(len(n) for n in split.notes) < 400
    assert "999997 classes (3-999999) have no labelled node" in split.notes[0]
    assert all(len(str(w.message)) < 1000 for w in record)


# ------------------------------------------------------------------ output hygiene


def test_quiet_log_keeps_framekd_notices(capsys):
    make_log(quiet=True)("  run sweep-1")
    make_log(quiet=True)("framekd: seed(s) 1 are being run by another process")
    make_log(quiet=False)("  run sweep-2")
    assert capsys.readouterr().out.splitlines() == [
        "framekd: seed(s) 1 are being run by another process", "  run sweep-2"]


def test_progress_only_on_a_terminal(monkeypatch):
    assert show_progress() is False  # pytest's capture is not a terminal
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert show_progress() is True and show_progress(quiet=True) is False


def test_demo_into_a_log_file_holds_no_bar_redraws(monkeypatch, tmp_path, capsys):
    import framekd.cli.demo as demo

    monkeypatch.setattr(demo, "GRAPHS", {"tiny": "csbm:n=60,c=3,f=8,seed=0"})
    monkeypatch.setattr(demo, "DEMO_SETTINGS", [
        "teacher.epochs=2", "student.epochs=2", "baselines=[]", "student.names=[mlp]"])
    assert main(["demo", "--seeds", "1", "--out", str(tmp_path / "d")]) == 0
    out, err = capsys.readouterr()
    assert "\r" not in out + err and "\x1b[" not in out + err
    assert "| mlp |" in out


def test_atomic_writes_get_the_usual_file_permissions(tmp_path):
    import os
    import stat

    from framekd.io import write_json

    write_json(tmp_path / "m.json", {"a": 1})
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE((tmp_path / "m.json").stat().st_mode) == 0o666 & ~mask
