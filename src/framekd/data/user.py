"""User graphs: from a directory of plain files, or from a PyG :class:`Data` object.

A graph directory holds

* ``edges.csv``: two integer columns ``src,dst`` (0-based node indices), one edge per
  line, an optional header line. Direction does not matter: framekd symmetrises.
* ``features.npy`` (a 2-D float array, preferred) or ``features.csv`` (comma-separated
  numbers, optional header): one row per node.
* ``labels.csv``: one integer per line (optional header), ``-1`` for unlabelled nodes.
  Classes are ``0..C-1``; other class ids (e.g. ``3, 7, 20``) are renumbered in order with a
  warning, the original ids kept as ``data.label_map`` (``label_map[c]`` = the file's label
  of class ``c``); ids above :data:`MAX_LABEL`, or more distinct ids than half the nodes, are
  rejected as not a class column.
* ``splits.npz`` (optional): fixed splits for protocol ``public``, boolean masks ``train``,
  ``val``, ``test`` of shape ``[S, N]`` (``S`` splits; seed ``i`` uses split ``i mod S``) or
  ``[N]`` (one split), disjoint within a split.
* ``label_map.csv`` (optional, written by :func:`save_graph_dir`): the original label of each
  class, one per line.

The number of nodes is the number of feature rows. Every error names the file and, for the
CSV files, the 1-based line (header and comment lines counted).
"""

from __future__ import annotations

import io
import os
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import Data

from framekd.errors import DatasetNotFoundError, FramekdWarning, GraphError
from framekd.graph import canonicalize

PathLike = str | os.PathLike

#: Labels above this are rejected as implausible class ids (a column of ids or counts).
MAX_LABEL = 10**6


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


# ----------------------------------------------------------------------------- CSV files
# Read once as UTF-8 text; NumPy parses it (fast path) and every error names the file and
# its 1-based line, quoting the value as written. NumPy's own warnings never reach the user.


def _read_text(path: Path) -> str:
    """The file's text; a clear error for an unreadable file or bytes that are not UTF-8."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise GraphError(f"cannot read {path}: {err.strerror or err}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        col = err.start - (raw.rfind(b"\n", 0, err.start) + 1) + 1
        raise GraphError(
            f"{path}: line {line}, column {col}: byte 0x{raw[err.start]:02x} is not UTF-8 text; "
            "save the file as plain text (UTF-8 or ASCII): comma-separated numbers, one row "
            "per line"
        ) from None


def _content(line: str) -> str:
    """A line without its ``#`` comment and surrounding white space ('' = skipped line)."""
    return line.split("#", 1)[0].strip()


def _numbers(fields: list[str]) -> list[float] | None:
    try:
        return [float(f) for f in fields]
    except ValueError:
        return None


class _Csv:
    """A numeric CSV file: ``values`` (float64 ``[rows, cols]``) and the 1-based file line of
    each data row (:meth:`line`). An optional header line (any non-numeric first line) is
    skipped; so are empty lines and ``#`` comments."""

    def __init__(self, path: Path, what: str) -> None:
        self.path, self.what = path, what
        self.text = _read_text(path)
        self.header = 0  # line number of the header line, 0 when there is none
        for lineno, line in enumerate(io.StringIO(self.text), 1):
            content = _content(line)
            if content:
                if _numbers(content.split(",")) is None:
                    self.header = lineno
                break
        self.values = self._parse()

    def rows(self):
        """``(line number, content)`` of every data line, in order."""
        for lineno, line in enumerate(io.StringIO(self.text), 1):
            content = _content(line)
            if lineno > self.header and content:
                yield lineno, content

    def line(self, row: int) -> tuple[int, str]:
        """The file line number and content of data row ``row`` (0-based)."""
        for i, found in enumerate(self.rows()):
            if i == row:
                return found
        return 0, ""

    def field(self, row: int, col: int) -> tuple[int, str]:
        """The file line of data row ``row`` and the text of its column ``col`` as written."""
        lineno, content = self.line(row)
        fields = content.split(",")
        return lineno, fields[col].strip() if col < len(fields) else ""

    def _parse(self) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "input contained no data"
            try:
                return np.loadtxt(io.StringIO(self.text), delimiter=",", dtype=np.float64,
                                  skiprows=self.header, ndmin=2)
            except ValueError:
                pass
        # Slow path: find the first bad line (or parse what NumPy refused, e.g. blank lines
        # holding only spaces).
        out, width, first = [], None, 0
        for lineno, content in self.rows():
            fields = content.split(",")
            if width is None:
                width, first = len(fields), lineno
            elif len(fields) != width:
                raise GraphError(
                    f"{self.path}: cannot read {self.what}: line {lineno} has {len(fields)} "
                    f"column(s) but line {first} has {width}; every line needs the same "
                    "comma-separated columns"
                )
            values = _numbers(fields)
            if values is None:
                bad = next(f.strip() for f in fields if _numbers([f]) is None)
                raise GraphError(
                    f"{self.path}: cannot read {self.what}: {bad!r} on line {lineno} is not a "
                    "number; expected comma-separated numbers with an optional header line"
                )
            out.append(values)
        return np.asarray(out, dtype=np.float64).reshape(len(out), width or 0)


