"""Wrong architectures, unsafe pickles and broken files: one-line CheckpointErrors, no partial loads."""

from __future__ import annotations

import argparse
import os
import pickle
import re
import warnings

import numpy as np
import pytest
import timm
import torch
from official_layouts import CASES, VIT, Case, make_case
from PIL import Image

from vitprobe.errors import CheckpointError, ConfigError
from vitprobe.models import inspect_checkpoint, load_model

TIMM = next(c for c in CASES if c.id == "timm-pth")


def _one_line_naming(err: pytest.ExceptionInfo, path) -> str:
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg
    return msg


def test_wrong_width_lists_shapes_and_the_fitting_arch(tmp_path):
    made = make_case(TIMM, tmp_path)
    with pytest.raises(CheckpointError) as err:
        load_model(made.path, arch=VIT.replace(embed_dim=64))
    msg = _one_line_naming(err, made.path)
    assert "30 shape mismatches (blocks.0.attn.proj.bias [128] vs model [64], blocks.0.attn.proj.weight [128, 128] vs model [64, 64]" in msg
    assert "the weights fit vit p8 d128 L2 H2 @32" in msg


def test_a_mismatch_the_short_name_cannot_show_is_spelled_out(tmp_path):
    made = make_case(TIMM, tmp_path)
    with pytest.raises(CheckpointError, match=r"unexpected 2 keys .*; the weights fit vit p8 d128 L2 H2 @32 "
                                              r"\(qkv_bias=True\)") as err:
        load_model(made.path, arch=VIT.replace(qkv_bias=False))
    _one_line_naming(err, made.path)


def test_wrong_depth_lists_missing_blocks(tmp_path):
    made = make_case(TIMM, tmp_path)
    with pytest.raises(CheckpointError, match=r"missing 12 keys \(blocks\.2\.") as err:
        load_model(made.path, arch=VIT.replace(depth=3))
    assert "fit vit p8 d128 L2" in _one_line_naming(err, made.path)


def test_a_fitting_architecture_keeps_the_heads_asked_for(tmp_path):
    """The weights of a ViT do not show its heads: the architecture they fit is offered with
    the head count asked for, differing only where the weights say so."""
    made = make_case(TIMM, tmp_path)  # width 128 alone would suggest 2 heads
    with pytest.raises(CheckpointError, match=r"missing 12 keys \(blocks\.2\..*; the weights fit vit p8 d128 L2 H4 @32 "
                                              r"\(depth=2\); pass --format") as err:
        load_model(made.path, arch=VIT.replace(depth=3, num_heads=4))
    _one_line_naming(err, made.path)


def test_a_block_missing_from_the_middle_is_named_not_the_blocks_after_it(tmp_path):
    """Depth is read from the highest block number: a file without blocks.1.* is a 3-block
    encoder missing its second block, not a 2-block one with a stray third."""
    deeper = Case(TIMM.id, TIMM.format, TIMM.write, VIT.replace(depth=3))
    made = make_case(deeper, tmp_path, mutate=lambda sd: {k: v for k, v in sd.items() if not k.startswith("blocks.1.")})
    with pytest.raises(CheckpointError, match=r"does not fit vit p8 d128 L3 H2 @32: missing 12 keys \(blocks\.1\.") as err:
        load_model(made.path)
    assert "unexpected" not in _one_line_naming(err, made.path)
    (tmp_path / "no_block_0").mkdir()
    first_missing = make_case(deeper, tmp_path / "no_block_0",
                              mutate=lambda sd: {k: v for k, v in sd.items() if not k.startswith("blocks.0.")})
    with pytest.raises(CheckpointError, match=r"does not fit vit p8 d128 L3 H2 @32: missing 12 keys \(blocks\.0\.") as err:
        load_model(first_missing.path)  # its biases and MLP width are read from block 1
    assert "unexpected" not in _one_line_naming(err, first_missing.path)


