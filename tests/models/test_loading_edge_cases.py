"""Layouts, inferences and refusals of the loaders that the other tests under tests/models left
open (found by a mutation round): MoCo v3 files saved without DDP or holding only the momentum
encoder, timm files of a DDP model or a Beit, a forced format missing its entry, prefixes,
architecture given whole or in part, BEiT markers, reports, exports without qkv bias, the
unpickler's refusals, head counts that cannot build a model, an old vitprobe header's defaults,
a file without a class token."""

from __future__ import annotations

import argparse
import copy
import os
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/models: official_layouts

import pytest
import torch
from official_layouts import VIT, VIT_FINETUNED, Case, make_case, timm_train
from test_checkpoint_errors import _Call

from vitprobe.errors import CheckpointError
from vitprobe.models import ArchSpec, inspect_checkpoint, load_model


def _assert_same_weights(model, encoder):
    want, got = encoder.state_dict(), model.state_dict()
    assert set(got) == set(want)
    for k in want:
        assert torch.equal(got[k], want[k]), k


def test_a_moco_v3_state_dict_saved_without_ddp_loads_its_base_encoder(tmp_path):
    """main_moco.py run on one GPU (no DistributedDataParallel): base_encoder.* without module."""
    def write(sd, spec, path):
        torch.save({"epoch": 3, "arch": "vit_small",
                    "state_dict": {**{f"base_encoder.{k}": v for k, v in sd.items()},
                                   **{f"momentum_encoder.{k}": v * 0.5 for k, v in sd.items()}}}, path)
        return set()

    made = make_case(Case("moco-single-gpu", "mocov3", write, VIT, ".pth.tar"), tmp_path)
    model = load_model(made.path, num_heads=VIT.num_heads)
    assert model.vitprobe_info["format"] == "mocov3"
    _assert_same_weights(model, made.encoder)


def test_a_timm_train_file_of_a_ddp_model_keeps_its_classifier(tmp_path):
    """timm train.py of a DDP model (state_dict: module.*) whose arch is no MoCo v3 name is timm's
    layout, not a MoCo v3 linear-classification file: its classifier is kept, not dropped."""
    case = Case("timm-train-ddp", "timm", lambda sd, spec, path: timm_train(
        {f"module.{k}": v for k, v in sd.items()}, spec, path), VIT_FINETUNED, ".pth.tar")
    made = make_case(case, tmp_path)
    model = load_model(made.path, num_heads=VIT.num_heads)
    assert model.vitprobe_info["format"] == "timm"
    assert model.vitprobe_info["arch"] == VIT_FINETUNED.to_dict()
    _assert_same_weights(model, made.encoder)


def test_a_timm_train_file_of_a_beit_takes_heads_from_its_arch(tmp_path):
    """timm_name_hints reads a timm Beit as it reads a VisionTransformer."""
    spec = ArchSpec(family="beit", patch_size=8, embed_dim=128, depth=2, num_heads=4, img_size=32,
                    layer_scale=0.1, rel_pos_bias="none", abs_pos_emb=True)  # no table: heads not in the weights
    kwargs = {"embed_dim": 128, "depth": 2, "num_heads": 4, "patch_size": 8, "img_size": 32,
              "use_abs_pos_emb": True, "use_rel_pos_bias": False, "use_shared_rel_pos_bias": False}
    case = Case("timm-train-beit", "timm", lambda sd, s, path: timm_train(
        sd, s, path, arch="beit_base_patch16_224", model_kwargs=kwargs), spec, ".pth.tar")
    made = make_case(case, tmp_path)
    model = load_model(made.path)
    assert model.vitprobe_info["arch"] == spec.to_dict()
    assert model.vitprobe_info["report"]["num_heads_from"] == (
        f"timm model arch 'beit_base_patch16_224' with model_kwargs {kwargs}")
    _assert_same_weights(model, made.encoder)


