"""New nodes' knowledge rows: ``knowledge_rows`` against a transposed evaluation (prototype).

Usage::

    FRAMEKD_DATA=../shared/data OMP_NUM_THREADS=1 .venv/bin/python \\
        benchmarks/bench_newnode.py --dataset physics --repeats 3

For ``--query-size`` new nodes (:func:`framekd.newnodes.append_copies`, a fresh set per call),
side by side in one process, median over ``--repeats`` calls after one warm-up:

* ``knowledge_rows``: :func:`framekd.receptive.knowledge_rows`, what ``framekd bench speed
  --query new`` times: the powers :math:`K_c^k M` of the whole sketch/feature block M
  (width 256 for ``sketch``, d for ``features``) on the receptive field;
* ``transposed`` (a prototype, not in the library): :math:`K_c` is symmetric, so the rows
  are :math:`(K_c^k E_q)^\\top M` with :math:`E_q` the q query columns of the identity:
  the sparse products run on q columns instead of the width of M, then one dense product
  with M's rows on the field (subgraph of radius + 1 hops, so that degrees are exact);
* the spatial teacher on its receptive-field subgraph (:func:`teacher_on_subgraph`), for
  the ratio a student would reach with each.

Prints the medians, the speed-ups and the largest difference between the two row methods.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

import torch
from torch_geometric.utils import k_hop_subgraph

from _env import environment
from framekd.config import RunConfig, resolve
from framekd.data import load_dataset
from framekd.experiment import graph_operator, knowledge_spec
from framekd.framelets import FrameletOperator
from framekd.graph import ensure_canonical
from framekd.knowledge import sketch_matrix
from framekd.models import teacher_from_config
from framekd.newnodes import (
    append_copies,
    original_ids,
    student_rows,
    teacher_on_subgraph,
    teacher_radius,
)
from framekd.receptive import knowledge_radius


def transposed_rows(grown, nodes, spec, framelet, epsilon: float) -> torch.Tensor:
    """``[C, K, q, width]``: rows of K_c^k M as (K_c^k E_q)^T M on the (radius + 1)-ball."""
    radius = knowledge_radius(framelet, spec.powers)
    subset, sub, at, _ = k_hop_subgraph(nodes, radius + 1, grown.edge_index, relabel_nodes=True,
                                        num_nodes=grown.num_nodes)
    op = FrameletOperator(sub, int(subset.numel()), framelet, epsilon=epsilon)
    if spec.mode == "sketch":
        m = sketch_matrix(grown.num_nodes, spec.sketch_dim, seed=spec.seed)[subset]
    else:
        m = grown.x[subset]
    e = torch.zeros(int(subset.numel()), nodes.numel())
    e[at, torch.arange(nodes.numel())] = 1.0
    return torch.stack([v.transpose(1, 2) @ m for v in op.powers(e, spec.powers)], 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="physics")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--query-size", type=int, default=10)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    print(environment())
    cfg = RunConfig.from_dict(resolve(args.dataset, overrides=args.set))
    data = load_dataset(cfg.dataset)
    spec = knowledge_spec(cfg, data)
    lam = float(graph_operator(cfg, data).transform.lambda_max)
    fspec = replace(cfg.framelet, lambda_max=lam)
    eps = cfg.teacher.epsilon
    torch.manual_seed(0)
    teacher = teacher_from_config("spatial", replace(cfg, framelet=fspec), data.x.size(1),
                                  int(data.y.max()) + 1).eval()
    sparse = teacher._sparse_input
    n, x = data.num_nodes, data.x
    times: dict[str, list[float]] = {"knowledge_rows": [], "transposed": [], "teacher": []}
    worst = 0.0
    base = type(data)(x=x if spec.mode == "features" else None, edge_index=data.edge_index,
                      num_nodes=n)
    with torch.no_grad():
        sparse(x)  # the CSR copy of the features, made once
        for call in range(args.repeats + 1):
            grown, source = append_copies(base, args.query_size, seed=1 + call)
            ensure_canonical(grown.edge_index, grown.num_nodes)
            new = torch.arange(n, n + args.query_size)
            start = time.perf_counter()
            ref = student_rows(grown, new, spec, fspec, epsilon=eps, lambda_max=lam,
                               dtype=torch.float32)
            t_ref = time.perf_counter() - start
            start = time.perf_counter()
            fast = transposed_rows(grown, new, spec, fspec, eps)
            t_fast = time.perf_counter() - start
            start = time.perf_counter()
            teacher_on_subgraph(teacher, grown.edge_index, grown.num_nodes, new,
                                lambda s, src=source: sparse.rows(x, original_ids(s, n, src)),
                                radius=teacher_radius(teacher))
            t_teacher = time.perf_counter() - start
            worst = max(worst, float((fast - ref).abs().max()))
            if call:
                for key, value in zip(times, (t_ref, t_fast, t_teacher), strict=True):
                    times[key].append(value)
    med = {k: 1000 * statistics.median(v) for k, v in times.items()}
    print(f"\n**{args.dataset}** ({n} nodes, {spec.mode} knowledge, width "
          f"{spec.width(n, x)}, radius {knowledge_radius(fspec, spec.powers)}), "
          f"{args.query_size} new nodes, median of {args.repeats} calls\n")
    print("| rows by | rows (ms) | spatial teacher on its subgraph (ms) | teacher / rows |")
    print("|---|---:|---:|---:|")
    for key in ("knowledge_rows", "transposed"):
        print(f"| {key} | {med[key]:.1f} | {med['teacher']:.1f} | "
              f"{med['teacher'] / med[key]:.2f}x |")
    print(f"\nmax |transposed - knowledge_rows| = {worst:.2e}; transposed is "
          f"{med['knowledge_rows'] / med['transposed']:.1f}x faster")


if __name__ == "__main__":
    main()
