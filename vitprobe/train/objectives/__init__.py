"""Self-supervised objectives, registered by name: dino, mocov3, mae, simmim, gmml, hybrid."""

from vitprobe.train.collapse import Collapse, collapse_warnings
from vitprobe.train.objectives.base import Objective, StepInfo, get_objective, list_objectives, objective_class
from vitprobe.plugins import import_all

import_all(__name__, __path__)  # each objective module registers itself

__all__ = ["Collapse", "Objective", "StepInfo", "collapse_warnings", "get_objective", "list_objectives", "objective_class"]
