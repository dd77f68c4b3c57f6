"""Recipes: YAML files that name the models, data, analyses and claims of one study.

A recipe is read and fully validated before anything is trained or analysed, so that a typo
costs one line of error, not an hour of training.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vitprobe.data.spec import relative_path_note
from vitprobe.errors import ConfigError, VitprobeError, check_whole, is_real, is_whole, warn_user
from vitprobe.yaml_files import read_yaml_mapping

RECIPE_DIR = Path(__file__).resolve().parent.parent / "analyses"
# the papers' studies, which `reproduce --quick` runs when no recipe is named; every YAML file in
# RECIPE_DIR is a built-in recipe name (builtin_recipes)
RECIPES = ("cl_vs_mim", "hybrid_sweep", "dino_attention", "sit_gmml")
_TOP_KEYS = {"name", "title", "paper", "data", "batch_size", "models", "sweep", "analyses",
             "params", "figures", "claims", "quick"}
_MODEL_KEYS = {"label", "role", "train", "checkpoint", "random_like", "num_heads"}
_CHECK_KEYS = {"metric", "label", "layers", "frequency", "rank", "greater", "than", "peak_inside",
               "min_difference"}
_LAYER_WORDS = ("all", "last", "first_half", "last_half")
EXTRA_FIGURES = ("reconstructions",)
_FOLDER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,99}")  # recipe names and model keys name folders


@dataclass
class ModelEntry:
    """One model of a recipe: trained by vitprobe, loaded from a file, or random like another."""

    key: str
    label: str
    role: str = ""
    train: dict[str, Any] | None = None
    train_file: Path | None = None  # the training YAML that ``train`` was read from, if any
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
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    figures: list[str] = field(default_factory=list)
    extra_figures: list[str] = field(default_factory=list)  # file stems drawn beyond one per analysis
    claims: list[Claim] = field(default_factory=list)
    sweep: dict[str, Any] | None = None
    path: Path | None = None
    random_seed: int = 0  # seeds the random_like models' initialisation
    changes: list[str] = field(default_factory=list)  # what the caller changed, as reproduce's options
    skipped: dict[str, str] = field(default_factory=dict)  # analyses `all` named that the data cannot feed, and why


def _read_yaml(path: Path) -> dict[str, Any]:
    return read_yaml_mapping(path, "recipe", "a recipe is a YAML mapping of name, data, models, analyses",
                             f"; built-in recipes: {', '.join(builtin_recipes())}")


def builtin_recipes() -> list[str]:
    """Names of the recipes shipped in RECIPE_DIR: the papers' studies first, then the others."""
    shipped = sorted(p.stem for p in RECIPE_DIR.glob("*.yaml"))
    return [*(n for n in RECIPES if n in shipped), *(n for n in shipped if n not in RECIPES)]


def recipe_path(name_or_path: str | Path) -> Path:
    """A built-in recipe name (``cl_vs_mim``) or a path to a YAML file."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or candidate.exists():
        return candidate
    if str(name_or_path) in builtin_recipes():
        return RECIPE_DIR / f"{name_or_path}.yaml"
    raise ConfigError(f"unknown recipe {name_or_path!r}; use one of {', '.join(builtin_recipes())} "
                      "or a path to a .yaml file")


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _overridden(raw: dict[str, Any], quick: bool, data: str | None, train_overrides: dict[str, Any] | None,
                seed: int | None, where: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The recipe ``raw`` with ``--quick`` (its ``quick:`` block merged over it, the block's
    ``train:`` under ``train_overrides``) and ``--data`` applied, and the training overrides with
    ``--seed`` in them."""
    if seed is not None:
        train_overrides = _merge(train_overrides or {}, {"seed": seed})
    if quick and not raw.get("quick"):
        warn_user(f"{where}: --quick, but the recipe has no quick: block, so it runs at full size")
    if quick and raw.get("quick"):
        _check_spec(raw.get("data"), where)  # the full-size data, unread under --quick, checked for form
        quick_block = _mapping(raw["quick"], "quick", where)
        train_overrides = _merge(_mapping(quick_block.pop("train", {}), "quick.train", where),
                                 train_overrides or {})
        raw = _merge(raw, quick_block)
    if data:
        raw["data"] = data
    return raw, train_overrides