def test_wrong_heads_for_a_relative_position_table(tmp_path):
    made = make_case(next(c for c in CASES if c.id == "beit-shared"), tmp_path)
    with pytest.raises(CheckpointError, match=r"relative_position_bias_table \[52, 4\] vs model \[52, 2\]\); "
                                              r"the weights fit beit p8 d128 L2 H4 @32 \(num_heads=4\)"):
        load_model(made.path, arch=made.case.spec.replace(num_heads=2))
    said = (r"^2 heads asked for \(--num-heads; in Python num_heads= or arch=\) contradict checkpoint .*: its "
            r"rel_pos_bias.relative_position_bias_table has 4 columns, one per head; ask for 4 or leave the head "
            r"count out$")
    for asked in ({"num_heads": 2}, {"arch": {"num_heads": 2}}):  # a dict's heads meet the same check
        with pytest.raises(ConfigError, match=said) as err:
            load_model(made.path, **asked)
        _one_line_naming(err, made.path)
    assert load_model(made.path, num_heads=4).blocks[0].attn.num_heads == 4


def test_heads_given_against_a_stored_architecture_are_refused(tmp_path):
    """vitprobe's own checkpoints store their head count: a --num-heads meant for another
    checkpoint of the same command must not silently re-split this one's attention."""
    from official_layouts import random_encoder

    from vitprobe.models import save_encoder

    path = save_encoder(tmp_path / "own.safetensors", random_encoder(VIT, seed=1), VIT, {})
    with pytest.raises(ConfigError, match=r"--num-heads 4 \(Python num_heads=\) contradicts checkpoint .*: it "
                                          r"stores its architecture, with 2 heads; drop --num-heads, or give it "
                                          r"once per --checkpoint with auto for this one$") as err:
        load_model(path, num_heads=4)
    _one_line_naming(err, path)
    model = load_model(path, num_heads=VIT.num_heads)
    assert model.blocks[0].attn.num_heads == VIT.num_heads
    assert model.vitprobe_info["report"]["num_heads_from"] == "stored in the checkpoint"


def _one_not_finite(value: float):
    def damaged(sd):
        sd["blocks.1.mlp.fc2.weight"][0, 0] = value
        return sd

    return damaged


def _stored_as(dtype: torch.dtype):
    def converted(sd):
        for name in ("blocks.0.attn.qkv.weight", "blocks.1.mlp.fc1.bias"):
            sd[name] = sd[name].to(dtype)
        return sd

    return converted


_NOT_FINITE = (r"blocks.1.mlp.fc2.weight holds 1 non-finite value \(NaN or inf\) of \d+; the weights are damaged "
               r"\(a training run that diverged\?\)")


@pytest.mark.parametrize("case_id", ["timm-pth", "mae-training"])
@pytest.mark.parametrize("damage, message", [
    # a diverged run's NaN or inf would make every feature after it NaN
    (_one_not_finite(float("inf")), _NOT_FINITE), (_one_not_finite(float("nan")), _NOT_FINITE),
    # cast on load, int weights would be truncated (a small ViT's to zeros), complex ones lose their imaginary part
    *[(_stored_as(dtype), rf"2 weights stored as {str(dtype).removeprefix('torch.')} \(first blocks.0.attn.qkv"
                          r".weight\), where the model holds floating point; .* save the weights in float32, "
                          r"float16 or bfloat16$") for dtype in (torch.int32, torch.int64, torch.complex64)]])
def test_damaged_weights_are_refused_at_load_naming_the_tensor(tmp_path, case_id, damage, message):
    made = make_case(next(c for c in CASES if c.id == case_id), tmp_path, mutate=damage)
    with pytest.raises(CheckpointError, match=message) as err:
        load_model(made.path)
    _one_line_naming(err, made.path)
    report = inspect_checkpoint(made.path)["report"]
    assert report["fits"] is False and re.search(message, report["fit_error"])


@pytest.mark.parametrize("case_id", ["timm-pth", "mae-training"])
def test_weights_in_half_precision_load(tmp_path, case_id):
    half = make_case(next(c for c in CASES if c.id == case_id), tmp_path,
                     mutate=lambda sd: {k: v.to(torch.bfloat16) for k, v in sd.items()})
    model = load_model(half.path)
    assert model.blocks[0].attn.qkv.weight.dtype == torch.float32
    torch.testing.assert_close(model.blocks[0].attn.qkv.weight,
                               half.encoder.blocks[0].attn.qkv.weight.to(torch.bfloat16).float(), rtol=0, atol=0)


