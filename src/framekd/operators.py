r"""Graph operators shared by framelets, knowledge, teachers and rewiring (docs/SPEC.md §1).

Every sparse matrix framekd multiplies with is built here, once, from a canonical graph
(symmetric ``edge_index`` without self-loops, see :func:`framekd.graph.canonicalize`):

* :func:`degree`: :math:`D_{ii}` = number of neighbours;
* :func:`normalized_adjacency`: :math:`D^{-1/2} A D^{-1/2}` (isolated nodes get no entry, so
  :math:`L = I - D^{-1/2} A D^{-1/2}` has :math:`L_{ii} = 1` there, never :math:`0^{-1/2}`);
* :func:`gcn_adjacency`: :math:`\hat A + s\,\tilde D^{-1}` with
  :math:`\hat A = \tilde D^{-1/2}(A + I)\tilde D^{-1/2}`, :math:`\tilde D = D + I`;
* :class:`ChannelPropagation`: :math:`\hat A_c` of every framelet channel, the energy
  perturbation :math:`\hat A_{low} = \hat A - \varepsilon\tilde D^{-1}`,
  :math:`\hat A_{high} = \hat A + \varepsilon\tilde D^{-1}`;
* :func:`symmetric_matmul`: a sparse-dense product whose backward reuses the (symmetric)
  matrix instead of transposing it;
* :class:`SparseBuffers`: ``copy.deepcopy`` for modules that hold these matrices;
* :func:`estimate_lambda_max` and :func:`spectral_gap`: the extreme eigenvalues of
  :math:`L`, deterministic (fixed start vectors).
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor, nn

from framekd.errors import FramekdWarning

#: Graphs up to this size get λ_max from a dense eigensolver instead of Lanczos.
DENSE_LAMBDA_MAX_NODES = 256
#: Graphs (largest components) up to this size get the spectral gap from a dense solver.
DENSE_GAP_NODES = 64


def degree(edge_index: Tensor, num_nodes: int, dtype: torch.dtype = torch.float64) -> Tensor:
    """Node degrees :math:`D_{ii}` of a symmetric ``edge_index`` (each edge stored twice)."""
    return torch.bincount(edge_index[0].long().cpu(), minlength=num_nodes).to(dtype)


def _row_sorted(edge_index: Tensor, num_nodes: int) -> Tensor:
    ei = edge_index.long().cpu()
    if ei.numel():
        ei = ei[:, torch.argsort(ei[0] * num_nodes + ei[1])]
    return ei


def normalized_adjacency(edge_index: Tensor, num_nodes: int) -> tuple[Tensor, Tensor]:
    r"""Row-sorted edges and the float64 weights of :math:`D^{-1/2} A D^{-1/2}`."""
    ei = _row_sorted(edge_index, num_nodes)
    deg = degree(ei, num_nodes)
    dinv = torch.where(deg > 0, deg.clamp(min=1).rsqrt(), torch.zeros_like(deg))
    return ei, dinv[ei[0]] * dinv[ei[1]]


def gcn_normalized(edge_index: Tensor, num_nodes: int) -> tuple[Tensor, Tensor, Tensor]:
    r"""Row-sorted edges of :math:`A + I`, the float64 weights of :math:`\hat A` and
    :math:`\tilde D^{-1}` (a vector): PyG's ``gcn_norm`` with self-loops."""
    from torch_geometric.nn.conv.gcn_conv import gcn_norm

    ei, w = gcn_norm(
        edge_index.long().cpu(), None, num_nodes, add_self_loops=True, dtype=torch.float64
    )
    order = torch.argsort(ei[0] * num_nodes + ei[1])
    return ei[:, order], w[order], 1.0 / (degree(edge_index, num_nodes) + 1.0)


def sparse_csr(edge_index: Tensor, weight: Tensor, num_nodes: int, dtype: torch.dtype) -> Tensor:
    """A torch sparse CSR ``[N, N]`` matrix from row-sorted ``edge_index`` and ``weight``.

    Indices are int32 when they fit (they do below 2^31 entries): the sparse-dense products
    read every index once per call, and half the bytes makes narrow products about a
    fifth faster on CPU (BENCHMARKS.md §10).
    """
    counts = torch.bincount(edge_index[0], minlength=num_nodes)
    small = max(num_nodes, edge_index.size(1)) < 2**31 - 1
    index = torch.int32 if small else torch.int64
    crow = torch.zeros(num_nodes + 1, dtype=torch.int64)
    crow[1:] = torch.cumsum(counts, 0)
    return _csr_tensor(crow.to(index), edge_index[1].to(index).contiguous(), weight.to(dtype),
                       (num_nodes, num_nodes))


def _csr_tensor(crow: Tensor, col: Tensor, values: Tensor, shape: tuple[int, int]) -> Tensor:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Sparse CSR tensor support is in beta.*")
        return torch.sparse_csr_tensor(crow, col, values, shape, check_invariants=False)


