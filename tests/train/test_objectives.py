"""Objectives: hand-computed losses, hybrid limits, schedules, EMA, gradient routing, and a few
optimiser steps of every registered objective on a tiny ViT (img 32, patch 4, width 32, depth 2)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import DropPath
from torch.utils.data import default_collate

from vitprobe.errors import ConfigError
from vitprobe.models.architecture import ArchSpec, build_model
from vitprobe.train.objectives import StepInfo, collapse_warnings, get_objective, list_objectives, objective_class
from vitprobe.distributed import all_reduce_mean, concat_all_gather
from vitprobe.train.objectives._vit import cls_features, encode, set_drop_path
from vitprobe.train.objectives._infonce import embedding_std, info_nce
from vitprobe.train.objectives.dino import dino_loss, entropy
from vitprobe.train.objectives.gmml import corrupt
from vitprobe.train.objectives.mae import masked_mse, patchify
from vitprobe.train.objectives.simmim import masked_l1
from vitprobe.train.engine import param_groups
from vitprobe.train.heads import DINOHead, MAEDecoder, sincos_pos_embed_2d


@pytest.mark.parametrize("method,given,text", [
    ("mae", {}, "MSE on the hidden patches' per-patch normalised pixels, mask ratio 0.75"),
    ("mae", {"norm_pix_loss": False, "mask_ratio": 0.5}, "MSE on the hidden patches' raw pixels, mask ratio 0.5"),
    ("simmim", {"mask_patch_size": 16}, "L1 on the masked patches' pixels, mask ratio 0.6 in 16-px mask patches"),
    ("mocov3", {"temperature": 0.5}, "InfoNCE x 2T, T 0.5, of the predictor's queries on the momentum keys, both "
                                     "view orders summed"),
    ("gmml", {"alpha": 2.0}, "2 x L1 on the corrupted pixels + InfoNCE x 2T, T 0.2, of the class tokens, both "
                             "view orders"),
    ("dino", {}, "cross-entropy of the student's distribution at T 0.1 on the teacher's centred one at "
                 "T 0.04 -> 0.07, over crop pairs"),
    ("dino", {"warmup_teacher_temp_epochs": 0}, "cross-entropy of the student's distribution at T 0.1 on the "
                                                "teacher's centred one at T 0.07, over crop pairs"),
    ("hybrid", {"lam": 0.25, "mim": "mae", "cl": "dino"}, "0.75 x the mae loss + 0.25 x the dino loss"),
])
def test_the_loss_is_described_under_the_hyper_parameters_in_force(method, given, text):
    """The summary after training names the loss as the run computed it (MAE's targets, the
    temperatures, the hybrid's weights), not as the defaults would."""
    objective = objective_class(method)
    assert objective.describe_loss(objective.resolve_hparams(given)) == text

ARCH = ArchSpec(img_size=32, patch_size=4, embed_dim=32, depth=2, num_heads=2)
SMALL = {
    "dino": dict(out_dim=64, head_hidden_dim=64, head_bottleneck_dim=16, n_local=2),
    "mocov3": dict(proj_hidden_dim=64, pred_hidden_dim=64, out_dim=16),
    "mae": dict(decoder_dim=32, decoder_depth=1, decoder_heads=2),
    "simmim": dict(mask_patch_size=8),
    "gmml": dict(proj_hidden_dim=64, out_dim=16),
    "hybrid": dict(mim_hparams=dict(mask_patch_size=8),
                   cl_hparams=dict(proj_hidden_dim=64, pred_hidden_dim=64, out_dim=16)),
}
STEP = StepInfo(epoch=1, step=10, steps_per_epoch=10, total_steps=100, progress=0.1)


def build(name: str, seed: int = 0, **extra: object):
    """The objective around the encoder it trains at ARCH's size (SimMIM's reference: its own ViT)."""
    hparams = {**SMALL[name], **extra}
    arch = objective_class(name).encoder_arch(ARCH, objective_class(name).resolve_hparams(hparams))
    torch.manual_seed(seed)
    return get_objective(name, build_model(arch).train(), arch, **hparams).train()


def batch_of_views(obj, n: int = 8, seed: int = 0) -> dict[str, torch.Tensor]:
    """Views of n smooth random images (a 4 x 4 noise grid upsampled), so that pixels are predictable."""
    coarse = torch.randn(n, 3, 4, 4, generator=torch.Generator().manual_seed(100 + seed))
    images = F.interpolate(coarse, size=32, mode="bilinear", align_corners=False)
    g = torch.Generator().manual_seed(seed)
    return default_collate([obj.views(im, g) for im in images])


# ---------------------------------------------------------------- hand-computed losses

def _softmax(v: list[float]) -> list[float]:
    e = [math.exp(x) for x in v]
    return [x / sum(e) for x in e]


def test_dino_loss_by_hand() -> None:
    teacher = [[2.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
    student = teacher + [[1.0, 1.0, -1.0]]  # two global crops, then one local crop
    center = [0.5, 0.0, 0.5]
    tt, ts = 0.5, 0.25
    p = [_softmax([(a - c) / tt for a, c in zip(t, center)]) for t in teacher]
    logq = [[math.log(x) for x in _softmax([a / ts for a in s])] for s in student]
    pairs = [(i, v) for i in range(2) for v in range(3) if v != i]
    expected = sum(-sum(pi * qi for pi, qi in zip(p[i], logq[v])) for i, v in pairs) / len(pairs)
    got, probs = dino_loss([torch.tensor([s]) for s in student], [torch.tensor([t]) for t in teacher],
                           torch.tensor([center]), ts, tt)
    assert math.isclose(float(got), expected, rel_tol=1e-6)
    assert torch.allclose(probs[:, 0], torch.tensor(p), atol=1e-6)


def test_entropy_known_values() -> None:
    assert math.isclose(float(entropy(torch.full((8,), 1 / 8))), math.log(8), rel_tol=1e-6)
    assert float(entropy(torch.tensor([1.0, 0.0, 0.0]))) == 0.0


def test_info_nce_by_hand() -> None:
    q = torch.tensor([[3.0, 0.0], [0.0, 0.5]])  # normalised inside
    k = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    t = 0.5
    # logits = I / T; each row: CE = log(1 + e^{-1/T}); scaled by 2T = 1
    assert math.isclose(float(info_nce(q, k, t)), math.log(1 + math.exp(-1 / t)) * 2 * t, rel_tol=1e-6)
    k_swapped = k.flip(0)  # positives now orthogonal: CE = log(1 + e^{1/T})
    assert math.isclose(float(info_nce(q, k_swapped, t)), math.log(1 + math.exp(1 / t)) * 2 * t, rel_tol=1e-6)
    t = 0.2  # where the 2T scale is not 1
    assert math.isclose(float(info_nce(q, k, t)), 0.4 * math.log(1 + math.exp(-5)), rel_tol=1e-6)


def test_embedding_std_healthy_and_collapsed() -> None:
    eye = torch.eye(4)
    # columns of normalised one-hot rows: values {1, 0, 0, 0}, unbiased std = sqrt(1/4)
    assert math.isclose(embedding_std(eye), math.sqrt(0.25), rel_tol=1e-6)
    assert embedding_std(torch.ones(5, 4)) == 0.0


def test_patchify_layout() -> None:
    img = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    p = patchify(img, 4)
    assert p.shape == (2, 4, 48)
    # patch 1 = row 0, col 1: pixels [0:4, 4:8]; entry (r, c, ch) at index (r * 4 + c) * 3 + ch
    assert float(p[1, 1, (2 * 4 + 3) * 3 + 2]) == float(img[1, 2, 2, 4 + 3])


def test_masked_mse_by_hand() -> None:
    target = torch.tensor([[[0.0, 2.0], [1.0, 1.0], [4.0, 0.0]]])  # (B=1, N=3, D=2)
    pred = torch.zeros_like(target)
    mask = torch.tensor([[True, False, True]])
    # raw: patch 0 -> (0 + 4) / 2 = 2, patch 2 -> (16 + 0) / 2 = 8; mean over masked = 5
    assert math.isclose(float(masked_mse(pred, target, mask, norm_pix=False)), 5.0, rel_tol=1e-6)
    # normalised: each masked patch becomes +-d / sqrt(var + 1e-6), var unbiased = 2 d^2 with
    # d = half the spread, so the per-patch MSE is var/2 / (var + 1e-6)
    v0, v2 = 2.0, 8.0
    expected = ((v0 / 2) / (v0 + 1e-6) + (v2 / 2) / (v2 + 1e-6)) / 2
    assert math.isclose(float(masked_mse(pred, target, mask, norm_pix=True)), expected, rel_tol=1e-6)


def test_masked_l1_by_hand() -> None:
    target = torch.zeros(1, 3, 4, 4)
    target[0, 0] = 1.0
    target[0, 2, :2] = -3.0
    pred = torch.zeros_like(target)
    mask = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    mask[0, 0, :2, :2] = True  # 4 pixels x 3 channels; errors: channel 0 -> 1, channel 2 -> 3
    assert math.isclose(float(masked_l1(pred, target, mask)), (4 * 1 + 4 * 3) / 12, rel_tol=1e-6)


def test_gmml_corruption() -> None:
    clean = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)
    noise = -torch.ones_like(clean)
    mask = torch.zeros(2, 1, 4, 4, dtype=torch.bool)
    mask[:, :, 1:3, 1:3] = True
    out = corrupt(clean, mask, noise, torch.tensor([True, False]))
    keep = ~mask.expand_as(clean)
    assert torch.equal(out[keep], clean[keep])
    assert torch.equal(out[0][:, 1:3, 1:3], clean[1][:, 1:3, 1:3])  # content of the other image
    assert torch.equal(out[1][:, 1:3, 1:3], noise[1][:, 1:3, 1:3])


def test_pixel_decoder_is_simmims_1x1_convolution_and_pixel_shuffle() -> None:
    from vitprobe.train.heads import PixelDecoder

    decoder = PixelDecoder(32, 4)
    conv = torch.nn.Conv2d(32, 3 * 4 * 4, 1)
    with torch.no_grad():
        conv.weight.copy_(decoder.proj[0].weight[:, :, None, None])
        conv.bias.copy_(decoder.proj[0].bias)
    tokens = torch.randn(2, 6 * 8, 32)
    feature_map = tokens.transpose(1, 2).reshape(2, 32, 6, 8)  # row-major patch grid 6 x 8
    expected = torch.nn.functional.pixel_shuffle(conv(feature_map), 4)
    assert decoder(tokens, (6, 8)).shape == (2, 3, 24, 32)
    assert torch.allclose(decoder(tokens, (6, 8)), expected, atol=1e-6)


def test_gmml_follows_sit_defaults_and_mask_ratios() -> None:
    """SiT: wd 0.04 -> 0.1, crops of scale 0.2-1, CLSHead's second activation GELU, RECHead's
    three hidden layers; a view pasted from another image has 30% of its patches replaced, a
    noised view 50% (8 x 8 grid: the overshoot is below one 2 x 2 rectangle)."""
    obj = build("gmml")
    assert obj.hparams["weight_decay_end"] == 0.1 and obj.hparams["crop_scale"] == (0.2, 1.0)
    assert isinstance(obj.projector[2], torch.nn.ReLU) and isinstance(obj.projector[5], torch.nn.GELU)
    assert obj.per_tensor_clip and build("dino").per_tensor_clip and not build("mocov3").per_tensor_clip
    # RECHead: three (width -> width, GELU), then width -> 3 p^2 per patch; SimMIM: one linear map
    linears = [m for m in obj.decoder.proj if isinstance(m, torch.nn.Linear)]
    width = obj.encoder.embed_dim
    assert [(c.in_features, c.out_features) for c in linears] == [(width, width)] * 3 + [(width, 3 * 4 * 4)]
    assert sum(isinstance(m, torch.nn.GELU) for m in obj.decoder.proj) == 3
    assert [type(m) for m in build("simmim").decoder.proj] == [torch.nn.Linear]
    g = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(20):
        v = obj.views(torch.randn(3, 32, 32), g)
        for other, mask in zip(v["from_other"].tolist(), v["mask"]):
            low = 20 if other else 32  # ceil(64 * 0.3), 64 * 0.5
            assert low <= int(mask.sum()) <= low + 3
            seen.add(other)
    assert seen == {True, False}


def test_gmml_recon_loss_pools_both_views_and_bn_sees_both() -> None:
    """L1 = sum over both views of |rec - clean| on corrupted pixels / (3 x corrupted pixels of
    both views), not the mean of two per-view means; the projector's BN normalises 2B samples."""
    obj = build("gmml")
    views = batch_of_views(obj, n=4)
    views["mask"] = torch.zeros(4, 2, 8, 8, dtype=torch.bool)
    views["mask"][:, 0, 0, 0] = True  # view 0: one patch per image
    views["mask"][:, 1, :, :4] = True  # view 1: half the image
    with torch.no_grad():
        outs = [obj.reconstruct(views, v) for v in range(2)]
        err = [((o["reconstruction"] - views["clean"][:, v]).abs() * o["pixel_mask"]).sum() for v, o in enumerate(outs)]
        count = [3 * o["pixel_mask"].sum() for o in outs]
        pooled = float((err[0] + err[1]) / (count[0] + count[1]))
        per_view = float((err[0] / count[0] + err[1] / count[1]) / 2)
        cls = torch.cat([o["tokens"][:, 0] for o in outs])
        first = obj.projector[0](cls)
        _, metrics = obj(views, STEP)
    assert math.isclose(metrics["recon_loss"], pooled, rel_tol=1e-5)
    assert not math.isclose(pooled, per_view, rel_tol=1e-3)
    bn = obj.projector[1]  # fresh running mean 0, momentum 0.1: one update over all 2B samples
    assert torch.allclose(bn.running_mean, 0.1 * first.mean(0), atol=1e-6)


def _momentum_keys_apart(obj) -> dict[str, torch.Tensor]:
    """Views whose second image is noise, with the momentum encoder moved off the online one,
    so that pairing each query with the other view's key or with its own gives different losses."""
    obj.eval()
    with torch.no_grad():
        for p in obj.momentum_encoder.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    views = batch_of_views(obj)
    key = "views" if "views" in views else "clean"
    views[key][:, 1] = torch.randn(views[key][:, 1].shape, generator=torch.Generator().manual_seed(7))
    return views


def test_mocov3_pairs_each_query_with_the_other_views_key() -> None:
    """L = ctr(q1, k2) + ctr(q2, k1) (MoCo v3's symmetrised loss), not ctr(q1, k1) + ctr(q2, k2)."""
    obj = build("mocov3")
    views = _momentum_keys_apart(obj)
    with torch.no_grad():
        loss, _ = obj(views, STEP)
        x1, x2 = views["views"].unbind(1)
        q1, q2 = (obj.predictor(obj.projector(cls_features(obj.encoder, x))) for x in (x1, x2))
        k1, k2 = (obj.momentum_projector(cls_features(obj.momentum_encoder, x)) for x in (x1, x2))
    t = obj.hparams["temperature"]
    crossed, same = info_nce(q1, k2, t) + info_nce(q2, k1, t), info_nce(q1, k1, t) + info_nce(q2, k2, t)
    assert torch.isclose(loss, crossed, rtol=1e-5) and not torch.isclose(crossed, same, rtol=1e-3)


def test_gmml_pairs_each_corrupted_view_with_the_other_clean_views_key() -> None:
    """SiT's contrastive term: ctr(s1, t2) + ctr(s2, t1), s from the corrupted views, t from the clean ones."""
    obj = build("gmml")
    views = _momentum_keys_apart(obj)
    with torch.no_grad():
        _, logged = obj(views, STEP)
        tokens = obj.reconstruct(views, (0, 1))["tokens"]
        s1, s2 = obj.projector(tokens[:, 0]).chunk(2)
        clean = torch.cat([views["clean"][:, 0], views["clean"][:, 1]])
        t1, t2 = obj.momentum_projector(cls_features(obj.momentum_encoder, clean)).chunk(2)
    t = obj.hparams["temperature"]
    crossed, same = info_nce(s1, t2, t) + info_nce(s2, t1, t), info_nce(s1, t1, t) + info_nce(s2, t2, t)
    assert math.isclose(logged["contrastive_loss"], float(crossed), rel_tol=1e-5)
    assert not torch.isclose(crossed, same, rtol=1e-3)


# ---------------------------------------------------------------- objective behaviour

def test_the_train_command_names_every_objective() -> None:
    """The CLI lists the methods by hand (its parser does not import the objectives); the list must be the
    registry's."""
    import argparse
    import re

    from vitprobe.commands import train as train_command

    subparsers = argparse.ArgumentParser().add_subparsers()
    train_command.register(subparsers)
    help_text = next(a.help for a in subparsers.choices["train"]._actions if a.dest == "method")
    assert sorted(re.findall(r"[a-z0-9]+", help_text.replace(" or ", ", "))) == list_objectives()
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    synopsis = re.search(r"vitprobe train --method ([a-z0-9|]+)", readme)
    assert synopsis is not None and sorted(synopsis.group(1).split("|")) == list_objectives()
    import vitprobe.train.objectives as package

    assert sorted(package.__doc__.split(": ", 1)[1].rstrip(".").split(", ")) == list_objectives()


def test_every_numeric_hyper_parameter_has_a_range_or_choices() -> None:
    """So that --set checks more than the type (a plugin's knob at -5 passed silently)."""
    from vitprobe.train.objectives._hparam_checks import _RANGES

    def numeric(value: object) -> bool:
        values = value if isinstance(value, tuple) else (value,)
        return all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in values)

    unchecked = [f"{name}.{key}" for name in list_objectives() for key, value in objective_class(name).defaults.items()
                 if numeric(value) and key not in _RANGES and key not in objective_class(name).choices]
    assert unchecked == []


def test_registry_and_config_errors() -> None:
    assert {"dino", "gmml", "hybrid", "mae", "mocov3", "simmim"} <= set(list_objectives())
    with pytest.raises(ConfigError, match="unknown objective"):
        get_objective("byol", build_model(ARCH), ARCH)
    with pytest.raises(ConfigError, match="unknown hyper-parameter"):
        build("mae", mask_ration=0.5)
    for lam in (-0.1, 1.5, "half"):
        with pytest.raises(ConfigError, match="lam"):
            build("hybrid", lam=lam)
    with pytest.raises(ConfigError, match="mim must be"):
        build("hybrid", mim="beit")
    with pytest.raises(ConfigError, match="mask_patch_size"):
        build("simmim", mask_patch_size=6)


@pytest.mark.parametrize("name", list_objectives())
def test_views_deterministic_and_shaped(name: str) -> None:
    obj = build(name)
    image = torch.randn(3, 32, 32)
    a = obj.views(image, torch.Generator().manual_seed(5))
    b = obj.views(image, torch.Generator().manual_seed(5))
    c = obj.views(image, torch.Generator().manual_seed(6))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)
    expected = {
        "dino": {"global": (2, 3, 32, 32), "local": (2, 3, 12, 12)},
        "mocov3": {"views": (2, 3, 32, 32)},
        "mae": {"image": (3, 32, 32), "mask": (64,)},
        "simmim": {"image": (3, 32, 32), "mask": (8, 8)},
        "gmml": {"clean": (2, 3, 32, 32), "mask": (2, 8, 8), "noise": (2, 3, 32, 32), "from_other": (2,)},
        "hybrid": {"mim.image": (3, 32, 32), "mim.mask": (8, 8), "cl.views": (2, 3, 32, 32)},
    }[name]
    assert {k: tuple(v.shape) for k, v in a.items()} == expected