@pytest.mark.parametrize("version, fix", [(99, "it was written by a newer vitprobe: upgrade vitprobe to read it"),
                                          ("1", "the file's vitprobe header is damaged or not vitprobe's")])
def test_a_vitprobe_checkpoint_of_another_format_version_says_what_to_do(tmp_path, version, fix):
    import json

    from official_layouts import random_encoder
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from vitprobe.models import save_encoder

    path = save_encoder(tmp_path / "own.safetensors", random_encoder(VIT, seed=1), VIT, {})
    with safe_open(str(path), "pt") as f:
        header = json.loads(f.metadata()["vitprobe"])
    save_file(load_file(path), path, metadata={"vitprobe": json.dumps({**header, "format_version": version})})
    with pytest.raises(CheckpointError, match=rf"vitprobe format_version {version!r} is not 1; {re.escape(fix)}") as err:
        load_model(path)
    _one_line_naming(err, path)


@pytest.mark.parametrize("damage", [{"num_heads": 3}, {"depth": 1}])
def test_a_vitprobe_header_that_does_not_fit_its_weights_says_how_to_read_them_alone(tmp_path, damage):
    """The header's architecture rules (--num-heads may not replace it), so the fix offered is the
    one that reads the weights without it, and that fix loads them."""
    import json

    from official_layouts import random_encoder
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from vitprobe.models import save_encoder

    encoder = random_encoder(VIT, seed=1)
    path = save_encoder(tmp_path / "own.safetensors", encoder, VIT, {})
    with safe_open(str(path), "pt") as f:
        header = json.loads(f.metadata()["vitprobe"])
    header["arch"].update(damage)
    save_file(load_file(path), path, metadata={"vitprobe": json.dumps(header)})
    with pytest.raises(CheckpointError, match=r"; its stored architecture does not fit its weights, so its header is "
                                              r"damaged: read the weights alone with --format timm and --num-heads N "
                                              r"\(Python: arch=\)$") as err:
        load_model(path)
    _one_line_naming(err, path)
    read = load_model(path, format="timm", num_heads=VIT.num_heads)
    for name, tensor in encoder.state_dict().items():
        assert torch.equal(read.state_dict()[name], tensor)


def test_registers_asked_of_a_beit_are_refused(tmp_path):
    """timm's Beit has no register tokens: an arch that asks for them is not built without them."""
    made = make_case(next(c for c in CASES if c.id == "beit-shared"), tmp_path)
    with pytest.raises(CheckpointError, match=r"cannot build beit p8 d128 L2 H4 @32 \(BEiT encoders have no "
                                              r"register tokens\)") as err:
        load_model(made.path, arch=made.case.spec.replace(reg_tokens=2))
    _one_line_naming(err, made.path)


def test_heads_must_divide_width(tmp_path):
    made = make_case(TIMM, tmp_path)
    with pytest.raises(CheckpointError, match="3 heads do not divide width 128"):
        load_model(made.path, num_heads=3)


def test_a_vit_with_a_convolutional_stem_is_named_as_such(tmp_path):
    """MoCo v3's vit_conv_small: a stack of 3x3 convolutions for the patch embedding."""
    from official_layouts import random_encoder

    sd = {k: v for k, v in random_encoder(VIT).state_dict().items() if not k.startswith("patch_embed.")}
    sd.update({"patch_embed.proj.0.weight": torch.zeros(24, 3, 3, 3), "patch_embed.proj.1.weight": torch.ones(24),
               "patch_embed.proj.12.weight": torch.zeros(VIT.embed_dim, 192, 1, 1)})
    for name, obj in (("bare.pth", sd),
                      ("moco.pth.tar", {"arch": "vit_conv_small",
                                        "state_dict": {f"module.base_encoder.{k}": v for k, v in sd.items()}})):
        torch.save(obj, tmp_path / name)
        with pytest.raises(CheckpointError, match=r"a ViT with a convolutional stem \(patch_embed.proj.N.\*") as err:
            load_model(tmp_path / name)
        _one_line_naming(err, tmp_path / name)


