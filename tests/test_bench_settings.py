"""`framekd bench speed` builds its teachers and the knowledge from the same settings."""

from __future__ import annotations

import framekd.knowledge as kn
import framekd.models.teachers as teachers
from framekd.cli import main

TINY = "csbm:n=80,c=2,d=6,h=0.3,f=8,seed=0"


def test_bench_speed_teacher_and_knowledge_share_the_framelet_settings(tmp_path, monkeypatch):
    specs: list[tuple[str, object]] = []
    real_knowledge, real_operator = kn.graph_knowledge, teachers._FrameletTeacher.operator

    def knowledge(*args, **kw):
        specs.append(("knowledge", kw["operator"].spec))
        return real_knowledge(*args, **kw)

    def operator(self, x, edge_index):
        op = real_operator(self, x, edge_index)
        specs.append(("teacher", op.spec))
        return op

    monkeypatch.setattr(kn, "graph_knowledge", knowledge)
    monkeypatch.setattr(teachers._FrameletTeacher, "operator", operator)
    argv = ["bench", "speed", "--datasets", TINY, "--repeats", "1", "--warmup", "0",
            "--models", "spatial,mlp,fmlp-s", "--out", str(tmp_path),
            "--set", "framelet.filters=sigmoid", "--set", "framelet.alpha=5",
            "--set", "framelet.order=16"]
    assert main(argv) == 0
    assert {who for who, _ in specs} == {"knowledge", "teacher"}
    for who, spec in specs:
        assert (spec.filters, spec.alpha, spec.order) == ("sigmoid", 5.0, 16), who
