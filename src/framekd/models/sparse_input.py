"""Mostly-zero input features multiplied as a sparse matrix, for teachers and students."""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor

from framekd.errors import ConfigError

#: Input features with at most this fraction of non-zeros are multiplied as a sparse matrix.
SPARSE_INPUT_DENSITY = 0.05
#: Fewer rows than this (a query of a few nodes) stay dense: converting costs more than it saves.
SPARSE_INPUT_MIN_ROWS = 64
#: Floating dtypes a model may be cast to for inference (``model.to(torch.bfloat16)``).
LOW_PRECISION = (torch.bfloat16, torch.float16)


class SparseInput:
    r"""The input features as a sparse (CSR) matrix when they are mostly zeros.

    The first layer's product :math:`X\Theta` costs :math:`N\,d_{in}\,d_{out}` operations
    dense and :math:`\mathrm{nnz}(X)\,d_{out}` sparse. Bag-of-words features are mostly zeros
    (the densities of the shipped datasets are in BENCHMARKS.md §4.1), so a
    model keeps a sparse copy of its input next to its weights (a teacher, bound to one graph,
    converts its features once; a student's trainer cuts mini-batches from one copy of all
    features with :meth:`rows`).
    The products agree with the dense ones up to float rounding.

    ``x`` is converted when at most ``max_density`` of its entries are non-zero (``0`` turns
    the conversion off) and it has at least :data:`SPARSE_INPUT_MIN_ROWS` rows; anything that
    is not a dense 2-D tensor, or that needs gradients, is returned as it is. The copy is
    reused while the same tensor, unmodified, comes back; :meth:`rows` keeps its own, so
    that the batches it cuts, passing through the model's call, never evict the whole
    ``x``'s (which would count its non-zeros again for every batch).
    """

    def __init__(self, max_density: float = SPARSE_INPUT_DENSITY) -> None:
        if not 0.0 <= float(max_density) <= 1.0:
            raise ConfigError(f"sparse_input must be a density in [0, 1], got {max_density!r}")
        self.max_density = float(max_density)
        # (tensor, its version, what it converts to): one entry for calls, one for rows()
        self._cache: dict[str, tuple[Tensor, int, Tensor]] = {}

    def __call__(self, x: Tensor) -> Tensor:
        return self._convert(x, "call")

    def __deepcopy__(self, memo: dict[int, object]) -> SparseInput:
        # A copy starts with an empty cache: the cache is no state of the model, and torch
        # cannot deep-copy its CSR tensors.
        return SparseInput(self.max_density)

    def _convert(self, x: Tensor, slot: str) -> Tensor:
        if (
            self.max_density == 0.0
            or x.layout != torch.strided
            or x.dim() != 2
            or x.size(0) < SPARSE_INPUT_MIN_ROWS
            or x.numel() == 0
            or x.requires_grad
        ):
            return x
        for cached in self._cache.values():  # either slot's copy of this very x will do
            if cached[0] is x and cached[1] == x._version:
                self._cache[slot] = cached
                return cached[2]
        density = int(torch.count_nonzero(x)) / x.numel()
        # CPU has no sparse product in half precision: a low-precision x is kept in float32
        # (exact: float32 holds every bfloat16/float16 value); see :func:`linear`.
        low = x.dtype in LOW_PRECISION
        value = _to_csr(x.float() if low else x) if density <= self.max_density else x
        self._cache[slot] = (x, x._version, value)
        return value

    def rows(self, x: Tensor, index: Tensor) -> Tensor:
        """``x[index]`` in the form the first layer takes it, for mini-batches.

        When ``x`` qualifies, the rows are cut from the (cached) CSR copy of the whole ``x``
        (:func:`csr_rows`): a batch never gathers its dense rows and converts them again,
        which costs far more than the batch's product itself (BENCHMARKS.md §4.1).
        """
        full = self._convert(x, "rows")
        return csr_rows(full, index) if full.layout == torch.sparse_csr else x[index]


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    r"""``F.linear(x, weight, bias)`` that also takes :class:`SparseInput`'s CSR copy of
    ``x`` when the weights are in low precision (a model cast with
    ``.to(torch.bfloat16)`` for inference): CPU kernels multiply sparse matrices in float32
    and float64 only, so the sparse product runs in ``x``'s float32,
    :math:`\mathrm{lowp}(x W^\top + b)`, with the weights' values widened exactly, and the
    result is cast to the weights' dtype for the rest of the model.
    """
    if x.dtype == weight.dtype:
        return F.linear(x, weight, bias)
    if x.layout == torch.strided:
        want = dtype_name(weight.dtype)
        raise ConfigError(
            f"the input features are {dtype_name(x.dtype)} but the model's weights are {want}; "
            f"cast one to the other (x.to(torch.{want}) or model.to(torch.{dtype_name(x.dtype)}))"
        )
    wide = None if bias is None else bias.to(x.dtype)
    return F.linear(x, weight.to(x.dtype), wide).to(weight.dtype)


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` -> ``"bfloat16"``, for error messages."""
    return str(dtype).removeprefix("torch.")


def csr_rows(x: Tensor, index: Tensor) -> Tensor:
    r"""Rows ``index`` of a CSR matrix as a CSR matrix ``[len(index), d]`` (repeats allowed).

    Row :math:`r` of the result holds the stored entries ``crow[i] .. crow[i+1]`` of row
    :math:`i = \text{index}[r]`; all rows are gathered with one vectorised index.
    """
    crow, col, val = x.crow_indices(), x.col_indices(), x.values()
    index = index.to(crow.device, torch.long)
    start = crow[index]
    counts = crow[index + 1] - start
    out_crow = torch.zeros(index.numel() + 1, dtype=crow.dtype, device=crow.device)
    torch.cumsum(counts, 0, out=out_crow[1:])
    total = int(out_crow[-1])
    # Entry j of output row r sits at start[r] + (j - out_crow[r]) in x.
    offset = torch.repeat_interleave(start - out_crow[:-1], counts, output_size=total)
    pos = torch.arange(total, device=crow.device) + offset
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(
            out_crow, col[pos], val[pos], (index.numel(), x.size(1)), dtype=x.dtype,
            device=x.device, check_invariants=False,
        )


def _to_csr(x: Tensor) -> Tensor:
    # CSR rather than COO: its row-wise product with a dense matrix was the faster of the two
    # on Physics. Torch warns that CSR support is "beta" on every conversion; the operations
    # used here (x @ W and its gradient in W) are covered by the tests.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return x.to_sparse_csr()


def input_dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """:func:`torch.nn.functional.dropout` that also takes the CSR copy of :class:`SparseInput`.

    A sparse ``x`` drops its stored non-zeros: the zeros would stay zeros anyway, so this is
    dropout on the dense matrix with the same distribution.
    """
    if not training or p == 0.0 or x.layout == torch.strided:
        return F.dropout(x, p=p, training=training)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        values = F.dropout(x.values(), p=p, training=True)
        return torch.sparse_csr_tensor(
            x.crow_indices(), x.col_indices(), values, x.shape, dtype=x.dtype, device=x.device,
            check_invariants=False,  # the structure is x's own
        )