# ----------------------------------------------------------------------------- the files


def _read_edges(path: Path, num_nodes: int, features: str) -> torch.Tensor:
    table = _Csv(path, "edges")
    arr = table.values
    if arr.size == 0:
        return torch.empty(2, 0, dtype=torch.long)
    if arr.shape[1] != 2:
        lineno, _ = table.line(0)
        raise GraphError(
            f"{path}: edges must have exactly 2 columns (src,dst), found {arr.shape[1]} on line "
            f"{lineno}; write one edge per line as 'src,dst'"
        )
    ok = np.isfinite(arr) & (arr == np.round(arr))
    if not ok.all():
        row, col = (int(v) for v in np.argwhere(~ok)[0])
        lineno, text = table.field(row, col)
        raise GraphError(
            f"{path}: edges must be integer node indices, found {text!r} on line {lineno}; "
            f"write 0-based integer indices 0..{num_nodes - 1} (rows of {features})"
        )
    ok = (arr >= 0) & (arr < num_nodes)
    if not ok.all():
        row, col = (int(v) for v in np.argwhere(~ok)[0])
        lineno, text = table.field(row, col)
        raise GraphError(
            f"{path}: node index {text} on line {lineno} is out of range: the graph has "
            f"{num_nodes} nodes (one per row of {features}), so indices are 0..{num_nodes - 1}"
        )
    return torch.from_numpy(arr.astype(np.int64).T.copy())


def _read_features(folder: Path) -> tuple[torch.Tensor, str]:
    """Features as float32 ``[N, d]`` and the file they came from."""
    npy, csv = folder / "features.npy", folder / "features.csv"
    table = None
    if npy.is_file():
        source = npy
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                arr = np.load(npy, allow_pickle=False)
        except (ValueError, EOFError, OSError) as err:
            reason = ("the file is empty (0 bytes)" if npy.stat().st_size == 0 else
                      str(err).splitlines()[0] if str(err) else type(err).__name__)
            raise GraphError(
                f"{npy}: not a plain numeric .npy array ({reason}); save the features with "
                "np.save('features.npy', x)"
            ) from None
        if isinstance(arr, np.lib.npyio.NpzFile):
            names = ", ".join(arr.files)
            arr.close()
            raise GraphError(
                f"{npy} is an .npz archive (arrays: {names}), not a .npy array; save one array "
                "with np.save('features.npy', x)"
            )
        if arr.dtype.kind not in "fiub":
            raise GraphError(f"{npy}: features must be numeric, got dtype {arr.dtype}")
    elif csv.is_file():
        source = csv
        table = _Csv(csv, "features")
        arr = table.values
    else:
        raise GraphError(
            f"{folder} has no features.npy or features.csv; give one feature row per node "
            "(e.g. np.save('features.npy', x))"
        )
    if arr.ndim != 2:
        raise GraphError(f"features in {folder} must be a 2-D array [N, d], got shape "
                         f"{list(arr.shape)}")
    if arr.shape[0] == 0:
        raise GraphError(f"{source}: features have 0 rows; give one feature row per node")
    if arr.shape[1] == 0:
        raise GraphError(
            f"{source}: features x have 0 columns (shape {list(arr.shape)}); give at least one "
            "feature per node (without features, a column of ones will do)"
        )
    with np.errstate(all="ignore"):
        x = np.ascontiguousarray(arr, dtype=np.float32)
    bad = ~np.isfinite(x)
    if bad.any():
        row, col = (int(v) for v in np.argwhere(bad)[0])
        where = f"row {row}, column {col} (node {row})"
        if table is not None:
            where = f"line {table.line(row)[0]}, column {col} (node {row})"
        value = arr[row, col]
        fix = ("impute or drop them before loading the graph" if not np.isfinite(value) else
               f"{value:g} does not fit in float32 (largest 3.4e38): scale the features")
        raise GraphError(
            f"{source}: features x contain {int(bad.sum())} non-finite values (NaN or Inf), "
            f"first at {where}; {fix}"
        )
    return torch.from_numpy(x), source.name


