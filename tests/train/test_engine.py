"""The training engine on a toy masked-reconstruction objective (no registry, no data module).

``ToyMIM`` and the helpers below are imported by test_resume.py and test_distributed.py.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn as nn
from safetensors.torch import load_file
from timm.layers import DropPath

from vitprobe import heap
from vitprobe.errors import ConfigError, OutputExistsError
from vitprobe.models.architecture import ArchSpec, build_model
from vitprobe.train import TrainConfig, train
from vitprobe.train.config import resolve_optim
from vitprobe.train.engine import (
    EpochShard,
    _check_resume,
    _schedule,
    clip_per_tensor,
    param_groups,
    sync_batchnorm,
)
from vitprobe.train.monitor import TrainingDivergedError
from vitprobe.train.objectives import get_objective, objective_class
from vitprobe.train.objectives.base import Objective, StepInfo, frozen_copy
from vitprobe.train.schedules import cosine_schedule, step_schedule


class ToyMIM(Objective):
    """Zero half of the patches (chosen in ``views``), reconstruct them with a linear decoder:
    loss = mean over images of the per-image MSE on masked patches (so a batch of 2b is the
    mean of two batches of b). An EMA copy of the decoder exercises the momentum path."""

    name = "toy_mim"
    defaults = {"base_lr": 1e-3, "min_lr": 1e-5, "warmup_epochs": 3, "weight_decay": 0.05,
                "weight_decay_end": 0.1, "momentum": 0.9, "betas": (0.9, 0.95),
                "clip_grad": None, "nan_at_step": -1, "blow_up_from_step": -1, "collapse_dim": None}

    def __init__(self, encoder: nn.Module, arch: ArchSpec, **hparams: Any):
        super().__init__(encoder, arch, **hparams)
        p = arch.patch_size
        self.decoder = nn.Linear(arch.embed_dim, 3 * p * p)
        self.decoder_ema = frozen_copy(self.decoder)
        self.collapse_dim = self.hparams["collapse_dim"]

    def momentum_pairs(self):
        return [(self.decoder, self.decoder_ema)]

    def views(self, image, g):
        n = self.arch.grid[0] * self.arch.grid[1]
        mask = torch.zeros(n, dtype=torch.bool)
        mask[torch.randperm(n, generator=g)[: n // 2]] = True
        return {"image": image, "mask": mask}

    def forward(self, views, step: StepInfo):
        x, mask = views["image"], views["mask"]
        p, (h, w) = self.arch.patch_size, self.arch.grid
        target = x.unfold(2, p, p).unfold(3, p, p).permute(0, 2, 3, 1, 4, 5).reshape(len(x), h * w, -1)
        keep = (~mask).float().reshape(-1, 1, h, w).repeat_interleave(p, 2).repeat_interleave(p, 3)
        tokens = self.encoder.forward_features(x * keep)[:, self.arch.num_prefix_tokens:]
        err = (self.decoder(tokens) - target).pow(2).mean(-1)
        loss = ((err * mask).sum(1) / mask.sum(1)).mean()
        if step.step == self.hparams["nan_at_step"]:
            loss = loss * float("nan")
        if 0 <= self.hparams["blow_up_from_step"] <= step.step:
            loss = loss * 1e4
        return loss, {"loss": loss.item(), "emb_std": 1e-6, "masked": mask.float().mean().item()}


def toy_dataset(n: int = 16, size: int = 32, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` random 'normalised images' as data items."""
    g = torch.Generator().manual_seed(seed)
    return [{"image": torch.randn(3, size, size, generator=g), "index": i} for i in range(n)]


def toy_config(out: Path, **changes: Any) -> TrainConfig:
    """Tiny preset, 16 images, batch 4, 2 epochs: 8 steps, on the CPU (where runs are
    deterministic) also on a machine with a GPU."""
    values = dict(method="mae", preset="tiny", epochs=2, batch_size=4, out=str(out), seed=3, device="cpu")
    return TrainConfig.from_overrides(values, **changes)


def run_toy(out: Path, resume: bool = False, **changes: Any) -> Path:
    """Train ToyMIM on the toy data."""
    return train(toy_config(out, **changes), resume=resume, dataset=toy_dataset(),
                 objective_factory=ToyMIM)


# ---------------------------------------------------------------- schedules and config
def test_cosine_schedule_known_values():
    s = cosine_schedule(1.0, 0.1, total_steps=10, warmup_steps=4, warmup_start=0.0)
    assert np.allclose(s[:4], [0.0, 0.25, 0.5, 0.75])
    assert s[4] == pytest.approx(1.0)
    half = 4 + 3  # cos(pi * 3 / 6) = 0: the midpoint of the decay
    assert s[half] == pytest.approx(0.55)
    assert np.all(np.diff(s[4:]) < 0) and s[-1] > 0.1
    m = cosine_schedule(0.996, 1.0, total_steps=5)
    assert m[0] == pytest.approx(0.996) and np.all(np.diff(m) > 0) and m[-1] < 1.0
    with pytest.raises(ValueError):
        cosine_schedule(1.0, 0.0, total_steps=4, warmup_steps=4)


def test_cosine_schedule_warms_up_from_zero_or_warmup_start_and_refuses_bad_lengths():
    s = cosine_schedule(1.0, 0.0, total_steps=6, warmup_steps=2)  # the warm-up starts at 0 by default
    assert s[0] == 0.0 and s[1] == pytest.approx(0.5) and s[2] == pytest.approx(1.0)
    r = cosine_schedule(1.0, 0.0, total_steps=6, warmup_steps=2, warmup_start=0.2)
    assert np.allclose(r[:3], [0.2, 0.6, 1.0])
    for total, warmup, message in ((0, 0, "total_steps must be positive, got 0"),
                                   (-3, 0, "total_steps must be positive, got -3"),
                                   (5, -1, "warm-up of -1 steps must be shorter")):
        with pytest.raises(ValueError, match=message):
            cosine_schedule(1.0, 0.0, total_steps=total, warmup_steps=warmup)


def test_a_relative_data_folder_is_recorded_as_the_folder_it_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert TrainConfig(method="mae", data="folder:imgs").data == f"folder:{tmp_path / 'imgs'}"
    assert TrainConfig(method="mae", data="voc:VOC2012:train").data == f"voc:{tmp_path / 'VOC2012'}:train"
    for spec in ("synthetic:64", "digits", "folder:/data/x", "folder:~/x"):
        assert TrainConfig(method="mae", data=spec).data == spec


def test_config_rejects_unknown_and_round_trips():
    with pytest.raises(ConfigError, match="unknown training option"):
        TrainConfig.from_overrides({"method": "mae", "learning_rate": 1.0})
    cfg = TrainConfig(method="hybrid", lam=0.4, preset="small", hparams={"mim_hparams": {"mask_ratio": 0.6}})
    assert TrainConfig.from_overrides(json.loads(json.dumps(cfg.to_dict()))) == cfg  # as checkpoints keep it
    for bad in (dict(method="byol"), dict(method="hybrid"), dict(method="mae", lam=0.5),
                dict(arch="vit_small_patch16_224", preset="tiny"), dict(batch_size=0),
                dict(preset="huge")):
        with pytest.raises(ConfigError) as err:
            TrainConfig(**bad)
        assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match=r"^--method hybrid needs --lambda, the weight of its contrastive loss.*"
                                          r"\(in a --config file lam: 0\.5; Python: lam=0\.5\)$"):
        TrainConfig(method="hybrid")  # not "got None"; each way of giving it named
    with pytest.raises(ConfigError, match=r"^--method hybrid needs --lambda in \[0, 1\], got 1.5$"):
        TrainConfig(method="hybrid", lam=1.5)


