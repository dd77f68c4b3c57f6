"""Bounded fuzzing of the checkpoint reader: only CheckpointError ever escapes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from official_layouts import CASES, make_case

from vitprobe.errors import CheckpointError
from vitprobe.models import inspect_checkpoint
from vitprobe.models.formats import formats
from vitprobe.models.loading import interpret
from vitprobe.models.reading import RawCheckpoint

FUZZ = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

KEYS = st.sampled_from([
    "model", "state_dict", "teacher", "student", "args", "arch", "encoder.patch_embed.proj.weight",
    "patch_embed.proj.weight", "pos_embed", "cls_token", "reg_token", "blocks.0.attn.qkv.weight",
    "blocks.0.attn.q_bias", "blocks.0.mlp.fc1.weight", "rel_pos_bias.relative_position_bias_table",
    "module.base_encoder.patch_embed.proj.weight", "backbone.pos_embed", "head.weight", "fc_norm.weight",
]) | st.text(max_size=12)
TENSORS = st.lists(st.integers(0, 5), max_size=4).map(lambda shape: torch.zeros(shape))
LEAVES = TENSORS | st.integers() | st.text(max_size=8) | st.none() | st.floats(allow_nan=False)
NESTED = st.recursive(LEAVES, lambda inner: st.dictionaries(KEYS, inner, max_size=6)
                      | st.lists(inner, max_size=3), max_leaves=25)


def _only_checkpoint_errors(call) -> None:
    try:
        call()
    except CheckpointError as err:
        assert "\n" not in str(err)


@FUZZ
@given(obj=NESTED)
@example(obj={"\n": 0, "patch_embed.proj.weight": torch.zeros(1)})  # a key with a newline, named in the error
@example(obj={"a\nb": 0})
def test_random_nested_objects(obj):
    raw = RawCheckpoint(Path("fuzz.pth"), "torch", obj)
    _only_checkpoint_errors(lambda: interpret(raw))
    for fmt in formats():  # every registered format, forced
        _only_checkpoint_errors(lambda: interpret(raw, format=fmt))


@FUZZ
@given(data=st.binary(max_size=400))
def test_random_bytes(tmp_path, data):
    path = tmp_path / "random.pth"
    path.write_bytes(data)
    _only_checkpoint_errors(lambda: inspect_checkpoint(path))


@pytest.fixture(scope="module")
def valid_files(tmp_path_factory) -> list[bytes]:
    folder = tmp_path_factory.mktemp("valid")
    cases = [c for c in CASES if c.id in ("dino-teacher", "vitprobe")]
    return [make_case(c, folder).path.read_bytes() for c in cases]


@FUZZ
@given(which=st.integers(0, 1), cut=st.floats(0, 1, exclude_max=True))
def test_truncated_valid_files(tmp_path, valid_files, which, cut):
    data = valid_files[which]
    path = tmp_path / "cut.pth"
    path.write_bytes(data[: int(len(data) * cut)])
    _only_checkpoint_errors(lambda: inspect_checkpoint(path))
