"""Heads and sizes inferred from shapes (on 'meta' tensors) and checkpoint metadata."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import pytest
import timm
import torch
from official_layouts import dino_args
from safetensors.torch import save_file

from vitprobe.errors import CheckpointError, ConfigError
from vitprobe.models import ArchSpec, build_model, load_model
from vitprobe.models.architecture import arch_from_timm
from vitprobe.models.loading import interpret
from vitprobe.models.reading import RawCheckpoint


def _meta_state(spec: ArchSpec) -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        return build_model(spec).state_dict()


def _infer(obj, **kwargs):
    return interpret(RawCheckpoint(Path("x.pth"), "torch", obj), **kwargs)


@pytest.mark.parametrize("width,heads", [(192, 3), (384, 6), (768, 12), (1024, 16), (1280, 16), (256, 4)])
def test_heads_by_width(width, heads):
    spec = ArchSpec(patch_size=16, embed_dim=width, depth=1, num_heads=heads, img_size=224)
    assert _infer(_meta_state(spec)).spec == spec


def test_moco_v3_vit_small_has_12_heads():
    spec = ArchSpec(patch_size=16, embed_dim=384, depth=12, num_heads=12, img_size=224)
    sd = {f"module.base_encoder.{k}": v for k, v in _meta_state(spec).items()}
    it = _infer({"arch": "vit_small", "state_dict": sd})
    assert it.format == "mocov3" and it.spec == spec
    assert it.report["num_heads_from"] == "MoCo v3 arch 'vit_small'"


def test_dino_args_give_heads_and_patch():
    spec = ArchSpec(patch_size=8, embed_dim=384, depth=12, num_heads=6, img_size=224)
    sd = {f"backbone.{k}": v for k, v in _meta_state(spec).items()}
    it = _infer({"teacher": sd, "args": dino_args("vit_small", 8)})
    assert it.spec == spec and it.report["num_heads_from"] == "DINO args.arch 'vit_small'"
    with pytest.raises(CheckpointError, match="metadata says patch size 16 but the patch embedding kernel is 8"):
        _infer({"teacher": sd, "args": dino_args("vit_small", 16)})
    with pytest.warns(UserWarning, match=r"--num-heads 12 .* overrides checkpoint .*: its DINO args.arch "
                                         r"'vit_small' names 6 heads"):  # silently, before
        assert _infer({"teacher": sd, "args": dino_args("vit_small", 8)}, num_heads=12).spec.num_heads == 12


def test_sit_args_model_gives_heads_and_depth():
    """SiT names its ViT in ``args.model`` (DINO: ``args.arch``), from the same vit_tiny/small/base."""
    spec = ArchSpec(patch_size=16, embed_dim=384, depth=12, num_heads=6, img_size=224)

    def sit(spec: ArchSpec, model: str) -> dict:
        net = {**{f"module.backbone.{k}": v for k, v in _meta_state(spec).items()},
               "module.head_recons.mlp.0.weight": torch.zeros(8, spec.embed_dim, device="meta")}
        return {"teacher": net, "student": net, "args": argparse.Namespace(model=model, epochs=800)}

    it = _infer(sit(spec, "vit_small"))
    assert it.format == "sit" and it.spec == spec
    assert it.report["num_heads_from"] == "SiT args.model 'vit_small'" and it.report["args.model"] == "vit_small"
    assert _infer(sit(spec.replace(num_heads=4), "vit_d384_h4")).spec.num_heads == 4
    with pytest.raises(CheckpointError, match=r"SiT args.model 'vit_small' has 12 blocks but the weights hold 11"):
        _infer(sit(spec.replace(depth=11), "vit_small"))


@pytest.mark.parametrize("obj, named", [
    (lambda sd: {"teacher": {f"backbone.{k}": v for k, v in sd.items()}, "args": dino_args("vit_small", 16)},
     "DINO args.arch 'vit_small' has 12 blocks"),
    (lambda sd: {"arch": "vit_small", "state_dict": {f"module.base_encoder.{k}": v for k, v in sd.items()}},
     "MoCo v3 arch 'vit_small' has 12 blocks"),
    (lambda sd: {"model": sd, "args": {"model": "vit_small"}}, None),  # not an MAE name: depth is open
])
def test_a_file_short_of_the_blocks_its_named_architecture_has_is_refused(obj, named):
    """A published architecture name fixes the depth: a file of a ViT-S with its last block
    missing is truncated, not a shallower model."""
    spec = ArchSpec(patch_size=16, embed_dim=384, depth=11, num_heads=6, img_size=224)
    if named is None:
        assert _infer(obj(_meta_state(spec))).spec.depth == 11
        return
    with pytest.raises(CheckpointError, match=rf"x.pth: {named} but the weights hold 11 \(blocks.0-10\); "
                                              "the file is truncated or inconsistent"):
        _infer(obj(_meta_state(spec)))


def test_mae_names_set_the_depth_of_their_width():
    large = ArchSpec(patch_size=16, embed_dim=1024, depth=24, num_heads=16, img_size=224)
    assert _infer({"model": _meta_state(large), "args": {"model": "mae_vit_large_patch16"}}).spec == large
    with pytest.raises(CheckpointError, match="MAE args.model 'mae_vit_large_patch16' has 24 blocks but the "
                                              "weights hold 12"):
        _infer({"model": _meta_state(large.replace(depth=12)), "args": {"model": "mae_vit_large_patch16"}})


def test_num_heads_overrides_and_image_size_from_grid():
    spec = ArchSpec(patch_size=14, embed_dim=384, depth=2, num_heads=12, img_size=518, reg_tokens=4,
                    qkv_bias=False, layer_scale=0.1, mlp_ratio=2.0)
    it = _infer(_meta_state(spec), num_heads=12)
    assert it.spec == spec and it.report["num_heads_from"] == "given (--num-heads; Python num_heads=)"


def test_arch_from_timm_rebuilds_the_same_encoder():
    spec = arch_from_timm("vit_small_patch16_224")
    assert (spec.patch_size, spec.embed_dim, spec.depth, spec.num_heads, spec.img_size) == \
        (16, 384, 12, 6, 224)
    with pytest.raises(ConfigError, match="not a timm model"):
        arch_from_timm("no_such_model")
    with pytest.raises(ConfigError, match="is a VisionTransformerDistilled, not a timm VisionTransformer"):
        arch_from_timm("deit_tiny_distilled_patch16_224")
    with pytest.raises(ConfigError, match="not what vitprobe's ViT builder makes .*timm's model has norm_pre"):
        arch_from_timm("vit_base_patch32_clip_224")  # CLIP's pre-norm
    with pytest.raises(ConfigError, match="the builder's has cls_token"):
        arch_from_timm("vit_medium_patch16_reg4_gap_256")  # no class token
    with pytest.raises(ConfigError, match=r"timm's model has pos_embed \(1, 1369, 384\); the builder's has pos_embed "
                                          r"\(1, 1374, 384\): its position embedding leaves out the class and "
                                          r"register tokens \(no_embed_class\)\); use a plain vit_\* model, e\.g\. "):
        arch_from_timm("vit_small_patch14_reg4_dinov2")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # reading the layer scale leaks no autograd warning
        assert arch_from_timm("vit_small_patch14_dinov2").layer_scale is not None
    with torch.device("meta"):  # ViT-g/14 (1408 wide, MLP 6144): built without weights
        assert arch_from_timm("vit_giant_patch14_224").mlp_ratio == 6144 / 1408


def test_load_model_takes_a_timm_name_for_arch(tmp_path):
    encoder = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0)
    save_file(encoder.state_dict(), str(tmp_path / "tiny.safetensors"))
    model = load_model(tmp_path / "tiny.safetensors", arch="vit_tiny_patch16_224")
    assert all(torch.equal(v, encoder.state_dict()[k]) for k, v in model.state_dict().items())
    assert model.vitprobe_info["report"]["num_heads_from"] == "given (arch=)"
    with pytest.raises(ConfigError, match="'resnet18' is a ResNet, not a timm VisionTransformer"):
        load_model(tmp_path / "tiny.safetensors", arch="resnet18")