def test_presets_and_published_lengths():
    assert TrainConfig(method="mocov3", preset="vit_s16").arch_spec().num_heads == 12
    assert TrainConfig(method="dino", preset="vit_s16").arch_spec().num_heads == 6
    assert TrainConfig(method="mae", preset="vit_b16").total_epochs() == 800
    assert TrainConfig(method="dino", preset="vit_s16").total_epochs() == 100
    assert TrainConfig(method="dino").total_epochs() == 10  # tiny by default
    hp = {**ToyMIM.defaults, "warmup_epochs": 40}
    assert resolve_optim(TrainConfig(method="mae", epochs=30), hp)["warmup_epochs"] == 3
    for epochs, warmup in ((1, 0), (2, 1), (9, 1), (19, 1), (20, 2)):  # a tenth, at least one epoch
        assert resolve_optim(TrainConfig(method="mae", epochs=epochs), hp)["warmup_epochs"] == warmup
    assert resolve_optim(TrainConfig(method="mae", preset="vit_b16"), hp)["warmup_epochs"] == 40
    # a warm-up given under a short preset is kept; one as long as the run is refused
    given = TrainConfig(method="mae", epochs=10, hparams={"warmup_epochs": 3})
    assert resolve_optim(given, {**hp, "warmup_epochs": 3})["warmup_epochs"] == 3
    with pytest.raises(ConfigError, match=r"warm-up of 10 epochs does not fit in 10 epochs"):
        resolve_optim(TrainConfig(method="mae", epochs=10, hparams={"warmup_epochs": 10}),
                      {**hp, "warmup_epochs": 10})
    with pytest.raises(ConfigError, match=r"warm-up of 40 epochs does not fit in 20 epochs; pass "
                                          r"--set warmup_epochs=N with 0 <= N < 20"):
        resolve_optim(TrainConfig(method="mae", preset="vit_b16", epochs=20), hp)
    with pytest.raises(ConfigError, match=r"does not fit in 1 epoch; pass --set warmup_epochs=0$"):
        resolve_optim(TrainConfig(method="mae", preset="vit_b16", epochs=1), hp)


# ---------------------------------------------------------------- optimiser pieces
def test_param_groups_spare_biases_and_norms_by_default():
    arch = ArchSpec(patch_size=8, embed_dim=32, depth=2, num_heads=2, img_size=32)
    obj = ToyMIM(build_model(arch), arch)
    names = {id(p): n for n, p in obj.named_parameters()}
    decay, plain = ({names[id(p)] for p in g["params"]} for g in param_groups(obj))
    assert {"encoder.norm.weight", "encoder.blocks.0.attn.qkv.bias", "decoder.bias"} <= plain
    assert {"encoder.blocks.0.attn.qkv.weight", "encoder.patch_embed.proj.weight",
            "decoder.weight", "encoder.pos_embed", "encoder.cls_token"} <= decay
    assert not any(n.startswith("decoder_ema") for n in decay | plain)


def test_step_schedule_known_values():
    """Warm-up 2 of 8 steps, x0.1 from step ceil(0.75 x 8) = 6 (SimMIM: epoch 700 of 800)."""
    lr = step_schedule(1.0, 8, 2, 0.75, 0.1)
    assert np.allclose(lr, [0.0, 0.5, 1.0, 1.0, 1.0, 1.0, 0.1, 0.1])
    with pytest.raises(ValueError, match="after the 2 warm-up steps"):
        step_schedule(1.0, 8, 2, 0.25, 0.1)


def test_lr_drop_is_checked_against_min_lr_and_the_warm_up():
    hp = {"base_lr": 1e-4, "min_lr": None, "lr_drop": (0.875, 0.1), "warmup_epochs": 10}
    optim = resolve_optim(TrainConfig(method="simmim", preset="vit_b16", epochs=800), hp)
    assert optim["lr_drop"] == (0.875, 0.1) and optim["min_lr"] == 0.0
    with pytest.raises(ConfigError, match=r"min_lr 1e-06 is the end of a cosine decay.*--set lr_drop=null"):
        resolve_optim(TrainConfig(method="simmim", preset="vit_b16", epochs=800), {**hp, "min_lr": 1e-6})
    with pytest.raises(ConfigError, match=r"lr_drop at 0.875 of 10 epochs falls inside the warm-up of 9 epochs; "
                                          r"pass --set lr_drop=\[F,0.1\] with F > 0.9"):
        resolve_optim(TrainConfig(method="simmim", preset="vit_b16", epochs=10), {**hp, "warmup_epochs": 9})


@pytest.mark.parametrize("lr", [None, 1e-3])
def test_simmim_warms_up_from_its_warmup_lr_scaled_as_the_peak(lr):
    """SimMIM's ViT config: WARMUP_LR 5e-7 and BASE_LR 1e-4 per 512 images, both scaled by the
    batch, so the warm-up starts at peak x 5e-7 / 1e-4; --lr keeps that ratio. MAE starts at 0."""
    config = TrainConfig(method="simmim", preset="vit_b16", epochs=800, batch_size=128, lr=lr)
    hparams = objective_class("simmim").resolve_hparams({})
    s = _schedule(config, resolve_optim(config, hparams), images=1024, world_size=2, moves_teacher=False)
    peak = 1e-4 * 256 / 512 if lr is None else lr  # global batch 2 x 128
    assert s.peak_lr == pytest.approx(peak)
    start = peak * 5e-7 / 1e-4
    w = 10 * 4  # 10 warm-up epochs of 1024 / 256 steps
    assert s.lr[0] == pytest.approx(start)
    assert np.allclose(s.lr[:w], start + (peak - start) * np.arange(w) / w)
    assert s.lr[w] == pytest.approx(peak)
    mae = TrainConfig(method="mae", preset="vit_b16", epochs=800, batch_size=128, lr=lr)
    m = _schedule(mae, resolve_optim(mae, objective_class("mae").resolve_hparams({})), 1024, 2, False)
    assert m.lr[0] == 0.0 and m.lr[1] > 0.0


@pytest.mark.parametrize("preset", ["tiny", "small", "vit_s16", "vit_b16"])
def test_every_preset_keeps_simmims_warm_up_start_at_1_200_of_its_base_rate(preset):
    """A preset that raises SimMIM's base_lr raises its warmup_lr with it."""
    hparams = objective_class("simmim").resolve_hparams(TrainConfig(method="simmim", preset=preset).objective_hparams())
    assert hparams["warmup_lr"] / hparams["base_lr"] == pytest.approx(5e-7 / 1e-4)


def test_warmup_lr_above_base_lr_is_refused():
    config = TrainConfig(method="simmim", preset="vit_b16", epochs=800)
    hparams = objective_class("simmim").resolve_hparams({"warmup_lr": 1e-3})
    with pytest.raises(ConfigError, match=r"warmup_lr 0.001 exceeds base_lr 5e-05.*--set warmup_lr=V with V <= 5e-05"):
        resolve_optim(config, hparams)
    at_peak = objective_class("simmim").resolve_hparams({"warmup_lr": 5e-5})  # V <= base_lr, as it says
    assert resolve_optim(config, at_peak)["warmup_lr"] == 5e-5
    with pytest.raises(ConfigError, match="warmup_lr"):
        objective_class("simmim").resolve_hparams({"warmup_lr": -1e-7})


def test_min_lr_above_the_peak_lr_is_refused_before_the_rate_would_rise():
    """MAE at batch 64: peak = 1.5e-4 x 64 / 256 = 3.75e-5; a min_lr above it made the cosine
    climb (the run trained, its loss rising); at the peak itself the rate stays flat."""
    mae = TrainConfig(method="mae", preset="vit_s16", epochs=100, batch_size=64)

    def schedule(min_lr, config=mae):
        hparams = objective_class("mae").resolve_hparams({"min_lr": min_lr})
        return _schedule(config, resolve_optim(config, hparams), 1024, 1, False)

    with pytest.raises(ConfigError, match=r"min_lr 0.0001 exceeds the peak lr 3.75e-05 \(base_lr 0.00015 x global "
                                          r"batch 64 / 256\).*--set min_lr=V with V <= 3.75e-05"):
        schedule(1e-4)
    flat = schedule(3.75e-5)
    assert flat.lr.max() == pytest.approx(3.75e-5) and flat.lr[-1] == pytest.approx(3.75e-5)
    with pytest.raises(ConfigError, match=r"exceeds the peak lr 1e-05 \(--lr\)"):
        schedule(1e-4, dataclasses.replace(mae, lr=1e-5))


