"""A finished run's folder as the commands that reuse it read it (``framekd export``,
``framekd predict``, :class:`framekd.Predictor`), and :func:`load_trained`, which rebuilds
one of its models.

``framekd run --out DIR`` writes ``DIR/config.yaml`` (the resolved settings), ``DIR/metrics.json``
and, per seed, ``DIR/seed_<i>/`` with ``metrics.json`` (written last: the seed is finished)
and one ``<model>.safetensors`` per trained model, whose metadata records ``num_features``,
``num_classes`` and the ``knowledge_shape`` ``C,K,N,width`` it was trained with.

The checks here turn a missing or damaged piece into one error that says what is missing and
what the run holds instead; the caller chooses the error type (``ExportError`` for an
export, ``CheckpointError`` otherwise).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
import yaml
from torch_geometric.data import Data

from framekd.errors import CheckpointError, ConfigError, FramekdError

#: Files of a seed folder that are not model weights.
NOT_MODELS = ("teacher_logp", "gates", "split")


def finished_seeds(run_dir: Path) -> list[int]:
    """The seeds of ``run_dir`` whose ``seed_<i>/metrics.json`` exists, sorted."""
    return sorted(int(p.parent.name[5:]) for p in Path(run_dir).glob("seed_*/metrics.json")
                  if p.parent.name[5:].isdigit())


def trained_models(seed_dir: Path, choices: Iterable[str] | None = None) -> list[str]:
    """Names of the models with weights in ``seed_dir`` (only those in ``choices`` if given)."""
    allowed = None if choices is None else set(choices)
    return sorted(p.stem for p in Path(seed_dir).glob("*.safetensors")
                  if p.stem not in NOT_MODELS and (allowed is None or p.stem in allowed))


def check_trained(
    run_dir: str | Path, seed: int, name: str, *, error: type[FramekdError] = CheckpointError,
    choices: Iterable[str] | None = None, kind: str = "trained models",
) -> tuple[Path, Path]:
    """``(seed_dir, weights)`` of model ``name`` of seed ``seed``, after checking that the run,
    the seed and the weights exist.

    Args:
        run_dir: the ``--out`` folder of ``framekd run``.
        seed, name: the seed and the registry name of the model.
        error: the exception type raised.
        choices: the model names the caller can use (listed when ``name`` is missing).
        kind: how the listed models are called in the message.

    Raises:
        error: no ``config.yaml``, the seed is not finished, or the model has no weights.
    """
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise error(f"{run_dir} is not a framekd run (no config.yaml); pass the --out "
                    "folder of a finished `framekd run`")
    seed_dir = run_dir / f"seed_{seed}"
    if not (seed_dir / "metrics.json").is_file():
        done = finished_seeds(run_dir)
        raise error(f"seed {seed} of {run_dir} is not finished (no seed_{seed}/"
                    f"metrics.json); finished seeds: {', '.join(map(str, done)) or 'none'}")
    weights = seed_dir / f"{name}.safetensors"
    if not weights.is_file():
        trained = trained_models(seed_dir, choices)
        raise error(f"{run_dir} seed {seed} has no trained {name!r} ({weights.name} missing); "
                    f"{kind}: {', '.join(trained) or 'none'}")
    return seed_dir, weights


def read_config(run_dir: str | Path, *, error: type[FramekdError] = CheckpointError
                ) -> tuple[dict[str, Any], Any]:
    """``(raw, typed)``: ``run_dir/config.yaml`` as written and as a
    :class:`~framekd.config.RunConfig`.

    Raises:
        error: the file is unreadable or not a valid configuration.
    """
    from framekd.config import RunConfig

    try:
        raw = yaml.safe_load((Path(run_dir) / "config.yaml").read_text())
        return raw, RunConfig.from_dict(raw)
    except (OSError, yaml.YAMLError, ConfigError, KeyError, TypeError) as err:
        raise error(f"{run_dir}/config.yaml is not a valid configuration: {err}") from err


def trained_shapes(weights: Path) -> tuple[int, int, tuple[int, ...]]:
    """``(num_features, num_classes, knowledge_shape)`` recorded with a model's weights.

    Raises:
        CheckpointError: the file is unreadable or lacks framekd's metadata.
    """
    from framekd.io import load_metadata

    meta = load_metadata(weights)
    try:
        shape = tuple(int(v) for v in meta["knowledge_shape"].split(","))
        return int(meta["num_features"]), int(meta["num_classes"]), shape
    except (KeyError, ValueError) as err:
        raise CheckpointError(f"{weights} lacks framekd metadata (not written by framekd)") \
            from err


def default_cache_dir() -> Path:
    """Where ``framekd run`` caches knowledge and rewired graphs: ``<FRAMEKD_CACHE>/artifacts``."""
    from framekd.data.datasets import cache_root

    return cache_root() / "artifacts"


def run_graph(
    rc: Any, data: Data | None = None, *, cache_dir: str | Path | None = None,
    log: Callable[[str], None] | None = None,
) -> Data:
    """The graph as ``framekd run`` prepares it for the run's settings ``rc``, on the CPU:
    ``data`` (default: the run's dataset) canonicalised, then rewired when the run rewired
    (:func:`framekd.experiment.prepare_graph`; the rewiring is cached in ``cache_dir``,
    default :func:`default_cache_dir`, by graph hash and settings)."""
    from framekd.experiment import prepare_graph
    from framekd.graph import canonicalize

    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if data is not None:
        data = canonicalize(data)  # a canonical graph (a loader's output) is returned as is
    data, _ = prepare_graph(rc, data, cache_dir=cache, log=log or (lambda msg: None))
    return data.cpu()


def load_trained(run_dir: str | Path, seed: int, name: str) -> torch.nn.Module:
    """Rebuild model ``name`` of ``seed`` from a finished run and load its weights.

    Reads ``run_dir/config.yaml`` (:func:`read_config`) and
    ``run_dir/seed_<seed>/<name>.safetensors`` with its metadata (:func:`trained_shapes`; no
    unpickling). Raises :class:`CheckpointError` when a file is missing, corrupt or does
    not match the configuration.
    """
    from framekd.io import load_metadata, load_tensors
    from framekd.models import student_from_config, teacher_from_config
    from framekd.models.registry import TEACHERS

    run_dir = Path(run_dir)
    _, rc = read_config(run_dir)
    path = run_dir / f"seed_{seed}" / f"{name}.safetensors"
    state = load_tensors(path)
    d, c, shape = trained_shapes(path)
    if name in TEACHERS:
        model = teacher_from_config(name, rc, d, c, smooth=load_metadata(path).get("smooth"))
    else:
        model = student_from_config(name, rc, d, c, knowledge_shape=shape)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(f"{path} does not match the model in config.yaml: {err}") from err
    return model
