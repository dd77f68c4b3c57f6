"""The checkpoint-format contract: detect a layout, pull out the encoder's timm state dict."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, NamedTuple

import torch

from vitprobe.errors import CheckpointError, abbreviate
from vitprobe.models.architecture import ArchSpec
from vitprobe.models.reading import RawCheckpoint

BUFFER_DROPS: dict[str, str] = {
    "*relative_position_index": "relative position index buffer (timm recomputes it)",
}
"""Drops applied to every format: buffers that hold no learned weights."""


_CUSTOM_ARCH = re.compile(r"vit_d(\d+)_h(\d+)")


def custom_arch_name(width: int, heads: int) -> str:
    """The architecture name ``vitprobe export`` writes where no published name fits:
    ``vit_d<width>_h<heads>``, read back by :func:`named_arch`."""
    return f"vit_d{width}_h{heads}"


def training_arg(args: Any, name: str) -> Any:
    """Field ``name`` of a checkpoint's ``args``: an argparse Namespace (as the training scripts
    pickle it) or a mapping (as ``vitprobe export`` writes it, loadable with weights_only)."""
    return args.get(name) if isinstance(args, Mapping) else getattr(args, name, None)


class NamedArch(NamedTuple):
    """Width, heads and depth of an architecture name in a training script's metadata."""

    width: int
    heads: int
    depth: int | None  # None for ``vit_d<width>_h<heads>``, which leaves the depth open


def named_arch(name: Any, published: Mapping[str, NamedArch]) -> NamedArch | None:
    """The architecture of a name: a published one from ``published``, or
    ``vit_d<width>_h<heads>`` (:func:`custom_arch_name`); None otherwise."""
    if not isinstance(name, str):
        return None
    if name in published:
        return published[name]
    custom = _CUSTOM_ARCH.fullmatch(name)
    return NamedArch(int(custom[1]), int(custom[2]), None) if custom else None


@dataclass(frozen=True)
class ArchHints:
    """What a checkpoint says about its architecture beyond the weight shapes."""

    num_heads: int | None = None
    heads_source: str | None = None
    width: int | None = None  # the width the named architecture has; heads and depth apply only then
    depth: int | None = None  # the block count the named architecture has
    patch_size: int | None = None
    spec: ArchSpec | None = None  # exact architecture (vitprobe's own format)
    # widths whose published head count is not certain for this layout -> why (the count is
    # then reported as guessed, and the load warns)
    uncertain_widths: dict[int, str] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)  # extra facts for the report


def arch_name_hints(name: Any, published: Mapping[str, NamedArch], field: str, family: str,
                    **more: Any) -> ArchHints:
    """The hints of architecture name ``name``, read from metadata ``field`` of a ``family``
    checkpoint (heads, width and depth where the name is known, the name itself for the report)."""
    arch = named_arch(name, published)
    return ArchHints(num_heads=arch.heads if arch else None, width=arch.width if arch else None,
                     depth=arch.depth if arch else None, heads_source=f"{family} {field} {name!r}",
                     info={field: name} if isinstance(name, str) else {}, **more)


@dataclass
class Extracted:
    """The encoder's weights under timm names, what was dropped (reason -> keys), and hints."""

    state_dict: dict[str, torch.Tensor]
    dropped: dict[str, list[str]]
    hints: ArchHints
    key: str | None = None
    ignored_entries: list[str] = field(default_factory=list)


