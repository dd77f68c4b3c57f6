"""Checkpoints: detect the format, remap keys, infer the architecture, load strictly and safely."""

from vitprobe.models.architecture import ArchSpec, build_model
from vitprobe.models.loading import inspect_checkpoint, load_model
from vitprobe.models.own_format import save_encoder

__all__ = ["ArchSpec", "build_model", "inspect_checkpoint", "load_model", "save_encoder"]