def test_a_vit_of_other_than_three_colour_channels_is_named_as_such(tmp_path):
    grey = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, depth=1, img_size=32, in_chans=1)
    path = tmp_path / "grey.pth"
    torch.save(grey.state_dict(), path)
    with pytest.raises(CheckpointError, match=r"patch embedding kernel \[192, 1, 16, 16\] is not a square patch over "
                                              r"3 colour channels; not supported") as err:
        load_model(path)
    _one_line_naming(err, path)


def test_resnet_state_dict_is_refused(tmp_path):
    path = tmp_path / "resnet18.pth"
    resnet = timm.create_model("resnet18", pretrained=False).state_dict()
    torch.save(resnet, path)
    with pytest.raises(CheckpointError, match="unknown layout") as err:
        load_model(path)
    _one_line_naming(err, path)
    with pytest.raises(CheckpointError, match="no patch embedding.*a CNN state dict"):
        load_model(path, format="timm")
    with pytest.raises(CheckpointError, match=f"missing 30 keys.*unexpected {len(resnet)} keys .*not a ViT/BEiT encoder"):
        load_model(path, format="timm", arch=VIT)


def test_forced_wrong_format_is_refused(tmp_path):
    made = make_case(TIMM, tmp_path)
    with pytest.raises(CheckpointError, match="is in the timm layout, not mocov3 .*drop --format to read it as timm"):
        load_model(made.path, format="mocov3")
    with pytest.raises(CheckpointError, match="unknown checkpoint format 'deit'"):
        load_model(made.path, format="deit")


def test_a_layout_read_with_the_wrong_format_or_key_names_the_fix(tmp_path):
    simmim = make_case(next(c for c in CASES if c.format == "simmim"), tmp_path)
    with pytest.raises(CheckpointError, match="is in the simmim layout, not mae .*drop --format to read it as simmim"):
        load_model(simmim.path, format="mae")
    # An MAE encoder release has nothing SimMIM's layout would strip: it would load, recorded as SimMIM.
    mae = make_case(next(c for c in CASES if c.id == "mae-finetuned"), tmp_path)
    with pytest.raises(CheckpointError, match="is in the mae layout, not simmim"):
        load_model(mae.path, format="simmim")
    assert load_model(mae.path, format="mae").vitprobe_info["format"] == "mae"
    dino = make_case(next(c for c in CASES if c.format == "dino"), tmp_path)
    student_only = tmp_path / "student.pth"
    obj = torch.load(dino.path, weights_only=False)
    torch.save({"student": obj["student"], "epoch": 3}, student_only)
    with pytest.raises(CheckpointError, match="has no 'teacher' entry; it holds 'student': pass --key student"):
        load_model(student_only)
    assert load_model(student_only, key="student").vitprobe_info["report"]["key"] == "student"
    optimiser = tmp_path / "optimiser.pth"
    torch.save(torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1).state_dict(), optimiser)
    with pytest.raises(CheckpointError, match="is an optimiser state .* not model weights"):
        load_model(optimiser)


def test_a_swin_transformer_is_named_as_such(tmp_path):
    swin = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, depths=(1, 1, 1, 1), embed_dim=32,
                             num_heads=(1, 1, 1, 1))
    path = tmp_path / "simmim_swin.pth"
    torch.save({"model": {f"encoder.{k}": v for k, v in swin.state_dict().items()}, "epoch": 1}, path)
    with pytest.raises(CheckpointError, match=r"a Swin Transformer \(layers.N.blocks.M.\*\), which vitprobe does not read"):
        load_model(path)


def test_a_position_embedding_without_the_class_token_is_named_as_such(tmp_path):
    """timm's no_embed_class layout (DINOv2 with registers, SigLIP): pos_embed covers the patch
    grid alone. The error names that layout, not only the token count."""
    dinov2_reg = timm.create_model("vit_small_patch14_reg4_dinov2", pretrained=False, img_size=28, depth=1)
    path = tmp_path / "dinov2_reg.pth"
    torch.save(dinov2_reg.state_dict(), path)
    with pytest.raises(CheckpointError, match=r"pos_embed holds 4 tokens, not 5 prefix tokens \+ a square grid; "
                                              r"a square grid of 4 patches with no position for the 5 prefix token"):
        load_model(path)


