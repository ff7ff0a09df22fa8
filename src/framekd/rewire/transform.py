"""The PyG transform :class:`SDRF`: rewire ``data.edge_index`` with :func:`sdrf`."""

from __future__ import annotations

from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform

from framekd.errors import GraphError
from framekd.rewire.flow import sdrf
from framekd.rewire.presets import SDRFSpec, _check_sdrf_args


class SDRF(BaseTransform):
    r"""Rewire ``data.edge_index`` with :func:`sdrf`.

    Returns a shallow copy of ``data`` with the rewired symmetric ``edge_index``
    (edge attributes and weights are dropped: they do not exist for new edges) and
    the :class:`SDRFReport` in ``data.sdrf_report``.

    Args:
        iterations: maximum number of SDRF iterations.
        tau: softmax inverse temperature (>= 0).
        removal_bound: :math:`C^+`, or ``None`` for no removals.
        seed: seed of the NumPy generator.

    ``SDRF.from_spec(spec)`` builds the transform from an :class:`SDRFSpec`, and
    ``transform.spec`` gives its settings back as one.
    """

    def __init__(self, iterations: int, tau: float, removal_bound: float | None = None,
                 seed: int = 0):
        _check_sdrf_args(iterations, tau, removal_bound, seed)
        self.iterations = iterations
        self.tau = tau
        self.removal_bound = removal_bound
        self.seed = seed

    @classmethod
    def from_spec(cls, spec: SDRFSpec) -> SDRF:
        """The transform with the settings of ``spec``."""
        return cls(**spec.to_dict())

    @property
    def spec(self) -> SDRFSpec:
        """The settings as an :class:`SDRFSpec`."""
        return SDRFSpec(self.iterations, self.tau, self.removal_bound, self.seed)

    def forward(self, data: Data) -> Data:
        if data.num_nodes is None or "edge_index" not in data:
            raise GraphError("SDRF needs data.edge_index and data.num_nodes")
        edge_index, report = sdrf(data.edge_index, data.num_nodes, iterations=self.iterations,
                                  tau=self.tau, removal_bound=self.removal_bound,
                                  seed=self.seed)
        out = data.clone()
        out.edge_index = edge_index
        for key in ("edge_attr", "edge_weight"):
            if key in out:
                del out[key]
        out.sdrf_report = report
        return out

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(iterations={self.iterations}, tau={self.tau}, "
                f"removal_bound={self.removal_bound}, seed={self.seed})")
