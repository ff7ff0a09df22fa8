"""Loading named datasets offline through PyG's own dataset classes.

Data root (where raw files are read): the ``root`` argument, else ``$FRAMEKD_DATA``,
else ``<cache>/data``. The cache root is ``$FRAMEKD_CACHE``, else
``$XDG_CACHE_HOME/framekd``, else ``~/.cache/framekd``.

The data root is treated as read-only: the dataset's folder is copied (raw files only)
to ``<cache>/pyg/<key>/`` and PyG processes the copy, so ``processed/`` never lands in
a shared folder. ``<key>`` hashes the source files' paths, sizes and modification times,
so edited raw files get a fresh copy. framekd never downloads: a missing file raises
:class:`~framekd.errors.DatasetNotFoundError` before PyG is called, and PyG's
``download()`` is replaced by the same error as a second line of defence.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import io
import os
import re
import shutil
import tempfile
from pathlib import Path

from filelock import FileLock
from torch_geometric.data import Data

from framekd.data.registry import DATASETS, SYN_CORA_LEVELS, DatasetInfo
from framekd.errors import ConfigError, DatasetNotFoundError
from framekd.graph import canonicalize

PathLike = str | os.PathLike

_SYN_CORA = re.compile(r"^syn-cora-h(\d+(?:\.\d+)?)-r(\d+)$")


def cache_root() -> Path:
    """Writable root for PyG working copies, statistics and knowledge caches."""
    env = os.environ.get("FRAMEKD_CACHE")
    if env:
        return _folder(Path(env).expanduser(), "FRAMEKD_CACHE")
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return _folder(Path(xdg).expanduser(), "XDG_CACHE_HOME") / "framekd"
    return Path.home() / ".cache" / "framekd"


def _folder(path: Path, variable: str) -> Path:
    """``path`` unless it, or the first existing folder above it, is not a folder."""
    found = path
    while not found.exists() and found.parent != found:
        found = found.parent
    if found.exists() and not found.is_dir():
        where = "is" if found == path else f"lies under {found}, which is"
        raise ConfigError(
            f"{variable}={path} {where} a file, not a folder; point {variable} at a folder "
            "(it is created when missing)"
        )
    return path


def data_root(root: PathLike | None = None) -> Path:
    """The folder raw datasets are read from: ``root`` > ``$FRAMEKD_DATA`` > ``<cache>/data``."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("FRAMEKD_DATA")
    if env:
        return Path(env).expanduser()
    return cache_root() / "data"


def _root_origin(root: PathLike | None) -> str:
    if root is not None:
        return "the root argument"
    if os.environ.get("FRAMEKD_DATA"):
        return "FRAMEKD_DATA"
    return "the default, since FRAMEKD_DATA is unset"