def test_a_relative_position_table_of_an_even_span_is_named_as_such():
    """(2 * grid - 1)^2 + 3 rows: 19 rows (a 4 x 4 span of offsets) fit no grid."""
    from pathlib import Path

    from official_layouts import BEIT_SHARED, random_encoder

    from vitprobe.models.loading import interpret
    from vitprobe.models.reading import RawCheckpoint

    sd = {**random_encoder(BEIT_SHARED).state_dict(), "rel_pos_bias.relative_position_bias_table": torch.zeros(19, 4)}
    with pytest.raises(CheckpointError, match=r"checkpoint x.pth: rel_pos_bias.relative_position_bias_table has 19 rows, "
                                              r"not \(2\*grid-1\)\^2 \+ 3; this is not a BEiT-style bias table"):
        interpret(RawCheckpoint(Path("x.pth"), "torch", sd))


def test_a_beit_shown_by_its_layer_scale_alone_loads_as_a_beit(tmp_path):
    """A BEiT of absolute positions, no q/v biases and no relative bias: its gamma_1/gamma_2
    layer scale alone marks the BEiT layout."""
    from official_layouts import BEIT_SHARED

    spec = BEIT_SHARED.replace(rel_pos_bias="none", abs_pos_emb=True, qkv_bias=False)
    made = make_case(Case(TIMM.id, TIMM.format, TIMM.write, spec), tmp_path)
    model = load_model(made.path, num_heads=spec.num_heads)
    assert model.vitprobe_info["arch"] == spec.to_dict()
    for k, v in made.encoder.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k


def test_a_position_embedding_of_no_square_grid_says_what_to_check(tmp_path):
    """A ViT trained on 32 x 48 images (2 x 3 patches): its 7 positions fit no square grid."""
    wide = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=(32, 48), depth=1)
    path = tmp_path / "wide.pth"
    torch.save(wide.state_dict(), path)
    with pytest.raises(CheckpointError, match=rf"checkpoint {path}: pos_embed holds 7 tokens, not 1 prefix "
                                              r"token \+ a square grid; vitprobe reads ViTs trained on a square "
                                              r"grid of patches: check that the file is whole") as err:
        load_model(path)
    assert "\n" not in str(err.value)


