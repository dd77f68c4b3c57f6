"""The training loop (``_run``, after the folder checks and the objective's construction).

Per optimiser step ``t`` (global, 0-based): set lr[t] and wd[t]; reseed torch with
(seed, t, rank); forward under autocast; stop on a non-finite loss (mean over processes);
backward (GradScaler for fp16); clip (per tensor for DINO and GMML, else global norm); let the
objective act on the gradients (DINO freezes its last layer in epoch 0); optimiser step;
EMA with momentum m[t]. Views are drawn in the data workers from a generator seeded by
(seed, epoch, image index) and batches by a shuffle seeded by (seed, epoch), so a run is the
same whatever the number of workers, and a resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset, Sampler

from vitprobe.data.base import IMAGENET_MEAN, IMAGENET_STD
from vitprobe.data.spec import DataSpec, parse_spec
from vitprobe.errors import (CheckpointError, ConfigError, DataError, OutputExistsError, abbreviate, brief_reason,
                             plural, warn_user)
from vitprobe.heap import retain_freed_memory
from vitprobe.models.architecture import ArchSpec, arch_from_timm, build_model
from vitprobe.output_paths import check_output_folder, is_analysis_output, user_entries, write_atomically
from vitprobe.seeding import seeded
from vitprobe.train import checkpointing as ckpt
from vitprobe import distributed
from vitprobe.train.config import TrainConfig, resolve_optim, resumed_options
from vitprobe.train.monitor import (LOG_FILE, Monitor, TrainingDivergedError, check_finite,
                                    check_log_replaceable)
from vitprobe.train.objectives._vit import set_drop_path
from vitprobe.train.collapse import collapse_warnings
from vitprobe.train.objectives.base import Objective, StepInfo
from vitprobe.train.schedules import cosine_schedule, step_schedule
from vitprobe.train.run_lock import LOCK_FILE, RunLock, busy_error, lock_holder

ObjectiveFactory = Callable[..., Objective]
# What a run folder holds: the trainer's files, and the notes `vitprobe reproduce` keeps beside them.
RUN_ENTRIES = {"config.json", LOG_FILE, ckpt.ENCODER_FILE, ckpt.STATE_FILE, ckpt.FINAL_FILE, ckpt.STAGING_DIR,
               "started.json", "finished.json", LOCK_FILE}
# Options that may differ between a run and its --resume; all others must match.
RESUME_MAY_CHANGE = {"out", "num_workers", "device", "log_every", "save_every"}
_SHUFFLE, _VIEWS, _STEP = 1, 2, 3  # domains of derived seeds

__all__ = ["train", "TrainingDivergedError", "resolve_arch", "derive_seed"]


def derive_seed(*keys: int) -> int:
    """A 63-bit seed mixed from integer keys (numpy SeedSequence)."""
    return int(np.random.SeedSequence(list(keys)).generate_state(1, np.uint64)[0] >> 1)


# A run whose last, incomplete global batch holds at least this share of the images is warned of.
LEFT_OUT_WARNED = 0.1


class EpochShard(Sampler):
    """Keys ``(epoch, index)`` of this rank: a permutation seeded by (seed, epoch), cut into
    global batches of ``world_size * batch_size``; rank r takes slice r of each. The last
    incomplete global batch is dropped, so every rank makes the same number of steps."""

    def __init__(self, n: int, batch_size: int, rank: int, world_size: int, seed: int, epoch: int):
        self.n, self.b, self.rank, self.world = n, batch_size, rank, world_size
        self.seed, self.epoch = seed, epoch
        self.steps = n // (batch_size * world_size)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        g = torch.Generator().manual_seed(derive_seed(self.seed, _SHUFFLE, self.epoch))
        perm = torch.randperm(self.n, generator=g)  # 8 bytes an image; a list would take 36
        glob = self.b * self.world
        for s in range(self.steps):
            start = s * glob + self.rank * self.b
            yield from ((self.epoch, i) for i in perm[start:start + self.b].tolist())

    def __len__(self) -> int:
        return self.steps * self.b


class ViewsDataset(Dataset):
    """Item ``(epoch, index)`` -> ``views(image, generator seeded by (seed, epoch, index))``."""

    def __init__(self, base: Dataset, views: Callable[[torch.Tensor, torch.Generator], Any],
                 seed: int):
        self.base, self.views, self.seed = base, views, seed

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        g = torch.Generator().manual_seed(derive_seed(self.seed, _VIEWS, epoch, index))
        return self.views(self.base[index]["image"], g)


@dataclasses.dataclass(frozen=True)
class _Schedule:
    """A run's length and its per-step values: lr[t], weight decay wd[t] and (where a teacher
    moves) EMA momentum m[t], each a cosine from its start to its end over the run."""
    epochs: int
    steps_per_epoch: int
    global_batch: int
    peak_lr: float
    warmup_epochs: int
    lr: np.ndarray
    weight_decay: np.ndarray
    momentum: np.ndarray | None

    @property
    def total(self) -> int:
        return self.epochs * self.steps_per_epoch


def _schedule(config: TrainConfig, optim: Mapping[str, Any], images: int, world_size: int,
              moves_teacher: bool) -> _Schedule:
    """The schedule of ``config`` on ``images`` images in ``world_size`` processes: whole global
    batches per epoch; peak lr = ``--lr``, else base_lr x global batch / 256, after
    ``warmup_epochs`` of linear warm-up from peak lr x warmup_lr / base_lr, then a cosine to
    ``min_lr`` or a constant with one ``lr_drop``; momentum to 1 only where a teacher moves (not
    a hybrid at lambda 0)."""
    global_batch = config.batch_size * world_size
    steps_per_epoch = _steps_per_epoch(images, config.data, global_batch)
    epochs = config.total_epochs()
    total = epochs * steps_per_epoch
    warmup = optim["warmup_epochs"] * steps_per_epoch
    peak_lr = config.lr if config.lr is not None else optim["base_lr"] * global_batch / 256
    if optim["lr_drop"] is None and optim["min_lr"] > peak_lr:
        source = "--lr" if config.lr is not None else f"base_lr {optim['base_lr']:g} x global batch {global_batch} / 256"
        raise ConfigError(f"min_lr {optim['min_lr']:g} exceeds the peak lr {peak_lr:.3g} ({source}) that its cosine "
                          f"decays from, so the rate would rise; pass --set min_lr=V with V <= {peak_lr:.3g}")
    warmup_start = peak_lr * optim["warmup_lr"] / optim["base_lr"]
    return _Schedule(
        epochs=epochs, steps_per_epoch=steps_per_epoch, global_batch=global_batch, peak_lr=peak_lr,
        warmup_epochs=optim["warmup_epochs"],
        lr=(cosine_schedule(peak_lr, optim["min_lr"], total, warmup, warmup_start) if optim["lr_drop"] is None
            else step_schedule(peak_lr, total, warmup, *optim["lr_drop"], warmup_start=warmup_start)),
        weight_decay=cosine_schedule(optim["weight_decay"], optim["weight_decay_end"], total),
        momentum=(cosine_schedule(optim["momentum"], 1.0, total)
                  if optim["momentum"] is not None and moves_teacher else None))


def _warn_left_out(schedule: _Schedule, images: int, data: str) -> None:
    """Warn where whole global batches leave out at least LEFT_OUT_WARNED of the images each epoch."""
    used = schedule.steps_per_epoch * schedule.global_batch
    if images - used >= LEFT_OUT_WARNED * images:
        warn_user(f"each epoch trains on {used} of the {images} images of {data} (whole global batches of "
                  f"{schedule.global_batch}; another {images - used} are left out each epoch); a batch size "
                  "that divides the image count uses them all")


def run_plan(config: TrainConfig, arch: ArchSpec, schedule: _Schedule) -> str:
    """One line saying what a run will do, before it starts (a full preset runs for days)."""
    model = f"preset {config.preset_name}" if config.preset_name else config.arch
    global_batch = schedule.global_batch
    layout = "" if arch.family == "vit" else (
        f" in BEiT layout (relative position bias {arch.rel_pos_bias}, layer scale {arch.layer_scale:g}"
        + ("" if arch.abs_pos_emb else ", no absolute position embedding") + ")")
    return (f"training {config.method} ({model}: ViT{layout} {arch.img_size} px, patch {arch.patch_size}, width "
            f"{arch.embed_dim}, {arch.depth} blocks) on {config.data}: {plural(schedule.epochs, 'epoch')} x "
            f"{plural(schedule.steps_per_epoch, 'step')} of {global_batch} images"
            + (f" ({global_batch // config.batch_size} processes x {config.batch_size})"
               if global_batch != config.batch_size else "")
            + f", peak lr {schedule.peak_lr:.3g} after "
            f"{plural(schedule.warmup_epochs, 'warm-up epoch')} -> {config.out}")


def resolve_arch(config: TrainConfig, registered: bool = True) -> ArchSpec:
    """The encoder architecture of a run: the preset's, else the timm ``--arch``'s, as its
    registered objective builds it (SimMIM's reference: its own ViT of that size,
    :meth:`Objective.encoder_arch`); as it is for a custom objective (``registered`` False)."""
    from vitprobe.train.objectives import objective_class

    base = config.arch_spec() or arch_from_timm(config.arch)  # type: ignore[arg-type]
    if not registered:
        return base
    objective = objective_class(config.method)
    return objective.encoder_arch(base, config.resolved_hparams())


def hparams_in_force(hparams: dict[str, Any], optim: dict[str, Any]) -> dict[str, Any]:
    """The objective's resolved ``hparams`` updated with the optimiser's values as used
    (``resolve_optim``: a preset's warm-up), as JSON values (tuples as lists, so saved and current
    values compare equal); the hybrid's weight ``lam`` left out (the config holds it)."""
    from vitprobe.json_safe import jsonable

    return jsonable({**{k: v for k, v in hparams.items() if k != "lam"}, **optim})


