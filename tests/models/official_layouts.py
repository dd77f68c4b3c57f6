"""Checkpoints in each official layout, built from random tiny timm encoders.

Each builder nests an encoder state dict exactly as the published training code saves it:
the same key names and prefixes, the pickled ``args``/``config``, and the heads, decoders,
momentum encoders, optimiser and scaler states that real files carry. ``make_case`` returns
the file together with the encoder whose weights a loader must recover and the keys it must
drop.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import sys
import types
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import torch.nn as nn
from safetensors.torch import save_file

from vitprobe.models import ArchSpec, build_model, save_encoder

Tensors = dict[str, torch.Tensor]

VIT = ArchSpec(patch_size=8, embed_dim=128, depth=2, num_heads=2, img_size=32)
VIT_REG = VIT.replace(reg_tokens=4)
VIT_FINETUNED = VIT.replace(global_pool="avg", fc_norm=True, num_classes=10)
BEIT_SHARED = ArchSpec(family="beit", patch_size=8, embed_dim=128, depth=2, num_heads=4,
                       img_size=32, layer_scale=0.1, rel_pos_bias="shared", abs_pos_emb=False)
BEIT_PER_BLOCK = BEIT_SHARED.replace(rel_pos_bias="per_block", abs_pos_emb=True)


def random_encoder(spec: ArchSpec, seed: int = 0) -> nn.Module:
    """``build_model(spec)`` with every parameter moved off its init (so copies are distinct)."""
    torch.manual_seed(seed)
    model = build_model(spec)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


def _randomised(module: nn.Module, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * 0.02)
    return module


def _prefixed(prefix: str, sd: Tensors) -> Tensors:
    return {prefix + k: v for k, v in sd.items()}


def _adamw_state(module: nn.Module) -> dict[str, Any]:
    """A real AdamW state dict after one step (ints for parameter ids, tensors, floats)."""
    opt = torch.optim.AdamW(module.parameters(), lr=1e-3)
    for p in module.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    module.zero_grad(set_to_none=True)
    return opt.state_dict()


SCALER_STATE = {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5,
                "growth_interval": 2000, "_growth_tracker": 0}
"""What torch.cuda.amp.GradScaler.state_dict() holds."""


class _Wrap(nn.Module):
    """Stands for DistributedDataParallel: its state dict prefixes ``module.``."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module


class _Holder(nn.Module):
    """A module whose state dict is a given dict (to save hand-edited weights)."""

    def __init__(self, sd: Tensors) -> None:
        super().__init__()
        self._sd = sd

    def state_dict(self, *args: Any, destination: Any = None, prefix: str = "",
                   keep_vars: bool = False) -> Tensors:  # type: ignore[override]
        out = destination if destination is not None else {}
        out.update(_prefixed(prefix, self._sd))
        return out


# ---- DINO (facebookresearch/dino main_dino.py, vision_transformer.DINOHead, utils.MultiCropWrapper)

class _DinoHead(nn.Module):
    def __init__(self, dim: int, hidden: int = 48, bottleneck: int = 16, out_dim: int = 20) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, hidden),
                                 nn.GELU(), nn.Linear(hidden, bottleneck))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.last_layer = nn.utils.weight_norm(nn.Linear(bottleneck, out_dim, bias=False))


class _MultiCrop(nn.Module):
    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head


def dino_args(arch: str, patch_size: int) -> argparse.Namespace:
    """The argparse Namespace main_dino.py pickles (a representative subset of its fields)."""
    return argparse.Namespace(
        arch=arch, patch_size=patch_size, out_dim=20, norm_last_layer=True, momentum_teacher=0.996,
        use_bn_in_head=False, warmup_teacher_temp=0.04, teacher_temp=0.04, use_fp16=True,
        weight_decay=0.04, weight_decay_end=0.4, clip_grad=3.0, batch_size_per_gpu=64, epochs=100,
        freeze_last_layer=1, lr=0.0005, optimizer="adamw", global_crops_scale=(0.4, 1.0),
        local_crops_number=8, local_crops_scale=(0.05, 0.4), data_path="/data/imagenet/train",
        output_dir="./out", saveckp_freq=20, seed=0, num_workers=10, dist_url="env://",
        local_rank=0, rank=0, world_size=8, gpu=0)


