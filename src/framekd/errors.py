"""Exception and warning types raised by framekd.

Every user mistake (bad graph, bad option, missing dataset) raises a subclass of
:class:`FramekdError` whose message says what is wrong, where, and how to fix it.
The command-line interface turns these into one line on stderr and exit status 2.
"""

from __future__ import annotations


class FramekdError(Exception):
    """Base class of every error framekd raises for a user mistake."""


class GraphError(FramekdError, ValueError):
    """The graph (edges, features, labels) is malformed."""


class SplitError(FramekdError, ValueError):
    """A train/validation/test split cannot be built or is unusable."""


class ConfigError(FramekdError, ValueError):
    """An option or configuration value is invalid."""


class DatasetNotFoundError(FramekdError, FileNotFoundError):
    """A dataset's files are not available offline."""


class MemoryBudgetError(FramekdError, MemoryError):
    """An operation would allocate more memory than the configured budget."""


class CheckpointError(FramekdError):
    """A saved file (weights, soft labels, cache) is missing, corrupt or incompatible."""


class ExportError(FramekdError):
    """A model cannot be exported for deployment (``framekd export``): the run, seed or
    model is missing, a deployment package is not installed, or the exported model does
    not reproduce the PyTorch model's outputs."""


class TrainingError(FramekdError):
    """Training diverged: a loss, an output or the weights became NaN or infinite. The
    message names the epoch and the setting to change (e.g. the learning rate)."""


class TimeLimitError(FramekdError):
    """Training passed the time limit its caller set (``deadline``), such as ``framekd tune
    --trial-timeout``'s; the model is left part-trained."""


class FramekdWarning(UserWarning):
    """Something the user should know about but that does not stop the run."""