def param_groups(objective: Objective) -> list[dict[str, Any]]:
    """Trainable parameters in two AdamW groups: with weight decay, and without it, as the
    objective's reference decays them (:meth:`Objective.decays`)."""
    decay, plain = [], []
    for name, p in objective.named_parameters():
        if p.requires_grad:
            (decay if objective.decays(name, p) else plain).append(p)
    return [{"params": decay, "decay": True}, {"params": plain, "decay": False}]


def adamw(groups: list[dict[str, Any]], lr: float, betas: tuple[float, float],
          device: torch.device) -> torch.optim.AdamW:
    """AdamW over ``groups``: torch's fused kernels on a GPU (a few launches per step, not a
    few per tensor); on a CPU its reference implementation (the one the CPU resume and gloo
    tests pin down)."""
    return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=device.type == "cuda")


def sync_batchnorm(module: nn.Module, device: torch.device, world_size: int) -> nn.Module:
    """BatchNorm over the global batch when data-parallel on GPUs, as MoCo v3 trains
    (``SyncBatchNorm.convert_sync_batchnorm``: same parameters, buffers and state-dict keys).
    torch's SyncBatchNorm runs on CUDA only, so CPU processes (gloo) keep per-process statistics."""
    if world_size > 1 and device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return module


def clip_per_tensor(params: list[nn.Parameter], max_norm: float) -> None:
    """DINO's clipping: scale each gradient g by min(1, max_norm / (||g|| + 1e-6)) separately
    (multi-tensor kernels: a few launches for all gradients, not a few per tensor)."""
    grads = [p.grad for p in params if p.grad is not None]
    if grads:
        factors = (max_norm / (torch.stack(torch._foreach_norm(grads)) + 1e-6)).clamp(max=1.0)
        torch._foreach_mul_(grads, list(factors.unbind()))


def amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype: 'auto' is bf16 on CUDA if supported, else fp16; fp32 (None) on CPU."""
    if mode == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if mode == "fp16" and device.type != "cuda":
        raise ConfigError("--amp fp16 needs a CUDA device; use --amp bf16 or fp32 on CPU")
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}[mode]


# The command-line flag of each TrainConfig field whose name differs from it.
_OPTION_FLAGS = {"lam": "--lambda", "hparams": "--set"}


def _option_difference(key: str, saved: Any, now: Any) -> str:
    """``--flag was X, now Y`` for one option; for the hyper-parameters in force, one
    ``--set name was X, now Y`` per differing name (``mask_ratio in --set mim_hparams was X,
    now Y`` inside a hybrid's branch, unless the branch itself differs)."""
    if key == "hparams in force" and isinstance(saved, Mapping) and isinstance(now, Mapping):
        from vitprobe.json_safe import changed_entries

        def named(name: tuple[str, ...]) -> str:
            return f"--set {name[0]}" if len(name) == 1 else f"{'.'.join(name[1:])} in --set {name[0]}"

        entries = changed_entries(saved, now)
        switched = {f"{name[0]}_hparams" for name, _, _ in entries if name in (("mim",), ("cl",))}
        return "; ".join(f"{named(name)} was {a}, now {b}" for name, a, b in entries
                         if name[0] not in switched)  # another branch: its own hparams differ with it
    if key == "revisions in force":
        return (f"the objective's recipe changed since the run was saved (revisions {json.dumps(saved)}, "
                f"now {json.dumps(now)}), so resuming would mix two recipes")
    if key == "lr in force":
        return f"the peak learning rate (--lr, or base_lr x global batch / 256) was {saved:.6g}, now {now:.6g}"
    return f"{_OPTION_FLAGS.get(key, '--' + key.replace('_', '-'))} was {json.dumps(saved)}, now {json.dumps(now)}"


def _same_precision(a: str, b: str, device: torch.device) -> bool:
    """Whether two --amp modes train in one dtype on ``device`` (auto is fp32 on a CPU)."""
    try:
        return amp_dtype(a, device) == amp_dtype(b, device)
    except ConfigError:
        return a == b


def _check_resume(config: TrainConfig, state: dict[str, Any], world_size: int,
                  device: torch.device = torch.device("cpu"), in_force: Mapping[str, Any] | None = None,
                  given_dataset: bool = False) -> None:
    """Refuse to resume with options other than the saved run's (defaults filled in on both
    sides, so an omitted --epochs equals the default it stood for; --amp modes that mean one
    dtype on ``device`` are the same). With ``in_force`` (``{"hparams": the objective's resolved
    hyper-parameters, "lr": the peak learning rate, "revisions": the objectives'}``), what the
    state saved of these is compared by value, so ``--set mask_ratio=0.75`` equals leaving the default of 0.75.
    A run saved before runs recorded the values in force also recorded the default spec as its
    data when given a Dataset (``given_dataset``), so its data cannot be checked."""
    if state["world_size"] != world_size:  # first: the global batch, hence the lr, follows from it
        used = state["world_size"]
        raise ConfigError(f"--resume: the run in {config.out} used {used} process{'es' if used != 1 else ''}, "
                          f"not {world_size}; resume with the same process count: {distributed.launcher(used)} train "
                          f"--resume --out {config.out}")
    saved = TrainConfig.from_overrides(state["config"]).resolved()
    now = config.resolved()
    if saved["method"] != now["method"]:  # first: every hyper-parameter differs with it
        raise ConfigError(f"--resume: the run in {config.out} trains {saved['method']}, not {now['method']}; "
                          f"resume with --method {saved['method']} or start a new --out")
    if given_dataset and "in_force" not in state:
        saved["data"] = now["data"]
    if _same_precision(str(saved.get("amp")), now["amp"], device):
        saved["amp"] = now["amp"]
    for key in [k for k in (in_force or {}) if k in state.get("in_force", {})]:  # what both recorded
        saved[f"{key} in force"], now[f"{key} in force"] = state["in_force"][key], in_force[key]
        saved.pop(key, None), now.pop(key, None)
    if saved["epochs"] != now["epochs"] and "warmup_epochs" not in config.hparams:
        for side in (saved, now):  # a preset's warm-up follows from the epochs: no option of its own
            if isinstance(side.get("hparams in force"), Mapping):
                side["hparams in force"] = {k: v for k, v in side["hparams in force"].items() if k != "warmup_epochs"}
    changed = sorted(k for k, v in now.items()
                     if k not in RESUME_MAY_CHANGE and json.dumps(saved.get(k), sort_keys=True)
                     != json.dumps(v, sort_keys=True))
    if "revisions in force" in changed:
        before, after = saved["revisions in force"], now["revisions in force"]
        other_code = any(before[k] != after[k] for k in before.keys() & after.keys())
        if not other_code and "hparams in force" in changed:  # other branches, from the --set named below
            changed.remove("revisions in force")
    if "revisions in force" in changed:  # the same objective's recipe changed: no option given now can undo it
        raise ConfigError(f"--resume: in {config.out}, " + _option_difference(
            "revisions in force", saved["revisions in force"], now["revisions in force"]) + "; start a new --out")
    if "data" in changed and "images in force" in saved and "images in force" not in changed \
            and _moved(saved["data"], now["data"]):
        changed.remove("data")
        warn_user(f"--resume: the run in {config.out} read {saved['data']}; resuming on {now['data']} as the same "
                  f"{saved['images in force']} images moved (their number is checked, not their content)")
    if "data" in changed and "images in force" in changed:
        changed.remove("images in force")  # follows from the --data given now, which is named
    if "images in force" in changed:  # the data's content, which no option sets
        raise ConfigError(f"--resume: the data {now['data']} held {saved['images in force']} images when the run "
                          f"in {config.out} was saved, and holds {now['images in force']} now; its steps per epoch, "
                          "and so its schedules and log, follow from them: restore the data or start a new --out")
    if changed == ["epochs"] and now["epochs"] > saved["epochs"]:
        raise ConfigError(f"--resume continues the run in {config.out} to its own {plural(saved['epochs'], 'epoch')} "
                          "(its schedules are laid out over them), so it cannot be extended; "
                          "train longer in a new --out with more --epochs")
    if changed:
        flags = "; ".join(_option_difference(k, saved.get(k), now[k]) for k in changed)
        raise ConfigError(f"--resume: options differ from the run in {config.out} ({flags}); "
                          "give the run's own values (its config.json; `vitprobe train --resume "
                          "--out DIR` reads them) or start a new --out")


@contextlib.contextmanager
def _deterministic(device: torch.device) -> Iterator[None]:
    """Deterministic kernels on CPU for the duration of a run (restored afterwards)."""
    before = torch.are_deterministic_algorithms_enabled()
    before_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(device.type == "cpu" or before, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before, warn_only=before_warn_only)


def dataset_label(dataset: Any) -> str:
    """What a run records as its data when given a Dataset (checked again on --resume like any
    spec): a vitprobe dataset's spec, with ``[split S]`` where the spec does not name its split,
    else ``custom:<class name>[<number of items>]``."""
    from vitprobe.data.user_data import ImagePairs

    if isinstance(dataset, ImagePairs):
        dataset = dataset.pairs
    spec, split = getattr(dataset, "spec", None), getattr(dataset, "split", None)
    if not isinstance(spec, str) or not spec:
        return f"custom:{type(dataset).__name__}[{len(dataset)}]"
    return spec if not split or spec.endswith(f":{split}") else f"{spec} [split {split}]"


def _folder_spec(spec: str) -> DataSpec | None:
    """``spec`` parsed where it names a folder (``folder:``, ``voc:``), else None."""
    try:
        parsed = parse_spec(spec)
    except DataError:
        return None
    return parsed if parsed.path is not None else None


def _moved(before: str, after: str) -> bool:
    """Whether two data specs name a folder of one kind (and split) at two paths: the same data
    moved, or seen from another machine."""
    a, b = _folder_spec(before), _folder_spec(after)
    return a is not None and b is not None and (a.kind, a.split) == (b.kind, b.split) and a.path != b.path


def _recorded_from_a_dataset(data: str) -> bool:
    """Whether ``data`` is what :func:`dataset_label` records for a Dataset that is no spec
    (``custom:...``) or whose spec leaves out its split (``... [split S]``)."""
    return data.startswith("custom:") or (data.endswith("]") and " [split " in data)


def _steps_per_epoch(images: int, data: str, global_batch: int) -> int:
    """Whole global batches in one epoch; ConfigError when not even one fits."""
    if images < global_batch:
        raise ConfigError(f"dataset {data!r} has {images} images, fewer than one global batch of "
                          f"{global_batch}; lower the batch size (--batch-size, or batch_size in a training "
                          "config)")
    return images // global_batch


def _report_complete(out: Path, what: str, is_main: bool) -> None:
    """Say (on the main process) that the run in ``out`` has nothing left to do, and ``what`` shows it."""
    if is_main:
        print(f"{out}: the run is complete ({what}); nothing to do")


def _finished_without_its_pair(out: Path) -> bool:
    """Whether ``out`` holds the final encoder and no part of a checkpoint pair: a finished run
    whose resume files were deleted (they serve only --resume, which has nothing left to do)."""
    return (out / ckpt.FINAL_FILE).is_file() and not ckpt.has_checkpoint(out) \
        and not (out / ckpt.ENCODER_FILE).exists()


def check_training_data(config: TrainConfig) -> None:
    """Raise the one-line error that training ``config`` in one process on its data would meet
    (a bad data spec, or fewer images than one batch), without building or training anything."""
    from vitprobe.data import resolve_dataset

    dataset = resolve_dataset(config.data, resolve_arch(config, registered=False).img_size, IMAGENET_MEAN,
                              IMAGENET_STD)  # the image size: the same in every objective's build
    _steps_per_epoch(len(dataset), config.data, config.batch_size)


def train(config: TrainConfig | Mapping[str, Any], *, resume: bool = False, dataset: Dataset | None = None,
          objective_factory: ObjectiveFactory | None = None, progress: bool = True) -> Path:
    """Train ``config`` (a TrainConfig or a dict of its fields) and return
    ``<out>/final.safetensors`` (loadable by load_model); with ``resume``, a dict may give only
    ``out`` (and what it changes, such as ``device``): the rest comes from the run's config.json;
    ``progress=False`` hides the progress bar and the one-line plan before it (log.csv and
    warnings are unchanged).

    ``dataset`` ((image, label) pairs or items with an ``"image"``, normalised with ImageNet's mean and std, as
    vitprobe's datasets deliver it and the views assume) replaces ``config.data`` (the run
    records ``dataset_label(dataset)`` as its data), and
    ``objective_factory(encoder, arch, **hparams)`` replaces the registry, for training on
    in-memory data or with an objective of one's own. The caller's random generators
    (Python, NumPy, torch), gradient mode, determinism setting and process group are left as
    they were.
    """
    if isinstance(config, Mapping):  # with resume, the options not given are the run's own
        config = TrainConfig.from_overrides(resumed_options(dict(config)) if resume else dict(config))
    if not isinstance(config, TrainConfig):
        raise ConfigError(f"train takes a TrainConfig (or a dict of its fields), got "
                          f"{type(config).__name__}; e.g. train(TrainConfig(method='mae'))")
    if dataset is not None:
        from vitprobe.data.items import check_image_of
        from vitprobe.data.user_data import as_items, dataset_name

        dataset, first = as_items(dataset)  # (image, label) pairs as item dicts
        if first is None:
            raise ConfigError(f"dataset must be a sized Dataset whose items are (image, label) pairs or dicts "
                              f"with an 'image', got {type(dataset).__name__}")
        check_image_of(first, dataset_name(dataset))
        label = dataset_label(dataset)
        if config.data not in (TrainConfig.data, label):
            warn_user(f"train: data {config.data!r} is not read: the dataset given replaces it (the run records "
                      f"it as {label!r}); leave data out where a dataset is given")
        config = dataclasses.replace(config, data=label)
    env = distributed.setup(config.device)
    lock = RunLock()
    try:
        # The caller's generators, gradient mode and determinism setting come back as they were.
        with _deterministic(env.device), seeded(config.seed), torch.inference_mode(False), \
                torch.enable_grad():
            return _run(config, env, resume, dataset, objective_factory, progress, lock)
    finally:
        lock.release()
        distributed.teardown(env)


def _check_new_run_folder(out: Path) -> None:
    """Refuse to start a new run in ``out`` where it holds a run, an analysis, files a run does
    not write, or a ``log.csv`` that is not a training log, or where another process is
    training (its lock held); only reads."""
    holder = lock_holder(out)
    if holder is not None:
        raise busy_error(out, holder)
    if ckpt.has_checkpoint(out) or (out / ckpt.FINAL_FILE).exists():
        raise OutputExistsError(f"{out} already holds a training run; pass --resume to continue "
                                f"it or choose another --out (Python: resume=True, or another out)")
    if is_analysis_output(out):
        raise OutputExistsError(f"{out} holds an analysis (run.json or runs.json), which a training run "
                                "would mix with; choose another --out")
    others = sorted(p.name for p in user_entries(out) if p.name not in RUN_ENTRIES) if out.is_dir() else []
    if others:
        raise OutputExistsError(f"{out} holds {abbreviate(others, 3)}, which a training run would mix "
                                "with; choose an empty or new --out")
    check_log_replaceable(out / LOG_FILE, "a new run")


def _build_objective(config: TrainConfig, arch: ArchSpec, env: distributed.DistEnv,
                     objective_factory: ObjectiveFactory | None) -> Objective:
    """The objective around a fresh encoder (seeded by ``config.seed``), with the student's drop
    path set once the EMA copies exist (so they never drop), on ``env``'s device in train mode,
    its BatchNorms synchronised across GPUs. A custom ``objective_factory`` gets exactly the
    given hparams; the registry's objective gets them resolved against its defaults."""
    if objective_factory is not None:
        hparams = dict(config.hparams, **({"lam": config.lam} if config.method == "hybrid" else {}))
    else:
        from vitprobe.train.objectives import get_objective

        hparams = config.objective_hparams()

        def objective_factory(encoder: nn.Module, arch: ArchSpec, **hp: Any) -> Objective:
            return get_objective(config.method, encoder, arch, **hp)
    torch.manual_seed(config.seed)
    objective = objective_factory(build_model(arch), arch, **hparams)
    set_drop_path(objective.encoder, objective.stochastic_depth())
    objective = objective.to(env.device).train()
    return sync_batchnorm(objective, env.device, env.world_size)


@dataclasses.dataclass
class _Start:
    """Where a run starts: its first epoch, the checkpoint a divergence falls back to, the
    collapse warnings said so far, and whether nothing is left to run."""
    epoch: int = 0
    last_checkpoint: Path | None = None
    warned: list[str] = dataclasses.field(default_factory=list)
    complete: bool = False


def _restore(out: Path, config: TrainConfig, env: distributed.DistEnv, epochs: int, in_force: dict[str, Any],
             given_dataset: bool, objective: Objective, optimizer: torch.optim.Optimizer,
             scaler: torch.amp.GradScaler) -> _Start:
    """Check the saved run in ``out`` against ``config`` and load its objective, optimiser, scaler
    and generators; a finished run (on any process count, or whose checkpoint pair was deleted)
    is only checked and reported complete."""
    if _finished_without_its_pair(out):
        _report_complete(out, f"{ckpt.FINAL_FILE}; the checkpoint pair that --resume reads was deleted",
                         env.is_main)
        return _Start(complete=True)
    state = ckpt.load_train_state(out)
    complete = state["epoch"] >= epochs and (out / ckpt.FINAL_FILE).is_file()
    if complete and state["world_size"] != env.world_size:  # nothing left to run, on any process count
        _check_resume(config, state, state["world_size"], env.device,  # the peak lr follows the process count
                      {k: v for k, v in in_force.items() if k != "lr"}, given_dataset=given_dataset)
        _report_complete(out, f"{state['epoch']} of {epochs} epochs", env.is_main)
        return _Start(complete=True)
    _check_resume(config, state, env.world_size, env.device, in_force, given_dataset=given_dataset)
    try:
        objective.load_state_dict(state["objective"])
        optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError, KeyError) as err:  # saved by another objective version
        raise CheckpointError(f"{out}: the saved train state does not fit this version's "
                              f"{config.method} objective ({brief_reason(err)}); start a new "
                              "--out") from None
    scaler.load_state_dict(state["scaler"])
    ckpt.restore_rng(state["rng"])
    if complete:
        _report_complete(out, f"{state['epoch']} of {epochs} epochs", env.is_main)
    return _Start(epoch=state["epoch"], last_checkpoint=out / ckpt.ENCODER_FILE,
                  warned=list(state.get("warnings", [])),  # absent from states saved before it was kept
                  complete=complete)


