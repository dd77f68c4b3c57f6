"""The Objective base class, the step record it receives, cross-process helpers and the registry."""

from __future__ import annotations

import abc
import copy
import math
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import torch
import torch.distributed as dist
import torch.nn as nn
from torch import Tensor

from vitprobe.distributed import rank_and_world
from vitprobe.errors import ConfigError, is_whole
from vitprobe.models.architecture import ArchSpec
from vitprobe.train.objectives._hparam_checks import check_hparam

# Optimiser keys every objective's ``defaults`` carries for the engine (lr per 256 images).
ENGINE_KEYS = ("base_lr", "min_lr", "warmup_epochs", "weight_decay", "weight_decay_end",
               "momentum", "betas", "clip_grad")


@dataclass(frozen=True)
class StepInfo:
    """Where training stands: ``progress`` = step / total_steps in [0, 1]."""

    epoch: int
    step: int
    steps_per_epoch: int
    total_steps: int
    progress: float

    @property
    def total_epochs(self) -> int:
        """Length of the run in whole epochs (at least 1)."""
        return max(1, math.ceil(self.total_steps / max(1, self.steps_per_epoch)))


class Objective(nn.Module, abc.ABC):
    """A self-supervised loss around one timm ViT encoder.

    ``defaults`` holds the published hyper-parameters: the engine's optimiser keys
    (:data:`ENGINE_KEYS`) and the objective's own; ``hparams`` is ``defaults`` updated with
    the keyword arguments, and any keyword not in ``defaults`` is a :class:`ConfigError`.
    ``collapse_dim`` is the K that :func:`collapse_warnings` needs (prototypes or embedding
    width), or None. ``per_tensor_clip``: the engine clips each gradient tensor to
    ``clip_grad`` separately (DINO, SiT) instead of the global norm. ``published_epochs`` is
    the length of the published pre-training, the default of the full presets and ``--arch``.
    ``revision`` goes up whenever a change makes the objective train differently from the
    same config, so that ``vitprobe reproduce`` retrains instead of reusing an older model.
    ``min_batch_size``: the fewest images per process a step can take (2 where a head's
    BatchNorm normalises over the batch).
    """

    name: ClassVar[str]
    published_epochs: ClassVar[int]
    defaults: ClassVar[dict[str, Any]]
    per_tensor_clip: ClassVar[bool] = False
    revision: ClassVar[int] = 1
    loss_text: ClassVar[str] = ""  # what the logged loss is, for the summary after training
    min_batch_size: ClassVar[int] = 1
    choices: ClassVar[dict[str, tuple[str, ...]]] = {}  # hyper-parameters that name one of a few values

    def __init__(self, encoder: nn.Module, arch: ArchSpec, **hparams: Any):
        super().__init__()
        self.hparams = self.resolve_hparams(hparams)
        self.encoder = encoder
        self.arch = arch
        self.collapse_dim: int | None = None

    @classmethod
    def least_batch_size(cls, given: dict[str, Any]) -> int:
        """The fewest images per process a step can take with the hyper-parameters ``given``."""
        return cls.min_batch_size

    @classmethod
    def resolve_hparams(cls, given: dict[str, Any], via: str | None = None) -> dict[str, Any]:
        """``defaults`` updated with ``given`` (each type- and range-checked, ``check_hparam``;
        ``via``: the hybrid's ``mim_hparams``/``cl_hparams`` that hold them, for the errors);
        lists become tuples where the default is a tuple."""
        unknown = sorted(set(given) - set(cls.defaults))
        if unknown:
            where = f" (in {via})" if via else ""
            raise ConfigError(f"objective {cls.name!r}{where}: unknown hyper-parameter(s) {unknown}; "
                              f"known: {sorted(cls.defaults)}")
        out = dict(cls.defaults)
        for key, value in given.items():
            check_hparam(cls.name, key, value, cls.defaults[key], cls.choices.get(key), via)
            if isinstance(cls.defaults[key], tuple) and value is not None:
                value = tuple(value)
            out[key] = int(value) if is_whole(value) else value  # a NumPy integer as a Python int
        return out

    @abc.abstractmethod
    def views(self, image: Tensor, g: torch.Generator) -> dict[str, Tensor]:
        """The views of ONE normalised (3, S, S) image; a pure function of (image, g)."""

    @abc.abstractmethod
    def forward(self, views: dict[str, Tensor], step: StepInfo) -> tuple[Tensor, dict[str, float]]:
        """Collated views -> (scalar loss, health metrics as floats, always with ``loss``)."""

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """(online module, its EMA copy) pairs; empty when the objective has no momentum encoder."""
        return []

    @torch.no_grad()
    def update_momentum(self, m: float) -> None:
        """theta_ema <- m * theta_ema + (1 - m) * theta_online for every parameter pair (two
        multi-tensor kernels for all of them, not two per tensor)."""
        pairs = [(p.detach(), q) for online, ema in self.momentum_pairs()
                 for p, q in zip(online.parameters(), ema.parameters(), strict=True)]
        if pairs:
            online_params, ema_params = map(list, zip(*pairs))
            torch._foreach_mul_(ema_params, m)
            torch._foreach_add_(ema_params, online_params, alpha=1 - m)

    def after_backward(self, step: StepInfo) -> None:
        """Hook between backward and the optimiser step; nothing by default."""

    def leaves_parameters_unused(self) -> bool:
        """Whether some trainable parameters get no gradient in a step (e.g. a branch that is
        skipped); data-parallel training then has DDP search for them every step
        (``find_unused_parameters``), which costs a graph traversal. False by default."""
        return False

    def stochastic_depth(self) -> float:
        """The drop-path rate of the trained encoder, ``hparams["drop_path"]`` (0 when absent).
        The engine applies it after the EMA copies exist, which never drop."""
        return float(self.hparams.get("drop_path") or 0.0)

    def export_encoder(self) -> nn.Module:
        """The timm ViT to save as the checkpoint."""
        return self.encoder