class CheckpointFormat:
    """One published checkpoint layout.

    Subclasses set ``name``, ``summary``, ``priority`` (detection tries lower first, so the
    most specific layouts come first), ``drops`` (glob pattern on the remapped key -> reason)
    and ``keys`` (selectable sub-checkpoints, default first), and implement :meth:`detect`
    and :meth:`extract`.
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    priority: ClassVar[int]
    drops: ClassVar[dict[str, str]] = {}
    keys: ClassVar[tuple[str, ...]] = ()

    def detect(self, raw: RawCheckpoint) -> bool:
        """Whether ``raw`` has this format's layout."""
        raise NotImplementedError

    def extract(self, raw: RawCheckpoint, key: str | None) -> Extracted:
        """The encoder weights of ``raw`` under timm names."""
        raise NotImplementedError

    def choose_key(self, raw: RawCheckpoint, key: str | None) -> str | None:
        """``key`` checked against :attr:`keys`, or the default."""
        if key is None:
            return self.keys[0] if self.keys else None
        if not self.keys:
            raise CheckpointError(f"checkpoint {raw.path}: format {self.name} holds one encoder, so it takes "
                                  f"no --key ({key!r}); omit --key")
        if key not in self.keys:
            raise CheckpointError(f"checkpoint {raw.path}: format {self.name} has no sub-checkpoint "
                                  f"{key!r}; --key choices: {', '.join(self.keys)}")
        return key


_REGISTRY: dict[str, CheckpointFormat] = {}

# timm ViT encoder keys (blocks 0..31), against which a format's drops are checked: a drop
# rule that takes away part of the encoder would load a shallower or headless model, "ok".
_BLOCK_KEYS = ("norm1.weight", "attn.qkv.weight", "attn.proj.weight", "ls1.gamma", "norm2.weight",
               "mlp.fc1.weight", "mlp.fc2.weight", "ls2.gamma")
ENCODER_KEYS = ("cls_token", "reg_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias",
                "norm.weight", "norm.bias", *(f"blocks.{i}.{k}" for i in range(32) for k in _BLOCK_KEYS))


def _check_layout_attributes(cls: type[CheckpointFormat], where: str) -> None:
    """``keys``: a tuple of names; ``drops``: glob -> reason, none matching an encoder key."""
    if not (isinstance(cls.keys, tuple) and all(isinstance(k, str) and k for k in cls.keys)):
        raise TypeError(f"{where}: `keys` must be a tuple of sub-checkpoint names, e.g. ('teacher', 'student'), "
                        f"got {cls.keys!r}")
    if not (isinstance(cls.drops, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in cls.drops.items())):
        raise TypeError(f"{where}: `drops` must map a glob on the remapped keys to why they are dropped, "
                        f"e.g. {{'head.*': 'projection head (training only)'}}, got {cls.drops!r}")
    for pattern in cls.drops:
        hit = next((k for k in ENCODER_KEYS if fnmatch.fnmatchcase(k, pattern)), None)
        if hit is not None:
            raise TypeError(f"{where}: drops {pattern!r} matches the encoder's own key {hit!r}; drops are for "
                            "what is not the encoder (heads, decoders, mask tokens)")


def register_format(cls: type[CheckpointFormat]) -> type[CheckpointFormat]:
    """Class decorator: add a format to the registry. It must set ``name`` and ``summary``
    (text) and an int ``priority``, and implement ``detect`` and ``extract``; a name taken by
    another class is refused (the same class registered again, on a reload, replaces itself)."""
    where = f"{cls.__module__}.{cls.__qualname__}"
    if not all(isinstance(getattr(cls, a, None), str) and getattr(cls, a) for a in ("name", "summary")) \
            or not isinstance(getattr(cls, "priority", None), int):
        raise TypeError(f"{where} needs class attributes `name` and `summary` (text) and an int `priority` "
                        "(detection tries lower first)")
    for method in ("detect", "extract"):
        if getattr(cls, method) is getattr(CheckpointFormat, method):
            raise TypeError(f"{where} must implement {method}()")
    _check_layout_attributes(cls, where)
    taken = _REGISTRY.get(cls.name)
    if taken is not None and f"{type(taken).__module__}.{type(taken).__qualname__}" != where:
        raise TypeError(f"checkpoint format name {cls.name!r} is already taken by "
                        f"{type(taken).__module__}.{type(taken).__qualname__}; give {cls.__qualname__} another `name`")
    _REGISTRY[cls.name] = cls()
    return cls


