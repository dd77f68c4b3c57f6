"""Recipes: YAML files that name the models, data, analyses and claims of one study.

A recipe is read and fully validated before anything is trained or analysed, so that a typo
costs one line of error, not an hour of training.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vitprobe.errors import ConfigError

RECIPE_DIR = Path(__file__).resolve().parent.parent / "analyses"
RECIPES = ("cl_vs_mim", "hybrid_sweep", "dino_attention", "sit_gmml")
_TOP_KEYS = {"name", "title", "paper", "data", "batch_size", "models", "sweep", "analyses",
             "figures", "claims", "quick"}
_MODEL_KEYS = {"label", "role", "train", "checkpoint", "random_like", "num_heads"}
_CHECK_KEYS = {"metric", "label", "layers", "frequency", "greater", "than", "peak_inside"}
EXTRA_FIGURES = ("reconstructions",)


@dataclass
class ModelEntry:
    """One model of a recipe: trained by vitprobe, loaded from a file, or random like another."""

    key: str
    label: str
    role: str = ""
    train: dict[str, Any] | None = None
    checkpoint: Path | None = None
    random_like: str | None = None
    num_heads: int | None = None


@dataclass
class Claim:
    """A sentence of a paper and the check on the result tables that tests it."""

    figure: str
    text: str
    check: dict[str, Any]


@dataclass
class Recipe:
    """A validated recipe."""

    name: str
    title: str
    paper: str
    data: str
    batch_size: int
    models: list[ModelEntry]
    analyses: list[str]
    figures: list[str] = field(default_factory=list)
    claims: list[Claim] = field(default_factory=list)
    sweep: dict[str, Any] | None = None
    path: Path | None = None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such recipe file; built-in recipes: {', '.join(RECIPES)}")
    except yaml.YAMLError as err:
        line = getattr(getattr(err, "problem_mark", None), "line", None)
        where = f" (line {line + 1})" if line is not None else ""
        raise ConfigError(f"{path}{where}: not valid YAML; fix the syntax")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a recipe is a YAML mapping of name, data, models, analyses")
    return data


def recipe_path(name_or_path: str | Path) -> Path:
    """A built-in recipe name (``cl_vs_mim``) or a path to a YAML file."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or candidate.exists():
        return candidate
    if str(name_or_path) in RECIPES:
        return RECIPE_DIR / f"{name_or_path}.yaml"
    raise ConfigError(
        f"unknown recipe {name_or_path!r}; use one of {', '.join(RECIPES)} or a path to a .yaml file")


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_recipe(name_or_path: str | Path, quick: bool = False, data: str | None = None,
                checkpoints: dict[str, str] | None = None,
                train_overrides: dict[str, Any] | None = None) -> Recipe:
    """Read, override and validate a recipe; every error is raised here, before any work.

    ``quick`` applies the recipe's ``quick:`` block (its ``train:`` mapping goes into every
    training config); ``data`` replaces the analysis data;
    ``checkpoints`` maps model keys to checkpoint files that replace their training;
    ``train_overrides`` is merged into every training config (tests use it to shrink runs).
    """
    path = recipe_path(name_or_path)
    raw = _read_yaml(path)
    where = str(path)
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown recipe keys {sorted(unknown)}; allowed: {sorted(_TOP_KEYS)}")
    if quick and raw.get("quick"):
        quick_block = dict(raw["quick"])
        train_overrides = _merge(quick_block.pop("train", {}), train_overrides or {})
        raw = _merge(raw, quick_block)
    if data:
        raw["data"] = data
    for key in ("name", "data", "analyses"):
        if key not in raw:
            raise ConfigError(f"{where}: missing required key {key!r}")
    if ("models" in raw) == ("sweep" in raw):
        raise ConfigError(f"{where}: give either `models` or `sweep`, exactly one")
    models = (_sweep_models(raw["sweep"], path, where) if "sweep" in raw
              else [_model_entry(k, v, path, where) for k, v in raw["models"].items()])
    keys = {m.key for m in models}
    for key, ckpt in (checkpoints or {}).items():
        entry = next((m for m in models if m.key == key), None)
        if entry is None:
            raise ConfigError(f"{where}: --model {key}=...: no model {key!r}; models: {sorted(keys)}")
        entry.train, entry.checkpoint = None, _existing(Path(ckpt), f"--model {key}")
    for entry in models:
        if entry.random_like and entry.random_like not in keys:
            raise ConfigError(f"{where}: model {entry.key!r}: random_like names unknown model {entry.random_like!r}")
        if entry.train is not None and train_overrides:
            entry.train = _merge(entry.train, train_overrides)
        if entry.train is not None:
            _validate_train(entry.train, f"{where}: model {entry.key!r}")
    analyses = _analyses(raw["analyses"], where)
    figures = list(raw.get("figures", []))
    for fig in figures:
        if fig not in EXTRA_FIGURES:
            raise ConfigError(f"{where}: unknown figure {fig!r}; recipe figures: {list(EXTRA_FIGURES)}")
    claims = [_claim(c, keys, where) for c in raw.get("claims", [])]
    from vitprobe.analysis import check_data_feeds

    check_data_feeds(str(raw["data"]), analyses)
    return Recipe(name=str(raw["name"]), title=str(raw.get("title", raw["name"])),
                  paper=str(raw.get("paper", "")), data=str(raw["data"]),
                  batch_size=int(raw.get("batch_size", 32)), models=models, analyses=analyses,
                  figures=figures, claims=claims, sweep=raw.get("sweep"), path=path)