def test_clip_per_tensor_scales_each_gradient_separately():
    a, b = nn.Parameter(torch.zeros(4)), nn.Parameter(torch.zeros(3))
    a.grad, b.grad = torch.tensor([3.0, 4.0, 0.0, 0.0]), torch.tensor([0.1, 0.0, 0.0])
    clip_per_tensor([a, b], 1.0)
    assert a.grad.norm().item() == pytest.approx(1.0, abs=1e-5)
    assert torch.allclose(a.grad, torch.tensor([0.6, 0.8, 0.0, 0.0]), atol=1e-5)
    assert torch.equal(b.grad, torch.tensor([0.1, 0.0, 0.0]))


def test_shards_of_two_ranks_form_the_single_process_batches():
    one = list(EpochShard(22, 4, rank=0, world_size=1, seed=5, epoch=1))
    r0 = list(EpochShard(22, 2, rank=0, world_size=2, seed=5, epoch=1))
    r1 = list(EpochShard(22, 2, rank=1, world_size=2, seed=5, epoch=1))
    assert len(one) == 20 and len(set(one)) == 20
    for s in range(5):
        assert one[4 * s: 4 * s + 4] == r0[2 * s: 2 * s + 2] + r1[2 * s: 2 * s + 2]
    other_epoch = [i for _, i in EpochShard(22, 4, rank=0, world_size=1, seed=5, epoch=2)]
    assert other_epoch != [i for _, i in one]


# ---------------------------------------------------------------- end to end
def test_train_writes_loadable_checkpoint_and_log(tmp_path):
    from vitprobe.models import load_model

    final = run_toy(tmp_path / "run")
    assert final == tmp_path / "run" / "final.safetensors"
    model = load_model(final)
    saved = load_file(final)
    assert saved.keys() == model.state_dict().keys()
    assert all(torch.equal(saved[k], v) for k, v in model.state_dict().items())
    state = torch.load(tmp_path / "run" / "checkpoint.train_state.pt", map_location="cpu", weights_only=True)
    assert state["epoch"] == 2 and state["step"] == 8
    enc = {k[len("encoder."):]: v for k, v in state["objective"].items() if k.startswith("encoder.")}
    assert all(torch.equal(saved[k], enc[k]) for k in saved)
    init = build_model(toy_config(tmp_path).arch_spec()).state_dict()
    assert not torch.equal(init["blocks.0.attn.qkv.weight"], saved["blocks.0.attn.qkv.weight"])

    import pandas as pd

    log = pd.read_csv(tmp_path / "run" / "log.csv")
    assert list(log.columns[:6]) == ["epoch", "step", "loss", "lr", "wd", "momentum"]
    assert list(log["step"]) == list(range(8)) and {"emb_std", "masked"} <= set(log.columns)
    peak = 1e-3 * 4 / 256
    expected_lr = cosine_schedule(peak, 1e-5, 8, warmup_steps=4)  # tiny, 2 epochs: one warm-up epoch
    assert np.allclose(log["lr"], expected_lr)
    assert np.allclose(log["momentum"], cosine_schedule(0.9, 1.0, 8))
    wd = cosine_schedule(0.05, 0.1, 8)  # the weight decay rises from weight_decay to weight_decay_end
    assert np.allclose(log["wd"], wd)
    decays = sorted(group["weight_decay"] for group in state["optimizer"]["param_groups"])
    assert decays[0] == 0.0 and decays[-1] == pytest.approx(wd[-1])  # applied (biases, norms: none), not just logged
    assert log["loss"].iloc[-4:].mean() < log["loss"].iloc[:4].mean()


@pytest.mark.parametrize("method,hp,clipping", [
    ("dino", {"out_dim": 32, "n_local": 0, "head_hidden_dim": 32, "head_bottleneck_dim": 16}, "per tensor"),
    ("mocov3", {"proj_hidden_dim": 32, "pred_hidden_dim": 32, "out_dim": 16}, "global norm"),
])
def test_each_objective_clips_gradients_as_its_published_code_does(tmp_path, monkeypatch, method, hp, clipping):
    """DINO's (and SiT's) code clips each gradient tensor separately; MoCo v3's clips the global norm."""
    import vitprobe.train.engine as engine

    calls: list[str] = []
    per_tensor, global_norm = engine.clip_per_tensor, torch.nn.utils.clip_grad_norm_
    monkeypatch.setattr(engine, "clip_per_tensor", lambda *a, **k: (calls.append("per tensor"), per_tensor(*a, **k))[1])
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_",
                        lambda *a, **k: (calls.append("global norm"), global_norm(*a, **k))[1])
    train(toy_config(tmp_path / "run", method=method, epochs=1, hparams={**hp, "clip_grad": 1.0}),
          dataset=toy_dataset(), progress=False)
    assert calls and set(calls) == {clipping}


def test_numpy_numbers_in_a_config_are_recorded_as_python_numbers(tmp_path):
    """A sweep over np.linspace (or a float32 from a tensor) trains and resumes: config.json and
    the train state (read with weights_only=True) take Python numbers only."""
    from fractions import Fraction

    config = toy_config(tmp_path / "run", epochs=1, seed=np.int64(3), batch_size=np.int32(4),
                        hparams={"weight_decay": np.float32(0.25), "clip_grad": Fraction(1, 2), "betas": [np.float64(0.9), 0.95]})
    assert type(config.seed) is int and type(config.batch_size) is int
    assert type(config.hparams["weight_decay"]) is float and config.hparams["clip_grad"] == 0.5
    assert type(config.hparams["betas"][0]) is float
    train(config, dataset=toy_dataset(), objective_factory=ToyMIM, progress=False)
    saved = json.loads((tmp_path / "run" / "config.json").read_text(encoding="utf-8"))
    assert saved["hparams"]["weight_decay"] == 0.25 and saved["seed"] == 3
    torch.load(tmp_path / "run" / "checkpoint.train_state.pt", weights_only=True)


def test_python_numbers_converts_numbers_inside_containers_and_keeps_bools_and_tuples():
    from fractions import Fraction

    from vitprobe.json_safe import python_numbers

    out = python_numbers({"a": (np.int64(2), np.float32(0.5)), "b": [True, np.bool_(False), Fraction(1, 4)], "c": "x"})
    assert out == {"a": (2, 0.5), "b": [True, False, 0.25], "c": "x"}
    assert [type(v) for v in out["a"]] == [int, float] and [type(v) for v in out["b"]] == [bool, bool, float]


def test_the_student_trains_with_stochastic_depth_and_the_teacher_without(tmp_path):
    made: list[Objective] = []

    def dino(encoder: nn.Module, arch: ArchSpec, **hp: Any) -> Objective:
        made.append(get_objective("dino", encoder, arch, **hp))
        return made[-1]

    hp = {"out_dim": 32, "n_local": 0, "head_hidden_dim": 32, "head_bottleneck_dim": 16, "drop_path": 0.3}
    train(toy_config(tmp_path / "run", method="dino", epochs=1, hparams=hp), dataset=toy_dataset(),
          objective_factory=dino)
    blocks = made[0].encoder.blocks
    assert isinstance(blocks[0].drop_path1, nn.Identity)
    assert blocks[-1].drop_path1.drop_prob == pytest.approx(0.3) and isinstance(blocks[-1].drop_path2, DropPath)
    assert not any(isinstance(m, DropPath) for m in made[0].teacher.modules())


