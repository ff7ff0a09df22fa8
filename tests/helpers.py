"""Factories and oracles shared by the test files: one implementation of each.

Import them as ``from helpers import ...`` (``conftest.py`` puts ``tests/`` on ``sys.path``).

* graph factories: :func:`random_graph`, :func:`cycle_pairs`, :func:`complete_pairs`,
  :func:`random_pairs`, :func:`pairs_to_index`, :func:`undirected_index`;
* dense oracles written from the definitions, independent of framekd:
  :func:`dense_adjacency`, :func:`dense_laplacian`, :func:`dense_gcn_adjacency`,
  :func:`haar_framelet_operators`; and :func:`dense_operators`, the dense matrices of a
  framekd transform;
* inputs: :func:`bag_of_words`, :func:`random_knowledge`, :func:`write_graph_dir`;
* :func:`spy`, which records the calls of a monkeypatched function;
* :func:`run_together`, which runs a function in several processes released at one moment.

The oracles are NumPy float64; wrap them with ``torch.from_numpy`` where a test needs tensors.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch_geometric.utils import coalesce, remove_self_loops, to_undirected

# ----------------------------------------------------------------------------- graphs


def random_graph(
    seed: int, sizes: Sequence[int] = (18, 12, 7), p: float = 0.3, isolated: int = 3
) -> tuple[torch.Tensor, int]:
    """A canonical graph (symmetric, no self-loops, coalesced) and its node count.

    One Erdős–Rényi block per entry of ``sizes`` (edge probability ``p``, drawn from a
    ``torch.Generator`` seeded with ``seed``), placed side by side, then ``isolated``
    nodes without edges at the end. Returns ``(edge_index, num_nodes)``.
    """
    gen = torch.Generator().manual_seed(seed)
    edges, offset = [], 0
    for n in sizes:
        src, dst = (torch.rand(n, n, generator=gen) < p).nonzero().t()
        edges.append(torch.stack([src + offset, dst + offset]))
        offset += n
    num_nodes = offset + isolated
    ei, _ = remove_self_loops(torch.cat(edges, 1))
    return coalesce(to_undirected(ei, num_nodes=num_nodes), num_nodes=num_nodes), num_nodes


def cycle_pairs(n: int) -> list[tuple[int, int]]:
    """The edges ``(i, i + 1 mod n)`` of the n-cycle, one pair per undirected edge."""
    return [(i, (i + 1) % n) for i in range(n)]


def complete_pairs(n: int) -> list[tuple[int, int]]:
    """The edges ``(i, j)``, ``i < j``, of the complete graph K_n, in lexicographic order."""
    return [(i, j) for i in range(n) for j in range(i + 1, n)]


def random_pairs(n: int, p: float, seed: int) -> list[tuple[int, int]]:
    """Erdős–Rényi G(n, p) edges ``(i, j)``, ``i < j``, from ``numpy.random.default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    return [(i, j) for i in range(n) for j in range(i + 1, n) if rng.random() < p]


def pairs_to_index(pairs: Iterable[tuple[int, int]]) -> torch.Tensor:
    """``[2, E]`` int64 ``edge_index`` with one column per pair, in the order given."""
    pairs = list(pairs)
    return torch.tensor(pairs, dtype=torch.long).reshape(len(pairs), 2).t().contiguous()


def undirected_index(pairs: Iterable[tuple[int, int]]) -> torch.Tensor:
    """``[2, 2E]`` symmetric ``edge_index``: every pair ``(a, b)``, then every ``(b, a)``."""
    pairs = list(pairs)
    return pairs_to_index(pairs + [(b, a) for a, b in pairs])


# ----------------------------------------------------------------------------- dense oracles


def dense_adjacency(edge_index: torch.Tensor, n: int) -> np.ndarray:
    """The ``[n, n]`` float64 0/1 matrix with ``A[i, j] = 1`` for every column ``(i, j)``."""
    a = np.zeros((n, n))
    a[edge_index[0].numpy(), edge_index[1].numpy()] = 1.0
    return a


def dense_laplacian(edge_index: torch.Tensor, n: int) -> np.ndarray:
    """``L = I - D^{-1/2} A D^{-1/2}`` by its definition; ``L_ii = 1`` at isolated nodes."""
    a = dense_adjacency(edge_index, n)
    deg = a.sum(1)
    dinv = np.where(deg > 0, 1.0 / np.sqrt(np.where(deg > 0, deg, 1.0)), 0.0)
    return np.eye(n) - dinv[:, None] * a * dinv[None, :]


def dense_gcn_adjacency(edge_index: torch.Tensor, n: int) -> tuple[np.ndarray, np.ndarray]:
    r"""``(Â, D̃^{-1})``: :math:`\hat A = \tilde D^{-1/2}(A + I)\tilde D^{-1/2}` and the diagonal
    matrix :math:`\tilde D^{-1}`, :math:`\tilde D = D + I` (so isolated nodes get
    :math:`\hat A_{ii} = 1`). The energy-perturbed operators are ``Â ∓ ε D̃^{-1}``."""
    a = dense_adjacency(edge_index, n) + np.eye(n)
    deg = a.sum(1)
    return a / np.sqrt(deg[:, None] * deg[None, :]), np.diag(1.0 / deg)


