"""The ``vitprobe`` command: one sub-command per module of ``vitprobe.commands``."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings
from typing import Any, Sequence

from vitprobe.errors import VitprobeError, VitprobeWarning
from vitprobe.plugins import public_modules

# Each module of vitprobe.commands defines ``register(subparsers)``, which adds its parser and
# sets ``func``; this order is the order of ``vitprobe --help``.
ORDER = ("analyze", "compare", "reproduce", "train", "export", "inspect", "models", "analyses")


def command_modules() -> list[str]:
    """Names of the sub-command modules, in help order."""
    import vitprobe.commands

    found = public_modules(vitprobe.commands.__path__)
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
    for command in sub.choices.values():  # `vitprobe analyze ... --debug` works as well
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="show full tracebacks on errors")
    return parser


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None, *, _default=warnings.showwarning) -> None:
    """vitprobe's own warnings as one line, ``vitprobe: warning: ...``; others as Python shows them."""
    if issubclass(category, VitprobeWarning):
        print(f"vitprobe: warning: {message}", file=file or sys.stderr)
    else:
        _default(message, category, filename, lineno, file, line)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; user errors print one line and return 2, warnings one line each."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with warnings.catch_warnings():
            if not args.debug:
                warnings.showwarning = _show_warning
            return int(args.func(args) or 0)
    except VitprobeError as err:
        if args.debug:
            raise
        print(f"vitprobe: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vitprobe: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the output went to a reader that stopped early (`| head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 141


if __name__ == "__main__":
    sys.exit(main())
