"""Teacher GNNs and student MLPs (docs/SPEC.md §4–5).

Teachers: ``model(x, edge_index) -> logits``. Students:
``student(x, knowledge) -> StudentOutput(logits, gates)``. Both return unnormalised scores.
Every model is built by name through :mod:`framekd.models.registry`.
"""

from framekd.models.registry import (
    ROW_ORDER,
    STUDENTS,
    TEACHERS,
    build_student,
    build_teacher,
    student_from_config,
    teacher_from_config,
)
from framekd.models.sparse_input import SPARSE_INPUT_DENSITY, SparseInput
from framekd.models.spectral import SpectralFramelet, SpectralFrameletConv
from framekd.models.students import FMLPC, FMLPO, FMLPS, MLP, StudentOutput
from framekd.models.teachers import (
    GAT,
    GCN,
    GraphSAGE,
    SimplifiedFramelet,
    SpatialFramelet,
    SpatialFrameletConv,
)

__all__ = [
    "SPARSE_INPUT_DENSITY",
    "FMLPC",
    "FMLPO",
    "FMLPS",
    "GAT",
    "GCN",
    "MLP",
    "ROW_ORDER",
    "STUDENTS",
    "TEACHERS",
    "GraphSAGE",
    "SimplifiedFramelet",
    "SparseInput",
    "SpectralFramelet",
    "SpectralFrameletConv",
    "SpatialFramelet",
    "SpatialFrameletConv",
    "StudentOutput",
    "build_student",
    "build_teacher",
    "student_from_config",
    "teacher_from_config",
]
