"""``load_model`` and ``inspect_checkpoint``: detect the format, infer the architecture, load strictly."""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from vitprobe.errors import (CheckpointError, ConfigError, VitprobeError, abbreviate, brief_reason, is_whole,
                             plural, warn_user)
from vitprobe.models.architecture import ArchSpec, arch_from_timm, build_model
from vitprobe.models.formats import BUFFER_DROPS, CheckpointFormat, formats
from vitprobe.models.formats.base import PATCH_KEY, ArchHints, split_drops
from vitprobe.models.inference import CONV_STEM, GIVEN, GUESSED, has_conv_stem, infer_arch
from vitprobe.models.reading import RawCheckpoint, file_sha256, read_checkpoint
from vitprobe.plugins import OWN_MODULE_HINT

# The entry in which `vitprobe export` carries the training record (objective, config, epoch,
# collapse warnings) into an official layout, whose own loaders pass over it.
EXPORTED_TRAINING = "vitprobe_training"
_FIX = "pass --format, --key or --num-heads to describe the weights (Python: format=, key=, num_heads= or arch=)"
# Where the file stores its architecture (vitprobe's own header), --num-heads may not replace it.
_STORED_FIX = ("its stored architecture does not fit its weights, so its header is damaged: read the weights alone "
               "with --format timm and --num-heads N (Python: arch=)")


def _fix(it: Interpreted) -> str:
    """How to describe the weights otherwise: _STORED_FIX where the file stores its architecture."""
    return _STORED_FIX if it.report.get("num_heads_from") == "stored in the checkpoint" else _FIX


@dataclass
class Interpreted:
    """A checkpoint understood: its format, timm-named weights, architecture and load report."""

    format: str
    state_dict: dict[str, torch.Tensor]
    spec: ArchSpec
    report: dict[str, Any]


def _pick_format(raw: RawCheckpoint, name: str | None) -> CheckpointFormat:
    """The format ``name``, else the first that detects ``raw``. A format given by name that
    does not detect the file while another does is refused: it could read the weights (an MAE
    encoder release has no keys SimMIM's layout would strip) and record the wrong origin."""
    registry = formats()
    detected = next((fmt for fmt in registry.values() if _detects(fmt, raw)), None)
    if name is not None:
        if name not in registry:
            raise CheckpointError(f"unknown checkpoint format {name!r} for {raw.path}; "
                                  f"--format choices: {', '.join(registry)} ({OWN_MODULE_HINT})")
        chosen = registry[name]
        if detected is not None and detected is not chosen and not _detects(chosen, raw):
            raise CheckpointError(f"checkpoint {raw.path} is in the {detected.name} layout, not {name} "
                                  f"({chosen.summary}); drop --format to read it as {detected.name}")
        return chosen
    if detected is not None:
        return detected
    if raw.path.name.endswith(".train_state.pt"):
        encoder = raw.path.with_name(raw.path.name.replace(".train_state.pt", ".safetensors"))
        raise CheckpointError(f"checkpoint {raw.path} is the training state of a vitprobe run (optimiser, "
                              f"heads, RNG), read by --resume; the encoder is {encoder}")
    if isinstance(raw.obj, Mapping) and set(raw.obj) == {"state", "param_groups"}:
        raise CheckpointError(f"checkpoint {raw.path} is an optimiser state (state, param_groups), not "
                              "model weights; pass the file that holds the model")
    # the file itself and its dict entries, each with where it is
    nested = ([("", raw.obj)] + [(f"[{k!r}]", v) for k, v in raw.obj.items() if isinstance(v, Mapping)]
              if isinstance(raw.obj, Mapping) else [])
    if any(has_conv_stem(m) for _, m in nested):
        raise CheckpointError(f"checkpoint {raw.path}: {CONV_STEM}")
    if not isinstance(raw.obj, Mapping):
        raise CheckpointError(f"checkpoint {raw.path} holds a {type(raw.obj).__name__}, not a dict of weights, so no "
                              f"format reads it; save the model's state_dict() (formats: {', '.join(registry)})")
    held = "top-level keys " + abbreviate(sorted(str(k) for k in raw.obj)) if raw.obj else "an empty dict"
    found = _patch_embedding_under_a_prefix(nested)
    fix = (f"its ViT patch embedding is at {found[0]}, under the prefix {found[1]!r}, which no format strips: "
           f"save that dict again with {found[1]!r} removed from its keys" if found else
           "pass --format to choose (Python: load_model(path, format=...))")
    raise CheckpointError(f"checkpoint {raw.path}: unknown layout (it holds {held}); expected one of "
                          f"{', '.join(registry)} (see `vitprobe models`); {fix}")


