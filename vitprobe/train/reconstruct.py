"""Rebuild a trained objective from its run folder and show what its decoder reconstructs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vitprobe.errors import CheckpointError
from vitprobe.models.architecture import build_model
from vitprobe.train.checkpointing import load_train_state
from vitprobe.train.config import TrainConfig
from vitprobe.train.engine import resolve_arch
from vitprobe.train.objectives import get_objective
from vitprobe.train.objectives.base import Objective


def load_objective(run_dir: str | Path) -> Objective:
    """The objective (encoder, heads, decoder) of the last complete checkpoint in ``run_dir``."""
    run_dir = Path(run_dir)
    state = load_train_state(run_dir)
    config = TrainConfig.from_overrides(state["config"])
    arch = resolve_arch(config)
    objective = get_objective(config.method, build_model(arch), arch, **config.objective_hparams())
    objective.load_state_dict(state["objective"])
    return objective.eval()


def reconstruct_examples(checkpoint: str | Path, data: str, count: int = 6, device: str = "cpu",
                         seed: int = 0) -> dict[str, np.ndarray]:
    """``count`` images of ``data`` through a trained GMML objective: ``clean``, ``corrupted``
    and ``reconstruction`` as (count, S, S, 3) uint8, ``pixel_mask`` as (count, S, S) bool."""
    from vitprobe.data import resolve_dataset
    from vitprobe.data.base import IMAGENET_MEAN, IMAGENET_STD, to_uint8_images

    objective = load_objective(Path(checkpoint).parent).to(device)
    if objective.name != "gmml":  # MAE and SimMIM predict masked patches only, with other inputs
        raise CheckpointError(f"{checkpoint}: a {objective.name} run has no reconstruction "
                              "decoder; reconstructions need a gmml checkpoint")
    mean, std = IMAGENET_MEAN, IMAGENET_STD  # what the views and the analyses assume
    dataset = resolve_dataset(data, objective.arch.img_size, mean, std)
    g = torch.Generator().manual_seed(seed)
    views = torch.utils.data.default_collate(
        [objective.views(dataset[i]["image"], g) for i in range(min(count, len(dataset)))])
    views = {k: v.to(device) for k, v in views.items()}
    with torch.inference_mode():
        out = objective.reconstruct(views, 0)
    return {"clean": to_uint8_images(views["clean"][:, 0], mean, std).numpy(),
            "corrupted": to_uint8_images(out["corrupted"], mean, std).numpy(),
            "reconstruction": to_uint8_images(out["reconstruction"], mean, std).numpy(),
            "pixel_mask": out["pixel_mask"][:, 0].cpu().numpy()}
