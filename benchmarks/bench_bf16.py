"""Trained students in bfloat16: test accuracy change and full-graph time against float32.

Usage::

    FRAMEKD_DATA=../shared/data OMP_NUM_THREADS=1 .venv/bin/python \\
        benchmarks/bench_bf16.py --run runs/transductive/physics-fgkd --repeats 15

For every seed of a finished ``framekd run`` and every student it trained (GLNN's MLP,
FMLP-S, FMLP-O, FMLP-C): the test accuracy of the model as trained (float32) and of the
same model cast with ``model.to(torch.bfloat16)``, reading the features and the graph
knowledge cast once, and the share of all nodes whose predicted class is unchanged. Then,
on seed ``--time-seed``, the full-graph forward time of each student in both precisions,
side by side in one process, interleaved, median over ``--repeats`` calls. The sparse
feature product stays float32 (:func:`framekd.models.sparse_input.linear`); everything
else runs in bfloat16, which pays where the CPU multiplies bfloat16 natively (AMX or
AVX-512 BF16; ``lscpu`` lists ``amx_bf16`` / ``avx512_bf16``).
"""

from __future__ import annotations

import argparse
import copy
import statistics
from pathlib import Path

import torch

from _env import environment, interleaved_median_ms
from framekd.data.datasets import cache_root
from framekd.experiment import compute_knowledge, load_trained, prepare_graph
from framekd.io import load_tensors
from framekd.trained import read_config

STUDENTS = ("glnn", "fmlp-s", "fmlp-o", "fmlp-c")
BF16 = torch.bfloat16


def _accuracy(logits: torch.Tensor, y: torch.Tensor, index: torch.Tensor) -> float:
    return float((logits[index].argmax(1) == y[index]).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="a finished framekd run")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--time-seed", type=int, default=0)
    args = parser.parse_args()
    print(environment())
    _, rc = read_config(args.run)
    data, _ = prepare_graph(rc, cache_dir=cache_root() / "artifacts", log=lambda m: None)
    knowledge, _ = compute_knowledge(data, rc, cache_dir=cache_root() / "artifacts",
                                     device=torch.device("cpu"))
    x, y = data.x, data.y
    x_low, k_low = x.to(BF16), knowledge.to(BF16)
    seeds = sorted(int(p.name.removeprefix("seed_")) for p in args.run.glob("seed_*")
                   if (p / "metrics.json").is_file())
    names = [n for n in STUDENTS if (args.run / f"seed_{seeds[0]}" / f"{n}.safetensors").is_file()]
    acc: dict[str, list[tuple[float, float, float]]] = {n: [] for n in names}
    timed: dict[str, object] = {}
    for seed in seeds:
        test = load_tensors(args.run / f"seed_{seed}" / "split.safetensors")["test"]
        for name in names:
            model = load_trained(args.run, seed, name).eval()
            low = copy.deepcopy(model).to(BF16)
            k, kl = (None, None) if name == "glnn" else (knowledge, k_low)
            with torch.no_grad():
                want, got = model(x, k).logits, low(x_low, kl).logits.float()
            same = float((want.argmax(1) == got.argmax(1)).float().mean())
            acc[name].append((_accuracy(want, y, test), _accuracy(got, y, test), same))
            if seed == args.time_seed:
                timed[f"{name} float32"] = lambda m=model, k=k: m(x, k)
                timed[f"{name} bfloat16"] = lambda m=low, k=kl: m(x_low, k)
    print(f"\n**{args.run}**: {len(seeds)} seed(s), knowledge {list(knowledge.shape)}; test "
          "accuracy (%) mean over seeds; unchanged: share of all nodes whose class is the "
          "same in both precisions (lowest seed)\n")
    print("| student | float32 | bfloat16 | change (points) | largest change of a seed | "
          "unchanged predictions |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, rows in acc.items():
        f32 = statistics.mean(r[0] for r in rows)
        b16 = statistics.mean(r[1] for r in rows)
        worst = max((r[1] - r[0] for r in rows), key=abs)
        print(f"| {name} | {100 * f32:.2f} | {100 * b16:.2f} | {100 * (b16 - f32):+.3f} | "
              f"{100 * worst:+.2f} | {100 * min(r[2] for r in rows):.2f} % |")
    med = interleaved_median_ms(timed, args.repeats)
    mlp = med["glnn float32"] if "glnn float32" in med else None
    print(f"\nFull graph, seed {args.time_seed}, median of {args.repeats} interleaved calls:\n")
    print("| student | float32 (ms) | bfloat16 (ms) | bfloat16 speed-up | bfloat16 × MLP "
          "(float32) |")
    print("|---|---:|---:|---:|---:|")
    for name in names:
        a, b = med[f"{name} float32"], med[f"{name} bfloat16"]
        ratio = "" if mlp is None else f"{b / mlp:.2f}"
        print(f"| {name} | {a:.1f} | {b:.1f} | {a / b:.2f}x | {ratio} |")


if __name__ == "__main__":
    main()
