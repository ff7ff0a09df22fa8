"""Split protocols: quotas against brute-force counts, determinism, capping, fixed splits."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch_geometric.data import Data

from framekd import FramekdWarning, SplitError
from framekd.splits import PROTOCOLS, Split, make_split


def _labelled(sizes, unlabelled=0) -> Data:
    y = torch.cat([torch.full((n,), c) for c, n in enumerate(sizes)]
                  + [torch.full((unlabelled,), -1)])
    y = y[torch.randperm(y.numel(), generator=torch.Generator().manual_seed(0))]
    return Data(y=y, num_nodes=y.numel())


def _check_partition(split: Split, y: torch.Tensor) -> None:
    sets = [set(t.tolist()) for t in (split.train, split.val, split.test)]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert set.union(*sets) == set((y >= 0).nonzero().view(-1).tolist())
    for t in (split.train, split.val, split.test):
        assert t.dtype == torch.int64 and bool((t[1:] > t[:-1]).all())  # sorted, no repeats


def test_fgkd_quota_per_class():
    data = _labelled([30, 25, 45], unlabelled=10)
    split = make_split(data, "fgkd", seed=0)
    q = (100 * 2) // (10 * 3)  # floor(0.2 * 100 labelled / 3 classes) = 6
    for c in range(3):
        assert (data.y[split.train] == c).sum() == q
        assert (data.y[split.val] == c).sum() == q
    assert split.test.numel() == 100 - 6 * q
    _check_partition(split, data.y)
    assert split.protocol == "fgkd" and split.seed == 0 and split.notes == []


def test_cpf_takes_20_train_30_val_per_class():
    data = _labelled([60, 70])
    split = make_split(data, "CPF", seed=5)
    for c in range(2):
        assert (data.y[split.train] == c).sum() == 20
        assert (data.y[split.val] == c).sum() == 30
    _check_partition(split, data.y)


def test_same_seed_same_split_different_seed_different_split():
    data = _labelled([40, 40, 40])
    a, b = make_split(data, "fgkd", 3), make_split(data, "fgkd", 3)
    c = make_split(data, "fgkd", 4)
    # Node indices are integers, so the tolerance is 0.
    torch.testing.assert_close(a.train, b.train, rtol=0, atol=0)
    torch.testing.assert_close(a.val, b.val, rtol=0, atol=0)
    assert a.train.tolist() != c.train.tolist()


def test_small_class_is_capped_and_reported_not_dropped():
    data = _labelled([50, 50, 3])
    with pytest.warns(FramekdWarning, match=r"class 2 has only 3 labelled node"):
        split = make_split(data, "fgkd", seed=1)
    # quota floor(0.2 * 103 / 3) = 6 > 3 nodes: 1 train, 1 val, 1 test for class 2
    assert [(data.y[s] == 2).sum().item() for s in (split.train, split.val, split.test)] == [
        1, 1, 1]
    assert any("capped to 1 train / 1 val / 1 test" in n for n in split.notes)
    _check_partition(split, data.y)


def test_single_node_class_goes_to_train():
    data = _labelled([40, 40, 1])
    with pytest.warns(FramekdWarning):
        split = make_split(data, "cpf", seed=0)
    assert (data.y[split.train] == 2).sum() == 1


def test_declared_class_without_nodes_is_noted():
    data = _labelled([40, 40])
    data.num_classes = 3
    with pytest.warns(FramekdWarning, match="class 2 has no labelled node"):
        split = make_split(data, "fgkd", seed=0)
    assert any("class 2" in n for n in split.notes)


def _with_geom(n=20, num_splits=10) -> Data:
    data = _labelled([n // 2, n - n // 2])
    cols = [torch.roll(torch.arange(n) % 5, k) for k in range(num_splits)]
    data.geom_train_mask = torch.stack([c < 3 for c in cols], 1)
    data.geom_val_mask = torch.stack([c == 3 for c in cols], 1)
    data.geom_test_mask = torch.stack([c == 4 for c in cols], 1)
    return data


def test_geom_uses_split_seed_mod_10():
    data = _with_geom()
    split = make_split(data, "geom", seed=12)
    # Integer node indices: tolerance 0.
    torch.testing.assert_close(split.train, data.geom_train_mask[:, 2].nonzero().view(-1),
                               rtol=0, atol=0)
    torch.testing.assert_close(split.test, data.geom_test_mask[:, 2].nonzero().view(-1),
                               rtol=0, atol=0)
    assert "split 2 of 10" in split.notes[0]
    torch.testing.assert_close(make_split(data, "geom", 2).train, split.train, rtol=0, atol=0)


def test_geom_accepts_plain_pyg_masks_and_drops_unlabelled():
    data = _with_geom()
    data.train_mask, data.val_mask, data.test_mask = (
        data.pop(f"geom_{p}_mask") for p in ("train", "val", "test"))
    data.y[0] = -1
    split = make_split(data, "geom", seed=0)
    assert 0 not in split.train.tolist() + split.val.tolist() + split.test.tolist()


def test_public_uses_the_fixed_masks_whatever_the_seed():
    data = _labelled([10, 10])
    mask = torch.zeros(20, dtype=torch.bool)
    data.public_train_mask = mask.clone().index_fill_(0, torch.arange(0, 6), True)
    data.public_val_mask = mask.clone().index_fill_(0, torch.arange(6, 10), True)
    data.public_test_mask = mask.clone().index_fill_(0, torch.arange(10, 20), True)
    a, b = make_split(data, "public", 0), make_split(data, "public", 9)
    assert a.train.tolist() == list(range(6))
    torch.testing.assert_close(a.test, b.test, rtol=0, atol=0)  # integer node indices


def test_protocols_without_shipped_splits_fail_clearly():
    data = _labelled([30, 30])
    data.name = "photo"
    with pytest.raises(SplitError, match=r"'geom' needs the dataset's shipped split, but photo"):
        make_split(data, "geom", 0)
    with pytest.raises(SplitError, match=r"'public' .* use protocol 'fgkd' or 'cpf'"):
        make_split(data, "public", 0)


def test_overlapping_shipped_split_is_rejected():
    data = _with_geom()
    data.geom_val_mask[:, 0] = data.geom_train_mask[:, 0]
    with pytest.raises(SplitError, match="overlaps"):
        make_split(data, "geom", 0)


@pytest.mark.parametrize("protocol, seed, message", [
    ("bogus", 0, r"unknown split protocol 'bogus'; choose one of fgkd, geom, public, cpf, "
                 r"random"),
    ("fgkd", -1, r"non-negative integer, got -1"),
    ("fgkd", 1.5, r"non-negative integer, got 1.5"),
])
def test_bad_arguments(protocol, seed, message):
    with pytest.raises(SplitError, match=message):
        make_split(_labelled([10, 10]), protocol, seed)


def test_masks_helper():
    split = Split(torch.tensor([0, 2]), torch.tensor([1]), torch.tensor([3]), "fgkd", 0)
    train, val, test = split.masks(5)
    assert train.tolist() == [True, False, True, False, False]
    assert val.tolist() == [False, True, False, False, False]
    assert test.tolist() == [False, False, False, True, False]


def test_all_protocols_named():
    assert PROTOCOLS == ("fgkd", "geom", "public", "cpf", "random")


def test_no_warning_when_nothing_is_capped():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_split(_labelled([100, 100]), "cpf", 0)
