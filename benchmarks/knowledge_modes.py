"""Do the students care which graph knowledge they get? Same teachers, three modes.

Reuses the teacher soft labels and splits saved by ``framekd run`` (``RUN/seed_<i>/``) and
distils FMLP-S and FMLP-O with the knowledge in ``sketch``, ``features`` and ``rows`` mode,
so the only thing that changes between columns is the knowledge. Prints a Markdown table.

    FRAMEKD_DATA=../shared/data OMP_NUM_THREADS=1 python benchmarks/knowledge_modes.py \\
        --runs runs/issue4/cora runs/issue4/chameleon --seeds 10
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from types import SimpleNamespace

import torch
import yaml

from framekd.data import load_dataset
from framekd.distill import distill_student
from framekd.framelets import FrameletTransform
from framekd.io import load_tensors
from framekd.knowledge import graph_knowledge
from framekd.models import build_student


def distil_all(run: Path, modes: list[str], seeds: int) -> dict[tuple[str, str], list[float]]:
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    data = load_dataset(cfg["dataset"])
    fr, s = cfg["framelet"], cfg["student"]
    wt = FrameletTransform(data.edge_index, data.num_nodes, filters=fr["filters"],
                           levels=fr["levels"], scale=fr["scale"], order=fr["order"])
    out: dict[tuple[str, str], list[float]] = {}
    for mode in modes:
        k = graph_knowledge(data.edge_index, data.num_nodes, data.x, transform=wt,
                            powers=cfg["teacher"]["layers"], mode=mode,
                            sketch_dim=cfg["knowledge"]["sketch_dim"],
                            epsilon=cfg["teacher"]["epsilon"], seed=cfg["knowledge"]["seed"])
        for name in ("fmlp-s", "fmlp-o"):
            for seed in range(seeds):
                folder = run / f"seed_{seed}"
                split = SimpleNamespace(**load_tensors(folder / "split.safetensors"))
                logp = load_tensors(folder / "teacher_logp.safetensors")["log_probs"]
                torch.manual_seed(seed)
                student = build_student(name, data.x.size(1), int(data.num_classes),
                                        knowledge_shape=k.shape, hidden_channels=s["hidden"],
                                        dropout=s["dropout"])
                res = distill_student(student, data, k, logp, split, lam=s["lam"],
                                      T=s["temperature"], lr=s["lr"],
                                      weight_decay=s["weight_decay"], epochs=s["epochs"],
                                      patience=s["patience"], seed=seed)
                out.setdefault((mode, name), []).append(100 * res.test_acc)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", type=Path, required=True)
    parser.add_argument("--modes", default="sketch,features,rows")
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()
    modes = args.modes.split(",")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)\n")
    print("| dataset | teacher | " + " | ".join(f"{n} ({m})" for m in modes
                                                 for n in ("fmlp-s", "fmlp-o")) + " |")
    print("|---|---:|" + "---:|" * (2 * len(modes)))
    for run in args.runs:
        res = distil_all(run, modes, args.seeds)
        teacher = [100 * a for a in yaml.safe_load((run / "metrics.json").read_text())
                   ["models"]["spatial"]["accuracy"][: args.seeds]]
        cells = [f"{statistics.fmean(v):.2f} ± {statistics.pstdev(v):.2f}"
                 for v in (res[(m, n)] for m in modes for n in ("fmlp-s", "fmlp-o"))]
        print(f"| {run.name} | {statistics.fmean(teacher):.2f} ± "
              f"{statistics.pstdev(teacher):.2f} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