def test_mim_masks_in_views_have_exact_counts() -> None:
    mae, simmim = build("mae"), build("simmim")
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        assert int(mae.views(torch.randn(3, 32, 32), g)["mask"].sum()) == 48  # round(64 * 0.75)
        assert int(simmim.views(torch.randn(3, 32, 32), g)["mask"].sum()) == round(16 * 0.6) * 4


@pytest.mark.parametrize("name", ["mae", "simmim"])
def test_masked_patch_content_does_not_reach_the_prediction(name: str) -> None:
    obj = build(name).eval()
    views = batch_of_views(obj, n=2)
    pixel_mask = views["mask"].view(2, 8, 8).repeat_interleave(4, 1).repeat_interleave(4, 2).unsqueeze(1)
    scrambled = torch.where(pixel_mask, torch.randn_like(views["image"]) * 5, views["image"])
    with torch.no_grad():
        a = obj.reconstruct(views["image"], views["mask"])
        b = obj.reconstruct(scrambled, views["mask"])
        c = obj.reconstruct(torch.randn_like(views["image"]), views["mask"])
    assert torch.allclose(a, b, atol=1e-5)
    assert not torch.allclose(a, c, atol=1e-3)


@pytest.mark.parametrize("mim,cl", [("simmim", "mocov3"), ("mae", "dino")])
def test_hybrid_limits_equal_pure_losses(mim: str, cl: str) -> None:
    hp = dict(mim=mim, cl=cl, mim_hparams=SMALL[mim], cl_hparams=SMALL[cl])
    for lam, branch in ((0.0, "mim"), (1.0, "cl")):
        hybrid = build("hybrid", lam=lam, **hp)
        views = batch_of_views(hybrid)
        timm = {"encoder_init": "timm"} if hp[branch] == "simmim" else {}  # the hybrid's shared timm ViT
        pure = get_objective(hp[branch], build_model(ARCH), ARCH, **SMALL[hp[branch]], **timm).train()
        pure.load_state_dict(getattr(hybrid, branch).state_dict())
        # With each objective's own stochastic depth (simmim and dino 0.1, mae and mocov3 0),
        # drawn from the same seed.
        assert hybrid.stochastic_depth() == pure.stochastic_depth()
        for obj in (hybrid, pure):
            set_drop_path(obj.encoder, obj.stochastic_depth())
        prefix = branch + "."
        torch.manual_seed(5)
        loss_h, metrics = hybrid(views, STEP)
        torch.manual_seed(5)
        loss_p, _ = pure({k[len(prefix):]: v for k, v in views.items() if k.startswith(prefix)}, STEP)
        assert torch.equal(loss_h, loss_p)
        assert metrics[f"{branch}_loss"] == metrics["loss"]