def _read_labels(path: Path, num_nodes: int, features: str
                 ) -> tuple[torch.Tensor, np.ndarray | None]:
    """Labels as int64 ``[N]`` in 0..C-1 (-1 unlabelled) and, when the file's labels had to be
    renumbered, the original label of each class (else ``None``)."""
    table = _Csv(path, "labels")
    arr = table.values
    if arr.size and arr.shape[1] != 1:
        raise GraphError(
            f"{path}: labels must be a single column (one integer per node, -1 for "
            f"unlabelled), found {arr.shape[1]} columns on line {table.line(0)[0]}"
        )
    arr = arr.reshape(-1)
    if arr.size != num_nodes:
        raise GraphError(
            f"{path}: labels y have length {arr.size} but the graph has {num_nodes} nodes (rows "
            f"of {features}); give one label per node, -1 for unlabelled"
        )
    ok = np.isfinite(arr) & (arr == np.round(arr))
    if not ok.all():
        node = int(np.flatnonzero(~ok)[0])
        lineno, text = table.field(node, 0)
        raise GraphError(f"{path}: label {text} of node {node} (line {lineno}) is not an "
                         "integer; labels are class ids 0..C-1, -1 for unlabelled")
    for bad, why in ((arr < -1, "labels must be class ids 0..C-1, or -1 for unlabelled"),
                     (arr > MAX_LABEL, f"a class id above {MAX_LABEL} is not a plausible label "
                      "(is this a column of node ids or counts?); number the classes 0..C-1")):
        if bad.any():
            node = int(np.flatnonzero(bad)[0])
            lineno, text = table.field(node, 0)
            raise GraphError(f"label {text} on line {lineno} of {path} (node {node}): {why}")
    y = arr.astype(np.int64)
    labelled = y >= 0
    present = np.unique(y[labelled])
    if present.size == 0 or present[-1] == present.size - 1:
        return torch.from_numpy(y), None
    if present.size > num_nodes / 2:
        node = int(np.flatnonzero(y == present[-1])[0])
        lineno, text = table.field(node, 0)
        raise GraphError(
            f"{path}: {present.size} distinct labels for {num_nodes} nodes, not numbered "
            f"0..C-1 (label {text} on line {lineno}): this does not look like a class column; "
            "give class ids 0..C-1, -1 for unlabelled"
        )
    y[labelled] = np.searchsorted(present, y[labelled])
    pairs = [f"{v}->{c}" for c, v in enumerate(present[:8].tolist())]
    more = f", ... ({present.size} classes)" if present.size > 8 else ""
    warnings.warn(
        f"{path}: labels are not numbered 0..C-1; renumbered in order {', '.join(pairs)}{more} "
        "(kept as data.label_map and in label_map.csv of a saved graph)",
        FramekdWarning, stacklevel=3,
    )
    return torch.from_numpy(y), present


def _read_label_map(path: Path, y: torch.Tensor) -> np.ndarray:
    """``label_map.csv`` (written by :func:`save_graph_dir`): the original label of each class,
    one per line in class order."""
    table = _Csv(path, "the label map")
    values = table.values
    if values.size and values.shape[1] != 1:
        raise GraphError(f"{path}: the label map must be one column (the original label of "
                         f"class 0, 1, ...), found {values.shape[1]} columns")
    values = values.reshape(-1)
    if not (np.isfinite(values) & (values == np.round(values))).all():
        raise GraphError(f"{path}: the label map must hold integers")
    top = int(y.max()) if y.numel() else -1
    if top >= values.size:
        raise GraphError(f"{path} maps {values.size} classes but labels.csv has class {top}; "
                         "remove label_map.csv or write one line per class")
    if np.unique(values).size != values.size:
        raise GraphError(f"{path}: the label map repeats a label; one distinct label per class")
    return values.astype(np.int64)


_MASK_NAMES = ("train", "val", "test")