class _Payload:
    """Unpickling this creates ``marker`` (stands for arbitrary code)."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_malicious_pickle_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    made = make_case(TIMM, tmp_path)
    path = tmp_path / "evil.pth"
    torch.save({"teacher": {f"backbone.{k}": v for k, v in made.encoder.state_dict().items()},
                "args": _Payload(marker)}, path)
    with pytest.raises(CheckpointError, match="refused to unpickle.*re-save") as err:
        load_model(path)
    _one_line_naming(err, path)
    with pytest.raises(CheckpointError, match="refused to unpickle"):
        inspect_checkpoint(path)
    assert not marker.exists()
    torch.load(path, weights_only=False)  # the file is armed: an unsafe load runs the payload
    assert marker.exists()


class _Call:
    """Unpickling this calls ``function(*args)``."""

    def __init__(self, function, *args) -> None:
        self.function, self.args = function, args

    def __reduce__(self):
        return (self.function, self.args)


@pytest.mark.parametrize("name, payload", [
    ("eval", lambda marker: _Call(eval, f"open({str(marker)!r}, 'w')")),
    ("exec", lambda marker: _Call(exec, f"open({str(marker)!r}, 'w')")),
    ("io.open", lambda marker: _Call(open, str(marker), "w")),
    ("functools.partial", lambda marker: _Call(__import__("functools").partial, open, str(marker), "w")),
    ("getattr", lambda marker: _Call(getattr, str(marker), "upper")),
])
def test_every_callable_global_is_refused_by_name(tmp_path, name, payload):
    """The allow-list holds argparse.Namespace, numpy's rebuilders and the yacs stand-in only:
    a pickle naming any other global is refused, the error naming the global."""
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"model": {"pos_embed": torch.zeros(1)}, "args": payload(marker)}, path)
    with pytest.raises(CheckpointError, match=rf"refused to unpickle {re.escape(name)}, which is not a plain tensor") as err:
        load_model(path)
    _one_line_naming(err, path)
    assert not marker.exists()


def test_a_checkpoint_saved_from_gpu_tensors_is_read_onto_the_cpu(tmp_path, monkeypatch):
    """Tensors saved on a GPU (their storages tagged cuda:0) are mapped to the CPU, so such a
    file loads on a machine without one (and nothing lands on a GPU where there is one)."""
    from vitprobe.models.reading import read_checkpoint

    made = make_case(TIMM, tmp_path)
    path = tmp_path / "saved_on_gpu.pth"
    with monkeypatch.context() as patched:
        patched.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        torch.save(made.encoder.state_dict(), path)
    assert b"cuda:0" in path.read_bytes()
    assert {t.device.type for t in read_checkpoint(path).obj.values()} == {"cpu"}
    model = load_model(path)
    for k, v in made.encoder.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k


def test_a_plain_python_pickle_is_explained_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl.pth"
    with open(path, "wb") as fh:
        pickle.dump({"model": _Payload(marker)}, fh, protocol=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's own pickle-protocol warning does not leak
        with pytest.raises(CheckpointError, match=r"uses pickle opcodes that the safe loader does not read \(a plain pickle.dump file.*re-save") as err:
            load_model(path)
    _one_line_naming(err, path)
    assert not marker.exists()
    with open(path, "rb") as fh:
        pickle.load(fh)  # the file is armed
    assert marker.exists()


def test_harmless_pickled_values_are_accepted(tmp_path):
    made = make_case(TIMM, tmp_path)
    path = tmp_path / "mae_numpy.pth"
    torch.save({"model": made.encoder.state_dict(), "max_accuracy": np.float64(81.5),
                "seen": np.arange(4, dtype=np.int32), "args": argparse.Namespace(seed=np.int64(0))}, path)
    assert load_model(path).vitprobe_info["format"] == "mae"


def _jpeg(path):
    Image.new("RGB", (8, 8), (200, 10, 10)).save(path, format="JPEG")


def _truncated(path, tmp_path):
    made = make_case(TIMM, tmp_path)
    data = made.path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _truncated_safetensors(path, tmp_path):
    made = make_case(next(c for c in CASES if c.id == "vitprobe"), tmp_path)
    data = made.path.read_bytes()
    path.write_bytes(data[: len(data) - 100])


def _cut_inside_its_header(path, tmp_path):
    """A safetensors file cut 4 bytes before its header ends: fewer bytes than the header's
    length plus the 8 that give it, though more than the length alone."""
    import struct

    made = make_case(next(c for c in CASES if c.id == "vitprobe"), tmp_path)
    data = made.path.read_bytes()
    (header_len,) = struct.unpack("<Q", data[:8])
    path.write_bytes(data[: 8 + header_len - 4])


BAD_FILES = {
    "missing": (lambda p, t: None, "not found"),
    "directory": (lambda p, t: p.mkdir(), "is a directory"),
    "empty": (lambda p, t: p.write_bytes(b""), r"is empty \(0 bytes\)"),
    # the library's reason ends with its first sentence, not mid-way through a second
    "truncated": (_truncated, r"\(PytorchStreamReader failed reading zip archive: failed finding central "
                              r"directory\); the file is truncated or corrupt"),
    "truncated-safetensors": (_truncated_safetensors, "corrupt or truncated safetensors"),
    "cut-in-its-header": (lambda p, t: _truncated_safetensors(p, t) or p.write_bytes(p.read_bytes()[:1000]),
                          r"is a truncated safetensors file \(1000 bytes, shorter than its header says\)"),
    "cut-4-bytes-short-of-its-header": (_cut_inside_its_header,
                                        r"is a truncated safetensors file \(\d+ bytes, shorter than its header says\)"),
    "corrupt-zip": (lambda p, t: p.write_bytes(b"PK\x03\x04" + os.urandom(300)), "truncated or corrupt"),
    "garbage": (lambda p, t: p.write_bytes(b"hello, not a checkpoint"),
                r"neither a torch.save file nor a safetensors file \(unrecognised first bytes \(it reads as text\)\), "
                r"whatever its name says"),
    "binary-garbage": (lambda p, t: p.write_bytes(bytes(range(7, 40))), r"\(unrecognised first bytes\), whatever"),
    "jpeg": (lambda p, t: _jpeg(p), "is a JPEG image, not a checkpoint"),
    "unknown-layout": (lambda p, t: torch.save({"weights": [1, 2], "epoch": 3}, p),
                       r"unknown layout \(it holds top-level keys epoch, weights\)"),
    "list": (lambda p, t: torch.save([torch.ones(2)], p),
             r"holds a list, not a dict of weights, so no format reads it; save the model's state_dict\(\)"),
    "under-a-prefix": (lambda p, t: torch.save({"model": {"net.patch_embed.proj.weight": torch.ones(8, 3, 4, 4)}}, p),
                       r"unknown layout \(it holds top-level keys model\); .* its ViT patch embedding is at "
                       r"\['model'\]\['net.patch_embed.proj.weight'\], under the prefix 'net.', which no "
                       r"format strips: save that dict again with 'net.' removed from its keys$"),
}


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_bad_file_gives_one_line_error(kind, tmp_path):
    write, pattern = BAD_FILES[kind]
    path = tmp_path / "model.pth"
    write(path, tmp_path)
    for call in (load_model, inspect_checkpoint):
        with pytest.raises(CheckpointError, match=pattern) as err:
            call(path)
        _one_line_naming(err, path)


def test_a_training_state_file_points_to_its_encoder(tmp_path):
    state = tmp_path / "run" / "checkpoint.train_state.pt"
    state.parent.mkdir()
    torch.save({"objective": {"w": torch.ones(2)}, "epoch": 1}, state)
    with pytest.raises(CheckpointError, match=r"training state of a vitprobe run .* the encoder is "
                                              r".*run/checkpoint\.safetensors$"):
        inspect_checkpoint(state)


def test_the_first_bytes_not_the_name_decide_how_a_file_is_read(tmp_path):
    encoder = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, depth=1)
    torch.save(encoder.state_dict(), tmp_path / "really_a_pickle.safetensors")
    model = load_model(tmp_path / "really_a_pickle.safetensors")
    assert torch.equal(model.state_dict()["pos_embed"], encoder.state_dict()["pos_embed"])


def test_a_safetensors_file_of_no_tensors_is_read_as_safetensors(tmp_path):
    """The header length check is inclusive: a header that ends the file is a whole file."""
    from safetensors.torch import save_file

    from vitprobe.models.reading import read_checkpoint

    save_file({}, tmp_path / "empty.safetensors", metadata={"note": "x"})
    raw = read_checkpoint(tmp_path / "empty.safetensors")
    assert raw.container == "safetensors" and raw.obj == {} and raw.metadata == {"note": "x"}


def test_brief_reason_keeps_the_first_sentence_and_whole_words():
    from vitprobe.errors import brief_reason

    assert brief_reason(RuntimeError("failed finding central directory. This is an internal  error.")) == \
        "failed finding central directory"
    long = brief_reason(ValueError("word " * 60), limit=20)
    assert long == "word word word word..." and brief_reason(KeyError()) == "KeyError"


def test_unreadable_file(tmp_path):
    made = make_case(TIMM, tmp_path)
    made.path.chmod(0)
    try:
        if os.access(made.path, os.R_OK):
            pytest.skip("running as root: chmod 0 does not stop reading")
        with pytest.raises(CheckpointError, match="permission denied") as err:
            load_model(made.path)
        _one_line_naming(err, made.path)
    finally:
        made.path.chmod(0o644)


def test_unreadable_file_message_when_access_is_denied(tmp_path, monkeypatch):
    made = make_case(TIMM, tmp_path)
    monkeypatch.setattr("vitprobe.models.reading.os.access", lambda path, mode: False)
    with pytest.raises(CheckpointError, match="cannot be read: permission denied") as err:
        inspect_checkpoint(made.path)
    _one_line_naming(err, made.path)


def test_errors_name_only_flags_that_exist(tmp_path):
    from official_layouts import random_encoder

    from vitprobe.errors import ConfigError
    from vitprobe.models import save_encoder

    path = save_encoder(tmp_path / "own.safetensors", random_encoder(VIT, seed=1), VIT, {})
    with pytest.raises(CheckpointError, match="is in the vitprobe layout, not mae .*drop --format"):
        load_model(path, format="mae")
    with pytest.raises(ConfigError, match="choose another --img-size"):
        load_model(path, img_size=VIT.patch_size + 1)
