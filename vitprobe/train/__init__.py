"""Training of vitprobe's own CL, MIM and hybrid checkpoints: ``train(TrainConfig(...))``."""

from vitprobe.train.config import TrainConfig
from vitprobe.train.engine import train
from vitprobe.train.monitor import loss_summary

__all__ = ["TrainConfig", "loss_summary", "train"]
