"""Deployed students: onnxruntime against PyTorch, and what int8 costs in accuracy.

Usage::

    FRAMEKD_DATA=../shared/data OMP_NUM_THREADS=1 .venv/bin/python \\
        benchmarks/bench_deploy.py --dataset cora --work /tmp/deploy-cora --repeats 20

1. ``framekd run --dataset D --seeds 1 --out WORK/run`` (skipped when that seed is finished;
   ``--set key=value`` is passed on, e.g. short schedules when only latency matters);
2. ``framekd export --run WORK/run --model M --format onnx,pt2 --quantize`` for every
   student (GLNN's MLP, FMLP-S, FMLP-O): ONNX opset 18, ``.pt2``, int8 ONNX, and the
   manifest with the parity and the int8 test-accuracy change on the run's test nodes;
3. latency, side by side in one process, interleaved, median over ``--repeats``: the
   PyTorch model (``load_trained``, eval mode, as ``framekd`` runs it: sparse input
   features, the batched eval path), the reloaded ``.pt2`` program, and the ONNX models
   (fp32 and int8) in onnxruntime on the CPU with as many intra-op threads as torch uses;
   on the full graph and on a batch of ``--query-size`` random nodes. The inputs (features
   and the batch's knowledge rows) are prepared before the clock starts for every engine.

The exported graphs take dense features (ONNX has no sparse input): on bag-of-words
features the first product is then dense, which the ``ort/pt`` ratio shows.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from _env import environment, interleaved_median_ms
from framekd.config import RunConfig
from framekd.data.datasets import cache_root
from framekd.experiment import compute_knowledge, load_trained, prepare_graph

MODELS = ("glnn", "fmlp-s", "fmlp-o")


def _framekd(*args: str) -> None:
    cmd = [sys.executable, "-m", "framekd", *args]
    print("$ framekd " + " ".join(args), flush=True)
    subprocess.run(cmd, check=True)


def _session(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="cora")
    parser.add_argument("--work", type=Path, required=True, help="folder for the run and exports")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--query-size", type=int, default=10)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="passed on to framekd run")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    print(environment())
    run = args.work / "run"
    if not (run / "seed_0" / "metrics.json").is_file():
        start = time.perf_counter()
        _framekd("run", "--dataset", args.dataset, "--seeds", "1", "--out", str(run), "--quiet",
                 *[f"--set={s}" for s in args.set])
        print(f"trained in {time.perf_counter() - start:.1f} s")
    rc = RunConfig.from_dict(__import__("yaml").safe_load((run / "config.yaml").read_text()))
    data, _ = prepare_graph(rc, cache_dir=cache_root() / "artifacts", log=lambda m: None)
    knowledge, _ = compute_knowledge(data, rc, cache_dir=cache_root() / "artifacts",
                                     device=torch.device("cpu"))
    x = data.x
    idx = torch.randperm(data.num_nodes, generator=torch.Generator().manual_seed(0))
    idx = idx[:args.query_size]
    rows = []
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        out = args.work / "export" / name
        _framekd("export", "--run", str(run), "--model", name, "--format", "onnx,pt2",
                 "--quantize", "--out", str(out))
        manifest = json.loads((out / "manifest.json").read_text())
        model = load_trained(run, 0, name).eval()
        program = torch.export.load(str(out / f"{name}.pt2")).module()
        fp32, int8 = _session(out / f"{name}.onnx"), _session(out / f"{name}.int8.onnx")
        uses_k = name != "glnn" and name != "mlp"
        for batch, nodes in (("full graph", None), (f"{args.query_size} nodes", idx)):
            xb = x if nodes is None else x[nodes]
            kb = None if not uses_k else (knowledge if nodes is None else
                                         knowledge[:, :, nodes].contiguous())
            feeds = {"x": xb.numpy()}
            if uses_k:
                feeds["knowledge"] = kb.numpy()
            med = interleaved_median_ms({
                "pytorch": lambda m=model, xb=xb, kb=kb: m(xb, kb),
                "pt2": (lambda p=program, xb=xb, kb=kb: p(xb, kb)) if uses_k
                else (lambda p=program, xb=xb: p(xb)),
                "onnx": lambda s=fp32, f=feeds: s.run(None, f),
                "onnx_int8": lambda s=int8, f=feeds: s.run(None, f),
            }, args.repeats)
            q = manifest["quantization"]
            rows.append({"dataset": args.dataset, "model": name, "batch": batch,
                         "nodes": int(xb.size(0)), **med,
                         "parity": manifest["parity"]["onnx"]["max_abs_logits"],
                         "acc_fp32": q["accuracy_fp32_onnx"], "acc_int8": q["accuracy_int8_onnx"],
                         "acc_change": q["accuracy_change"],
                         "test_nodes": manifest["accuracy"]["test_nodes"]})
    print(f"\n**{args.dataset}** (N = {data.num_nodes}, d = {x.size(1)}, knowledge "
          f"{list(knowledge.shape)}), median of {args.repeats} calls, "
          f"{torch.get_num_threads()} thread(s)\n")
    print("| model | batch | PyTorch (ms) | .pt2 (ms) | ONNX fp32 (ms) | ONNX int8 (ms) | "
          "ONNX / PyTorch | ONNX parity max abs logits | test acc fp32 → int8 (%) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['batch']} | {r['pytorch']:.3f} | {r['pt2']:.3f} | "
              f"{r['onnx']:.3f} | {r['onnx_int8']:.3f} | {r['onnx'] / r['pytorch']:.2f} | "
              f"{r['parity']:.1e} | {100 * r['acc_fp32']:.2f} → {100 * r['acc_int8']:.2f} "
              f"({100 * r['acc_change']:+.2f}, {r['test_nodes']} nodes) |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