def clone_csr(matrix: Tensor) -> Tensor:
    """A copy of a sparse CSR tensor, on its device, with its dtypes."""
    return _csr_tensor(matrix.crow_indices().clone(), matrix.col_indices().clone(),
                       matrix.values().clone(), tuple(matrix.shape))


class SparseBuffers:
    """Mixin for modules that hold sparse CSR tensors: makes ``copy.deepcopy`` work.

    torch cannot deep-copy a sparse CSR tensor (it has no storage to copy), so without this
    a module holding one, and every model containing such a module, fails
    ``copy.deepcopy`` (a cached operator copied to a GPU, a model snapshot). CSR buffers
    are copied through their index and value tensors; the attributes named in ``_caches``
    (what a model memoised for the last graph it saw) start empty (``None``) in the copy,
    which rebuilds them on its first call; everything else is copied as usual.
    """

    _caches: tuple[str, ...] = ()

    def __deepcopy__(self, memo: dict[int, object]) -> SparseBuffers:
        for buf in self._buffers.values():
            if buf is not None and buf.layout == torch.sparse_csr and id(buf) not in memo:
                memo[id(buf)] = clone_csr(buf)
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        state = {k: v for k, v in self.__dict__.items() if k not in self._caches}
        new.__setstate__(copy.deepcopy(state, memo))
        new.__dict__.update(dict.fromkeys(self._caches))
        return new


def gcn_adjacency(
    edge_index: Tensor, num_nodes: int, *, shift: float = 0.0, dtype: torch.dtype = torch.float32
) -> Tensor:
    r"""The sparse CSR matrix :math:`\hat A + \mathrm{shift}\cdot\tilde D^{-1}`.

    The shift only touches the diagonal; the spatial teacher uses ``shift = -epsilon`` for
    the low pass and ``+epsilon`` for the high passes.
    """
    ei, w, dinv = gcn_normalized(edge_index, num_nodes)
    diag = ei[0] == ei[1]
    w = w.clone()
    w[diag] = w[diag] + float(shift) * dinv[ei[0][diag]]
    return sparse_csr(ei, w, num_nodes, dtype)


class _SymmetricAddmm(torch.autograd.Function):
    """``beta * u + alpha * P @ v`` for a symmetric sparse ``P``, with a cheap backward.

    torch's generic backward of a sparse-dense product forms ``P^T`` (a CSR transpose and
    conversion) on every call; for a symmetric ``P`` the gradient is ``alpha * P @ grad``.
    """

    @staticmethod
    def forward(ctx, u: Tensor, p: Tensor, v: Tensor, beta: float, alpha: float) -> Tensor:
        ctx.save_for_backward(p)
        ctx.beta, ctx.alpha = beta, alpha
        if u is None:
            return torch.sparse.mm(p, v).mul_(alpha) if alpha != 1.0 else torch.sparse.mm(p, v)
        return torch.addmm(u, p, v, beta=beta, alpha=alpha)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (p,) = ctx.saved_tensors
        grad_u = grad * ctx.beta if ctx.needs_input_grad[0] else None
        grad_v = None
        if ctx.needs_input_grad[2]:
            grad_v = torch.sparse.mm(p, grad.contiguous())
            if ctx.alpha != 1.0:
                grad_v = grad_v.mul_(ctx.alpha)
        return grad_u, None, grad_v, None, None


def symmetric_matmul(
    p: Tensor, v: Tensor, u: Tensor | None = None, *, beta: float = 1.0, alpha: float = 1.0
) -> Tensor:
    """``beta * u + alpha * (p @ v)`` for a **symmetric** sparse matrix ``p`` (``u`` optional).

    Differentiable in ``u`` and ``v``; the backward uses ``p`` itself instead of its
    transpose, which is only correct because ``p`` is symmetric.
    """
    return _SymmetricAddmm.apply(u, p, v, beta, alpha)


