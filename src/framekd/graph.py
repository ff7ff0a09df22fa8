r"""The canonical graph every framekd stage works on.

framekd works on the **symmetrised** graph with self-loops removed and duplicate
edges merged (docs/SPEC.md §1). :func:`canonicalize` is the single entry point that checks a
user's :class:`~torch_geometric.data.Data` and returns that canonical form:

* ``edge_index``: ``int64``, shape ``[2, E]``, sorted, both directions of every
  edge, no self-loops, no duplicates;
* ``x`` (optional): finite floating-point features with one row per node;
* ``y`` (optional): integer labels in ``{0..C-1}``, ``-1`` for unlabelled nodes.

It warns (:class:`~framekd.errors.FramekdWarning`) when the input was directed or
has isolated nodes and raises :class:`~framekd.errors.GraphError` for anything it
cannot repair.
"""

from __future__ import annotations

import copy
import warnings
import weakref

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.utils import coalesce, is_undirected, remove_self_loops, to_undirected

from framekd.errors import FramekdWarning, GraphError


def check_edge_index(edge_index: Tensor, num_nodes: int, *, where: str = "edge_index") -> None:
    """Raise :class:`GraphError` unless ``edge_index`` is a valid ``[2, E]`` index tensor."""
    if not isinstance(edge_index, Tensor):
        raise GraphError(
            f"{where} must be a torch.Tensor of shape [2, E], got {type(edge_index).__name__}; "
            "convert it with torch.as_tensor(...)"
        )
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise GraphError(
            f"{where} must have shape [2, E], got {list(edge_index.shape)}; "
            "transpose an [E, 2] edge list with .t()"
        )
    if edge_index.dtype.is_floating_point or edge_index.dtype in (torch.bool, torch.complex64):
        raise GraphError(
            f"{where} must hold integer node indices, got dtype {edge_index.dtype}; "
            "cast it with .long()"
        )
    if num_nodes <= 0:
        raise GraphError("the graph is empty (0 nodes); a graph needs at least one node")
    if edge_index.numel() == 0:
        return
    lo, hi = int(edge_index.min()), int(edge_index.max())
    if lo < 0:
        col = int((edge_index < 0).any(0).nonzero()[0])
        raise GraphError(
            f"{where} has a negative node index ({lo}) at column {col}; "
            "node indices must lie in [0, num_nodes)"
        )
    if hi >= num_nodes:
        col = int((edge_index >= num_nodes).any(0).nonzero()[0])
        raise GraphError(
            f"{where} has node index {hi} at column {col} but the graph has {num_nodes} nodes; "
            "indices must lie in [0, num_nodes) - pass num_nodes or fix the edge list"
        )


# id(edge_index) -> (weak reference, num_nodes, tensor version, canonical?). Keyed by id
# because tensors compare elementwise, which a WeakKeyDictionary cannot use.
_CHECKED: dict[int, tuple[weakref.ref, int, int, bool]] = {}


def _memo(edge_index: Tensor, num_nodes: int) -> bool | None:
    """``None`` when unchecked, else whether ``edge_index`` was found canonical."""
    entry = _CHECKED.get(id(edge_index))
    if entry is None:
        return None
    ref, n, version, canonical = entry
    if ref() is not edge_index or n != num_nodes or version != edge_index._version:
        return None  # another tensor reusing the id, another size, or edited in place
    return canonical


def _remember(edge_index: Tensor, num_nodes: int, canonical: bool) -> None:
    key = id(edge_index)
    ref = weakref.ref(edge_index, lambda _, key=key: _CHECKED.pop(key, None))
    _CHECKED[key] = (ref, int(num_nodes), edge_index._version, canonical)


def ensure_valid(edge_index: Tensor, num_nodes: int) -> None:
    """:func:`check_edge_index`, skipped for a tensor already checked unchanged.

    Validation happens once at the edge (loading, :func:`canonicalize`, the public entry
    points); inner code calls this and trusts the result.
    """
    if _memo(edge_index, num_nodes) is None:
        check_edge_index(edge_index, num_nodes)
        _remember(edge_index, num_nodes, canonical=False)


