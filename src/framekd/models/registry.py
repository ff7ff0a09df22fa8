"""The one registry of model names: teachers, students and the rows of a result table.

:func:`build_teacher` and :func:`build_student` build a model by name from keyword options;
:func:`teacher_from_config` and :func:`student_from_config` build it from a run's typed
settings (:class:`framekd.config.RunConfig`), the only translation from configuration to
model arguments (used by ``framekd run``, ``load_trained`` and ``framekd bench``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from framekd.errors import ConfigError
from framekd.models.spectral import SpectralFramelet
from framekd.models.students import FMLPC, FMLPO, FMLPS, MLP
from framekd.models.teachers import GAT, GCN, GraphSAGE, SimplifiedFramelet, SpatialFramelet

if TYPE_CHECKING:
    from framekd.config import RunConfig
    from framekd.framelets import FrameletOperator

TEACHERS: dict[str, type[nn.Module]] = {
    "spatial": SpatialFramelet,
    "simplified": SimplifiedFramelet,
    "spectral": SpectralFramelet,
    "gcn": GCN,
    "sage": GraphSAGE,
    "gat": GAT,
}
STUDENTS: dict[str, type[nn.Module]] = {
    "mlp": MLP, "fmlp-s": FMLPS, "fmlp-o": FMLPO, "fmlp-c": FMLPC,
}
#: Teachers built on the framelet operator (they take framelet settings and ε).
FRAMELET_TEACHERS = ("spatial", "simplified", "spectral")
#: Teachers without a hidden layer.
NO_HIDDEN = ("simplified",)
#: Result rows: ``glnn`` is the MLP distilled from the teacher, ``mlp`` the same MLP
#: trained on labels alone.
DISTILLED_MLP = "glnn"
ROW_ORDER: tuple[str, ...] = (*TEACHERS, "mlp", DISTILLED_MLP, "fmlp-s", "fmlp-o", "fmlp-c")
ALIASES = {
    "graphsage": "sage",
    "spatufg": "spatial",
    "ufg": "spectral",
    "simplified_ufg": "simplified",
    "fmlps": "fmlp-s",
    "fmlpo": "fmlp-o",
    "fmlp_s": "fmlp-s",
    "fmlp_o": "fmlp-o",
    "fmlpc": "fmlp-c",
    "fmlp_c": "fmlp-c",
}


def model_name(name: str) -> str:
    """The registry name of ``name`` (case and aliases resolved; ``glnn`` stays ``glnn``)."""
    key = str(name).lower()
    return ALIASES.get(key, key)


def reads_knowledge(name: str) -> bool:
    """Whether student ``name`` reads the graph knowledge: every student but the MLPs
    (``mlp``, and ``glnn``, the MLP distilled)."""
    return model_name(name) not in ("mlp", DISTILLED_MLP)


def build_teacher(name: str, in_channels: int, out_channels: int, **cfg: Any) -> nn.Module:
    """Build a teacher by name: ``spatial``, ``simplified``, ``gcn``, ``sage`` or ``gat``.

    ``cfg`` holds the model's keyword options (``hidden_channels``, ``num_layers``,
    ``dropout``, ``epsilon``, ``framelet`` ...). ``hidden_channels`` defaults to 64 for
    the models that have one.
    """
    key = model_name(name)
    if key not in TEACHERS:
        raise ConfigError(f"unknown teacher {name!r}; choose one of {sorted(TEACHERS)}")
    if key not in NO_HIDDEN:
        cfg.setdefault("hidden_channels", 64)
    try:
        return TEACHERS[key](in_channels=in_channels, out_channels=out_channels, **cfg)
    except TypeError as err:
        raise ConfigError(f"bad option for teacher {key!r}: {err}") from err


def build_student(
    name: str,
    in_channels: int,
    out_channels: int,
    *,
    knowledge_shape: tuple[int, ...] | torch.Size | None = None,
    **cfg: Any,
) -> nn.Module:
    """Build a student by name: ``mlp`` (alias ``glnn``), ``fmlp-s``, ``fmlp-o`` or ``fmlp-c``.

    ``knowledge_shape`` is the shape ``(C, K, N, width)`` of the full
    :func:`~framekd.knowledge.graph_knowledge` tensor (``knowledge.shape``); the FMLPs take
    their channel count, depth and input width from it. ``cfg`` holds the model options
    (``hidden_channels`` defaults to 64, ``dropout``, ``num_layers`` for the MLP,
    ``feature_dropout`` for FMLP-C).
    """
    key = model_name(name)
    key = "mlp" if key == DISTILLED_MLP else key
    if key not in STUDENTS:
        raise ConfigError(f"unknown student {name!r}; choose one of {sorted(STUDENTS)}")
    cfg.setdefault("hidden_channels", 64)
    if key != "mlp":
        if knowledge_shape is None or len(knowledge_shape) != 4:
            raise ConfigError(
                f"student {key!r} needs knowledge_shape=(C, K, N, width), the shape of the "
                f"graph_knowledge tensor; got {knowledge_shape!r}"
            )
        c, k, _, width = (int(v) for v in knowledge_shape)
        cfg.update(knowledge_channels=c, knowledge_width=width)
        if key in ("fmlp-o", "fmlp-c"):
            cfg["num_powers"] = k
    try:
        return STUDENTS[key](in_channels=in_channels, out_channels=out_channels, **cfg)
    except TypeError as err:
        raise ConfigError(f"bad option for student {key!r}: {err}") from err


def teacher_from_config(
    name: str, cfg: RunConfig, in_channels: int, out_channels: int, *,
    operator: FrameletOperator | None = None, smooth: str | None = None,
) -> nn.Module:
    """Teacher ``name`` with the run's settings; a framelet teacher uses ``operator`` when
    given (the one the students' knowledge was computed with). ``smooth`` overrides
    ``teacher.smooth`` for the spectral teacher (how ``auto`` is resolved)."""
    t = cfg.teacher
    key = model_name(name)
    kw: dict[str, Any] = {"num_layers": t.layers, "dropout": t.dropout}
    if key not in NO_HIDDEN:
        kw["hidden_channels"] = t.hidden
    if key == "spectral":
        kw.update(smooth=smooth or t.smooth, shared_weights=t.shared_weights)
    if key in FRAMELET_TEACHERS:
        if operator is not None:
            kw["operator"] = operator
        else:
            kw.update(framelet=cfg.framelet, epsilon=t.epsilon)
    return build_teacher(key, in_channels, out_channels, **kw)


def student_from_config(
    name: str, cfg: RunConfig, in_channels: int, out_channels: int, *,
    knowledge_shape: tuple[int, ...] | torch.Size | None = None,
) -> nn.Module:
    """Student ``name`` (``glnn`` is the MLP) with the run's settings (its own, where it
    sets them: :meth:`~framekd.config.StudentSpec.for_model`)."""
    s = cfg.student.for_model(name)
    kw: dict[str, Any] = {"hidden_channels": s.hidden, "dropout": s.dropout}
    if model_name(name) == "fmlp-c":
        kw["feature_dropout"] = s.feature_dropout
    if reads_knowledge(name):
        kw["knowledge_shape"] = tuple(knowledge_shape) if knowledge_shape is not None else None
    return build_student(name, in_channels, out_channels, **kw)
