"""The ``framekd`` command line.

Each sub-command lives in its own module of this package and exposes
``register(subparsers)``; it attaches a ``handler(args) -> int`` with
``parser.set_defaults(handler=...)``. Heavy imports (torch, PyG) happen inside the
handlers so that ``framekd --help`` stays fast.

User mistakes raise :class:`framekd.errors.FramekdError`; :func:`main` prints them
as one line on stderr and exits with status 2. So does an :class:`OSError` on a path the user
gave (an option, a positional argument or ``FRAMEKD_CACHE``/``FRAMEKD_DATA``): ``--out``
naming a file, a folder without write permission. Any other exception is a bug and keeps its
traceback.

Helpers for the commands: :func:`make_log` (the ``log`` callback: ``--quiet`` hides progress
lines but never the ``framekd: `` notices) and :func:`show_progress` (bars only on a
terminal), :func:`check_device`.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
import warnings
from collections.abc import Callable

from framekd import __version__
from framekd.errors import FramekdError, FramekdWarning

# Sub-command modules, in the order `framekd --help` lists them.
COMMANDS = ("demo", "run", "predict", "datasets", "rewire", "bench", "analyze", "tune", "export")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="framekd",
        description="Framelet graph knowledge distillation: framelet GNN teachers "
        "distilled into fast MLP students.",
    )
    parser.add_argument("--version", action="version", version=f"framekd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"framekd.cli.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"framekd.cli.{name}":
                continue  # command not built yet
            raise
        module.register(sub)
    return parser


def _format_warning(message, category, filename, lineno, line=None) -> str:
    if issubclass(category, FramekdWarning):
        return f"framekd: warning: {message}\n"
    return f"{category.__name__}: {message}\n"


#: Lines a command's ``log`` prints even with ``--quiet``: notices the user must see (e.g.
#: seeds left out because another process runs them).
NOTICE_PREFIX = "framekd: "


def make_log(quiet: bool) -> Callable[[str], None]:
    """The ``log`` callback of a command: every line, or with ``quiet`` only the lines that
    start with :data:`NOTICE_PREFIX`."""

    def log(message: str) -> None:
        if not quiet or str(message).startswith(NOTICE_PREFIX):
            print(message, flush=True)

    return log


def show_progress(quiet: bool = False) -> bool:
    """Whether to draw progress bars: not ``quiet`` and stderr is a terminal (a redirected
    log never holds bar redraws)."""
    try:
        return not quiet and sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


def parse_ints(text: str, flag: str, example: str, *, required: bool = True) -> list[int]:
    """A flag's comma-separated positive integers (``""`` is none, an error if ``required``),
    or a :class:`~framekd.errors.ConfigError` naming the flag and an example."""
    from framekd.errors import ConfigError

    items = [t.strip() for t in str(text).split(",") if t.strip()]
    try:
        values = [int(t) for t in items]
    except ValueError:
        values = None
    if values is None or (required and not values) or any(v < 1 for v in values):
        raise ConfigError(f"{flag} expects comma-separated positive integers such as "
                          f"{example}, got {text!r}")
    return values


def check_device(name: str, where: str = "--device") -> None:
    """Raise :class:`~framekd.errors.ConfigError` unless ``name`` is a usable device: ``cpu``,
    ``cuda``/``cuda:INDEX`` with CUDA present, or ``mps`` where available."""
    import torch

    from framekd.errors import ConfigError

    what = f"device {str(name)!r} (from {where})"
    try:
        device = torch.device(str(name).strip())
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"{what} is not a device; use cpu, cuda or cuda:INDEX") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{what}: CUDA is not available on this machine (no GPU or a "
                              "CPU-only PyTorch); use cpu")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ConfigError(f"{what}: this machine has {count} CUDA device(s), "
                              f"cuda:0..cuda:{count - 1}")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError(f"{what}: MPS is not available on this machine; use cpu")
    elif device.type != "cpu":
        raise ConfigError(f"{what} is not supported; use cpu, cuda or cuda:INDEX")


def _check_user_input(args: argparse.Namespace) -> None:
    """Checks of the command line that are cheaper before the command starts."""
    device = getattr(args, "device", None)
    if device:
        check_device(device)
    for item in getattr(args, "set", None) or []:
        key, sep, value = str(item).partition("=")
        if sep and key.strip() == "device" and value.strip():
            from framekd.config import parse_overrides

            check_device(parse_overrides([item])["device"], "--set")


def _option_names(parser: argparse.ArgumentParser) -> dict[str, str]:
    """dest -> how the user spells it (``--out``) for the chosen (sub)command's options."""
    names: dict[str, str] = {}
    stack = [parser]
    while stack:
        p = stack.pop()
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                stack.extend(action.choices.values())
            elif action.option_strings:
                names.setdefault(action.dest, max(action.option_strings, key=len))
    return names


def _path_error(err: OSError, args: argparse.Namespace, names: dict[str, str]) -> str | None:
    """One line for an OSError on (or under, or above) a path the user gave, else ``None``."""
    given: list[tuple[str, str]] = []
    for dest, value in vars(args).items():
        if dest in ("handler", "command") or isinstance(value, bool):
            continue
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, (str, os.PathLike)) and os.fspath(v):
                flag = names.get(dest)
                given.append((os.fspath(v), f"{flag} {os.fspath(v)}" if flag else os.fspath(v)))
    for var in ("FRAMEKD_CACHE", "FRAMEKD_DATA", "XDG_CACHE_HOME"):
        if os.environ.get(var):
            given.append((os.environ[var], f"{var}={os.environ[var]}"))
    failed = [os.path.abspath(os.fspath(f)) for f in (err.filename, err.filename2)
              if isinstance(f, (str, os.PathLike))]
    for path, how in given:
        mine = os.path.abspath(os.path.expanduser(path))
        for f in failed:
            if f == mine or f.startswith(mine.rstrip(os.sep) + os.sep) or \
                    mine.startswith(f.rstrip(os.sep) + os.sep):
                if err.errno in (errno.EEXIST, errno.ENOTDIR):
                    blocker = f
                    while not os.path.exists(blocker) and os.path.dirname(blocker) != blocker:
                        blocker = os.path.dirname(blocker)
                    if os.path.exists(blocker) and not os.path.isdir(blocker):
                        where = ("is a file" if blocker == mine else
                                 f"needs a folder where the file {blocker} is")
                        return f"{how} {where}; give a folder path (or move the file away)"
                why = err.strerror or type(err).__name__
                hint = {
                    errno.EACCES: "choose a location you may write to",
                    errno.EROFS: "choose a location you may write to",
                    errno.ENOSPC: "free some disk space or choose another location",
                }.get(err.errno, "check the path")
                return f"{how}: {why}" + ("" if f == mine else f" ({f})") + f"; {hint}"
    return None


def _one_line(text: str) -> str:
    """A message on one line (a wrapped message from a library keeps its words)."""
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    warnings.formatwarning = _format_warning
    try:
        _check_user_input(args)
        return int(args.handler(args) or 0)
    except FramekdError as err:
        print(f"framekd {args.command}: error: {_one_line(str(err))}", file=sys.stderr)
        return 2
    except OSError as err:  # only on a path the user gave; anything else is a bug
        line = _path_error(err, args, _option_names(parser))
        if line is None:
            raise
        print(f"framekd {args.command}: error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"framekd {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