def test_a_forced_format_whose_entry_the_file_lacks_names_the_entry(tmp_path):
    """--format mae on a file with no 'model' entry (and no layout detected): the error names the
    missing entry, not a KeyError blamed on the format's code."""
    path = tmp_path / "weights.pth"
    torch.save({"weights": {"x": torch.zeros(2)}}, path)
    with pytest.raises(CheckpointError, match=r"has no 'model' entry, so it is not in the chosen layout") as err:
        load_model(path, format="mae")
    assert "KeyError" not in str(err.value)


def test_a_key_that_merely_contains_a_layouts_prefix_does_not_pick_that_layout(tmp_path):
    """An MAE training file whose decoder has a ``decoder_pos_encoder`` module is MAE's layout:
    SimMIM's ``encoder.`` is a key prefix, not a substring."""
    def write(sd, spec, path):
        torch.save({"model": {**sd, "decoder_pos_encoder.weight": torch.randn(4, 4)}, "epoch": 3}, path)
        return {"decoder_pos_encoder.weight"}

    made = make_case(Case("mae-pos-encoder", "mae", write, VIT), tmp_path)
    info = inspect_checkpoint(made.path)
    assert info["format"] == "mae" and info["report"]["fits"] is True
    assert {k for keys in info["report"]["dropped"].values() for k in keys} == made.dropped


def test_a_model_entry_with_a_decoder_but_no_encoder_prefix_is_not_simmim(tmp_path):
    """SimMIM is told by ``encoder.*`` keys: a ``model`` of ViT keys with a stray ``decoder.*`` is
    MAE's layout, whose strict load refuses the key it does not explain."""
    def write(sd, spec, path):
        torch.save({"model": {**sd, "decoder.0.weight": torch.randn(4, 4)}}, path)
        return set()

    made = make_case(Case("model-decoder", "mae", write, VIT), tmp_path)
    with pytest.raises(CheckpointError, match=r"\(mae\) does not fit .*unexpected 1 key \(decoder\.0\.weight\)"):
        load_model(made.path, num_heads=VIT.num_heads)


def test_an_arch_given_whole_is_reported_as_given(tmp_path):
    from official_layouts import CASES

    made = make_case(next(c for c in CASES if c.id == "timm-pth"), tmp_path)
    model = load_model(made.path, arch=VIT.replace(num_heads=4))
    assert model.vitprobe_info["report"]["num_heads_from"] == "given (arch=)"
    assert model.vitprobe_info["arch"] == VIT.replace(num_heads=4).to_dict()
    assert model.blocks[0].attn.num_heads == 4


def test_an_arch_dict_field_the_weights_cannot_show_wins_over_the_inferred_one(tmp_path):
    """global_pool leaves the weights as they are (no fc_norm): the dict's value is the one built."""
    from official_layouts import CASES

    made = make_case(next(c for c in CASES if c.id == "timm-pth"), tmp_path)
    model = load_model(made.path, arch={"global_pool": "avg", "num_heads": 2})
    assert model.vitprobe_info["arch"] == VIT.replace(global_pool="avg").to_dict()
    assert model.global_pool == "avg"
    _assert_same_weights(model, made.encoder)


def test_a_momentum_encoder_saved_alone_in_moco_names_loads_with_its_key(tmp_path):
    """A MoCo v3 state_dict holding only module.momentum_encoder.* (the base encoder left out),
    read with --format mocov3 --key momentum_encoder."""
    def write(sd, spec, path):
        torch.save({"epoch": 3, "arch": "vit_small",
                    "state_dict": {f"module.momentum_encoder.{k}": v for k, v in sd.items()}}, path)
        return set()

    made = make_case(Case("moco-momentum-alone", "mocov3", write, VIT, ".pth.tar"), tmp_path)
    model = load_model(made.path, format="mocov3", key="momentum_encoder", num_heads=VIT.num_heads)
    assert model.vitprobe_info["format"] == "mocov3"
    _assert_same_weights(model, made.encoder)


