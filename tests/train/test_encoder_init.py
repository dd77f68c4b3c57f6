"""The references' encoder set-ups: MoCo v3's and MAE's frozen 2-D sin-cos positions in each
one's channel layout, Xavier bounds that tell Q, K, V apart (MoCo v3) from one fused qkv map
(MAE); DINO's and SiT's class token, and SiT's head initialisation."""

from __future__ import annotations

import math

import pytest
import torch

from vitprobe.errors import ConfigError
from vitprobe.models.architecture import ArchSpec, build_model
from vitprobe.train.engine import param_groups
from vitprobe.train.heads import sincos_pos_embed_2d
from vitprobe.train.objectives import StepInfo, get_objective
from vitprobe.train.objectives._encoder_init import xavier_weights

ARCH = ArchSpec(img_size=32, patch_size=4, embed_dim=32, depth=2, num_heads=2)
SMALL = {
    "mocov3": dict(proj_hidden_dim=64, pred_hidden_dim=64, out_dim=16),
    "mae": dict(decoder_dim=32, decoder_depth=1, decoder_heads=2),
    "dino": dict(out_dim=64, head_hidden_dim=64, head_bottleneck_dim=16, n_local=2),
    "gmml": dict(proj_hidden_dim=64, out_dim=16),
}
STEP = StepInfo(epoch=1, step=10, steps_per_epoch=10, total_steps=100, progress=0.1)


def build(name: str, arch: ArchSpec = ARCH, **extra: object):
    torch.manual_seed(0)
    return get_objective(name, build_model(arch).train(), arch, **{**SMALL.get(name, {}), **extra}).train()


