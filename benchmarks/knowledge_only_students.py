"""Probe: students that must read the knowledge (no feature branch), on unseen nodes.

On Chameleon the framelet students match the teacher on observed test nodes but fall far
below it on unseen ones, and their saved gates lean on the feature branch
(``inductive_students.py --gates``). This probe distils, on an inductive run's saved
teachers and unseen nodes (with ``inductive_students.py``'s code), three students without FMLP's
gated feature branch:

* ``klinear``: :math:`\\hat y = \\sum_c \\mathrm{Cls}_c(E_c z_c^{(K)})`, i.e. FMLP-S with
  every gate at 0 (linear per-channel encoders and classifiers, dropout on the encodings);
* ``sign``: a 2-layer MLP on :math:`[x \\,\\|\\, z_c^{(k)}]_{c,k}` (features and every
  channel and power concatenated);
* ``sign-nox``: the same without :math:`x`.

Same student settings as the run (hidden, dropout, lr, weight decay, λ, T, schedule).
Appends one CSV row per (run, model, seed); finished rows are skipped.

    OMP_NUM_THREADS=1 python benchmarks/knowledge_only_students.py \\
        runs/inductive/chameleon-geom 3 benchmarks/results/knowledge_only_students.csv
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from torch import nn

from framekd.config import resolve, validate
from framekd.data import load_dataset
from framekd.models.students import StudentOutput, _Student
from inductive_students import append_row, distil_and_score, knowledge_pair, seed_inputs


class KLinear(_Student):
    """sum_c Cls_c(E_c z_c^K): FMLP-S with every gate at 0."""

    def __init__(self, d, h, out, C, W, dropout):
        super().__init__(1.0)
        self.enc = nn.ModuleList(nn.Linear(W, h) for _ in range(C))
        self.cls = nn.ModuleList(nn.Linear(h, out) for _ in range(C))
        self.p = dropout

    def forward(self, x, knowledge):
        z = knowledge[:, -1]
        pairs = enumerate(zip(self.enc, self.cls, strict=True))
        return StudentOutput(sum(c(F.dropout(e(z[i]), self.p, self.training))
                                 for i, (e, c) in pairs), None)


class SIGN(_Student):
    """A 2-layer MLP on [x || z_c^k for all c, k] (without x when ``with_x`` is false)."""

    def __init__(self, d, h, out, C, K, W, dropout, with_x=True):
        super().__init__(1.0)
        self.with_x = with_x
        self.l1 = nn.Linear(d * with_x + C * K * W, h)
        self.l2 = nn.Linear(h, out)
        self.p = dropout

    def forward(self, x, knowledge):
        C, K, B, W = knowledge.shape
        parts = (([x.to_dense() if x.layout != torch.strided else x] if self.with_x else [])
                 + [knowledge.permute(2, 0, 1, 3).reshape(B, C * K * W)])
        h = F.dropout(F.relu(self.l1(torch.cat(parts, 1))), self.p, self.training)
        return StudentOutput(self.l2(h), None)


MODELS = ("klinear", "sign", "sign-nox")


def build(name: str, d: int, hidden: int, classes: int, shape: tuple, dropout: float) -> nn.Module:
    C, K, _, W = shape
    if name == "klinear":
        return KLinear(d, hidden, classes, C, W, dropout)
    return SIGN(d, hidden, classes, C, K, W, dropout, with_x=name == "sign")


def main() -> None:
    run, seeds, out = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    base = yaml.safe_load((run / "config.yaml").read_text())
    rc = validate(resolve(base["dataset"], config_file=run / "config.yaml"))
    data = load_dataset(base["dataset"])
    for seed in range(seeds):
        isplit, logp, observed = seed_inputs(run, data, base["protocol"], seed)
        ko, kt = knowledge_pair(rc, data, observed, isplit)
        done = ({(r["run"], r["model"], int(r["seed"])) for r in csv.DictReader(out.open())}
                if out.exists() else set())
        for name in MODELS:
            if (run.name, name, seed) in done:
                continue
            torch.manual_seed(seed)
            m = build(name, data.x.size(1), rc.student.hidden, int(data.num_classes),
                      tuple(ko.shape), rc.student.dropout)
            val, sc = distil_and_score(m, rc, data, observed, ko, kt, logp, isplit, seed)
            append_row(out, dict(run=run.name, model=name, seed=seed, val=round(100 * val, 2),
                                 tran=round(100 * sc["tran"], 2), ind=round(100 * sc["ind"], 2)))


if __name__ == "__main__":
    main()
