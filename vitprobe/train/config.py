"""TrainConfig: every option of a training run as plain data, plus the architecture presets.

A config is built from overrides that must name existing fields
(:meth:`TrainConfig.from_overrides`), round-trips through JSON, and is stored inside every
checkpoint. ``None`` means "the default of the method / preset", resolved by
:func:`resolve_schedule` and by the objective's ``defaults``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from vitprobe.data.spec import absolute_spec
from vitprobe.errors import ConfigError, brief_reason, check_whole, plural, warn_user
from vitprobe.json_safe import python_numbers
from vitprobe.models.architecture import ArchSpec
from vitprobe.seeding import check_seed
from vitprobe.train.objectives import list_objectives, objective_class
from vitprobe.yaml_files import read_yaml_mapping

AMP_MODES = ("auto", "bf16", "fp16", "fp32")
# Other names of the methods (lower case, without - _ or spaces), named in the error for them.
METHOD_NAMES = {"sit": "gmml", "moco": "mocov3", "mocov3": "mocov3", "clmim": "hybrid", "clplusmim": "hybrid"}
# Methods that vitprobe does not train, and the nearest objective it does.
NOT_TRAINED = {
    "beit": "vitprobe does not train BEiT, whose targets are a pretrained DALL-E tokenizer's codes; "
            "BEiT checkpoints load for analysis, and --method simmim or mae trains masked image modelling",
    "ibot": "vitprobe does not train iBOT; --method hybrid mixes a contrastive and a masked-image loss",
}


def _owners(key: str, methods: Sequence[str]) -> list[str]:
    """The objectives among ``methods`` whose hyper-parameters include ``key``."""
    return [m for m in methods if key in objective_class(m).defaults]


def _hparams_hint(unknown: list[str], method: Any, hparams: Any) -> str:
    """Where the unknown options that are objectives' hyper-parameters belong: under
    ``hparams:`` (a hybrid branch's, by the given ``hparams``' mim and cl, under its
    ``mim_hparams`` or ``cl_hparams`` there), named for ``method`` where it is an objective,
    else with the objectives that have them."""
    from vitprobe.train.objectives.hybrid import Hybrid

    if method not in list_objectives():
        owners = {k: _owners(k, list_objectives()) for k in unknown}
        parts = [f"{k} (of {', '.join(o)})" for k, o in owners.items() if o]
        if not parts:
            return ""
        if len(parts) == 1:
            return f"; {parts[0]} is a hyper-parameter: put it under hparams:"
        return f"; {', '.join(parts[:-1])} and {parts[-1]} are hyper-parameters: put them under hparams:"
    hints = [f"{k} is a hyper-parameter of {method}: put it under hparams:" for k in unknown if _owners(k, [method])]
    if method == "hybrid":
        for key in (k for k in unknown if not _owners(k, [method])):
            inside = list(Hybrid.branches_taking(key, hparams if isinstance(hparams, dict) else {}))
            if inside:
                branches = "both hybrid branches" if len(inside) == 2 else f"the hybrid's {inside[0].upper()} branch"
                places = " or ".join(f"{{{part}_hparams: {{{key}: ...}}}}" for part in inside)
                hints.append(f"{key} is a hyper-parameter of {branches}: put it under hparams: {places}")
    return "".join(f"; {hint}" for hint in hints)


@dataclass(frozen=True)
class Preset:
    """An encoder size and its default length of training (None: the published schedule)."""

    img_size: int
    patch_size: int
    embed_dim: int
    depth: int
    num_heads: int
    epochs: int | None


PRESETS: dict[str, Preset] = {
    # Trains in a few minutes on two CPU cores.
    "tiny": Preset(img_size=32, patch_size=4, embed_dim=64, depth=4, num_heads=4, epochs=10),
    "small": Preset(img_size=64, patch_size=8, embed_dim=192, depth=6, num_heads=3, epochs=30),
    # Full sizes train as long as the papers did (each objective's ``published_epochs``).
    "vit_s16": Preset(img_size=224, patch_size=16, embed_dim=384, depth=12, num_heads=6,
                      epochs=None),
    "vit_b16": Preset(img_size=224, patch_size=16, embed_dim=768, depth=12, num_heads=12,
                      epochs=None),
}

# Head and mask sizes, learning rates and crops for the CPU presets. The published sizes
# (DINO's 65536 prototypes, MAE's 8 x 512 decoder, SimMIM's 32 px mask blocks, 4096-wide MoCo
# MLPs) would dwarf a 64-wide encoder on 32 px images, and the published learning rates (tuned
# for hundreds of epochs on ImageNet) leave it near its initialisation after a few minutes.
# Measured on digits with the tiny preset, 30 epochs (session 4, before MoCo v3's predictor
# got its final BatchNorm back): MoCo v3 at base_lr 6e-3 with crops of 35-100% reached k-NN 75%
# (random encoder 46%); at the published 1.5e-4 and 8-100% crops it stayed at chance. With the
# predictor's BatchNorm (session 7) the same settings reach 71.5%; with MoCo v3's own encoder
# set-up (session 32: frozen sin-cos positions, Xavier weights) 91.8%. The tiny preset also
# trains without stochastic depth (the published 0.1
# of DINO, SiT and SimMIM regularises 12 blocks over hundreds of epochs; 4 blocks trained for a
# few hundred steps are not over-fitting), and the README's measured runs used none. Full
# presets keep the published values. --set overrides any of these.
_TINY_CL = {"proj_hidden_dim": 512, "out_dim": 128, "base_lr": 6e-3, "crop_scale": (0.35, 1.0),
            "drop_path": 0.0}
# DINO's teacher at the tiny scale: the temperature of DINO's own code defaults (0.04 from the
# start; the 0.04 -> 0.07 ramp over 30 epochs belongs to its longer recipe) and an EMA that
# follows the student within tens of steps (0.95; at the published 0.996 over a third of the
# random teacher is still there after 256 steps). Measured on synthetic:2048, 16 epochs, k-NN
# at block 4 on synthetic:4096:1 (cls; a random encoder: shape 25.2-27.5, texture 19.1-19.5):
# published 0.996 + ramp: teacher entropy 6.82 of log K = 6.93 (uniform), shape 27.0, texture
# 13.4; 0.99 + 0.04: 6.21, 31.4, 15.7; 0.95 + 0.04: 5.13, shape 32.7, texture 24.8.
# The small preset (30 epochs of synthetic:2048 at batch 128: 480 steps) takes the same teacher.
# Measured at k-NN block 6 on synthetic:2048:1 (412 held out; random encoder: shape 24.8,
# texture 13.6): published: entropy 7.95 of log K = 8.32 (warned from epoch 9), shape 33.5,
# texture 12.1; 0.95 + 0.04: entropy 6.54, no warning, shape 36.2, texture 24.3.
_TINY_DINO_TEACHER = {"momentum": 0.95, "teacher_temp": 0.04, "warmup_teacher_temp_epochs": 0}
PRESET_HPARAMS: dict[str, dict[str, dict[str, Any]]] = {
    "tiny": {
        "dino": {"out_dim": 1024, "head_hidden_dim": 256, "head_bottleneck_dim": 64, "n_local": 4,
                 "base_lr": 2e-3, "drop_path": 0.0, **_TINY_DINO_TEACHER},
        "mocov3": {**_TINY_CL, "pred_hidden_dim": 512},
        "mae": {"decoder_dim": 64, "decoder_depth": 2, "decoder_heads": 4, "base_lr": 6e-3,
                "drop_path": 0.0},
        # SimMIM's warm-up starts at 1/200 of its base rate (WARMUP_LR 5e-7, BASE_LR 1e-4)
        "simmim": {"mask_patch_size": 8, "base_lr": 6e-3, "warmup_lr": 3e-5, "drop_path": 0.0},
        "gmml": dict(_TINY_CL),
        "hybrid": {"base_lr": 6e-3},
    },
    "small": {
        "dino": {"out_dim": 4096, "head_hidden_dim": 1024, "head_bottleneck_dim": 128, "n_local": 6,
                 **_TINY_DINO_TEACHER},
        "mocov3": {"proj_hidden_dim": 1024, "pred_hidden_dim": 1024, "out_dim": 256},
        "mae": {"decoder_dim": 128, "decoder_depth": 4, "decoder_heads": 4},
        "simmim": {"mask_patch_size": 16},
        "gmml": {"proj_hidden_dim": 1024, "out_dim": 256},
    },
}


@dataclass
class TrainConfig:
    """One training run. ``batch_size`` is per process: the global batch is K x batch_size.

    ``hparams`` go to the objective unchanged; they include the optimisation settings of its
    ``defaults`` (base_lr, min_lr, warmup_epochs, weight_decay, weight_decay_end, momentum,
    clip_grad: 0 or None switches clipping off). ``lr=None`` means
    ``base_lr * global_batch / 256``. With neither ``arch`` nor ``preset`` the preset is "tiny".
    ``preset`` and ``epochs`` keep what was given (None for a default); :meth:`resolved` fills them.
    """

    method: str = "mae"
    lam: float | None = None
    arch: str | None = None
    preset: str | None = None
    data: str = "synthetic:512"
    epochs: int | None = None
    batch_size: int = 64
    lr: float | None = None
    seed: int = 0
    out: str = "runs/train"
    num_workers: int = 0
    amp: str = "auto"
    device: str = "auto"
    hparams: dict[str, Any] = field(default_factory=dict)
    save_every: int = 1
    log_every: int = 1

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # NumPy scalars (a sweep's np.linspace) as Python numbers
            setattr(self, f.name, python_numbers(getattr(self, f.name)))
        self.validate()

    @classmethod
    def from_overrides(cls, overrides: dict[str, Any] | None = None, **kwargs: Any) -> "TrainConfig":
        """A config from ``{field: value}``; an unknown field is a ConfigError."""
        values = {**(overrides or {}), **kwargs}
        cls.check_names(values)
        return cls(**values)

    @classmethod
    def check_names(cls, values: dict[str, Any], method: str | None = None) -> None:
        """Raise ConfigError unless every key of ``values`` names a field; one that is a
        hyper-parameter of ``method`` (default: ``values["method"]``) is said to go under ``hparams``."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"unknown training option(s) {unknown}; known: {sorted(names)}"
                              f"{_hparams_hint(unknown, method or values.get('method'), values.get('hparams'))}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field."""
        return dataclasses.asdict(self)

    def resolved(self) -> dict[str, Any]:
        """:meth:`to_dict` with the preset and the number of epochs in force where the fields
        leave them to defaults (what config.json and the checkpoints record)."""
        return {**self.to_dict(), "preset": self.preset_name, "epochs": self.total_epochs()}

    def validate(self) -> None:
        """Raise ConfigError (one line) for an option of the wrong type or an impossible
        combination of options."""
        self._check_types()
        if self.method not in list_objectives():
            plain = str(self.method).lower().replace("-", "").replace("_", "").replace(" ", "")
            known_as = METHOD_NAMES.get(plain)
            hint = (f" ({self.method} is --method {known_as})" if known_as
                    else f" ({NOT_TRAINED[plain]})" if plain in NOT_TRAINED else "")
            raise ConfigError(f"unknown method {self.method!r}{hint}; choose one of {list_objectives()}")
        if self.method == "hybrid":
            if self.lam is None:
                raise ConfigError("--method hybrid needs --lambda, the weight of its contrastive loss in [0, 1] "
                                  "(L = (1 - lambda) L_SimMIM + lambda L_MoCoV3); e.g. --lambda 0.5 (in a "
                                  "--config file lam: 0.5; Python: lam=0.5)")
            if not 0.0 <= self.lam <= 1.0:
                raise ConfigError(f"--method hybrid needs --lambda in [0, 1], got {self.lam}")
        elif self.lam is not None:
            raise ConfigError(f"--lambda applies to --method hybrid only, not {self.method!r}")
        if self.arch is not None and self.preset is not None:
            raise ConfigError("give either --arch (a timm name) or --preset, not both")
        if self.preset is not None and self.preset not in PRESETS:
            raise ConfigError(f"unknown preset {self.preset!r}; choose one of {list(PRESETS)}")
        if self.amp not in AMP_MODES:
            raise ConfigError(f"unknown --amp {self.amp!r}; choose one of {list(AMP_MODES)}")
        if isinstance(self.data, str):  # a relative folder, recorded as the folder it names
            self.data = absolute_spec(self.data)
        for name in ("batch_size", "save_every", "log_every", "epochs", "num_workers"):
            if getattr(self, name) is not None:  # named as given on the command line and from Python
                setattr(self, name, check_whole(getattr(self, name), f"--{name.replace('_', '-')} (Python: {name}=)",
                                                minimum=0 if name == "num_workers" else 1))
        if self.lr is not None and not 0 < self.lr < math.inf:
            raise ConfigError(f"--lr must be a positive finite number, got {self.lr}")
        if self.lr is not None and isinstance(self.hparams, dict) and "base_lr" in self.hparams:
            raise ConfigError("give either --lr (the peak rate) or --set base_lr (per 256 images), not both")
        self.seed = check_seed(self.seed)
        if not isinstance(self.hparams, dict):
            raise ConfigError(f"hparams must be a dict, got {type(self.hparams).__name__}")
        if self.method == "hybrid":
            if "lam" in self.hparams:
                raise ConfigError("the hybrid's lambda is set by --lambda (Python lam=), not --set lam")
            objective_class("hybrid").resolve_hparams(self.hparams)  # its parts are read before it is built
        given = {**self.hparams, "lam": self.lam} if self.method == "hybrid" else self.hparams
        least = objective_class(self.method).least_batch_size(given)
        if self.batch_size is not None and self.batch_size < least:
            raise ConfigError(f"--batch-size {self.batch_size}: {self.method}'s heads normalise over the batch "
                              f"(BatchNorm), which needs at least {least} images per step and process; "
                              f"use --batch-size {least} or more")

    def _check_types(self) -> None:
        """Text options are non-empty strings (arch and preset may be None); lr and lam are
        numbers or None (a YAML config can hold anything)."""
        for name in ("method", "data", "out", "amp", "device", "arch", "preset"):
            value = getattr(self, name)
            if not (isinstance(value, str) and value) and not (value is None and name in ("arch", "preset")):
                raise ConfigError(f"{name} must be a non-empty string, got {value!r}")
        for name in ("lr", "lam"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise ConfigError(f"{name} must be a number, got {value!r}")

    @property
    def preset_name(self) -> str | None:
        """The preset in use: the given one, else "tiny" when no --arch is given; None for --arch."""
        if self.arch is not None:
            return None
        return self.preset or "tiny"

    def arch_spec(self) -> ArchSpec | None:
        """The preset's ArchSpec (MoCo v3's ViT-S has 12 heads); None for a timm --arch."""
        name = self.preset_name
        if name is None:
            return None
        p = PRESETS[name]
        heads = 12 if (name == "vit_s16" and self.method == "mocov3") else p.num_heads
        return ArchSpec(family="vit", patch_size=p.patch_size, embed_dim=p.embed_dim,
                        depth=p.depth, num_heads=heads, img_size=p.img_size)

    def objective_hparams(self) -> dict[str, Any]:
        """The objective's hyper-parameters: the preset's sizes, then ``hparams`` on top
        (a hybrid gets the sizes of its MIM and CL parts in ``mim_hparams``/``cl_hparams``)."""
        sizes = PRESET_HPARAMS.get(self.preset_name or "", {})
        if self.method != "hybrid":
            return {**sizes.get(self.method, {}), **self.hparams}
        mim, cl = self.hparams.get("mim", "simmim"), self.hparams.get("cl", "mocov3")
        return {**sizes.get("hybrid", {}), **self.hparams, "lam": self.lam,
                "mim_hparams": {**sizes.get(mim, {}), **self.hparams.get("mim_hparams", {})},
                "cl_hparams": {**sizes.get(cl, {}), **self.hparams.get("cl_hparams", {})}}

    def resolved_hparams(self) -> dict[str, Any]:
        """What the objective trains with: :meth:`objective_hparams` resolved by its class
        (its defaults filled in, each value checked; ``Objective.resolve_hparams``)."""
        return objective_class(self.method).resolve_hparams(self.objective_hparams())

    def objective_revisions(self) -> dict[str, int]:
        """The ``revision`` of each objective the run trains with (a hybrid's parts as well)."""
        names = [self.method]
        if self.method == "hybrid":
            hybrid = objective_class("hybrid").defaults
            names += [self.hparams.get(part, hybrid[part]) for part in ("mim", "cl")]
        return {name: objective_class(name).revision for name in names}

    def total_epochs(self) -> int:
        """--epochs, else the preset's short default, else the published length."""
        if self.epochs is not None:
            return self.epochs
        name = self.preset_name
        if name is not None and PRESETS[name].epochs is not None:
            return PRESETS[name].epochs  # type: ignore[return-value]
        return objective_class(self.method).published_epochs


def read_train_config(path: Path) -> dict[str, Any]:
    """The training options a YAML file holds (keys: TrainConfig's fields; checked when the
    config is built), as ``analyses/train/*.yaml`` and ``vitprobe train --config`` use them."""
    return read_yaml_mapping(path, "training config",
                             "a training config is a YAML mapping of training options (vitprobe train --help)")


def saved_options(out: Path, given_all: bool = False) -> dict[str, Any]:
    """The options a training run in ``out`` recorded in its config.json (for a resume). Where
    config.json is missing or unreadable, those its checkpoint's header records (warned);
    where neither can be read, an error unless the caller gives the run's options
    (``given_all``: method and data at least), which the train state's own record then checks."""
    import json

    from vitprobe.train.checkpointing import recorded_options

    path = out / "config.json"
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        problem = None if isinstance(saved, dict) else "is not a mapping of training options"
    except (FileNotFoundError, NotADirectoryError):  # (out itself a file)
        problem = "is missing"
    except json.JSONDecodeError as err:
        problem = f"is not valid JSON ({brief_reason(err)})"
    except (OSError, UnicodeDecodeError) as err:
        problem = f"cannot be read ({brief_reason(err)})"
    if problem is None:
        return saved
    recorded = recorded_options(out)
    if recorded is not None:
        warn_user(f"--resume: {path} {problem}; resuming with the options that {recorded[0]} records")
        return recorded[1]
    if problem == "is missing" and not given_all:
        what = ("does not exist" if not out.exists() else "is a file, not a run folder" if not out.is_dir()
                else "holds no training run (no config.json)")
        raise ConfigError(f"--resume (Python: resume=True): {out} {what}; point --out (out=) at the folder of "
                          "the run to continue")
    if given_all:  # the options given stand in; the resume compares them with the train state
        if problem != "is missing":
            warn_user(f"--resume: {path} {problem}; resuming with the options given")
        return {}
    raise ConfigError(f"--resume: {path} {problem}; repeat the run's options (--method, --data, ...) "
                      "on the command line, with --config FILE, or in the config given to train()")


def resumed_base(given: dict[str, Any]) -> dict[str, Any]:
    """The options the run in ``given``'s out recorded (its config.json), their names checked,
    refusing another method or model (``arch``/``preset``) before its hyper-parameters or
    weights fail to fit; errors in the file name it."""
    out = Path(given.get("out", TrainConfig.out))
    base = saved_options(out, given_all={"method", "data"} <= set(given))
    base = {**base, "out": str(out)} if base else base  # the folder read, wherever the run was when saved
    if "method" in given and base.get("method") not in (None, given["method"]):  # before its hparams fail to fit
        raise ConfigError(f"--resume: the run in {out} trains {base['method']}, not {given['method']}; resume "
                          "without --method (Python: method=) or start a new --out")
    try:
        TrainConfig.check_names(base, method=given.get("method"))
    except ConfigError as err:
        raise ConfigError(f"{out / 'config.json'}: {err}") from None
    model = {k: base[k] for k in ("arch", "preset") if base.get(k) is not None}
    other = {k: given[k] for k in ("arch", "preset") if k in given and base.get(k) != given[k]}
    if other and model:  # (a damaged config.json gave none: the train state checks them)
        raise ConfigError(f"--resume: the run in {out} trains "
                          + ", ".join(f"--{k} {v}" for k, v in model.items())
                          + f", not {', '.join(f'--{k} {v}' for k, v in other.items())}; resume without "
                          "it or start a new --out")
    return base


def layered_options(base: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """``given`` over ``base``, ``hparams`` merged key by key (where ``base``'s are not a
    mapping they stay, for TrainConfig to refuse, not to be replaced unseen)."""
    options = {**base, **given}
    earlier, added = base.get("hparams"), given.get("hparams")
    if isinstance(earlier, dict) and isinstance(added, dict):
        options["hparams"] = {**earlier, **added}
    elif earlier is not None and not isinstance(earlier, dict):
        options["hparams"] = earlier
    return options


def resumed_options(given: dict[str, Any]) -> dict[str, Any]:
    """The options of a run resumed with only some given (``train({"out": DIR}, resume=True)``,
    ``vitprobe train --resume --out DIR``): the run's config.json with the given ones over it."""
    return layered_options(resumed_base(given), given)


def resolve_optim(config: TrainConfig, hparams: dict[str, Any]) -> dict[str, Any]:
    """The optimisation settings in force, from the objective's resolved ``hparams``.

    A short preset warms up for a tenth of the run in whole epochs, at least one (none in a
    one-epoch run): ``max(1, epochs // 10)``, unless ``hparams`` were given a ``warmup_epochs``;
    a published recipe keeps its own warm-up, which must be shorter than the run.
    ``weight_decay_end`` None means constant weight decay. ``lr_drop`` (SimMIM's) = (fraction of
    the run, factor): a constant learning rate after the warm-up, times factor from that point.
    ``warmup_lr`` (SimMIM's; 0 where an objective has none) is where the warm-up starts, per 256
    images as ``base_lr``.
    """
    epochs = config.total_epochs()
    warmup = hparams.get("warmup_epochs") or 0
    name = config.preset_name
    if "warmup_epochs" not in config.hparams and name and PRESETS[name].epochs is not None:
        warmup = max(1, epochs // 10) if epochs > 1 else 0
    if not 0 <= int(warmup) < epochs:
        fix = "--set warmup_epochs=0" if epochs == 1 else f"--set warmup_epochs=N with 0 <= N < {epochs}"
        raise ConfigError(f"warm-up of {plural(int(warmup), 'epoch')} does not fit in "
                          f"{plural(epochs, 'epoch')}; pass {fix}")
    wd = float(hparams.get("weight_decay") or 0.0)
    wd_end = hparams.get("weight_decay_end")
    lr_drop = hparams.get("lr_drop")
    if lr_drop is not None:
        _check_lr_drop(tuple(lr_drop), hparams.get("min_lr"), int(warmup), epochs)
    warmup_lr = float(hparams.get("warmup_lr") or 0.0)
    if warmup_lr > float(hparams["base_lr"]):
        raise ConfigError(f"warmup_lr {warmup_lr:g} exceeds base_lr {hparams['base_lr']:g}, the rate its warm-up "
                          f"rises to; pass --set warmup_lr=V with V <= {hparams['base_lr']:g}")
    return {"base_lr": float(hparams["base_lr"]), "warmup_lr": warmup_lr,
            "min_lr": float(hparams.get("min_lr") or 0.0),
            "lr_drop": None if lr_drop is None else tuple(float(v) for v in lr_drop),
            "warmup_epochs": int(warmup), "weight_decay": wd,
            "weight_decay_end": wd if wd_end is None else float(wd_end),
            "momentum": hparams.get("momentum"), "clip_grad": hparams.get("clip_grad") or None,
            "betas": tuple(hparams.get("betas") or (0.9, 0.999))}


def _check_lr_drop(lr_drop: tuple[float, float], min_lr: float | None, warmup: int, epochs: int) -> None:
    """A drop must fall after the warm-up, and it replaces the cosine decay to ``min_lr``."""
    if min_lr:
        raise ConfigError(f"min_lr {min_lr:g} is the end of a cosine decay, but lr_drop {list(lr_drop)} keeps "
                          "the learning rate constant until one drop; pass --set lr_drop=null to decay "
                          "to min_lr by a cosine, or leave min_lr out")
    if lr_drop[0] * epochs <= warmup:
        raise ConfigError(f"lr_drop at {lr_drop[0]:g} of {plural(epochs, 'epoch')} falls inside the warm-up of "
                          f"{plural(warmup, 'epoch')}; pass --set lr_drop=[F,{lr_drop[1]:g}] with F > "
                          f"{warmup / epochs:.3g}, or a shorter --set warmup_epochs")
