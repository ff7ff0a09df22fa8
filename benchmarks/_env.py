"""The one-line description of the software and machine that every benchmark prints first."""

from __future__ import annotations

import platform

import torch
import torch_geometric


def environment() -> str:
    """``torch 2.13.0+cpu, PyG 2.8.1, 1 thread(s), x86_64``: what a timing depends on."""
    return (f"torch {torch.__version__}, PyG {torch_geometric.__version__}, "
            f"{torch.get_num_threads()} thread(s), {platform.processor() or platform.machine()}")
