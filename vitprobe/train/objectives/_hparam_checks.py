"""Type and range checks of objective hyper-parameters given by a user (``--set key=value``).

A value must have its default's type (bool, int, float, str, a tuple of the same length; a
default of None takes a number or None; ``clip_grad`` and ``lr_drop`` may always be None) and lie in the
range its meaning allows, so that a typo fails in one line before any work instead of deep
inside torch, or worse, silently (a negative ``clip_grad`` scales every gradient by a
negative factor: training ascends).
"""

from __future__ import annotations

import json
import math
from typing import Any

from vitprobe.errors import ConfigError, is_real, is_whole

# key -> (low, high, low inclusive, high inclusive); tuples are checked element by element.
_RANGES: dict[str, tuple[float, float, bool, bool]] = {key: bounds for keys, bounds in (
    (("base_lr", "temperature", "student_temp", "teacher_temp", "warmup_teacher_temp"),
     (0.0, math.inf, False, True)),
    (("out_dim", "decoder_dim", "decoder_depth", "decoder_heads", "head_hidden_dim",
      "head_bottleneck_dim", "proj_hidden_dim", "pred_hidden_dim", "mask_patch_size",
      "decoder_hidden_dim", "local_size"), (1, math.inf, True, True)),
    (("min_lr", "warmup_lr", "weight_decay", "weight_decay_end", "warmup_epochs", "warmup_teacher_temp_epochs",
      "freeze_last_layer", "alpha", "clip_grad", "n_local", "decoder_hidden_layers"),
     (0.0, math.inf, True, True)),
    (("momentum", "center_momentum", "lam", "replace_prob"), (0.0, 1.0, True, True)),
    (("betas", "drop_path"), (0.0, 1.0, True, False)),
    (("mask_ratio", "replace_ratio"), (0.0, 1.0, False, False)),  # no patch masked: no MIM loss
    (("max_block", "crop_scale", "global_scale", "local_scale", "lr_drop"), (0.0, 1.0, False, True)),
) for key in keys}
_ORDERED_PAIRS = ("crop_scale", "global_scale", "local_scale")  # (low, high) of a random range
_NULLABLE = ("clip_grad", "lr_drop")  # None (no clipping, a cosine decay) is valid whatever the default
_PAIRS = {"lr_drop": (0.875, 0.1)}  # a pair of numbers even where the default is None: (type, example)
_PART_EXAMPLES = {"mim_hparams": {"mask_ratio": 0.6}, "cl_hparams": {"momentum": 0.99}}  # the hybrid's parts


def _type_problem(value: Any, default: Any) -> str | None:
    """What is wrong with the type of ``value`` given the ``default``, or None."""
    if default is None:
        return None if value is None or (is_real(value) and math.isfinite(value)) else "a finite number or null"
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "true or false"
    if isinstance(default, int):
        return None if is_whole(value) else "an integer"
    if isinstance(default, float):
        return None if is_real(value) and math.isfinite(value) else "a finite number"
    if isinstance(default, str):
        return None if isinstance(value, str) else "a name"
    if isinstance(default, tuple):
        if (isinstance(value, (list, tuple)) and len(value) == len(default)
                and all(_type_problem(v, d) is None for v, d in zip(value, default))):
            return None
        return f"a list of {len(default)} like {list(default)}"
    if isinstance(default, dict):  # a hybrid's part hyper-parameters: their values are checked by that part
        return None if isinstance(value, dict) else "a mapping of that objective's hyper-parameters"
    return None


def _range_problem(key: str, value: Any) -> str | None:
    """What is wrong with the range of a well-typed ``value``, or None."""
    if key not in _RANGES or value is None:
        return None
    low, high, low_in, high_in = _RANGES[key]
    for v in value if isinstance(value, (list, tuple)) else (value,):
        if not ((v >= low if low_in else v > low) and (v <= high if high_in else v < high)):
            return (f"in {'[' if low_in else '('}{low:g}, {high:g}{']' if high_in else ')'}"
                    .replace("inf]", "inf)"))
    if key in _ORDERED_PAIRS and value[0] > value[1]:
        return "an ordered [low, high] pair"
    return None


def check_hparam(objective: str, key: str, value: Any, default: Any,
                 choices: tuple[str, ...] | None = None, via: str | None = None) -> None:
    """Raise a one-line ConfigError when ``value`` is the wrong type, out of range, or not
    one of ``choices`` for ``key``; ``via`` names the mapping that holds it (the hybrid's
    ``mim_hparams``), so that the example says where the value goes."""
    if value is None and key in _NULLABLE:
        return
    default = _PAIRS.get(key, default) if default is None else default
    problem = _type_problem(value, default) or _range_problem(key, value)
    if problem is None and choices is not None and value not in choices:
        problem = f"one of {', '.join(choices)}"
    if problem is not None:
        shown = list(default) if isinstance(default, tuple) else _PART_EXAMPLES.get(key, default)
        example, python = json.dumps(shown), repr(shown)
        if via is not None:
            example, python = json.dumps({key: shown}), repr({key: shown})
        option = via or key
        where = f" (in {via})" if via else ""
        raise ConfigError(f"objective {objective!r}{where}: {key} must be {problem}, got "
                          f"{json.dumps(value, default=repr)}; e.g. --set {option}={example.replace(' ', '')} "
                          f"(Python: hparams={{{option!r}: {python}}})")
