"""``vitprobe train``: pre-train a ViT with a CL, MIM or hybrid objective (torchrun-ready)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from vitprobe.commands._key_values import parse_key_values
from vitprobe.commands._data_help import SPEC_HELP
from vitprobe.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` sub-command."""
    p = subparsers.add_parser(
        "train", help="pre-train a ViT with DINO, MoCo v3, MAE, SimMIM, GMML or a CL+MIM hybrid",
        description="Pre-train a ViT. Several GPUs: torchrun --nproc_per_node K -m vitprobe "
                    "train ... (--batch-size is per process). Writes <out>/checkpoint.safetensors "
                    "(+ .train_state.pt) every --save-every epochs, <out>/final.safetensors and "
                    "<out>/log.csv.")
    p.add_argument("--method", required=True, help="dino, mocov3, mae, simmim, gmml or hybrid")
    p.add_argument("--lambda", dest="lam", type=float, default=None, metavar="LAMBDA",
                   help="hybrid only: L = (1 - lambda) L_MIM + lambda L_CL")
    p.add_argument("--arch", default=None, metavar="NAME", help="a timm ViT name, e.g. vit_small_patch16_224")
    p.add_argument("--preset", default=None, help="tiny (default), small, vit_s16 or vit_b16")
    p.add_argument("--data", required=True, metavar="SPEC", help=SPEC_HELP)
    p.add_argument("--epochs", type=int, default=None, metavar="N",
                   help="default: 10 (tiny), 30 (small), the published length (full presets)")
    p.add_argument("--batch-size", type=int, default=64, metavar="N", help="images per process and step (default 64)")
    p.add_argument("--lr", type=float, default=None, help="peak lr; default base_lr * batch / 256")
    p.add_argument("--out", default="runs/train", metavar="DIR", help="run folder (default runs/train)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="seeds the weights, the views and the data order (default 0)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="objective hyper-parameter, e.g. --set clip_grad=3.0 (repeatable)")
    p.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda or cuda:N")
    p.add_argument("--num-workers", type=int, default=0, metavar="N", help="data-loading processes (default 0: in the main process)")
    p.add_argument("--amp", default="auto", metavar="MODE", help="auto (bf16/fp16 on CUDA, fp32 on CPU), bf16, "
                                                 "fp16 or fp32")
    p.add_argument("--save-every", type=int, default=1, metavar="N", help="checkpoint every N epochs (default 1)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--log-every", type=int, default=1, metavar="N", help="log.csv row every N steps (default 1)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build the TrainConfig (one-line ConfigError on bad options), then train."""
    from vitprobe.train import TrainConfig, train

    config = TrainConfig(
        method=args.method, lam=args.lam, arch=args.arch, preset=args.preset, data=args.data,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, out=args.out,
        seed=args.seed, hparams=parse_key_values(args.set, "--set", "mask_ratio=0.75"), device=args.device,
        num_workers=args.num_workers, amp=args.amp, save_every=args.save_every,
        log_every=args.log_every)
    final = train(config, resume=args.resume, progress=not args.no_progress)
    if int(os.environ.get("RANK", "0")) == 0:
        print(_loss_summary(final.parent / "log.csv", config.total_epochs()))
        print(final)
    return 0


def _loss_summary(log: Path, epochs: int) -> str:
    """``loss by epoch (mean of logged steps): first -> last over E epochs; log: PATH``, saying
    so when fewer than the run's ``epochs`` had a logged step (a large --log-every)."""
    import pandas as pd

    by_epoch = pd.read_csv(log).groupby("epoch")["loss"].mean()
    if by_epoch.empty:
        return f"no step was logged; log: {log}"
    span = f"{len(by_epoch)} epoch{'s' if len(by_epoch) != 1 else ''}"
    if len(by_epoch) < epochs:
        span = f"the {span} of {epochs} with a logged step (a smaller --log-every logs more)"
    return (f"loss by epoch (mean of logged steps): {by_epoch.iloc[0]:.4g} -> {by_epoch.iloc[-1]:.4g} "
            f"over {span}; log: {log}")