@pytest.mark.parametrize("method,lam", [("dino", None), ("mocov3", None), ("mae", None),
                                        ("simmim", None), ("gmml", None), ("hybrid", 0.5)])
def test_every_objective_trains_under_bf16_autocast(tmp_path, method, lam):
    """The AMP path on the CPU (bf16 autocast; fp16 needs CUDA): every objective's heads, masks
    and losses accept bf16 activations, the loss stays finite, and the weights and the
    checkpoint stay float32 (yet differ from an fp32 run's: autocast was on)."""
    runs = {amp: load_file(train(toy_config(tmp_path / amp, method=method, lam=lam, epochs=3, amp=amp),
                                 dataset=toy_dataset(n=8)))
            for amp in ("bf16", "fp32")}
    assert {t.dtype for t in runs["bf16"].values()} == {torch.float32}
    assert not all(torch.equal(runs["bf16"][k], runs["fp32"][k]) for k in runs["fp32"])
    import pandas as pd

    loss = pd.read_csv(tmp_path / "bf16" / "log.csv")["loss"]
    assert np.isfinite(loss).all() and len(loss) == 6


def test_a_collapse_is_advised_on_where_it_starts_and_said_in_short_while_it_persists(tmp_path):
    """Epochs 0-1 collapsed, 2 calm, 3-4 collapsed again: advice at 0 and 3, short lines at 1
    and 4; a monitor told of epochs 0-3 (a resumed run) says epoch 4 the same way."""
    from vitprobe.train.monitor import Monitor
    from vitprobe.train.objectives import collapse_warnings

    spread = [1e-5, 1e-5, 0.06, 1e-5, 1e-5]  # embedding std per epoch, K = 256: healthy is 1/16

    def said(monitor: Monitor, epochs: range) -> list[str]:
        out = []
        for epoch in epochs:
            monitor.step(epoch, epoch, 1.0, 0.1, 0.0, None, {"emb_std": spread[epoch]})
            out += [f"epoch {epoch}: {text}" for text in monitor.end_epoch(epoch)]
        return out

    def monitor(before: list[str]) -> Monitor:
        return Monitor(tmp_path, False, 5, 0, 1, lambda means: collapse_warnings(means, 256), False, said=before)

    full = said(monitor([]), range(5))
    assert [w.split(":")[0] for w in full] == ["epoch 0", "epoch 1", "epoch 3", "epoch 4"]
    assert "lower the learning rate" in full[0] and "lower the learning rate" in full[2]
    assert full[1].endswith("since epoch 0, whose warning gives the advice") and "learning rate" not in full[1]
    assert full[3].endswith("since epoch 3, whose warning gives the advice")
    assert said(monitor(full[:3]), range(4, 5)) == full[3:]


def test_a_hybrid_logs_each_branch_once_and_no_momentum_at_lambda_0(tmp_path):
    """log.csv: the branches' losses as mim_loss / cl_loss (not the MIM one again as recon_loss);
    at lambda 0 no teacher moves, so the momentum column is empty."""
    import pandas as pd

    for lam in (0.0, 0.5):
        train(toy_config(tmp_path / str(lam), method="hybrid", lam=lam, epochs=1), dataset=toy_dataset(n=8))
    mixed, mim_only = (pd.read_csv(tmp_path / lam / "log.csv") for lam in ("0.5", "0.0"))
    assert {"mim_loss", "cl_loss"} <= set(mixed.columns) and "recon_loss" not in mixed.columns
    assert mixed["momentum"].notna().all() and mim_only["momentum"].isna().all()
    assert "cl_loss" not in mim_only.columns and (mim_only["mim_loss"] == mim_only["loss"]).all()


def test_training_keeps_freed_memory_for_reuse(tmp_path, malloc_calls):
    run_toy(tmp_path / "run", epochs=1)
    assert ("mallopt", heap.M_TRIM_THRESHOLD, heap.RETAINED_TRIM_THRESHOLD) in malloc_calls


def test_views_do_not_depend_on_worker_count(tmp_path):
    run_toy(tmp_path / "a", epochs=1)
    run_toy(tmp_path / "b", epochs=1, num_workers=2)
    a, b = load_file(tmp_path / "a" / "final.safetensors"), load_file(tmp_path / "b" / "final.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_too_few_images_or_a_missing_gpu_fail_before_training(tmp_path):
    with pytest.raises(ConfigError, match=r"global batch of 32; lower the batch size \(--batch-size, or batch_size in a training config\)$"):
        run_toy(tmp_path / "few", batch_size=32)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA"):
            run_toy(tmp_path / "gpu", device="cuda")
    assert not (tmp_path / "few").exists() and not (tmp_path / "gpu").exists()


def test_train_leaves_the_callers_generators_grad_mode_and_determinism_as_they_were(tmp_path):
    import random

    import numpy as np

    torch.manual_seed(11), np.random.seed(11), random.seed(11)
    before = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        with torch.no_grad():  # a notebook cell inside no_grad still trains
            run_toy(tmp_path / "run", epochs=1)
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
    finally:
        torch.use_deterministic_algorithms(False)
    assert torch.equal(torch.get_rng_state(), before[0])
    assert np.array_equal(np.random.get_state()[1], before[1]) and random.getstate() == before[2]


def test_seeded_draws_what_each_generator_seeded_alone_draws():
    """Inside ``seeded(s)`` Python's, NumPy's and torch's global generators draw what fresh ones
    seeded with s draw (NumPy's with s mod 2**32, the largest seed it takes)."""
    import random

    from vitprobe.seeding import check_seed, seeded

    for seed in (0, 5, 2**33 + 2**31 + 7):
        with seeded(seed):
            drawn = (random.random(), np.random.random(), torch.rand(3))
        assert drawn[0] == random.Random(seed).random()
        assert drawn[1] == np.random.RandomState(seed % 2**32).random_sample()
        assert torch.equal(drawn[2], torch.rand(3, generator=torch.Generator().manual_seed(seed)))
    assert type(check_seed(np.int64(7))) is int and check_seed(np.int64(7)) == 7


def test_a_given_dataset_is_recorded_as_the_runs_data(tmp_path):
    import json

    from vitprobe.data import resolve_dataset

    run_toy(tmp_path / "list", epochs=1)
    assert json.loads((tmp_path / "list" / "config.json").read_text())["data"] == "custom:list[16]"
    digits = resolve_dataset("digits", 32, split="train")
    train(toy_config(tmp_path / "digits", epochs=1, batch_size=256), dataset=digits, objective_factory=ToyMIM)
    assert json.loads((tmp_path / "digits" / "config.json").read_text())["data"] == "digits [split train]"


def test_a_dataset_of_image_label_pairs_trains_as_its_item_dicts(tmp_path):
    """A TensorDataset of (image, label) pairs trains the weights of the same images given as
    item dicts, and the run records the pairs' own dataset."""
    import json

    items = toy_dataset()
    images = torch.stack([item["image"] for item in items])
    pairs = torch.utils.data.TensorDataset(images, torch.zeros(len(items), dtype=torch.long))
    as_dicts = train(toy_config(tmp_path / "dicts", epochs=1), dataset=items, objective_factory=ToyMIM)
    as_pairs = train(toy_config(tmp_path / "pairs", epochs=1), dataset=pairs, objective_factory=ToyMIM)
    assert json.loads((tmp_path / "pairs" / "config.json").read_text())["data"] == "custom:TensorDataset[16]"
    from safetensors.torch import load_file

    left, right = load_file(as_dicts), load_file(as_pairs)
    assert left.keys() == right.keys() and all(torch.equal(left[k], right[k]) for k in left)
    # a resume must be given the dataset again (it met "unknown dataset kind 'custom'")
    with pytest.raises(ConfigError, match=r"--resume: the run in \S+ trained on a dataset given to train\(\) "
                                          r"\(custom:TensorDataset\[16\]\), which no spec names; pass the same one "
                                          r"again: train\(\.\.\., resume=True, dataset=\.\.\.\)$"):
        train({"out": str(tmp_path / "pairs")}, resume=True, objective_factory=ToyMIM, progress=False)
    assert train({"out": str(tmp_path / "pairs")}, resume=True, dataset=pairs, objective_factory=ToyMIM,
                 progress=False) == as_pairs  # complete: nothing to do


def test_a_fresh_run_starts_its_own_log_and_keeps_a_foreign_one(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "log.csv").write_text("time,msg\n1,x\n", encoding="utf-8")
    with pytest.raises(OutputExistsError, match=r"log.csv is not a vitprobe training log .* move it"):
        run_toy(out, epochs=1)
    assert (out / "log.csv").read_text(encoding="utf-8") == "time,msg\n1,x\n"
    assert not (out / "config.json").exists()
    # A log left by a run that stopped before its first checkpoint (another objective's
    # columns) is replaced: the new run logs its own columns from step 0.
    (out / "log.csv").write_text("epoch,step,loss,lr,wd,momentum,other\n0,0,9,1,1,,3\n", encoding="utf-8")
    run_toy(out, epochs=1)
    header, first = (out / "log.csv").read_text(encoding="utf-8").splitlines()[:2]
    assert "other" not in header and "masked" in header and first.startswith("0,0,")
    for torn in ("", "epoch,st"):  # a header torn by a kill before the first row is the start of a log
        shutil.rmtree(out)
        out.mkdir()
        (out / "log.csv").write_text(torn, encoding="utf-8")
        run_toy(out, epochs=1)
        assert (out / "log.csv").read_text(encoding="utf-8").startswith("epoch,step,loss,")


def test_existing_run_is_not_overwritten(tmp_path):
    run_toy(tmp_path / "run", epochs=1)
    with pytest.raises(OutputExistsError, match="--resume"):
        run_toy(tmp_path / "run", epochs=1)


def test_a_second_training_into_a_folder_in_use_is_refused_before_it_touches_it(tmp_path):
    """While one process trains into --out (holding its lock), a resume or a new run there fails
    at once, naming the holder; the first run's files are untouched; once it ends, --resume works."""
    from vitprobe.train.run_lock import RunLock

    out, fresh = tmp_path / "run", tmp_path / "fresh"
    run_toy(out, epochs=1)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.name != ".lock"}
    (out / ".checkpoint.staging").mkdir()  # the first process is writing a checkpoint
    fresh.mkdir()
    held, held_fresh = RunLock(), RunLock()
    held.acquire(out)
    held_fresh.acquire(fresh)  # a new run that has not saved anything yet
    try:
        for folder, resume in ((out, True), (out, False), (fresh, False)):  # a new run was told "pass --resume"
            with pytest.raises(OutputExistsError, match=rf"{folder}: another process \(pid \d+\) is training "
                                                        "into this folder; wait for it to end"):
                run_toy(folder, resume=resume, epochs=1)
        assert (out / ".checkpoint.staging").is_dir()  # not "recovered" under the writer's feet
        assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.name != ".lock"} == before
        assert [p.name for p in fresh.iterdir()] == [".lock"]
    finally:
        held.release()
        held_fresh.release()
    (out / ".checkpoint.staging").rmdir()
    assert run_toy(out, resume=True, epochs=1) == out / "final.safetensors"  # the lock went with its holder


