"""Each objective against its paper's definition where the other tests under tests/train could
not tell (found by a mutation round: a symmetric example, a default value, a missing EMA pair):
teacher temperatures and centring, which logits each view's loss reads, InfoNCE's rows and
rank offsets, the published defaults and augmentations, MAE's unshuffling and targets, GMML's
corruption and weighting, the hybrid's frozen prototypes. Every expected value is computed here
from the definition (timm's own forward, hand-written losses), not copied from a run.

The tiny ViT (img 32, patch 4, width 32, depth 2) of test_objectives.py; CPU, a few seconds.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vitprobe.models.architecture import build_model
from vitprobe.train.objectives import StepInfo, objective_class
from vitprobe.train.objectives import _infonce
from vitprobe.train.objectives._infonce import embedding_std, info_nce
from vitprobe.train.objectives._vit import cls_features, encode

sys.path.insert(0, str(Path(__file__).parent))
from test_objectives import ARCH, SMALL, STEP, batch_of_views, build  # noqa: E402

# epoch 0 of a 10-epoch run of 10 steps per epoch (STEP is epoch 1)
FIRST = StepInfo(epoch=0, step=0, steps_per_epoch=10, total_steps=100, progress=0.0)


@torch.no_grad()
def perturb(module: torch.nn.Module, seed: int, scale: float = 0.05) -> None:
    """Move a (frozen EMA) module away from its online twin, which it equals at initialisation."""
    g = torch.Generator().manual_seed(seed)
    for p in module.parameters():
        p.add_(scale * torch.randn(p.shape, generator=g))


def timm_cls(encoder, x: torch.Tensor) -> torch.Tensor:
    """The normed class token from timm's own forward (no vitprobe token plumbing) at the model's
    image size; DINO's smaller local crops through the full token forward ``encode`` (resampled
    positions), which test_encode_equals_timms_forward_with_a_learned_class_position pins to timm."""
    if x.shape[-1] == encoder.patch_embed.img_size[-1]:
        return encoder.forward_features(x)[:, 0]
    return encode(encoder, x)[:, 0]


def cross_entropy_rows(p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    return -(p * log_q).sum(-1)


# ----------------------------------------------------------------- DINO

def test_dino_teacher_temperature_is_dinos_linspace_then_constant() -> None:
    """main_dino.py: teacher_temp_schedule = concat(linspace(0.04, 0.07, 30), 0.07 * ones(E - 30)),
    indexed by epoch: never above 0.07, exactly 0.07 from epoch 29 on."""
    dino = build("dino")
    epochs = 100
    schedule = np.concatenate([np.linspace(0.04, 0.07, 30), np.full(epochs - 30, 0.07)])
    for epoch in range(epochs):
        step = StepInfo(epoch, epoch * 10, 10, epochs * 10, epoch / epochs)
        assert dino.teacher_temperature(step) == pytest.approx(schedule[epoch], abs=1e-12), epoch


def _dino_reference(obj, views, temp: float):
    """DINO's loss and health metrics written out from timm's forward: teacher view i (centred,
    / temp) against every student crop v != i (/ 0.1); also (teacher probabilities, raw teacher logits)."""
    glob, local = views["global"], views["local"]
    crops = [glob[:, i] for i in range(glob.shape[1])] + [local[:, j] for j in range(local.shape[1])]
    student = [F.log_softmax(obj.head(timm_cls(obj.encoder, c)) / 0.1, dim=-1) for c in crops]
    raw = [obj.teacher_head(timm_cls(obj.teacher, glob[:, i])) for i in range(glob.shape[1])]
    probs = [F.softmax((t - obj.center) / temp, dim=-1) for t in raw]
    pairs = [(i, v) for i in range(len(probs)) for v in range(len(student)) if v != i]
    loss = torch.stack([cross_entropy_rows(probs[i], student[v]).mean() for i, v in pairs]).mean()
    ent = [-(p * p.log()).sum(-1) for p in probs]
    kl = torch.stack([(probs[i] * (probs[i].log() - student[v])).sum(-1).mean() for i, v in pairs]).mean()
    mean_p = torch.cat(probs).mean(0)
    metrics = {"teacher_entropy": float(torch.cat(ent).mean()),
               "teacher_batch_entropy": float(-(mean_p * mean_p.log()).sum()),
               "kl_student_teacher": float(kl)}
    return loss, metrics, raw


def _dino_with_teacher_apart():
    dino = build("dino").eval()  # eval: no centre update inside the forward, no drop path
    perturb(dino.teacher, 1)
    perturb(dino.teacher_head.mlp, 2)
    with torch.no_grad():
        dino.center.copy_(0.3 * torch.randn(dino.center.shape, generator=torch.Generator().manual_seed(3)))
    return dino, batch_of_views(dino, n=4)


def test_dino_loss_uses_the_teachers_logits_of_each_global_view() -> None:
    """The forward's loss is the hand-written DINO loss on the TEACHER's (EMA) backbone and head,
    each global view of each image paired with the student's other crops of that same image, at
    the scheduled teacher temperature (epoch 1 of a 10-epoch run: 0.04 + 0.03 / 9)."""
    dino, views = _dino_with_teacher_apart()
    with torch.no_grad():
        loss, _ = dino(views, STEP)
        expected, _, _ = _dino_reference(dino, views, 0.04 + 0.03 / 9)
    assert torch.allclose(loss, expected, rtol=1e-5, atol=1e-6)


def test_dino_health_metrics_follow_their_definitions() -> None:
    """teacher_entropy = mean H(p); teacher_batch_entropy = H(mean p) over images and global views
    (one-prototype collapse shows there, not in the mean entropy); kl_student_teacher = mean over
    pairs of KL(p_i || q_v) = CE - H(p)."""
    dino, views = _dino_with_teacher_apart()
    with torch.no_grad():
        _, metrics = dino(views, STEP)
        _, expected, _ = _dino_reference(dino, views, 0.04 + 0.03 / 9)
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value, rel=1e-4, abs=1e-5), key
    assert metrics["teacher_batch_entropy"] > metrics["teacher_entropy"] + 1e-3  # the example tells them apart


def test_dino_centre_is_an_ema_of_the_raw_teacher_logits() -> None:
    """c <- 0.9 c + 0.1 mean(teacher logits), the logits before centring, from a non-zero centre."""
    dino, views = _dino_with_teacher_apart()
    dino.train()
    c0 = dino.center.clone()
    with torch.no_grad():
        _, _, raw = _dino_reference(dino, views, 0.05)
        dino(views, STEP)
    assert torch.allclose(dino.center, 0.9 * c0 + 0.1 * torch.cat(raw).mean(0, keepdim=True), atol=1e-6)


# ----------------------------------------------------------------- EMA teachers, by name

@pytest.mark.parametrize("name,pairs", [
    ("dino", [("encoder", "teacher"), ("head", "teacher_head")]),
    ("mocov3", [("encoder", "momentum_encoder"), ("projector", "momentum_projector")]),
    ("gmml", [("encoder", "momentum_encoder"), ("projector", "momentum_projector")]),
])
def test_every_ema_module_moves_towards_its_online_twin(name, pairs) -> None:
    """DINO's teacher is the EMA of the student backbone AND head; MoCo v3's / SiT's momentum
    branch of the encoder AND projector. Named here, not read back from momentum_pairs()."""
    obj = build(name)
    for online, _ in pairs:
        perturb(getattr(obj, online), 5, scale=1.0)
    before = {ema: {k: v.clone() for k, v in getattr(obj, ema).named_parameters()} for _, ema in pairs}
    obj.update_momentum(0.75)
    for online, ema in pairs:
        now = dict(getattr(obj, ema).named_parameters())
        for k, p in getattr(obj, online).named_parameters():
            assert torch.allclose(now[k], 0.75 * before[ema][k] + 0.25 * p, atol=1e-6), f"{ema}.{k}"


# ----------------------------------------------------------------- published recipes

def test_published_defaults_of_each_objective() -> None:
    """The numbers each paper states for its recipe (REFERENCE.md) (and the crop scales of each reference's code)."""
    d = objective_class("dino").defaults
    assert (d["student_temp"], d["warmup_teacher_temp"], d["teacher_temp"], d["warmup_teacher_temp_epochs"]) == (
        0.1, 0.04, 0.07, 30)
    assert (d["center_momentum"], d["momentum"], d["clip_grad"], d["freeze_last_layer"]) == (0.9, 0.996, 3.0, 1)
    assert (d["base_lr"], d["weight_decay"], d["weight_decay_end"]) == (5e-4, 0.04, 0.4)
    assert (d["head_hidden_dim"], d["head_bottleneck_dim"], d["out_dim"]) == (2048, 256, 65536)
    assert d["global_scale"] == (0.4, 1.0) and d["local_scale"] == (0.05, 0.4)
    m = objective_class("mocov3").defaults
    assert (m["temperature"], m["momentum"], m["crop_scale"]) == (0.2, 0.99, (0.08, 1.0))
    a = objective_class("mae").defaults
    assert (a["mask_ratio"], a["norm_pix_loss"], a["betas"], a["weight_decay"], a["weight_decay_end"]) == (
        0.75, True, (0.9, 0.95), 0.05, 0.05)
    assert (a["decoder_depth"], a["decoder_dim"], a["crop_scale"]) == (8, 512, (0.2, 1.0))
    s = objective_class("simmim").defaults
    assert (s["mask_ratio"], s["mask_patch_size"]) == (0.6, 32)


def test_dino_and_byol_views_follow_the_published_augmentations() -> None:
    """DINO / BYOL / MoCo v3: colour jitter (0.4, 0.4, 0.2, 0.1) with p 0.8, grey 0.2, flip 0.5,
    blur sigma 0.1-2; blur always on the first view, blur 0.1 + solarise 0.2 on the SECOND;
    DINO's local crops: scale 0.05-0.4, blur 0.5, no solarise."""
    dino, moco = build("dino"), build("mocov3")
    first, second = dino.global_specs
    for pair in ((first, second), tuple(moco.view_specs)):
        assert (pair[0].blur_p, pair[0].solarize_p) == (1.0, 0.0)
        assert (pair[1].blur_p, pair[1].solarize_p) == (0.1, 0.2)
    assert first.scale == second.scale == (0.4, 1.0) and moco.view_specs[0].scale == (0.08, 1.0)
    local = dino.local_spec
    assert (local.scale, local.blur_p, local.solarize_p) == ((0.05, 0.4), 0.5, 0.0)
    for spec in (first, second, local, *moco.view_specs):
        assert (spec.jitter_p, spec.jitter, spec.grey_p, spec.flip_p, spec.blur_sigma) == (
            0.8, (0.4, 0.4, 0.2, 0.1), 0.2, 0.5, (0.1, 2.0))


def test_mim_views_are_crop_and_flip_only() -> None:
    """MAE: RandomResizedCrop(scale 0.2-1) + horizontal flip; SimMIM: scale 0.67-1 + flip; no
    colour jitter, grey, blur or solarise."""
    for name, scale in (("mae", (0.2, 1.0)), ("simmim", (0.67, 1.0))):
        spec = build(name).view_spec
        assert (spec.scale, spec.flip_p) == (scale, 0.5), name
        assert (spec.jitter_p, spec.grey_p, spec.blur_p, spec.solarize_p) == (0.0, 0.0, 0.0, 0.0), name


def test_crop_box_makes_ten_attempts_like_random_resized_crop(monkeypatch) -> None:
    """torchvision's RandomResizedCrop.get_params: 10 attempts (an area and an aspect each)
    before the central-crop fallback."""
    from vitprobe.train import views as views_module

    draws = []
    real = views_module._uniform
    monkeypatch.setattr(views_module, "_uniform", lambda g, lo, hi: draws.append((lo, hi)) or real(g, lo, hi))
    views_module.crop_box(10, 10, (1.5, 2.0), (3 / 4, 4 / 3), torch.Generator().manual_seed(0))  # never fits
    assert len(draws) == 2 * 10


# ----------------------------------------------------------------- InfoNCE / MoCo v3

def test_info_nce_rows_are_the_queries_on_a_non_symmetric_example() -> None:
    """CE over each query's row of q k^T / T (positive on the diagonal), x 2T; with q_2 not unit
    length and the logit matrix not symmetric, so queries and keys cannot be confused."""
    q = torch.tensor([[2.0, 0.0], [3.0, 4.0]])  # rows normalised: (1, 0), (0.6, 0.8)
    k = torch.tensor([[1.0, 0.0], [0.0, 5.0]])  # (1, 0), (0, 1)
    t = 0.2
    logits = [[1.0 / t, 0.0], [0.6 / t, 0.8 / t]]
    rows = [math.log(sum(math.exp(x) for x in row)) - row[i] for i, row in enumerate(logits)]
    assert float(info_nce(q, k, t)) == pytest.approx(sum(rows) / 2 * 2 * t, rel=1e-6)


def test_info_nce_positive_of_a_later_rank_is_offset_by_its_rank(monkeypatch) -> None:
    """Rank 1 of 2: its keys follow rank 0's in the gathered K, so query i's positive is i + B."""
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    k_rank0 = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    k_local = torch.tensor([[1.0, 0.2], [0.3, 1.0]])
    monkeypatch.setattr(_infonce, "rank_and_world", lambda: (1, 2))
    monkeypatch.setattr(_infonce, "concat_all_gather", lambda x: torch.cat([F.normalize(k_rank0, dim=1), x]))
    t = 0.2
    logits = q @ torch.cat([F.normalize(k_rank0, dim=1), F.normalize(k_local, dim=1)]).t() / t
    expected = sum(float(torch.logsumexp(logits[i], 0) - logits[i, i + 2]) for i in range(2)) / 2 * 2 * t
    assert float(info_nce(q, k_local, t)) == pytest.approx(expected, rel=1e-6)


def test_embedding_std_is_taken_over_the_batch() -> None:
    """Every embedding the same (non-constant) vector: collapsed, std over the batch 0, however
    spread its entries are; and a worked example: rows (1,0) x 3 and (0,1), each dimension
    {1,1,1,0}: unbiased std 0.5."""
    assert embedding_std(torch.tensor([[3.0, 4.0]]).repeat(6, 1)) == pytest.approx(0.0, abs=1e-7)
    z = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    assert embedding_std(z) == pytest.approx(0.5, rel=1e-6)


def test_mocov3_keys_come_from_the_momentum_projector() -> None:
    """k = momentum_projector(momentum_encoder(x)) (no predictor), q = predictor(projector(encoder(x)));
    L = ctr(q1, k2) + ctr(q2, k1), each CE x 2T, T 0.2, written out by hand."""
    moco = build("mocov3").eval()
    perturb(moco.momentum_encoder, 1)
    perturb(moco.momentum_projector, 2, scale=0.2)
    views = batch_of_views(moco, n=6)
    x1, x2 = views["views"].unbind(1)
    with torch.no_grad():
        loss, _ = moco(views, STEP)
        q = [F.normalize(moco.predictor(moco.projector(timm_cls(moco.encoder, x))), dim=1) for x in (x1, x2)]
        k = [F.normalize(moco.momentum_projector(timm_cls(moco.momentum_encoder, x)), dim=1) for x in (x1, x2)]

        def ctr(a, b):
            logits = a @ b.t() / 0.2
            return (torch.logsumexp(logits, 1) - logits.diagonal()).mean() * 0.4

        expected = ctr(q[0], k[1]) + ctr(q[1], k[0])
    assert torch.allclose(loss, expected, rtol=1e-5)


# ----------------------------------------------------------------- token plumbing

def test_encode_equals_timms_forward_with_a_learned_class_position() -> None:
    """The class token takes its own position embedding (timm's and DINO's ViT add pos_embed[:, 0]
    to it); with a random, learned pos_embed the plumbing must match timm's forward_features."""
    torch.manual_seed(0)
    encoder = build_model(ARCH).eval()
    with torch.no_grad():
        encoder.pos_embed.normal_(std=0.5)
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        full = encoder.forward_features(x)
        assert torch.allclose(encode(encoder, x), full, atol=1e-5)
        assert torch.allclose(cls_features(encoder, x), full[:, 0], atol=1e-5)


# ----------------------------------------------------------------- MAE

def _patches(images: torch.Tensor, p: int) -> torch.Tensor:
    """(B, 3, H, W) -> (B, N, p p 3) in (row, col, channel) order, via F.unfold."""
    cols = F.unfold(images, kernel_size=p, stride=p)  # (B, 3 p p, N), channel-major
    b, _, n = cols.shape
    return cols.view(b, 3, p * p, n).permute(0, 3, 2, 1).reshape(b, n, p * p * 3)


def test_mae_reconstruction_matches_a_boolean_index_reference() -> None:
    """MAE: the encoder runs on [cls + its position, visible patches + their positions]; the
    decoder puts every visible latent back at its own raster position and a mask token at every
    hidden one, adds its sin-cos positions, and predicts every patch."""
    mae = build("mae", encoder_init="timm").eval()  # learned (random) positions: a dropped one shows
    with torch.no_grad():
        mae.encoder.pos_embed.normal_(std=0.5)
    views = batch_of_views(mae, n=3)
    images, mask = views["image"], views["mask"]
    enc, dec = mae.encoder, mae.decoder
    with torch.no_grad():
        got = mae.reconstruct(images, mask)
        for b in range(len(images)):
            x = enc.patch_embed(images[b:b + 1])[0] + enc.pos_embed[0, 1:]
            seq = torch.cat([enc.cls_token[0] + enc.pos_embed[0, :1], x[~mask[b]]])[None]
            latent = dec.embed(enc.norm(enc.blocks(enc.norm_pre(seq))))[0]
            full = dec.mask_token[0, 0].repeat(mask.shape[1], 1)
            full[~mask[b]] = latent[1:]
            z = torch.cat([latent[:1], full])[None] + dec.pos_embed
            expected = dec.pred(dec.norm(dec.blocks(z)))[0, 1:]
            assert torch.allclose(got[b], expected, atol=1e-5), b


@pytest.mark.parametrize("norm_pix", [True, False])
def test_mae_loss_follows_norm_pix_loss(norm_pix: bool) -> None:
    """MSE over hidden patches of the prediction against each patch's pixels, standardised per
    patch ((t - mean) / sqrt(unbiased var + 1e-6)) with norm_pix_loss, raw without."""
    mae = build("mae", norm_pix_loss=norm_pix).eval()
    views = batch_of_views(mae, n=3)
    images, mask = views["image"], views["mask"]
    with torch.no_grad():
        loss, _ = mae(views, STEP)
        pred = mae.reconstruct(images, mask)
    target = _patches(images, 4)
    if norm_pix:
        target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6).sqrt()
    per_patch = ((pred - target) ** 2).mean(-1)
    assert float(loss) == pytest.approx(float(per_patch[mask].mean()), rel=1e-5)


