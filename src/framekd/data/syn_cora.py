"""syn-cora (Zhu et al., NeurIPS 2020): Cora features on graphs of controlled homophily.

PyG has no class for it. Each ``h<level>-r<k>.npz`` stores scipy CSR pieces of the
adjacency (``adj_*``) and of the node attributes (``attr_*``) plus ``labels``, in the
DeepRobust layout; there are no shipped splits.
"""

from __future__ import annotations

import os

import numpy as np
import scipy.sparse as sp
import torch
from torch_geometric.data import Data

from framekd.errors import DatasetNotFoundError, GraphError

_KEYS = ("adj_data", "adj_indices", "adj_indptr", "adj_shape",
         "attr_data", "attr_indices", "attr_indptr", "attr_shape", "labels")


def _csr(z, prefix: str) -> sp.csr_matrix:
    shape = tuple(int(s) for s in z[f"{prefix}_shape"])
    return sp.csr_matrix(
        (z[f"{prefix}_data"], z[f"{prefix}_indices"], z[f"{prefix}_indptr"]), shape=shape
    )


def load_syn_cora(path: str | os.PathLike) -> Data:
    """Read one syn-cora ``.npz`` file into a (not yet canonical) :class:`Data`."""
    if not os.path.isfile(path):
        raise DatasetNotFoundError(f"syn-cora file {path} does not exist")
    with np.load(path, allow_pickle=False) as z:
        absent = [k for k in _KEYS if k not in z]
        if absent:
            raise GraphError(
                f"{path} is not a syn-cora npz file: keys {', '.join(absent)} are missing"
            )
        adj = _csr(z, "adj").tocoo()
        attr = _csr(z, "attr")
        labels = np.asarray(z["labels"], dtype=np.int64)
    edge_index = torch.from_numpy(np.vstack([adj.row, adj.col]).astype(np.int64))
    x = torch.from_numpy(attr.toarray().astype(np.float32))
    return Data(x=x, edge_index=edge_index, y=torch.from_numpy(labels),
                num_nodes=adj.shape[0])