def dino(encoder_sd: Tensors, spec: ArchSpec, path: Path) -> set[str]:
    teacher_backbone = _Holder(encoder_sd)
    student = _Wrap(_MultiCrop(_Holder({k: v + 1 for k, v in encoder_sd.items()}),
                               _randomised(_DinoHead(spec.embed_dim), 1)))
    teacher = _MultiCrop(teacher_backbone, _randomised(_DinoHead(spec.embed_dim), 2))
    torch.save({
        "student": student.state_dict(), "teacher": teacher.state_dict(),
        "optimizer": _adamw_state(student.module.head), "epoch": 3,
        "args": dino_args("vit_small", spec.patch_size),
        "dino_loss": {"center": torch.zeros(1, 20)}, "fp16_scaler": dict(SCALER_STATE),
    }, path)
    return set(_prefixed("head.", teacher.head.state_dict()))


def dino_network(encoder_sd: Tensors, spec: ArchSpec, path: Path) -> set[str]:
    """``torch.save(checkpoint["teacher"])``: one MultiCropWrapper saved alone (backbone.*, head.*)."""
    teacher = _MultiCrop(_Holder(encoder_sd), _randomised(_DinoHead(spec.embed_dim), 2))
    torch.save(teacher.state_dict(), path)
    return set(_prefixed("head.", teacher.head.state_dict()))


# ---- SiT (Sara-Ahmed/SiT main.py: FullPipline(backbone, CLSHead, RECHead), both DDP-wrapped)