def formats() -> dict[str, CheckpointFormat]:
    """Every registered format, by name, in detection order (ascending ``priority``)."""
    return {f.name: f for f in sorted(_REGISTRY.values(), key=lambda f: f.priority)}


def key_choices() -> str:
    """``dino teacher|student, ...``: each format's sub-checkpoints (``--key``), default first."""
    return ", ".join(f"{f.name} {'|'.join(f.keys)}" for f in formats().values() if f.keys)


def tensor_dict(raw: RawCheckpoint, obj: Any, where: str) -> dict[str, torch.Tensor]:
    """``obj`` as a str -> Tensor dict, or a CheckpointError saying what ``where`` holds instead."""
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"checkpoint {raw.path}: {where} is a {type(obj).__name__}, "
                              "expected a dict of tensors (a state dict)")
    bad = [str(k) for k, v in obj.items() if not (isinstance(k, str) and isinstance(v, torch.Tensor))]
    if bad:
        raise CheckpointError(f"checkpoint {raw.path}: {where} holds entries that are not "
                              f"named tensors ({abbreviate(bad)}); expected a state dict")
    return dict(obj)


def entry(raw: RawCheckpoint, name: str) -> Any:
    """``raw.obj[name]``, or a CheckpointError naming the missing entry."""
    if not isinstance(raw.obj, Mapping) or name not in raw.obj:
        raise CheckpointError(f"checkpoint {raw.path} has no {name!r} entry, so it is not in the "
                              "chosen layout; drop --format to detect the layout, or choose the "
                              "one that matches the file (see `vitprobe models`)")
    return raw.obj[name]


def entries_beside(raw: RawCheckpoint, name: str | None) -> list[str]:
    """The file's top-level entries other than the weights' ``name`` (an optimiser, epoch, args),
    sorted: ``Extracted.ignored_entries``, which ``inspect`` lists as "also held"."""
    return sorted(str(k) for k in raw.obj if k != name)


def has_prefixed_keys(obj: Any, *prefixes: str) -> bool:
    """Whether ``obj`` is a dict with at least one string key starting with one of ``prefixes``."""
    return isinstance(obj, Mapping) and any(
        isinstance(k, str) and k.startswith(prefixes) for k in obj)


def strip_prefix(sd: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Remove ``prefix`` from every key that has it; other keys stay as they are."""
    return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in sd.items()}


PATCH_KEY = "patch_embed.proj.weight"
"""The key of a ViT/BEiT patch embedding (timm names): what formats look for to find an encoder."""

WRAPPER_PREFIXES = ("module.", "_orig_mod.")
"""Key prefixes that wrappers add: DistributedDataParallel and DataParallel, torch.compile."""


def unwrapped_key(key: str) -> str:
    """``key`` without its leading :data:`WRAPPER_PREFIXES`, in any order and number
    (``module._orig_mod.blocks.0.norm1.weight`` -> ``blocks.0.norm1.weight``)."""
    while key.startswith(WRAPPER_PREFIXES):
        key = key.split(".", 1)[1]
    return key


def strip_wrappers(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``sd`` with every key unwrapped (:func:`unwrapped_key`)."""
    return {unwrapped_key(k): v for k, v in sd.items()}


def split_drops(sd: Mapping[str, torch.Tensor], rules: Mapping[str, str]
                ) -> tuple[dict[str, torch.Tensor], dict[str, list[str]]]:
    """Keys matching a glob in ``rules`` (pattern -> reason) are dropped and listed by reason."""
    kept: dict[str, torch.Tensor] = {}
    dropped: dict[str, list[str]] = {}
    for k, v in sd.items():
        reason = next((r for p, r in rules.items() if fnmatch.fnmatchcase(k, p)), None)
        if reason is None:
            kept[k] = v
        else:
            dropped.setdefault(reason, []).append(k)
    return kept, dropped