def _patch_embedding_under_a_prefix(nested: list[tuple[str, Mapping[Any, Any]]]) -> tuple[str, str] | None:
    """Where a ViT patch embedding is in one of the ``(path, dict)`` pairs ``nested`` under a key
    prefix (``encoder.patch_embed.proj.weight``): ``(its path, the prefix)``, or None."""
    for path, inner in nested:
        for key in inner:
            if isinstance(key, str) and key.endswith(f".{PATCH_KEY}"):
                return f"{path}[{key!r}]", key[: -len(PATCH_KEY)]
    return None


def _format_failed(fmt: CheckpointFormat, raw: RawCheckpoint, step: str, err: Exception) -> str:
    return (f"checkpoint format {fmt.name!r} ({type(fmt).__module__}) raised {type(err).__name__} in {step}() "
            f"on {raw.path}: {brief_reason(err)}")


def _detects(fmt: CheckpointFormat, raw: RawCheckpoint) -> bool:
    """Whether ``fmt`` detects ``raw``; a format whose ``detect`` fails (one of one's own, in
    the making) is warned of by name and passed over, so that other files still load."""
    try:
        return bool(fmt.detect(raw))
    except Exception as err:
        warn_user(f"{_format_failed(fmt, raw, 'detect', err)}; it is passed over: fix its detect()")
        return False


def _extract(fmt: CheckpointFormat, raw: RawCheckpoint, key: str | None) -> Any:
    """``fmt.extract(raw, key)``; an error its code did not mean (not a CheckpointError) is
    one naming the format."""
    try:
        return fmt.extract(raw, key)
    except VitprobeError:
        raise
    except Exception as err:
        raise CheckpointError(f"{_format_failed(fmt, raw, 'extract', err)}; fix its extract(), or pass "
                              "--format to read the file as another layout") from err


def _as_spec(arch: ArchSpec | Mapping[str, Any] | str, sd: Mapping[str, torch.Tensor],
             path: Path) -> tuple[ArchSpec, str]:
    """``arch`` as an ArchSpec, and where its head count comes from: an ArchSpec, a timm ViT
    name, or a dict of fields that replace those inferred from the weights alone (the file's
    metadata ignored), so ``{"depth": 2, "num_heads": 4}`` is enough."""
    if isinstance(arch, ArchSpec):
        return arch, "given (arch=)"
    if isinstance(arch, str):
        return arch_from_timm(arch), "given (arch=)"
    given = dict(arch)
    heads = given.get("num_heads")
    inferred, heads_from = infer_arch(sd, ArchHints(), path, heads if is_whole(heads) else None)
    try:
        return ArchSpec.from_dict({**inferred.to_dict(), **given}), ("given (arch=)" if "num_heads" in given
                                                                      else heads_from)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"architecture for {path} is invalid ({err}); give an ArchSpec, a dict of "
                          "its fields or a timm ViT name") from None


def interpret(raw: RawCheckpoint, format: str | None = None, key: str | None = None,
              num_heads: int | None = None,
              arch: ArchSpec | Mapping[str, Any] | str | None = None) -> Interpreted:
    """Apply a format (given or detected) to ``raw`` and infer (or take) its architecture."""
    fmt = _pick_format(raw, format)
    extracted = _extract(fmt, raw, key)
    if extracted.key is not None and not extracted.state_dict:
        others = [k for k in fmt.keys if k != extracted.key]
        raise CheckpointError(f"checkpoint {raw.path} holds no {extracted.key} weights (the {fmt.name} "
                              f"layout allows them, this file omits them); try --key {' or '.join(others)}")
    sd, buffers = split_drops(extracted.state_dict, BUFFER_DROPS)
    dropped = {**extracted.dropped, **buffers}
    if arch is None:
        spec, heads_from = infer_arch(sd, extracted.hints, raw.path, num_heads)
    else:
        spec, heads_from = _as_spec(arch, sd, raw.path)
        if num_heads is not None:
            spec, heads_from = spec.replace(num_heads=num_heads), GIVEN
    carried = raw.obj.get(EXPORTED_TRAINING) if isinstance(raw.obj, Mapping) else None
    report = {"key": extracted.key, "tensors": len(sd), "num_heads_from": heads_from,
              "dropped": dropped, "ignored_entries": [e for e in extracted.ignored_entries if e != EXPORTED_TRAINING],
              **({"training": carried} if isinstance(carried, Mapping) else {}), **extracted.hints.info}
    return Interpreted(fmt.name, sd, spec, report)


