"""Canonicalisation and input validation (issue 2 §3), through the public API."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_geometric.data import Data

from framekd import FramekdWarning, GraphError, SplitError, canonicalize
from framekd.cli import main
from framekd.data import load_graph_dir
from framekd.graph import graph_hash
from framekd.splits import make_split
from helpers import write_graph_dir


def _graph(edges, num_nodes=4, x=None, y=None) -> Data:
    edge_index = edges if isinstance(edges, torch.Tensor) else torch.tensor(edges).t()
    if x is None:
        x = torch.randn(num_nodes, 3)
    if y is None:
        y = torch.arange(num_nodes) % 2
    return Data(x=x, edge_index=edge_index, y=y, num_nodes=num_nodes)


# --- canonical form -------------------------------------------------------------------


def test_canonicalize_symmetrises_drops_loops_merges_duplicates():
    data = _graph([[0, 1], [0, 1], [1, 2], [2, 2], [3, 0]])
    with pytest.warns(FramekdWarning, match="directed"):
        out = canonicalize(data)
    expected = {(0, 1), (1, 0), (1, 2), (2, 1), (0, 3), (3, 0)}
    got = [tuple(e) for e in out.edge_index.t().tolist()]
    assert set(got) == expected and len(got) == len(expected)
    assert got == sorted(got)
    assert out.edge_index.dtype == torch.int64
    assert out.num_classes == 2


def test_canonicalize_warns_on_isolated_nodes():
    data = _graph([[0, 1], [1, 0]], num_nodes=4)
    with pytest.warns(FramekdWarning, match="2 isolated node"):
        canonicalize(data)


def test_graph_hash_ignores_edge_order_and_direction_of_listing():
    a = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])
    b = torch.tensor([[2, 1, 1, 0], [1, 2, 0, 1]])
    assert graph_hash(a, 3) == graph_hash(b, 3)
    assert graph_hash(a, 3) != graph_hash(a, 4)


# --- one test per rejected input ------------------------------------------------------


def test_rejects_edge_index_out_of_range():
    with pytest.raises(GraphError, match=r"node index 7 at column 1 but the graph has 4 nodes"):
        canonicalize(_graph([[0, 1], [1, 7]]))


def test_rejects_negative_edge_index():
    with pytest.raises(GraphError, match=r"negative node index \(-1\) at column 0"):
        canonicalize(_graph([[-1, 1], [1, 2]]))


def test_rejects_edges_of_wrong_shape():
    with pytest.raises(GraphError, match=r"shape \[2, E\], got \[3, 2\].*\.t\(\)"):
        canonicalize(_graph(torch.zeros(3, 2, dtype=torch.long)))


def test_rejects_edges_of_wrong_dtype():
    with pytest.raises(GraphError, match=r"integer node indices, got dtype torch.float32"):
        canonicalize(_graph(torch.tensor([[0.0, 1.0], [1.0, 0.0]])))


def test_rejects_non_finite_features():
    x = torch.ones(4, 3)
    x[2, 1] = float("nan")
    with pytest.raises(GraphError, match=r"1 non-finite values .* row 2, column 1"):
        canonicalize(_graph([[0, 1]], x=x))


@pytest.mark.parametrize("values", [[float("inf")], [float("-inf")],
                                    [float("inf"), float("-inf")], [float("nan"), float("inf")]])
def test_rejects_every_kind_of_non_finite_feature(values):
    x = torch.ones(4, 3)
    for i, v in enumerate(values):
        x[i, 2] = v
    with pytest.raises(GraphError, match=rf"{len(values)} non-finite values .* row 0, column 2"):
        canonicalize(_graph([[0, 1]], x=x))


def test_finite_features_whose_sum_overflows_are_accepted():
    x = torch.full((4, 3), 3e38)  # finite float32, but their sum is inf
    assert torch.isinf(x.sum())
    canonicalize(_graph([[0, 1]], x=x))


def test_rejects_feature_rows_not_matching_nodes():
    with pytest.raises(GraphError, match=r"features x have 3 rows but the graph has 4 nodes"):
        canonicalize(_graph([[0, 1]], x=torch.ones(3, 2)))


def test_rejects_labels_out_of_range():
    with pytest.raises(GraphError, match=r"value -3 at node 1; labels must be 0..C-1, or -1"):
        canonicalize(_graph([[0, 1]], y=torch.tensor([0, -3, 1, 0])))


def test_rejects_labels_above_declared_class_count():
    data = _graph([[0, 1]], y=torch.tensor([0, 1, 5, 0]))
    data.num_classes = 3
    with pytest.raises(GraphError, match=r"value 5 at node 2 but num_classes=3"):
        canonicalize(data)


def test_rejects_labels_of_wrong_length():
    with pytest.raises(GraphError, match=r"labels y have length 3 but the graph has 4 nodes"):
        canonicalize(_graph([[0, 1]], y=torch.tensor([0, 1, 0])))


def test_rejects_empty_graph():
    data = Data(x=torch.empty(0, 3), edge_index=torch.empty(2, 0, dtype=torch.long),
                num_nodes=0)
    with pytest.raises(GraphError, match=r"the graph is empty \(0 nodes\)"):
        canonicalize(data)


def test_rejects_single_class():
    with pytest.raises(GraphError, match=r"single class \(1\); node classification needs"):
        canonicalize(_graph([[0, 1]], y=torch.tensor([1, 1, -1, 1])))


def test_rejects_split_with_empty_train_set():
    # 8 labelled nodes in 2 classes: fgkd's quota is floor(0.2 * 8 / 2) = 0 per class.
    data = canonicalize(_graph([[i, i + 1] for i in range(7)], num_nodes=8), warn=False)
    with pytest.raises(SplitError, match=r"'fgkd' \(seed 0\) gives an empty train set"):
        make_split(data, "fgkd", seed=0)


def test_rejects_split_with_empty_validation_set():
    # Two labelled nodes per class: capping keeps 1 train, 0 val, 1 test.
    y = torch.tensor([0, 0, 1, 1, -1, -1])
    data = canonicalize(_graph([[0, 1], [2, 3], [4, 5]], num_nodes=6, y=y), warn=False)
    with pytest.warns(FramekdWarning), pytest.raises(SplitError, match=r"empty val set"):
        make_split(data, "cpf", seed=0)


# --- the same checks reached through a user graph directory ---------------------------


def _features_with_inf() -> np.ndarray:
    feats = np.ones((4, 2))
    feats[3, 0] = np.inf
    return feats


@pytest.mark.parametrize(
    ("files", "message"),
    [
        pytest.param({"edges": "0,1\n1,9\n"}, r"node index 9 .* the graph has 4 nodes",
                     id="edge-out-of-range"),
        pytest.param({"edges": "0,1,5\n1,2,5\n"},
                     r"edges.csv: edges must have exactly 2 columns", id="three-columns"),
        pytest.param({"edges": "0,1\n1.5,2\n"},
                     r"edges.csv: edges must be integer node indices", id="fractional-edges"),
        pytest.param({"features": _features_with_inf()}, r"non-finite .* row 3, column 0",
                     id="non-finite-features"),
        pytest.param({"labels": "0\n1\n"},
                     r"labels y have length 2 but the graph has 4 nodes", id="labels-length"),
        pytest.param({"edges": None}, r"has no edges.csv", id="no-edges-file"),
        pytest.param({"labels": "label\n0\ncat\n1\n0\n"}, r"labels.csv: cannot read labels",
                     id="non-numeric-labels"),
    ],
)
def test_graph_dir_rejects(tmp_path, files, message):
    folder = write_graph_dir(tmp_path / "g", **files)
    with pytest.raises(GraphError, match=message):
        load_graph_dir(folder)


# --- from the command line: exit status 2 and one readable line -----------------------


def test_cli_bad_graph_dir_exits_2_with_one_line(tmp_path, capsys):
    folder = write_graph_dir(tmp_path / "bad", edges="0,1\n1,9\n")
    assert main(["datasets", str(folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("framekd datasets: error:") and "node index 9" in err
    assert "Traceback" not in err


def test_cli_bad_data_root_exits_2_with_one_line(tmp_path, capsys):
    assert main(["datasets", "--root", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is not a directory" in err
