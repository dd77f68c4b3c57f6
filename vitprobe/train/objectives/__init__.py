"""Self-supervised objectives, registered by name: dino, mocov3, mae, simmim, gmml, hybrid."""

from vitprobe.train.objectives import dino, gmml, hybrid, mae, mocov3, simmim  # noqa: F401  (registration)
from vitprobe.train.objectives.base import (Objective, StepInfo, collapse_warnings, get_objective,
                                            list_objectives)

__all__ = ["Objective", "StepInfo", "collapse_warnings", "get_objective", "list_objectives"]
