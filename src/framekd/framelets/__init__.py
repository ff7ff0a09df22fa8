r"""Undecimated graph framelets (docs/SPEC.md §2–3).

* :mod:`~framekd.framelets.banks`: the tight filter banks and their Chebyshev expansions;
* :mod:`~framekd.framelets.spec`: :class:`FrameletSpec`, the validated settings;
* :mod:`~framekd.framelets.transform`: :class:`FrameletTransform`, the matrix-free (or
  exact) transform :math:`\{W_c\}` of one graph;
* :mod:`~framekd.framelets.operator`: :class:`FrameletOperator`, the knowledge operator
  :math:`K_c = W_c \hat A_c W_c` shared by teachers and knowledge.
"""

from framekd.framelets.banks import (
    DEFAULT_ALPHA,
    FILTER_BANKS,
    chebyshev_coefficients,
    check_tight,
    filter_bank,
    framelet_channels,
)
from framekd.framelets.operator import (
    FrameletOperator,
    clear_operator_cache,
    framelet_operator,
)
from framekd.framelets.spec import METHODS, FrameletSpec
from framekd.framelets.transform import EXACT_MAX_NODES, FrameletTransform

__all__ = [
    "DEFAULT_ALPHA",
    "EXACT_MAX_NODES",
    "FILTER_BANKS",
    "METHODS",
    "FrameletOperator",
    "FrameletSpec",
    "FrameletTransform",
    "chebyshev_coefficients",
    "check_tight",
    "clear_operator_cache",
    "filter_bank",
    "framelet_channels",
    "framelet_operator",
]
