"""Property tests of the framelet transform on random small graphs (hypothesis).

Every graph is drawn as a list of node pairs (self-loops, duplicates and both directions
allowed) and passed through :func:`framekd.graph.canonicalize`, as user graphs are.
Only the public API is used: ``FrameletTransform(edge_index, num_nodes, filters=...,
levels=..., method=..., order=..., dtype=...)`` with ``apply`` and ``reconstruct``.

The runs are deterministic (``derandomize=True``, no example database) and small
(``max_examples`` 25), so the suite takes the same few seconds on every machine.
"""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_geometric.data import Data

from framekd.framelets import FrameletTransform
from framekd.graph import canonicalize

F64 = torch.float64
# Tight banks: sum_r g_r(xi)^2 = 1 exactly (entropy is tight too, but its Chebyshev
# expansion is not, and it needs alpha; it is covered by the unit tests).
BANKS = ("haar", "linear", "quadratic", "sigmoid")
PROPERTY = settings(max_examples=25, deadline=None, derandomize=True, database=None)


@st.composite
def graphs(draw, max_nodes: int = 12) -> tuple[torch.Tensor, int]:
    """A canonical ``(edge_index, num_nodes)``: 1 to ``max_nodes`` nodes, any edges."""
    n = draw(st.integers(1, max_nodes))
    node = st.integers(0, n - 1)
    pairs = draw(st.lists(st.tuples(node, node), max_size=3 * n))
    edge_index = torch.tensor(pairs, dtype=torch.long).reshape(-1, 2).t()
    data = canonicalize(Data(edge_index=edge_index, num_nodes=n), warn=False)
    return data.edge_index, n


def signal(n: int, d: int, seed: int) -> torch.Tensor:
    """A seeded float64 signal ``[n, d]``."""
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=F64)


@PROPERTY
@given(graphs(), st.sampled_from(BANKS), st.integers(1, 3), st.integers(1, 3),
       st.integers(0, 2**16))
def test_exact_transform_is_tight_and_preserves_energy(graph, bank, levels, d, seed):
    """sum_c W_c^T W_c = I: reconstruct(apply(x)) = x and sum_c ||W_c x||^2 = ||x||^2.

    The exact transform is a dense float64 eigendecomposition of at most 12 nodes, whose
    rounding error is around 1e-14; the stated tolerance 1e-8 leaves a wide margin and
    still catches any missing or doubled channel (an error of order ||x||).
    """
    edge_index, n = graph
    t = FrameletTransform(edge_index, n, filters=bank, levels=levels, method="exact",
                          dtype=F64)
    x = signal(n, d, seed)
    y = t.apply(x)
    assert y.shape == (t.num_channels, n, d)
    torch.testing.assert_close(t.reconstruct(y), x, rtol=0, atol=1e-8)
    torch.testing.assert_close((y**2).sum((0, 1)), (x**2).sum(0), rtol=1e-8, atol=1e-8)
    # The same identity on the operators themselves: sum_c W_c^T W_c = I.
    w = t.apply(torch.eye(n, dtype=F64))
    torch.testing.assert_close((w.transpose(1, 2) @ w).sum(0), torch.eye(n, dtype=F64),
                               rtol=0, atol=1e-8)


@PROPERTY
@given(graphs(), st.integers(1, 3), st.integers(1, 3), st.integers(0, 2**16))
def test_chebyshev_haar_order_24_reconstructs(graph, levels, d, seed):
    """Order 24 approximates cos and sin on [0, lambda_max] far below 1e-5 (tolerance)."""
    edge_index, n = graph
    t = FrameletTransform(edge_index, n, filters="haar", levels=levels, method="chebyshev",
                          order=24, dtype=F64)
    x = signal(n, d, seed)
    torch.testing.assert_close(t.reconstruct(t.apply(x)), x, rtol=0, atol=1e-5)