def haar_framelet_operators(
    edge_index: torch.Tensor, n: int, levels: int = 1, scale: float = 2.0
) -> np.ndarray:
    r"""Exact Haar framelet operators ``[levels + 1, n, n]`` by a dense eigendecomposition.

    With :math:`L = U \operatorname{diag}(\lambda) U^\top`, :math:`t_{Lev} = \pi /
    \lambda_{max}` and :math:`t_l = t_{Lev}\, s^{l - Lev}`, the channels are, in framekd's
    order ``[(0, Lev), (1, 1), ..., (1, Lev)]``:

    * low pass :math:`W_{0,Lev} = U \operatorname{diag}(\prod_l \cos(t_l\lambda/2)) U^\top`;
    * high pass :math:`W_{1,l} = U \operatorname{diag}(\sin(t_l\lambda/2)
      \prod_{j<l} \cos(t_j\lambda/2)) U^\top`.

    Independent of framekd: it reads only the definition.
    """
    lam, u = np.linalg.eigh(dense_laplacian(edge_index, n))
    t_top = math.pi / lam.max()
    ts = [t_top * scale ** (level - levels) for level in range(1, levels + 1)]
    low = np.ones_like(lam)
    responses = []
    for t in ts:
        responses.append(low * np.sin(t * lam / 2))
        low = low * np.cos(t * lam / 2)
    return np.stack([u @ np.diag(r) @ u.T for r in [low, *responses]])


def dense_operators(transform: Any) -> torch.Tensor:
    """The ``[C, N, N]`` matrices ``W_c`` of a framelet transform (``W_c e_j`` for every j)."""
    return transform.apply(torch.eye(transform.num_nodes, dtype=transform.dtype))


# ----------------------------------------------------------------------------- inputs


def bag_of_words(n: int, d: int, density: float, seed: int = 0) -> torch.Tensor:
    """``[n, d]`` float32 0/1 features, each entry 1 with probability ``density`` (seeded)."""
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(n, d, generator=gen) < density).float()


def random_knowledge(c: int, k: int, n: int, width: int, seed: int = 0) -> torch.Tensor:
    """Standard normal stand-in for graph knowledge, shape ``[C, K, N, width]`` (seeded)."""
    return torch.randn(c, k, n, width, generator=torch.Generator().manual_seed(seed))


def write_graph_dir(
    path: Path,
    edges: str | None = "src,dst\n0,1\n1,2\n2,3\n",
    labels: str | None = "0\n1\n0\n1\n",
    features: np.ndarray | None = None,
) -> Path:
    """Write a user graph directory (``edges.csv``, ``labels.csv``, ``features.npy``).

    ``edges`` and ``labels`` are the files' text (``None`` leaves the file out); the
    default is a 4-node path with two classes and ``features`` defaults to ones ``[4, 2]``.
    Returns ``path``.
    """
    path.mkdir(parents=True, exist_ok=True)
    if edges is not None:
        (path / "edges.csv").write_text(edges)
    if labels is not None:
        (path / "labels.csv").write_text(labels)
    np.save(path / "features.npy", np.ones((4, 2)) if features is None else features)
    return path


# ----------------------------------------------------------------------------- spies


def spy(monkeypatch: Any, owner: Any, name: str) -> list[dict[str, Any]]:
    """Wrap ``owner.name`` (a module or class attribute) so its calls are recorded.

    The function still runs; the returned list gets one dict per call mapping every
    parameter name to its value (defaults filled in), e.g. ``calls[0]["seed"]``.
    ``monkeypatch`` restores the original at the end of the test.
    """
    real = getattr(owner, name)
    signature = inspect.signature(real)
    calls: list[dict[str, Any]] = []

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        calls.append(dict(bound.arguments))
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)
    return calls


def _released(target: Any, barrier: Any, results: Any, args: tuple) -> None:
    barrier.wait()
    try:
        results.put(target(*args))
    except Exception as err:  # noqa: BLE001 - handed to the test, which fails on it
        results.put(f"{type(err).__name__}: {err}")


def run_together(target: Any, args: tuple, procs: int, timeout: float = 300) -> list[Any]:
    """``target(*args)`` in ``procs`` processes that a barrier releases at the same moment
    (races need them to overlap); their return values, or ``"Error: message"`` strings.
    ``target`` must be a module-level function (it is pickled where ``fork`` is missing)."""
    import multiprocessing

    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    barrier, results = ctx.Barrier(procs), ctx.Queue()
    workers = [ctx.Process(target=_released, args=(target, barrier, results, args))
               for _ in range(procs)]
    for w in workers:
        w.start()
    got = [results.get(timeout=timeout) for _ in workers]
    for w in workers:
        w.join()
    return got


def poison_common_test_labels(data: Any, splits: Sequence[Any], seed: int = 1) -> Any:
    """A copy of ``data`` whose nodes that are test nodes in every split of ``splits`` (a
    test node of one fold may train another) each get a random label other than their own."""
    test = torch.ones(data.num_nodes, dtype=torch.bool)
    for split in splits:
        mask = torch.zeros(data.num_nodes, dtype=torch.bool)
        mask[split.test] = True
        test &= mask
    assert int(test.sum()) >= 20, "too few common test nodes to poison"
    poisoned = data.clone()
    c = int(data.y.max()) + 1
    shift = torch.randint(1, c, (int(test.sum()),), generator=torch.Generator().manual_seed(seed))
    poisoned.y[test] = (data.y[test] + shift) % c
    assert int((poisoned.y != data.y).sum()) == int(test.sum())
    return poisoned
