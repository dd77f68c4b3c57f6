"""Training of vitprobe's own CL, MIM and hybrid checkpoints: ``train(TrainConfig(...))``."""

from vitprobe.train.config import TrainConfig
from vitprobe.train.engine import train

__all__ = ["TrainConfig", "train"]