def _start_folder(out: Path, config: TrainConfig, lock: RunLock, plan: str | None) -> None:
    """Create and lock ``out`` (if new), write its config.json, and print ``plan`` if given."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputExistsError(f"{out}: cannot create the output folder ({brief_reason(err)}); "
                                "choose another --out") from None
    lock.acquire(out)  # a new folder: locked before the first file is written
    write_atomically(out / "config.json",
                     lambda tmp: tmp.write_bytes(json.dumps(config.resolved(), sort_keys=True).encode()),
                     durable=True)
    if plan is not None:  # what will run, once nothing stands in its way
        print(plan, file=sys.stderr)


def _optimiser_step(loss: torch.Tensor, objective: Objective, optimizer: torch.optim.Optimizer,
                    scaler: torch.amp.GradScaler, trainable: list[nn.Parameter], clip_grad: float,
                    info: StepInfo) -> None:
    """Backpropagate ``loss`` (scaled for fp16), clip the gradients of ``trainable`` to
    ``clip_grad`` (per tensor or by their global norm, as the objective says; none at 0), let the
    objective act on them, and step the optimiser."""
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if clip_grad:
        scaler.unscale_(optimizer)
        if objective.per_tensor_clip:
            clip_per_tensor(trainable, clip_grad)
        else:
            nn.utils.clip_grad_norm_(trainable, clip_grad)
    objective.after_backward(info)
    scaler.step(optimizer)
    scaler.update()


def _run(config: TrainConfig, env: distributed.DistEnv, resume: bool, dataset: Dataset | None,
         objective_factory: ObjectiveFactory | None, progress: bool, lock: RunLock) -> Path:
    given_dataset = dataset is not None
    out = check_output_folder(config.out)
    if not resume:
        _check_new_run_folder(out)
    else:
        check_log_replaceable(out / LOG_FILE, "resuming")
    arch = resolve_arch(config, registered=objective_factory is None)
    dtype = amp_dtype(config.amp, env.device)
    revisions = config.objective_revisions() if objective_factory is None else {}
    objective = _build_objective(config, arch, env, objective_factory)
    optim = resolve_optim(config, objective.hparams)
    if dataset is None:
        from vitprobe.data import resolve_dataset

        if resume and _recorded_from_a_dataset(config.data):
            raise ConfigError(f"--resume: the run in {out} trained on a dataset given to train() ({config.data}), "
                              "which no spec names; pass the same one again: train(..., resume=True, dataset=...)")
        try:
            dataset = resolve_dataset(config.data, arch.img_size, IMAGENET_MEAN, IMAGENET_STD)
        except DataError as err:
            if resume and _folder_spec(config.data) is not None:  # the folder the run read is gone
                raise DataError(f"--resume: {err}; if the run's data moved, give its new place as --data "
                                "(Python: data=), of the same kind") from None
            raise
    images = len(dataset)  # type: ignore[arg-type]
    schedule = _schedule(config, optim, images, env.world_size, bool(objective.momentum_pairs()))
    if env.is_main and not resume:
        _warn_left_out(schedule, images, config.data)
    groups = param_groups(objective)
    trainable = [p for group in groups for p in group["params"]]
    optimizer = adamw(groups, schedule.peak_lr, optim["betas"], env.device)
    scaler = torch.amp.GradScaler(env.device.type, enabled=dtype == torch.float16)

    in_force = {"hparams": hparams_in_force(objective.hparams, optim),
                "lr": schedule.peak_lr, "revisions": revisions,
                "drop_path": objective.stochastic_depth(),  # the rate applied (the hybrid's hparam is None: mixed)
                "images": images}  # a folder that changed changes the steps per epoch
    # The checks above only read; from here the folder is changed.
    distributed.on_rank_zero(lambda: lock.acquire(out) if out.is_dir() else None)
    start = _Start()
    if resume:
        start = _restore(out, config, env, schedule.epochs, in_force, given_dataset, objective, optimizer, scaler)
        if start.complete:
            return out / ckpt.FINAL_FILE
    plan = run_plan(config, arch, schedule) if progress and not resume else None
    distributed.on_rank_zero(lambda: _start_folder(out, config, lock, plan))

    model: nn.Module = objective
    if env.world_size > 1:
        model = nn.parallel.DistributedDataParallel(
            objective, device_ids=[env.device.index] if env.device.type == "cuda" else None,
            find_unused_parameters=objective.leaves_parameters_unused())
    views = ViewsDataset(dataset, objective.views, config.seed)
    K = objective.collapse_dim
    steps, total, warned = schedule.steps_per_epoch, schedule.total, start.warned
    monitor = Monitor(out, env.is_main, total, start.epoch * steps, config.log_every,
                      lambda means: collapse_warnings(means, K, objective.hparams.get("momentum")), progress,
                      said=warned)

    def meta(epoch: int) -> dict[str, Any]:
        return {"objective": config.method, "objective_revision": objective.revision,
                "config": config.resolved(), "in_force": in_force, "epoch": epoch,
                "step": epoch * steps, "warnings": warned, "world_size": env.world_size}

    last_ckpt = start.last_checkpoint
    retain_freed_memory()  # each step frees its activations; the next one reuses them
    try:
        for epoch in range(start.epoch, schedule.epochs):
            loader = DataLoader(
                views, batch_size=config.batch_size, num_workers=config.num_workers,
                sampler=EpochShard(images, config.batch_size, env.rank, env.world_size, config.seed, epoch),
                generator=torch.Generator().manual_seed(derive_seed(config.seed, epoch)),
                pin_memory=env.device.type == "cuda")
            for i, batch in enumerate(distributed.shard_batches(loader)):
                t = epoch * steps + i
                info = StepInfo(epoch=epoch, step=t, steps_per_epoch=steps, total_steps=total, progress=t / total)
                lr, wd = float(schedule.lr[t]), float(schedule.weight_decay[t])
                for group in optimizer.param_groups:
                    group["lr"] = lr
                    group["weight_decay"] = wd if group["decay"] else 0.0
                torch.manual_seed(derive_seed(config.seed, _STEP, t, env.rank))
                with torch.autocast(env.device.type, dtype=dtype or torch.float32,
                                    enabled=dtype is not None):
                    loss, metrics = model(distributed.to_device(batch, env.device), info)
                loss_value, metrics = distributed.global_means(loss, metrics, env)
                check_finite(loss_value, epoch, t, last_ckpt)
                _optimiser_step(loss, objective, optimizer, scaler, trainable, optim["clip_grad"], info)
                momentum = float(schedule.momentum[t]) if schedule.momentum is not None else None
                if momentum is not None:
                    objective.update_momentum(momentum)
                monitor.step(epoch, t, loss_value, lr, wd, momentum, metrics)
            warned.extend(f"epoch {epoch}: {text}" for text in monitor.end_epoch(epoch))
            if (epoch + 1) % config.save_every == 0 or epoch + 1 == schedule.epochs:
                last_ckpt = distributed.on_rank_zero(lambda: ckpt.save_checkpoint(
                    out, objective.export_encoder(), arch, meta(epoch + 1),
                    {"objective": objective.state_dict(), "optimizer": optimizer.state_dict(),
                     "scaler": scaler.state_dict(), "epoch": epoch + 1,
                     "step": (epoch + 1) * steps, "rng": ckpt.capture_rng(),
                     "config": config.resolved(), "in_force": in_force, "warnings": warned,
                     "world_size": env.world_size}))
    finally:
        monitor.close()
    return distributed.on_rank_zero(lambda: ckpt.save_final(out, objective.export_encoder(), arch,
                                                            meta(schedule.epochs)))