def test_a_beit_shown_by_its_relative_position_table_alone_loads_as_a_beit(tmp_path):
    """No q/v biases and no layer scale: the relative-position table alone marks the BEiT layout."""
    from official_layouts import BEIT_SHARED, beit

    spec = BEIT_SHARED.replace(qkv_bias=False, layer_scale=None)
    made = make_case(Case("beit-table-only", "beit", beit, spec), tmp_path)
    model = load_model(made.path)
    assert model.vitprobe_info["format"] == "beit"
    assert model.vitprobe_info["arch"] == spec.to_dict()
    _assert_same_weights(model, made.encoder)


def test_an_encoder_with_no_position_grid_is_built_for_224_pixels(tmp_path):
    """No pos_embed and no relative-position table: the image size is 224 (the patch grid that
    fits it: 16 x 16 patches of 14), not a fixed 14-patch grid."""
    from official_layouts import BEIT_SHARED, timm_pth

    spec = BEIT_SHARED.replace(patch_size=14, img_size=224, rel_pos_bias="none", abs_pos_emb=False, depth=1)
    made = make_case(Case("beit-no-grid", "timm", timm_pth, spec), tmp_path)
    model = load_model(made.path, num_heads=spec.num_heads)
    assert model.vitprobe_info["arch"] == spec.to_dict()
    _assert_same_weights(model, made.encoder)


@pytest.mark.parametrize("function, args", [
    (os.system, ("touch {marker}",)),
    (subprocess.call, (["touch", "{marker}"],)),
    (__import__, ("os",)),
    (argparse.ArgumentParser, ("{marker}",)),  # only argparse.Namespace is allowed, not the module
], ids=["os.system", "subprocess.call", "__import__", "argparse.ArgumentParser"])
def test_other_callables_are_refused_by_name(tmp_path, function, args):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    args = tuple(a.format(marker=marker) if isinstance(a, str) else [x.format(marker=marker) for x in a]
                 for a in args)
    torch.save({"model": {"pos_embed": torch.zeros(1)}, "args": _Call(function, *args)}, path)
    # named as pickle writes it (protocol 2 uses Python 2 names: subprocess.call -> commands.call)
    with pytest.raises(CheckpointError, match=rf"refused to unpickle \S*{re.escape(function.__name__)}, which is not a plain tensor"):
        load_model(path)
    assert not marker.exists()


def test_model_kwargs_timm_refuses_give_no_hints_and_the_weights_still_load(tmp_path):
    """--model-kwargs num_heads=5 cannot build vit_tiny (192 % 5: timm asserts): the arch gives
    no hints, and the heads come from the width, as for a file without an arch."""
    case = Case("timm-train-bad-kwargs", "timm", lambda sd, s, path: timm_train(
        sd, s, path, arch="vit_tiny_patch16_224", model_kwargs={"num_heads": 5}), VIT, ".pth.tar")
    made = make_case(case, tmp_path)
    model = load_model(made.path, num_heads=VIT.num_heads)
    assert model.vitprobe_info["arch"] == VIT.to_dict()
    assert model.vitprobe_info["report"]["num_heads_from"] == "given (--num-heads; Python num_heads=)"
    _assert_same_weights(model, made.encoder)


def test_a_position_embedding_of_the_prefix_tokens_alone_is_named_as_such(tmp_path):
    from official_layouts import timm_pth

    made = make_case(Case("no-grid", "timm", timm_pth, VIT), tmp_path,
                     mutate=lambda sd: {**sd, "pos_embed": sd["pos_embed"][:, :1]})
    with pytest.raises(CheckpointError, match=r"pos_embed holds 1 tokens, not 1 prefix token \+ a square grid"):
        load_model(made.path, num_heads=VIT.num_heads)


def test_a_vitprobe_header_without_a_format_version_is_refused(tmp_path):
    import json

    from official_layouts import random_encoder
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from vitprobe.models import save_encoder

    path = save_encoder(tmp_path / "own.safetensors", random_encoder(VIT, seed=1), VIT, {})
    with safe_open(str(path), "pt") as f:
        header = json.loads(f.metadata()["vitprobe"])
    del header["format_version"]
    save_file(load_file(path), path, metadata={"vitprobe": json.dumps(header)})
    with pytest.raises(CheckpointError, match=r"vitprobe format_version None is not 1; the file's vitprobe header "
                                              r"is damaged or not vitprobe's"):
        load_model(path)


