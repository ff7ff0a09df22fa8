r"""Contextual stochastic block model (CSBM) graphs with a target edge homophily.

Labels are balanced: :math:`y = \pi(i \bmod C)` for a random permutation :math:`\pi`.
The graph has exactly :math:`M = \mathrm{round}(N\bar d/2)` undirected edges (so the
mean degree of the canonical graph is :math:`2M/N \approx \bar d`), of which
:math:`M_{in} = \mathrm{round}(hM)` join nodes of the same class and
:math:`M - M_{in}` join nodes of different classes. The edge homophily

.. math::
    h_{edge} = \frac{|\{(i,j) \in E : y_i = y_j\}|}{|E|} = \frac{M_{in}}{M}

therefore equals the target up to rounding. Same-class pairs are drawn as
(u uniform, v uniform in u's class); cross-class pairs as (u uniform, a class
c' ≠ y_u uniform, v uniform in c'). Self-pairs and duplicates are discarded and
the draw is topped up until exactly the required number of distinct pairs exists,
all with vectorised NumPy (no Python loop over nodes or edges).

Features: class means :math:`m_c = s\, g_c / \lVert g_c\rVert` with
:math:`g_c \sim \mathcal N(0, I_F)` and :math:`x_i = m_{y_i} + \varepsilon_i`,
:math:`\varepsilon_i \sim \mathcal N(0, I_F)`: ``feature_signal`` :math:`s` is the
distance of a class mean from the origin in units of the per-direction noise.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch_geometric.data import Data

from framekd.errors import ConfigError

_MAX_ROUNDS = 200

_ALIASES = {
    "n": "num_nodes", "nodes": "num_nodes", "num_nodes": "num_nodes",
    "c": "num_classes", "classes": "num_classes", "num_classes": "num_classes",
    "d": "avg_degree", "deg": "avg_degree", "degree": "avg_degree",
    "avg_degree": "avg_degree",
    "h": "homophily", "homophily": "homophily",
    "s": "feature_signal", "signal": "feature_signal", "feature_signal": "feature_signal",
    "f": "num_features", "features": "num_features", "num_features": "num_features",
    "seed": "seed",
}
_INTS = {"num_nodes", "num_classes", "num_features", "seed"}


def parse_csbm_spec(spec: str) -> dict:
    """Parse ``csbm:n=2000,h=0.2,seed=1`` into keyword arguments of :func:`csbm`."""
    _, _, body = spec.partition(":")
    params: dict = {}
    for item in filter(None, (p.strip() for p in body.split(","))):
        key, sep, value = item.partition("=")
        name = _ALIASES.get(key.strip().lower())
        if not sep or name is None:
            raise ConfigError(
                f"bad csbm option '{item}' in '{spec}'; use key=value with keys "
                "n, c, d, h, signal, f, seed (e.g. csbm:n=2000,h=0.2,seed=1)"
            )
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"csbm option {key}={value!r} in '{spec}' is not a number") from None
        if name in params:
            raise ConfigError(
                f"csbm option {key.strip()} is given twice in '{spec}' (as {name}); give each "
                "option once"
            )
        if not math.isfinite(number):
            raise ConfigError(f"csbm option {key}={value} in '{spec}' must be a finite number")
        if name in _INTS:
            if not number.is_integer():
                raise ConfigError(f"csbm option {key}={value} in '{spec}' must be an integer")
            number = int(number)
        params[name] = number
    return params


def _check(num_nodes, num_classes, avg_degree, homophily, feature_signal, num_features):
    if int(num_nodes) != num_nodes or num_nodes < 2:
        raise ConfigError(f"csbm num_nodes must be an integer >= 2, got {num_nodes}")
    if int(num_classes) != num_classes or not 2 <= num_classes <= num_nodes:
        raise ConfigError(
            f"csbm num_classes must be an integer in [2, num_nodes={num_nodes}], "
            f"got {num_classes}"
        )
    if not (math.isfinite(avg_degree) and 0 <= avg_degree <= num_nodes - 1):
        raise ConfigError(
            f"csbm avg_degree must lie in [0, num_nodes - 1 = {num_nodes - 1}], got {avg_degree}"
        )
    if not 0.0 <= homophily <= 1.0:
        raise ConfigError(f"csbm homophily must lie in [0, 1], got {homophily}")
    if not (math.isfinite(feature_signal) and feature_signal >= 0):
        raise ConfigError(f"csbm feature_signal must be finite and >= 0, got {feature_signal}")
    if int(num_features) != num_features or num_features < 1:
        raise ConfigError(f"csbm num_features must be an integer >= 1, got {num_features}")


def _distinct(keys: np.ndarray) -> np.ndarray:
    # Sort-based; much faster than np.unique's hash path on 10^7 int64 keys.
    keys.sort()
    keep = np.empty(keys.size, dtype=bool)
    keep[:1] = True
    np.not_equal(keys[1:], keys[:-1], out=keep[1:])
    return keys[keep]


def _sample_pairs(rng: np.random.Generator, y: np.ndarray, order: np.ndarray,
                  start: np.ndarray, count: np.ndarray, target: int, same: bool) -> np.ndarray:
    """``target`` distinct unordered pairs ``u < v`` (as keys ``u * N + v``)."""
    n, c = y.size, count.size
    keys = np.empty(0, dtype=np.int64)
    for _ in range(_MAX_ROUNDS):
        missing = target - keys.size
        if missing <= 0:
            break
        k = missing + missing // 10 + 64  # collisions are rare on sparse graphs
        u = rng.integers(0, n, size=k)
        cls = y[u] if same else (y[u] + rng.integers(1, c, size=k)) % c
        v = order[start[cls] + (rng.random(k) * count[cls]).astype(np.int64)]
        keep = u != v
        a, b = np.minimum(u, v)[keep], np.maximum(u, v)[keep]
        keys = _distinct(np.concatenate([keys, a * n + b]))
    else:
        raise ConfigError(
            f"csbm could not draw {target} distinct {'same' if same else 'cross'}-class edges; "
            "lower avg_degree or use more nodes"
        )
    # The keys are sorted now; a seeded subset keeps the choice unbiased and reproducible.
    return np.sort(keys[rng.permutation(keys.size)[:target]])


def csbm(num_nodes: int = 1000, num_classes: int = 2, avg_degree: float = 10.0,
         homophily: float = 0.8, feature_signal: float = 1.0, num_features: int = 32,
         seed: int = 0) -> Data:
    """Generate a seeded CSBM graph (see the module docstring for the model).

    Args:
        num_nodes: N.
        num_classes: C (balanced classes).
        avg_degree: target mean degree of the undirected, deduplicated graph.
        homophily: target edge homophily in [0, 1].
        feature_signal: norm of each class mean; the noise is N(0, I) per feature.
        num_features: F.
        seed: seed of the NumPy generator; the same seed gives the same graph.

    Returns:
        A canonical :class:`Data` with float32 ``x`` [N, F], int64 ``y`` [N],
        sorted symmetric ``edge_index`` and ``num_classes``.
    """
    _check(num_nodes, num_classes, avg_degree, homophily, feature_signal, num_features)
    if isinstance(seed, bool) or int(seed) != seed or seed < 0:
        raise ConfigError(f"csbm seed must be an integer >= 0, got {seed}")
    n, c = int(num_nodes), int(num_classes)
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n, dtype=np.int64) % c)
    order = np.argsort(y, kind="stable")
    count = np.bincount(y, minlength=c)
    start = np.concatenate([[0], np.cumsum(count)[:-1]])

    m = round(n * avg_degree / 2)
    m_in = round(homophily * m)
    m_out = m - m_in
    pairs_in = int((count * (count - 1) // 2).sum())
    pairs_out = n * (n - 1) // 2 - pairs_in
    if m_in > pairs_in or m_out > pairs_out:
        raise ConfigError(
            f"csbm cannot place {m_in} same-class and {m_out} cross-class edges among "
            f"{n} nodes in {c} classes (at most {pairs_in} and {pairs_out}); lower avg_degree"
        )
    keys = np.concatenate([
        _sample_pairs(rng, y, order, start, count, m_in, same=True),
        _sample_pairs(rng, y, order, start, count, m_out, same=False),
    ])
    a, b = keys // n, keys % n
    both = np.sort(np.concatenate([a * n + b, b * n + a]))
    edge_index = torch.from_numpy(np.stack([both // n, both % n]))

    means = rng.standard_normal((c, int(num_features)))
    means *= feature_signal / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
    x = rng.standard_normal((n, int(num_features)), dtype=np.float32)
    x += means.astype(np.float32)[y]
    return Data(x=torch.from_numpy(x), edge_index=edge_index, y=torch.from_numpy(y),
                num_nodes=n, num_classes=c)