def _figures(value: Any, trains_gmml: bool, where: str) -> list[str]:
    """The recipe's ``figures:``, each one of EXTRA_FIGURES (reconstructions only beside a GMML model)."""
    figures = list(_listed(value, "figures", where))
    for fig in figures:
        if fig not in EXTRA_FIGURES:
            raise ConfigError(f"{where}: unknown figure {fig!r}; recipe figures: {list(EXTRA_FIGURES)}")
    if "reconstructions" in figures and not trains_gmml:
        raise ConfigError(f"{where}: figures: reconstructions draws what GMML's decoder rebuilds, and no "
                          "model trains with method gmml; drop it or add a gmml model")
    return figures


def load_recipe(name_or_path: str | Path, quick: bool = False, data: str | None = None,
                checkpoints: dict[str, str] | None = None,
                train_overrides: dict[str, Any] | None = None,
                params: dict[str, dict[str, Any]] | None = None, seed: int | None = None,
                checkpoints_may_miss: bool = False, num_heads: dict[str, int] | None = None) -> Recipe:
    """Read, override and validate a recipe; every error is raised here, before any work.

    ``quick`` applies the recipe's ``quick:`` block (its ``train:`` mapping goes into every
    training config); ``data`` replaces the analysis data;
    ``checkpoints`` maps model keys to checkpoint files that replace their training (with
    ``checkpoints_may_miss``, as for several recipes at once, a key the recipe lacks is passed over);
    ``num_heads`` maps model keys to head counts, for files that do not give theirs (as a model's
    ``num_heads:``; passed over for keys the recipe lacks as ``checkpoints`` are);
    ``train_overrides`` is merged into every training config (tests use it to shrink runs);
    ``params`` (analysis -> parameters) is merged over the recipe's ``params`` for the
    analyses the recipe runs; ``seed`` replaces the seed of every training config and of the
    random_like models' initialisation (0 when not given).
    Checked here: every key and type, each checkpoint (read, and fitted to its architecture),
    each training config (:func:`vitprobe.reproduce.reproduce` checks the training data of the
    models it will train), the analysis data, the analysis parameters, and each claim's
    figure, metric, labels and models.
    """
    path = recipe_path(name_or_path)
    raw = _read_yaml(path)
    where = str(path)
    given_train = dict(train_overrides or {})
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown recipe keys {sorted(unknown)}; allowed: {sorted(_TOP_KEYS)}")
    _check_quick(raw.get("quick", {}), where)
    if seed is not None:
        from vitprobe.seeding import check_seed

        seed = check_seed(seed)
    raw, train_overrides = _overridden(raw, quick, data, train_overrides, seed, where)
    for key in ("name", "data", "analyses"):
        if key not in raw:
            raise ConfigError(f"{where}: missing required key {key!r}")
    name = _folder_name(raw["name"], "name", where)
    _check_spec_type(raw["data"], where)
    batch_size = check_whole(raw.get("batch_size", 32), f"{where}: batch_size")
    if ("models" in raw) == ("sweep" in raw):
        raise ConfigError(f"{where}: give either `models` or `sweep`, exactly one")
    models = (_sweep_models(raw["sweep"], path, where) if "sweep" in raw
              else [_model_entry(k, v, path, where) for k, v in _mapping(raw["models"], "models", where).items()])
    if not models:
        raise ConfigError(f"{where}: no models; give at least one under `models`")
    _refuse_repeated_labels(models, where)
    keys = {m.key for m in models}
    trains_gmml = any(m.train is not None and m.train.get("method") == "gmml" for m in models)
    checkpoints = {k: v for k, v in (checkpoints or {}).items() if not checkpoints_may_miss or k in keys}
    num_heads = {k: v for k, v in (num_heads or {}).items() if not checkpoints_may_miss or k in keys}
    changes = _changes(quick and bool(raw.get("quick")), data, checkpoints, given_train, seed,  # --quick without a block changes nothing
                       num_heads)
    depths = _settle_models(models, checkpoints, num_heads, train_overrides,
                            "reconstructions" in raw.get("figures", []), where)
    from vitprobe.analysis import check_data_feeds

    names = _analyses(raw["analyses"], where)
    try:
        analyses, skipped, label_names = check_data_feeds(raw["data"], names)
    except VitprobeError as err:
        raise ConfigError(f"{where}: {err}{relative_path_note(raw['data'])}") from None
    for skipped_name, reason in skipped.items():
        warn_user(f"{where}: skipping {skipped_name}: it {reason}")
    own = {name: values for name, values in _mapping(raw.get("params", {}), "params", where).items()
           if name not in skipped}  # `all` on data that cannot feed an analysis: its params go with it
    given = {name: values for name, values in (params or {}).items() if name in analyses}
    _params(given, analyses, "--param", within="")  # a bad --param value is blamed on --param
    analysis_params = _params(_merge(own, given), analyses, where)
    if depths:
        _check_param_blocks(analysis_params, min(depths.values()), where)
    figures = _figures(raw.get("figures", []), trains_gmml, where)
    extra = _extra_figure_stems(models, figures, analyses, "sweep" in raw)
    deepest = max(depths.values()) if depths else None
    claims = [_claim(c, models, analyses, skipped, {*analyses, *extra}, label_names, deepest, f"{where}: claim {i}",
                     data_given=bool(data), params=analysis_params)
              for i, c in enumerate(_listed(raw.get("claims", []), "claims", where), start=1)]
    return Recipe(name=name, title=str(raw.get("title", name)),
                  paper=str(raw.get("paper", "")), data=raw["data"],
                  batch_size=batch_size, models=models, analyses=analyses, params=analysis_params,
                  figures=figures, extra_figures=extra, claims=claims, sweep=raw.get("sweep"), path=path,
                  random_seed=0 if seed is None else seed, skipped=dict(skipped),
                  changes=[*changes, *(f"--param {a}.{k}={v}" for a, values in given.items() for k, v in values.items())])