def test_num_heads_against_metadata_of_another_width_warns_of_no_override(tmp_path):
    """DINO's args.arch 'vit_small' describes a width of 384; for 128-wide weights it names no
    heads, so --num-heads overrides nothing and says nothing."""
    import warnings

    from official_layouts import CASES

    made = make_case(next(c for c in CASES if c.id == "dino-teacher"), tmp_path)  # args vit_small, width 128
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        model = load_model(made.path, num_heads=VIT.num_heads)
    assert not [str(w.message) for w in said if "overrides" in str(w.message)]
    _assert_same_weights(model, made.encoder)


def test_a_convolutional_stem_nested_in_an_undetected_entry_is_named_as_such(tmp_path):
    from official_layouts import random_encoder

    sd = {k: v for k, v in random_encoder(VIT).state_dict().items() if not k.startswith("patch_embed.")}
    sd.update({"patch_embed.proj.0.weight": torch.zeros(24, 3, 3, 3),
               "patch_embed.proj.12.weight": torch.zeros(VIT.embed_dim, 24, 1, 1)})
    path = tmp_path / "conv.pth"
    torch.save({"model": sd, "epoch": 3}, path)  # no patch_embed.proj.weight: no format detects it
    with pytest.raises(CheckpointError, match=r"a ViT with a convolutional stem \(patch_embed.proj.N.\*"):
        load_model(path)


@pytest.mark.parametrize("case_id", ["beit-per-block", "simmim"])
def test_the_tensor_count_reported_is_that_of_the_weights_loaded(tmp_path, case_id):
    """report["tensors"]: the encoder's tensors, not the index buffers dropped beside them."""
    from official_layouts import CASES

    made = make_case(next(c for c in CASES if c.id == case_id), tmp_path)
    info = inspect_checkpoint(made.path)
    assert info["report"]["tensors"] == len(made.encoder.state_dict())


def test_an_encoder_without_qkv_bias_is_not_exported_to_an_official_vit(tmp_path):
    from official_layouts import random_encoder

    from vitprobe.models import save_encoder
    from vitprobe.models.export import export_checkpoint

    spec = VIT.replace(qkv_bias=False)
    src = save_encoder(tmp_path / "own.safetensors", random_encoder(spec, seed=4), spec, {"epoch": 1})
    with pytest.raises(CheckpointError, match=r"the official dino model cannot hold this encoder \(qkv_bias False;"):
        export_checkpoint(src, "dino", tmp_path / "out.pth")
    assert not (tmp_path / "out.pth").exists()


def test_a_fit_error_offers_no_architecture_that_does_not_fit_either(tmp_path):
    """arch={"depth": 1} on a 2-block file that also lacks a key: the 2-block architecture the
    weights suggest does not fit them either, so the error must not say it does."""
    from official_layouts import CASES

    made = make_case(next(c for c in CASES if c.id == "timm-pth"), tmp_path,
                     mutate=lambda sd: {k: v for k, v in sd.items() if k != "blocks.1.norm2.bias"})
    with pytest.raises(CheckpointError, match=r"unexpected .*no other architecture explains these keys") as err:
        load_model(made.path, arch={"depth": 1, "num_heads": 2})
    assert "weights fit" not in str(err.value)


def test_a_vitprobe_checkpoint_of_a_classifier_round_trips(tmp_path):
    """save_encoder keeps every tensor (fc_norm and the classifier head too) and the header's arch."""
    from official_layouts import random_encoder

    from vitprobe.models import save_encoder

    encoder = random_encoder(VIT_FINETUNED, seed=3)
    path = save_encoder(tmp_path / "own.safetensors", encoder, VIT_FINETUNED, {"epoch": 1})
    model = load_model(path)
    assert model.vitprobe_info["format"] == "vitprobe"
    assert model.vitprobe_info["arch"] == VIT_FINETUNED.to_dict()
    _assert_same_weights(model, encoder)
    images = torch.randn(2, 3, VIT.img_size, VIT.img_size)
    with torch.no_grad():
        assert torch.equal(model(images), encoder.eval()(images))