def written_out_positions(dim: int, side: int, rows_first: bool) -> torch.Tensor:
    """Token (r, c) of a side x side grid, raster order: [sin(a w), cos(a w), sin(b w), cos(b w)]
    with (a, b) = (r, c) if rows_first else (c, r), w_i = 10000^(-4 i / dim)."""
    omega = [10000 ** (-4 * i / dim) for i in range(dim // 4)]
    rows = []
    for r in range(side):
        for c in range(side):
            a, b = (r, c) if rows_first else (c, r)
            rows.append([math.sin(a * w) for w in omega] + [math.cos(a * w) for w in omega]
                        + [math.sin(b * w) for w in omega] + [math.cos(b * w) for w in omega])
    return torch.tensor(rows)


@pytest.mark.parametrize("rows_first", [True, False])
def test_sincos_positions_match_the_written_out_formula(rows_first: bool) -> None:
    got = sincos_pos_embed_2d(16, (5, 5), rows_first=rows_first)
    torch.testing.assert_close(got, written_out_positions(16, 5, rows_first), atol=1e-6, rtol=0)


@pytest.mark.parametrize("name, rows_first", [("mocov3", True), ("mae", False)])
def test_reference_encoder_has_frozen_sincos_positions_that_training_leaves_alone(name: str, rows_first: bool) -> None:
    """Zero at the class token, the reference's layout on the patches, outside every optimiser group,
    and the same after an optimiser step (and in the momentum encoder, for MoCo v3)."""
    obj = build(name)
    expected = torch.cat([torch.zeros(1, 32), written_out_positions(32, 8, rows_first)]).unsqueeze(0)
    torch.testing.assert_close(obj.encoder.pos_embed.detach(), expected, atol=1e-6, rtol=0)
    assert not obj.encoder.pos_embed.requires_grad
    trained = {id(p) for group in param_groups(obj) for p in group["params"]}
    assert id(obj.encoder.pos_embed) not in trained
    before_blocks = obj.encoder.blocks[0].attn.qkv.weight.detach().clone()
    optimizer = torch.optim.AdamW(param_groups(obj), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    views = torch.utils.data.default_collate([obj.views(torch.randn(3, 32, 32, generator=g), g) for _ in range(4)])
    loss, _ = obj(views, STEP)
    loss.backward()
    optimizer.step()
    assert not torch.equal(obj.encoder.blocks[0].attn.qkv.weight, before_blocks)  # the step did train
    torch.testing.assert_close(obj.encoder.pos_embed.detach(), expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(obj.export_encoder().state_dict()["pos_embed"], expected, atol=1e-6, rtol=0)
    if name == "mocov3":
        torch.testing.assert_close(obj.momentum_encoder.pos_embed, expected, atol=1e-6, rtol=0)


def largest(t: torch.Tensor) -> float:
    return float(t.detach().abs().max())


def test_mocov3_encoder_takes_q_k_v_apart_and_zeroes_the_projection_bias() -> None:
    """U(-a, a) with a = sqrt(6 / (C + C)) for qkv (each of Q, K, V a C x C map); 3 p^2 + C for the patch
    projection; fc1 as one map; class token ~ N(0, 1e-6^2). 3072 draws come within 5% of their bound."""
    enc = build("mocov3").encoder
    qkv_bound, fc1_bound = math.sqrt(6 / (32 + 32)), math.sqrt(6 / (32 + 128))
    assert 0.95 * qkv_bound < largest(enc.blocks[0].attn.qkv.weight) <= qkv_bound
    assert 0.95 * fc1_bound < largest(enc.blocks[1].mlp.fc1.weight) <= fc1_bound
    proj_bound = math.sqrt(6 / (3 * 4 * 4 + 32))
    assert 0.9 * proj_bound < largest(enc.patch_embed.proj.weight) <= proj_bound
    assert largest(enc.patch_embed.proj.bias) == 0.0 and largest(enc.blocks[0].attn.qkv.bias) == 0.0
    assert 0.0 < largest(enc.cls_token) < 1e-5


def test_mae_encoder_takes_qkv_as_one_map_and_keeps_the_projection_bias() -> None:
    """a = sqrt(6 / (3C + C)) for the fused qkv; class token ~ N(0, 0.02^2); the decoder's Linears Xavier too."""
    obj = build("mae")
    enc = obj.encoder
    qkv_bound = math.sqrt(6 / (96 + 32))
    assert 0.95 * qkv_bound < largest(enc.blocks[0].attn.qkv.weight) <= qkv_bound
    assert largest(enc.patch_embed.proj.bias) > 0.0
    assert 0.02 < largest(enc.cls_token) < 0.2
    pred_bound = math.sqrt(6 / (32 + 4 * 4 * 3))
    assert 0.95 * pred_bound < largest(obj.decoder.pred.weight) <= pred_bound


def test_xavier_weights_zero_every_linear_bias_and_leave_the_projection_bias() -> None:
    encoder = build_model(ARCH)
    with torch.no_grad():
        for p in encoder.parameters():
            p.fill_(1.0)
    xavier_weights(encoder, split_qkv=False)
    linear_biases = [m.bias for m in encoder.modules() if isinstance(m, torch.nn.Linear) and m.bias is not None]
    assert linear_biases and all(largest(b) == 0.0 for b in linear_biases)
    assert bool((encoder.patch_embed.proj.bias == 1.0).all())
    assert largest(encoder.patch_embed.proj.weight) < 1.0


@pytest.mark.parametrize("name", ["dino", "gmml"])
def test_dino_and_sit_draw_the_class_token_at_0_02_and_keep_timm_otherwise(name: str) -> None:
    obj = build(name)
    assert 0.01 < largest(obj.encoder.cls_token) < 0.2
    assert obj.encoder.pos_embed.requires_grad
    assert float(obj.encoder.blocks[0].attn.qkv.weight.detach().std()) < 0.03  # timm's truncated normal 0.02
    assert largest(build(name, encoder_init="timm").encoder.cls_token) < 1e-5


def test_gmml_heads_start_as_sits() -> None:
    """CLSHead and RECHead's Linears: N(0, 0.02^2) (std about 0.02); the last pixel map as SiT's
    ConvTranspose2d(32, 3, 4, stride 4): U(+-1/sqrt(3 * 4 * 4)), not a Linear's U(+-1/sqrt(32))."""
    obj = build("gmml")
    assert 0.015 < float(obj.projector[0].weight.detach().std()) < 0.025
    assert 0.015 < float(obj.decoder.proj[0].weight.detach().std()) < 0.025
    bound = 1 / math.sqrt(48)
    assert 0.95 * bound < largest(obj.decoder.proj[-1].weight) <= bound
    assert 0.8 * bound < largest(obj.decoder.proj[-1].bias) <= bound


@pytest.mark.parametrize("name", ["mocov3", "mae"])
def test_timm_encoder_init_keeps_the_learned_position_embedding(name: str) -> None:
    obj = build(name, encoder_init="timm")
    assert obj.encoder.pos_embed.requires_grad
    assert largest(obj.encoder.blocks[0].attn.qkv.weight) < 0.1  # timm: trunc_normal(std 0.02)


def test_sincos_positions_need_a_width_divisible_by_4() -> None:
    arch = ArchSpec(img_size=32, patch_size=4, embed_dim=18, depth=1, num_heads=3)
    with pytest.raises(ConfigError, match="divisible by 4, not 18.*--set encoder_init=timm"):
        build("mae", arch)
    assert build("mae", arch, encoder_init="timm").encoder.pos_embed.requires_grad


def test_hybrid_keeps_timm_set_up_unless_one_branch_asks_for_its_reference() -> None:
    """The hparams the checkpoint records (``in_force``) say what each branch was given."""
    small = dict(mim="mae", mim_hparams=SMALL["mae"], cl_hparams=SMALL["mocov3"])
    default = build("hybrid", **small)
    assert default.encoder.pos_embed.requires_grad
    assert default.hparams["mim_hparams"]["encoder_init"] == default.hparams["cl_hparams"]["encoder_init"] == "timm"
    assert default.hparams["cl_hparams"]["stop_grad_patch_embed"] is False
    one = build("hybrid", mim="mae", mim_hparams={**SMALL["mae"], "encoder_init": "reference"},
                cl_hparams=SMALL["mocov3"])
    assert not one.encoder.pos_embed.requires_grad
    assert one.hparams["mim_hparams"]["encoder_init"] == "reference"
    with pytest.raises(ConfigError, match="both branches \\(mae and mocov3\\).*share one encoder"):
        build("hybrid", mim="mae", mim_hparams={**SMALL["mae"], "encoder_init": "reference"},
              cl_hparams={**SMALL["mocov3"], "encoder_init": "reference"})


def test_simmim_trains_its_own_vit_initialised_as_its_code_does() -> None:
    """SimMIM's ViT-B config (USE_APE False, USE_SHARED_RPB True, INIT_VALUES 0.1) in timm's BEiT
    layout: no absolute positions, one zero-initialised relative position bias for all blocks,
    layer scale 0.1, Q and V biases only; Linears, patch projection, class and mask tokens drawn
    from N(0, 0.02^2) truncated at +-1 std (std 0.02 x 0.5396), biases 0, the attention and MLP
    output maps of block l then divided by sqrt(2 l)."""
    from timm.models.beit import Beit

    from vitprobe.train import TrainConfig
    from vitprobe.train.engine import resolve_arch

    config = TrainConfig(method="simmim", preset="tiny")
    arch = resolve_arch(config)
    assert (arch.family, arch.abs_pos_emb, arch.rel_pos_bias, arch.layer_scale) == ("beit", False, "shared", 0.1)
    assert (arch.embed_dim, arch.depth, arch.img_size) == (64, 4, 32)  # the preset's size
    obj = build("simmim", arch, **config.objective_hparams())
    enc = obj.encoder
    assert isinstance(enc, Beit) and enc.pos_embed is None
    assert torch.count_nonzero(enc.rel_pos_bias.relative_position_bias_table) == 0
    assert all(torch.all(b.gamma_1 == 0.1) and torch.all(b.gamma_2 == 0.1) for b in enc.blocks)
    cut = 0.02 * 0.5396  # the std of N(0, 1) truncated at +-1
    proj = enc.patch_embed.proj
    assert float(proj.weight.detach().std()) == pytest.approx(cut, rel=0.1) and torch.count_nonzero(proj.bias) == 0
    for weight in (proj.weight, enc.cls_token, obj.mask_token, enc.blocks[0].mlp.fc1.weight):
        assert float(weight.detach().abs().max()) <= 0.02
    assert float(enc.blocks[0].mlp.fc1.weight.detach().std()) == pytest.approx(cut, rel=0.05)
    first, last = (float(enc.blocks[i].attn.proj.weight.detach().std()) for i in (0, 3))
    assert first == pytest.approx(cut / math.sqrt(2), rel=0.1) and last / first == pytest.approx(0.5, rel=0.1)
    assert torch.count_nonzero(enc.blocks[0].attn.q_bias) == 0 and enc.blocks[0].attn.qkv.bias is None
    timm = resolve_arch(TrainConfig(method="simmim", preset="tiny", hparams={"encoder_init": "timm"}))
    assert timm == config.arch_spec() and timm.family == "vit"  # the preset's ViT, as before


def test_simmims_reference_vit_is_refused_in_a_hybrid_and_on_a_timm_encoder() -> None:
    with pytest.raises(ConfigError, match=r"its MIM branch \(simmim\) with encoder_init 'reference' trains a ViT of "
                                          r"its own.*keep encoder_init 'timm' in mim_hparams"):
        build("hybrid", mim="simmim", mim_hparams={"mask_patch_size": 8, "encoder_init": "reference"},
              cl_hparams=SMALL["mocov3"])
    assert build("hybrid", mim="simmim", mim_hparams={"mask_patch_size": 8},
                 cl_hparams=SMALL["mocov3"]).hparams["mim_hparams"]["encoder_init"] == "timm"
    with pytest.raises(ConfigError, match="trains SimMIM's ViT, a timm Beit.*--set encoder_init=timm"):
        build("simmim", mask_patch_size=8)  # a timm VisionTransformer handed to the reference set-up
    from vitprobe.train.objectives import objective_class

    with pytest.raises(ConfigError, match="no register tokens.*--set encoder_init=timm"):
        objective_class("simmim").encoder_arch(ARCH.replace(reg_tokens=4), {"encoder_init": "reference"})