def test_hybrid_mixes_with_lam_and_shares_one_encoder() -> None:
    hybrid = build("hybrid", lam=0.3)
    assert hybrid.mim.encoder is hybrid.encoder is hybrid.cl.encoder
    assert hybrid.encoder.patch_embed.proj.weight.requires_grad  # MIM needs the patch embedding
    loss, m = hybrid(batch_of_views(hybrid), STEP)
    assert math.isclose(loss.item(), 0.7 * m["mim_loss"] + 0.3 * m["cl_loss"], rel_tol=1e-6)
    assert "recon_loss" not in m  # the MIM branch's loss, logged once, as mim_loss
    assert hybrid.hparams["momentum"] == 0.99
    assert build("hybrid", lam=0.0).momentum_pairs() == []  # no teacher runs: the engine logs no momentum
    with pytest.warns(UserWarning, match=r"^hybrid at lambda 0: momentum 0.9 has no effect"):
        build("hybrid", lam=0.0, momentum=0.9)
    with pytest.warns(UserWarning, match=r"^objective 'simmim': momentum 0.5 has no effect \(simmim has no "):
        build("hybrid", lam=0.5, mim_hparams={**SMALL["simmim"], "momentum": 0.5})
    assert build("hybrid", cl="dino", cl_hparams=SMALL["dino"]).hparams["momentum"] == 0.996
    assert build("hybrid", cl="dino", cl_hparams=SMALL["dino"], momentum=0.9).hparams["momentum"] == 0.9


