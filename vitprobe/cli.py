"""The ``vitprobe`` command: one sub-command per module of ``vitprobe.commands``."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from typing import Sequence

from vitprobe.errors import VitprobeError

# Each module of vitprobe.commands defines ``register(subparsers)``, which adds its parser and
# sets ``func``; this order is the order of ``vitprobe --help``.
ORDER = ("analyze", "compare", "reproduce", "train", "export", "inspect", "models", "analyses")


def command_modules() -> list[str]:
    """Names of the sub-command modules, in help order."""
    import vitprobe.commands

    found = {m.name for m in pkgutil.iter_modules(vitprobe.commands.__path__)}
    return sorted(found, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="vitprobe",
        description="What has a self-supervised Vision Transformer learned?",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in command_modules():
        importlib.import_module(f"vitprobe.commands.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; user errors print one line and return 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except VitprobeError as err:
        if args.debug:
            raise
        print(f"vitprobe: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vitprobe: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