def frozen_copy(module: nn.Module) -> nn.Module:
    """A deep copy with every parameter's requires_grad False (an EMA target). Made while the
    objective is built, before the engine gives the encoder its drop path, so EMA copies never
    drop (DINO's and SiT's teachers are built without it)."""
    twin = copy.deepcopy(module)
    for p in twin.parameters():
        p.requires_grad_(False)
    return twin


def distributed() -> bool:
    """True when torch.distributed is initialised with more than one process."""
    return rank_and_world()[1] > 1


def rank() -> int:
    """This process's rank, 0 when not distributed."""
    return rank_and_world()[0]


def concat_all_gather(x: Tensor) -> Tensor:
    """Concatenate ``x`` (B, ...) of every process along dim 0; gradient flows into the local part only."""
    if not distributed():
        return x
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.detach().contiguous())
    parts[dist.get_rank()] = x
    return torch.cat(parts, dim=0)


def all_reduce_mean(x: Tensor) -> Tensor:
    """Mean of ``x`` over processes (no gradient); ``x`` itself when not distributed."""
    if not distributed():
        return x
    y = x.detach().clone()
    dist.all_reduce(y)
    return y / dist.get_world_size()


@dataclass(frozen=True)
class Collapse:
    """One collapse that the health metrics show: its kind (one of ``COLLAPSE_KINDS``), the
    values measured and the advice; ``str()`` gives all three. Both wordings start with the
    kind, by which a recorded warning is recognised."""

    kind: str
    measured: str
    advice: str

    def __str__(self) -> str:
        return f"{self.kind} ({self.measured}): {self.advice}"

    def persisting(self, since: int) -> str:
        """The short line for a collapse that has shown every epoch since epoch ``since``."""
        return f"{self.kind} persists ({self.measured}) since epoch {since}, whose warning gives the advice"


COLLAPSE_KINDS = ("DINO collapse to one prototype", "DINO collapse to the uniform distribution",
                  "contrastive collapse")


