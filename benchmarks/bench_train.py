"""Speed of a training step of each objective against a plain forward + backward of the same
encoder on the same views, and whether augmentation in worker processes keeps the model fed.

Target: one step (objective forward with its heads, momentum encoder or teacher, backward,
AdamW step, momentum update) costs at most 1.5x ``encoder(view).mean().backward()`` over
every image view of the batch (the tensors the encoder sees; GMML's noise and the masks are
not images). Steps are interleaved with the plain passes; the median ratio is printed.

    OMP_NUM_THREADS=2 python benchmarks/bench_train.py --preset tiny --batch-size 32 --rounds 5 \
        [--heads scaled]
    OMP_NUM_THREADS=2 python benchmarks/bench_train.py --preset vit_s16 --batch-size 8 --rounds 3 \
        --loader-steps 0     # the papers' encoder and heads, on a CPU
    python benchmarks/bench_train.py --preset vit_b16 --batch-size 64 --device cuda --amp \
        --workers 12         # on a GPU, in bf16 as `vitprobe train` runs there
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, default_collate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import bench_parser, environment, interleaved_ratio, positive  # noqa: E402

from vitprobe.data import resolve_dataset  # noqa: E402
from vitprobe.data.base import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from vitprobe.distributed import to_device  # noqa: E402
from vitprobe.heap import retain_freed_memory  # noqa: E402
from vitprobe.models.architecture import build_model  # noqa: E402
from vitprobe.train.config import TrainConfig  # noqa: E402
from vitprobe.train.engine import EpochShard, ViewsDataset, adamw, param_groups  # noqa: E402
from vitprobe.train.objectives import StepInfo, get_objective, list_objectives  # noqa: E402
from vitprobe.train.objectives._vit import encode  # noqa: E402

TARGET = 1.5
NOT_IMAGES = ("noise",)  # float views that are not fed to the encoder (GMML's corruption)
# ``--heads scaled``: heads sized to a tiny/small encoder instead of the published ViT-B sizes
# (65536 DINO prototypes, 4096-wide MoCo projectors, an 8 x 512 MAE decoder), which dwarf it.
_CL_SCALED = dict(proj_hidden_dim=256, pred_hidden_dim=256, out_dim=64)
SCALED_HEADS = {
    "dino": dict(out_dim=1024, head_hidden_dim=256, head_bottleneck_dim=64),
    "mocov3": _CL_SCALED,
    "mae": dict(decoder_dim=64, decoder_depth=2, decoder_heads=4),
    "simmim": {},
    "gmml": dict(proj_hidden_dim=256, out_dim=64),
    "hybrid": dict(cl_hparams=_CL_SCALED),
}


def image_views(views: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """Every collated image view as a (n, 3, s, s) batch: float tensors ending in (3, s, s)."""
    out = []
    for key, value in views.items():
        if key.split(".")[-1] in NOT_IMAGES or not value.is_floating_point() or value.dim() < 4:
            continue
        if value.shape[-3] == 3 and value.numel():
            out.append(value.reshape(-1, *value.shape[-3:]))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser(__doc__)
    parser.add_argument("--preset", default="tiny", choices=("tiny", "small", "vit_s16", "vit_b16"),
                        help="encoder size, as vitprobe train --preset")
    parser.add_argument("--batch-size", type=positive, default=32, help="images per step")
    parser.add_argument("--rounds", type=positive, default=5, help="steps and plain passes each; the median ratio is printed")
    parser.add_argument("--objectives", nargs="*", default=list_objectives(), help="objectives to time")
    parser.add_argument("--heads", choices=("published", "scaled"), default="published",
                        help="objective heads at their published sizes or scaled to the preset")
    parser.add_argument("--workers", type=int, default=1,
                        help="data-loader workers for the fed-by-loader check")
    parser.add_argument("--loader-steps", type=int, default=12,
                        help="batches of the fed-by-loader check, the first (worker start-up) "
                             "not timed; 0 skips the check")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--amp", action="store_true",
                        help="autocast bfloat16 for both the step and the plain pass")
    args = parser.parse_args(argv)
    retain_freed_memory()  # as `vitprobe train` does before its first step
    names = args.objectives or list_objectives()
    device = torch.device(args.device)
    print(f"# bench_train: preset {args.preset}, batch {args.batch_size}, {args.rounds} rounds, "
          f"objectives {', '.join(names)}, heads {args.heads}, device {device}"
          f"{' AMP bf16' if args.amp else ''}")
    print(f"# {environment(device)}")

    def autocast() -> contextlib.AbstractContextManager:
        return (torch.autocast(device.type, dtype=torch.bfloat16) if args.amp
                else contextlib.nullcontext())

    worst = 0.0
    for name in names:
        lam = 0.5 if name == "hybrid" else None  # the hybrid's default mixture
        arch = TrainConfig(method=name, preset=args.preset, lam=lam).arch_spec()
        torch.manual_seed(0)
        hparams = SCALED_HEADS.get(name, {}) if args.heads == "scaled" else {}
        objective = get_objective(name, build_model(arch), arch, **hparams).to(device).train()
        dataset = resolve_dataset(f"synthetic:{args.batch_size * max(1, args.loader_steps)}", arch.img_size,
                                  IMAGENET_MEAN, IMAGENET_STD)
        views = ViewsDataset(dataset, objective.views, seed=0)
        sampler = EpochShard(len(dataset), args.batch_size, 0, 1, seed=0, epoch=0)
        keys = list(sampler)[:args.batch_size]
        started = time.perf_counter()
        batch = default_collate([views[key] for key in keys])
        augment_s = time.perf_counter() - started
        batch = to_device(batch, device)
        optimizer = adamw(param_groups(objective), 1e-4, (0.9, 0.999), device)
        info = StepInfo(epoch=0, step=0, steps_per_epoch=100, total_steps=100, progress=0.0)
        momentum = objective.hparams.get("momentum")

        def step(batch=batch) -> None:
            optimizer.zero_grad(set_to_none=True)
            with autocast():
                loss, _ = objective(to_device(batch, device), info)
            loss.backward()
            objective.after_backward(info)
            optimizer.step()
            if momentum is not None:
                objective.update_momentum(float(momentum))

        inputs = image_views(batch)

        def plain() -> None:
            objective.encoder.zero_grad(set_to_none=True)
            with autocast():
                total = sum(encode(objective.encoder, x).float().mean() for x in inputs)
            total.backward()

        step(), plain()  # warm-up
        ratio, step_s, _ = interleaved_ratio(step, plain, args.rounds)
        worst = max(worst, ratio)
        step_median = statistics.median(step_s)
        shapes = ", ".join("x".join(map(str, x.shape)) for x in inputs)
        print(f"{name:8s} RATIO step / plain forward+backward = {ratio:.2f}  "
              f"(step {step_median * 1e3:.0f} ms, views {shapes})")
        if args.loader_steps < 2:
            continue

        loader = DataLoader(views, batch_size=args.batch_size, num_workers=args.workers,
                            pin_memory=device.type == "cuda",
                            sampler=EpochShard(len(dataset), args.batch_size, 0, 1, 0, 0))
        batches = iter(loader)
        step(next(batches))  # worker start-up and first batch, not timed
        started = time.perf_counter()
        steps = 0
        for loaded in batches:
            step(loaded)
            steps += 1
        if device.type == "cuda":
            torch.cuda.synchronize()
        fed = (time.perf_counter() - started) / steps
        print(f"{'':8s} augmentation of one batch in-process / step = {augment_s / step_median:.2f}; "
              f"loader-fed step ({args.workers} worker(s), {steps} steps after the first) / "
              f"pre-collated step = {fed / step_median:.2f}")
    verdict = "meets" if worst <= TARGET else "MISSES"
    print(f"WORST step ratio = {worst:.2f} (target <= {TARGET}: {verdict})")
    return 0 if worst <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