def _settle_models(models: list[ModelEntry], checkpoints: dict[str, str], num_heads: dict[str, int],
                   train_overrides: dict[str, Any] | None, draws_reconstructions: bool, where: str) -> dict[str, int]:
    """Replace the training of each model in ``checkpoints`` by its file, give the models in
    ``num_heads`` their head count, merge ``train_overrides`` into every training config, check
    ``random_like`` references, each training config and each checkpoint; the depth (blocks) of
    each model, for the layer numbers in params and claims."""
    by_key = {m.key: m for m in models}
    keys = sorted(by_key)

    def given(flag: str, key: str) -> ModelEntry:
        if key not in by_key:
            raise ConfigError(f"{where}: {flag} {key}=...: no model {key!r}; models: {keys}")
        return by_key[key]

    for key, heads in num_heads.items():
        given("--num-heads", key).num_heads = check_whole(heads, f"{where}: --num-heads {key}")
    for key, ckpt in checkpoints.items():
        entry = given("--model", key)
        if draws_reconstructions and (entry.train or {}).get("method") == "gmml":
            warn_user(f"{where}: --model {key}=...: its reconstructions figure is not drawn: it needs the "
                      "GMML decoder of a model the recipe trains, which a checkpoint file does not carry")
        entry.train, entry.checkpoint, entry.random_like = None, Path(ckpt), None  # the file, not a random copy
    depths: dict[str, int] = {}
    for entry in models:
        if entry.random_like is not None:
            like = next((m for m in models if m.key == entry.random_like), None)  # any YAML value, hashable or not
            if like is None or like.random_like is not None:
                raise ConfigError(f"{where}: model {entry.key!r}: random_like names {entry.random_like!r}, which is "
                                  f"not a trained or loaded model; models: {keys}")
        if entry.train is not None and train_overrides:
            entry.train = _merge(entry.train, train_overrides)
        if entry.train is not None:
            source = f" (training config {entry.train_file})" if entry.train_file else ""
            depths[entry.key] = _validate_train(entry.train, f"{where}: model {entry.key!r}{source}")
        if entry.checkpoint is not None:
            depths[entry.key] = _check_checkpoint(entry, f"{where}: model {entry.key!r}")
    return depths


