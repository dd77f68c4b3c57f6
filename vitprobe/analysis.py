"""``analyze``: stream a dataset once through a ViT and feed every requested analysis.

Two phases, so that every user mistake surfaces before any image is processed:
:func:`prepare_analysis` loads the model, resolves the data and builds and checks the
analyzers; :func:`run_analysis` does the single streaming pass and computes the results.

Under ``torch.distributed`` (torchrun) each rank streams its own contiguous slice of the
dataset (no padded duplicates), then the analyzers' states are gathered to rank 0 and merged
in rank order, so rank 0 computes the same tables as a single process would; every rank
returns that Run.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import itertools
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset, Sampler

from vitprobe.data.user_data import as_items, dataset_name, describe_data, first_item, loader_sampling
from vitprobe.distributed import on_rank_zero, own_shard, rank_and_world, to_device
from vitprobe.errors import ConfigError, DataError, VitprobeError, check_whole, warn_user, warnings_kept
from vitprobe.plugins import OWN_MODULE_HINT
from vitprobe.output_paths import check_output
from vitprobe.results import Run

PROGRESS_DESC = "analysing"


DEFAULT_BATCH_SIZE = 32
"""Images per forward pass where the data is not a DataLoader (which batches itself)."""


@dataclass
class AnalysisPlan:
    """Everything one streaming pass needs, checked: model, loader, bound analyzers."""

    model: nn.Module
    info: Any  # vitprobe.capture.ModelInfo
    loader: DataLoader
    analyzers: list[Any]  # bound vitprobe.analyzers.Analyzer instances
    params: dict[str, dict[str, Any]]
    protocol: dict[str, Any]
    checkpoint: dict[str, Any]
    label: str
    device: torch.device
    skipped: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # said while preparing and passing (data, model)
    passed: bool = False  # run_analysis has begun its pass: the analyzers hold its images


class ShardSampler(Sampler[int]):
    """Rank r of w reads the contiguous indices [r*n//w, (r+1)*n//w): every index exactly
    once over all ranks, no padding, and concatenating the shards in rank order restores
    the single-process order."""

    def __init__(self, size: int, rank: int, world_size: int) -> None:
        self.start = rank * size // world_size
        self.stop = (rank + 1) * size // world_size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start, self.stop))

    def __len__(self) -> int:
        return self.stop - self.start


def _load(model_or_path: nn.Module | str | os.PathLike[str],
          load_options: Mapping[str, Any] | None) -> tuple[nn.Module, dict, str]:
    """The model, its checkpoint info (format, arch, sha256, path; a module given as such has
    format "module" and no arch yet) and a short label (the file's, plus ``-<key>`` when a key
    was chosen);
    ``load_options`` (format, key, num_heads, img_size, arch) go to ``load_model``."""
    if isinstance(model_or_path, nn.Module):
        if load_options:
            raise ConfigError(f"load_options {sorted(load_options)} apply when a checkpoint path is "
                              "loaded, and this model is already built; pass the path instead")
        _check_weights(model_or_path)
        info = dict(getattr(model_or_path, "vitprobe_info", {}) or {})
        info.setdefault("format", "module")
        label = checkpoint_label(info["path"]) if info.get("path") else type(model_or_path).__name__
        return model_or_path.eval(), info, label
    from vitprobe.models import load_model

    if not isinstance(model_or_path, (str, os.PathLike)):
        raise ConfigError(f"the model must be an nn.Module or a checkpoint path, got "
                          f"{type(model_or_path).__name__}")
    known = set(inspect.signature(load_model).parameters) - {"path"}
    unknown = sorted(set(load_options or {}) - known)
    if unknown:
        raise ConfigError(f"unknown load option(s) {unknown}; known: {sorted(known)}")
    model = load_model(model_or_path, **(load_options or {}))
    info = dict(getattr(model, "vitprobe_info", {}) or {})
    info.setdefault("path", str(model_or_path))
    key = (load_options or {}).get("key")  # a chosen encoder (e.g. DINO's student) is named in the label
    return model, info, checkpoint_label(model_or_path) + (f"-{key}" if key else "")


def _module_arch(model: nn.Module, info: Any) -> dict[str, Any]:
    """What the tables of a module given as such depend on, for its protocol: its class, and
    (from its ModelInfo ``info``) depth, heads, width, patch size, image size, class token
    and register tokens."""
    return {"class": type(model).__name__, "depth": info.depth, "num_heads": info.num_heads,
            "embed_dim": info.embed_dim, "patch_size": info.patch_size, "img_size": info.img_size,
            "class_token": info.class_token,
            "reg_tokens": info.num_prefix_tokens - int(info.class_token)}


def _check_weights(model: nn.Module) -> None:
    """Refuse weights that the pass cannot use as they are: not materialised (the ``meta``
    device), not float32 (the pass feeds float32 images, and its entropies and spectra
    are defined on float32 features), or not finite (``check_finite``)."""
    from vitprobe.models.loading import check_finite

    named = (*model.named_parameters(), *model.named_buffers())
    for name, tensor in named:
        if tensor.is_meta:
            raise ConfigError(f"the model's {name} is on the meta device (no values); load real weights, "
                              "e.g. vitprobe.load_model(path)")
        if tensor.is_floating_point() and tensor.dtype != torch.float32:
            raise ConfigError(f"the model's {name} is {str(tensor.dtype).replace('torch.', '')}; vitprobe "
                              "analyses float32 weights: pass model.float()")
    check_finite("the model", named)


# File names `vitprobe train` gives every run; such a file is named after its run folder.
_TRAINING_FILE_STEMS = ("final", "checkpoint")
# Double suffixes of published checkpoints (MoCo v3's `vit-b-300ep.pth.tar`), dropped whole.
_DOUBLE_SUFFIXES = (".pth.tar", ".pt.tar")


def checkpoint_label(path: str | os.PathLike[str]) -> str:
    """A run label for a checkpoint file: its name without its suffix (``.pth.tar`` whole), or
    for vitprobe's own training files the run folder's name (``<run>/final.safetensors``), and
    ``<run>-checkpoint`` for the last checkpoint of a run (``<run>/checkpoint.safetensors``)."""
    path = Path(path)
    if path.stem in _TRAINING_FILE_STEMS:
        run = path.resolve().parent.name
        if not run:
            return path.stem
        return run if path.stem == "final" else f"{run}-{path.stem}"
    double = next((s for s in _DOUBLE_SUFFIXES if path.name.lower().endswith(s) and len(path.name) > len(s)), None)
    return path.name[:-len(double)] if double else path.stem


def _build_loader(data: Any, info: Any, batch_size: int, num_workers: int) -> DataLoader:
    """A loader over ``data`` (spec string, Dataset or DataLoader), sharded under torchrun."""
    from vitprobe.data import make_loader, resolve_dataset

    rank, world = rank_and_world()
    if isinstance(data, (str, os.PathLike)):
        data = resolve_dataset(str(data), info.img_size, info.mean, info.std)
    if isinstance(data, DataLoader):
        if world == 1:
            return data
        how = loader_sampling(data)
        if how is not None:
            raise ConfigError(f"under torchrun vitprobe shards the data itself, and this DataLoader reads "
                              f"with {how}: pass its Dataset (a torch Subset for some of the images), or a "
                              "DataLoader without a sampler, batch_sampler or drop_last")
        loader = data
        return DataLoader(loader.dataset, batch_size=loader.batch_size, collate_fn=loader.collate_fn,
                          num_workers=loader.num_workers,
                          sampler=ShardSampler(len(loader.dataset), rank, world))
    if not isinstance(data, (Dataset, list, tuple)):
        raise ConfigError(f"data must be a dataset spec, a Dataset or list of item dicts, or a DataLoader, "
                          f"got {type(data).__name__}")
    sampler = ShardSampler(len(data), rank, world) if world > 1 else None
    return make_loader(data, batch_size, num_workers=num_workers, sampler=sampler)


def check_data_feeds(spec: str, analyses: str | Sequence[str]) -> tuple[list[str], dict[str, str], list[str]]:
    """Raise the one-line error now if the dataset ``spec`` cannot feed ``analyses`` (masks,
    labels), e.g. before a recipe trains the models it would analyse. Returns the analyses
    that will run, those "all" skips (name -> why) and the data's label names."""
    from vitprobe.data import resolve_dataset

    _, has_masks, label_names = describe_data(resolve_dataset(spec, 32), None)
    names, skipped, _ = _analysis_names(analyses, has_masks, label_names, spec)
    return names, skipped, label_names


def _analysis_names(analyses: str | Sequence[str], has_masks: bool, label_names: list[str],
                    spec: str) -> tuple[list[str], dict[str, str], bool]:
    """The analyses to run, those "all" skips because the data cannot feed them (name -> why),
    and whether "all" was asked for.

    Asked for by name, an analysis the data cannot feed is an error."""
    from vitprobe.analyzers import analyzer_class, list_analyzers

    known = list_analyzers()
    if isinstance(analyses, str):
        given, analyses = analyses, [a.strip() for a in analyses.split(",")]
        if "" in analyses and given.strip():
            raise ConfigError(f"analyses {given!r} has an empty name between commas; separate the names "
                              f"with single commas, e.g. knn,fourier (choose from {', '.join(known)})")
        analyses = [a for a in analyses if a]
    if not isinstance(analyses, (list, tuple)) or not all(isinstance(a, str) for a in analyses):
        raise ConfigError(f"analyses must be 'all', a name or a list of names, got {analyses!r}; choose "
                          f"from {', '.join(known)}")
    every = list(analyses) == ["all"]
    if "all" in analyses and not every:
        raise ConfigError(f"analyses {', '.join(analyses)}: 'all' runs every analysis and stands alone; give "
                          f"'all', or names from {', '.join(known)}")
    names = known if every else list(analyses)
    if not names:
        raise ConfigError(f"no analyses given; choose 'all' or some of {', '.join(known)}")
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(f"unknown analysis {', '.join(map(repr, unknown))}; choose from {', '.join(known)} "
                          f"({OWN_MODULE_HINT})")
    chosen, skipped = [], {}
    for name in dict.fromkeys(names):
        cls = analyzer_class(name)
        problem = None
        if getattr(cls, "requires_masks", False) and not has_masks:
            problem = f"needs foreground masks, which {spec} lacks; use a dataset with masks (voc:PATH, synthetic)"
        elif getattr(cls, "requires_labels", False) and not label_names:
            how = ("put its images into one sub-folder per class" if spec.startswith("folder:")
                   else "give its items 'labels': {name: int}")
            problem = (f"needs labels, which {spec} lacks; {how}, or use a labelled dataset (folder:PATH "
                       "with class folders, digits, synthetic)")
        if problem is None:
            chosen.append(name)
        elif every:
            skipped[name] = problem
        else:
            raise ConfigError(f"analysis {name!r} {problem}")
    if not chosen:
        raise _none_can_run(spec, skipped)
    return chosen, skipped, every


def _none_can_run(where: str, skipped: Mapping[str, str]) -> ConfigError:
    """The error where every analysis asked for was skipped, each with its reason."""
    return ConfigError(f"none of the analyses can run on {where}: " + "; ".join(f"{k} {v}" for k, v in skipped.items()))


def _warn_if_normalised_otherwise(facts: Mapping[str, Any], info: Any) -> None:
    """A vitprobe dataset built with other mean/std than the model's (a spec string gets the
    model's own): the model sees shifted inputs, which no check on the images can catch."""
    given = facts.get("normalisation")
    expected = {"mean": info.mean, "std": info.std}
    if not given or all(abs(a - b) <= 1e-6 for key in expected for a, b in zip(given[key], expected[key])):
        return

    def listed(values: Sequence[float]) -> str:
        return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"

    warn_user(f"dataset {facts.get('spec')!r} is normalised with mean {listed(given['mean'])} and std "
              f"{listed(given['std'])}, but the model expects mean {listed(info.mean)} and std {listed(info.std)}; "
              "pass the spec string, or resolve_dataset(spec, size, mean=..., std=...) with the model's values")


def _keeping_warnings(prepare: Callable[..., AnalysisPlan]) -> Callable[..., AnalysisPlan]:
    """``prepare``, its warnings said as they come and kept in the plan's ``warnings`` (but for
    those quoting the checkpoint's training warnings, which its checkpoint record shows)."""
    @functools.wraps(prepare)
    def kept(*args: Any, **kwargs: Any) -> AnalysisPlan:
        from vitprobe.models.loading import training_warnings

        with warnings_kept() as warned:
            plan = prepare(*args, **kwargs)
        shown = training_warnings(plan.checkpoint.get("report", {}))
        plan.warnings = [text for text in warned if not any(said in text for said in shown)]
        return plan

    return kept


def _check_options(data: Any, batch_size: int | None,
                   analyzer_params: Mapping[str, Mapping[str, Any]] | None) -> int:
    """The batch size to use (DEFAULT_BATCH_SIZE if none; a DataLoader's own), after checking it
    and that ``analyzer_params`` maps each analysis to a mapping."""
    from vitprobe.analyzers import list_analyzers

    if isinstance(data, DataLoader) and batch_size not in (None, data.batch_size):
        raise ConfigError(f"batch_size={batch_size!r} is for data vitprobe batches itself; this DataLoader "
                          f"batches by {data.batch_size}: leave batch_size out, or pass the loader's Dataset")
    if analyzer_params is not None and not (isinstance(analyzer_params, Mapping) and all(
            isinstance(values, Mapping) for name, values in analyzer_params.items()
            if name in list_analyzers())):  # a name that is no analysis gets its own error later
        raise ConfigError("analyzer_params maps an analysis to a dict of its parameters, e.g. "
                          f"{{'knn': {{'k': 10}}}}, got {analyzer_params!r}")
    return check_whole(DEFAULT_BATCH_SIZE if batch_size is None else batch_size, "batch size")


def _checkpoint_record(checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    """What a run's protocol records of its checkpoint: path, format, arch, sha256, the key it
    was read from, where its head count came from, what was resampled, and the collapse
    warnings its training saw."""
    from vitprobe.models.loading import training_warnings

    report = checkpoint.get("report", {})
    warned = training_warnings(report)
    return {**{k: checkpoint[k] for k in ("path", "format", "arch", "sha256") if k in checkpoint},
            **{k: report[k] for k in ("key", "num_heads_from", "resampled") if k in report},
            **({"training_warnings": warned} if warned else {})}


def _heads_guessed(checkpoint: Mapping[str, Any], heads: int) -> dict[str, str]:
    """``{"heads_guessed": "1 from width 64 // 64 (...)"}`` where the file gave no head count and
    loading guessed it (every per-head number follows the guess), else nothing."""
    from vitprobe.models.inference import GUESSED

    source = str(checkpoint.get("report", {}).get("num_heads_from", ""))
    return {"heads_guessed": f"{heads} from {source[len(GUESSED):].strip()}"} if source.startswith(GUESSED) else {}


@_keeping_warnings
def prepare_analysis(
    model_or_path: nn.Module | str | os.PathLike[str],
    data: str | Dataset | Sequence[Mapping[str, Any]] | DataLoader,
    analyses: str | Sequence[str] = "all",
    batch_size: int | None = None,
    device: str | torch.device = "cpu",
    seed: int = 0,
    num_workers: int = 0,
    analyzer_params: Mapping[str, Mapping[str, Any]] | None = None,
    load_options: Mapping[str, Any] | None = None,
) -> AnalysisPlan:
    """Load, resolve and check everything; no image is processed yet. The global generators
    are seeded by ``seed`` meanwhile and restored afterwards (as in :func:`run_analysis`).
    What this warns of (skipped files, skipped analyses, the data's normalisation) is said and
    kept in the plan's ``warnings``, for the run's record."""
    from vitprobe.capture import at_image_size, model_info
    from vitprobe.data.items import check_item
    from vitprobe.seeding import check_seed, seeded

    batch_size = _check_options(data, batch_size, analyzer_params)
    seed = check_seed(seed)
    from vitprobe.distributed import resolve_device

    dev = resolve_device(str(device), int(os.environ.get("LOCAL_RANK", "0")))
    if isinstance(data, str):  # a mistyped spec fails before the checkpoint is read (and warned of)
        from vitprobe.data.spec import parse_spec

        parse_spec(data)
    with seeded(seed):  # a dataset's first read (random transforms) and a sampler draw from them
        model, checkpoint, label = _load(model_or_path, load_options)
        info = model_info(model)
        checkpoint.setdefault("arch", _module_arch(model, info))  # a checkpoint's is its ArchSpec
        first = None
        if isinstance(data, (Dataset, list, tuple)):  # (image, label) pairs become item dicts
            data, first = as_items(data)
        loader = _build_loader(data, info, batch_size, num_workers)
        given = data if isinstance(data, DataLoader) else loader.dataset  # not this rank's shard
        if first is None:
            first = first_item(given)  # read once, for the check and the description
        if first is not None:
            name = dataset_name(loader.dataset)
            height, width = (tuple(getattr(first.get("image"), "shape", ())) or (0, 0))[-2:]
            info = at_image_size(info, model, int(height), int(width), f"dataset {name}")
            check_item(first, name, info.input_size)
        facts, has_masks, label_names = describe_data(given, first)
    if first is not None and "index" not in first:
        facts = {**facts, "index": "place in the pass (the items carry no 'index')"}
    _warn_if_normalised_otherwise(facts, info)
    spec = str(facts.get("spec", "the dataset"))
    names, skipped, every = _analysis_names(analyses, has_masks, label_names, spec)
    params = _params_of(names, analyzer_params)
    protocol = {
        "dataset": facts,
        "image_size": info.img_size,
        **_heads_guessed(checkpoint, info.num_heads),
        "checkpoint": _checkpoint_record(checkpoint),
        "batch_size": loader.batch_size,
        "seed": seed,
        "device": dev.type,
        "world_size": rank_and_world()[1],
    }
    analyzers = _bound(names, params, info, protocol, every, skipped)
    if not analyzers:
        raise _none_can_run(f"{spec} with this model", skipped)
    for name, reason in skipped.items():
        warn_user(f"skipping {name}: it {reason}")
    params = {analyzer.name: params[analyzer.name] for analyzer in analyzers}
    return AnalysisPlan(model.to(dev).eval(), info, loader, analyzers, params, protocol, checkpoint,
                        label, dev, skipped)


def _params_of(names: list[str], analyzer_params: Mapping[str, Mapping[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """Each analysis of ``names`` with its given parameters; parameters for a name that is no
    analysis, or for an analysis that will not run, are a ConfigError."""
    from vitprobe.analyzers import list_analyzers

    extra = sorted(set(analyzer_params or {}) - set(names))
    unknown = [name for name in extra if name not in list_analyzers()]
    if unknown:
        raise ConfigError(f"analyzer_params: {', '.join(map(repr, unknown))} is not an analysis; it maps "
                          "an analysis to its parameters, e.g. {'knn': {'k': 10}}")
    if extra:
        raise ConfigError(f"parameters given for {', '.join(extra)}, which will not run; run them or drop the parameters")
    return {name: dict((analyzer_params or {}).get(name, {})) for name in names}


def _bound(names: list[str], params: Mapping[str, Mapping[str, Any]], info: Any, protocol: dict[str, Any],
           every: bool, skipped: dict[str, str]) -> list[Any]:
    """The analyzers of ``names`` bound to the model; one the model cannot feed (e.g. no class
    token) is added to ``skipped`` when it came with "all" and its defaults, else its error is raised."""
    from vitprobe.analyzers import get_analyzer

    analyzers = []
    for name in names:
        analyzer = get_analyzer(name, **params[name])
        try:
            analyzers.append(analyzer.bind(info, protocol))
        except ConfigError as err:
            if not every or params[name]:  # asked for by name, or given parameters: the user's to fix
                raise
            skipped[name] = f"cannot run on this model with its default parameters ({err})"
    return analyzers


def _gather_states(plan: AnalysisPlan) -> None:
    """Fold every rank's analyzer state into rank 0's analyzers, in rank order."""
    from vitprobe.analyzers import get_analyzer

    rank, world = rank_and_world()
    states = [{k: v.cpu() for k, v in a.state_dict().items()} for a in plan.analyzers]
    gathered: list[Any] = [None] * world if rank == 0 else None
    torch.distributed.gather_object(states, gathered, dst=0)
    if rank != 0:
        return
    for index, analyzer in enumerate(plan.analyzers):
        for other_rank in range(1, world):
            shard = get_analyzer(analyzer.name, **plan.params[analyzer.name]).bind(plan.info, plan.protocol)
            shard.load_state_dict(gathered[other_rank][index])
            analyzer.merge(shard)


@contextlib.contextmanager
def _naming_analyzer(analyzer: Any, step: str) -> Iterator[None]:
    """A failure inside an analyzer's code that is not a vitprobe error (a bug of one's own
    analyzer, a shape it did not expect) says, as a note under its traceback, which analysis
    and step it came from."""
    try:
        yield
    except Exception as err:
        if not isinstance(err, VitprobeError) and hasattr(err, "add_note"):  # notes: Python 3.11+
            err.add_note(f"vitprobe: raised in analysis {analyzer.name!r} ({type(analyzer).__module__}), {step}")
        raise


def _compute(plan: AnalysisPlan) -> Run:
    """The run of the analyzers' results. The warnings they give (about what the numbers
    mean) are said and, after the plan's (the data's, the pass's), kept in
    ``meta["analysis_warnings"]``, which its report pages show."""
    results = []
    with warnings_kept() as warned:
        for analyzer in plan.analyzers:
            with _naming_analyzer(analyzer, "compute()"):
                results.append(analyzer.compute())
    meta = {"skipped_analyses": plan.skipped, "analyzer_params": plan.params,
            "analysis_warnings": list(dict.fromkeys([*plan.warnings, *warned]))}
    return Run(results, checkpoint=plan.checkpoint, label=plan.label, meta=meta)


def run_analysis(plan: AnalysisPlan, progress: bool = True) -> Run:
    """One pass over the data: capture the union of the analyzers' sites per batch, update
    every analyzer, then compute (merging the shards of every rank under torch.distributed).

    The pass runs with the global generators seeded by the protocol's seed (a Dataset's own
    random transforms repeat from run to run) and restored afterwards. A plan runs once: its
    analyzers keep what they saw, so a second pass would count every image twice."""
    if plan.passed:
        raise ConfigError("this plan has run already, and its analyzers hold that pass's images (a second pass "
                          "would count them twice); call prepare_analysis again for another pass")
    plan.passed = True
    from vitprobe.capture import capture
    from vitprobe.data.items import check_finite_images
    from vitprobe.progress import progress_bar
    from vitprobe.seeding import seeded

    rank, world = rank_and_world()
    spec = str(plan.protocol["dataset"].get("spec"))
    sites = set().union(*(analyzer.sites() for analyzer in plan.analyzers))
    bar = progress_bar(plan.loader, desc=f"{PROGRESS_DESC} {plan.label}", unit="batch",
                       disable=not progress or rank != 0, leave=False)
    sampler = plan.loader.sampler
    position = sampler.start if isinstance(sampler, ShardSampler) else 0  # this shard's first place
    with (seeded(plan.protocol["seed"]), torch.inference_mode(), capture(plan.model, sites) as cap, own_shard(),
          warnings_kept() as warned):
        for batch in bar:
            if "index" not in batch:  # items without an index are numbered by their place in the pass
                batch["index"] = torch.arange(position, position + len(batch["image"]))
            first, position = position, position + len(batch["image"])
            _check_batch_size(batch["image"], batch["index"], plan.info, spec)
            batch = to_device(batch, plan.device)
            check_finite_images(batch["image"], batch["index"], spec)
            batch["sites"] = cap.run(batch["image"])
            for analyzer in plan.analyzers:
                with _naming_analyzer(analyzer, f"update() on images {first}..{position - 1} of the pass"):
                    analyzer.update(batch)
    plan.warnings = [*plan.warnings, *warned]
    if world > 1:
        _gather_states(plan)
    return on_rank_zero(lambda: _compute(plan))


def _check_batch_size(images: torch.Tensor, index: torch.Tensor, info: Any, spec: str) -> None:
    """DataError unless the batch's images are the size the pass was planned at (grid x patch),
    naming the batch's item indices: a dataset whose images change size part-way."""
    planned = info.input_size
    if tuple(images.shape[-2:]) != planned:
        indices = index.reshape(-1).tolist()
        raise DataError(f"dataset {spec}: the images at index {indices[0]}..{indices[-1]} are "
                        f"{images.shape[-2]}x{images.shape[-1]} px, but the first item's and the model's are "
                        f"{planned[0]}x{planned[1]}; give every image one size (resize it in the dataset)")


def _parameter_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (or buffer); the CPU for a model with neither."""
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        return tensor.device
    return torch.device("cpu")


@contextlib.contextmanager
def _left_as_found(model_or_path: Any) -> Iterator[None]:
    """For a module: restore every submodule's train/eval mode and the module's device on exit."""
    if not isinstance(model_or_path, nn.Module):
        yield
        return
    modes = [(module, module.training) for module in model_or_path.modules()]
    device = _parameter_device(model_or_path)
    try:
        yield
    finally:
        model_or_path.to(device)
        for module, training in modes:
            module.training = training


def analyze(
    model_or_path: nn.Module | str | os.PathLike[str],
    data: str | Dataset | Sequence[Mapping[str, Any]] | DataLoader,
    analyses: str | Sequence[str] = "all",
    batch_size: int | None = None,
    device: str | torch.device | None = None,
    out: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    seed: int = 0,
    num_workers: int = 0,
    progress: bool = True,
    analyzer_params: Mapping[str, Mapping[str, Any]] | None = None,
    load_options: Mapping[str, Any] | None = None,
    label: str | None = None,
) -> Run:
    """Analyse a model (or a checkpoint path) on a dataset (spec string, Dataset or list of
    item dicts, or DataLoader) in one streaming pass; return the Run and, with ``out``, save it
    there atomically (rank 0 only under torch.distributed).

    An item is ``{"image": normalised float32 [3, S, S] tensor, "index": int (optional; the
    split of the probes hashes it, else the item's place in the pass is used), "labels":
    {name: int} (for the probes), "mask": integer [S, S], 0 background, 1..254 objects, 255
    ignored (for attention_jaccard)}``; the first item is checked against this before the pass.
    ``batch_size`` (default 32) batches data given as a spec, Dataset or list; a DataLoader
    batches itself (another batch_size with one is an error). ``analyses`` is "all" (every
    registered analysis the data can feed), "a,b" or a list;
    ``analyzer_params`` maps an analysis name to its parameters (``vitprobe analyses`` lists
    them; each is an argument of its class in :mod:`vitprobe.analyzers`); ``load_options``
    (format, key, num_heads, img_size, arch) are passed to :func:`vitprobe.load_model`;
    ``label`` names the run in legends (default: the checkpoint's file stem, the run folder's
    name for vitprobe's own ``<run>/final.safetensors``, or the model's class). ``device``
    (cpu, cuda, cuda:N, auto) defaults to where a module's parameters are, and to the CPU for a
    checkpoint path. The pass runs in eval mode on ``device``; a module passed in is
    then put back as it was (each submodule's train/eval mode, its device). Same inputs (the
    analyses chosen among them), batch size, thread count and seed give byte-identical CSV tables;
    the seed seeds the global generators during the pass only.
    """
    if out is not None:
        check_output(out, overwrite)
    with _left_as_found(model_or_path):
        if device is None:  # a module's own device where vitprobe runs there (the load check names others)
            own = _parameter_device(model_or_path) if isinstance(model_or_path, nn.Module) else None
            device = own if own is not None and own.type in ("cpu", "cuda") else "cpu"
        plan = prepare_analysis(model_or_path, data, analyses, batch_size, device, seed, num_workers,
                                analyzer_params, load_options)
        if label is not None:
            plan.label = str(label)
        run = run_analysis(plan, progress)
    if out is not None and rank_and_world()[0] == 0:
        run.save(out, overwrite=overwrite)
    return run
