"""Shared pytest fixtures.

* ``data_root``: the offline datasets folder from ``FRAMEKD_DATA``; tests that use it
  are skipped (with the reason) when it is unset or missing. Mark them ``@pytest.mark.data``.
* The cache root (``FRAMEKD_CACHE``) points at a per-session temporary folder unless the
  caller set it (``.ci/run`` does), so tests never write into the user's ``~/.cache``.
* ``tests/`` is put on ``sys.path`` so test files can ``from helpers import ...`` (the shared
  factories and oracles in ``tests/helpers.py``) under any pytest ``--import-mode``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

_TESTS = str(Path(__file__).resolve().parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)


@pytest.fixture(scope="session", autouse=True)
def _cache_root(tmp_path_factory):
    if os.environ.get("FRAMEKD_CACHE"):
        yield Path(os.environ["FRAMEKD_CACHE"])
        return
    path = tmp_path_factory.mktemp("framekd-cache")
    os.environ["FRAMEKD_CACHE"] = str(path)
    yield path
    os.environ.pop("FRAMEKD_CACHE", None)


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The shared offline data folder (``FRAMEKD_DATA``), or skip."""
    root = os.environ.get("FRAMEKD_DATA")
    if not root:
        pytest.skip("FRAMEKD_DATA is not set; real-data tests need the offline datasets")
    path = Path(root)
    if not (path / "Planetoid").is_dir():
        pytest.skip(f"FRAMEKD_DATA={root} does not hold the offline datasets (no Planetoid/)")
    return path


@pytest.fixture
def small_graph():
    """A 60-node, 3-class CSBM graph (canonical, float32 x, int64 y)."""
    from framekd.data import csbm

    return csbm(num_nodes=60, num_classes=3, avg_degree=4.0, homophily=0.7,
                num_features=8, seed=0)