def _changes(quick: bool, data: str | None, checkpoints: dict[str, str] | None,
             train_overrides: dict[str, Any] | None, seed: int | None,
             num_heads: dict[str, int] | None = None) -> list[str]:
    """The changes a caller made to a recipe, in the words of reproduce's options (``train
    KEY=VALUE`` for a training override, which only the Python API takes)."""
    return [*(["--quick"] if quick else []), *([f"--data {data}"] if data else []),
            *(f"--model {key}={path}" for key, path in (checkpoints or {}).items()),
            *(f"--num-heads {key}={heads}" for key, heads in (num_heads or {}).items()),
            *([f"--seed {seed}"] if seed is not None else []),
            *(f"train {key}={value}" for key, value in (train_overrides or {}).items())]


_QUICK_KEYS = {"data", "batch_size", "analyses", "params", "train"}


def _check_spec_type(spec: Any, where: str) -> None:
    """The recipe's ``data`` is text (a dataset spec)."""
    if not isinstance(spec, str):
        raise ConfigError(f"{where}: data must be a dataset spec such as synthetic:1024, got {spec!r}")


def _check_spec(spec: Any, where: str) -> None:
    """The form of the recipe's ``data`` (``synthetic:1024``, ``folder:PATH``), not whether its
    files exist; nothing where the recipe names none."""
    from vitprobe.data.spec import parse_spec

    if spec is None:
        return
    _check_spec_type(spec, where)
    try:
        parse_spec(spec)
    except VitprobeError as err:
        raise ConfigError(f"{where}: data: {err}") from None


def _check_quick(block: Any, where: str) -> None:
    """The ``quick:`` block's keys and the form of its ``train`` (whether or not --quick is given)."""
    unknown = set(_mapping(block, "quick", where)) - _QUICK_KEYS
    if unknown:
        raise ConfigError(f"{where}: quick: unknown keys {sorted(unknown)}; allowed: {sorted(_QUICK_KEYS)}")
    from vitprobe.train import TrainConfig

    try:
        train = _mapping(block.get("train", {}), "quick.train", where)
        TrainConfig.check_names(train)  # before a stand-in method, which its hints would name
        TrainConfig.from_overrides({"method": "mae", **train})
    except ConfigError as err:
        raise ConfigError(f"{where}: quick.train: {err}") from None