class _SitPipeline(nn.Module):
    def __init__(self, backbone: nn.Module, dim: int, patch_size: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Sequential(nn.Linear(dim, 32), nn.GELU(), nn.Linear(32, 16))  # CLSHead.mlp
        self.head_recons = nn.Module()  # RECHead: an MLP, then a transposed convolution to pixels
        self.head_recons.mlp = nn.Sequential(nn.Linear(dim, 32), nn.GELU(), nn.Linear(32, dim))
        self.head_recons.convTrans = nn.ConvTranspose2d(dim, 3, kernel_size=patch_size, stride=patch_size)


def sit(encoder_sd: Tensors, spec: ArchSpec, path: Path) -> set[str]:
    teacher = _Wrap(_randomised(_SitPipeline(_Holder(encoder_sd), spec.embed_dim, spec.patch_size), 3))
    teacher.module.backbone = _Holder(encoder_sd)  # _randomised left the held weights alone; set them again
    student = _Wrap(_SitPipeline(_Holder({k: v + 1 for k, v in encoder_sd.items()}), spec.embed_dim,
                                 spec.patch_size))
    args = argparse.Namespace(model="vit_small", drop_path_rate=0.1, use_fp16=True, batch_size=32, epochs=800,
                              lr=0.0005, out_dim=256, simclr_temp=0.2, momentum_teacher=0.996,
                              output_dir="./out", gpu=0)
    torch.save({"student": student.state_dict(), "teacher": teacher.state_dict(),
                "optimizer": _adamw_state(student.module.head), "epoch": 5, "args": args,
                "fp16_scaler": dict(SCALER_STATE)}, path)
    heads = teacher.module
    return set(_prefixed("head.", heads.head.state_dict())) | set(_prefixed("head_recons.", heads.head_recons.state_dict()))


def sit_network(encoder_sd: Tensors, spec: ArchSpec, path: Path) -> set[str]:
    """``torch.save(student.state_dict())`` of SiT's DDP-wrapped pipeline saved alone (module.backbone.*)."""
    student = _Wrap(_randomised(_SitPipeline(_Holder(encoder_sd), spec.embed_dim, spec.patch_size), 4))
    student.module.backbone = _Holder(encoder_sd)
    torch.save(student.state_dict(), path)
    heads = student.module
    return set(_prefixed("head.", heads.head.state_dict())) | set(_prefixed("head_recons.", heads.head_recons.state_dict()))


# ---- MoCo v3 (facebookresearch/moco-v3 main_moco.py, moco/builder.py MoCo_ViT)

def _moco_mlp(layers: int, dim_in: int, hidden: int, dim_out: int) -> nn.Sequential:
    mods: list[nn.Module] = []
    for i in range(layers):
        d1 = dim_in if i == 0 else hidden
        d2 = dim_out if i == layers - 1 else hidden
        mods.append(nn.Linear(d1, d2, bias=False))
        if i < layers - 1:
            mods += [nn.BatchNorm1d(d2), nn.ReLU(inplace=True)]
        else:
            mods.append(nn.BatchNorm1d(d2, affine=False))
    return nn.Sequential(*mods)


def mocov3(encoder_sd: Tensors, spec: ArchSpec, path: Path, key: str = "base_encoder") -> set[str]:
    """``{"epoch", "arch", "state_dict": DDP(MoCo_ViT).state_dict(), "optimizer", "scaler"}``.

    Each encoder is the ViT whose ``head`` became the 3-layer BN projector; the predictor
    (2 layers) sits beside them. ``key`` says which of the two encoders holds ``encoder_sd``.
    """
    other = "base_encoder" if key == "momentum_encoder" else "momentum_encoder"
    projector = _randomised(_moco_mlp(3, spec.embed_dim, 32, 16), 7)
    predictor = _randomised(_moco_mlp(2, 16, 32, 16), 3)
    head = _prefixed("head.", projector.state_dict())
    sd = {**_prefixed(f"module.{key}.", {**encoder_sd, **head}),
          **_prefixed(f"module.{other}.", {**{k: v * 0.5 for k, v in encoder_sd.items()}, **head}),
          **_prefixed("module.predictor.", predictor.state_dict())}
    torch.save({"epoch": 3, "arch": "vit_small", "state_dict": sd,
                "optimizer": _adamw_state(predictor), "scaler": dict(SCALER_STATE)}, path)
    return (set(head) | set(_prefixed("predictor.", predictor.state_dict()))
            | {k[len("module."):] for k in sd if k.startswith(f"module.{other}.")})


def mocov3_momentum(encoder_sd: Tensors, spec: ArchSpec, path: Path) -> set[str]:
    return mocov3(encoder_sd, spec, path, key="momentum_encoder")


def mocov3_lincls(encoder_sd: Tensors, spec: ArchSpec, path: Path) -> set[str]:
    """main_lincls.py: ``{"epoch", "arch", "state_dict": DDP(vit).state_dict(), "best_acc1",
    "optimizer"}``, the frozen encoder with its ``head`` the trained linear classifier."""
    classifier = _randomised(nn.Linear(spec.embed_dim, 10), 8)
    head = _prefixed("head.", classifier.state_dict())
    torch.save({"epoch": 90, "arch": "vit_small", "state_dict": _prefixed("module.", {**encoder_sd, **head}),
                "best_acc1": 76.5, "optimizer": _adamw_state(classifier)}, path)
    return set(head)


# ---- MAE (facebookresearch/mae models_mae.MaskedAutoencoderViT, util/misc.save_model)

class _MaeDecoder(nn.Module):
    def __init__(self, spec: ArchSpec, dim: int = 64) -> None:
        super().__init__()
        from timm.models.vision_transformer import Block

        tokens = (spec.img_size // spec.patch_size) ** 2 + 1
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.decoder_embed = nn.Linear(spec.embed_dim, dim)
        self.decoder_pos_embed = nn.Parameter(torch.zeros(1, tokens, dim), requires_grad=False)
        self.decoder_blocks = nn.ModuleList([Block(dim, 2, qkv_bias=True)])
        self.decoder_norm = nn.LayerNorm(dim)
        self.decoder_pred = nn.Linear(dim, spec.patch_size ** 2 * 3)


def mae_args() -> argparse.Namespace:
    """The argparse Namespace main_pretrain.py pickles (a representative subset)."""
    return argparse.Namespace(model="mae_vit_base_patch16", input_size=32, mask_ratio=0.75,
                              norm_pix_loss=True, weight_decay=0.05, blr=1.5e-4, lr=None,
                              epochs=800, warmup_epochs=40, batch_size=64, accum_iter=1,
                              data_path="/data/imagenet", output_dir="./out", seed=0,
                              world_size=8, dist_url="env://")


def mae(encoder_sd: Tensors, spec: ArchSpec, path: Path) -> set[str]:
    decoder = _randomised(_MaeDecoder(spec), 4)
    torch.save({"model": {**encoder_sd, **decoder.state_dict()},
                "optimizer": _adamw_state(decoder), "epoch": 3, "scaler": dict(SCALER_STATE),
                "args": mae_args()}, path)
    return set(decoder.state_dict())


def mae_release(encoder_sd: Tensors, spec: ArchSpec, path: Path) -> set[str]:
    """The released mae_pretrain_vit_*.pth / fine-tuned files: ``{"model": encoder}`` only."""
    torch.save({"model": dict(encoder_sd)}, path)
    return set()


# ---- BEiT layout (microsoft/unilm beit, microsoft/SimMIM models/vision_transformer.py)

def index_buffers(spec: ArchSpec) -> Tensors:
    """The relative_position_index buffers that BEiT/SimMIM modules persist."""
    from timm.models.beit import gen_relative_position_index

    index = gen_relative_position_index(spec.grid)
    if spec.rel_pos_bias == "shared":
        return {"rel_pos_bias.relative_position_index": index}
    return {f"blocks.{i}.attn.relative_position_index": index.clone() for i in range(spec.depth)}


@contextlib.contextmanager
def fake_yacs() -> Iterator[type]:
    """A stand-in ``yacs.config.CfgNode`` (a dict subclass with __dict__ flags, as yacs has)."""

    class CfgNode(dict):
        def __init__(self, init: dict[str, Any] | None = None) -> None:
            super().__init__(init or {})
            self.__dict__["__immutable__"] = True
            self.__dict__["__deprecated_keys__"] = set()
            self.__dict__["__renamed_keys__"] = {}
            self.__dict__["__new_allowed__"] = False

    CfgNode.__module__, CfgNode.__qualname__ = "yacs.config", "CfgNode"
    package, module = types.ModuleType("yacs"), types.ModuleType("yacs.config")
    module.CfgNode = CfgNode  # type: ignore[attr-defined]
    package.config = module  # type: ignore[attr-defined]
    sys.modules.update({"yacs": package, "yacs.config": module})
    try:
        yield CfgNode
    finally:
        del sys.modules["yacs"], sys.modules["yacs.config"]


def simmim(encoder_sd: Tensors, spec: ArchSpec, path: Path) -> set[str]:
    mask_token = torch.randn(1, 1, spec.embed_dim)
    decoder = _randomised(nn.Sequential(nn.Conv2d(spec.embed_dim, 16 ** 2 * 3, 1), nn.PixelShuffle(16)), 5)
    model = {**_prefixed("encoder.", {**encoder_sd, "mask_token": mask_token, **index_buffers(spec)}),
             **_prefixed("decoder.", decoder.state_dict())}
    with fake_yacs() as CfgNode:
        config = CfgNode({"MODEL": CfgNode({"TYPE": "vit", "VIT": CfgNode({"EMBED_DIM": spec.embed_dim})}),
                          "DATA": CfgNode({"IMG_SIZE": spec.img_size}), "AMP_OPT_LEVEL": "O1"})
        torch.save({"model": model, "optimizer": _adamw_state(decoder),
                    "lr_scheduler": {"t_initial": 100, "warmup_t": 10, "lr_min": 1e-6},
                    "max_accuracy": 0.0, "epoch": 3, "config": config}, path)
    return {"mask_token", *_prefixed("decoder.", decoder.state_dict()), *index_buffers(spec)}


def beit(encoder_sd: Tensors, spec: ArchSpec, path: Path) -> set[str]:
    lm_head = _randomised(nn.Linear(spec.embed_dim, 64), 6)
    model = {**encoder_sd, "mask_token": torch.randn(1, 1, spec.embed_dim), **index_buffers(spec),
             **_prefixed("lm_head.", lm_head.state_dict())}
    args = argparse.Namespace(model="beit_base_patch16_224_8k_vocab", num_mask_patches=75,
                              layer_scale_init_value=0.1, rel_pos_bias=False,
                              shared_rel_pos_bias=True, abs_pos_emb=False, input_size=32)
    torch.save({"model": model, "optimizer": _adamw_state(lm_head), "epoch": 3,
                "scaler": dict(SCALER_STATE), "args": args}, path)
    return {"mask_token", *_prefixed("lm_head.", lm_head.state_dict()), *index_buffers(spec)}


# ---- plain state dicts and vitprobe's own format

def timm_pth(encoder_sd: Tensors, spec: ArchSpec, path: Path) -> set[str]:
    """A DINO backbone release (dino_deitsmall16_pretrain.pth): the backbone state dict itself."""
    torch.save(dict(encoder_sd), path)
    return set()


def timm_ddp(encoder_sd: Tensors, spec: ArchSpec, path: Path) -> set[str]:
    """``torch.save(ddp_model.state_dict())``: the encoder's keys under ``module.``."""
    torch.save(_Wrap(_Holder(encoder_sd)).state_dict(), path)
    return set()


def timm_ddp_compiled(encoder_sd: Tensors, spec: ArchSpec, path: Path) -> set[str]:
    """``torch.save(ddp(torch.compile(model)).state_dict())``: keys under ``module._orig_mod.``."""
    torch.save(_prefixed("module._orig_mod.", encoder_sd), path)
    return set()


def timm_train(encoder_sd: Tensors, spec: ArchSpec, path: Path, key: str = "state_dict",
               arch: str = "hf-hub:someone/tiny-vit", model_kwargs: dict | None = None) -> set[str]:
    """timm train.py (``CheckpointSaver._save``): ``epoch``, ``arch`` (= ``args.model``),
    ``optimizer``, ``version``, ``args``, ``amp_scaler``, ``state_dict`` and ``state_dict_ema``
    of the unwrapped model (``key`` says which holds ``encoder_sd``), ``metric``, ``saver``."""
    other = "state_dict_ema" if key == "state_dict" else "state_dict"
    args = argparse.Namespace(model=arch, model_kwargs=dict(model_kwargs or {}), lr=5e-4, epochs=300, model_ema=True, amp=True,
                              device="cuda:0", input_size=None, mean=None, drop_path=0.1)
    torch.save({"epoch": 3, "arch": arch, "optimizer": _adamw_state(nn.Linear(spec.embed_dim, 10)), "version": 2,
                "args": args, "amp_scaler": dict(SCALER_STATE), key: dict(encoder_sd),
                other: {k: v * 0.5 for k, v in encoder_sd.items()}, "metric": 71.5,
                "saver": {"checkpoint_files": [("checkpoint-2.pth.tar", 70.1)], "best_epoch": 2,
                          "best_metric": 70.1, "pending": (3, 71.5)}}, path)
    return set()


def timm_train_ema(encoder_sd: Tensors, spec: ArchSpec, path: Path) -> set[str]:
    return timm_train(encoder_sd, spec, path, key="state_dict_ema")


def timm_safetensors(encoder_sd: Tensors, spec: ArchSpec, path: Path) -> set[str]:
    save_file({k: v.contiguous() for k, v in encoder_sd.items()}, str(path))
    return set()


def vitprobe_own(encoder_sd: Tensors, spec: ArchSpec, path: Path) -> set[str]:
    save_encoder(path, _Holder(encoder_sd), spec, {"objective": "mae", "epoch": 3, "step": 30})
    return set()


@dataclass(frozen=True)
class Case:
    """One official layout: which registered format reads it, how to write it, what it holds."""

    id: str
    format: str
    write: Callable[[Tensors, ArchSpec, Path], set[str]]
    spec: ArchSpec
    suffix: str = ".pth"
    load_kwargs: dict[str, Any] = field(default_factory=dict)


CASES = [
    Case("timm-pth", "timm", timm_pth, VIT),
    Case("timm-safetensors-registers", "timm", timm_safetensors, VIT_REG, ".safetensors"),
    Case("timm-ddp", "timm", timm_ddp, VIT),
    Case("timm-ddp-compiled", "timm", timm_ddp_compiled, VIT),
    Case("timm-train", "timm", timm_train, VIT, ".pth.tar"),
    Case("timm-train-ema", "timm", timm_train_ema, VIT, ".pth.tar", {"key": "state_dict_ema"}),
    Case("dino-teacher", "dino", dino, VIT),
    Case("dino-network", "dino", dino_network, VIT),
    Case("sit-teacher", "sit", sit, VIT),
    Case("sit-network", "sit", sit_network, VIT),
    Case("mocov3", "mocov3", mocov3, VIT, ".pth.tar"),
    Case("mocov3-momentum", "mocov3", mocov3_momentum, VIT, ".pth.tar",
         {"key": "momentum_encoder"}),
    Case("mocov3-lincls", "mocov3", mocov3_lincls, VIT, ".pth.tar"),
    Case("mae-training", "mae", mae, VIT),
    Case("mae-finetuned", "mae", mae_release, VIT_FINETUNED),
    Case("simmim", "simmim", simmim, BEIT_SHARED),
    Case("beit-shared", "beit", beit, BEIT_SHARED),
    Case("beit-per-block", "beit", beit, BEIT_PER_BLOCK),
    Case("vitprobe", "vitprobe", vitprobe_own, VIT, ".safetensors"),
]


@dataclass
class Made:
    """A written checkpoint, the encoder it holds and the remapped keys a loader must drop."""

    case: Case
    path: Path
    encoder: nn.Module
    dropped: set[str]


def make_case(case: Case, folder: Path, mutate: Callable[[Tensors], Tensors] | None = None,
              seed: int = 0) -> Made:
    """Write ``case`` under ``folder`` (weights passed through ``mutate`` first)."""
    encoder = random_encoder(case.spec, seed)
    sd = {k: v.detach().clone() for k, v in encoder.state_dict().items()}
    if mutate is not None:
        sd = mutate(sd)
    path = folder / f"{case.id}{case.suffix}"
    dropped = case.write(sd, case.spec, path)
    return Made(case, path, copy.deepcopy(encoder), dropped)
