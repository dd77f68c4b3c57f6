"""The Objective base class, the step record it receives, EMA copies and the registry."""

from __future__ import annotations

import abc
import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import torch
import torch.nn as nn
from torch import Tensor

from vitprobe.errors import ConfigError, is_whole, warn_user
from vitprobe.models.architecture import ArchSpec
from vitprobe.train.objectives._hparam_checks import check_hparam

# Optimiser keys every objective's ``defaults`` carries for the engine (lr per 256 images); an
# objective may also carry ``warmup_lr``, where its warm-up starts (per 256 images; else 0).
ENGINE_KEYS = ("base_lr", "min_lr", "lr_drop", "warmup_epochs", "weight_decay", "weight_decay_end",
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
    BatchNorm normalises over the batch). Weight decay spares biases and other 1-d tensors
    (norms) unless ``decay_1d`` (MoCo v3 decays every tensor), and the tensors whose last name
    is in ``no_decay_names``, as each reference's optimiser does.
    """

    name: ClassVar[str]
    published_epochs: ClassVar[int]
    defaults: ClassVar[dict[str, Any]]
    per_tensor_clip: ClassVar[bool] = False
    revision: ClassVar[int] = 1
    # what the logged loss is, for the summary after training; a {key} field shows that hyper-parameter
    loss_text: ClassVar[str] = ""
    min_batch_size: ClassVar[int] = 1
    decay_1d: ClassVar[bool] = False
    no_decay_names: ClassVar[frozenset[str]] = frozenset()
    choices: ClassVar[dict[str, tuple[str, ...]]] = {}  # hyper-parameters that name one of a few values

    def __init__(self, encoder: nn.Module, arch: ArchSpec, **hparams: Any):
        super().__init__()
        self.hparams = self.resolve_hparams(hparams)
        if self.defaults.get("momentum", 0.0) is None and hparams.get("momentum") is not None:
            warn_user(f"objective {self.name!r}: momentum {hparams['momentum']} has no effect ({self.name} has no "
                      "momentum encoder or teacher); leave it out")
        self.encoder = encoder
        self.arch = arch
        self.collapse_dim: int | None = None

    @classmethod
    def least_batch_size(cls, given: dict[str, Any]) -> int:
        """The fewest images per process a step can take with the hyper-parameters ``given``."""
        return cls.min_batch_size

    @classmethod
    def encoder_arch(cls, arch: ArchSpec, hparams: Mapping[str, Any]) -> ArchSpec:
        """The encoder this objective trains, from the run's preset or ``--arch`` and its
        resolved ``hparams``: ``arch`` itself, unless its reference builds another ViT."""
        return arch

    @classmethod
    def describe_loss(cls, hparams: Mapping[str, Any]) -> str:
        """What the logged loss is under the resolved ``hparams``: ``loss_text`` with its
        ``{key}`` fields filled from them."""
        return cls.loss_text.format_map(hparams)

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

    def decays(self, name: str, param: nn.Parameter) -> bool:
        """Whether AdamW's weight decay applies to the parameter of that (dotted) name."""
        return (self.decay_1d or param.ndim > 1) and name.rsplit(".", 1)[-1] not in self.no_decay_names

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
    try:  # said after a run that may take days: a bad field fails here instead
        cls.describe_loss(dict(cls.defaults))
    except (KeyError, IndexError, ValueError, AttributeError) as err:
        raise TypeError(f"objective {cls.name!r}: loss_text {cls.loss_text!r} does not fill from its defaults "
                        f"({type(err).__name__}: {err}); name hyper-parameters in {{}} and write a brace as {{{{") from None
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

