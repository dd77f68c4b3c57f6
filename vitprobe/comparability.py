"""Whether results drawn or tabled side by side were measured alike, and a warning where not."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from vitprobe.errors import warn_user
from vitprobe.json_safe import jsonable

# Protocol entries that say how a run was executed, not what was measured (the dataset is
# checked on its own).
EXECUTION_KEYS = ("checkpoint", "dataset", "batch_size", "device", "world_size")
# Settings that follow from the model's depth, prefix tokens and patch grid: they differ between
# models of different architectures without anyone having set them.
ARCHITECTURE_KEYS = ("layers", "layer", "num_prefix_tokens_dropped", "even_attention_px")
# What the model's layer 0 holds (a BEiT layout without position embeddings) and a head count
# that loading guessed: properties of the model, named in captions, never settings that differ.
MODEL_KEYS = ("layer_0", "heads_guessed")


def _text(value: Any) -> str:
    return json.dumps(jsonable(value), sort_keys=True)


_READ_FROM_A_FOLDER = ("folder", "voc")  # kinds whose spec holds a path, which may be written several ways


def _as_data(dataset: Any) -> Any:
    """A dataset description as far as it tells the images apart: without the absolute folder
    it was read from (the same data mounted elsewhere, or a run saved before ``root`` was
    recorded, is the same data), without the spec of data read from a folder (``folder:imgs``
    and ``folder:/home/me/imgs/`` name one folder), and without the image size (a setting of the
    run, compared as such: two models of different input sizes see the same images)."""
    if not isinstance(dataset, Mapping):
        return dataset
    drop = {"root", "image_size"} | ({"spec"} if dataset.get("kind") in _READ_FROM_A_FOLDER else set())
    return {k: v for k, v in dataset.items() if k not in drop}


# What tells two draws of the synthetic set apart without changing what they are drawn from.
_DRAW_KEYS = {"spec", "size", "class_counts"}


def draws_of_one_generator(datasets: Sequence[Any]) -> bool:
    """Whether ``datasets`` are all draws of vitprobe's synthetic set (other sizes or seeds, one
    normalisation and image size): samples of one distribution, comparable up to sampling error."""
    drawn = [{k: v for k, v in _as_data(d).items() if k not in _DRAW_KEYS} for d in datasets
             if isinstance(d, Mapping) and d.get("kind") == "synthetic"]
    return len(drawn) == len(datasets) and len({_text(d) for d in drawn}) == 1


def _spec(dataset: Any) -> str:
    return str(dataset.get("spec", dataset)) if isinstance(dataset, Mapping) else str(dataset)


def data_difference(protocols: Sequence[Mapping[str, Any]], labels: Sequence[str] | None = None) -> str | None:
    """The datasets' specs, ``a; b``, when the protocols name different data (see
    :func:`_as_data`), or ``spec, with different key, key`` when one spec read different data;
    else None. With ``labels`` (one per protocol) each spec names its runs, ``a (moco) | b
    (mae)``, and the second form ends with the runs of each dataset, ``(moco | mae, random)``."""
    datasets = [p.get("dataset") for p in protocols]
    seen = [_text(_as_data(d)) for d in datasets]
    if len(set(seen)) < 2:
        return None
    named = sorted({_spec(d) for d in datasets})
    if len(named) > 1:
        if labels is None:
            return "; ".join(named)
        order = sorted(range(len(datasets)), key=lambda i: _spec(datasets[i]))
        return join_by_run([_spec(datasets[i]) for i in order], [labels[i] for i in order])
    described = [_as_data(d) for d in datasets if isinstance(d, Mapping)]
    keys = sorted({k for d in described for k in d if len({_text(e.get(k)) for e in described}) > 1})
    text = f"{named[0]}, with different {', '.join(keys) or 'contents'}"
    if labels is None:
        return text
    return f"{text} ({' | '.join(', '.join(runs) for runs in _runs_of(seen, labels).values())})"


def _architecture(protocol: Mapping[str, Any]) -> Any:
    """The checkpoint's depth, register tokens, patch size and image size (its arch is a class
    name for a Module given as such)."""
    arch = (protocol.get("checkpoint") or {}).get("arch")
    return [arch.get(k) for k in ("depth", "reg_tokens", "patch_size", "img_size")] if isinstance(arch, Mapping) else arch


def _runs_of(values: Sequence[str], labels: Sequence[str]) -> dict[str, list[str]]:
    """Each distinct value (in order) -> the labels of the runs that have it, each once."""
    runs: dict[str, list[str]] = {}
    for value, label in zip(values, labels):
        named = runs.setdefault(value, [])
        if label not in named:
            named.append(label)
    return runs


def join_by_run(values: Sequence[str], labels: Sequence[str] | None = None) -> str:
    """The distinct ``values`` (one per run) joined by `` | ``; where they differ and the runs
    have ``labels``, each value names its runs once: ``20 (moco) | 5 (mae, random)``."""
    if labels is None:
        return " | ".join(dict.fromkeys(values))
    runs = _runs_of(values, labels)
    if len(runs) < 2:
        return " | ".join(runs)
    return " | ".join(f"{value} ({', '.join(named)})" for value, named in runs.items())


def setting_differences(protocols: Sequence[Mapping[str, Any]], labels: Sequence[str] | None = None,
                        analysis: str | None = None) -> list[str]:
    """``key a | b`` (with ``labels``, ``key a (run) | b (run)``) for each measurement setting
    that differs between the protocols of one analysis: not what the run found (the
    ``outcome_keys`` of ``analysis``, or of the analysis the protocols name), not what a model's
    layer 0 holds (``MODEL_KEYS``) and, between models of different depth, register tokens or
    patch grid, not the layers or even-attention distance that those decide."""
    shapes = {_text(_architecture(p)) for p in protocols}
    from vitprobe.analyzers import outcome_keys  # what each analysis declares it found, not set

    found = {k for name in {analysis, *(p.get("analysis") for p in protocols)} for k in outcome_keys(name)}
    skip = set(EXECUTION_KEYS) | set(MODEL_KEYS) | found | (set(ARCHITECTURE_KEYS) if len(shapes) > 1 else set())
    keys = sorted({k for p in protocols for k in p} - skip)
    return [f"{k} " + join_by_run([json.dumps(jsonable(p.get(k))) for p in protocols], labels) for k in keys
            if len({_text(p.get(k)) for p in protocols}) > 1]


def warn_if_incomparable(protocols: Mapping[str, Sequence[tuple[str, Mapping[str, Any]]]]) -> None:
    """Warn once when results set side by side (``protocols``: analysis name -> each run's
    ``(label, protocol)``) saw different data, and once per analysis run with different
    settings, naming the runs of each value."""
    pairs = [pair for group in protocols.values() for pair in group]
    data = data_difference([p for _, p in pairs], [label for label, _ in pairs])
    if data is not None and draws_of_one_generator([p.get("dataset") for _, p in pairs]):
        warn_user(f"the runs were analysed on different draws of the synthetic set ({data}); their numbers "
                  "differ by sampling error as well as by model")
    elif data is not None:
        warn_user(f"the runs were analysed on different data ({data}); their numbers are not "
                  "comparable, only their shapes")
    for name, group in protocols.items():
        differ = setting_differences([p for _, p in group], [label for label, _ in group], name)
        if differ:
            warn_user(f"{name} was run with different settings ({'; '.join(differ)}); each run's "
                      f"protocol is its Result.protocol (and {name}.json of a comparison)")
