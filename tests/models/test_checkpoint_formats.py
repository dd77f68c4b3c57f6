"""Every registered format: detect -> load -> bit-identical weights and forward output."""

from __future__ import annotations

import hashlib
import warnings

import pytest
import torch
from official_layouts import CASES, VIT, Case, make_case
from timm.layers import resample_abs_pos_embed

from vitprobe.analysis import prepare_analysis
from vitprobe.errors import CheckpointError, ConfigError
from vitprobe.models import inspect_checkpoint, load_model
from vitprobe.models.formats import formats
from vitprobe.models.loading import interpret
from vitprobe.models.reading import read_checkpoint

IDS = [c.id for c in CASES]


def test_every_registered_format_has_an_official_layout():
    assert set(formats()) == {c.format for c in CASES}


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_detected_format(case: Case, tmp_path):
    made = make_case(case, tmp_path)
    assert interpret(read_checkpoint(made.path), key=case.load_kwargs.get("key")).format == case.format


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_load_is_bit_identical(case: Case, tmp_path):
    made = make_case(case, tmp_path)
    generator = torch.get_rng_state()
    model = load_model(made.path, **case.load_kwargs)
    assert torch.equal(torch.get_rng_state(), generator)  # building the model drew nothing from it
    want = made.encoder.state_dict()
    got = model.state_dict()
    assert set(got) == set(want)
    for k in want:
        assert torch.equal(got[k], want[k]), k
    images = torch.randn(2, 3, case.spec.img_size, case.spec.img_size)
    with torch.no_grad():
        assert torch.equal(model(images), made.encoder(images))
    assert not model.training
    info = model.vitprobe_info
    assert info["format"] == case.format
    assert info["arch"] == case.spec.to_dict()
    assert info["sha256"] == hashlib.sha256(made.path.read_bytes()).hexdigest()


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_inspect_reports_arch_and_drops(case: Case, tmp_path):
    made = make_case(case, tmp_path)
    info = inspect_checkpoint(made.path, key=case.load_kwargs.get("key"))
    assert info["format"] == case.format
    assert info["arch"] == case.spec.to_dict()
    assert info["num_prefix_tokens"] == 1 + case.spec.reg_tokens
    assert {k for keys in info["report"]["dropped"].values() for k in keys} == made.dropped
    assert info["report"]["fits"] is True


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_extra_key_is_refused(case: Case, tmp_path):
    made = make_case(case, tmp_path, mutate=lambda sd: {**sd, "blocks.0.attn.extra": torch.ones(3)})
    with pytest.raises(CheckpointError, match=r"unexpected 1 key \(blocks\.0\.attn\.extra\)"):
        load_model(made.path, **case.load_kwargs)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_missing_key_is_refused(case: Case, tmp_path):
    made = make_case(case, tmp_path, mutate=lambda sd: {k: v for k, v in sd.items()
                                                         if k != "blocks.1.norm2.bias"})
    with pytest.raises(CheckpointError, match=r"missing 1 key \(blocks\.1\.norm2\.bias\); no other architecture "
                                              r"explains these keys.*pass --format or --key") as err:
        load_model(made.path, **case.load_kwargs)
    assert "weights fit" not in str(err.value)  # not the architecture it has just refused


def test_a_missing_key_is_not_blamed_on_the_head_count(tmp_path):
    """The file says 4 heads, the weights alone would give 2: a missing key is no reason to
    suggest 2 heads, which would fail the same way."""
    from vitprobe.models.formats.base import custom_arch_name

    case = next(c for c in CASES if c.id == "dino-teacher")
    made = make_case(Case(case.id, case.format, case.write, case.spec.replace(num_heads=4)), tmp_path,
                     mutate=lambda sd: {k: v for k, v in sd.items() if k != "blocks.1.mlp.fc2.weight"})
    saved = torch.load(made.path, weights_only=False)
    saved["args"].arch = custom_arch_name(case.spec.embed_dim, 4)  # as `vitprobe export --to dino` names it
    torch.save(saved, made.path)
    with pytest.raises(CheckpointError, match="no other architecture explains these keys") as err:
        load_model(made.path)
    assert "weights fit" not in str(err.value) and "num_heads" not in str(err.value)


