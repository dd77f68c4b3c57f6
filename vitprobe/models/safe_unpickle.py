"""Loading ``torch.save`` files without running code from them.

``torch.load(weights_only=True)`` refuses every pickled global that is not on an allow-list
before it is called. vitprobe adds only the harmless types that real SSL checkpoints carry:
``argparse.Namespace`` (DINO, MAE ``args``), the numpy pieces that rebuild scalars, dtypes
and arrays (under both the numpy 1 and numpy 2 module names), and SimMIM's pickled yacs
``CfgNode`` config, which is rebuilt as a plain ``collections.Counter`` mapping (never as
yacs code).
"""

from __future__ import annotations

import argparse
import collections
import re
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from vitprobe.errors import CheckpointError, brief_reason


def _numpy_globals() -> list[tuple[Callable[..., Any], str]]:
    """Numpy reconstruct functions and dtype classes, named as numpy 1 and numpy 2 pickle them."""
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1
        from numpy.core import multiarray  # type: ignore[no-redef]

    entries: list[tuple[Callable[..., Any], str]] = [
        (np.dtype, "numpy.dtype"),
        (np.ndarray, "numpy.ndarray"),
    ]
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        entries.append((multiarray.scalar, f"{module}.scalar"))
        entries.append((multiarray._reconstruct, f"{module}._reconstruct"))
    for name in dir(np.dtypes):
        cls = getattr(np.dtypes, name)
        if isinstance(cls, type) and issubclass(cls, np.dtype):
            entries.append((cls, f"numpy.dtypes.{name}"))
    return entries


class _ConfigNodeStandIn:
    """Named ``yacs.config.CfgNode`` for the unpickler; creates an empty Counter instead.

    A CfgNode pickles as a dict subclass: NEWOBJ, its items, then its ``__dict__`` flags. The
    weights-only unpickler fills only dict/OrderedDict/Counter objects, and a Counter also
    takes the flags as attributes, so the config comes back as inert data.
    """

    def __new__(cls, *args: Any) -> Any:
        return collections.Counter()


ALLOWED_GLOBALS: list[Any] = [argparse.Namespace, *_numpy_globals(),
                              (_ConfigNodeStandIn, "yacs.config.CfgNode")]
"""The only globals a checkpoint may name besides torch's own tensor machinery."""

_REFUSED = re.compile(r"GLOBAL (\S+)|unrecognized function (\S+)|but got (<[^>]+>)")


def _refusal_name(message: str) -> str | None:
    """The pickled global that the weights-only unpickler refused, if the message names one."""
    match = _REFUSED.search(message)
    if match is None:
        return None
    return next(g for g in match.groups() if g)


def torch_load_safely(path: Path) -> Any:
    """``torch.load`` on CPU with weights only and vitprobe's allow-list; errors as CheckpointError."""
    try:
        # An open file, not the path: torch.load would read a path named .safetensors as safetensors.
        with open(path, "rb") as fh, torch.serialization.safe_globals(ALLOWED_GLOBALS), \
                warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Detected pickle protocol", UserWarning)  # said below instead
            return torch.load(fh, map_location="cpu", weights_only=True, mmap=False)
    except Exception as err:  # torch raises many types for corrupt input; all mean the same here
        if "Unsupported operand" in str(err):  # pickle opcodes of protocol 4+, which weights_only does not read
            raise CheckpointError(
                f"checkpoint {path} uses pickle opcodes that the safe loader does not read (a plain "
                "pickle.dump file, or torch.save with pickle_protocol 4 or 5), or is damaged; it was not "
                "unpickled (that could run code); if you trust the file, load it with torch.load(..., "
                "weights_only=False) or pickle.load and re-save only the weights with torch.save(state_dict, "
                "'clean.pth') or safetensors.torch.save_file(state_dict, 'clean.safetensors')"
            ) from None
        name = _refusal_name(str(err)) if "Weights only load failed" in str(err) else None
        if name is not None:
            raise CheckpointError(
                f"checkpoint {path}: refused to unpickle {name}, which is not a plain tensor, container, "
                "argparse.Namespace or numpy value (unpickling it could run code); if you trust "
                "the file, load it yourself with torch.load(..., weights_only=False) and re-save "
                "only the weights with torch.save(state_dict, 'clean.pth') or "
                "safetensors.torch.save_file(state_dict, 'clean.safetensors')"
            ) from None
        detail = brief_reason(err)
        raise CheckpointError(
            f"checkpoint {path} cannot be read as a PyTorch checkpoint ({detail}); the file is truncated "
            "or corrupt: download or save it again"
        ) from None
