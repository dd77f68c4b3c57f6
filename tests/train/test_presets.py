"""The CPU presets size the objectives' heads and masks for small images."""

from __future__ import annotations

import pytest

from vitprobe.models.architecture import build_model
from vitprobe.train import TrainConfig
from vitprobe.train.objectives import get_objective, objective_class
from vitprobe.train.engine import resolve_arch


def test_tiny_preset_sizes_heads_and_user_values_win() -> None:
    cfg = TrainConfig(method="mae", preset="tiny", hparams={"decoder_depth": 3})
    hp = cfg.objective_hparams()
    assert hp["decoder_dim"] == 64 and hp["decoder_depth"] == 3
    assert "decoder_dim" not in TrainConfig(method="mae", preset="vit_b16").objective_hparams()


def test_tiny_preset_trains_without_stochastic_depth_full_presets_keep_it() -> None:
    for method in ("dino", "mocov3", "mae", "simmim", "gmml"):
        assert TrainConfig(method=method, preset="tiny").objective_hparams()["drop_path"] == 0.0
        assert "drop_path" not in TrainConfig(method=method, preset="vit_b16").objective_hparams()
    cfg = TrainConfig(method="hybrid", lam=0.5, preset="tiny")
    arch = cfg.arch_spec()
    assert get_objective("hybrid", build_model(arch), arch, **cfg.objective_hparams()).stochastic_depth() == 0.0


def test_tiny_simmim_masks_blocks_smaller_than_the_image() -> None:
    cfg = TrainConfig(method="simmim", preset="tiny")
    arch = resolve_arch(cfg)
    objective = get_objective("simmim", build_model(arch), arch, **cfg.objective_hparams())
    assert objective.hparams["mask_patch_size"] < arch.img_size


def test_hybrid_gets_the_sizes_of_its_parts() -> None:
    cfg = TrainConfig(method="hybrid", lam=0.25, preset="tiny",
                      hparams={"cl_hparams": {"out_dim": 64}})
    hp = cfg.objective_hparams()
    assert hp["lam"] == 0.25
    assert hp["mim_hparams"]["mask_patch_size"] == 8 and hp["base_lr"] == hp["mim_hparams"]["base_lr"]
    assert hp["cl_hparams"]["out_dim"] == 64 and hp["cl_hparams"]["proj_hidden_dim"] == 512
    arch = cfg.arch_spec()
    get_objective("hybrid", build_model(arch), arch, **hp)  # accepted as a whole
    # other branches get their own sizes, under the user's values
    hp = TrainConfig(method="hybrid", lam=0.5, preset="tiny", hparams={
        "mim": "mae", "cl": "dino", "mim_hparams": {"decoder_dim": 32}}).objective_hparams()
    assert hp["mim_hparams"]["decoder_dim"] == 32 and hp["mim_hparams"]["decoder_depth"] == 2
    assert hp["cl_hparams"]["n_local"] == 4 and "proj_hidden_dim" not in hp["cl_hparams"]


@pytest.mark.parametrize("cl", ["mocov3", "dino"])
def test_a_hybrid_resolves_to_what_it_trains_with(cl: str) -> None:
    """What reproduce records (the config's resolved hparams) is the built objective's: each
    branch's hparams in full, defaults included, and the CL branch's momentum."""
    cfg = TrainConfig(method="hybrid", lam=0.5, preset="tiny", hparams={"cl": cl})
    resolved, arch = cfg.resolved_hparams(), cfg.arch_spec()
    built = get_objective("hybrid", build_model(arch), arch, **cfg.objective_hparams())
    assert built.hparams == resolved
    assert resolved["cl_hparams"] == built.cl.hparams and resolved["mim_hparams"] == built.mim.hparams
    assert resolved["momentum"] == built.cl.hparams["momentum"] == (0.95 if cl == "dino" else 0.99)
    assert resolved["mim_hparams"]["mask_ratio"] == objective_class("simmim").defaults["mask_ratio"]


def test_cpu_presets_give_dino_a_teacher_that_follows_a_short_run() -> None:
    from vitprobe.train.objectives.dino import DINO

    for preset in ("tiny", "small"):
        hp = TrainConfig(method="dino", preset=preset).objective_hparams()
        assert (hp["momentum"], hp["teacher_temp"], hp["warmup_teacher_temp_epochs"]) == (0.95, 0.04, 0)
    assert "momentum" not in TrainConfig(method="dino", preset="vit_s16").objective_hparams()
    assert DINO.defaults["momentum"] == 0.996  # the published teacher for the full presets