class ChannelPropagation(SparseBuffers, nn.Module):
    r"""Applies :math:`\hat A_c` to every slice of a ``[C, N, d]`` channel stack at once:

    .. math::
        \hat A_c Z_c = \hat A Z_c + s_c \tilde D^{-1} Z_c, \qquad
        s_c = -\varepsilon \text{ (low pass, channel 0)}, \; +\varepsilon \text{ (high passes)},

    one sparse product over the ``[N, C·d]`` concatenation plus a diagonal scaling. The
    operators are non-persistent buffers: they move with ``.to()`` and stay out of
    ``state_dict``.

    Args:
        edge_index: canonical ``[2, E]`` edges.
        num_nodes: N.
        num_channels: C (channel 0 is the low pass).
        epsilon: the energy perturbation ε (0 leaves :math:`\hat A` unchanged).
        dtype: floating dtype of the operator.

    Shapes:
        input ``[C, N, d]`` → output ``[C, N, d]``.
    """

    def __init__(
        self, edge_index: Tensor, num_nodes: int, num_channels: int, epsilon: float = 0.0,
        *, dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        ei, w, dinv = gcn_normalized(edge_index, num_nodes)
        self.epsilon = float(epsilon)
        self.register_buffer("adj", sparse_csr(ei, w, num_nodes, dtype), persistent=False)
        shift = None
        if self.epsilon != 0.0:
            signs = torch.ones(num_channels, dtype=torch.float64)
            signs[0] = -1.0
            shift = (self.epsilon * signs[:, None, None] * dinv[None, :, None]).to(dtype)
        self.register_buffer("shift", shift, persistent=False)

    def forward(self, z: Tensor) -> Tensor:
        c, n, d = z.shape
        flat = z.permute(1, 0, 2).reshape(n, c * d)
        out = symmetric_matmul(self.adj, flat).reshape(n, c, d).permute(1, 0, 2)
        return out if self.shift is None else out + self.shift * z

    def extra_repr(self) -> str:
        return f"num_nodes={self.adj.size(0)}, epsilon={self.epsilon}"


def laplacian_scipy(edge_index: Tensor, num_nodes: int) -> sp.csr_matrix:
    r""":math:`L = I - D^{-1/2} A D^{-1/2}` as a SciPy CSR matrix (float64)."""
    ei, w = normalized_adjacency(edge_index, num_nodes)
    p = sp.csr_matrix((w.numpy(), (ei[0].numpy(), ei[1].numpy())), shape=(num_nodes,) * 2)
    return sp.identity(num_nodes, format="csr") - p


def estimate_lambda_max(edge_index: Tensor, num_nodes: int, *, tol: float = 1e-6) -> float:
    r"""A deterministic estimate of the largest eigenvalue of :math:`L` (at most 2).

    Up to :data:`DENSE_LAMBDA_MAX_NODES` nodes: a dense eigensolver. Above: Lanczos
    (``scipy.sparse.linalg.eigsh``) from a fixed start vector (NumPy ``default_rng(0)``),
    so the same graph always gives the same value. If Lanczos does not converge the
    bound 2 is used, with a warning.
    """
    lap = laplacian_scipy(edge_index, num_nodes)
    if num_nodes <= DENSE_LAMBDA_MAX_NODES:
        return float(min(np.linalg.eigvalsh(lap.toarray())[-1], 2.0))
    from scipy.sparse.linalg import ArpackNoConvergence, eigsh

    v0 = np.random.default_rng(0).standard_normal(num_nodes)
    try:
        lam = eigsh(lap, k=1, which="LA", v0=v0, tol=tol, return_eigenvectors=False)[0]
    except ArpackNoConvergence:
        warnings.warn(
            "Lanczos did not converge for lambda_max; using the bound 2.0",
            FramekdWarning,
            stacklevel=2,
        )
        return 2.0
    return float(min(lam, 2.0))


def spectral_gap(edge_index: Tensor, num_nodes: int) -> float:
    r"""Spectral gap :math:`\lambda_1` of :math:`L = I - D^{-1/2} A D^{-1/2}` (its
    second-smallest eigenvalue).

    A disconnected graph has :math:`\lambda_1 = 0`; this function then reports
    :math:`\lambda_1` of the **largest connected component** (isolated nodes are
    ignored), which is what rewiring inside a component can change. Computed with
    ``scipy.sparse.linalg.eigsh`` on :math:`D^{-1/2} A D^{-1/2} + I` (largest two
    eigenvalues, fixed start vector); components of at most :data:`DENSE_GAP_NODES` nodes
    use a dense solver. Returns 0.0 for a component of fewer than 2 nodes.
    """
    from scipy.sparse.csgraph import connected_components
    from scipy.sparse.linalg import eigsh

    ei = _row_sorted(edge_index, num_nodes).numpy()
    a = sp.csr_matrix((np.ones(ei.shape[1]), (ei[0], ei[1])), shape=(num_nodes, num_nodes))
    a.sum_duplicates()
    a.data[:] = 1.0
    a.setdiag(0)
    a.eliminate_zeros()
    a = ((a + a.T) > 0).astype(np.float64)
    _, label = connected_components(a, directed=False)
    big = np.argmax(np.bincount(label))
    nodes = np.flatnonzero(label == big)
    if nodes.size < 2:
        return 0.0
    a = a[nodes][:, nodes]
    inv_sqrt = 1.0 / np.sqrt(np.asarray(a.sum(1)).ravel())
    norm = sp.diags(inv_sqrt) @ a @ sp.diags(inv_sqrt)
    if nodes.size <= DENSE_GAP_NODES:
        mu = np.linalg.eigvalsh(norm.toarray())[-2]
    else:
        v0 = np.random.default_rng(0).standard_normal(nodes.size)
        # Shifted by I so the wanted eigenvalues (near 1) are the largest algebraic ones of
        # a positive semi-definite matrix.
        vals = eigsh(norm + sp.identity(nodes.size), k=2, which="LA", v0=v0, tol=1e-10,
                     maxiter=nodes.size * 100, return_eigenvectors=False)
        mu = np.sort(vals)[0] - 1.0
    return float(max(1.0 - mu, 0.0))
