"""The registry of named datasets: where their raw files live and which protocols apply.

Every named dataset is described by a :class:`DatasetInfo`. The raw layout is the one
PyG's dataset classes expect (the "Data" section of ``README.md`` shows it; the data
folder's own README lists sources, licences and checksums), so PyG finds every raw file
and never calls ``download()``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Protocols (see :mod:`framekd.splits`) that make sense for every labelled graph.
RANDOM_PROTOCOLS = ("fgkd", "cpf", "random")

SYN_CORA_LEVELS = ("0.00", "0.10", "0.20", "0.30", "0.40", "0.50", "0.60", "0.70", "0.80",
                   "0.90", "0.99", "1.00")
SYN_CORA_REALISATIONS = (1, 2, 3)


@dataclass(frozen=True)
class DatasetInfo:
    """What framekd knows about a named dataset before loading it.

    Attributes:
        name: lower-case name accepted by :func:`framekd.data.load_dataset`.
        family: folder under the data root (``Planetoid``, ``WebKB``, ...).
        kind: ``homophilic``, ``heterophilic`` or ``synthetic``.
        protocols: split protocols that apply (``geom``/``public`` need shipped splits).
        folder: the dataset's folder relative to the data root (copied to the cache).
        raw_files: files (relative to the data root) that must exist to load it.
        pyg: ``(class name, keyword arguments)`` of the PyG dataset class, or ``None``.
        directed: the raw graph is directed (framekd symmetrises it).
        static: published statistics used when the files are absent
            (``nodes, edges, features, classes, homophily``); ``None`` if unknown.
    """

    name: str
    family: str
    kind: str
    protocols: tuple[str, ...]
    folder: str
    raw_files: tuple[str, ...]
    pyg: tuple[str, dict] | None = None
    directed: bool = False
    static: dict | None = field(default=None, compare=False)
    #: optional extra raw files (e.g. Geom-GCN splits of Cora); loaded when present.
    optional_files: tuple[str, ...] = ()


def _geom_splits(folder: str, stem: str) -> tuple[str, ...]:
    return tuple(f"{folder}/{stem}_split_0.6_0.2_{i}.npz" for i in range(10))


def _planetoid(name: str, static: dict) -> DatasetInfo:
    low = name.lower()
    ind = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")
    raw = tuple(f"Planetoid/{name}/raw/ind.{low}.{s}" for s in ind)
    geom = tuple(f"Planetoid/{name}/geom-gcn/raw/ind.{low}.{s}" for s in ind)
    geom += _geom_splits(f"Planetoid/{name}/geom-gcn/raw", low)
    return DatasetInfo(
        name=low, family="Planetoid", kind="homophilic",
        protocols=("fgkd", "geom", "public", "cpf", "random"), folder=f"Planetoid/{name}",
        raw_files=raw, pyg=("Planetoid", {"name": name}), static=static, optional_files=geom,
    )


def _geom_text(name: str, family: str, folder: str, raw_dir: str, stem: str,
               pyg: tuple[str, dict], static: dict) -> DatasetInfo:
    raw = (f"{raw_dir}/out1_node_feature_label.txt", f"{raw_dir}/out1_graph_edges.txt")
    return DatasetInfo(
        name=name, family=family, kind="heterophilic", protocols=("fgkd", "geom", "cpf", "random"),
        folder=folder, raw_files=raw + _geom_splits(raw_dir, stem), pyg=pyg, directed=True,
        static=static,
    )


def _npz(name: str, family: str, sub: str, file: str, static: dict) -> DatasetInfo:
    return DatasetInfo(
        name=name, family=family, kind="homophilic", protocols=RANDOM_PROTOCOLS,
        folder=f"{family}/{sub}", raw_files=(f"{family}/{sub}/raw/{file}",),
        pyg=(family, {"name": sub}), static=static,
    )


def _stats(nodes: int, edges: int, features: int, classes: int, homophily: float) -> dict:
    return dict(nodes=nodes, edges=edges, features=features, classes=classes,
                homophily=homophily)


def _build() -> dict[str, DatasetInfo]:
    # Static statistics are PyG's own (shared/data/README.md; PubMed: PyG docs). They are
    # only shown for datasets whose files are absent; available ones are measured.
    infos = [
        _planetoid("Cora", _stats(2708, 10556, 1433, 7, 0.81)),
        _planetoid("CiteSeer", _stats(3327, 9104, 3703, 6, 0.7355)),
        _planetoid("PubMed", _stats(19717, 88648, 500, 3, 0.8024)),
        _npz("computers", "Amazon", "Computers", "amazon_electronics_computers.npz",
             _stats(13752, 491722, 767, 10, 0.7772)),
        _npz("photo", "Amazon", "Photo", "amazon_electronics_photo.npz",
             _stats(7650, 238162, 745, 8, 0.8272)),
        _npz("cs", "Coauthor", "CS", "ms_academic_cs.npz",
             _stats(18333, 163788, 6805, 15, 0.8081)),
        _npz("physics", "Coauthor", "Physics", "ms_academic_phy.npz",
             _stats(34493, 495924, 8415, 5, 0.9314)),
    ]
    for name, static in (("chameleon", _stats(2277, 36101, 2325, 5, 0.235)),
                         ("squirrel", _stats(5201, 217073, 2089, 5, 0.2239))):
        folder = f"WikipediaNetwork/{name}"
        infos.append(_geom_text(name, "WikipediaNetwork", folder, f"{folder}/geom_gcn/raw",
                                name, ("WikipediaNetwork", {"name": name}), static))
    for name, static in (("cornell", _stats(183, 298, 1703, 5, 0.3054)),
                         ("texas", _stats(183, 325, 1703, 5, 0.1077)),
                         ("wisconsin", _stats(251, 515, 1703, 5, 0.1961))):
        folder = f"WebKB/{name}"
        infos.append(_geom_text(name, "WebKB", folder, f"{folder}/raw", name,
                                ("WebKB", {"name": name}), static))
    infos.append(_geom_text("actor", "Actor", "Actor", "Actor/raw", "film", ("Actor", {}),
                            _stats(7600, 30019, 932, 5, 0.2188)))
    for level in SYN_CORA_LEVELS:
        for r in SYN_CORA_REALISATIONS:
            stem = f"h{level}-r{r}"
            infos.append(DatasetInfo(
                name=f"syn-cora-{stem}", family="syn-cora", kind="synthetic",
                protocols=RANDOM_PROTOCOLS, folder="syn-cora",
                raw_files=(f"syn-cora/raw/{stem}.npz",),
            ))
    infos.append(DatasetInfo(name="csbm", family="generated", kind="synthetic",
                             protocols=RANDOM_PROTOCOLS, folder="", raw_files=()))
    return {info.name: info for info in infos}


#: Every named dataset, keyed by its lower-case name.
DATASETS: dict[str, DatasetInfo] = _build()

#: The real benchmark datasets (PubMed's raw files are not in the offline data folder).
REAL_DATASETS = tuple(i.name for i in DATASETS.values() if i.family not in
                      ("syn-cora", "generated"))
