"""vitprobe checkpoints exported to official layouts load back bit-identically."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from official_layouts import BEIT_SHARED, VIT, random_encoder
from safetensors import safe_open

from vitprobe.errors import CheckpointError, OutputExistsError
from vitprobe.models import load_model, save_encoder
from vitprobe.models.export import export_checkpoint
from vitprobe.models.safe_unpickle import torch_load_safely


# 4 heads of width 32: not what a layout without an architecture name would imply (128 // 64 = 2)
VIT4 = VIT.replace(num_heads=4)


@pytest.fixture
def own_vit(tmp_path):
    encoder = random_encoder(VIT4, seed=1)
    return encoder, save_encoder(tmp_path / "own.safetensors", encoder, VIT4,
                                 {"objective": "dino", "epoch": 7, "step": 70})


@pytest.mark.parametrize("fmt,top_keys,prefix", [
    ("dino", {"teacher", "epoch", "args"}, ("teacher", "backbone.")),
    ("mocov3", {"epoch", "arch", "state_dict"}, ("state_dict", "module.base_encoder.")),
    ("mae", {"model", "epoch", "args"}, ("model", "")),
])
def test_vit_export_round_trip(own_vit, tmp_path, fmt, top_keys, prefix):
    encoder, src = own_vit
    if fmt == "dino":
        out = export_checkpoint(src, fmt, tmp_path / f"{fmt}.pth")
    else:
        with pytest.warns(UserWarning, match=rf"trained with dino, exported in the {fmt} layout, which loaders will "
                                             rf"take for a {fmt} checkpoint; its training record goes with it"):
            out = export_checkpoint(src, fmt, tmp_path / f"{fmt}.pth")
    obj = torch.load(out)  # torch's default, weights_only: the file holds tensors and plain values only
    assert set(obj) == top_keys | {"vitprobe_training"}  # official loaders pass over the training record
    entry, key_prefix = prefix
    assert set(obj[entry]) == {key_prefix + k for k in encoder.state_dict()}
    model = load_model(out)  # the layout's architecture name carries the heads
    assert model.vitprobe_info["format"] == fmt and model.vitprobe_info["arch"] == VIT4.to_dict()
    report = model.vitprobe_info["report"]
    assert report["training"] == load_model(src).vitprobe_info["report"]["training"]  # survives the export
    assert report["training"]["objective"] == "dino" and "vitprobe_training" not in report["ignored_entries"]
    assert obj["epoch"] == 7  # the training's epoch, in the entry the official code writes
    for k, v in encoder.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
    if fmt == "dino":
        assert obj["args"] == {"patch_size": VIT.patch_size, "arch": "vit_d128_h4"} and obj["epoch"] == 7
        with pytest.raises(CheckpointError, match="has no 'student' entry; it holds 'teacher'"):
            load_model(out, key="student")  # one encoder: no copy of it passes for a student


def test_published_sizes_export_under_their_published_names(tmp_path):
    """A ViT-B/16 of 12 blocks is named vit_base (mae_vit_base_patch16); one of another depth is
    named by width and heads (a published name would fix a depth its weights do not have), and
    loads back with its 12 heads either way."""
    from vitprobe.models.architecture import ArchSpec
    from vitprobe.models.export import EXPORTERS

    base = ArchSpec(patch_size=16, embed_dim=768, depth=12, num_heads=12, img_size=32)
    names = {"dino": ("args", "arch", "vit_base"), "mocov3": (None, "arch", "vit_base"),
             "mae": ("args", "model", "mae_vit_base_patch16")}
    for fmt, (holder, field, name) in names.items():
        obj = EXPORTERS[fmt][1]({}, base, {"epoch": 1})
        assert (obj[holder] if holder else obj)[field] == name
    assert EXPORTERS["mae"][1]({}, base.replace(patch_size=8), {"epoch": 1})["args"]["model"] == "vit_d768_h12"  # not _patch16
    shallow = base.replace(depth=1)
    src = save_encoder(tmp_path / "base.safetensors", random_encoder(shallow, seed=3), shallow, {"epoch": 1})
    for fmt, (holder, field, _) in names.items():
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no objective recorded: no layout to warn against
            obj = torch_load_safely(export_checkpoint(src, fmt, tmp_path / f"{fmt}.pth"))
        assert obj["epoch"] == 1
        assert (obj[holder] if holder else obj)[field] == "vit_d768_h12"
        assert load_model(tmp_path / f"{fmt}.pth").vitprobe_info["arch"]["num_heads"] == 12


def test_asking_an_export_for_an_encoder_it_does_not_hold_says_so(own_vit, tmp_path):
    _, src = own_vit
    out = export_checkpoint(src, "mocov3", tmp_path / "moco.pth")
    with pytest.raises(CheckpointError, match="holds no momentum_encoder weights .* try --key base_encoder"):
        load_model(out, key="momentum_encoder")


def test_simmim_export_round_trip(tmp_path):
    encoder = random_encoder(BEIT_SHARED, seed=2)
    src = save_encoder(tmp_path / "beit.safetensors", encoder, BEIT_SHARED, {"objective": "simmim", "epoch": 5})
    out = export_checkpoint(src, "simmim", tmp_path / "simmim.pth")
    assert torch_load_safely(out)["epoch"] == 5
    model_keys = set(torch_load_safely(out)["model"])
    assert "encoder.rel_pos_bias.relative_position_index" in model_keys
    model = load_model(out)
    assert model.vitprobe_info["format"] == "simmim"
    assert model.vitprobe_info["arch"] == BEIT_SHARED.to_dict()
    for k, v in encoder.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k


def test_a_simmim_vitprobe_trained_exports_to_simmims_layout_and_is_analysed_as_one(tmp_path):
    """vitprobe trains SimMIM's own ViT (shared relative position bias): the export is SimMIM's
    official layout, which loads back to the trained weights and runs the attention analyses."""
    from vitprobe import analyze
    from vitprobe.train import TrainConfig, train

    final = train(TrainConfig(method="simmim", data="synthetic:16", epochs=1, batch_size=8, out=str(tmp_path / "r")),
                  progress=False)
    out = export_checkpoint(final, "simmim", tmp_path / "simmim.pth")
    trained, official = load_model(final), load_model(out)
    assert official.vitprobe_info["format"] == "simmim" and official.vitprobe_info["arch"]["rel_pos_bias"] == "shared"
    assert trained.state_dict().keys() == official.state_dict().keys()
    assert all(torch.equal(v, official.state_dict()[k]) for k, v in trained.state_dict().items())
    run = analyze(str(out), "synthetic:8", analyses=["attention_distance"], batch_size=8, progress=False)
    assert run["attention_distance"].table["value"].notna().all()


def test_export_refusals(own_vit, tmp_path):
    _, src = own_vit
    with pytest.raises(CheckpointError, match="holds a vit encoder but simmim.*dino, mocov3, mae"):
        export_checkpoint(src, "simmim", tmp_path / "x.pth")
    mae = export_checkpoint(src, "mae", tmp_path / "mae.pth")
    with pytest.raises(CheckpointError, match="is a mae checkpoint; export needs a vitprobe checkpoint"):
        export_checkpoint(mae, "dino", tmp_path / "y.pth")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        export_checkpoint(src, "mae", mae)
    assert export_checkpoint(src, "mae", mae, overwrite=True) == mae


@pytest.mark.parametrize("fmt,spec,unfit", [
    ("dino", VIT.replace(layer_scale=1e-5), "layer_scale 1e-05"),  # e.g. a DINOv2-style --arch
    ("mocov3", VIT.replace(reg_tokens=4), "reg_tokens 4"),
    ("mae", VIT.replace(global_pool="avg", fc_norm=True), "global_pool avg, fc_norm True"),
    ("simmim", BEIT_SHARED.replace(rel_pos_bias="per_block"), "rel_pos_bias per_block"),
])
def test_encoders_the_official_models_cannot_hold_are_not_exported(tmp_path, fmt, spec, unfit):
    src = save_encoder(tmp_path / "own.safetensors", random_encoder(spec, seed=4), spec, {"epoch": 1})
    with pytest.raises(CheckpointError, match=rf"the official {fmt} model cannot hold this encoder \({unfit}; "
                                              r"its loader would drop or misread those weights\); load the vitprobe file"):
        export_checkpoint(src, fmt, tmp_path / "out.pth")
    assert not (tmp_path / "out.pth").exists()


def test_save_encoder_writes_header_atomically(tmp_path):
    encoder = random_encoder(VIT)
    path = save_encoder(tmp_path / "run" / "final.safetensors", encoder, VIT,
                        {"objective": "mae", "config": {"mask_ratio": 0.75}, "epoch": 2, "step": 9})
    with safe_open(str(path), framework="pt") as fh:
        header = json.loads(fh.metadata()["vitprobe"])
    assert header == {"format_version": 1, "arch": VIT.to_dict(), "objective": "mae",
                      "config": {"mask_ratio": 0.75}, "epoch": 2, "step": 9,
                      "objective_revision": None, "in_force": {}, "warnings": [], "world_size": 1}  # the defaults of what was not given
    with pytest.raises(TypeError):
        save_encoder(tmp_path / "run" / "bad.safetensors", encoder, VIT, {"config": {"x": object()}})
    with pytest.raises(ValueError, match=r"unknown checkpoint metadata keys: \['epochs'\]"):
        save_encoder(tmp_path / "run" / "typo.safetensors", encoder, VIT, {"epochs": 2})
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["final.safetensors"]


def test_export_refuses_bad_out_paths_before_writing(own_vit, tmp_path):
    _, src = own_vit
    with pytest.raises(OutputExistsError, match=r"torch pickles; name --out with \.pth"):
        export_checkpoint(src, "mae", tmp_path / "mae.safetensors")
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    with pytest.raises(OutputExistsError, match="is a file, not a folder"):
        export_checkpoint(src, "mae", a_file / "mae.pth")
    with pytest.raises(OutputExistsError, match="is a folder"):
        export_checkpoint(src, "mae", tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "own.safetensors"]


def test_written_checkpoints_get_the_umask_permissions_not_private_ones(own_vit, tmp_path):
    import os

    _, src = own_vit
    previous = os.umask(0o022)
    try:
        exported = export_checkpoint(src, "dino", tmp_path / "dino.pth")
        saved = save_encoder(tmp_path / "again.safetensors", random_encoder(VIT, seed=1), VIT, {})
    finally:
        os.umask(previous)
    assert exported.stat().st_mode & 0o777 == 0o644
    assert saved.stat().st_mode & 0o777 == 0o644


def test_a_header_from_before_the_later_fields_reads_with_their_defaults(tmp_path):
    """Files written before objective_revision, in_force, warnings and world_size existed read
    them as None, {}, [] and 1 (one process)."""
    from safetensors.torch import save_file

    from vitprobe.models import inspect_checkpoint

    encoder = random_encoder(VIT)
    old = {"format_version": 1, "arch": VIT.to_dict(), "objective": "mae", "config": {"mask_ratio": 0.75},
           "epoch": 2, "step": 9}
    path = tmp_path / "old.safetensors"
    save_file({k: v.contiguous() for k, v in encoder.state_dict().items()}, str(path),
              metadata={"vitprobe": json.dumps(old)})
    assert inspect_checkpoint(path)["report"]["training"] == {
        "objective": "mae", "objective_revision": None, "config": {"mask_ratio": 0.75}, "in_force": {},
        "epoch": 2, "step": 9, "warnings": [], "world_size": 1}
