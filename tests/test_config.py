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


def test_a_student_sets_its_own_settings_over_the_shared_ones(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("student:\n  dropout: 0.2\n  fmlp-c:\n    lam: 0.9\n    temperature: 3\n"
                    "  mlp:\n    hidden: 32\n")
    rc = RunConfig.from_dict(resolve(TINY, config_file=path,
                                     overrides=["student.glnn.lr=2e-3"]))
    s = rc.student
    assert (s.for_model("fmlp-c").lam, s.for_model("fmlp-c").temperature) == (0.9, 3.0)
    assert s.for_model("fmlp-c").dropout == 0.2  # the shared setting where it sets none
    assert s.for_model("fmlp-s") == s  # no own settings: the shared ones
    assert s.for_model("mlp").hidden == 32 and s.for_model("mlp").lr == s.lr
    glnn = s.for_model("glnn")  # GLNN reads `mlp`, then `glnn`
    assert glnn.hidden == 32 and glnn.lr == 0.002 and glnn.lam == 0.0
    # a configuration without them holds no new keys: older run folders' digests stand
    assert not set(resolve(TINY)["student"]) & {"mlp", "glnn", "fmlp-s", "fmlp-o", "fmlp-c"}


@pytest.mark.parametrize("override,match", [
    ("student.fmlp-c.lam=1.5", r"student.fmlp-c.lam must be in \[0, 1\]"),
    ("student.glnn.hidden=0", "student.glnn.hidden must be a positive integer"),
    ("student.fmlp-c.batch_size=8", "unknown setting 'batch_size' for student fmlp-c.*may set"),
    ("student.fmlp-x.lam=0.5", "unknown configuration key 'fmlp-x'.*per student: mlp"),
    ("student.fmlp-o=0.5", "'fmlp-o' in --set \\[student\\] must be a mapping"),
])
def test_bad_student_settings_name_the_student(override, match):
    with pytest.raises(ConfigError, match=match):
        resolve(TINY, overrides=[override])
