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
  change it.

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
PROTOCOLS = ("fgkd", "geom", "public", "cpf")


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


def _per_class(y: Tensor, num_classes: int, q_train: int, q_val: int, seed: int,
               protocol: str) -> Split:
    gen = torch.Generator().manual_seed(seed)
    parts: tuple[list[Tensor], list[Tensor], list[Tensor]] = ([], [], [])
    notes = []
    for c in range(num_classes):
        idx = (y == c).nonzero().view(-1)
        n = idx.numel()
        if n == 0:
            notes.append(f"class {c} has no labelled node; it is in no split")
            continue
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
                 if protocol == "geom" else "cora, citeseer, pubmed")
        raise SplitError(
            f"protocol '{protocol}' needs the dataset's shipped split, but {name} has none "
            f"(datasets with one: {ships}); use protocol 'fgkd' or 'cpf' instead"
        )
    notes = []
    if masks[0].dim() == 2:
        total = masks[0].size(1)
        k = seed % total
        masks = tuple(m[:, k] for m in masks)
        notes.append(f"fixed Geom-GCN split {k} of {total} (seed {seed} mod {total})")
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
    key = str(protocol).strip().lower()
    if key not in PROTOCOLS:
        raise SplitError(f"unknown split protocol '{protocol}'; choose one of "
                         f"{', '.join(PROTOCOLS)}")
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
            raise SplitError(
                f"protocol '{split.protocol}' (seed {split.seed}) gives an empty {part} set on "
                f"{name} ({int((data.y >= 0).sum())} labelled nodes); label more nodes or use "
                "another protocol (cpf takes 20 train / 30 val per class)"
            )
