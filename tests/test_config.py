"""Typed settings: resolved once, validated once, numbers read as numbers."""

from __future__ import annotations

import pytest

from framekd.config import RunConfig, resolve
from framekd.errors import ConfigError
from framekd.framelets import FrameletSpec

TINY = "csbm:n=60,h=0.3,seed=1"


def test_run_config_types_every_section():
    rc = RunConfig.from_dict(resolve(TINY, overrides=["framelet.levels=2", "teacher.lr=5e-3",
                                                       "student.weight_decay=1e-4"]))
    assert rc.framelet == FrameletSpec(levels=2)
    assert rc.teacher.lr == 0.005 and rc.student.weight_decay == 1e-4  # YAML reads 5e-3 as text
    assert rc.student.names == ("mlp", "fmlp-s", "fmlp-o") and rc.rewire is None
    assert rc.digest == RunConfig.from_dict(resolve(TINY, overrides=[
        "framelet.levels=2", "teacher.lr=0.005", "student.weight_decay=0.0001"])).digest


def test_config_file_numbers_are_numbers(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("teacher:\n  weight_decay: 5e-4\n  epsilon: -1e-1\n")
    rc = RunConfig.from_dict(resolve(TINY, config_file=path))
    assert rc.teacher.weight_decay == 5e-4 and rc.teacher.epsilon == -0.1


@pytest.mark.parametrize("override,match", [
    ("framelet.scale=1.0", "framelet: scale"),
    ("framelet.level=2", "unknown configuration key 'level'"),
    ("teacher.smooth=some", "teacher.smooth"),
    ("knowledge.seed=abc", "knowledge.seed"),
    ("rewire.method=sdrf", "no SDRF preset"),
    ("teacher.epsilon=abc", "teacher.epsilon must be a number"),
])
def test_bad_settings_are_rejected_when_resolved(override, match):
    with pytest.raises(ConfigError, match=match):
        resolve(TINY, overrides=[override])


def test_sdrf_settings_merge_the_dataset_preset():
    rc = RunConfig.from_dict(resolve("texas", overrides=["rewire.method=sdrf",
                                                         "rewire.iterations=7"]))
    assert rc.rewire.iterations == 7 and rc.rewire.tau == 22.0