def test_an_out_that_is_or_lies_under_a_file_is_refused(tmp_path):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    with pytest.raises(OutputExistsError, match="exists and is not a folder"):
        run_toy(a_file, epochs=1)
    with pytest.raises(OutputExistsError, match="is a file, not a folder"):
        run_toy(a_file / "run", epochs=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_non_finite_loss_stops_and_keeps_the_last_checkpoint(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(TrainingDivergedError) as err:
        run_toy(out, hparams={"nan_at_step": 5})
    msg = str(err.value)
    assert "\n" not in msg and "step 5" in msg and "--lr" in msg
    assert str(out / "checkpoint.safetensors") in msg
    state = torch.load(out / "checkpoint.train_state.pt", weights_only=True)
    assert state["step"] == 4 and not (out / "final.safetensors").exists()


def test_a_loss_a_hundred_times_its_first_value_is_warned_once_before_any_nan(tmp_path, capsys):
    run_toy(tmp_path / "run", hparams={"blow_up_from_step": 3})
    text = "".join(capsys.readouterr())
    assert text.count("the run is diverging") == 1 and "step 3: loss" in text
    run_toy(tmp_path / "calm")
    assert "diverging" not in "".join(capsys.readouterr())


def test_collapse_warning_printed_once_per_epoch(tmp_path, capsys):
    run_toy(tmp_path / "run", hparams={"collapse_dim": 64})
    printed = capsys.readouterr()
    text = printed.out + printed.err
    assert text.count("contrastive collapse") == 2
    assert "epoch 0" in text and "epoch 1" in text


def test_cli_bad_options_fail_in_one_line_before_work(tmp_path, capsys):
    from vitprobe.cli import main

    for argv in (["--method", "mae", "--lambda", "0.5"], ["--method", "nope"],
                 ["--method", "mae", "--set", "oops"], ["--method", "mae", "--amp", "fp8"],
                 ["--method", "mae", "--amp", "fp16", "--device", "cpu"],
                 ["--method", "mae", "--set", "mask_ratio=0.5", "--set", "mask_ratio=0.6"]):
        code = main(["train", "--data", "synthetic:8", "--out", str(tmp_path / "x"), *argv])
        err = capsys.readouterr().err.strip()
        assert code == 2 and err.startswith("vitprobe: error:") and "\n" not in err
    assert not (tmp_path / "x").exists()


def test_cli_trains_a_registered_objective_on_a_dataset_spec(tmp_path, capsys):
    from vitprobe.cli import main
    from vitprobe.models import load_model

    out = tmp_path / "run"
    code = main(["train", "--method", "simmim", "--data", "synthetic:16", "--epochs", "1",
                 "--batch-size", "8", "--out", str(out), "--set", "clip_grad=1.0", "--set", "mask_ratio=0.5",
                 "--no-progress"])
    import pandas as pd

    captured = capsys.readouterr()
    assert captured.err == ""  # no progress bar, no plan
    printed = captured.out.strip().splitlines()
    assert code == 0 and printed[-1].endswith("final.safetensors")
    first_loss = pd.read_csv(out / "log.csv").query("epoch == 0")["loss"].mean()
    assert printed[-2] == (f"simmim loss (L1 on the masked patches' pixels, mask ratio 0.5 in 8-px mask patches) "
                           f"on synthetic:16, mean of logged steps: {first_loss:.4g} over 1 epoch; "
                           f"log: {out / 'log.csv'}")  # which loss, under which hparams, not just "loss"
    model = load_model(out / "final.safetensors")
    assert model.vitprobe_info["format"] == "vitprobe"
    saved = TrainConfig.from_overrides(json.loads((out / "config.json").read_text(encoding="utf-8")))
    assert saved.hparams == {"clip_grad": 1.0, "mask_ratio": 0.5} and saved.method == "simmim"
    assert json.loads((out / "config.json").read_text(encoding="utf-8"))["preset"] == "tiny"  # the default, named
    # resuming the finished run changes nothing (but the lock file, which names the last process)
    files = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.iterdir() if p.is_file() and p.name != ".lock"}
    assert main(["train", "--method", "simmim", "--data", "synthetic:16", "--epochs", "1", "--batch-size", "8",
                 "--out", str(out), "--set", "clip_grad=1.0", "--no-progress", "--resume"]) == 0
    assert f"{out}: the run is complete (1 of 1 epochs); nothing to do" in capsys.readouterr().out
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.iterdir()
            if p.is_file() and p.name != ".lock"} == files
    # with the progress bar, the plan comes first: what will run, for how long, at what rate
    assert main(["train", "--method", "simmim", "--data", "synthetic:16", "--epochs", "2", "--batch-size", "8",
                 "--out", str(tmp_path / "shown")]) == 0
    first = capsys.readouterr().err.splitlines()[0]
    assert first.startswith("training simmim (preset tiny: ViT in BEiT layout (relative position bias shared, layer "
                            "scale 0.1, no absolute position embedding) 32 px, patch 4, width 64, 4 blocks) on synthetic:16: "
                            "2 epochs x 2 steps of 8 images, peak lr ") and first.endswith(
                            f"after 1 warm-up epoch -> {tmp_path / 'shown'}")