def test_published_stochastic_depth_and_the_hybrid_mixture() -> None:
    """DINO, SiT and SimMIM train ViT students with drop path 0.1; MoCo v3 and MAE with none.
    The hybrid mixes its branches' rates linearly in lambda unless given its own."""
    published = {"dino": 0.1, "gmml": 0.1, "simmim": 0.1, "mocov3": 0.0, "mae": 0.0}
    assert {name: build(name).stochastic_depth() for name in published} == published
    assert build("hybrid", lam=0.0).stochastic_depth() == pytest.approx(0.1)  # simmim
    assert build("hybrid", lam=1.0).stochastic_depth() == 0.0  # mocov3
    assert build("hybrid", lam=0.25).stochastic_depth() == pytest.approx(0.075)
    assert build("hybrid", lam=0.25, drop_path=0.2).stochastic_depth() == 0.2


@pytest.mark.parametrize("name", ["dino", "gmml", "mocov3"])
def test_stochastic_depth_drops_in_the_student_only(name: str) -> None:
    obj = build(name, drop_path=0.5)
    set_drop_path(obj.encoder, obj.stochastic_depth())
    rates = [[getattr(b, f"drop_path{i}").drop_prob if isinstance(getattr(b, f"drop_path{i}"), DropPath)
              else 0.0 for i in (1, 2)] for b in obj.encoder.blocks]
    assert rates == [[0.0, 0.0], [0.5, 0.5]]  # linear in depth, 0 at the first block
    x = torch.randn(8, 3, 32, 32)
    draws = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        draws.append(cls_features(obj.encoder, x))
    assert not torch.allclose(*draws)  # training-mode student: a different branch dropped per draw
    assert obj.momentum_pairs()
    for _, ema in obj.momentum_pairs():  # teachers / momentum encoders: never
        assert ema.training and not any(isinstance(m, DropPath) for m in ema.modules())
    with pytest.raises(ConfigError, match="drop_path"):
        set_drop_path(obj.encoder, 1.0)


