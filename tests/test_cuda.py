"""The GPU paths: mixed-precision training of every objective, and an analysis on a GPU equal to
the same analysis on the CPU. Skipped where no CUDA device is present (CI has none); run them
on a GPU machine with ``pytest -m cuda``.
"""

from __future__ import annotations

import copy
import csv
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch.utils.data import default_collate

from vitprobe import analyze
from vitprobe.data import resolve_dataset
from vitprobe.data.base import IMAGENET_MEAN, IMAGENET_STD
from vitprobe.distributed import to_device
from vitprobe.models.architecture import build_model
from vitprobe.train import TrainConfig, train
from vitprobe.train.checkpointing import FINAL_FILE, load_train_state
from vitprobe.train.engine import ViewsDataset
from vitprobe.train.monitor import LOG_FILE
from vitprobe.train.objectives import StepInfo, get_objective, list_objectives

from test_analyze_cli import DictImages, tiny_vit

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

# What autocast may change in a loss: bf16 keeps 8 bits of mantissa, fp16 11.
LOSS_RTOL = {"bf16": 3e-2, "fp16": 5e-3}
LAM = {"hybrid": 0.5}  # the hybrid's mixture (both branches run)


@pytest.mark.parametrize("amp", ["fp16", "bf16"])
def test_every_objective_trains_in_mixed_precision_with_fp32_weights(tmp_path, amp):
    """fp16 steps go through a GradScaler whose state is checkpointed; bf16 needs none. The
    weights stay float32 and every logged loss is finite."""
    for method in list_objectives():
        out = tmp_path / method
        train(TrainConfig(method=method, lam=LAM.get(method), preset="tiny", data="synthetic:64", epochs=2,
                          batch_size=32, amp=amp, device="cuda", out=str(out)), progress=False)
        weights = load_file(out / FINAL_FILE)
        assert weights and all(t.dtype == torch.float32 for t in weights.values()), method
        with open(out / LOG_FILE) as f:
            losses = [float(row["loss"]) for row in csv.DictReader(f)]
        assert len(losses) == 4 and all(math.isfinite(x) for x in losses), (method, losses)
        scaler = load_train_state(out)["scaler"]
        if amp == "fp16":
            assert scaler["scale"] > 0 and scaler["_growth_tracker"] >= 0, (method, scaler)
        else:
            assert scaler == {}, (method, scaler)


@pytest.mark.parametrize("amp", ["fp16", "bf16"])
def test_autocast_losses_match_the_float32_loss(amp):
    """One batch of each objective's views on the GPU: the loss under autocast is the float32
    loss to the precision of the narrow type (the softmaxes and losses run in float32)."""
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    info = StepInfo(epoch=0, step=0, steps_per_epoch=10, total_steps=10, progress=0.0)
    for method in list_objectives():
        config = TrainConfig(method=method, lam=LAM.get(method), preset="tiny")
        arch = config.arch_spec()
        torch.manual_seed(0)
        objective = get_objective(method, build_model(arch), arch, **config.objective_hparams())
        objective = objective.cuda().train()
        dataset = resolve_dataset("synthetic:16", arch.img_size, IMAGENET_MEAN, IMAGENET_STD)
        views = ViewsDataset(dataset, objective.views, seed=0)
        batch = to_device(default_collate([views[(0, i)] for i in range(16)]), torch.device("cuda"))
        losses = {}
        for name, enabled in (("fp32", False), (amp, True)):
            twin = copy.deepcopy(objective)  # DINO's centre moves in forward
            torch.manual_seed(1)
            with torch.autocast("cuda", dtype=dtype, enabled=enabled):
                loss, _ = twin(batch, info)
            assert loss.dtype == torch.float32, (method, name, loss.dtype)
            losses[name] = loss.item()
        print(f"{method} {amp}: fp32 {losses['fp32']:.6f} autocast {losses[amp]:.6f}")
        assert losses[amp] == pytest.approx(losses["fp32"], rel=LOSS_RTOL[amp]), method


def test_an_analysis_on_the_gpu_equals_the_same_analysis_on_the_cpu():
    """Same model, images and seed: every table's numbers agree to float32 precision. A value
    near 0 that is a difference of large terms (NMI = MI / H of a random model, about 3e-5 from
    entropies near log 16) keeps float32's absolute error of those terms (6e-8 measured), hence
    the absolute tolerance of 1e-6 times the column's scale, at least 1e-6."""
    names = ["attention_distance", "attention_nmi", "fourier", "token_similarity"]
    data = DictImages(n=24)
    on = {device: analyze(tiny_vit(), data, analyses=names, batch_size=8, device=device, progress=False)
          for device in ("cpu", "cuda")}
    for name in names:
        cpu, gpu = on["cpu"][name].table, on["cuda"][name].table
        assert list(cpu.columns) == list(gpu.columns) and len(cpu) == len(gpu), name
        for column in cpu.columns:
            if cpu[column].dtype.kind == "f":
                scale = float(np.nanmax(np.abs(cpu[column].to_numpy()))) or 1.0
                np.testing.assert_allclose(gpu[column].to_numpy(), cpu[column].to_numpy(),
                                           rtol=1e-4, atol=1e-6 * max(1.0, scale), err_msg=f"{name}.{column}")
            else:
                assert cpu[column].tolist() == gpu[column].tolist(), f"{name}.{column}"
        assert on["cuda"][name].protocol["device"] == "cuda"