def test_a_guessed_head_count_is_warned_and_a_given_one_is_not(tmp_path):
    made = make_case(next(c for c in CASES if c.id == "timm-pth"), tmp_path)  # width 128: no published heads
    with pytest.warns(UserWarning, match=r"does not give the head count, so it was guessed: width 128 // 64.*2 heads.*--num-heads") as said:
        load_model(made.path)
    hint = str(said[0].message).split("Python: ")[1]
    assert hint.startswith("load_model(num_heads=N), analyze(load_options={'num_heads': N}))")
    with warnings.catch_warnings():  # each way the warning names takes the head count without a guess
        warnings.simplefilter("error")
        assert load_model(made.path, num_heads=2).vitprobe_info["report"]["num_heads_from"] == "given (--num-heads; Python num_heads=)"
        plan = prepare_analysis(made.path, "synthetic:4", "fourier", load_options={"num_heads": 2})
        assert plan.info.num_heads == 2


def test_a_guessed_head_count_is_in_every_results_protocol_and_caption(tmp_path):
    """Per-head numbers follow the guess: the summary's protocol, the figure caption and the
    notebook display say "heads guessed 2 from width 128 // 64 ...", once for two runs of it and
    never as a setting that differs from a run whose count was given."""
    from vitprobe import analyze
    from vitprobe.comparability import setting_differences
    from vitprobe.plots.style import protocol_caption

    made = make_case(next(c for c in CASES if c.id == "timm-pth"), tmp_path)
    said = "heads guessed 2 from width 128 // 64 (no published value for this width)"
    with pytest.warns(UserWarning, match="guessed"):
        guessed = analyze(made.path, "synthetic:4", "attention_nmi", progress=False)
    given = analyze(made.path, "synthetic:4", "attention_nmi", progress=False, load_options={"num_heads": 2})
    protocols = [guessed["attention_nmi"].protocol, given["attention_nmi"].protocol]
    assert all(said in caption for caption in guessed.summary()["protocol"]) and said in guessed._repr_html_()
    assert said in protocol_caption(protocols[:1]) and "guessed" not in protocol_caption(protocols[1:])
    assert not any(d.startswith("heads_guessed") for d in setting_differences(protocols))


