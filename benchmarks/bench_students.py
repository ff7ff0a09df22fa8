"""Full-graph student inference: the per-channel loop against the batched eval path.

Usage::

    FRAMEKD_DATA=../shared/data OMP_NUM_THREADS=1 .venv/bin/python \\
        benchmarks/bench_students.py --dataset physics --repeats 15 [--compile]

On one graph's real features and a knowledge tensor of the shape ``framekd run`` would
compute (``[C, K, N, width]``: values do not change the cost, so it is drawn at random
instead of spending the precompute), side by side in one process, interleaved, same weights:

* ``loop``: the per-channel Python loop (the training-mode code with dropout 0; what the
  students ran at inference before the batched path);
* ``batched``: ``model.eval()`` (one batched product over channels; FMLP-S through its
  composed maps, see :mod:`framekd.models.students`);
* ``compiled`` (``--compile``): ``torch.compile`` of the batched model (the sparse-input
  check breaks the graph; the rest is compiled);
* FMLP-C (eval only: it has no loop);
* ``floor``: the dense products FMLP-O cannot avoid, timed alone: its ``C·K`` knowledge
  encoders (``[N, width] @ [width, hidden]``, behind a ReLU, so no composition removes
  them) as one :func:`torch.baddbmm` per power. FMLP-O's full-graph time is at least the
  MLP's (the same sparse feature product) plus this.

Prints the median full-graph forward time per model and path, the speed-up over the loop,
the ratio to the MLP, and the largest logit difference from the loop.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from _env import environment
from framekd.config import RunConfig, resolve
from framekd.data import load_dataset
from framekd.experiment import knowledge_spec
from framekd.models import student_from_config


def _time(fn) -> float:
    start = time.perf_counter()
    with torch.no_grad():
        fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="physics")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    args = parser.parse_args()
    print(environment())
    cfg = RunConfig.from_dict(resolve(args.dataset))
    data = load_dataset(cfg.dataset)
    spec = knowledge_spec(cfg, data)
    c, k = cfg.framelet.num_channels, spec.powers
    shape = (c, k, data.num_nodes, spec.width(data.num_nodes, data.x))
    knowledge = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    x, classes = data.x, int(data.y.max()) + 1
    paths: dict[str, tuple[torch.nn.Module, bool]] = {}
    for name in ("mlp", "fmlp-s", "fmlp-o", "fmlp-c"):
        torch.manual_seed(0)
        model = student_from_config(name, cfg, x.size(1), classes, knowledge_shape=shape)
        model.dropout = 0.0
        kn = None if name == "mlp" else knowledge
        if name in ("mlp", "fmlp-c"):
            paths[name] = (model.eval(), kn)
            continue
        loop = student_from_config(name, cfg, x.size(1), classes, knowledge_shape=shape)
        loop.load_state_dict(model.state_dict())
        loop.dropout = 0.0
        paths[f"{name} loop"] = (loop.train(), kn)  # dropout 0: the loop, nothing random
        paths[f"{name} batched"] = (model.eval(), kn)
        if args.compile:
            start = time.perf_counter()
            compiled = torch.compile(model)
            with torch.no_grad():
                compiled(x, kn)
            print(f"{name}: torch.compile + first call {time.perf_counter() - start:.1f} s")
            paths[f"{name} compiled"] = (compiled, kn)
    calls = {key: (lambda m=model, kn=kn: m(x, kn)) for key, (model, kn) in paths.items()}
    calls["floor"] = _encoder_products(knowledge, cfg.student.hidden)
    times: dict[str, list[float]] = {key: [] for key in calls}
    for call in calls.values():  # first call: sparse copy of x, not timed
        _time(call)
    for _ in range(args.repeats):
        for key, call in calls.items():
            times[key].append(_time(call))
    med = {key: 1000 * statistics.median(v) for key, v in times.items()}
    print(f"\n**{args.dataset}**: N = {data.num_nodes}, d = {x.size(1)}, knowledge "
          f"{list(shape)} ({spec.mode}), median of {args.repeats} full-graph calls\n")
    print("| model | path | ms | speed-up vs loop | × MLP | max abs logit diff vs loop |")
    print("|---|---|---:|---:|---:|---:|")
    with torch.no_grad():
        for key, (model, kn) in paths.items():
            name, _, path = key.partition(" ")
            loop_key = f"{name} loop"
            speed = "" if loop_key not in med else f"{med[loop_key] / med[key]:.2f}x"
            diff = ""
            if loop_key in paths and key != loop_key:
                ref = paths[loop_key][0](x, kn).logits
                diff = f"{float((model(x, kn).logits - ref).abs().max()):.1e}"
            print(f"| {name} | {path or 'eval'} | {med[key]:.1f} | {speed} | "
                  f"{med[key] / med['mlp']:.2f} | {diff} |")
    floor = med["mlp"] + med["floor"]
    gflop = 2 * knowledge.numel() * cfg.student.hidden / 1e9  # C·K products [N, w] @ [w, h]
    print(f"\nFMLP-O's encoder products alone: {med['floor']:.1f} ms ({gflop:.2f} GFLOP, "
          f"{gflop / med['floor'] * 1000:.1f} GFLOP/s); with the MLP's feature product: "
          f"{floor:.1f} ms = {floor / med['mlp']:.2f}x the MLP: about the least FMLP-O can take.")


def _encoder_products(knowledge: torch.Tensor, hidden: int):
    """A call of FMLP-O's knowledge encoders alone: per power one ``baddbmm`` over the
    channels (random weights of the trained shapes)."""
    gen = torch.Generator().manual_seed(1)
    c, _, _, width = knowledge.shape
    weight, bias = torch.randn(c, width, hidden, generator=gen), torch.randn(c, 1, hidden)

    def call() -> None:
        for k in range(knowledge.size(1)):
            torch.baddbmm(bias, knowledge[:, k], weight)

    return call


if __name__ == "__main__":
    main()
