"""The process group of a torchrun job: setup from the environment, rank-aware logging.

``torchrun`` (``python -m torch.distributed.run``) starts every worker with ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` in its environment;
:func:`init_from_env` joins the default process group from them (``env://``), with backend
``gloo`` on CPU and ``nccl`` on CUDA. A process without that environment (or with
``WORLD_SIZE=1``) is a single process: :func:`launched` is ``False`` and nothing is
initialised, so ``framekd run`` behaves exactly as without this package.

Timeout: :func:`init_from_env` passes ``timeout`` (default :data:`DEFAULT_TIMEOUT`, or the
``FRAMEKD_DIST_TIMEOUT`` environment variable in seconds) to
:func:`torch.distributed.init_process_group`. It bounds both the rendezvous (a rank that
cannot reach ``MASTER_ADDR:MASTER_PORT``, or a rank 0 whose peers never arrive) and every
collective of the gloo backend (a peer that stopped answering). Either ends in a
:class:`DistributedError` naming the rank, the address and the timeout, not a hang. The
TCP store retries its connection, so the error comes after one to three timeouts (measured:
7.7 s for a 3 s timeout on an address nobody listens on). Under torchrun a worker that dies
ends the job sooner: the agent stops the other workers as soon as one exits with an error.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from framekd.errors import ConfigError, FramekdError

#: Default rendezvous and collective timeout (seconds).
DEFAULT_TIMEOUT = 600.0
#: Environment variable that overrides :data:`DEFAULT_TIMEOUT` (seconds).
TIMEOUT_ENV = "FRAMEKD_DIST_TIMEOUT"
_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


class DistributedError(FramekdError):
    """The process group cannot be set up or a peer stopped answering (rendezvous
    unreachable, a rank that died, a collective past its timeout)."""


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in the job.

    Attributes:
        rank: global rank r in ``[0, world_size)``.
        world_size: number of processes P.
        local_rank: rank on this machine (selects the GPU with nccl).
        backend: ``gloo`` or ``nccl`` (``none`` for a single process).
        device: the device this rank computes on.
        timeout: rendezvous and collective timeout in seconds.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = "none"
    device: torch.device = torch.device("cpu")
    timeout: float = DEFAULT_TIMEOUT

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes outputs."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"environment variable {name}={value!r} is not an integer; "
                          "start the job with torchrun, which sets it") from None


def launched() -> bool:
    """Whether this process is one of several workers started by torchrun (``WORLD_SIZE``
    above 1 in the environment)."""
    return (_env_int("WORLD_SIZE") or 1) > 1


def timeout_seconds(timeout: float | None = None) -> float:
    """``timeout``, else ``FRAMEKD_DIST_TIMEOUT``, else :data:`DEFAULT_TIMEOUT` (seconds)."""
    if timeout is None:
        raw = os.environ.get(TIMEOUT_ENV)
        if not raw:
            return DEFAULT_TIMEOUT
        try:
            timeout = float(raw)
        except ValueError:
            raise ConfigError(f"{TIMEOUT_ENV}={raw!r} is not a number of seconds") from None
    if not timeout > 0:
        raise ConfigError(f"the distributed timeout must be > 0 seconds, got {timeout!r}")
    return float(timeout)


def _device_for(device: str | torch.device, local_rank: int) -> torch.device:
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {str(device)!r} requested but CUDA is not available; "
                              "use device=cpu (backend gloo)")
        # One GPU per local rank: torchrun's LOCAL_RANK picks it, whatever index was given.
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    if dev.type != "cpu":
        raise ConfigError(f"distributed runs support cpu (gloo) and cuda (nccl), not {dev}")
    return dev


def init_from_env(
    device: str | torch.device = "cpu", *, timeout: float | None = None,
) -> DistContext:
    """Join the default process group from torchrun's environment (or return the
    single-process context when there is none).

    Args:
        device: ``cpu`` (backend gloo) or ``cuda`` (backend nccl, GPU ``LOCAL_RANK``).
        timeout: rendezvous and collective timeout in seconds (see :func:`timeout_seconds`).

    Returns:
        The :class:`DistContext` of this process; ``world_size == 1`` without torchrun.

    Raises:
        DistributedError: the rendezvous failed or timed out (the message names the rank,
            ``MASTER_ADDR:MASTER_PORT``, the world size and the timeout).
        ConfigError: a malformed environment or an unusable device.
    """
    import torch.distributed as dist

    seconds = timeout_seconds(timeout)
    world = _env_int("WORLD_SIZE") or 1
    if world <= 1:
        return DistContext(device=_device_for(device, 0), timeout=seconds)
    missing = [name for name in _ENV if not os.environ.get(name)]
    if missing:
        raise ConfigError(f"WORLD_SIZE={world} but {', '.join(missing)} not set; start the "
                          "job with torchrun (or `framekd run --nproc P`)")
    rank, local = _env_int("RANK"), _env_int("LOCAL_RANK") or 0
    if not 0 <= rank < world:
        raise ConfigError(f"RANK={rank} is outside [0, WORLD_SIZE={world})")
    dev = _device_for(device, local)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if not dist.is_available() or not getattr(dist, f"is_{backend}_available")():
        raise DistributedError(f"this PyTorch build has no {backend} backend; "
                               + ("use device=cpu (gloo)" if backend == "nccl" else
                                  "install a PyTorch with torch.distributed"))
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    where = f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}"
    if not dist.is_initialized():
        try:
            dist.init_process_group(backend, init_method="env://", rank=rank,
                                    world_size=world,
                                    timeout=datetime.timedelta(seconds=seconds))
        except (dist.DistError, RuntimeError, TimeoutError) as err:
            raise DistributedError(
                f"rank {rank} of {world} could not join the process group at {where} within "
                f"the {seconds:g} s timeout ({first_line(err)}); check that every rank was "
                f"started, that rank 0 can listen on MASTER_PORT and the others can reach "
                f"MASTER_ADDR, or raise {TIMEOUT_ENV}"
            ) from err
    return DistContext(rank=rank, world_size=world, local_rank=local, backend=backend,
                       device=dev, timeout=seconds)


def current_context(device: str | torch.device = "cpu") -> DistContext:
    """The context of the process group this process is in (joined by the caller, e.g. a
    test with ``mp.spawn``), else :func:`init_from_env`."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return init_from_env(device)
    rank, world = dist.get_rank(), dist.get_world_size()
    local = _env_int("LOCAL_RANK") or 0
    return DistContext(rank=rank, world_size=world, local_rank=local,
                       backend=str(dist.get_backend()), device=_device_for(device, local),
                       timeout=timeout_seconds())


