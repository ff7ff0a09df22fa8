"""User graphs: from a directory of plain files, or from a PyG :class:`Data` object.

A graph directory holds

* ``edges.csv``: two integer columns ``src,dst`` (0-based node indices), one edge per
  line, an optional header line. Direction does not matter: framekd symmetrises.
* ``features.npy`` (a 2-D float array, preferred) or ``features.csv`` (comma-separated
  numbers, optional header): one row per node.
* ``labels.csv``: one integer per line (optional header), ``-1`` for unlabelled nodes.

The number of nodes is the number of feature rows.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import Data

from framekd.errors import DatasetNotFoundError, GraphError
from framekd.graph import canonicalize

PathLike = str | os.PathLike


def from_data(data: Data) -> Data:
    """Validate and canonicalise a user's PyG graph (float32 ``x``, int64 ``y``).

    Raises:
        GraphError: see :func:`framekd.graph.canonicalize`.
    """
    out = canonicalize(data, warn=True)
    if out.x is not None and out.x.dtype != torch.float32:
        out.x = out.x.float()
    if out.y is not None:
        out.y = out.y.long()
    return out


def _has_header(path: Path) -> bool:
    with open(path) as fh:
        first = fh.readline().strip()
    if not first:
        return False
    try:
        [float(v) for v in first.replace(",", " ").split()]
    except ValueError:
        return True
    return False


def _read_csv(path: Path, what: str) -> np.ndarray:
    """Read a numeric CSV as float64 [rows, cols]; one bad line gives its line number."""
    skip = int(_has_header(path))
    try:
        arr = np.loadtxt(path, delimiter=",", dtype=np.float64, skiprows=skip, ndmin=2)
    except ValueError as err:
        raise GraphError(
            f"{path}: cannot read {what} ({err}); expected comma-separated numbers with an "
            "optional header line"
        ) from None
    return arr


def _read_edges(path: Path) -> torch.Tensor:
    arr = _read_csv(path, "edges")
    if arr.size and arr.shape[1] != 2:
        raise GraphError(
            f"{path}: edges must have exactly 2 columns (src,dst), found {arr.shape[1]}; "
            "write one edge per line as 'src,dst'"
        )
    arr = arr.reshape(-1, 2)
    fractional = arr != np.round(arr)
    if fractional.any():
        row = int(fractional.any(1).nonzero()[0][0])
        raise GraphError(
            f"{path}: edges must be integer node indices, found {arr[row].tolist()} on data "
            f"row {row}; write 0-based integer indices"
        )
    return torch.from_numpy(arr.astype(np.int64).T.copy())


def _read_features(folder: Path) -> torch.Tensor:
    npy, csv = folder / "features.npy", folder / "features.csv"
    if npy.is_file():
        try:
            arr = np.load(npy, allow_pickle=False)
        except ValueError as err:
            raise GraphError(f"{npy}: not a plain numeric .npy array ({err})") from None
        if arr.dtype.kind not in "fiub":
            raise GraphError(f"{npy}: features must be numeric, got dtype {arr.dtype}")
    elif csv.is_file():
        arr = _read_csv(csv, "features")
    else:
        raise GraphError(
            f"{folder} has no features.npy or features.csv; give one feature row per node "
            "(e.g. np.save('features.npy', x))"
        )
    if arr.ndim != 2:
        raise GraphError(f"features in {folder} must be a 2-D array [N, d], got shape "
                         f"{list(arr.shape)}")
    return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))


def _read_labels(path: Path) -> torch.Tensor:
    arr = _read_csv(path, "labels")
    if arr.size and arr.shape[1] != 1:
        raise GraphError(
            f"{path}: labels must be a single column (one integer per node, -1 for "
            f"unlabelled), found {arr.shape[1]} columns"
        )
    arr = arr.reshape(-1)
    if (arr != np.round(arr)).any():
        node = int((arr != np.round(arr)).nonzero()[0][0])
        raise GraphError(f"{path}: label {arr[node]} of node {node} is not an integer")
    return torch.from_numpy(arr.astype(np.int64))


def load_graph_dir(path: PathLike) -> Data:
    """Load and canonicalise a user graph directory (see the module docstring).

    Raises:
        DatasetNotFoundError: the directory does not exist.
        GraphError: a file is missing or malformed; the message names the file.
    """
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise DatasetNotFoundError(
            f"graph directory {folder} does not exist; create it with edges.csv, "
            "features.npy (or features.csv) and labels.csv"
        )
    edges_file, labels_file = folder / "edges.csv", folder / "labels.csv"
    for needed in (edges_file, labels_file):
        if not needed.is_file():
            raise GraphError(
                f"{folder} has no {needed.name}; a graph directory needs edges.csv "
                "(src,dst per line), features.npy or features.csv, and labels.csv"
            )
    x = _read_features(folder)
    edge_index = _read_edges(edges_file)
    y = _read_labels(labels_file)
    data = Data(x=x, edge_index=edge_index, y=y, num_nodes=x.size(0))
    data = from_data(data)
    data.name = folder.resolve().name
    return data


def save_graph_dir(data: Data, path: PathLike) -> Path:
    """Write ``data`` as a graph directory that :func:`load_graph_dir` reads back.

    ``edges.csv`` lists ``edge_index`` as stored (both directions of a canonical graph),
    ``features.npy`` holds ``x`` and ``labels.csv`` holds ``y``.
    """
    from framekd.io import atomic_open, atomic_path

    folder = Path(path).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    if data.x is None or data.y is None:
        raise GraphError("save_graph_dir needs node features x and labels y")
    with atomic_open(folder / "edges.csv") as fh:
        fh.write("src,dst\n")
        np.savetxt(fh, data.edge_index.t().cpu().numpy(), fmt="%d", delimiter=",")
    with atomic_path(folder / "features.npy") as tmp, open(tmp, "wb") as fh:
        np.save(fh, data.x.detach().cpu().numpy())
    with atomic_open(folder / "labels.csv") as fh:
        fh.write("label\n")
        np.savetxt(fh, data.y.cpu().numpy().reshape(-1, 1), fmt="%d")
    return folder
