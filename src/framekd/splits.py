r"""Train/validation/test split protocols (docs/SPEC.md §9).

State the protocol next to every number.

* ``fgkd`` (the FGKD paper's): with :math:`N_\ell` labelled nodes and :math:`C` classes,
  every class gets :math:`q = \lfloor 0.2\,N_\ell / C \rfloor` training and :math:`q`
  validation nodes, drawn at random; the rest is test. Seed ``i`` draws its own split.
* ``cpf`` (CPF, GLNN, NOSMOG): 20 training and 30 validation nodes per class at random,
  the rest is test.
* ``geom``: the 10 fixed Geom-GCN 60/20/20 splits shipped with the dataset; seed ``i``
  uses split ``i mod 10``.
* ``public``: the fixed Planetoid split (20 per class / 500 / 1000); the seed does not
  change it. A user graph folder may ship its own fixed splits (``splits.npz``, see
  :func:`framekd.data.load_graph_dir`): ``S`` of them, seed ``i`` uses split ``i mod S``.
* ``random`` (``random:TRAIN,VAL,TEST``, default ``random:0.5,0.25,0.25``): a stratified
  random split with the stated ratios, taken in every class (each class's counts rounded to
  the nearest integer); seed ``i`` draws its own split.

A class with fewer than :math:`q_{train} + q_{val} + 1` nodes has its quotas capped so
that at least one of its nodes stays in test (a single node goes to train); each cap is
recorded in :attr:`Split.notes` and warned about, never silently dropped. Unlabelled
nodes (``y = -1``) are in no split. Random draws use a ``torch.Generator`` seeded with
``seed``, so the same seed gives the same split on every machine.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch
from torch import Tensor
from torch_geometric.data import Data

from framekd.errors import FramekdWarning, SplitError

#: Protocol names accepted by :func:`make_split`.
PROTOCOLS = ("fgkd", "geom", "public", "cpf", "random")
#: Train/val/test ratios of ``random`` when none are given.
RANDOM_RATIOS = (0.5, 0.25, 0.25)


@dataclass
class Split:
    """Disjoint int64 node-index tensors of one split, with its provenance.

    Attributes:
        train, val, test: sorted node indices.
        protocol: the protocol name.
        seed: the seed it was drawn with (for fixed splits: the seed asked for).
        notes: human-readable remarks (capped classes, which fixed split was used).
    """

    train: Tensor
    val: Tensor
    test: Tensor
    protocol: str
    seed: int
    notes: list[str] = field(default_factory=list)

    def masks(self, num_nodes: int) -> tuple[Tensor, Tensor, Tensor]:
        """Boolean ``(train_mask, val_mask, test_mask)`` of length ``num_nodes``."""
        out = []
        for idx in (self.train, self.val, self.test):
            mask = torch.zeros(num_nodes, dtype=torch.bool)
            mask[idx] = True
            out.append(mask)
        return tuple(out)

    def __repr__(self) -> str:
        return (f"Split(protocol={self.protocol!r}, seed={self.seed}, train={self.train.numel()}, "
                f"val={self.val.numel()}, test={self.test.numel()}, notes={len(self.notes)})")


def _capped(n: int, q_train: int, q_val: int) -> tuple[int, int]:
    """Train/val counts for a class of ``n`` nodes, keeping one for test when ``n > 1``."""
    if n >= q_train + q_val + 1:
        return q_train, q_val
    if n == 1:
        return min(1, q_train), 0
    spare = n - 1
    t = min(q_train, max(1, (2 * spare * q_train + q_train + q_val) // (2 * (q_train + q_val))))
    return t, min(q_val, spare - t)


def _absent(present: list[int], num_classes: int) -> list[str]:
    """Notes for the classes in ``0..num_classes-1`` without a labelled node, found from the
    gaps between the present classes (no loop over an absent range: a label of 10**12 costs
    nothing), at most a few of them listed."""
    gaps, missing = [], 0
    for lo, hi in zip([-1, *present], [*present, num_classes], strict=True):
        if hi - lo > 1:
            gaps.append(str(lo + 1) if hi - lo == 2 else f"{lo + 1}-{hi - 1}")
            missing += hi - lo - 1
    if not missing:
        return []
    if missing == 1:
        return [f"class {gaps[0]} has no labelled node; it is in no split"]
    shown = ", ".join(gaps[:5]) + (", ..." if len(gaps) > 5 else "")
    return [f"{missing} classes ({shown}) have no labelled node; they are in no split (the "
            "class count is the largest label + 1: number classes 0..C-1 without gaps)"]


def _per_class(y: Tensor, num_classes: int, q_train: int, q_val: int, seed: int,
               protocol: str) -> Split:
    gen = torch.Generator().manual_seed(seed)
    parts: tuple[list[Tensor], list[Tensor], list[Tensor]] = ([], [], [])
    present = torch.unique(y[y >= 0]).tolist()
    notes = _absent(present, num_classes)
    for c in present:  # the classes in order, as before; absent ones draw nothing
        idx = (y == c).nonzero().view(-1)
        n = idx.numel()
        idx = idx[torch.randperm(n, generator=gen)]
        t, v = _capped(n, q_train, q_val)
        if (t, v) != (q_train, q_val):
            notes.append(
                f"class {c} has only {n} labelled node(s), fewer than the {q_train} train + "
                f"{q_val} val + 1 test the protocol asks for: capped to {t} train / {v} val / "
                f"{n - t - v} test"
            )
        for part, chunk in zip(parts, (idx[:t], idx[t:t + v], idx[t + v:]), strict=True):
            part.append(chunk)
    train, val, test = (torch.cat(p).sort().values if p else torch.empty(0, dtype=torch.long)
                        for p in parts)
    return Split(train, val, test, protocol, seed, notes)


def _shipped(data: Data, prefix: str, protocol: str) -> tuple[Tensor, Tensor, Tensor] | None:
    names = [f"{prefix}_{p}_mask" for p in ("train", "val", "test")]
    if all(n in data for n in names):
        return tuple(data[n] for n in names)
    # A plain PyG object (not loaded through framekd) keeps train_mask/val_mask/test_mask:
    # [N, S] masks are Geom-GCN style, [N] masks a single fixed (public) split.
    if all(f"{p}_mask" in data for p in ("train", "val", "test")):
        masks = tuple(data[f"{p}_mask"] for p in ("train", "val", "test"))
        if (masks[0].dim() == 2) == (protocol == "geom"):
            return masks
    return None


def _fixed(data: Data, protocol: str, seed: int, labelled: Tensor) -> Split:
    prefix = "geom" if protocol == "geom" else "public"
    masks = _shipped(data, prefix, protocol)
    name = getattr(data, "name", None) or "this graph"
    if masks is None:
        ships = ("chameleon, squirrel, cornell, texas, wisconsin, actor, cora, citeseer"
                 if protocol == "geom" else "cora, citeseer, pubmed, and graph folders with a "
                 "splits.npz")
        raise SplitError(
            f"protocol '{protocol}' needs the dataset's shipped split, but {name} has none "
            f"(datasets with one: {ships}); use protocol 'fgkd' or 'cpf' instead"
        )
    notes = []
    source = getattr(data, "split_file", None) if protocol == "public" else None
    if masks[0].dim() == 2:
        total = masks[0].size(1)
        k = seed % total
        masks = tuple(m[:, k] for m in masks)
        kind = "split" if source else "Geom-GCN split"
        origin = f" from {source}" if source else ""
        notes.append(f"fixed {kind} {k} of {total}{origin} (seed {seed} mod {total})")
    elif source:
        notes.append(f"fixed split of {source}; the seed does not change it")
    else:
        notes.append("fixed Planetoid public split; the seed does not change it")
    train, val, test = (m.bool() & labelled for m in masks)
    if (train & val).any() or (train & test).any() or (val & test).any():
        raise SplitError(f"the shipped '{protocol}' split of {name} overlaps between train, val "
                         "and test; its mask files are corrupt")
    unused = int((labelled & ~(train | val | test)).sum())
    if unused:
        notes.append(f"{unused} labelled node(s) are in none of the shipped sets")
    return Split(*(m.nonzero().view(-1) for m in (train, val, test)), protocol, seed, notes)


def make_split(data: Data, protocol: str, seed: int) -> Split:
    """Build the ``protocol`` split of ``data`` for ``seed``.

    Args:
        data: a graph with labels ``y`` (``-1`` = unlabelled); ``geom``/``public`` also
            need the masks :func:`framekd.data.load_dataset` keeps.
        protocol: one of ``fgkd``, ``geom``, ``public``, ``cpf``.
        seed: a non-negative integer; the same seed gives the same split.

    Raises:
        SplitError: unknown protocol, no labels, no shipped split, or an empty training
            or validation set.
    """
    key, ratios = parse_protocol(protocol)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise SplitError(f"split seed must be a non-negative integer, got {seed!r}")
    y = getattr(data, "y", None)
    if y is None:
        raise SplitError("the graph has no labels y; a split needs labelled nodes")
    y = y.view(-1).long()
    labelled = y >= 0
    num_classes = int(y[labelled].max()) + 1 if labelled.any() else 0
    num_classes = max(num_classes, int(getattr(data, "num_classes", 0) or 0))
    if key in ("geom", "public"):
        split = _fixed(data, key, seed, labelled)
    elif key == "random":
        split = _random(y, ratios, seed)
    else:
        if key == "fgkd":
            q_train = q_val = int(labelled.sum()) // (5 * max(num_classes, 1))  # ⌊0.2 N / C⌋
        else:
            q_train, q_val = 20, 30
        split = _per_class(y, num_classes, q_train, q_val, seed, key)
    if any("capped" in n or "no labelled" in n for n in split.notes):
        warnings.warn(f"split '{key}' (seed {seed}): " + "; ".join(split.notes), FramekdWarning,
                      stacklevel=2)
    _check_nonempty(split, data)
    return split


def _check_nonempty(split: Split, data: Data) -> None:
    name = getattr(data, "name", None) or "the graph"
    for part in ("train", "val"):
        if getattr(split, part).numel() == 0:
            y = data.y.view(-1)
            labelled = y[y >= 0]
            hint = ""
            if labelled.numel():
                top, present = int(labelled.max()), int(torch.unique(labelled).numel())
                if top + 1 > present:  # gaps: the class count is inflated by a large label
                    hint = (f"; the largest label is {top}, so the graph counts {top + 1} "
                            f"classes but only {present} occur: number the classes 0..C-1")
            raise SplitError(
                f"protocol '{split.protocol}' (seed {split.seed}) gives an empty {part} set on "
                f"{name} ({labelled.numel()} labelled nodes){hint}; label more nodes or use "
                "another protocol (cpf takes 20 train / 30 val per class, random:0.5,0.25,0.25 "
                "a share of every class)"
            )


def parse_protocol(protocol: str) -> tuple[str, tuple[float, float, float] | None]:
    """``(name, ratios)`` of a protocol spec: ``fgkd``, ..., ``random`` or
    ``random:TRAIN,VAL,TEST`` (ratios for ``random``, else ``None``).

    Raises:
        SplitError: an unknown name, options on a protocol without any, or ratios that are
            not three positive numbers summing to 1.
    """
    text = str(protocol).strip().lower()
    key, sep, body = text.partition(":")
    key = key.strip()
    if key not in PROTOCOLS:
        raise SplitError(f"unknown split protocol '{protocol}'; choose one of "
                         f"{', '.join(PROTOCOLS)} (random:TRAIN,VAL,TEST sets the ratios)")
    if key != "random":
        if sep:
            raise SplitError(f"protocol '{key}' takes no options, got '{protocol}'")
        return key, None
    if not sep:
        return key, RANDOM_RATIOS
    usage = ("write random:TRAIN,VAL,TEST with three positive ratios summing to 1, e.g. "
             "random:0.6,0.2,0.2")
    items = [p.strip() for p in body.split(",")]
    try:
        ratios = tuple(float(p) for p in items)
    except ValueError:
        raise SplitError(f"protocol '{protocol}': the ratios are not numbers; {usage}") from None
    if len(ratios) != 3:
        raise SplitError(f"protocol '{protocol}' gives {len(ratios)} ratio(s); {usage}")
    if not all(0.0 < r < 1.0 for r in ratios):  # also rejects nan and inf
        raise SplitError(f"protocol '{protocol}': every ratio must lie in (0, 1); {usage}")
    if abs(sum(ratios) - 1.0) > 1e-6:
        raise SplitError(f"protocol '{protocol}': the ratios sum to {sum(ratios):g}, not 1; "
                         f"{usage}")
    return key, ratios


def _ratio_counts(n: int, ratios: tuple[float, float, float]) -> tuple[int, int]:
    """Train/val counts of a class of ``n`` nodes: each rounded to nearest (half up), at least
    one train node, and one node kept for test when ``n > 1``."""
    t = max(1, int(ratios[0] * n + 0.5))
    v = int(ratios[1] * n + 0.5)
    if n == 1:
        return 1, 0
    t = min(t, n - 1)
    return t, min(v, n - 1 - t)


def _random(y: Tensor, ratios: tuple[float, float, float], seed: int) -> Split:
    """Stratified random split: in every class ``ratios`` of its labelled nodes (see
    :func:`_ratio_counts`); classes too small to give every set a node are noted."""
    gen = torch.Generator().manual_seed(seed)
    nodes = (y >= 0).nonzero().view(-1)
    nodes = nodes[torch.randperm(nodes.numel(), generator=gen)]  # random order ...
    nodes = nodes[torch.sort(y[nodes], stable=True).indices]  # ... grouped by class
    classes, counts = torch.unique_consecutive(y[nodes], return_counts=True)
    parts: tuple[list[Tensor], list[Tensor], list[Tensor]] = ([], [], [])
    notes, small, start = [], [], 0
    for c, n in zip(classes.tolist(), counts.tolist(), strict=True):
        idx = nodes[start:start + n]
        start += n
        t, v = _ratio_counts(n, ratios)
        if min(t, v, n - t - v) == 0:
            small.append(f"class {c} ({n} node(s): {t} train / {v} val / {n - t - v} test)")
        for part, chunk in zip(parts, (idx[:t], idx[t:t + v], idx[t + v:]), strict=True):
            part.append(chunk)
    if small:
        shown = "; ".join(small[:5]) + ("; ..." if len(small) > 5 else "")
        notes.append(f"{len(small)} class(es) too small for every set at ratios "
                     f"{'/'.join(f'{r:g}' for r in ratios)}, capped: {shown}")
    train, val, test = (torch.cat(p).sort().values if p else torch.empty(0, dtype=torch.long)
                        for p in parts)
    name = "random:" + ",".join(f"{r:g}" for r in ratios)
    return Split(train, val, test, name if ratios != RANDOM_RATIOS else "random", seed, notes)


def stratified_subset(nodes: Tensor, y: Tensor, fraction: float, seed: int) -> Tensor:
    r"""A seeded random subset of ``nodes`` with ``fraction`` of them, stratified by class.

    The subset has :math:`\lfloor f\,n + 1/2 \rfloor` of the :math:`n` nodes (``fraction``
    :math:`f` rounded half up); class :math:`c` with :math:`n_c` of them contributes
    :math:`\lfloor f\,n_c \rfloor` nodes, and the few left to reach the total go one each to
    the classes with the largest remainders :math:`f\,n_c - \lfloor f\,n_c \rfloor` (ties in
    a seeded random order). Within a class the nodes are drawn at random. Every draw uses
    one ``torch.Generator`` seeded with ``seed``: the same seed gives the same subset on every
    machine, different seeds different subsets.

    Args:
        nodes: node indices (distinct).
        y: labels of all nodes (``y[nodes]`` is used).
        fraction: the share to draw, in ``[0, 1]``.
        seed: a non-negative integer.

    Returns:
        The sorted int64 indices of the subset.
    """
    if not 0.0 <= float(fraction) <= 1.0:
        raise SplitError(f"fraction must lie in [0, 1], got {fraction!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise SplitError(f"seed must be a non-negative integer, got {seed!r}")
    nodes = torch.as_tensor(nodes).long().view(-1).cpu()
    labels = y.view(-1).long().cpu()[nodes]
    gen = torch.Generator().manual_seed(seed)
    classes = labels.unique()
    counts = [int((labels == c).sum()) for c in classes.tolist()]
    quota = [int(fraction * n) for n in counts]
    left = int(fraction * nodes.numel() + 0.5) - sum(quota)
    tie = torch.randperm(len(counts), generator=gen).tolist()
    rank = sorted(range(len(counts)), key=lambda i: (-(fraction * counts[i] - quota[i]), tie[i]))
    for i in rank[:max(0, left)]:
        quota[i] = min(counts[i], quota[i] + 1)
    parts = []
    for c, q in zip(classes.tolist(), quota, strict=True):
        idx = nodes[labels == c]
        parts.append(idx[torch.randperm(idx.numel(), generator=gen)[:q]])
    if not parts:
        return torch.empty(0, dtype=torch.long)
    return torch.cat(parts).sort().values