@contextlib.contextmanager
def peer_errors(ctx: DistContext) -> Iterator[None]:
    """Turn a failed collective into a :class:`DistributedError` naming this rank.

    gloo reports a peer that died as ``Connection closed by peer`` (at once) and a peer that
    did not answer as ``Timed out waiting ...`` (after the timeout), both as a plain
    ``RuntimeError`` from its sources; c10d raises :class:`torch.distributed.DistError`.
    Other errors pass through unchanged.
    """
    import torch.distributed as dist

    try:
        yield
    except RuntimeError as err:
        text = str(err)
        ours = isinstance(err, dist.DistError) or any(
            mark in text for mark in ("gloo", "Gloo", "NCCL", "Connection closed by peer"))
        if not (ctx.distributed and ours):
            raise
        raise DistributedError(
            f"rank {ctx.rank} of {ctx.world_size}: a collective failed ({first_line(err)}); "
            f"another rank stopped (see its own error) or did not answer within the "
            f"{ctx.timeout:g} s timeout ({TIMEOUT_ENV})"
        ) from err


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (c10d appends C++ stack frames)."""
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def shutdown() -> None:
    """Leave the process group (no-op for a single process)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def rank_log(log: Callable[[str], None], ctx: DistContext) -> Callable[[str], None]:
    """``log`` with every message prefixed ``[rank r] `` when the job has several ranks (for
    a plain ``log`` such as ``print``; the CLI's filtering log is :func:`make_rank_log`)."""
    if not ctx.distributed:
        return log
    return lambda message: log(f"[rank {ctx.rank}] {message}")


def make_rank_log(quiet: bool, ctx: DistContext) -> Callable[[str], None]:
    """The CLI's ``log`` (:func:`framekd.cli.make_log`) for a rank: ``--quiet`` keeps the
    ``framekd: `` notices, and every printed line starts with ``[rank r]``."""
    from framekd.cli import NOTICE_PREFIX

    def log(message: str) -> None:
        if not quiet or str(message).startswith(NOTICE_PREFIX):
            prefix = f"[rank {ctx.rank}] " if ctx.distributed else ""
            print(f"{prefix}{message}", flush=True)

    return log


def is_main() -> bool:
    """Whether this process is rank 0 (always ``True`` outside a process group)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return (_env_int("RANK") or 0) == 0