def _mapping(value: Any, what: str, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: `{what}` must be a mapping (key: value lines), got {type(value).__name__}")
    return value


def _listed(value: Any, what: str, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise ConfigError(f"{where}: `{what}` must be a list ([a, b] or '- ' lines), got {value!r}")
    return value


def _folder_name(value: Any, what: str, where: str) -> str:
    text = str(value)
    if not isinstance(value, (str, int)) or not _FOLDER_NAME.fullmatch(text):
        raise ConfigError(f"{where}: {what} {value!r} names an output folder; use up to 100 letters, "
                          "digits, '_', '.', '+' or '-', starting with a letter or digit")
    return text


def _refuse_repeated_labels(models: list["ModelEntry"], where: str) -> None:
    seen: dict[str, str] = {}
    for entry in models:
        if entry.label in seen:
            raise ConfigError(f"{where}: models {seen[entry.label]!r} and {entry.key!r} have the same label "
                              f"{entry.label!r}; figures and verdicts could not tell them apart")
        seen[entry.label] = entry.key


def _check_checkpoint(entry: "ModelEntry", where: str) -> int:
    """The checkpoint must exist, be readable and fit an architecture (no model is built);
    returns its depth."""
    from vitprobe.models import inspect_checkpoint

    path = entry.checkpoint
    assert path is not None
    if path.is_dir():
        raise ConfigError(f"{where}: checkpoint {path} is a folder; give the checkpoint file in it")
    if not path.is_file():
        raise ConfigError(f"{where}: checkpoint {path} does not exist; give the path of the file")
    try:
        info = inspect_checkpoint(path, num_heads=entry.num_heads)
    except VitprobeError as err:
        raise ConfigError(f"{where}: {err}") from None
    if not info["report"]["fits"]:
        raise ConfigError(f"{where}: {info['report']['fit_error']}")
    _warn_if_role_differs(entry, info, where)
    return int(info["arch"]["depth"])


# What a checkpoint's format, or the objective a vitprobe checkpoint was trained with, makes it.
_FAMILIES = {"dino": "cl", "mocov3": "cl", "mae": "mim", "simmim": "mim", "beit": "mim", "gmml": "mim",
             "random_init": "baseline"}


def _warn_if_role_differs(entry: "ModelEntry", info: dict[str, Any], where: str) -> None:
    """A checkpoint whose family (cl, mim, baseline) contradicts the model's ``role``: a file
    given for the wrong model, which would turn the recipe's comparisons around. The objective
    vitprobe trained it with decides where the file records one (its own format, or an export's
    training record), else the file's format."""
    training = info["report"].get("training")
    objective = training.get("objective") if isinstance(training, dict) else None
    source = objective if isinstance(objective, str) else info["format"]
    family = _FAMILIES.get(str(source))
    if entry.role in set(_FAMILIES.values()) and family is not None and family != entry.role:
        warn_user(f"{where}: its role is {entry.role}, but {entry.checkpoint} is a {source} checkpoint ({family}); "
                  "check that the file is meant for this model")


def _check_param_blocks(params: dict[str, dict[str, Any]], shallowest: int, where: str) -> None:
    """Block numbers in ``params`` must exist in every model, in the analysis's own range
    (attention maps from block 1, tokens from the embedding, 0)."""
    from vitprobe.analyzers import get_analyzer

    for name, values in params.items():
        lowest = get_analyzer(name, **values).lowest_layer()
        beyond = [b for b in values.get("layers") or [] if not lowest <= b <= shallowest]
        if beyond:
            raise ConfigError(f"{where}: params: {name}.layers {beyond} lie outside the blocks {name} reads "
                              f"in every model ({lowest}..{shallowest}: the shallowest has {shallowest})")


def _extra_figure_stems(models: list["ModelEntry"], figures: list[str], analyses: list[str],
                        sweep: bool) -> list[str]:
    """The figures a recipe draws beyond one per analysis: ``sweep_<probe>`` for each probe a
    sweep runs, ``reconstructions_<key>`` for each model it trains (reproduce draws them)."""
    stems = [f"sweep_{name}" for name in ("linear_probe", "knn") if sweep and name in analyses]
    if "reconstructions" in figures:  # GMML's decoder rebuilds whole corrupted images
        stems += [f"reconstructions_{m.key}" for m in models if m.train is not None
                  and m.train.get("method") == "gmml"]
    return stems


def _train_file(spec: Any, recipe: Path) -> Path | None:
    """The training YAML a model's ``train:`` names (relative to the recipe), or None for a mapping."""
    if not isinstance(spec, str):
        return None
    return (recipe.parent / spec) if not Path(spec).is_absolute() else Path(spec)


def _train_spec(spec: Any, recipe: Path, where: str) -> dict[str, Any]:
    file = _train_file(spec, recipe)
    if file is not None:
        try:
            exists = file.is_file()
        except OSError as err:  # e.g. a name too long for the file system
            raise ConfigError(f"{where}: training config {file}: {err.strerror}") from None
        if not exists:
            raise ConfigError(f"{where}: training config {file} does not exist")
        from vitprobe.train.config import read_train_config

        return read_train_config(file)
    if isinstance(spec, dict):
        return dict(spec)
    raise ConfigError(f"{where}: `train` is a path to a training YAML or a mapping")


def _model_entry(key: Any, spec: Any, recipe: Path, where: str) -> ModelEntry:
    key = _folder_name(key, "model key", where)
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: model {key!r} must be a mapping with train, checkpoint or random_like")
    unknown = set(spec) - _MODEL_KEYS
    if unknown:
        raise ConfigError(f"{where}: model {key!r}: unknown keys {sorted(unknown)}; allowed: {sorted(_MODEL_KEYS)}")
    sources = [s for s in ("train", "checkpoint", "random_like") if s in spec]
    if len(sources) != 1:
        raise ConfigError(f"{where}: model {key!r} needs exactly one of train, checkpoint, random_like")
    heads = spec.get("num_heads")
    entry = ModelEntry(key=key, label=str(spec.get("label", key)), role=str(spec.get("role", "")),
                       random_like=spec.get("random_like"),
                       num_heads=None if heads is None else check_whole(heads, f"{where}: model {key!r}: num_heads"))
    if "train" in spec:
        entry.train = _train_spec(spec["train"], recipe, f"{where}: model {key!r}")
        entry.train_file = _train_file(spec["train"], recipe)
    if "checkpoint" in spec:
        if not isinstance(spec["checkpoint"], str) or not spec["checkpoint"]:
            raise ConfigError(f"{where}: model {key!r}: checkpoint must be the path of a file, got {spec['checkpoint']!r}")
        ckpt = Path(spec["checkpoint"])
        entry.checkpoint = ckpt if ckpt.is_absolute() else recipe.parent / ckpt
    return entry


def _sweep_models(sweep: Any, recipe: Path, where: str) -> list[ModelEntry]:
    if not isinstance(sweep, dict) or set(sweep) != {"parameter", "values", "train"}:
        raise ConfigError(f"{where}: `sweep` needs exactly parameter, values and train")
    if sweep["parameter"] != "lam":
        raise ConfigError(f"{where}: only the hybrid weight `lam` can be swept")
    base = _train_spec(sweep["train"], recipe, where)
    entries = []
    for value in _listed(sweep["values"], "sweep.values", where):
        if not (is_real(value) and 0.0 <= value <= 1.0):
            raise ConfigError(f"{where}: sweep value {value!r} is not a lambda in [0, 1]")
        entries.append(ModelEntry(key=f"lam_{float(value):g}", label=f"lambda = {float(value):g}",
                                  role="hybrid", train={**base, "lam": float(value)},
                                  train_file=_train_file(sweep["train"], recipe)))
    return entries


# Training options that reproduce sets itself, from its own command line (they do not change
# what is trained).
SET_BY_REPRODUCE = {"out": "--out", "device": "--device", "num_workers": "--num-workers"}


def _validate_train(spec: dict[str, Any], where: str) -> int:
    """The training config must be valid, its objective's hyper-parameters and warm-up
    included, as training would check them (its data is checked by reproduce, for the
    models it will train rather than reuse); returns the depth of the encoder it trains."""
    from vitprobe.train import TrainConfig
    from vitprobe.train.config import resolve_optim
    from vitprobe.train.engine import resolve_arch

    ignored = sorted(set(spec) & set(SET_BY_REPRODUCE))
    if ignored:
        raise ConfigError(f"{where}: {', '.join(ignored)} is set by vitprobe reproduce "
                          f"({', '.join(SET_BY_REPRODUCE[k] for k in ignored)}); drop it from the training config")
    try:
        config = TrainConfig.from_overrides(spec)
        resolve_optim(config, config.resolved_hparams())
        return resolve_arch(config).depth
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None


def _analyses(names: Any, where: str) -> str | list[str]:
    """``all`` or the list of names, each a registered analysis."""
    from vitprobe.analyzers import list_analyzers

    if names == "all":
        return names
    known = list_analyzers()
    names = [names] if isinstance(names, str) else _listed(names, "analyses", where)
    for name in names:
        if name not in known:
            raise ConfigError(f"{where}: unknown analysis {name!r}; known: {', '.join(known)} (or all)")
    return list(names)


def _params(raw: dict[str, Any], analyses: list[str], where: str, within: str = "params: ") -> dict[str, dict[str, Any]]:
    """``params:`` (analysis -> {parameter: value}) checked like ``--param`` (names, kinds and
    ranges; block numbers against the model when it is analysed); errors read
    ``<where>: <within><the analysis's error>``."""
    from vitprobe.analyzers import get_analyzer

    out = {}
    for name, values in raw.items():
        if name not in analyses:
            raise ConfigError(f"{where}: params given for {name!r}, which the recipe does not run; "
                              f"it runs {', '.join(analyses)}")
        values = dict(_mapping(values, f"params.{name}", where))
        try:
            checked = get_analyzer(name, **values).params()  # as the analysis reads them
        except ConfigError as err:
            raise ConfigError(f"{where}: {within}{err}") from None
        out[name] = {key: checked[key] for key in values}
    return out


def _reads_as_number(value: Any) -> bool:
    """A number, or text that reads as one (claims read ``frequency`` with float())."""
    if isinstance(value, bool):
        return False
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _layers(value: Any, where: str) -> None:
    if value in _LAYER_WORDS:
        return
    whole = [is_whole(v) or (isinstance(v, str) and v.strip().isdigit())
             for v in value] if isinstance(value, list) else []
    if not (whole and all(whole)):
        raise ConfigError(f"{where}: claim check layers must be one of {', '.join(_LAYER_WORDS)} or a "
                          f"list of layer numbers, got {value!r}")


def _check_claim_layers(layers: Any, source: str, deepest: int | None, params: dict[str, Any], where: str) -> None:
    """A claim's ``layers`` (a word or a list of block numbers) must exist in the deepest model,
    start no lower than the first block analysis ``source`` reads, and be among the layers its
    ``params`` have it read."""
    from vitprobe.analyzers import get_analyzer

    _layers(layers, where)
    listed = layers if isinstance(layers, list) else []
    beyond = [v for v in listed if deepest is not None and int(v) > deepest]
    if beyond:
        raise ConfigError(f"{where}: claim check layers {beyond} lie beyond the models' blocks "
                          f"(the deepest has {deepest})")
    lowest = get_analyzer(source, **params).lowest_layer()
    below = [v for v in listed if int(v) < lowest]
    if below:
        raise ConfigError(f"{where}: claim check layers {below} lie below the first block {source} reads "
                          f"({lowest}{': attention begins in block 1' if lowest == 1 else ''})")
    read = params.get("layers")
    unread = [v for v in listed if read is not None and int(v) not in read]
    if unread:
        raise ConfigError(f"{where}: claim check layers {unread}: params has {source} read only layers "
                          f"{read}; add them there or claim on those")


def _claim(raw: Any, models: list[ModelEntry], analyses: list[str], skipped: dict[str, str],
           drawn: set[str], label_names: list[str], deepest: int | None, where: str,
           data_given: bool, params: dict[str, dict[str, Any]] | None = None) -> Claim:
    """One claim, checked against the recipe: its text is text, its figure is drawn, its
    metric is one the analyses give, its models exist and differ, its layers pass
    :func:`_check_claim_layers`, it selects only on axes its metric's table has, and (on the
    recipe's own data) its label is one the data has.
    With ``data_given`` (--data), a label the data lacks or an analysis that ``all`` skips on
    it leaves the claim undecided, with a warning."""
    from vitprobe.analyzers import analysis_giving, analyzer_class

    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: a claim is a mapping of figure, text and check, got {raw!r}")
    missing, unknown = [k for k in ("figure", "text", "check") if k not in raw], sorted(set(raw) - {"figure", "text", "check"})
    if missing or unknown:
        raise ConfigError(f"{where}: each claim needs figure, text and check"
                          + (f"; missing {', '.join(missing)}" if missing else "")
                          + (f"; unknown keys {unknown}" if unknown else ""))
    if not isinstance(raw["text"], str) or not raw["text"].strip():
        raise ConfigError(f"{where}: claim text must be the sentence the claim tests, got {raw['text']!r}")
    metric = raw["check"].get("metric") if isinstance(raw["check"], dict) else None
    cut = analysis_giving(metric, skipped)
    if cut is not None:
        problem = f"claim on {metric}: analysis {cut} is skipped (it {skipped[cut]})"
        if not data_given:
            raise ConfigError(f"{where}: {problem}")
        warn_user(f"{where}: {problem}, so the claim will be undecided")
        return Claim(figure=str(raw["figure"]), text=str(raw["text"]), check=dict(raw["check"]))
    if raw["figure"] not in drawn:
        raise ConfigError(f"{where}: claim figure {raw['figure']!r} is not drawn; figures: {', '.join(sorted(drawn))}")
    check = dict(_mapping(raw["check"], "check", where))
    unknown = set(check) - _CHECK_KEYS
    if unknown:
        raise ConfigError(f"{where}: claim check has unknown keys {sorted(unknown)}; allowed: {sorted(_CHECK_KEYS)}")
    metrics = [m for name in analyses for m in analyzer_class(name).metrics]
    if check.get("metric") not in metrics:
        raise ConfigError(f"{where}: claim check metric {check.get('metric')!r} is none of the analyses' "
                          f"metrics: {', '.join(metrics)}")
    _check_claim_sides(check, [m.key for m in models], where)
    source = analysis_giving(check["metric"], analyses)
    _check_claim_layers(check.get("layers", "all"), source, deepest, (params or {}).get(source, {}), where)
    _check_claim_selectors(check, source, where)
    if "label" in check:
        _claim_label(check["label"], label_names, where, data_given)
    return Claim(figure=str(raw["figure"]), text=str(raw["text"]), check=check)


def _check_claim_sides(check: dict[str, Any], keys: list[str], where: str) -> None:
    """What a check compares: two different models of ``keys`` (``greater``, ``than``), or, with
    ``peak_inside: true``, none (the peak among at least 3 models)."""
    if check.get("peak_inside") not in (None, True, False):
        raise ConfigError(f"{where}: claim check peak_inside is true or false, got {check['peak_inside']!r}")
    if check.get("peak_inside"):
        if {"greater", "than"} & set(check):
            raise ConfigError(f"{where}: claim check peak_inside: true takes no greater/than")
        if len(keys) < 3:
            raise ConfigError(f"{where}: claim check peak_inside needs at least 3 models")
        return
    for side in ("greater", "than"):
        if check.get(side) not in keys:
            raise ConfigError(f"{where}: claim check {side} names {check.get(side)!r}, not a model; "
                              f"models: {', '.join(keys)}")
    if check["greater"] == check["than"]:
        raise ConfigError(f"{where}: claim check compares {check['greater']!r} with itself")


def _check_claim_selectors(check: dict[str, Any], source: str, where: str) -> None:
    """A check selects only on axes its analysis ``source``'s table has; ``frequency`` is
    ``highest`` or a number (units of pi), ``rank`` a whole number >= 1, ``min_difference`` a
    finite number >= 0."""
    from vitprobe.analyzers import analyzer_class

    for axis in ("frequency", "rank", "label"):
        if axis in check and axis not in analyzer_class(source).claim_axes:
            raise ConfigError(f"{where}: claim check {axis}: metric {check['metric']} ({source}) has no "
                              f"{axis} to select; drop {axis}:")
    if check.get("frequency", "highest") != "highest" and not _reads_as_number(check["frequency"]):
        raise ConfigError(f"{where}: claim check frequency must be `highest` or a number (units of pi), "
                          f"got {check['frequency']!r}")
    if "rank" in check and not (is_whole(check["rank"]) and check["rank"] >= 1):
        raise ConfigError(f"{where}: claim check rank must be a whole number >= 1 (1 = the largest singular "
                          f"value), got {check['rank']!r}")
    least = check.get("min_difference", 0)
    if not (is_real(least) and 0 <= least < float("inf")):
        raise ConfigError(f"{where}: claim check min_difference must be a number >= 0 in the metric's "
                          f"units, got {least!r}")


def _claim_label(label: Any, label_names: list[str], where: str, data_given: bool) -> None:
    if not (isinstance(label, str) or (isinstance(label, list) and label
                                       and all(isinstance(x, str) for x in label))):
        raise ConfigError(f"{where}: claim check label must be a label name or a list of them "
                          f"(the first one the data has is used), got {label!r}")
    wanted = [label] if isinstance(label, str) else label
    if any(name in label_names for name in wanted):
        return
    problem = (f"claim check label {label!r}: the data has {', '.join(label_names) or 'no labels'}")
    if not data_given:
        raise ConfigError(f"{where}: {problem}; name one of them")
    warn_user(f"{where}: {problem}, so the claim will be undecided")
