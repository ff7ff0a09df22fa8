"""The ``framekd`` command line.

Each sub-command lives in its own module of this package and exposes
``register(subparsers)``; it attaches a ``handler(args) -> int`` with
``parser.set_defaults(handler=...)``. Heavy imports (torch, PyG) happen inside the
handlers so that ``framekd --help`` stays fast.

User mistakes raise :class:`framekd.errors.FramekdError`; :func:`main` prints them
as one line on stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from framekd import __version__
from framekd.errors import FramekdError, FramekdWarning

# Sub-command modules, in the order `framekd --help` lists them.
COMMANDS = ("demo", "run", "datasets", "rewire", "bench", "analyze", "tune")


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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    warnings.formatwarning = _format_warning
    try:
        return int(args.handler(args) or 0)
    except FramekdError as err:
        print(f"framekd {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"framekd {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