def test_dino_teacher_temperature_schedule() -> None:
    dino = build("dino")

    def temp(epoch: int, epochs: int) -> float:
        return dino.teacher_temperature(StepInfo(epoch, epoch * 10, 10, epochs * 10, epoch / epochs))

    assert temp(0, 100) == pytest.approx(0.04)
    assert temp(15, 100) == pytest.approx(0.04 + 0.03 * 15 / 29)
    assert temp(29, 100) == pytest.approx(0.07) and temp(80, 100) == pytest.approx(0.07)
    assert temp(9, 10) == pytest.approx(0.07)  # warm-up clipped to the run length
    assert temp(3, 7) == pytest.approx(0.04 + 0.03 * 3 / 6)


@pytest.mark.parametrize("layer_scale, qkv_bias", [(None, True), (1e-2, False)])
def test_class_token_features_equal_the_full_forward(layer_scale, qkv_bias) -> None:
    """cls_features skips the last block's other tokens: same values, same drop-path masks,
    same gradients as the class token of the full forward."""
    spec = ArchSpec(img_size=32, patch_size=4, embed_dim=32, depth=3, num_heads=2,
                    layer_scale=layer_scale, qkv_bias=qkv_bias)
    torch.manual_seed(0)
    encoder = build_model(spec).train()
    set_drop_path(encoder, 0.5)
    images = torch.randn(16, 3, 32, 32)
    results = []
    for features in (lambda e, x: encode(e, x)[:, 0], cls_features):
        encoder.zero_grad()
        torch.manual_seed(7)
        out = features(encoder, images)
        (out * torch.linspace(-1, 1, out.shape[1])).sum().backward()
        results.append((out.detach(), {k: p.grad.clone() for k, p in encoder.named_parameters()}))
    (full, full_grads), (cls, cls_grads) = results
    assert torch.allclose(full, cls, atol=1e-5)
    assert not torch.allclose(full[0], full[1])  # the drop-path masks differ per image
    for name, grad in full_grads.items():
        assert torch.allclose(grad, cls_grads[name], atol=1e-5, rtol=1e-4), name


def test_dino_runs_the_head_once_over_every_crop() -> None:
    dino = build("dino", norm_last_layer=False)
    views = batch_of_views(dino)
    with torch.no_grad():
        together = torch.stack(dino._student(views["global"], views["local"]))
        parts = [dino.head(cls_features(dino.encoder, c.transpose(0, 1).flatten(0, 1))).view(c.shape[1], len(c), -1)
                 for c in (views["global"], views["local"])]
    assert together.shape[:2] == (2 + dino.hparams["n_local"], 8)
    assert torch.allclose(together, torch.cat(parts), atol=1e-6)


def test_dino_views_follow_main_dino_at_224() -> None:
    """main_dino.py: 2 global crops of 224 and --local_crops_number 8 crops of 96 px."""
    arch = ArchSpec(img_size=224, patch_size=16, embed_dim=32, depth=1, num_heads=2)
    dino = get_objective("dino", build_model(arch), arch, out_dim=64, head_hidden_dim=64,
                         head_bottleneck_dim=16)
    views = dino.views(torch.rand(3, 256, 256), torch.Generator().manual_seed(0))
    assert views["global"].shape == (2, 3, 224, 224) and views["local"].shape == (8, 3, 96, 96)


