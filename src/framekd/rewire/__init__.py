r"""Balanced Forman curvature and Stochastic Discrete Ricci Flow (SDRF) rewiring.

SDRF (Topping et al., *Understanding over-squashing and bottlenecks on graphs via
curvature*, ICLR 2022) relieves over-squashing by repeatedly adding an edge next to the
most negatively curved edge, chosen to raise that edge's Balanced Forman curvature,
and removing the most positively curved edge. Everything works on the undirected
simple graph and is sparse. The submodules:

* :mod:`~framekd.rewire.curvature`: Balanced Forman curvature (Definition 1);
* :mod:`~framekd.rewire.candidates`: candidate edges and their exact curvature gains;
* :mod:`~framekd.rewire.flow`: the algorithm (Algorithm 1) and its report;
* :mod:`~framekd.rewire.incremental`: curvature updates after one edit;
* :mod:`~framekd.rewire.store`: the mutable graph store SDRF edits;
* :mod:`~framekd.rewire.presets`: :class:`SDRFSpec` and the per-dataset presets;
* :mod:`~framekd.rewire.transform`: the PyG transform :class:`SDRF`.

:func:`spectral_gap`, which rewiring aims to widen, lives with the other graph
operators in :mod:`framekd.operators` and is re-exported here.
"""

from framekd.operators import spectral_gap
from framekd.rewire.candidates import sdrf_candidates
from framekd.rewire.curvature import balanced_forman_curvature
from framekd.rewire.flow import SDRFReport, sdrf
from framekd.rewire.presets import SDRF_PRESETS, SDRFSpec, sdrf_preset
from framekd.rewire.transform import SDRF

__all__ = [
    "SDRF",
    "SDRFReport",
    "SDRFSpec",
    "balanced_forman_curvature",
    "sdrf",
    "sdrf_candidates",
    "sdrf_preset",
    "spectral_gap",
    "SDRF_PRESETS",
]