def _build(spec: ArchSpec, path: Path, device: str | None = None, fix: str = _FIX) -> nn.Module:
    """The model ``spec`` describes; its random initialisation, which the checkpoint then
    overwrites, leaves torch's global generator as it was."""
    sizes = {name: getattr(spec, name) for name in ("patch_size", "embed_dim", "depth", "num_heads", "img_size")}
    bad = [f"{name} {value!r}" for name, value in sizes.items() if not (is_whole(value) and value >= 1)]
    if bad:  # timm divides by some (num_heads 0) and builds others unusable (num_heads -2)
        raise CheckpointError(f"checkpoint {path}: cannot build {spec.describe()} ({', '.join(bad)}: each must be "
                              f"a whole number >= 1); {fix}")
    try:
        with torch.device(device or "cpu"), torch.random.fork_rng(devices=[]):
            return build_model(spec)
    except (ValueError, TypeError, AssertionError, RuntimeError) as err:
        raise CheckpointError(f"checkpoint {path}: cannot build {spec.describe()} ({err}); "
                              f"{fix}") from None


def _fit_problems(sd: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]) -> list[str]:
    """Missing keys, unexpected keys and shape mismatches, each as one phrase."""
    missing = sorted(set(expected) - set(sd))
    unexpected = sorted(set(sd) - set(expected))
    shapes = [f"{k} {list(sd[k].shape)} vs model {list(expected[k].shape)}"
              for k in sorted(set(sd) & set(expected)) if sd[k].shape != expected[k].shape]
    problems = []
    if missing:
        problems.append(f"missing {plural(len(missing), 'key')} ({abbreviate(missing)})")
    if unexpected:
        problems.append(f"unexpected {plural(len(unexpected), 'key')} ({abbreviate(unexpected)})")
    if shapes:
        problems.append(f"{len(shapes)} shape {'mismatch' if len(shapes) == 1 else 'mismatches'} "
                        f"({abbreviate(shapes, 4)})")
    return problems


def check_finite(where: str, tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
    """Raise one CheckpointError, ``<where>: <name> holds N non-finite values``, for the first
    named tensor that holds a NaN or an inf: such weights make every feature after them
    non-finite, and every number read from them."""
    for name, tensor in tensors:
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise CheckpointError(f"{where}: {name} holds {plural(bad, 'non-finite value')} (NaN or inf) of "
                                  f"{tensor.numel()}; the weights are damaged (a training run that diverged?), "
                                  "so the analyses would read NaN; use weights saved before that")


def _check_real(where: str, sd: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]) -> None:
    """Raise one CheckpointError where a weight the model holds in floating point is stored as
    integers, booleans or complex numbers: loading would cast it (an imaginary part dropped) and
    analyse weights that were never trained."""
    odd = [k for k in sorted(sd) if expected[k].is_floating_point() and not sd[k].is_floating_point()]
    if odd:
        dtype = str(sd[odd[0]].dtype).removeprefix("torch.")
        raise CheckpointError(f"{where}: {plural(len(odd), 'weight')} stored as {dtype} (first {odd[0]}), where "
                              "the model holds floating point; weights as trained are real floating-point numbers, "
                              "so the file was converted or is damaged: save the weights in float32, float16 or "
                              "bfloat16")


def check_fit(path: Path, it: Interpreted, spec: ArchSpec, sd: Mapping[str, torch.Tensor]) -> None:
    """Raise one CheckpointError unless ``sd`` fills a ``spec`` model exactly (built on 'meta')
    with finite weights (``check_finite``)."""
    expected = _build(spec, path, "meta", _fix(it)).state_dict()
    problems = _fit_problems(sd, expected)
    if not problems:
        _check_real(f"checkpoint {path}", sd, expected)
        check_finite(f"checkpoint {path}", sd.items())
        return
    try:
        inferred = infer_arch(sd, ArchHints(), path)[0]
        if inferred.rel_pos_bias == "none" and inferred.embed_dim % spec.num_heads == 0:
            # the weights do not show heads (no relative-position table): keep the ones asked for
            inferred = inferred.replace(num_heads=spec.num_heads)
        differ = [f"{f.name}={getattr(inferred, f.name)!r}" for f in fields(ArchSpec)
                  if getattr(inferred, f.name) != getattr(spec, f.name)]
        if differ and not _fit_problems(sd, _build(inferred, path, "meta").state_dict()):
            fix = f"the weights fit {inferred.describe()} ({', '.join(differ)}); {_fix(it)}"
        else:
            fix = ("no other architecture explains these keys: the file comes from a modified model or is "
                   "damaged, or the encoder is elsewhere in it (pass --format or --key to pick it)")
    except CheckpointError:
        fix = f"the weights are not a ViT/BEiT encoder; {_FIX}"
    raise CheckpointError(f"checkpoint {path} ({it.format}) does not fit {spec.describe()}: "
                          f"{'; '.join(problems)}; {fix}")