def test_prototypes_are_scaled_only_when_the_scale_is_learned() -> None:
    from vitprobe.train.heads import PrototypeLinear

    x = torch.randn(4, 8)
    for learn, g in ((False, 1.0), (True, 2.0)):
        layer = PrototypeLinear(8, 5, learn_scale=learn)
        with torch.no_grad():
            layer.weight_g.fill_(g)
        assert layer.weight_g.requires_grad is learn
        assert torch.allclose(layer(x), g * x @ F.normalize(layer.weight_v, dim=1).T, atol=1e-6)


def test_dino_center_update_and_metrics() -> None:
    dino = build("dino")
    views = batch_of_views(dino)
    with torch.no_grad():
        glob = views["global"].transpose(0, 1).flatten(0, 1)
        teacher_logits = dino.teacher_head(cls_features(dino.teacher, glob))
    loss, m = dino(views, STEP)
    assert torch.allclose(dino.center, 0.1 * teacher_logits.mean(0, keepdim=True), atol=1e-6)
    assert m["teacher_temp"] == pytest.approx(0.04 + 0.03 / 9)  # epoch 1 of a 10-epoch run
    assert m["kl_student_teacher"] >= -1e-5
    assert m["teacher_batch_entropy"] >= m["teacher_entropy"] - 1e-6  # entropy is concave
    assert 0 <= m["teacher_entropy"] <= math.log(64)
    dino.eval()
    before = dino.center.clone()
    dino(views, STEP)
    assert torch.equal(dino.center, before)  # the centre only moves while training


def test_collapse_warnings() -> None:
    k = 64
    (one,) = collapse_warnings({"teacher_batch_entropy": 0.01, "teacher_entropy": 0.0}, k)
    assert one.kind == "DINO collapse to one prototype" and str(one).startswith(f"{one.kind} (teacher batch entropy 0.01")
    (uniform,) = collapse_warnings({"teacher_batch_entropy": math.log(k), "teacher_entropy": 0.95 * math.log(k)}, k)
    assert "uniform" in uniform.kind
    assert collapse_warnings({"teacher_batch_entropy": 3.0, "teacher_entropy": 1.0}, k) == []
    assert [w.kind for w in collapse_warnings({"emb_std": 1e-4}, 256)] == ["contrastive collapse"]
    assert collapse_warnings({"emb_std": 1 / 16}, 256) == []


def test_collapse_advice_is_worded_from_the_values_in_force() -> None:
    """Never "lower X to v" where X is v already: below the suggested values, it says how far."""
    k = 64
    uniform = {"teacher_batch_entropy": math.log(k), "teacher_entropy": 0.95 * math.log(k)}
    (published,) = map(str, collapse_warnings({**uniform, "teacher_temp": 0.07}, k, momentum=0.996))
    assert "warmup_teacher_temp from 0.07 to 0.04" in published and "momentum from 0.996 to 0.95" in published
    (tiny,) = map(str, collapse_warnings({**uniform, "teacher_temp": 0.04}, k, momentum=0.95))
    assert "below its 0.04 (e.g. 0.02)" in tiny and "momentum below its 0.95 (e.g. 0.9)" in tiny
    assert " to 0.04" not in tiny and " to 0.95" not in tiny


@pytest.mark.parametrize("name", ["dino", "mocov3", "gmml"])
def test_update_momentum_is_an_ema(name: str) -> None:
    obj = build(name)
    with torch.no_grad():
        for online, _ in obj.momentum_pairs():
            for p in online.parameters():
                p.add_(torch.randn_like(p))
    pairs = [(list(o.parameters()), [q.clone() for q in e.parameters()]) for o, e in obj.momentum_pairs()]
    obj.update_momentum(0.75)
    for (online, old), (_, ema) in zip(pairs, obj.momentum_pairs()):
        for p, q0, q in zip(online, old, ema.parameters()):
            assert torch.allclose(q, 0.75 * q0 + 0.25 * p, atol=1e-6)
    obj.update_momentum(0.0)
    for online, ema in obj.momentum_pairs():
        assert all(torch.equal(p, q) for p, q in zip(online.parameters(), ema.parameters()))


def test_export_encoder() -> None:
    dino, moco, mae = build("dino"), build("mocov3"), build("mae")
    assert dino.export_encoder() is dino.teacher and dino.teacher is not dino.encoder
    assert moco.export_encoder() is moco.encoder and mae.export_encoder() is mae.encoder
    assert set(dino.export_encoder().state_dict()) == set(build_model(ARCH).state_dict())


@pytest.mark.parametrize("name", list_objectives())
def test_gradients_reach_only_trainable_parameters(name: str) -> None:
    obj = build(name)
    loss, metrics = obj(batch_of_views(obj), STEP)
    assert "loss" in metrics and all(isinstance(v, float) for v in metrics.values())
    loss.backward()
    obj.after_backward(STEP)
    frozen = {id(p) for _, ema in obj.momentum_pairs() for p in ema.parameters()}
    assert all(not p.requires_grad for _, ema in obj.momentum_pairs() for p in ema.parameters())
    for n, p in obj.named_parameters():
        if id(p) in frozen or not p.requires_grad:
            assert p.grad is None, n
    for n, p in obj.encoder.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all(), n
    if not obj.leaves_parameters_unused():  # else DDP must search for the unused (the slow distributed test)
        unused = [n for n, p in obj.named_parameters() if p.requires_grad and id(p) not in frozen and p.grad is None]
        assert unused == [], f"{name}: trainable parameters without a gradient; override leaves_parameters_unused"


def test_mocov3_stop_grad_patch_embed_and_dino_frozen_last_layer() -> None:
    moco = build("mocov3")
    assert not moco.encoder.patch_embed.proj.weight.requires_grad
    assert build("mocov3", stop_grad_patch_embed=False).encoder.patch_embed.proj.weight.requires_grad
    dino = build("dino")
    first = StepInfo(epoch=0, step=0, steps_per_epoch=10, total_steps=100, progress=0.0)
    loss, _ = dino(batch_of_views(dino), first)
    loss.backward()
    assert dino.head.last_layer.weight_v.grad is not None
    dino.after_backward(first)
    assert dino.head.last_layer.weight_v.grad is None
    assert dino.head.mlp[0].weight.grad is not None