@pytest.mark.parametrize("case_id, warned", [("mae-finetuned", True), ("timm-pth", False)])
def test_a_vit_s_in_the_model_layout_warns_that_moco_v3_has_12_heads(case_id, warned, tmp_path):
    """{"model": ViT-S} is DeiT-S (6 heads) or MoCo v3's convert_to_deit.py output (12 heads);
    a bare ViT-S state dict (DINO's release, timm) is not ambiguous."""
    case = next(c for c in CASES if c.id == case_id)
    made = make_case(Case(case.id, case.format, case.write, case.spec.replace(embed_dim=384, num_heads=6)), tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = load_model(made.path)
    heads_warnings = [str(w.message) for w in caught if "head count" in str(w.message)]
    assert model.blocks[0].attn.num_heads == 6
    if warned:
        assert len(heads_warnings) == 1 and "MoCo v3 ViT-S" in heads_warnings[0] and "12" in heads_warnings[0]
        assert load_model(made.path, num_heads=12).blocks[0].attn.num_heads == 12
    else:
        assert heads_warnings == []


def test_dino_student_is_selectable(tmp_path):
    made = make_case(next(c for c in CASES if c.format == "dino"), tmp_path)
    student = load_model(made.path, key="student")
    teacher = load_model(made.path)
    # the factory stores the student as teacher + 1
    assert torch.equal(student.pos_embed, teacher.pos_embed + 1)
    assert student.vitprobe_info["report"]["key"] == "student"
    with pytest.raises(CheckpointError, match="--key choices: teacher, student"):
        load_model(made.path, key="model")


@pytest.mark.parametrize("case_id", ["timm-pth", "timm-safetensors-registers", "beit-per-block", "simmim"])
def test_other_image_size_resamples_position_tables(case_id, tmp_path):
    case = next(c for c in CASES if c.id == case_id)
    made = make_case(case, tmp_path)
    model = load_model(made.path, img_size=48)
    assert model.patch_embed.grid_size == (6, 6)
    with torch.no_grad():
        out = model(torch.randn(2, 3, 48, 48))
    assert out.shape == (2, case.spec.embed_dim) and torch.isfinite(out).all()
    resampled = model.vitprobe_info["report"]["resampled"]
    if case.spec.abs_pos_emb:
        prefix = case.spec.num_prefix_tokens  # the class token and any registers keep their positions
        want = resample_abs_pos_embed(made.encoder.pos_embed.detach(), [6, 6], [4, 4], num_prefix_tokens=prefix)
        assert torch.equal(model.pos_embed, want)
        assert torch.equal(model.pos_embed[:, :prefix], made.encoder.pos_embed[:, :prefix])
        assert resampled["pos_embed"] == [[1, prefix + 16, 128], [1, prefix + 36, 128]]
    if case.spec.rel_pos_bias != "none":
        assert any(k.endswith("relative_position_bias_table") for k in resampled)
    assert model.vitprobe_info["arch"]["img_size"] == 48


@pytest.mark.parametrize("img_size", [36, 0, -VIT.patch_size])
def test_img_size_must_be_a_multiple_of_the_patch(img_size, tmp_path):
    made = make_case(CASES[0], tmp_path)
    with pytest.raises(ConfigError, match=rf"image size {img_size} for .* is not a positive multiple of the patch "
                                          rf"size {VIT.patch_size}; choose another --img-size"):
        load_model(made.path, img_size=img_size)


def test_a_resampled_position_table_keeps_every_register_in_the_prefix(tmp_path):
    """With more registers than the grid is wide (8 registers, 2 x 2 patches) the old grid is
    read from the positions after all 9 prefix tokens: sqrt(13 - 1) would give 3 x 3."""
    from official_layouts import VIT_REG

    spec = VIT_REG.replace(img_size=16, reg_tokens=8)
    made = make_case(Case("timm-safetensors-registers", "timm", CASES[1].write, spec, ".safetensors"), tmp_path)
    model = load_model(made.path, img_size=32)
    want = resample_abs_pos_embed(made.encoder.pos_embed.detach(), [4, 4], [2, 2], num_prefix_tokens=9)
    assert torch.equal(model.pos_embed, want)
    assert model.vitprobe_info["report"]["resampled"] == {"pos_embed": [[1, 13, 128], [1, 25, 128]]}


def test_timm_model_names_give_the_architecture():
    from vitprobe.models.formats.timm_state import timm_name_hints

    small = timm_name_hints("vit_small_patch16_224")
    assert (small.width, small.num_heads, small.depth, small.patch_size) == (384, 6, 12, 16)
    dinov2 = timm_name_hints("vit_base_patch14_reg4_dinov2")
    assert (dinov2.width, dinov2.num_heads, dinov2.depth, dinov2.patch_size) == (768, 12, 12, 14)
    for not_a_vit in ("resnet50", "hf-hub:someone/tiny-vit", None):
        assert timm_name_hints(not_a_vit).num_heads is None


def _timm_train_case(spec, arch: str, model_kwargs: dict | None = None) -> Case:
    from official_layouts import timm_train

    return Case("timm-train", "timm", lambda sd, s, path: timm_train(sd, s, path, arch=arch, model_kwargs=model_kwargs),
                spec, ".pth.tar")


def test_timm_train_checkpoint_takes_heads_from_its_arch(tmp_path):
    spec = VIT.replace(patch_size=16, embed_dim=192, num_heads=3, depth=12)  # timm's vit_tiny_patch16_224
    made = make_case(_timm_train_case(spec, "vit_tiny_patch16_224"), tmp_path)
    model = load_model(made.path)
    assert model.vitprobe_info["arch"] == spec.to_dict()
    assert model.vitprobe_info["report"]["num_heads_from"] == "timm model arch 'vit_tiny_patch16_224'"
    assert torch.equal(model.blocks[11].mlp.fc2.weight, made.encoder.blocks[11].mlp.fc2.weight)


def test_timm_train_checkpoint_builds_its_arch_with_its_model_kwargs(tmp_path):
    spec = VIT.replace(patch_size=8, embed_dim=192, num_heads=4, depth=2)  # --model-kwargs depth=2 num_heads=4 patch_size=8
    kwargs = {"depth": 2, "num_heads": 4, "patch_size": 8, "img_size": 32}
    made = make_case(_timm_train_case(spec, "vit_tiny_patch16_224", kwargs), tmp_path)
    model = load_model(made.path)
    assert model.vitprobe_info["arch"] == spec.to_dict()
    assert model.vitprobe_info["report"]["num_heads_from"] == f"timm model arch 'vit_tiny_patch16_224' with model_kwargs {kwargs}"


def test_timm_train_checkpoint_inconsistent_with_its_arch_is_refused(tmp_path):
    spec = VIT.replace(patch_size=16, embed_dim=192, num_heads=3)  # 2 blocks, not vit_tiny's 12
    made = make_case(_timm_train_case(spec, "vit_tiny_patch16_224"), tmp_path)
    with pytest.raises(CheckpointError, match="'vit_tiny_patch16_224' has 12 blocks but the weights hold 2"):
        load_model(made.path)


def test_timm_keys_that_the_file_lacks_are_named(tmp_path):
    made = make_case(next(c for c in CASES if c.id == "timm-train"), tmp_path)
    saved = torch.load(made.path, weights_only=False)
    del saved["state_dict_ema"]
    torch.save(saved, made.path)
    with pytest.raises(CheckpointError, match="no 'state_dict_ema' entry .*--model-ema.*omit --key"):
        load_model(made.path, key="state_dict_ema")
    bare = make_case(next(c for c in CASES if c.id == "timm-pth"), tmp_path)
    with pytest.raises(CheckpointError, match="bare state dict with no sub-checkpoints; omit --key"):
        load_model(bare.path, key="state_dict")
    mae = make_case(next(c for c in CASES if c.format == "mae"), tmp_path)
    with pytest.raises(CheckpointError, match=r"format mae holds one encoder, so it takes no --key \('teacher'\); "
                                              r"omit --key$"):
        load_model(mae.path, key="teacher")
    network = make_case(next(c for c in CASES if c.id == "dino-network"), tmp_path)  # a teacher saved alone
    with pytest.raises(CheckpointError, match=r"holds one network saved alone \(backbone.\*\), with no teacher or "
                                              r"student to choose; omit --key$"):
        load_model(network.path, key="teacher")


def test_an_arch_dict_replaces_only_the_fields_it_names(tmp_path):
    made = make_case(next(c for c in CASES if c.id == "timm-pth"), tmp_path)  # width 128: heads guessed 2
    model = load_model(made.path, arch={"num_heads": 4})
    assert model.vitprobe_info["arch"] == VIT.replace(num_heads=4).to_dict()
    assert model.vitprobe_info["report"]["num_heads_from"] == "given (arch=)"
    with pytest.raises(ConfigError, match=r"unknown architecture fields: \['heads'\]"):
        load_model(made.path, arch={"heads": 4})
    given_both = load_model(made.path, arch=VIT, num_heads=4)  # --num-heads replaces the arch's heads
    assert given_both.vitprobe_info["arch"] == VIT.replace(num_heads=4).to_dict()
    assert given_both.blocks[0].attn.num_heads == 4
    assert given_both.vitprobe_info["report"]["num_heads_from"] == "given (--num-heads; Python num_heads=)"


def test_a_guessed_single_head_is_said_in_the_singular(tmp_path):
    import timm

    model = timm.models.vision_transformer.VisionTransformer(img_size=32, patch_size=8, embed_dim=32, depth=1,
                                                             num_heads=1, num_classes=0)
    torch.save(model.state_dict(), tmp_path / "narrow.pth")  # width 32 // 64 -> at least 1 head
    with pytest.warns(UserWarning, match=r"so it was guessed: .*: 1 head; per-head results assume it"):
        load_model(tmp_path / "narrow.pth")


@pytest.mark.parametrize("case_id, beside", [
    ("dino-teacher", ["args", "dino_loss", "epoch", "fp16_scaler", "optimizer", "student"]),
    ("mocov3", ["arch", "epoch", "optimizer", "scaler"]),
    ("mocov3-lincls", ["arch", "best_acc1", "epoch", "optimizer"]),
    ("timm-train", ["amp_scaler", "arch", "args", "epoch", "metric", "optimizer", "saver", "state_dict_ema", "version"]),
    ("mae-training", ["args", "epoch", "optimizer", "scaler"]),
    ("simmim", ["config", "epoch", "lr_scheduler", "max_accuracy", "optimizer"]),
    ("timm-pth", []),
])
def test_the_entries_beside_the_weights_are_listed_and_the_weights_are_not(case_id, beside, tmp_path):
    made = make_case(next(c for c in CASES if c.id == case_id), tmp_path)
    assert inspect_checkpoint(made.path)["report"]["ignored_entries"] == beside


def test_a_moco_v3_linear_classifier_is_dropped_as_such(tmp_path):
    """main_lincls.py's head is the trained classifier, not the pre-training projector."""
    from vitprobe.models.formats.mocov3 import LINCLS_HEAD

    made = make_case(next(c for c in CASES if c.id == "mocov3-lincls"), tmp_path)
    dropped = inspect_checkpoint(made.path)["report"]["dropped"]
    assert dropped == {LINCLS_HEAD: ["head.weight", "head.bias"]}
    assert "linear classifier of main_lincls.py" in LINCLS_HEAD
    with pytest.raises(CheckpointError, match=r"is a MoCo v3 linear-classification checkpoint \(main_lincls.py\): "
                                              r"it holds one encoder and no base_encoder or momentum_encoder; omit --key$"):
        load_model(made.path, key="base_encoder")


def test_a_format_that_also_detects_the_file_may_be_forced(tmp_path):
    """A vitprobe .safetensors holds plain timm keys: --format timm reads it as a bare state dict
    (what vitprobe's own format tells a file without its header to do), though the vitprobe
    layout is detected first; only a format that does not detect the file is refused."""
    made = make_case(next(c for c in CASES if c.id == "vitprobe"), tmp_path)
    model = load_model(made.path, format="timm", num_heads=VIT.num_heads)
    assert model.vitprobe_info["format"] == "timm"
    assert model.vitprobe_info["report"]["num_heads_from"] == "given (--num-heads; Python num_heads=)"  # the header is not read
    for k, v in made.encoder.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k


def test_a_timm_training_state_dict_of_a_wrapped_model_is_unwrapped(tmp_path):
    """train.py state dicts of a DDP or compiled model (module.*, _orig_mod.*) load as the bare ones do."""
    from official_layouts import timm_train

    case = Case("timm-train", "timm", lambda sd, spec, path: timm_train(
        {f"module._orig_mod.{k}": v for k, v in sd.items()}, spec, path), VIT, ".pth.tar")
    made = make_case(case, tmp_path)
    model = load_model(made.path)
    for k, v in made.encoder.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k


def test_only_whole_custom_architecture_names_are_read():
    from vitprobe.models.formats.base import NamedArch, named_arch
    from vitprobe.models.formats.dino import DINO_ARCHS

    assert named_arch("vit_d128_h4", DINO_ARCHS) == NamedArch(128, 4, None)
    assert named_arch("vit_small", DINO_ARCHS) == NamedArch(384, 6, 12)
    for other in ("vit_d128_h4_in21k", "deit_vit_d128_h4", "vit_d128", "vit_smallish", None, 3):
        assert named_arch(other, DINO_ARCHS) is None, other


def test_a_beit_without_layer_scale_loads_without_one(tmp_path):
    """BEiT's layer scale is optional (layer_scale_init_value 0): no gamma_1/gamma_2 in the file,
    none in the model."""
    from official_layouts import BEIT_SHARED, beit

    spec = BEIT_SHARED.replace(layer_scale=None)
    made = make_case(Case("beit-shared", "beit", beit, spec), tmp_path)
    model = load_model(made.path)
    assert model.vitprobe_info["arch"] == spec.to_dict()
    assert set(model.state_dict()) == set(made.encoder.state_dict())
    assert not any("gamma" in k for k in model.state_dict())
    for k, v in made.encoder.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
