"""User graphs: directory round trip, file variants, and PyG Data input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_geometric.data import Data

from framekd import FramekdWarning, canonicalize
from framekd.data import csbm, from_data, load_dataset, load_graph_dir, save_graph_dir
from framekd.splits import make_split
from helpers import write_graph_dir


def test_round_trip_through_a_directory(tmp_path):
    data = csbm(num_nodes=80, num_classes=3, avg_degree=5.0, homophily=0.6, seed=4)
    data.y[::7] = -1  # unlabelled nodes survive the trip
    save_graph_dir(data, tmp_path / "g")
    back = load_graph_dir(tmp_path / "g")
    # Tolerance 0: indices and labels are integers, and features.npy stores the float32
    # features bit for bit (no text formatting, no arithmetic on the way).
    torch.testing.assert_close(back.edge_index, data.edge_index, rtol=0, atol=0)
    torch.testing.assert_close(back.x, data.x, rtol=0, atol=0)
    torch.testing.assert_close(back.y, data.y, rtol=0, atol=0)
    assert back.num_nodes == 80 and back.name == "g"


def test_load_dataset_accepts_a_directory(tmp_path):
    data = csbm(num_nodes=40, num_classes=2, avg_degree=8.0, seed=0)
    save_graph_dir(data, tmp_path / "mine")
    back = load_dataset(str(tmp_path / "mine"))
    torch.testing.assert_close(back.edge_index, data.edge_index, rtol=0, atol=0)  # integers


def test_headerless_csv_files_and_features_csv(tmp_path):
    folder = tmp_path / "g"
    folder.mkdir()
    (folder / "edges.csv").write_text("0,1\n1,2\n2,0\n3,2\n")
    (folder / "features.csv").write_text("f1,f2\n1,0\n0,1\n1,1\n0.5,2\n")
    (folder / "labels.csv").write_text("0\n1\n-1\n1\n")
    with pytest.warns(FramekdWarning, match="directed"):
        data = load_graph_dir(folder)
    assert data.edge_index.size(1) == 8
    assert data.x.dtype == torch.float32 and data.x.shape == (4, 2)
    assert data.x[3].tolist() == [0.5, 2.0]
    assert data.y.tolist() == [0, 1, -1, 1] and data.y.dtype == torch.int64


def test_isolated_nodes_warn(tmp_path):
    folder = write_graph_dir(tmp_path / "g", edges="src,dst\n0,1\n1,0\n", labels="0\n1\n0\n",
                             features=np.zeros((3, 2), dtype=np.float64))
    with pytest.warns(FramekdWarning, match="1 isolated node"):
        data = load_graph_dir(folder)
    assert data.num_nodes == 3 and data.x.dtype == torch.float32


def test_from_data_casts_and_canonicalises():
    x = torch.randn(4, 3, dtype=torch.float64)
    data = Data(x=x, edge_index=torch.tensor([[0, 1, 2], [1, 2, 3]]),
                y=torch.tensor([0, 1, 0, 1], dtype=torch.int32))
    with pytest.warns(FramekdWarning, match="directed"):
        out = from_data(data)
    assert out.x.dtype == torch.float32 and out.y.dtype == torch.int64
    # Integer indices: the tolerance is 0.
    torch.testing.assert_close(out.edge_index, canonicalize(data, warn=False).edge_index,
                               rtol=0, atol=0)
    assert data.x.dtype == torch.float64  # the input is not modified


def test_missing_directory_is_reported(tmp_path):
    from framekd import DatasetNotFoundError

    with pytest.raises(DatasetNotFoundError, match=r"graph directory '.*nope' does not exist"):
        load_dataset(str(tmp_path / "nope"))


# --- labels that are not 0..C-1 -------------------------------------------------------


def _labelled_dir(tmp_path, labels, n=None, name="g"):
    n = len(labels) if n is None else n
    edges = "src,dst\n" + "".join(f"{i},{(i + 1) % n}\n{(i + 1) % n},{i}\n" for i in range(n))
    text = "label\n" + "".join(f"{v}\n" for v in labels)
    return write_graph_dir(tmp_path / name, edges=edges, labels=text,
                           features=np.random.default_rng(0).normal(size=(n, 3)))


def test_labels_with_gaps_are_renumbered_with_one_notice(tmp_path):
    labels = [0, 1, 2, 20] * 10 + [-1]
    with pytest.warns(FramekdWarning) as record:
        data = load_graph_dir(_labelled_dir(tmp_path, labels))
    (notice,) = [str(w.message) for w in record]
    assert "renumbered in order 0->0, 1->1, 2->2, 20->3" in notice and "\n" not in notice
    assert data.y.tolist() == [0, 1, 2, 3] * 10 + [-1]
    assert data.label_map.tolist() == [0, 1, 2, 20] and int(data.num_classes) == 4


def test_renumbered_labels_survive_a_saved_graph(tmp_path):
    with pytest.warns(FramekdWarning, match="7->0, 9->1"):
        data = load_graph_dir(_labelled_dir(tmp_path, [7, 9] * 10))
    save_graph_dir(data, tmp_path / "copy")
    assert (tmp_path / "copy" / "label_map.csv").read_text() == "label\n7\n9\n"
    back = load_graph_dir(tmp_path / "copy")  # already 0..C-1: no notice, the map is kept
    assert back.y.tolist() == data.y.tolist() and back.label_map.tolist() == [7, 9]


def test_a_label_of_a_million_is_renumbered_not_looped_over(tmp_path):
    with pytest.warns(FramekdWarning, match=r"1000000->2"):
        data = load_graph_dir(_labelled_dir(tmp_path, [0, 1, 1000000] * 8))
    assert int(data.num_classes) == 3 and data.label_map.tolist() == [0, 1, 1000000]
    assert make_split(data, "fgkd", 0).train.numel() == 3  # floor(0.2 * 24 / 3) per class


@pytest.mark.parametrize(("labels", "message"), [
    ([0, 1, 2] * 8 + [1000001], r"label 1000001 on line 26 of .*labels\.csv \(node 24\): a "
                                r"class id above 1000000 is not a plausible label"),
    (list(range(0, 40, 2)), r"20 distinct labels for 20 nodes, not numbered 0\.\.C-1 \(label 38 "
                            r"on line 21\)"),
])
def test_implausible_labels_are_rejected_with_their_line(tmp_path, labels, message):
    from framekd import GraphError

    with pytest.raises(GraphError, match=message):
        load_graph_dir(_labelled_dir(tmp_path, labels))


# --- protocols on user graphs: random and splits.npz ----------------------------------


def _imbalanced(tmp_path, n=200, minority=0.2, name="g"):
    """A two-class user graph, 80/20, the minority nodes spread over the node ids."""
    labels = [1 if (i * 7) % 10 < 10 * minority else 0 for i in range(n)]
    return _labelled_dir(tmp_path, labels, name=name)


def test_random_protocol_keeps_every_class_in_proportion(tmp_path):
    data = load_graph_dir(_imbalanced(tmp_path))
    split = make_split(data, "random", seed=0)
    assert split.protocol == "random" and split.notes == []
    sizes = {p: getattr(split, p).numel() for p in ("train", "val", "test")}
    assert sizes == {"train": 100, "val": 50, "test": 50}
    for part, (zeros, ones) in (("train", (80, 20)), ("val", (40, 10)), ("test", (40, 10))):
        y = data.y[getattr(split, part)]
        assert (int((y == 0).sum()), int((y == 1).sum())) == (zeros, ones), part
    parts = [set(getattr(split, p).tolist()) for p in ("train", "val", "test")]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert set.union(*parts) == set(range(200))


def test_random_protocol_ratios_and_seeds(tmp_path):
    data = load_graph_dir(_imbalanced(tmp_path))
    split = make_split(data, "random:0.6,0.2,0.2", seed=3)
    assert split.protocol == "random:0.6,0.2,0.2"
    assert [getattr(split, p).numel() for p in ("train", "val", "test")] == [120, 40, 40]
    spec = "random:0.6,0.2,0.2"
    again, other = make_split(data, spec, 3), make_split(data, spec, 4)
    assert again.train.tolist() == split.train.tolist()  # seed i draws split i ...
    assert other.train.tolist() != split.train.tolist()  # ... and only split i


def test_random_protocol_caps_and_reports_tiny_classes():
    y = torch.tensor([0] * 40 + [1] * 2 + [2])
    with pytest.warns(FramekdWarning, match="too small"):
        split = make_split(Data(y=y, num_nodes=43), "random", 0)
    (note,) = split.notes
    assert "class 1 (2 node(s): 1 train / 0 val / 1 test)" in note
    assert "class 2 (1 node(s): 1 train / 0 val / 0 test)" in note
    assert (y[split.train] == 2).sum() == 1


def test_random_protocol_through_the_command_line(tmp_path, capsys):
    from framekd.cli import main

    folder = _imbalanced(tmp_path, n=60)
    out = tmp_path / "out"
    assert main(["run", "--dataset", str(folder), "--seeds", "2", "--quiet", "--out", str(out),
                 "--set", "protocol=random:0.6,0.2,0.2", "--set", "teacher.epochs=2",
                 "--set", "student.epochs=2", "--set", "baselines=[]",
                 "--set", "student.names=[mlp]"]) == 0
    assert "protocol `random:0.6,0.2,0.2`" in capsys.readouterr().out


def _split_masks(n, s):
    train, val, test = (np.zeros((s, n), bool) for _ in range(3))
    for k in range(s):
        order = np.roll(np.arange(n), 3 * k)
        train[k, order[: n // 2]] = True
        val[k, order[n // 2: 3 * n // 4]] = True
        test[k, order[3 * n // 4:]] = True
    return {"train": train, "val": val, "test": test}


def test_splits_npz_drives_the_public_protocol(tmp_path):
    folder = _imbalanced(tmp_path, n=40)
    masks = _split_masks(40, 3)
    np.savez(folder / "splits.npz", **masks)
    data = load_graph_dir(folder)
    for seed in (0, 1, 5):
        split = make_split(data, "public", seed)
        assert split.train.tolist() == np.flatnonzero(masks["train"][seed % 3]).tolist()
        assert split.test.tolist() == np.flatnonzero(masks["test"][seed % 3]).tolist()
        assert f"fixed split {seed % 3} of 3 from g/splits.npz" in split.notes[0]
    save_graph_dir(data, tmp_path / "copy")  # the splits travel with a saved graph
    back = np.load(tmp_path / "copy" / "splits.npz")
    assert all((back[k] == masks[k]).all() for k in masks)


def test_single_split_npz_and_unlabelled_nodes(tmp_path):
    labels = [0, 1] * 10
    labels[0] = -1
    folder = _labelled_dir(tmp_path, labels)
    masks = {k: v[0] for k, v in _split_masks(20, 1).items()}
    np.savez(folder / "splits.npz", **masks)
    data = load_graph_dir(folder)
    a, b = make_split(data, "public", 0), make_split(data, "public", 7)
    assert a.train.tolist() == b.train.tolist() and 0 not in a.train.tolist()  # -1: in no set
    assert "the seed does not change it" in a.notes[0]