def _existing(path: Path, what: str) -> Path:
    if not path.is_file():
        raise ConfigError(f"{what}: checkpoint {path} does not exist; give the path of the file")
    return path


def _train_spec(spec: Any, recipe: Path, where: str) -> dict[str, Any]:
    if isinstance(spec, str):
        file = (recipe.parent / spec) if not Path(spec).is_absolute() else Path(spec)
        if not file.is_file():
            raise ConfigError(f"{where}: training config {file} does not exist")
        return _read_yaml(file)
    if isinstance(spec, dict):
        return dict(spec)
    raise ConfigError(f"{where}: `train` is a path to a training YAML or a mapping")


def _model_entry(key: str, spec: Any, recipe: Path, where: str) -> ModelEntry:
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: model {key!r} must be a mapping with train, checkpoint or random_like")
    unknown = set(spec) - _MODEL_KEYS
    if unknown:
        raise ConfigError(f"{where}: model {key!r}: unknown keys {sorted(unknown)}; allowed: {sorted(_MODEL_KEYS)}")
    sources = [s for s in ("train", "checkpoint", "random_like") if s in spec]
    if len(sources) != 1:
        raise ConfigError(f"{where}: model {key!r} needs exactly one of train, checkpoint, random_like")
    entry = ModelEntry(key=key, label=str(spec.get("label", key)), role=str(spec.get("role", "")),
                       random_like=spec.get("random_like"), num_heads=spec.get("num_heads"))
    if "train" in spec:
        entry.train = _train_spec(spec["train"], recipe, f"{where}: model {key!r}")
    if "checkpoint" in spec:
        ckpt = Path(spec["checkpoint"])
        entry.checkpoint = _existing(ckpt if ckpt.is_absolute() else recipe.parent / ckpt,
                                     f"{where}: model {key!r}")
    return entry


def _sweep_models(sweep: Any, recipe: Path, where: str) -> list[ModelEntry]:
    if not isinstance(sweep, dict) or set(sweep) != {"parameter", "values", "train"}:
        raise ConfigError(f"{where}: `sweep` needs exactly parameter, values and train")
    if sweep["parameter"] != "lam":
        raise ConfigError(f"{where}: only the hybrid weight `lam` can be swept")
    base = _train_spec(sweep["train"], recipe, where)
    entries = []
    for value in sweep["values"]:
        if not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
            raise ConfigError(f"{where}: sweep value {value!r} is not a lambda in [0, 1]")
        entries.append(ModelEntry(key=f"lam_{float(value):g}", label=f"lambda = {float(value):g}",
                                  role="hybrid", train={**base, "lam": float(value)}))
    return entries


def _validate_train(spec: dict[str, Any], where: str) -> None:
    from vitprobe.train import TrainConfig

    try:
        TrainConfig.from_overrides(spec)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None


def _analyses(names: Any, where: str) -> list[str]:
    from vitprobe.analyzers import list_analyzers

    known = list_analyzers()
    names = [names] if isinstance(names, str) else list(names)
    for name in names:
        if name not in known:
            raise ConfigError(f"{where}: unknown analysis {name!r}; known: {', '.join(known)}")
    return names


def _claim(raw: Any, keys: set[str], where: str) -> Claim:
    if not isinstance(raw, dict) or not {"figure", "text", "check"} <= set(raw):
        raise ConfigError(f"{where}: each claim needs figure, text and check")
    check = dict(raw["check"])
    unknown = set(check) - _CHECK_KEYS
    if unknown:
        raise ConfigError(f"{where}: claim check has unknown keys {sorted(unknown)}; allowed: {sorted(_CHECK_KEYS)}")
    for side in ("greater", "than"):
        if side in check and check[side] not in keys:
            raise ConfigError(f"{where}: claim check names unknown model {check[side]!r}; models: {sorted(keys)}")
    if "metric" not in check:
        raise ConfigError(f"{where}: claim check needs a metric")
    label = check.get("label", "")
    if not (isinstance(label, str) or (isinstance(label, list) and label
                                       and all(isinstance(x, str) for x in label))):
        raise ConfigError(f"{where}: claim check label must be a label name or a list of them "
                          f"(the first one the data has is used), got {label!r}")
    return Claim(figure=str(raw["figure"]), text=str(raw["text"]), check=check)