def ensure_canonical(edge_index: Tensor, num_nodes: int) -> None:
    """Raise :class:`GraphError` unless ``edge_index`` is canonical: valid, symmetric and
    without self-loops (the output of :func:`canonicalize`). Checked once per tensor."""
    if _memo(edge_index, num_nodes):
        return
    ensure_valid(edge_index, num_nodes)
    if edge_index.numel():
        if bool((edge_index[0] == edge_index[1]).any()):
            raise GraphError(
                "edge_index has self-loops; framelets use the graph without self-loops - "
                "pass the graph through framekd.graph.canonicalize first"
            )
        if not is_undirected(edge_index, num_nodes=num_nodes):
            raise GraphError(
                "edge_index is not symmetric; framelets need an undirected graph - "
                "pass the graph through framekd.graph.canonicalize first"
            )
    _remember(edge_index, num_nodes, canonical=True)


def check_features(x: Tensor, num_nodes: int) -> None:
    """Raise :class:`GraphError` unless ``x`` is a finite ``[num_nodes, d]`` float tensor."""
    if not isinstance(x, Tensor) or x.dim() != 2:
        shape = list(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise GraphError(f"features x must be a 2-D tensor [N, d], got {shape}")
    if x.size(0) != num_nodes:
        raise GraphError(
            f"features x have {x.size(0)} rows but the graph has {num_nodes} nodes; "
            "give exactly one feature row per node"
        )
    if x.size(1) == 0:
        raise GraphError(
            f"features x have 0 columns (shape {list(x.shape)}); give at least one feature per "
            "node (without features, a column of ones will do: torch.ones(N, 1))"
        )
    if not x.dtype.is_floating_point:
        raise GraphError(f"features x must be floating point, got {x.dtype}; cast with .float()")
    # A NaN or an Inf anywhere makes the sum non-finite: one pass and no [N, d] mask, which
    # on large dense features took most of a `framekd predict` call. A finite x whose sum
    # overflows takes the exact check.
    if x.numel() == 0 or bool(torch.isfinite(x.sum())):
        return
    bad = ~torch.isfinite(x)
    if bad.any():
        row, col = (int(v) for v in bad.nonzero()[0])
        raise GraphError(
            f"features x contain {int(bad.sum())} non-finite values (NaN or Inf), first at "
            f"row {row}, column {col}; impute or drop them before loading the graph"
        )


def check_labels(y: Tensor, num_nodes: int, num_classes: int | None = None) -> int:
    """Check labels; return the number of classes C (labels in 0..C-1, -1 unlabelled)."""
    if not isinstance(y, Tensor) or y.dim() != 1:
        shape = list(y.shape) if isinstance(y, Tensor) else type(y).__name__
        raise GraphError(f"labels y must be a 1-D tensor [N], got {shape}")
    if y.numel() != num_nodes:
        raise GraphError(
            f"labels y have length {y.numel()} but the graph has {num_nodes} nodes; "
            "give one label per node (-1 for unlabelled)"
        )
    if y.dtype.is_floating_point or y.dtype == torch.bool:
        raise GraphError(f"labels y must be integers, got {y.dtype}; cast with .long()")
    labelled = y[y >= 0]
    if (y < -1).any():
        node = int((y < -1).nonzero()[0])
        raise GraphError(
            f"labels y has value {int(y[node])} at node {node}; labels must be 0..C-1, "
            "or -1 for unlabelled"
        )
    if labelled.numel() == 0:
        raise GraphError("labels y has no labelled node (all -1); label at least two classes")
    inferred = int(labelled.max()) + 1
    if num_classes is None and inferred > num_nodes:
        # The class count is the largest label + 1; a label beyond the node count cannot be
        # a class id 0..C-1 (and would make every later stage loop or allocate over it).
        node = int((y == inferred - 1).nonzero()[0])
        raise GraphError(
            f"labels y has value {inferred - 1} at node {node} but the graph has only "
            f"{num_nodes} nodes; labels must be class ids 0..C-1 (-1 for unlabelled): "
            "renumber them, e.g. torch.unique(y, return_inverse=True)"
        )
    if num_classes is not None and inferred > num_classes:
        node = int((y >= num_classes).nonzero()[0])
        raise GraphError(
            f"labels y has value {int(y[node])} at node {node} but num_classes={num_classes}; "
            f"labels must lie in 0..{num_classes - 1}"
        )
    present = torch.unique(labelled).numel()
    if present < 2:
        raise GraphError(
            f"labels y contain a single class ({int(labelled[0])}); node classification "
            "needs at least two classes"
        )
    return num_classes if num_classes is not None else inferred


def canonicalize(data: Data, *, warn: bool = True) -> Data:
    """Return the canonical (symmetric, simple, validated) copy of ``data``.

    Args:
        data: a PyG graph with ``edge_index`` and optionally ``x``, ``y``,
            ``num_nodes``. Other attributes are copied unchanged.
        warn: emit :class:`FramekdWarning` when the input was directed or has
            isolated nodes.

    Returns:
        A new :class:`Data`; ``x``, ``y`` and other tensors are shared with ``data``
        (not copied); ``edge_index`` is new unless ``data`` is already canonical (the
        output of an earlier call), which is then returned with only ``x`` and ``y``
        checked.

    Raises:
        GraphError: malformed edges, features or labels.
    """
    if "edge_index" not in data:
        raise GraphError("the graph has no edge_index; give edges as a [2, E] tensor")
    num_nodes = data.num_nodes
    if num_nodes is None:
        raise GraphError("cannot infer the number of nodes; set data.num_nodes")
    edge_index = data.edge_index
    already = bool(_memo(edge_index, num_nodes))
    ensure_valid(edge_index, num_nodes)
    if data.x is not None:
        check_features(data.x, num_nodes)
    num_classes = None
    if data.y is not None:
        # A declared class count (e.g. from a dataset) bounds the labels from above.
        declared = int(data["num_classes"]) if "num_classes" in data else None
        num_classes = check_labels(data.y, num_nodes, declared)

    if already:  # the output of an earlier call: only x and y needed checking
        out = copy.copy(data)
        if num_classes is not None:
            out.num_classes = num_classes
        return out
    edge_index = edge_index.long()
    was_directed = edge_index.numel() > 0 and not is_undirected(edge_index, num_nodes=num_nodes)
    edge_index, _ = remove_self_loops(edge_index)
    edge_index = coalesce(to_undirected(edge_index, num_nodes=num_nodes), num_nodes=num_nodes)

    if warn and was_directed:
        warnings.warn(
            "the input graph is directed; framekd symmetrises it (every edge is used in "
            "both directions)",
            FramekdWarning,
            stacklevel=2,
        )
    if warn:
        deg = torch.bincount(edge_index[0], minlength=num_nodes)
        isolated = int((deg == 0).sum())
        if isolated:
            warnings.warn(
                f"the graph has {isolated} isolated node(s) of {num_nodes}; they only see "
                "their own features",
                FramekdWarning,
                stacklevel=2,
            )

    # Shallow copy (as PyG transforms do): x and y are shared with the input, not
    # duplicated (a deep clone would copy every feature matrix).
    _remember(edge_index, num_nodes, canonical=True)
    out = copy.copy(data)
    out.edge_index = edge_index
    out.num_nodes = num_nodes
    if "edge_attr" in out:
        del out.edge_attr  # edge weights do not survive merging duplicates
    if "edge_weight" in out:
        del out.edge_weight
    if num_classes is not None:
        out.num_classes = num_classes
    return out


def graph_hash(edge_index: Tensor, num_nodes: int) -> str:
    """A stable hex digest of a graph's structure, used as a cache key.

    Hashes ``num_nodes`` and the canonical (coalesced, int64) edge list, so the same
    graph gives the same key whatever the edge order of the input.
    """
    import hashlib

    ei = coalesce(edge_index.long().cpu(), num_nodes=num_nodes).contiguous()
    h = hashlib.sha256()
    h.update(str(num_nodes).encode())
    h.update(ei.numpy().tobytes())
    return h.hexdigest()[:32]
