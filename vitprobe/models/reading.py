"""Reading a checkpoint file into plain Python objects, with one-line errors for bad files."""

from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from vitprobe.errors import CheckpointError, brief_reason
from vitprobe.models.safe_unpickle import torch_load_safely

_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTO = b"\x80"
_IMAGE_MAGIC = {b"\xff\xd8\xff": "a JPEG image", b"\x89PNG": "a PNG image", b"GIF8": "a GIF image"}
_MAX_SAFETENSORS_HEADER = 100_000_000


@dataclass
class RawCheckpoint:
    """What a checkpoint file holds before any format is applied.

    ``obj`` is the unpickled object (``torch.save`` files) or the tensor dict (safetensors);
    ``metadata`` is the safetensors header metadata (empty for ``torch.save`` files).
    """

    path: Path
    container: Literal["torch", "safetensors"]
    obj: Any
    metadata: dict[str, str] = field(default_factory=dict)


def _check_file(path: Path) -> int:
    """The size of ``path`` in bytes, after checking it is a readable, non-empty file."""
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} not found; check the path")
    if path.is_dir():
        held = [path / name for name in ("final.safetensors", "checkpoint.safetensors") if (path / name).is_file()]
        inside = f" (a vitprobe training run: {held[0]})" if held else ""
        raise CheckpointError(f"checkpoint {path} is a directory; pass the checkpoint file inside it{inside}")
    if not os.access(path, os.R_OK):
        raise CheckpointError(f"checkpoint {path} cannot be read: permission denied; fix its permissions")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes); the save or download was "
                              "interrupted: fetch it again")
    return size


def _read_head(path: Path, n: int) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(n)
    except OSError as err:
        raise CheckpointError(f"checkpoint {path} cannot be read: {err.strerror}") from None


def _looks_like_safetensors(head: bytes, size: int) -> bool:
    """A safetensors file starts with a little-endian u64 header length and then ``{``."""
    if len(head) < 9:
        return False
    (header_len,) = struct.unpack("<Q", head[:8])
    return 0 < header_len <= min(size - 8, _MAX_SAFETENSORS_HEADER) and head[8:9] == b"{"


def _read_safetensors(path: Path) -> RawCheckpoint:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            metadata = dict(fh.metadata() or {})
            tensors = {name: fh.get_tensor(name) for name in fh.keys()}
    except Exception as err:  # safetensors raises its own and OS errors for broken files
        detail = brief_reason(err)
        raise CheckpointError(f"checkpoint {path} is a corrupt or truncated safetensors file "
                              f"({detail}); save or download it again") from None
    return RawCheckpoint(path, "safetensors", tensors, metadata)


def read_checkpoint(path: str | os.PathLike[str]) -> RawCheckpoint:
    """Read ``path`` (``torch.save`` zip or legacy pickle, or safetensors) without running its code."""
    path = Path(path)
    size = _check_file(path)
    head = _read_head(path, 16)
    if _looks_like_safetensors(head, size):
        return _read_safetensors(path)
    if len(head) >= 9 and head[8:9] == b"{":  # a safetensors header longer than the file holds
        raise CheckpointError(f"checkpoint {path} is a truncated safetensors file ({size} bytes, "
                              "shorter than its header says); save or download it again")
    if head.startswith(_ZIP_MAGIC) or head.startswith(_PICKLE_PROTO):
        return RawCheckpoint(path, "torch", torch_load_safely(path))
    for magic, what in _IMAGE_MAGIC.items():
        if head.startswith(magic):
            raise CheckpointError(f"checkpoint {path} is {what}, not a checkpoint; expected a "
                                  ".pth/.pt (torch.save) or .safetensors file")
    text = " (it reads as text)" if head and all(32 <= b < 127 or b in b"\t\r\n" for b in head) else ""
    raise CheckpointError(f"checkpoint {path} is neither a torch.save file nor a safetensors "
                          f"file (unrecognised first bytes{text}), whatever its name says; give the file "
                          "torch.save or safetensors wrote (a download that saved an error page instead?)")


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of the file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def parse_json_metadata(path: Path, text: str, what: str) -> Any:
    """``json.loads`` with a CheckpointError naming the file when the header text is broken."""
    try:
        return json.loads(text)
    except ValueError as err:
        raise CheckpointError(f"checkpoint {path}: its {what} metadata is not valid JSON ({err}); "
                              "the file was not written by this vitprobe or is damaged") from None