@pytest.mark.parametrize("log_every,why", [(1, "log.csv lost the others' rows"),
                                           (4, "a smaller --log-every logs more")])
def test_the_loss_summary_says_why_epochs_lack_a_logged_step(tmp_path, log_every, why):
    """Epochs 0 and 2 of 4 logged: a large --log-every skips whole epochs, but at 1 every epoch
    logs, so the missing rows were lost (it blamed --log-every either way)."""
    from vitprobe.train import loss_summary

    (tmp_path / "log.csv").write_text("epoch,step,loss,lr,wd,momentum\n0,0,3.0,1,0,\n0,1,2.0,1,0,\n2,8,1.5,1,0,\n")
    config = TrainConfig(method="mae", data="synthetic:16", epochs=4, log_every=log_every)
    assert loss_summary(tmp_path, config).endswith(
        f"by epoch, mean of logged steps: 2.5 -> 1.5 over the 2 epochs of 4 with a logged step ({why}); "
        f"log: {tmp_path / 'log.csv'}")


def test_a_dataset_given_to_train_is_checked_as_analysis_checks_it_and_replaces_data_said(tmp_path):
    """train(dataset=...) read images unchecked (0..255 values trained silently) and ignored a
    data given beside it unsaid."""
    from vitprobe.errors import VitprobeWarning

    with pytest.warns(VitprobeWarning, match=r"train: data 'digits' is not read: the dataset given replaces it "
                                             r"\(the run records it as 'custom:list\[16\]'\); leave data out"):
        train(toy_config(tmp_path / "a", epochs=1, data="digits"), dataset=toy_dataset(), objective_factory=ToyMIM,
              progress=False)
    raw = [{"image": torch.rand(3, 32, 32) * 255} for _ in range(16)]
    with pytest.warns(VitprobeWarning, match=r"dataset list: the first image's values lie in .*like 0..255 pixels"):
        train(toy_config(tmp_path / "b", epochs=1), dataset=raw, objective_factory=ToyMIM, progress=False)
    with pytest.raises(ConfigError, match=r"dataset list: 'image' is torch.uint8, not torch.float32"):
        train(toy_config(tmp_path / "c", epochs=1), dataset=[{"image": torch.zeros(3, 32, 32, dtype=torch.uint8)}] * 16,
              objective_factory=ToyMIM, progress=False)
    assert not (tmp_path / "c").exists()


def test_train_takes_a_dict_and_refuses_other_inputs_in_one_line(tmp_path):
    options = {"method": "simmim", "data": "synthetic:16", "epochs": 1, "batch_size": 8,
               "out": str(tmp_path / "run")}
    out = train(options, progress=False)
    assert out.is_file()
    import pandas as pd

    from vitprobe.train import loss_summary
    loss = pd.read_csv(out.parent / "log.csv")["loss"].mean()
    assert loss_summary(out.parent) == (  # what the command line prints, from the run's config.json
        "simmim loss (L1 on the masked patches' pixels, mask ratio 0.6 in 8-px mask patches) on synthetic:16, mean of "
        f"logged steps: {loss:.4g} over 1 epoch; log: {out.parent / 'log.csv'}")
    # a train state saved by another version of the objective (a head gained a layer)
    from vitprobe.errors import CheckpointError
    from vitprobe.train.checkpointing import STATE_FILE

    state_path = tmp_path / "run" / STATE_FILE
    state = torch.load(state_path, weights_only=False)
    state["objective"] = {k: v for k, v in state["objective"].items() if not k.startswith("decoder.")}
    torch.save(state, state_path)
    with pytest.raises(CheckpointError, match="does not fit this version's simmim objective"):
        train(options, resume=True, progress=False)
    with pytest.raises(ConfigError, match="unknown training option"):
        train({"methd": "mae"})
    with pytest.raises(ConfigError, match="train takes a TrainConfig"):
        train("mae")
    with pytest.raises(ConfigError, match="dataset must be a sized Dataset whose items are .image, label. pairs or dicts"):
        train(TrainConfig(method="mae", out=str(tmp_path / "t")), dataset=torch.randn(64, 3, 32, 32))


def test_resume_accepts_a_saved_config_that_left_defaults_unnamed():
    """Saved and given options are compared with their defaults filled in: a run saved with
    preset and epochs null resumes with them named; only a larger --epochs is told that a run
    cannot be extended."""
    config = TrainConfig(method="mae", epochs=2)
    default_epochs = TrainConfig(method="mae").resolved()["epochs"]  # the tiny preset's
    saved = {**config.to_dict(), "preset": None}
    _check_resume(config, {"config": saved, "world_size": 1}, world_size=1)
    unnamed = {**saved, "epochs": None}
    _check_resume(TrainConfig(method="mae", epochs=default_epochs),
                  {"config": unnamed, "world_size": 1}, world_size=1)
    assert TrainConfig(method="mae").preset is None and TrainConfig(method="mae").resolved()["preset"] == "tiny"
    _check_resume(TrainConfig(method="mae", epochs=2, amp="fp32"), {"config": saved, "world_size": 1}, world_size=1)
    with pytest.raises(ConfigError, match=r"--amp was \"auto\", now \"bf16\""):  # on a CPU auto is fp32
        _check_resume(TrainConfig(method="mae", epochs=2, amp="bf16"), {"config": saved, "world_size": 1}, world_size=1)
    with pytest.raises(ConfigError, match="to its own 2 epochs .* cannot be extended; train longer in a new"):
        _check_resume(TrainConfig(method="mae", epochs=3), {"config": saved, "world_size": 1}, world_size=1)
    with pytest.raises(ConfigError, match=r"--resume: the run in \S+ trains mae, not simmim; resume with --method mae"):
        _check_resume(TrainConfig(method="simmim", epochs=2), {"config": saved, "world_size": 1}, world_size=1)
    with pytest.raises(ConfigError, match=r"--resume: options differ from the run in \S+ \(--epochs was 2, now 1\)"):
        _check_resume(TrainConfig(method="mae", epochs=1), {"config": saved, "world_size": 1}, world_size=1)
    with pytest.raises(ConfigError, match=r"\(--batch-size was 64, now 2; --epochs was 2, now 3; "
                                          r"--set was \{\}, now \{\"mask_ratio\": 0.5\}\)"):
        _check_resume(TrainConfig(method="mae", epochs=3, batch_size=2, hparams={"mask_ratio": 0.5}),
                      {"config": saved, "world_size": 1}, world_size=1)


def test_a_default_config_can_switch_to_an_arch():
    """The default preset is not written into the fields, so replacing arch stays valid."""
    import dataclasses

    assert dataclasses.replace(TrainConfig(method="mae"), arch="vit_tiny_patch16_224").preset_name is None


