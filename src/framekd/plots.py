"""Figures of framekd's reports: one place for every matplotlib call.

Each function draws one PNG from numbers computed elsewhere (:mod:`framekd.analysis`,
:mod:`framekd.studies`, :mod:`framekd.bench`) and writes it atomically. matplotlib is
imported lazily with the non-interactive ``Agg`` backend, so nothing here needs a display.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "plot_curvature_histogram",
    "plot_depth",
    "plot_energy",
    "plot_gates",
    "plot_sweep_accuracy",
    "pyplot",
    "save_figure",
    "speed_plot",
]


def pyplot():
    """``matplotlib.pyplot`` on the ``Agg`` backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path) -> None:
    """Lay out ``fig``, write it as a 120-dpi PNG atomically and close it."""
    from framekd.io import atomic_path

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    pyplot().close(fig)


def plot_curvature_histogram(path, before, after, title: str) -> None:
    """Write a PNG histogram of edge curvature before and after rewiring (atomic write).

    ``before`` and ``after`` are NumPy arrays with one Balanced Forman curvature per
    undirected edge.
    """
    plt = pyplot()
    lo = min(float(before.min(initial=0.0)), float(after.min(initial=0.0)))
    hi = max(float(before.max(initial=0.0)), float(after.max(initial=0.0)))
    bins = np.linspace(lo, hi if hi > lo else lo + 1.0, 41)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(before, bins=bins, alpha=0.6, label=f"before ({before.size} edges)")
    ax.hist(after, bins=bins, alpha=0.6, label=f"after ({after.size} edges)")
    ax.set_xlabel("Balanced Forman curvature Ric(i, j)")
    ax.set_ylabel("number of undirected edges")
    ax.set_title(title)
    ax.legend()
    save_figure(fig, path)


def plot_energy(path: Path, table: list[tuple[str, float, float]], name: str) -> None:
    """Horizontal bars of Dirichlet energy ``(label, mean, std)``, teacher first."""
    plt = pyplot()
    labels = [t[0] for t in table]
    fig, ax = plt.subplots(figsize=(7.5, 0.28 * len(labels) + 1.5))
    colours = ["tab:gray" if lab.startswith("input") else "tab:blue" if lab.startswith("teacher")
               else "tab:orange" if lab.startswith("fmlp-s") else "tab:green"
               if lab.startswith("fmlp-o") else "tab:purple" for lab in labels]
    ax.barh(range(len(labels)), [t[1] for t in table], xerr=[t[2] for t in table],
            color=colours)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("Dirichlet energy tr(HᵀLH)/‖H‖² (0 smooth ... 2 oscillating)")
    ax.set_title(f"{name}: energy of teacher and student representations", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    save_figure(fig, path)


def plot_gates(path: Path, curves: dict[str, dict], names: Sequence[str], title: str) -> None:
    """One panel per student (layer): mean reliance per channel against homophily."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 3.8), squeeze=False,
                             sharey=True)
    for ax, (label, c) in zip(axes[0], curves.items(), strict=True):
        for n in names:
            ax.errorbar(c["levels"], c["mean"][n], yerr=c["std"][n], marker="o", capsize=3,
                        label=n)
        ax.set_title(label)
        ax.set_xlabel("homophily level h")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("mean reliance on channel knowledge")
    axes[0][-1].legend(fontsize=8)
    fig.suptitle(f"{title}: student reliance per framelet channel vs homophily")
    save_figure(fig, path)


def plot_sweep_accuracy(path: Path, levels: Sequence[float],
                        curves: dict[str, tuple[list[float], list[float]]], title: str) -> None:
    """Test accuracy (mean, std per level) of each model against homophily."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for model, (mean, std) in curves.items():
        ax.errorbar(levels, mean, yerr=std, marker="o", capsize=3, label=model)
    ax.set_xlabel("homophily level h")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{title}: accuracy vs homophily")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)


def plot_depth(path: Path, rows: list[dict], name: str) -> None:
    """Accuracy against teacher depth, with and without SDRF."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for model, style in (("spatial", "-"), ("fmlp-s", "--")):
        for rewired in (False, True):
            sel = [r for r in rows if r["sdrf"] == rewired and f"{model}_mean" in r]
            ax.errorbar([r["depth"] for r in sel], [r[f"{model}_mean"] for r in sel],
                        yerr=[r[f"{model}_std"] for r in sel], linestyle=style, marker="o",
                        capsize=3, label=f"{model} ({'SDRF' if rewired else 'original'})")
    ax.set_xticks(sorted({r["depth"] for r in rows}))
    ax.set_xlabel("teacher depth (layers = knowledge powers)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{name}: accuracy vs depth, with and without SDRF")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)


def speed_plot(path: str | Path, results: Sequence[dict[str, Any]]) -> None:
    """Log-scale grouped bar charts per model and dataset: full-graph and query time, and the
    new-node query when it was measured (a panel per measured column)."""
    from framekd.bench import row_label

    plt = pyplot()
    models = list(dict.fromkeys(row_label(r) for res in results for r in res["rows"]))
    q = results[0]["query_size"]
    panels = [(key, title) for key, title in (
        ("full_ms", "full-graph inference"), ("query_ms", f"{q}-node query"),
        ("new_ms", f"{q} new nodes, end to end"))
        if any(r.get(key) is not None for res in results for r in res["rows"])]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), sharey=True,
                             squeeze=False)
    width = 0.8 / max(len(models), 1)
    pos = np.arange(len(results))
    for ax, (key, title) in zip(axes[0], panels, strict=True):
        for m, name in enumerate(models):
            vals = [next((r.get(key) for r in res["rows"] if row_label(r) == name), None)
                    for res in results]
            vals = [np.nan if v is None else v for v in vals]
            ax.bar(pos + (m - (len(models) - 1) / 2) * width, vals, width, label=name)
        ax.set_yscale("log")
        ax.set_xticks(pos, [res["dataset"] for res in results], rotation=20)
        ax.set_title(title)
        ax.set_xlabel("dataset")
        ax.grid(axis="y", which="both", alpha=0.3)
    axes[0][0].set_ylabel("median time (ms, log scale)")
    axes[0][-1].legend(fontsize=8)
    fig.suptitle(f"inference time, {results[0]['device']}, {results[0]['threads']} thread(s)")
    save_figure(fig, path)