def test_mae_decoder_blocks_have_qkv_bias() -> None:
    """models_mae.py: decoder Block(decoder_embed_dim, decoder_num_heads, mlp_ratio, qkv_bias=True)."""
    decoder = build("mae").decoder
    assert all(block.attn.qkv.bias is not None for block in decoder.blocks)


# ----------------------------------------------------------------- SimMIM

def test_simmim_with_nothing_masked_decodes_the_encoders_own_patch_tokens() -> None:
    """No patch masked: the reconstruction is the pixel decoder on the patch tokens (all but the
    class token) of timm Beit's own forward_features."""
    simmim = build("simmim").eval()
    images = batch_of_views(simmim, n=2)["image"]
    nothing = torch.zeros(2, 8, 8, dtype=torch.bool)
    with torch.no_grad():
        got = simmim.reconstruct(images, nothing)
        expected = simmim.decoder(simmim.encoder.forward_features(images)[:, 1:], (8, 8))
    assert torch.allclose(got, expected, atol=1e-5)


# ----------------------------------------------------------------- GMML / SiT

def test_gmml_loss_is_alpha_reconstruction_plus_contrastive() -> None:
    """SiT: L = alpha * L_recons + L_contr (alpha weights the reconstruction, not the contrast)."""
    obj = build("gmml", alpha=2.0)
    with torch.no_grad():
        loss, m = obj(batch_of_views(obj, n=4), STEP)
    assert float(loss) == pytest.approx(2.0 * m["recon_loss"] + m["contrastive_loss"], rel=1e-6)