def test_mocov3_heads_sync_batchnorm_only_when_data_parallel_on_gpus():
    """Multi-GPU runs normalise over the global batch (MoCo v3's SyncBN) with the same
    parameters and state-dict keys; one process, or CPU processes, keep plain BatchNorm."""
    from vitprobe.train.objectives import get_objective

    arch = ArchSpec(family="vit", patch_size=4, embed_dim=32, depth=1, num_heads=2, img_size=16)
    objective = get_objective("mocov3", build_model(arch), arch, proj_hidden_dim=16,
                              pred_hidden_dim=16, out_dim=8)
    keys = set(objective.state_dict())
    norms = [m for m in objective.modules() if isinstance(m, nn.BatchNorm1d)]
    assert norms
    for device, world in ((torch.device("cpu"), 2), (torch.device("cuda", 0), 1)):
        assert sync_batchnorm(objective, device, world) is objective
        assert not any(isinstance(m, nn.SyncBatchNorm) for m in objective.modules())
    params = {id(p) for p in objective.parameters()}
    synced = sync_batchnorm(objective, torch.device("cuda", 0), 2)
    assert sum(isinstance(m, nn.SyncBatchNorm) for m in synced.modules()) == len(norms)
    assert not any(type(m) is nn.BatchNorm1d for m in synced.modules())
    assert set(synced.state_dict()) == keys
    assert {id(p) for p in synced.parameters()} == params


def test_reconstructions_are_refused_in_one_line_for_objectives_without_gmmls_decoder(tmp_path):
    from vitprobe.errors import CheckpointError
    from vitprobe.train import TrainConfig
    from vitprobe.train.reconstruct import reconstruct_examples

    final = train(TrainConfig(method="simmim", preset="tiny", data="synthetic:16", epochs=1, batch_size=16,
                              out=str(tmp_path / "simmim")), progress=False)
    with pytest.raises(CheckpointError, match="a simmim run has no reconstruction decoder; reconstructions need a gmml"):
        reconstruct_examples(final, "synthetic:4")


def test_a_lost_torchrun_process_is_one_line_on_the_survivors(tmp_path, capsys, monkeypatch):
    """Rank 1 killed mid-training: rank 0's next collective fails in gloo; it says so in one
    line with what to do next, exit 1. The same RuntimeError outside torchrun is a bug: raised."""
    import vitprobe.train as train_module
    from vitprobe.cli import main

    def collective_failed(*args, **kwargs):
        raise RuntimeError("[/__w/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:545] Read error "
                           "[127.0.0.1]:1200: Connection reset by peer. This is typically caused by ...")

    monkeypatch.setattr(train_module, "train", collective_failed)
    argv = ["train", "--method", "mae", "--data", "synthetic:16", "--out", str(tmp_path / "run")]
    with pytest.raises(RuntimeError, match="Connection reset by peer"):
        main(argv)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    assert main(argv) == 1
    assert capsys.readouterr().err == (
        "vitprobe: error (rank 0): another torchrun process stopped or lost its connection (Read error "
        "[127.0.0.1]:1200: Connection reset by peer); its output or torchrun's report of its exit says why; no checkpoint was written to "
        f"{tmp_path / 'run'} yet, so the same command again starts the run over\n")


def test_an_interrupted_training_says_how_to_continue_once(tmp_path, capsys, monkeypatch):
    import vitprobe.train as train_module
    from vitprobe.cli import main

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "train", interrupted)
    argv = ["train", "--method", "mae", "--data", "synthetic:16", "--out", str(tmp_path / "run")]
    assert main(argv) == 130
    assert capsys.readouterr().err == (f"vitprobe: interrupted; no checkpoint was written to {tmp_path / 'run'} "
                                       "yet, so the same command again starts the run over\n")
    from vitprobe.train.checkpointing import STATE_FILE

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / STATE_FILE).write_bytes(b"")  # a checkpoint was written before the stop
    assert main(argv) == 130
    assert capsys.readouterr().err == (f"vitprobe: interrupted; vitprobe train --resume --out {tmp_path / 'run'} "
                                       "continues from the last checkpoint\n")
    from vitprobe.cli import Terminated

    def terminated(*args, **kwargs):
        raise Terminated  # what SIGTERM raises

    monkeypatch.setattr(train_module, "train", terminated)
    assert main(argv) == 143
    assert capsys.readouterr().err.startswith("vitprobe: terminated; vitprobe train --resume --out")
    monkeypatch.setenv("WORLD_SIZE", "2")  # under torchrun: the resume must be launched the same way
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert main(argv) == 143
    assert capsys.readouterr().err == (
        "vitprobe: terminated (torchrun stops every process when one fails or is stopped; its report below names "
        f"which); torchrun --nproc_per_node 2 -m vitprobe train --resume --out {tmp_path / 'run'} continues from "
        "the last checkpoint\n")
    monkeypatch.setenv("RANK", "1")  # another torchrun process: rank 0 says it
    assert main(argv) == 143
    assert capsys.readouterr().err == ""


def test_a_run_that_leaves_many_images_out_of_each_epoch_says_so(tmp_path):
    """synthetic:100 at --batch-size 64 trained on 64 images an epoch, said only by the plan line."""
    with pytest.warns(UserWarning, match=r"each epoch trains on 12 of the 16 images of .*another 4 are left out"):
        run_toy(tmp_path / "uneven", epochs=1, batch_size=12)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        run_toy(tmp_path / "even", epochs=1, batch_size=8)


def test_only_whole_rows_under_a_training_logs_header_are_read(tmp_path):
    from vitprobe.train.monitor import is_training_log, read_log

    log = tmp_path / "log.csv"
    log.write_text("epoch,step,loss,lr,wd,momentum,acc\n0,0,1,1,0,,0.5\n"
                   "0,1,1,1,0,,0.5,7\n"  # a field too many
                   "0,x,1,1,0,,0.5\n"  # a step that is no whole number
                   "0,3,1,1,0,\n", encoding="utf-8")  # a field too few (the last line of a killed run)
    assert is_training_log(log)
    assert [r["step"] for r in read_log(log)[1]] == ["0"]
    for text in (b"epoch,step,time\n0,0,1\n", b"epoch,step,loss,lr,wd\n", b"\xff\xfeepoch,step\n"):
        log.write_bytes(text)
        assert not is_training_log(log), text
    assert not is_training_log(tmp_path / "missing.csv")


def test_the_log_keeps_its_first_rows_columns_each_once(tmp_path):
    """A metric named like a base column is not a second column; one the first row lacked is left out."""
    from vitprobe.train.monitor import Monitor, read_log

    monitor = Monitor(tmp_path, True, 2, 0, 1, lambda means: [], progress=False)
    monitor.step(0, 0, 1.0, 0.1, 0.0, None, {"loss": 9.0, "acc": 0.5})
    monitor.step(0, 1, 2.0, 0.1, 0.0, 0.99, {"acc": 0.6, "extra": 1.0})
    monitor.close()
    columns, rows = read_log(tmp_path / "log.csv")
    assert columns == ["epoch", "step", "loss", "lr", "wd", "momentum", "acc"]
    assert [(r["loss"], r["momentum"], r["acc"]) for r in rows] == [("1.0", "", "0.5"), ("2.0", "0.99", "0.6")]


def test_a_log_row_the_file_system_refuses_says_what_is_kept_and_how_to_go_on(tmp_path):
    """A full disk between checkpoints fails the log's append: one line naming the log, the
    reason and what to rerun (--resume where a checkpoint is kept; it drops a torn row)."""
    from vitprobe.errors import CheckpointError
    from vitprobe.train.checkpointing import STATE_FILE
    from vitprobe.train.monitor import Monitor

    (tmp_path / "log.csv").mkdir()  # opening it for writing fails as a refusing disk would
    monitor = Monitor(tmp_path, True, 2, 0, 1, lambda means: [], progress=False)
    with pytest.raises(CheckpointError) as fresh:
        monitor.step(0, 0, 1.0, 0.1, 0.0, None, {})
    assert str(fresh.value) == (f"could not write log.csv in {tmp_path} (Is a directory); no checkpoint was written "
                                "there yet: check its folder, then rerun the same command")
    (tmp_path / STATE_FILE).write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"the previous checkpoint there is kept: check its folder, then "
                                              r"rerun with --resume$"):
        monitor.step(0, 1, 1.0, 0.1, 0.0, None, {})
    monitor.close()


