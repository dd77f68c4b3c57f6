"""Checkpoints of a training run: an encoder ``.safetensors`` and its ``.train_state.pt``.

The pair ``<out>/checkpoint.safetensors`` + ``<out>/checkpoint.train_state.pt`` is replaced
as one unit: both files are first written and fsync'd into ``<out>/.checkpoint.staging/``,
then a ``COMPLETE`` marker is written there, then both are moved into place with
``os.replace``. A run killed before the marker leaves the old pair untouched (the staging
folder is discarded); a run killed after it is rolled forward by :func:`recover`. So a
reader always finds two files of the same step.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn as nn

from vitprobe.errors import CheckpointError, OutputWriteError, brief_reason
from vitprobe.models.architecture import ArchSpec
from vitprobe.models.own_format import METADATA_KEY, save_encoder
from vitprobe.output_paths import fsync_path, make_folder, write_atomically, write_torch

STEM = "checkpoint"
ENCODER_FILE = f"{STEM}.safetensors"
STATE_FILE = f"{STEM}.train_state.pt"
FINAL_FILE = "final.safetensors"
STAGING_DIR = f".{STEM}.staging"
MARKER = "COMPLETE"


def save_checkpoint(out: Path, encoder: nn.Module, arch: ArchSpec, meta: Mapping[str, Any],
                    train_state: Mapping[str, Any]) -> Path:
    """Replace the checkpoint pair in ``out`` as one unit; returns the encoder path.

    Where the file system fails (disk full, permissions) the previous pair, if any, is kept and
    a one-line CheckpointError is raised.
    """
    staging = out / STAGING_DIR
    try:
        shutil.rmtree(staging, ignore_errors=True)
        make_folder(staging)
        save_encoder(staging / ENCODER_FILE, encoder, arch, meta, durable=True)
        write_torch(dict(train_state), staging / STATE_FILE, durable=True)
        write_atomically(staging / MARKER, lambda tmp: tmp.write_bytes(b"ok\n"), durable=True)
    except OutputWriteError as err:
        shutil.rmtree(staging, ignore_errors=True)
        raise save_failed(out, "the checkpoint", err) from None
    recover(out)
    return out / ENCODER_FILE


def save_failed(out: Path, what: str, err: OutputWriteError) -> CheckpointError:
    """The error of a failed write of ``what`` in the run folder ``out``: what is kept there, and
    how to go on (--resume from the kept checkpoint, else the same command again)."""
    kept = has_checkpoint(out)
    return CheckpointError(
        f"could not write {what} in {out} ({err.reason}); "
        + ("the previous checkpoint there is kept" if kept else "no checkpoint was written there yet")
        + f": {err.remedy}, then rerun " + ("with --resume" if kept else "the same command"))


def recover(out: Path) -> None:
    """Finish a swap that a killed run started, or discard an incomplete staging folder."""
    staging = out / STAGING_DIR
    if not staging.is_dir():
        return
    if (staging / MARKER).exists():
        for name in (ENCODER_FILE, STATE_FILE):
            if (staging / name).exists():
                os.replace(staging / name, out / name)
        fsync_path(out)
    shutil.rmtree(staging)


def save_final(out: Path, encoder: nn.Module, arch: ArchSpec, meta: Mapping[str, Any]) -> Path:
    """``<out>/final.safetensors``: the encoder at the end of training (atomic, fsync'd)."""
    try:
        return save_encoder(out / FINAL_FILE, encoder, arch, meta, durable=True)
    except OutputWriteError as err:
        raise save_failed(out, FINAL_FILE, err) from None


def has_checkpoint(out: Path) -> bool:
    """Whether ``out`` holds a checkpoint pair (or a swap to finish)."""
    return (out / STATE_FILE).exists() or (out / STAGING_DIR / MARKER).exists()


def _load_reason(err: BaseException) -> str:
    """Why ``torch.load`` failed, in a few words: the weights-only unpickler's own complaint (its
    message starts with torch's change of defaults, beside the point for a file vitprobe wrote),
    else the error's first sentence."""
    _, marker, detail = str(err).partition("WeightsUnpickler error:")
    complaint = next((line.strip() for line in detail.splitlines() if line.strip()), "")
    return f"not a train state vitprobe wrote: {complaint}" if marker and complaint else brief_reason(err)


def load_train_state(out: Path) -> dict[str, Any]:
    """The training state of the last complete checkpoint in ``out`` (tensors on CPU).

    Read with ``weights_only=True``; the pair must agree on the step.
    """
    recover(out)
    state_path, encoder_path = out / STATE_FILE, out / ENCODER_FILE
    if state_path.exists() != encoder_path.exists():  # half a pair: starting afresh there is refused too
        have, lacks = (state_path, encoder_path) if state_path.exists() else (encoder_path, state_path)
        raise CheckpointError(f"--resume: {out} holds {have.name} but not {lacks.name}, so the run folder is "
                              "damaged; restore the file, or start a new --out")
    if not state_path.exists():
        raise CheckpointError(f"--resume: no complete checkpoint in {out}; start without "
                              f"--resume or point --out at the run to continue")
    try:
        state = torch.load(state_path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file is the same user error
        raise CheckpointError(f"--resume: {state_path} cannot be read ({_load_reason(err)}); "
                              f"the run folder is damaged, start a new --out") from None
    try:
        header = _header(encoder_path)
    except Exception as err:  # noqa: BLE001 - safetensors, JSON and OS errors alike: a damaged file
        raise CheckpointError(f"--resume: {encoder_path} cannot be read ({brief_reason(err)}); "
                              f"the run folder is damaged, start a new --out") from None
    if header.get("step") != state.get("step"):
        raise CheckpointError(f"--resume: {encoder_path} (step {header.get('step')}) and "
                              f"{state_path} (step {state.get('step')}) do not belong together; "
                              f"start a new --out")
    return state


def recorded_options(out: Path) -> tuple[Path, dict[str, Any]] | None:
    """The training options (``TrainConfig.resolved()``) that the checkpoint in ``out`` records
    in its header, and that file: the pair's encoder, else the final encoder; None where
    neither can be read (only the header is read)."""
    for path in (out / ENCODER_FILE, out / FINAL_FILE):
        try:
            options = _header(path).get("config")
        except Exception:  # noqa: BLE001 - missing or damaged: try the next, then give none
            continue
        if isinstance(options, dict) and options:
            return path, options
    return None


def _header(path: Path) -> dict[str, Any]:
    """The vitprobe header of a safetensors encoder file (only the header is read; any error of
    the file, safetensors or JSON is raised as it is)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        header = json.loads((f.metadata() or {}).get(METADATA_KEY, "{}"))
    return header if isinstance(header, dict) else {}


def capture_rng() -> dict[str, Any]:
    """The torch, CUDA, numpy and python RNG states as tensors and plain containers."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": pos,
                  "has_gauss": has_gauss, "cached_gaussian": cached},
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: Mapping[str, Any]) -> None:
    """Inverse of :func:`capture_rng`."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["cached_gaussian"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
