"""User graphs: directory round trip, file variants, and PyG Data input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_geometric.data import Data

from framekd import FramekdWarning, canonicalize
from framekd.data import csbm, from_data, load_dataset, load_graph_dir, save_graph_dir
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