def _resampled(sd: dict[str, torch.Tensor], spec: ArchSpec, report: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Position embedding and relative-position tables resampled to ``spec``'s patch grid."""
    from timm.layers import resample_abs_pos_embed, resize_rel_pos_bias_table

    grid = spec.grid
    out = dict(sd)
    changed = {}
    pos = sd.get("pos_embed")
    if pos is not None and pos.ndim == 3:
        old = math.isqrt(pos.shape[1] - spec.num_prefix_tokens)
        if (old, old) != grid:
            out["pos_embed"] = resample_abs_pos_embed(pos, list(grid), [old, old],
                                                      num_prefix_tokens=spec.num_prefix_tokens)
    for k, table in sd.items():
        if k.endswith("relative_position_bias_table") and table.ndim == 2:
            rows = (2 * grid[0] - 1) * (2 * grid[1] - 1) + 3
            if table.shape[0] != rows:
                with warnings.catch_warnings():  # timm's interpolation warns about its own indexing
                    warnings.simplefilter("ignore", UserWarning)
                    out[k] = resize_rel_pos_bias_table(table, grid, (rows, table.shape[1]))
    for k in out:
        if out[k] is not sd[k]:
            changed[k] = [list(sd[k].shape), list(out[k].shape)]
    if changed:
        report["resampled"] = changed
    return out


def load_model(path: str | os.PathLike[str], arch: ArchSpec | Mapping[str, Any] | str | None = None,
               format: str | None = None, key: str | None = None, num_heads: int | None = None,
               img_size: int | None = None) -> nn.Module:
    """Load a checkpoint of any supported format into a timm ViT/Beit in eval mode, strictly
    (every missing or unexpected key, every shape mismatch is a CheckpointError); nothing in
    the file is executed.

    ``format`` names the layout (``vitprobe models`` lists them; detected when None); ``key``
    picks the encoder inside a file holding several (DINO's ``teacher`` or ``student``);
    ``arch`` (an ArchSpec or a timm ViT name) replaces the architecture inferred from the
    weights, a dict only the fields it names (the rest inferred from the weights alone, the
    file's metadata ignored); ``num_heads`` replaces the head count where the file does not
    record it. With ``img_size`` the model is built for that image size and the absolute
    position embedding (and any relative-position tables) are resampled from the
    checkpoint's grid. The model carries ``vitprobe_info`` = {format, arch, report, sha256, path}.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise ConfigError(f"load_model takes a checkpoint path, got {type(path).__name__}")
    if img_size is not None and not is_whole(img_size):  # (one that no patch grid fits is said below)
        raise ConfigError(f"img_size must be a whole number, got {img_size!r}")
    if num_heads is not None and not (is_whole(num_heads) and num_heads >= 1):
        raise ConfigError(f"num_heads must be a whole number >= 1, got {num_heads!r}")
    path = Path(path)
    it = interpret(read_checkpoint(path), format, key, num_heads, arch)
    spec = it.spec
    sd = it.state_dict
    if img_size is not None and img_size != spec.img_size:
        if img_size <= 0 or img_size % spec.patch_size:
            raise ConfigError(f"image size {img_size} for {path} is not a positive multiple of "
                              f"the patch size {spec.patch_size}; choose another --img-size")
        spec = spec.replace(img_size=img_size)
        sd = _resampled(sd, spec, it.report)
    check_fit(path, it, spec, sd)
    model = _build(spec, path)
    model.load_state_dict(sd, strict=True)
    model.eval()
    model.vitprobe_info = {"format": it.format, "arch": spec.to_dict(), "report": it.report,
                           "sha256": file_sha256(path), "path": str(path.resolve())}
    if str(it.report["num_heads_from"]).startswith(GUESSED):
        warn_user(f"{path}: the file does not give the head count, so it was {it.report['num_heads_from']}: "
                  f"{plural(spec.num_heads, 'head')}; per-head results assume it; pass --num-heads (reproduce: --num-heads "
                  "KEY=N; Python: load_model(num_heads=N), analyze(load_options={'num_heads': N})) if the model "
                  "was trained with another")
    said = training_warnings(it.report)
    if said:
        more = f" (and in {plural(len(said) - 1, 'later epoch')})" if len(said) > 1 else ""
        warn_user(f"{path}: its training warned of a collapse{more}: {said[0]}; its analyses may show "
                  "that collapse rather than what the method learns")
    return model


def training_warnings(report: Mapping[str, Any]) -> list[str]:
    """The collapse warnings vitprobe's training recorded in a checkpoint, from its load report
    (``model.vitprobe_info["report"]``), as "epoch N: text"; none for other checkpoints."""
    training = report.get("training")
    return [str(w) for w in training.get("warnings") or []] if isinstance(training, Mapping) else []


# The training config entries that a checkpoint's summary names (with its objective and epochs).
_SHOWN_CONFIG = ("preset", "data", "epochs", "batch_size", "lr", "seed", "lam")


def _encoder_init(hparams: Any) -> str | None:
    """How the encoder was set up (its ``encoder_init`` in force; a hybrid's, per branch where
    they differ), or None where the run recorded none."""
    if not isinstance(hparams, Mapping):
        return None
    if hparams.get("encoder_init") is not None:
        return str(hparams["encoder_init"])
    branches = {hparams.get(part): hparams.get(f"{part}_hparams") for part in ("mim", "cl")}
    inits = {str(name): h["encoder_init"] for name, h in branches.items()
             if isinstance(h, Mapping) and h.get("encoder_init") is not None}
    if len(set(inits.values())) == 1:
        return str(next(iter(inits.values())))
    return ", ".join(f"{name} {init}" for name, init in inits.items()) or None


def training_summary(training: Any) -> str:
    """``objective (revision R), epoch E of N, data ..., batch_size ..., lr ..., set key=value ...,
    encoder_init ...`` of a checkpoint vitprobe trained (its load report's ``training``); the
    batch is per process (x the process count, where torchrun ran several), the learning rate
    the peak one in force (batch-scaled where no --lr was given), ``set`` the hyper-parameters
    given (``--set``; the rest are the objective's defaults), the encoder set-up the one in force."""
    if not isinstance(training, Mapping):
        return json.dumps(training)
    config = training.get("config") if isinstance(training.get("config"), Mapping) else {}
    in_force = training.get("in_force") if isinstance(training.get("in_force"), Mapping) else {}
    config = {**config, **({"lr": in_force["lr"]} if in_force.get("lr") is not None else {})}
    parts = [str(training.get("objective", "?"))]
    if training.get("objective_revision") is not None:
        parts[0] += f" (revision {training['objective_revision']})"
    if "epochs" in config:
        parts.append(f"epoch {training.get('epoch', '?')} of {config['epochs']}")
    world = training.get("world_size")
    per = f" per process x {world} processes" if isinstance(world, int) and world > 1 else ""
    parts += [f"{k} {json.dumps(config[k])}{per if k == 'batch_size' else ''}" for k in _SHOWN_CONFIG
              if k in config and k != "epochs" and config[k] is not None]
    given = config.get("hparams")
    if isinstance(given, Mapping) and given:
        parts.append("set " + " ".join(f"{k}={json.dumps(v, separators=(',', ':'))}" for k, v in given.items()))
    init = _encoder_init(in_force.get("hparams"))
    return ", ".join(parts + ([f"encoder_init {init}"] if init else []))


def inspect_checkpoint(path: str | os.PathLike[str], format: str | None = None,
                       key: str | None = None, num_heads: int | None = None,
                       arch: ArchSpec | Mapping[str, Any] | str | None = None) -> dict[str, Any]:
    """Detected format, inferred architecture and load report of ``path``, without a real model.

    ``report["fits"]`` is whether a strict load would succeed, and ``report["fit_error"]`` the
    error it would give (None when it fits).
    """
    path = Path(path)
    it = interpret(read_checkpoint(path), format, key, num_heads, arch)
    try:
        check_fit(path, it, it.spec, it.state_dict)
        it.report["fits"], it.report["fit_error"] = True, None
    except CheckpointError as err:
        it.report["fits"], it.report["fit_error"] = False, str(err)
    return {"path": str(path.resolve()), "sha256": file_sha256(path), "format": it.format,
            "arch": it.spec.to_dict(), "num_prefix_tokens": it.spec.num_prefix_tokens,
            "summary": it.spec.describe(), "report": it.report}