def test_gmml_reconstruction_decodes_the_patch_tokens_of_the_corrupted_view() -> None:
    """SiT's RECHead maps the encoder's patch tokens (not the class token) of the corrupted view
    back to pixels, each token to its own patch."""
    obj = build("gmml").eval()
    views = batch_of_views(obj, n=2)
    with torch.no_grad():
        out = obj.reconstruct(views, 0)
        expected = obj.decoder(obj.encoder.forward_features(out["corrupted"])[:, 1:], (8, 8))
    assert torch.allclose(out["reconstruction"], expected, atol=1e-5)


def test_gmml_replace_prob_is_the_probability_of_pasting_another_image() -> None:
    image = torch.randn(3, 32, 32)
    for prob, low, high in ((1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (0.85, 0.75, 0.95)):
        obj = build("gmml", replace_prob=prob)
        g = torch.Generator().manual_seed(0)
        drawn = torch.cat([obj.views(image, g)["from_other"] for _ in range(100)]).float()
        assert low <= float(drawn.mean()) <= high, prob


def test_gmml_noise_is_standard_normal() -> None:
    """Noise-corrupted groups take N(0, 1) values (the SiT / GMML papers' noise)."""
    obj = build("gmml")
    g = torch.Generator().manual_seed(0)
    noise = torch.cat([obj.views(torch.randn(3, 32, 32), g)["noise"].flatten() for _ in range(4)])
    assert abs(float(noise.mean())) < 0.03 and 0.97 < float(noise.std()) < 1.03


# ----------------------------------------------------------------- hybrid

def test_hybrid_with_dino_freezes_the_prototypes_in_the_first_epoch() -> None:
    """DINO's last layer gets no update in epoch 0 inside the hybrid too (the hybrid passes the
    hook on to its CL branch); from epoch 1 it trains."""
    for step, frozen in ((FIRST, True), (STEP, False)):
        hybrid = build("hybrid", cl="dino", cl_hparams=SMALL["dino"], lam=0.5)
        loss, _ = hybrid(batch_of_views(hybrid, n=4), step)
        loss.backward()
        hybrid.after_backward(step)
        assert (hybrid.cl.head.last_layer.weight_v.grad is None) is frozen


@pytest.mark.parametrize("lam", [0.0, 1.0])
def test_hybrid_at_an_end_of_lambda_says_it_leaves_parameters_unused(lam: float) -> None:
    """At lambda 0 or 1 one branch's heads get no gradient; the hybrid must say so, or DDP
    (find_unused_parameters False) fails on the first step."""
    hybrid = build("hybrid", lam=lam)
    loss, _ = hybrid(batch_of_views(hybrid, n=4), STEP)
    loss.backward()
    frozen = {id(p) for _, ema in hybrid.momentum_pairs() for p in ema.parameters()}
    unused = [n for n, p in hybrid.named_parameters() if p.requires_grad and id(p) not in frozen and p.grad is None]
    assert unused and hybrid.leaves_parameters_unused()
