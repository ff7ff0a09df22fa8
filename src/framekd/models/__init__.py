"""Teacher GNNs and student MLPs (SPEC §4–5).

Teachers: ``model(x, edge_index) -> logits``. Students:
``student(x, knowledge) -> StudentOutput(logits, gates)``. Both return unnormalised scores.
"""

from framekd.models.sparse_input import SPARSE_INPUT_DENSITY, SparseInput
from framekd.models.students import FMLPO, FMLPS, MLP, STUDENTS, StudentOutput, build_student
from framekd.models.teachers import (
    GAT,
    GCN,
    TEACHERS,
    EnergyPropagation,
    GraphSAGE,
    SimplifiedFramelet,
    SpatialFramelet,
    SpatialFrameletConv,
    build_teacher,
)

__all__ = [
    "SPARSE_INPUT_DENSITY",
    "FMLPO",
    "FMLPS",
    "GAT",
    "GCN",
    "MLP",
    "STUDENTS",
    "TEACHERS",
    "GraphSAGE",
    "SimplifiedFramelet",
    "SparseInput",
    "SpatialFramelet",
    "SpatialFrameletConv",
    "EnergyPropagation",
    "StudentOutput",
    "build_student",
    "build_teacher",
]