def test_a_monitor_other_than_rank_zeros_neither_writes_nor_prints_and_epoch_means_average_steps(tmp_path, capsys):
    from vitprobe.train.monitor import Monitor, read_log
    from vitprobe.train.objectives import collapse_warnings

    log = "epoch,step,loss,lr,wd,momentum\n0,0,1,1,0,\n0,1,1,1,0,\n0,2,1,1,0,\n"
    (tmp_path / "log.csv").write_text(log, encoding="utf-8")
    seen = []

    def warn(means: dict[str, float]) -> list:
        seen.append(means)
        return collapse_warnings(means, 256)

    silent = Monitor(tmp_path, False, 4, 1, 1, warn, progress=False)  # rank 1 of a resumed run
    for step, std in ((1, 1e-5), (2, 3e-5)):
        silent.step(0, step, 1.0, 0.1, 0.0, None, {"emb_std": std})
    said = silent.end_epoch(0)
    silent.step(1, 3, 1.0, 0.1, 0.0, None, {"emb_std": 0.06})
    assert silent.end_epoch(1) == []
    silent.close()
    assert seen == [{"emb_std": pytest.approx(2e-5)}, {"emb_std": pytest.approx(0.06)}]
    assert len(said) == 1 and said[0].startswith("contrastive collapse")
    assert "".join(capsys.readouterr()) == ""
    assert (tmp_path / "log.csv").read_text(encoding="utf-8") == log  # rank 0 alone keeps the log
    # rank 0 resuming where the log is gone starts one from the resumed step
    (tmp_path / "new").mkdir()
    fresh = Monitor(tmp_path / "new", True, 4, 2, 1, lambda means: [], progress=False)
    fresh.step(0, 2, 1.0, 0.1, 0.0, None, {})
    fresh.close()
    assert [r["step"] for r in read_log(tmp_path / "new" / "log.csv")[1]] == ["2"]
    # warnings said before a resume in another form are passed over, not misread
    Monitor(tmp_path, False, 4, 0, 1, warn, progress=False, said=["epoch x: contrastive collapse", "2: x"]).close()


def test_the_growth_warning_compares_with_the_first_loss_when_it_is_positive(tmp_path, capsys):
    from vitprobe.train.monitor import Monitor

    def warned(losses: list[float], enabled: bool = True) -> bool:
        monitor = Monitor(tmp_path, enabled, len(losses), 0, 1, lambda means: [], progress=False)
        for step, loss in enumerate(losses):
            monitor.step(0, step, loss, 0.1, 0.0, None, {})
        monitor.close()
        return "the run is diverging" in "".join(capsys.readouterr())

    assert warned([1.0, 101.0])
    assert not warned([1.0, 99.0])
    assert not warned([1.0, 0.001, 50.0])  # from the first loss, not the lowest
    assert not warned([-1.0, 5.0])  # a loss that starts below 0 gives no scale
    assert not warned([1.0, 500.0], enabled=False)  # ranks other than 0 say nothing


def test_an_infinite_loss_stops_the_run_saying_whether_a_checkpoint_is_kept():
    from vitprobe.train.monitor import check_finite

    check_finite(3.0, 0, 0, None)
    with pytest.raises(TrainingDivergedError, match=r"^loss became inf at epoch 1 step 7; no checkpoint was "
                                                    r"written yet; start a new --out"):
        check_finite(float("inf"), 1, 7, None)
    with pytest.raises(TrainingDivergedError, match=r"^loss became -inf at epoch 0 step 2; the last checkpoint with a "
                                                    r"finite loss, ckpt.safetensors, is kept"):
        check_finite(float("-inf"), 0, 2, Path("ckpt.safetensors"))


def test_a_lock_is_held_once_taken_again_after_release_and_names_its_holder(tmp_path):
    import fcntl
    import os

    from vitprobe.train.run_lock import LOCK_FILE, RunLock

    (tmp_path / LOCK_FILE).write_text("a longer line left by an earlier holder\n", encoding="ascii")
    lock, other = RunLock(), RunLock()
    lock.acquire(tmp_path)
    lock.acquire(tmp_path)  # a no-op once held
    assert (tmp_path / LOCK_FILE).read_text(encoding="ascii") == f"{os.getpid()}\n"
    lock.release()
    lock.acquire(tmp_path)
    open_files = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    with pytest.raises(OutputExistsError, match=rf"another process \(pid {os.getpid()}\) is training"):
        other.acquire(tmp_path)
    if open_files is not None:  # the refused lock's file is closed
        assert len(os.listdir("/proc/self/fd")) == open_files
    lock.release()
    fd = os.open(tmp_path / LOCK_FILE, os.O_RDWR)
    try:
        os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_EX)  # a holder that has not written its pid yet
        with pytest.raises(OutputExistsError, match=r"another process \(pid unknown\)"):
            other.acquire(tmp_path)
    finally:
        os.close(fd)
    other.acquire(tmp_path)
    other.release()


def test_every_log_every_th_step_is_logged(tmp_path):
    from vitprobe.train.monitor import Monitor, read_log

    monitor = Monitor(tmp_path, True, 5, 0, 2, lambda means: [], progress=False)
    for step in range(5):
        monitor.step(0, step, 1.0, 0.1, 0.0, None, {})
    monitor.close()
    _, rows = read_log(tmp_path / "log.csv")
    assert [r["step"] for r in rows] == ["0", "2", "4"]


def test_gmml_reconstructions_show_view_0_of_the_seeded_views_through_the_trained_objective(tmp_path) -> None:
    from vitprobe.data import resolve_dataset
    from vitprobe.data.base import IMAGENET_MEAN, IMAGENET_STD
    from vitprobe.train.checkpointing import STATE_FILE
    from vitprobe.train.masking import upsample_mask
    from vitprobe.train.reconstruct import load_objective, reconstruct_examples

    final = train(TrainConfig(method="gmml", preset="tiny", data="synthetic:16", epochs=1, batch_size=16,
                              out=str(tmp_path / "gmml")), progress=False)
    objective = load_objective(final.parent)
    saved = torch.load(final.parent / STATE_FILE, weights_only=True)["objective"]
    assert saved.keys() == objective.state_dict().keys()
    assert all(torch.equal(v, saved[k]) for k, v in objective.state_dict().items())  # the trained weights
    assert not any(m.training for m in objective.modules())  # eval: no drop path, BN running statistics

    out = reconstruct_examples(final, "synthetic:4", count=6, seed=3)  # 6 asked, the dataset has 4
    size, patch = objective.arch.img_size, objective.arch.patch_size
    for key in ("clean", "corrupted", "reconstruction"):
        assert out[key].shape == (4, size, size, 3) and out[key].dtype == np.uint8
    assert out["pixel_mask"].shape == (4, size, size) and out["pixel_mask"].dtype == bool

    # replayed independently: the views of generator seed 3, view 0, pixels round(255 (x std + mean))
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    dataset = resolve_dataset("synthetic:4", size, IMAGENET_MEAN, IMAGENET_STD)
    g = torch.Generator().manual_seed(3)
    views = [objective.views(dataset[i]["image"], g) for i in range(4)]

    def uint8(x: torch.Tensor) -> np.ndarray:
        return ((x * std + mean) * 255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()

    for i, v in enumerate(views):
        assert np.array_equal(out["clean"][i], uint8(v["clean"][0]))
        assert np.array_equal(out["pixel_mask"][i], upsample_mask(v["mask"][0], patch).numpy())
    keep = ~out["pixel_mask"]
    assert keep.any() and (~keep).any()
    assert np.array_equal(out["corrupted"][keep], out["clean"][keep])  # only the masked groups change
    with torch.no_grad():
        rec = objective.reconstruct(torch.utils.data.default_collate(views), 0)["reconstruction"]
    assert np.array_equal(out["reconstruction"], np.stack([uint8(r) for r in rec]))