def test_a_call_on_an_object_built_from_an_allowed_global_is_refused_as_such(tmp_path):
    """A hand-made pickle that calls the Namespace it has just built (REDUCE on a non-global):
    the weights-only unpickler refuses an "unrecognized function", which is a refusal, not a
    corrupt file."""
    path = tmp_path / "crafted.pth"
    path.write_bytes(b"\x80\x02cargparse\nNamespace\n)R)R.")  # Namespace()()
    with pytest.raises(CheckpointError, match=r"refused to unpickle Namespace\(\), which is not a plain tensor"):
        load_model(path)


# ---- head counts of 0 (timm divided by it) or below (a model whose every forward failed)

def test_zero_heads_beside_an_arch_are_refused_as_a_vitprobe_error(tmp_path):
    from vitprobe.errors import VitprobeError
    from official_layouts import CASES

    made = make_case(next(c for c in CASES if c.id == "timm-pth"), tmp_path)
    with pytest.raises(VitprobeError, match="head"):
        load_model(made.path, arch=VIT, num_heads=0)


@pytest.mark.parametrize("kwargs", [{"arch": VIT, "num_heads": -2}, {"arch": VIT.replace(num_heads=-2)}],
                         ids=["num_heads", "arch"])
def test_a_negative_head_count_is_refused(tmp_path, kwargs):
    from vitprobe.errors import VitprobeError
    from official_layouts import CASES

    made = make_case(next(c for c in CASES if c.id == "timm-pth"), tmp_path)
    with pytest.raises(VitprobeError, match="head"):
        load_model(made.path, **kwargs)


def test_the_defaults_of_an_old_vitprobe_header_are_not_shared_between_loads(tmp_path):
    import json
    import warnings

    from safetensors.torch import save_file
    from official_layouts import random_encoder

    encoder = random_encoder(VIT)
    old = {"format_version": 1, "arch": VIT.to_dict(), "objective": "mae", "epoch": 2, "step": 9}  # no warnings
    for name in ("a", "b"):
        save_file({k: v.contiguous() for k, v in encoder.state_dict().items()}, str(tmp_path / f"{name}.safetensors"),
                  metadata={"vitprobe": json.dumps(old)})
    from vitprobe.models import own_format

    saved = copy.deepcopy(own_format._META_DEFAULTS)
    try:  # a shared default edited here would leak into module state: put it back for the tests after this one
        first = load_model(tmp_path / "a.safetensors")
        first.vitprobe_info["report"]["training"]["warnings"].append("epoch 1: attention collapsed")
        first.vitprobe_info["report"]["training"]["in_force"]["lr"] = 9.0
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            second = load_model(tmp_path / "b.safetensors")
    finally:
        own_format._META_DEFAULTS.clear()
        own_format._META_DEFAULTS.update(saved)
    assert not [w for w in said if "collapse" in str(w.message)]  # b.safetensors never warned of one
    training = second.vitprobe_info["report"]["training"]
    assert training["warnings"] == [] and training["in_force"] == {}


@pytest.mark.parametrize("reg_tokens", [0, 4])
def test_a_vit_file_without_a_class_token_is_refused_as_that(tmp_path, reg_tokens):
    """timm's class_token=False: the file has no cls_token, and the error says so and how to
    analyse the model (pass it in Python), not that its pos_embed lacks a prefix token."""
    from timm.models.vision_transformer import VisionTransformer

    model = VisionTransformer(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, num_classes=0,
                              class_token=False, global_pool="avg", reg_tokens=reg_tokens)
    path = tmp_path / "no_cls.pth"
    torch.save(model.state_dict(), path)
    with pytest.raises(CheckpointError, match=rf"^checkpoint {re.escape(str(path))}: no cls_token, a ViT "
                                              r"without a class token .*vitprobe\.analyze\(model, \.\.\.\)$"):
        load_model(path)