def _read_splits(path: Path, num_nodes: int) -> dict[str, torch.Tensor]:
    """``splits.npz``: boolean masks ``train``, ``val``, ``test`` of shape ``[S, N]`` (``S``
    fixed splits) or ``[N]`` (one); returned as ``[N, S]`` / ``[N]`` tensors, checked."""
    usage = ("np.savez('splits.npz', train=train, val=val, test=test) with boolean masks of "
             f"shape [S, {num_nodes}] (S splits) or [{num_nodes}]")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            archive = np.load(path, allow_pickle=False)
    except (ValueError, EOFError, OSError, zipfile.BadZipFile) as err:
        raise GraphError(f"{path} is not a readable .npz archive ({err}); write it with "
                         f"{usage}") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise GraphError(f"{path} holds a single array, not an .npz archive; write it with "
                         f"{usage}")
    with archive:
        names = set(archive.files)
        missing = [k for k in _MASK_NAMES if k not in names]
        extra = sorted(names - set(_MASK_NAMES))
        if missing or extra:
            found = ", ".join(sorted(names)) or "nothing"
            raise GraphError(f"{path} must hold exactly the arrays train, val, test; found "
                             f"{found}; write it with {usage}")
        masks = {}
        for k in _MASK_NAMES:
            try:
                masks[k] = archive[k]
            except (ValueError, OSError, zipfile.BadZipFile) as err:
                raise GraphError(f"{path}: cannot read array '{k}' ({err})") from None
    shapes = {k: m.shape for k, m in masks.items()}
    for k, m in masks.items():
        if m.ndim not in (1, 2) or m.shape[-1] != num_nodes:
            hint = ("; it looks transposed: store [S, N], e.g. masks.T" if m.ndim == 2
                    and m.shape[0] == num_nodes else "")
            raise GraphError(f"{path}: '{k}' has shape {list(m.shape)} but the graph has "
                             f"{num_nodes} nodes; each mask must be [S, {num_nodes}] or "
                             f"[{num_nodes}]{hint}")
        if m.dtype != np.bool_:
            if m.dtype.kind not in "iuf" or not np.isin(m, (0, 1)).all():
                raise GraphError(
                    f"{path}: '{k}' must be a boolean mask (True = node in the set), got "
                    f"dtype {m.dtype}" + (" with values other than 0/1 (node indices? "
                                          "store m = np.zeros(N, bool); m[idx] = True)"
                                          if m.dtype.kind in "iuf" else ""))
            masks[k] = m.astype(bool)
    if len(set(shapes.values())) != 1:
        raise GraphError(f"{path}: train, val and test must have the same shape, got "
                         + ", ".join(f"{k} {list(v)}" for k, v in shapes.items()))
    rows = {k: np.atleast_2d(m) for k, m in masks.items()}
    for s in range(rows["train"].shape[0]):
        where = f"split {s} (row {s} of the [S, N] masks)" if masks["train"].ndim == 2 else \
            "the split"
        for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
            both = rows[a][s] & rows[b][s]
            if both.any():
                raise GraphError(f"{path}: in {where}, {int(both.sum())} node(s) are in both "
                                 f"{a} and {b} (first: node {int(np.flatnonzero(both)[0])}); "
                                 "the sets must be disjoint")
        for k in ("train", "val"):
            if not rows[k][s].any():
                raise GraphError(f"{path}: {where} has an empty {k} set; every split needs "
                                 "training and validation nodes")
    return {k: torch.from_numpy(np.ascontiguousarray(m.T)) for k, m in masks.items()}


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
    x, features = _read_features(folder)
    n = x.size(0)
    edge_index = _read_edges(edges_file, n, features)
    y, label_map = _read_labels(labels_file, n, features)
    if label_map is None and (folder / "label_map.csv").is_file():
        label_map = _read_label_map(folder / "label_map.csv", y)
    data = Data(x=x, edge_index=edge_index, y=y, num_nodes=n)
    splits = folder / "splits.npz"
    if splits.is_file():
        for k, mask in _read_splits(splits, n).items():
            data[f"public_{k}_mask"] = mask
    data = from_data(data)
    data.name = folder.resolve().name
    if label_map is not None:
        data.label_map = torch.from_numpy(label_map)
    if splits.is_file():
        data.split_file = f"{data.name}/splits.npz"
    return data


def save_graph_dir(data: Data, path: PathLike) -> Path:
    """Write ``data`` as a graph directory that :func:`load_graph_dir` reads back.

    ``edges.csv`` lists ``edge_index`` as stored (both directions of a canonical graph),
    ``features.npy`` holds ``x`` and ``labels.csv`` holds ``y``; ``label_map.csv`` holds
    ``data.label_map`` (renumbered labels) and ``splits.npz`` the fixed public split
    (``public_{train,val,test}_mask``), when the graph has them.
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
    label_map = getattr(data, "label_map", None)
    if label_map is not None:
        with atomic_open(folder / "label_map.csv") as fh:
            fh.write("label\n")
            np.savetxt(fh, np.asarray(label_map).reshape(-1, 1), fmt="%d")
    if all(f"public_{k}_mask" in data for k in _MASK_NAMES):
        masks = {k: data[f"public_{k}_mask"].cpu().numpy().astype(bool).T
                 for k in _MASK_NAMES}  # stored [S, N] (or [N])
        with atomic_path(folder / "splits.npz") as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **masks)
    return folder
