"""Process groups for ``torchrun`` (training and sharded analysis): rank, world size, device,
and the collectives the objectives use (all-gather with the local gradient, mean).

``torchrun --nproc_per_node K -m vitprobe train|analyze ...`` sets RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR and MASTER_PORT; one process without them is a world of one.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import torch
import torch.distributed as dist

from vitprobe.errors import ConfigError, VitprobeError, plural

T = TypeVar("T")


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits: ``rank`` of ``world_size`` processes, on ``device``."""

    rank: int
    world_size: int
    device: torch.device
    owns_group: bool = False  # setup() created the process group (and teardown() ends it)

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints, logs and the progress bar."""
        return self.rank == 0


@contextmanager
def own_shard() -> Iterator[None]:
    """Mark a VitprobeError raised inside (reading this rank's shard of the data) as this rank's
    own: the command line prints it on every rank that meets it, where an error of the shared
    options and files is printed by rank 0 alone."""
    try:
        yield
    except VitprobeError as err:
        err.own_shard = True  # type: ignore[attr-defined]
        raise


def shard_batches(loader: Iterable[Any]) -> Iterator[Any]:
    """The batches of ``loader``, an error in reading them marked as this rank's own."""
    with own_shard():
        yield from loader


def launcher(world_size: int) -> str:
    """The command that starts ``world_size`` vitprobe processes: ``vitprobe`` for one, else
    torchrun's, spread over nodes as this launch is (``LOCAL_WORLD_SIZE`` per node) where
    that divides ``world_size``, else on one node."""
    if world_size <= 1:
        return "vitprobe"
    per_node = int(os.environ.get("LOCAL_WORLD_SIZE", world_size))
    if per_node < 1 or world_size % per_node:
        per_node = world_size
    nodes = f"--nnodes {world_size // per_node} " if per_node < world_size else ""
    return f"torchrun {nodes}--nproc_per_node {per_node} -m vitprobe"


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) of the initialised process group; (0, 1) outside torch.distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def concat_all_gather(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` (B, ...) of every process along dim 0; gradient flows into the local part only."""
    if rank_and_world()[1] == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.detach().contiguous())
    parts[dist.get_rank()] = x
    return torch.cat(parts, dim=0)


def all_reduce_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over processes (no gradient); ``x`` itself when not distributed."""
    if rank_and_world()[1] == 1:
        return x
    y = x.detach().clone()
    dist.all_reduce(y)
    return y / dist.get_world_size()


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """'auto' is CUDA (one GPU per local rank) when available, else CPU; only CPU and CUDA
    devices are taken (the others: MPS, XPU, meta, ... are not supported)."""
    given = name
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise ConfigError(f"unknown --device {name!r} (Python: device={name!r}); use cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {name} (Python: device={name!r}): CUDA is not available here; use --device cpu "
                              "(Python: device='cpu')")
        count = torch.cuda.device_count()
        if device.index is None:
            if local_rank >= count:
                raise ConfigError(f"--device {given}: local process {local_rank} has no GPU of its own "
                                  f"({plural(count, 'GPU')} visible here); start at most {count} per "
                                  f"node (torchrun --nproc_per_node {count})")
            device = torch.device("cuda", local_rank)
        elif device.index >= count:
            choices = "cuda:0" if count == 1 else f"cuda:0 to cuda:{count - 1}"
            raise ConfigError(f"--device {name}: there is no GPU {device.index} here ({plural(count, 'GPU')} "
                              f"visible); use {choices}")
    return device


def to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor of a nested list, tuple or mapping to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def setup(device_name: str) -> DistEnv:
    """Join the process group that torchrun describes (nccl on CUDA, gloo on CPU)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name, local_rank)
    if world_size == 1:
        return DistEnv(rank=0, world_size=1, device=device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    owns_group = not dist.is_initialized()
    if owns_group:
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo",
                                init_method="env://")
    return DistEnv(rank=dist.get_rank(), world_size=dist.get_world_size(), device=device,
                   owns_group=owns_group)


def teardown(env: DistEnv) -> None:
    """End the process group that :func:`setup` created (one the caller made is left alone)."""
    if env.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def global_means(loss: torch.Tensor, metrics: Mapping[str, float], env: DistEnv) -> tuple[float, dict[str, float]]:
    """The loss and each metric averaged over all processes, in one all-reduce (float64; a NaN
    anywhere gives NaN everywhere). Every process passes the same metric names."""
    names = sorted(metrics)
    values = torch.tensor([0.0, *(float(metrics[name]) for name in names)], dtype=torch.float64,
                          device=loss.device)
    values[0] = loss.detach().reshape(())
    if env.world_size > 1:
        dist.all_reduce(values)
        values /= env.world_size
    means = values.tolist()
    return means[0], dict(zip(names, means[1:]))


def on_rank_zero(work: Callable[[], T]) -> T:
    """``work()`` run by rank 0 alone (writing files, taking a lock), its result handed to every
    rank, and so is its VitprobeError: every rank raises it (rank 0 alone prints it) instead of
    failing later in a collective that the stopped rank 0 never joins. Outside torch.distributed
    it is ``work()``."""
    rank, world = rank_and_world()
    if world == 1:
        return work()
    outcome: list[Any] = [None]
    if rank == 0:
        try:
            outcome[0] = (True, work())
        except VitprobeError as err:
            outcome[0] = (False, err)
    dist.broadcast_object_list(outcome, src=0)
    done, value = outcome[0]
    if not done:
        raise value
    return value
