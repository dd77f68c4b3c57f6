"""The ``vitprobe`` command: one sub-command per module of ``vitprobe.commands``."""

from __future__ import annotations

import argparse
import difflib
import importlib
import os
import re
import signal
import sys
import warnings
from typing import Any, Callable, Sequence

from vitprobe.errors import ConfigError, VitprobeError, VitprobeWarning, brief_reason
from vitprobe.plugins import PLUGINS_VARIABLE, load_plugin, plugin_names, public_modules

# Each module of vitprobe.commands defines ``register(subparsers)``, which adds its parser and
# sets ``func``; this order is the order of ``vitprobe --help``.
ORDER = ("analyze", "compare", "reproduce", "train", "export", "inspect", "models", "analyses")


PLUGIN_HELP = (f"import a module of your own analyzers, checkpoint formats or objectives first: a .py file "
               f"or a module name (repeatable; also {PLUGINS_VARIABLE}=a,b)")


def command_modules() -> list[str]:
    """Names of the sub-command modules, in help order."""
    import vitprobe.commands

    found = public_modules(vitprobe.commands.__path__)
    return sorted(found, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))


def version_line() -> str:
    """``vitprobe X (torch Y, timm Z)``: vitprobe's ``__version__``, torch's and timm's installed versions."""
    from importlib.metadata import version

    from vitprobe import __version__

    return f"vitprobe {__version__} (torch {version('torch')}, timm {version('timm')})"


class _PrintVersion(argparse.Action):
    """``--version``: the version line is read only when asked for (package metadata takes
    about 50 ms to read, which every other command would pay at start-up)."""

    def __init__(self, option_strings: Sequence[str], dest: str, help: str | None = None) -> None:
        super().__init__(option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, nargs=0, help=help)

    def __call__(self, parser: argparse.ArgumentParser, *_args: Any) -> None:
        print(version_line())
        parser.exit()


class _StoreOnce(argparse._StoreAction):
    """A single-value option (``--data X``), which argparse would let a second occurrence
    overwrite silently (``inspect --checkpoint A --checkpoint B`` reading B alone): given twice,
    it is a usage error naming both values."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        if getattr(self, "given", None) is not None:
            parser.error(f"argument {'/'.join(self.option_strings)}: given twice ({self.given}, then {values}); "
                         "give it once")
        self.given = values
        super().__call__(parser, namespace, values, option_string)


class _Parser(argparse.ArgumentParser):
    """A sub-command's parser: its plain options take one value once (``_StoreOnce``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.register("action", None, _StoreOnce)
        self.register("action", "store", _StoreOnce)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="vitprobe",
        description="What has a self-supervised Vision Transformer learned?",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument("--plugin", action="append", metavar="NAME", help=PLUGIN_HELP)
    parser.add_argument("--version", action=_PrintVersion,
                        help="print vitprobe's version and those of torch and timm, then exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)
    for name in command_modules():
        importlib.import_module(f"vitprobe.commands.{name}").register(sub)
    for command in sub.choices.values():  # `vitprobe analyze ... --debug` works as well
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="show full tracebacks on errors")
        command.add_argument("--plugin", action="append", metavar="NAME", default=argparse.SUPPRESS,
                             help=PLUGIN_HELP)
        command.set_defaults(command_parser=command)
    return parser


def _warning_printer() -> Callable[..., None]:
    """A ``warnings.showwarning`` that prints vitprobe's own warnings as one line,
    ``vitprobe: warning: ...``, each text once per command (a probe-split warning is not
    repeated for every checkpoint); other warnings as Python shows them."""
    shown: set[str] = set()
    default = warnings.showwarning

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: Any = None, line: str | None = None) -> None:
        if not issubclass(category, VitprobeWarning):
            default(message, category, filename, lineno, file, line)
        elif str(message) not in shown:
            shown.add(str(message))
            print(f"vitprobe: warning: {message}", file=file or sys.stderr)

    return show


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse ``argv``; an unknown option is reported by its sub-command's parser (its usage,
    not the top level's), with the closest option it has when one is close."""
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        command = args.command_parser
        message = f"unrecognized arguments: {' '.join(unknown)}"
        options = [o for action in command._actions for o in action.option_strings]
        close = difflib.get_close_matches(unknown[0].split("=")[0], options, n=1)
        command.error(message + (f" (did you mean {close[0]}?)" if close else ""))
    return args