def collapse_warnings(metrics: dict[str, float], K: int | None, momentum: float | None = None) -> list[Collapse]:
    """The papers' advice when the health metrics show a collapse (for DINO on a short run, also
    what vitprobe measured on the tiny preset: a lower teacher momentum), worded from the values
    in force: the epoch's mean ``teacher_temp`` metric and the base teacher ``momentum``.

    DINO (K prototypes): teacher_batch_entropy < 0.1 log K means one prototype takes all
    images; teacher_entropy > 0.9 log K means the teacher is near uniform. Contrastive
    (K = embedding width): emb_std * sqrt(K) < 0.1 means the embeddings collapsed to a point
    (healthy is about 1).
    """
    one, uniform, contrastive = COLLAPSE_KINDS
    out: list[Collapse] = []
    if K and "teacher_batch_entropy" in metrics:
        log_k = math.log(K)
        if metrics["teacher_batch_entropy"] < 0.1 * log_k:
            out.append(Collapse(one, f"teacher batch entropy {metrics['teacher_batch_entropy']:.3g} of log K = "
                                     f"{log_k:.3g}",
                                "centring is too weak; lower center_momentum or raise teacher_temp"))
        elif metrics.get("teacher_entropy", 0.0) > 0.9 * log_k:
            out.append(Collapse(
                uniform, f"teacher entropy {metrics['teacher_entropy']:.3g} of log K = {log_k:.3g}",
                f"sharpening is too weak; "
                f"{_lower_advice(metrics.get('teacher_temp'), 'teacher_temp / warmup_teacher_temp', _DINO_TEMP, 'DINO code default')}, "
                f"and on a run of a few hundred steps "
                f"{_lower_advice(momentum, 'teacher momentum', _SHORT_RUN_MOMENTUM, 'measured on the tiny preset')} "
                f"so that the teacher leaves its random initialisation (or train for more steps)"))
    if K and "emb_std" in metrics and metrics["emb_std"] * math.sqrt(K) < 0.1:
        out.append(Collapse(contrastive, f"embedding std {metrics['emb_std']:.3g}, healthy about {1 / math.sqrt(K):.3g}",
                            "lower the learning rate, keep the predictor and BN in the projector, check the "
                            "momentum schedule"))
    return out


_DINO_TEMP = 0.04  # main_dino.py's teacher_temp and warmup_teacher_temp default
_SHORT_RUN_MOMENTUM = 0.95  # a teacher that moves within a few hundred steps (tiny preset)


def _lower_advice(in_force: float | None, what: str, suggested: float, source: str) -> str:
    """Advice to lower ``what``: to ``suggested`` where that is below the value in force (or
    the value is unknown), else below the value in force V (e.g. 2 V - 1 for a momentum, V / 2
    for anything else)."""
    if in_force is None or in_force > suggested + 1e-12:
        now = "" if in_force is None else f" from {in_force:.3g}"
        return f"lower {what}{now} to {suggested:g} ({source})"
    further = 2 * in_force - 1 if "momentum" in what else in_force / 2
    return f"lower {what} below its {in_force:.3g} (e.g. {further:.3g})"


_REGISTRY: dict[str, type[Objective]] = {}
_O = TypeVar("_O", bound=type[Objective])


def register_objective(cls: _O) -> _O:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    if not isinstance(getattr(cls, "name", None), str) or not cls.name:
        raise TypeError(f"objective class {cls.__qualname__} lacks a `name` (its --method value)")
    missing = [k for k in ENGINE_KEYS if k not in cls.defaults]
    if missing:
        raise TypeError(f"objective {cls.name!r} defaults lack engine keys {missing}")
    if not isinstance(getattr(cls, "published_epochs", None), int):
        raise TypeError(f"objective {cls.name!r} lacks an int `published_epochs`")
    taken = _REGISTRY.get(cls.name)
    if taken is not None and (taken.__module__, taken.__qualname__) != (cls.__module__, cls.__qualname__):
        raise TypeError(f"objective name {cls.name!r} is already taken by {taken.__module__}.{taken.__qualname__}; "
                        f"give {cls.__qualname__} another `name`")
    _REGISTRY[cls.name] = cls
    return cls


def list_objectives() -> list[str]:
    """Names of the registered objectives, sorted."""
    return sorted(_REGISTRY)


def objective_class(name: str) -> type[Objective]:
    """The class registered under ``name``; ConfigError names the choices."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown objective {name!r}; choose one of {list_objectives()}") from None


def get_objective(name: str, encoder: nn.Module, arch: ArchSpec, **hparams: Any) -> Objective:
    """Build the objective ``name`` around ``encoder`` with ``hparams`` over its defaults."""
    return objective_class(name)(encoder, arch, **hparams)