def resolve_name(name: str) -> str:
    """Map a user-typed dataset name to its registry key (case-insensitive).

    ``syn-cora-h0.5-r1`` is accepted for ``syn-cora-h0.50-r1``.
    """
    key = name.strip().lower()
    match = _SYN_CORA.match(key)
    if match:
        key = f"syn-cora-h{float(match.group(1)):.2f}-r{match.group(2)}"
    if key in DATASETS:
        return key
    if key.startswith("syn-cora"):
        raise ConfigError(
            f"unknown syn-cora dataset '{name}'; use syn-cora-h<level>-r<1|2|3> with level in "
            f"{', '.join(SYN_CORA_LEVELS)} (e.g. syn-cora-h0.50-r1)"
        )
    if key.startswith("ogbn-"):
        raise DatasetNotFoundError(
            f"dataset '{name}' is an OGB dataset; it needs the `ogb` package and its "
            "downloaded files, and framekd works offline without them. Load it with "
            "ogb.nodeproppred.PygNodePropPredDataset yourself and pass the Data object to "
            "framekd.data.from_data"
        )
    close = difflib.get_close_matches(key, [n for n in DATASETS if "syn-cora" not in n], n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ConfigError(
        f"unknown dataset '{name}'.{hint} Known names: `framekd datasets` lists them; a "
        "directory path loads your own graph (edges.csv, features.npy, labels.csv)"
    )


def missing_files(name: str, root: PathLike | None = None) -> list[str]:
    """Raw files of dataset ``name`` that are absent from the data root."""
    info = DATASETS[resolve_name(name)]
    base = data_root(root)
    return [f for f in info.raw_files if not (base / f).is_file()]


def is_available(name: str, root: PathLike | None = None) -> bool:
    """Whether every raw file of ``name`` exists offline (generated datasets: always)."""
    return not missing_files(name, root)


def _not_found(info: DatasetInfo, root: PathLike | None, missing: list[str]) -> Exception:
    base = data_root(root)
    hint = ""
    if info.name == "pubmed":
        hint = (" PubMed's files are not in the offline data folder: put the 8 ind.pubmed.* "
                "files of kimiyoung/planetoid (data/) in Planetoid/PubMed/raw/.")
    return DatasetNotFoundError(
        f"dataset '{info.name}' is not available offline: {len(missing)} raw file(s) missing "
        f"under {base / info.folder} (first: {missing[0]}). framekd looked in the data root "
        f"{base} ({_root_origin(root)}); set FRAMEKD_DATA to the folder that holds "
        f"'{info.family}/' or pass root=. framekd never downloads.{hint}"
    )


def _source_key(info: DatasetInfo, base: Path, files: list[str]) -> str:
    import torch_geometric

    h = hashlib.sha256()
    h.update(f"{base.resolve()}|{torch_geometric.__version__}".encode())
    for rel in sorted(files):
        st = (base / rel).stat()
        h.update(f"|{rel}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _working_copy(info: DatasetInfo, base: Path, files: list[str]) -> Path:
    """Copy the raw files of ``info`` to the cache; return the PyG root of the copy."""
    work = cache_root() / "pyg" / _source_key(info, base, files)
    if not (work / info.folder).is_dir():
        work.mkdir(parents=True, exist_ok=True)
        # Copy into a temporary folder and rename, so a concurrent or interrupted run
        # never sees a half-copied raw folder.
        tmp = Path(tempfile.mkdtemp(prefix=".copy-", dir=work))
        for rel in files:
            dst = tmp / Path(rel).relative_to(info.folder)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(base / rel, dst)
        (work / info.folder).parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(tmp, work / info.folder)
        except OSError:  # another process won the race
            shutil.rmtree(tmp, ignore_errors=True)
    return work / info.family


def _offline_class(cls: type, info: DatasetInfo, base: Path) -> type:
    """``cls`` with ``download()`` replaced by a clear error (never touch the network)."""

    def download(self) -> None:
        missing = [os.path.basename(p) for p in self.raw_paths if not os.path.exists(p)]
        raise DatasetNotFoundError(
            f"dataset '{info.name}': PyG wants raw file(s) {', '.join(missing[:3])} that are "
            f"not under {base / info.folder}; framekd never downloads. Add them there or set "
            "FRAMEKD_DATA to a complete copy"
        )

    return type(cls.__name__, (cls,), {"download": download, "__module__": cls.__module__})


def _load_pyg(info: DatasetInfo, root: PathLike | None) -> Data:
    import torch_geometric.datasets as pyg_datasets

    base = data_root(root)
    missing = [f for f in info.raw_files if not (base / f).is_file()]
    if missing:
        raise _not_found(info, root, missing)
    optional = [f for f in info.optional_files if (base / f).is_file()]
    with_geom = bool(optional) and len(optional) == len(info.optional_files)
    files = list(info.raw_files) + (optional if with_geom else [])
    pyg_root = _working_copy(info, base, files)

    cls_name, kwargs = info.pyg
    cls = _offline_class(getattr(pyg_datasets, cls_name), info, base)
    # PyG processes a first load in place and writes processed/*.pt as it goes; another
    # process loading the same copy meanwhile would read half-written files, so loads of
    # one working copy take turns.
    with FileLock(f"{pyg_root}.lock"):
        data = _quiet(cls, str(pyg_root), **kwargs)[0]
        geom = (_quiet(cls, str(pyg_root), split="geom-gcn", **kwargs)[0]
                if cls_name == "Planetoid" and with_geom else None)
    if cls_name == "Planetoid":
        data = _attach_masks(data, "public")
        if geom is not None:
            for part in ("train", "val", "test"):
                data[f"geom_{part}_mask"] = geom[f"{part}_mask"].bool()
    elif "train_mask" in data and data.train_mask.dim() == 2:
        data = _attach_masks(data, "geom")
    return data


def _quiet(cls: type, *args, **kwargs):
    # PyG prints "Processing..."/"Done!" on first load; keep `--json` output and logs clean.
    with contextlib.redirect_stderr(io.StringIO()):
        return cls(*args, **kwargs)


def _attach_masks(data: Data, prefix: str) -> Data:
    """Rename PyG's ``train/val/test_mask`` to ``<prefix>_*_mask`` (read by make_split)."""
    for part in ("train", "val", "test"):
        mask = data[f"{part}_mask"].bool()
        del data[f"{part}_mask"]
        data[f"{prefix}_{part}_mask"] = mask
    return data


def load_dataset(name: str | PathLike, root: PathLike | None = None, **kwargs) -> Data:
    r"""Load a dataset as a canonical PyG graph.

    Args:
        name: a registry name (case-insensitive: ``cora``, ``chameleon``,
            ``syn-cora-h0.50-r1``, ...), ``csbm`` (generated; ``kwargs`` go to
            :func:`~framekd.data.csbm`) or a spec ``csbm:n=2000,h=0.2,seed=1``, or a
            directory holding a user graph (see :func:`~framekd.data.load_graph_dir`).
        root: data root to read raw files from (default ``$FRAMEKD_DATA``, else
            ``<cache>/data``).

    Returns:
        The canonical graph (symmetric, no self-loops, no duplicates; see
        :func:`framekd.graph.canonicalize`) with float32 ``x``, int64 ``y`` and
        ``name`` set. Shipped splits are kept as boolean masks
        ``public_{train,val,test}_mask`` (``[N]``, Planetoid) and
        ``geom_{train,val,test}_mask`` (``[N, 10]``, Geom-GCN); use
        :func:`framekd.splits.make_split` rather than reading them.

    Raises:
        DatasetNotFoundError: raw files are missing (never downloads).
        ConfigError: unknown name or unexpected keyword arguments.
    """
    from framekd.data.csbm import csbm, parse_csbm_spec
    from framekd.data.syn_cora import load_syn_cora
    from framekd.data.user import load_graph_dir

    text = os.fspath(name)
    lowered = text.strip().lower()
    if lowered == "csbm" or lowered.startswith("csbm:"):
        params = parse_csbm_spec(text) | kwargs
        data = csbm(**params)
        data.name = "csbm"
        return data
    if lowered not in DATASETS and Path(text).expanduser().is_dir():
        _no_kwargs(text, kwargs)
        return load_graph_dir(text)
    if os.sep in text or text.startswith(".") or text.startswith("~"):
        raise DatasetNotFoundError(
            f"graph directory '{text}' does not exist; create it with edges.csv, "
            "features.npy (or features.csv) and labels.csv, or give a dataset name"
        )
    info = DATASETS[resolve_name(text)]
    _no_kwargs(info.name, kwargs)
    if info.family == "syn-cora":
        base = data_root(root)
        missing = [f for f in info.raw_files if not (base / f).is_file()]
        if missing:
            raise _not_found(info, root, missing)
        data = load_syn_cora(base / info.raw_files[0])
    else:
        data = _load_pyg(info, root)
    data.x = data.x.float()
    data.y = data.y.long()
    data = canonicalize(data, warn=False)  # named sets: symmetrisation is documented
    data.name = info.name
    return data


def _no_kwargs(name: str, kwargs: dict) -> None:
    if kwargs:
        raise ConfigError(
            f"dataset '{name}' takes no options, got {', '.join(sorted(kwargs))}; options are "
            "only for generated graphs (csbm)"
        )
