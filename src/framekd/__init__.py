"""framekd: framelet graph knowledge distillation.

A multi-scale graph framelet GNN (the teacher) is distilled into an MLP student that
consumes precomputed framelet "graph knowledge" instead of message passing
(Shi et al., *Frameless Graph Knowledge Distillation*, arXiv:2307.06631).
"""

from framekd.errors import (
    CheckpointError,
    ConfigError,
    DatasetNotFoundError,
    ExportError,
    FramekdError,
    FramekdWarning,
    GraphError,
    MemoryBudgetError,
    SplitError,
    TimeLimitError,
    TrainingError,
)
from framekd.graph import canonicalize
from framekd.predict import Predictor

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DatasetNotFoundError",
    "ExportError",
    "FramekdError",
    "FramekdWarning",
    "GraphError",
    "MemoryBudgetError",
    "Predictor",
    "SplitError",
    "TimeLimitError",
    "TrainingError",
    "canonicalize",
    "__version__",
]