def _tolerant_streams() -> None:
    """Print what the terminal's encoding lacks (the `` · `` of captions under ``LC_ALL=C``) as
    backslash escapes instead of failing after the work is done."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError, OSError):  # None, not a text wrapper, or closed
            pass


def _check_matplotlib_backend() -> None:
    """A ``MPLBACKEND`` that matplotlib refuses makes importing it fail; say so before any work
    (vitprobe draws without a backend, so none is needed)."""
    backend = os.environ.get("MPLBACKEND")
    if backend:
        try:
            import matplotlib  # noqa: F401
        except ValueError:
            raise ConfigError(f"the environment variable MPLBACKEND={backend!r} names no matplotlib "
                              "backend; unset it or set it to agg") from None


class Terminated(KeyboardInterrupt):
    """SIGTERM (a batch scheduler's stop, torchrun stopping its workers), raised where the
    command is so that its clean-up runs as for Ctrl-C: no half-written output is left."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; user errors print one line and return 2, warnings one line each;
    Ctrl-C returns 130 and SIGTERM 143, each after the command's clean-up."""
    _tolerant_streams()
    try:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread: the signal stays as it was
        previous = None
    given = sys.argv[1:] if argv is None else list(argv)
    try:
        code = _parse_and_run(given)
        if code in (130, 143) and argv is None:  # the process ends: a second Ctrl-C in the interpreter's
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # shutdown (torch's atexit) printed a traceback
            previous = None
        return code
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _parse_and_run(given: list[str]) -> int:
    """Load the plugins named, parse ``given`` and run the command (exit code)."""
    try:
        for name in plugin_names(given, os.environ.get(PLUGINS_VARIABLE)):  # before the parser lists choices
            load_plugin(name)
        args = _parse(build_parser(), given)  # imports torch: seconds in which Ctrl-C may come
    except KeyboardInterrupt as stop:
        return _stopped(stop)
    except ConfigError as err:  # a plugin not found, or failing on import
        if "--debug" in given:
            raise
        print(f"vitprobe: error: {err}", file=sys.stderr)
        return 2
    return _run(args)


def _stopped(stop: KeyboardInterrupt, hint: Callable[[], str] = lambda: "") -> int:
    """Ctrl-C (exit 130) or SIGTERM (143): one line, from rank 0 alone under torchrun (every rank
    is stopped), with what to do next."""
    terminated = isinstance(stop, Terminated)
    if int(os.environ.get("RANK", "0")) == 0:
        why = (" (torchrun stops every process when one fails or is stopped; its report below names "
               "which)" if terminated and int(os.environ.get("WORLD_SIZE", "1")) > 1 else "")
        print(f"vitprobe: {'terminated' if terminated else 'interrupted'}{why}{hint()}", file=sys.stderr)
    return 143 if terminated else 130


def _is_lost_process(err: RuntimeError) -> bool:
    """Whether ``err`` is a collective that failed because another process of the group died
    (gloo or NCCL reports it as a RuntimeError naming itself)."""
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    return isinstance(err, dist.DistError) or any(name in str(err) for name in ("gloo", "NCCL"))


def _without_source_location(text: str) -> str:
    """``[/path/pair.cc:545] Read error ...`` -> ``Read error ...``."""
    return re.sub(r"^\[[^\]]*:\d+\]\s*", "", text)


def _train_resume_hint(args: argparse.Namespace) -> str:
    """How to go on after a stopped training: --resume where a checkpoint was written."""
    from pathlib import Path

    from vitprobe.distributed import launcher
    from vitprobe.train.checkpointing import has_checkpoint
    from vitprobe.train.config import TrainConfig

    out = args.out or TrainConfig.out
    if has_checkpoint(Path(out)):  # with the run's process count, which --resume requires
        command = launcher(int(os.environ.get("WORLD_SIZE", "1")))
        return f"; {command} train --resume --out {out} continues from the last checkpoint"
    return f"; no checkpoint was written to {out} yet, so the same command again starts the run over"


def _run(args: argparse.Namespace) -> int:
    rank = int(os.environ.get("RANK", "0"))  # torchrun's process number; 0 alone without it
    try:
        _check_matplotlib_backend()
        with warnings.catch_warnings():
            if not args.debug:
                warnings.showwarning = _warning_printer()
            if rank > 0:  # under torchrun every rank reads the same
                warnings.simplefilter("ignore", VitprobeWarning)  # data and config: rank 0 speaks
            return int(args.func(args) or 0)
    except VitprobeError as err:
        if args.debug:
            raise
        if rank == 0:  # under torchrun every rank meets an error of the shared options: one line
            print(f"vitprobe: error: {err}", file=sys.stderr)
        elif getattr(err, "own_shard", False):  # met in this rank's own shard of the data
            print(f"vitprobe: error (rank {rank}): {err}", file=sys.stderr)
        return 2
    except RuntimeError as err:
        if args.debug or not _is_lost_process(err):
            raise
        hint = _train_resume_hint(args) if args.command == "train" else ""
        print(f"vitprobe: error (rank {rank}): another torchrun process stopped or lost its connection "
              f"({_without_source_location(brief_reason(err))}); its output or torchrun's report of its exit says why{hint}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as stop:
        hints = {"train": _train_resume_hint,
                 "reproduce": lambda _: "; the same command again reuses the models trained and "
                                        "resumes the one in training"}
        return _stopped(stop, lambda: hints[args.command](args) if args.command in hints else "")
    except BrokenPipeError:  # the output went to a reader that stopped early (`| head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 141


if __name__ == "__main__":
    sys.exit(main())