def test_mocov3_heads_have_moco_vits_layout_and_standardised_queries() -> None:
    """MoCo_ViT: projector 3 layers and predictor 2 layers, each ending in an affine-free BN,
    so every query dimension has mean 0 and variance 1 over the batch in training."""
    moco = build("mocov3")
    bn = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    free_bn = ["running_mean", "running_var", "num_batches_tracked"]
    predictor = {"0.weight", *(f"1.{k}" for k in bn), "3.weight", *(f"4.{k}" for k in free_bn)}
    assert set(moco.predictor.state_dict()) == predictor
    assert set(moco.projector.state_dict()) == (
        {"0.weight", *(f"1.{k}" for k in bn), "3.weight", *(f"4.{k}" for k in bn), "6.weight",
         *(f"7.{k}" for k in free_bn)})
    q = moco.predictor(moco.projector(torch.randn(64, ARCH.embed_dim)))
    torch.testing.assert_close(q.mean(0), torch.zeros(16), atol=1e-5, rtol=0)
    torch.testing.assert_close(q.var(0, unbiased=False), torch.ones(16), atol=1e-3, rtol=0)


@pytest.mark.parametrize("name", list_objectives())
def test_a_few_steps_lower_the_loss_on_a_fixed_batch(name: str) -> None:
    """DINO's cross-entropy includes the teacher entropy, which moves with the centre; with the
    centre held (center_momentum 1) the target is fixed and the loss must fall like the others."""
    obj = build(name, **({"center_momentum": 1.0} if name == "dino" else {}))
    views = batch_of_views(obj)
    opt = torch.optim.AdamW([p for p in obj.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for _ in range(12):
        loss, _ = obj(views, STEP)
        opt.zero_grad()
        loss.backward()
        obj.after_backward(STEP)
        opt.step()
        obj.update_momentum(0.996)
        losses.append(loss.item())
    assert sum(losses[-3:]) / 3 < 0.92 * losses[0], losses


def _gather_worker(rank: int, world: int, init: str, q: torch.Tensor, k: torch.Tensor, out: dict) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        b = q.shape[0] // world
        local_q = q[rank * b:(rank + 1) * b].clone().requires_grad_(True)
        local_k = k[rank * b:(rank + 1) * b]
        gathered = concat_all_gather(local_q)
        gathered.sum().backward()
        loss = info_nce(local_q.detach(), local_k, 0.2)
        center = all_reduce_mean(local_k.mean(0))
        assert not all_reduce_mean(local_q * 2).requires_grad  # the mean carries no gradient
        out[rank] = (gathered.detach(), local_q.grad, loss, center)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.distributed
def test_cross_process_gather_and_mean(tmp_path) -> None:
    """Two gloo processes: gather = concatenation with gradient into the local slice only;
    InfoNCE against gathered keys equals the single-process loss of the same queries
    against the whole batch; the all-reduced centre is the global mean."""
    import torch.multiprocessing as mp

    q = torch.randn(8, 6, generator=torch.Generator().manual_seed(0))
    k = torch.randn(8, 6, generator=torch.Generator().manual_seed(1))
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_gather_worker, args=(2, f"file://{tmp_path}/rdv", q, k, out), nprocs=2)
        results = dict(out)
    qn, kn = F.normalize(q, dim=1), F.normalize(k, dim=1)
    for rank in range(2):
        gathered, grad, loss, center = results[rank]
        assert torch.allclose(gathered, q)
        assert torch.equal(grad, torch.ones(4, 6))
        logits = qn[rank * 4:(rank + 1) * 4] @ kn.t() / 0.2
        expected = F.cross_entropy(logits, torch.arange(4) + rank * 4) * 0.4
        assert torch.allclose(loss, expected, atol=1e-6)
        assert torch.allclose(center, k.mean(0), atol=1e-6)


def test_dino_local_crops_blur_in_the_pixels_of_the_image() -> None:
    obj = build("dino")
    assert obj.local_spec.size < ARCH.img_size
    assert obj.local_spec.image_size == ARCH.img_size == obj.global_specs[0].size


# name -> (spared weight decay, decayed) among the parameters each reference's optimiser sees
DECAY_GROUPS = {
    "dino": ({"encoder.norm.weight", "encoder.blocks.0.attn.qkv.bias"},
             {"encoder.pos_embed", "encoder.cls_token", "head.last_layer.weight_v"}),
    "gmml": ({"encoder.norm.weight", "encoder.blocks.0.attn.qkv.bias"}, {"encoder.pos_embed", "encoder.cls_token"}),
    "mae": ({"encoder.norm.weight", "decoder.norm.bias"},
            {"encoder.cls_token", "decoder.mask_token"}),  # pos_embed: fixed sin-cos, not trained
    "mocov3": (set(), {"encoder.norm.weight", "encoder.blocks.0.attn.qkv.bias",
                       "encoder.cls_token", "projector.1.weight"}),
    "simmim": ({"encoder.cls_token", "encoder.norm.weight", "encoder.blocks.0.gamma_1", "encoder.blocks.0.attn.q_bias"},
               {"mask_token", "encoder.blocks.0.attn.qkv.weight",  # SimMIM's ViT has no_weight_decay_keywords:
                "encoder.rel_pos_bias.relative_position_bias_table"}),  # its 2-d bias table decays
    "hybrid": ({"encoder.pos_embed", "encoder.cls_token", "mim.mask_token", "encoder.norm.weight"},
               {"encoder.blocks.0.attn.qkv.weight"}),
}


@pytest.mark.parametrize("name", list_objectives())
def test_weight_decay_spares_what_each_reference_spares(name: str) -> None:
    """DINO and SiT (get_params_groups) and MAE (add_weight_decay) spare biases and 1-d tensors only;
    MoCo v3 decays every tensor; SimMIM's ViT also spares pos_embed and cls_token."""
    obj = build(name)
    names = {id(p): n for n, p in obj.named_parameters()}
    decay, plain = ({names[id(p)] for p in g["params"]} for g in param_groups(obj))
    spared, decayed = DECAY_GROUPS[name]
    assert spared <= plain and decayed <= decay
    if name == "mocov3":
        assert not plain
    assert decay | plain == {n for n, p in obj.named_parameters() if p.requires_grad}


def test_dino_head_mlp_starts_as_dinos_trunc_normal_002_with_zero_bias() -> None:
    """main_dino.py DINOHead._init_weights: trunc_normal_(w, std=.02), bias 0 (timm truncates at
    +-2 absolute, i.e. +-100 std: the sample std is 0.02). PyTorch's default would give
    std 1/sqrt(3 fan_in) = 0.036 at fan_in 256 and a non-zero bias."""
    torch.manual_seed(0)
    head = DINOHead(256, 64, hidden_dim=512, bottleneck_dim=128)
    linears = [m for m in head.mlp if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(256, 512), (512, 512), (512, 128)]
    for m in linears:
        assert torch.count_nonzero(m.bias) == 0
        assert float(m.weight.detach().std()) == pytest.approx(0.02, rel=0.03)


def test_dino_head_is_mlp_then_l2_norm_then_unit_prototypes() -> None:
    """DINO: Linear-GELU-Linear-GELU-Linear (no activation on the bottleneck), L2 normalise,
    then the weight-normalised prototypes with g fixed at 1 (norm_last_layer=True), learned
    otherwise; written out by hand."""
    torch.manual_seed(0)
    head = DINOHead(16, 10, hidden_dim=32, bottleneck_dim=8, layers=3)
    l1, l2, l3 = [m for m in head.mlp if isinstance(m, nn.Linear)]
    x = torch.randn(5, 16)
    with torch.no_grad():
        z = l3(F.gelu(l2(F.gelu(l1(x)))))
        z = z / z.norm(dim=-1, keepdim=True)
        v = head.last_layer.weight_v
        expected = z @ (v / v.norm(dim=1, keepdim=True)).T
        assert torch.allclose(head(x), expected, atol=1e-6)
    assert not head.last_layer.weight_g.requires_grad
    assert DINOHead(16, 10, 32, 8, norm_last_layer=False).last_layer.weight_g.requires_grad


def test_mae_decoder_unshuffles_mask_tokens_and_adds_maes_positions() -> None:
    """With no decoder block, patch i of the output is pred(norm(e_i + pos_i)), e_i the embedded
    visible token or the mask token (MAE's x_ = cat(x, mask_tokens); gather(ids_restore)),
    pos the 2-D sin-cos table in MAE's layout (the column's half first)."""
    torch.manual_seed(0)
    grid = (2, 3)
    dec = MAEDecoder(embed_dim=8, grid=grid, patch_size=1, num_prefix=1, dim=8, depth=0, num_heads=2).eval()
    mask = torch.tensor([[True, False, True, False, False, True]])  # raster order
    order = torch.argsort(mask.to(torch.int8), dim=1, stable=True)  # visible first, as MAE.reconstruct
    restore = torch.argsort(order, dim=1)
    tokens = torch.randn(1, 1 + 3, 8)  # the class token, then the 3 visible patches in raster order
    pos = sincos_pos_embed_2d(8, grid)
    with torch.no_grad():
        emb = dec.embed(tokens[0])
        visible = iter(range(1, 4))
        expected = torch.stack([dec.pred(dec.norm((dec.mask_token[0, 0] if hidden else emb[next(visible)]) + pos[i]))
                                for i, hidden in enumerate(mask[0].tolist())])
        assert torch.allclose(dec(tokens, restore)[0], expected, atol=1e-6)


def test_mae_decoder_mask_token_starts_as_normal_002() -> None:
    """MAE: torch.nn.init.normal_(self.mask_token, std=.02)."""
    torch.manual_seed(0)
    token = MAEDecoder(8, (2, 2), 1, 1, dim=4096, depth=0, num_heads=2).mask_token
    assert token.shape == (1, 1, 4096)
    assert float(token.detach().std()) == pytest.approx(0.02, rel=0.05) and abs(float(token.detach().mean())) < 0.002

def test_collapse_thresholds_are_a_tenth_and_nine_tenths_of_log_k_and_a_tenth_over_sqrt_k() -> None:
    """Just either side of each documented threshold: batch entropy 0.1 log K, mean entropy
    0.9 log K (DINO, K prototypes), emb_std sqrt(K) = 0.1 (contrastive: healthy std 1/sqrt K)."""
    k = 64
    log_k = math.log(k)
    kinds = lambda metrics, kk=k: [w.kind for w in collapse_warnings(metrics, kk)]  # noqa: E731
    assert kinds({"teacher_batch_entropy": 0.098 * log_k, "teacher_entropy": 0.05}) == ["DINO collapse to one prototype"]
    assert kinds({"teacher_batch_entropy": 0.102 * log_k, "teacher_entropy": 0.05}) == []
    assert kinds({"teacher_batch_entropy": log_k, "teacher_entropy": 0.902 * log_k}) == ["DINO collapse to the uniform distribution"]
    assert kinds({"teacher_batch_entropy": log_k, "teacher_entropy": 0.898 * log_k}) == []
    assert kinds({"emb_std": 0.098 / 16}, 256) == ["contrastive collapse"]
    assert kinds({"emb_std": 0.102 / 16}, 256) == []
    (w,) = collapse_warnings({"emb_std": 0.001}, 256)
    assert "healthy about 0.0625" in str(w)
    # K unknown (an objective without a collapse dimension): nothing to compare with, no warning
    assert collapse_warnings({"teacher_batch_entropy": 0.0, "teacher_entropy": 0.0, "emb_std": 0.0}, None) == []
