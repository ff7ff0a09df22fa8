"""Provenance for ``manifest.json``, the model card: what it says about the model's origin
(dataset, seed, model, knowledge, settings, source files), sha256 checksums, and the versions
of framekd (with its git commit) and of the packages the export used."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from framekd.io import file_sha256


def _card(run: dict[str, Any], name: str, student: nn.Module,
          kmode: str | None) -> dict[str, Any]:
    """What the manifest says about the model's origin (partly embedded in the files)."""
    from framekd.io import load_metadata

    rc, raw = run["rc"], run["raw"]
    kinfo = None
    if kmode is not None:
        meta = load_metadata(run["weights"])
        shape = [int(v) for v in meta["knowledge_shape"].split(",")]
        kinfo = {
            "mode": kmode, "mode_configured": rc.knowledge_mode,
            "channels": shape[0], "powers": shape[1], "width": shape[3],
            "num_nodes": shape[2],
            "sketch_dim": rc.sketch_dim, "sketch_seed": rc.sketch_seed,
            "framelet": rc.framelet.to_dict(), "teacher_epsilon": rc.teacher.epsilon,
            "rewire": raw.get("rewire"),
            "computed_with": "framekd.experiment.compute_knowledge(data, cfg) on the run's "
                             "graph (framekd.experiment.prepare_graph); feed rows [:, :, idx]",
        }
    return {
        "dataset": rc.dataset,
        "seed": run["seed"],
        "model": {"name": name, "class": type(student).__name__,
                  "module": type(student).__module__,
                  "parameters": int(sum(p.numel() for p in student.parameters()))},
        "knowledge": kinfo,
        "settings": raw,
        "config_hash": rc.digest,
        "source": {
            "run_dir": str(run["dir"].resolve()),
            "weights": str(run["weights"].relative_to(run["dir"])),
            "weights_sha256": file_sha256(run["weights"]),
            "config_sha256": file_sha256(run["dir"] / "config.yaml"),
        },
        "framekd": _code_version(),
    }



def _code_version() -> dict[str, Any]:
    """framekd's version and, when it runs from its own git checkout (``src/framekd`` of the
    work tree), the commit and whether the package's sources differ from it."""
    from framekd import __version__

    here = Path(__file__).resolve().parent.parent  # src/framekd, not src/framekd/export
    commit, dirty = None, None

    def git(*args: str) -> str | None:
        res = subprocess.run(["git", "-C", str(here), *args], capture_output=True, text=True,
                             timeout=10, check=False)
        return res.stdout.strip() if res.returncode == 0 else None

    try:
        top = git("rev-parse", "--show-toplevel")
        # Not the commit of some other repository the installed package happens to sit in.
        if top and (Path(top) / "src" / "framekd").resolve() == here:
            commit = git("rev-parse", "HEAD")
            status = git("status", "--porcelain", "--", ".")
            dirty = None if status is None else bool(status)
    except (OSError, subprocess.SubprocessError):
        pass
    return {"version": __version__, "git_commit": commit, "git_dirty": dirty}


def _version(module: str) -> str | None:
    try:
        return __import__(module).__version__
    except ImportError:
        return None


def _versions() -> dict[str, str | None]:
    return {"torch": torch.__version__, "numpy": np.__version__,
            **{m: _version(m) for m in ("onnx", "onnxruntime", "onnxscript")}}
