"""Spec parsing: accepted forms, one-line errors, and a bounded fuzz (DataError or nothing)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from vitprobe.data import DataSpec, parse_spec, resolve_dataset
from vitprobe.errors import DataError


@pytest.mark.parametrize(("spec", "expected"), [
    ("synthetic", DataSpec("synthetic", "synthetic", n=512, seed=0)),
    ("synthetic:64", DataSpec("synthetic", "synthetic:64", n=64, seed=0)),
    ("Synthetic:64:9", DataSpec("synthetic", "synthetic:64:9", n=64, seed=9)),  # recorded in lower case
    (" digits ", DataSpec("digits", "digits")),
    ("FOLDER:Imgs", DataSpec("folder", "folder:Imgs", path=Path("Imgs"))),
    ("folder:~/imgs", DataSpec("folder", "folder:~/imgs", path=Path("~/imgs").expanduser())),
    ("folder:a:b", DataSpec("folder", "folder:a:b", path=Path("a:b"))),
    ("voc:/data/VOC", DataSpec("voc", "voc:/data/VOC", path=Path("/data/VOC"))),
    ("voc:/data/VOC:train", DataSpec("voc", "voc:/data/VOC:train", path=Path("/data/VOC"),
                                     split="train")),
    ("voc:C:\\VOC", DataSpec("voc", "voc:C:\\VOC", path=Path("C:\\VOC"))),
])
def test_accepted_forms(spec: str, expected: DataSpec) -> None:
    assert parse_spec(spec) == expected


def test_a_dataset_records_its_kind_in_lower_case() -> None:
    """``Synthetic:8`` and ``synthetic:8`` name one dataset: compare must not call them different data."""
    assert resolve_dataset(" Synthetic:8", 16).describe() == resolve_dataset("synthetic:8", 16).describe()


@pytest.mark.parametrize(("spec", "problem"), [
    ("imagenet", "unknown dataset kind 'imagenet'"),
    ("", "unknown dataset kind ''"),
    ("synthetic:0", "N (number of images) must lie in 1.."),
    ("synthetic:-3", "must be a whole number"),
    ("synthetic:1e3", "must be a whole number"),
    ("synthetic:1_000", "must be a whole number"),
    ("synthetic:\u0661\u0662", "must be a whole number"),  # Arabic-Indic digits: int() takes them
    ("synthetic:99999999999", "must lie in"),
    ("synthetic:4:x", "seed must be a whole number"),
    ("synthetic:4:-1", "seed must be a whole number in 0.."),  # not "a whole number, got -1"
    ("synthetic:4:1:2", "at most N and a seed"),
    ("digits:3", "digits takes no arguments"),
    ("folder", "the path is empty"),
    ("folder:", "the path is empty"),
    ("voc:\x00", "NUL"),
    ("voc:bad\nname", "does not exist"),
    ("folder:~vitprobe-no-such-user/x", "cannot expand '~vitprobe-no-such-user'"),
    ("voc:~vitprobe-no-such-user:train", "cannot expand '~vitprobe-no-such-user'"),
    ("~vitprobe-no-such-user", "unknown dataset kind '~vitprobe-no-such-user'"),
    ("folder:~\ud800/x", "cannot expand"),  # a lone surrogate: no user name the system can encode
    ("~\ud800", "unknown dataset kind"),
])
def test_bad_specs_name_the_spec_and_the_forms(spec: str, problem: str) -> None:
    with pytest.raises(DataError) as info:
        resolve_dataset(spec, 32)
    message = str(info.value)
    assert problem in message and repr(spec) in message
    assert "\n" not in message
    if "does not exist" not in problem:
        assert "synthetic[:N[:seed]], digits, folder:PATH, voc:PATH[:split]" in message


def test_a_bare_folder_path_is_told_which_spec_names_it(tmp_path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "VOCdevkit" / "VOC2012" / "JPEGImages").mkdir(parents=True)
    with pytest.raises(DataError, match=r"this is a folder; name its kind, e\.g\. folder:.*images'?;"):
        resolve_dataset(str(tmp_path / "images"), 32)
    with pytest.raises(DataError, match=r"e\.g\. voc:.*VOC2012"):
        resolve_dataset(str(tmp_path / "VOCdevkit" / "VOC2012"), 32)
    with pytest.raises(DataError, match=r"e\.g\. voc:"):  # the folder above VOCdevkit
        resolve_dataset(str(tmp_path), 32)


@pytest.mark.parametrize("kwargs", [
    {"image_size": 8}, {"image_size": 32.0}, {"image_size": True}, {"image_size": "32"},
    {"image_size": 32, "mean": (0.5, 0.5)}, {"image_size": 32, "std": (1.0, 0.0, 1.0)},
    {"image_size": 32, "mean": "abc"}, {"image_size": 32, "std": (1.0, float("nan"), 1.0)},
])
def test_bad_size_or_normalisation(kwargs: dict) -> None:
    with pytest.raises(DataError, match="synthetic:4") as info:
        resolve_dataset("synthetic:4", **kwargs)
    assert "\n" not in str(info.value)


def test_non_string_spec() -> None:
    with pytest.raises(DataError, match="must be a string"):
        parse_spec(42)  # type: ignore[arg-type]


_KIND = st.sampled_from(["synthetic", "digits", "folder", "voc", "Synthetic", "vocx", ""])
_SPECS = st.one_of(st.text(max_size=40),
                   st.builds(lambda k, sep, rest: k + sep + rest, _KIND, st.sampled_from([":", ""]),
                             st.text(alphabet=st.characters(), max_size=30)))


def _points_outside(spec: str, sandbox: Path) -> bool:
    """True when a folder/voc spec names an existing path outside the sandbox (not scanned)."""
    try:
        parsed = parse_spec(spec)
    except DataError:
        return False
    if parsed.path is None:
        return False
    try:
        resolved = parsed.path.resolve()
        return resolved.exists() and sandbox not in (resolved, *resolved.parents)
    except (OSError, ValueError, RuntimeError):
        return False


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=_SPECS, image_size=st.sampled_from([16, 32]))
def test_fuzz_only_data_errors(spec: str, image_size: int, tmp_path: Path) -> None:
    sandbox = tmp_path.resolve()
    cwd = os.getcwd()
    os.chdir(sandbox)  # relative paths land in an empty sandbox
    try:
        assume(not _points_outside(spec, sandbox))
        try:
            parsed = parse_spec(spec)
            assert isinstance(parsed, DataSpec)
        except DataError as error:
            assert "\n" not in str(error)
        try:
            dataset = resolve_dataset(spec, image_size)
        except DataError as error:
            assert "\n" not in str(error)
        else:
            assert dataset.kind in ("synthetic", "digits") and len(dataset) >= 1
    finally:
        os.chdir(cwd)


def test_a_dataset_shows_its_spec_split_size_and_image_size():
    """Printed in a notebook, a dataset was `<...DigitsDataset object at 0x...>`."""
    from vitprobe.data import resolve_dataset

    assert repr(resolve_dataset("digits", 32)) == "DigitsDataset('digits': 1797 images at 32 px)"
    assert repr(resolve_dataset("synthetic:64", 48, split="val")) == "SyntheticDataset('synthetic:64', split val: 64 images at 48 px)"
