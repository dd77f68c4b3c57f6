"""``vitprobe train``: pre-train a ViT with a CL, MIM or hybrid objective (torchrun-ready)."""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vitprobe.commands._key_values import parse_key_values
from vitprobe.commands._data_help import SPEC_HELP
from vitprobe.errors import ConfigError

if TYPE_CHECKING:
    from vitprobe.train import TrainConfig


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` sub-command."""
    p = subparsers.add_parser(
        "train", help="pre-train a ViT with DINO, MoCo v3, MAE, SimMIM, GMML or a CL+MIM hybrid",
        description="Pre-train a ViT. Several GPUs: torchrun --nproc_per_node K -m vitprobe "
                    "train ... (--batch-size is per process). Options come from the command line, "
                    "from --config FILE, or (--resume) from the run's config.json. Writes <out>/checkpoint.safetensors "
                    "(+ .train_state.pt) every --save-every epochs, <out>/final.safetensors and "
                    "<out>/log.csv.")
    p.add_argument("--config", default=None, metavar="FILE",
                   help="a YAML file of training options (TrainConfig's fields, e.g. analyses/train/"
                        "mae_tiny_synthetic.yaml); options given here override it")
    p.add_argument("--method", default=None, help="dino, mocov3, mae, simmim, gmml or hybrid")
    p.add_argument("--lambda", dest="lam", type=float, default=None, metavar="LAMBDA",
                   help="hybrid only: L = (1 - lambda) L_MIM + lambda L_CL")
    p.add_argument("--arch", default=None, metavar="NAME", help="a timm ViT name, e.g. vit_small_patch16_224")
    p.add_argument("--preset", default=None, help="tiny (default), small, vit_s16 or vit_b16")
    p.add_argument("--data", default=None, metavar="SPEC", help=SPEC_HELP)
    p.add_argument("--epochs", type=int, default=None, metavar="N",
                   help="default: 10 (tiny), 30 (small), the published length (full presets)")
    p.add_argument("--batch-size", type=int, default=None, metavar="N", help="images per process and step (default 64)")
    p.add_argument("--lr", type=float, default=None, help="peak lr; default base_lr * batch / 256")
    p.add_argument("--out", default=None, metavar="DIR", help="run folder (default runs/train)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out with the options its config.json records "
                        "(--device, --num-workers, --save-every and --log-every may change)")
    p.add_argument("--seed", type=int, default=None, metavar="S",
                   help="seeds the weights, the views and the data order (default 0)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="objective hyper-parameter, e.g. --set clip_grad=3.0 (repeatable)")
    p.add_argument("--device", default=None, help="auto (default: cuda when available), cpu, cuda or cuda:N")
    p.add_argument("--num-workers", type=int, default=None, metavar="N",
                   help="data-loading processes (default 0: in the main process)")
    p.add_argument("--amp", default=None, metavar="MODE", help="auto (default: bf16/fp16 on CUDA, fp32 on CPU), "
                                                               "bf16, fp16 or fp32")
    p.add_argument("--save-every", type=int, default=None, metavar="N", help="checkpoint every N epochs (default 1)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar and the one-line plan before it (where stderr is a file, "
                        "as in a batch job's log, the bar is redrawn once a minute: no need to hide it)")
    p.add_argument("--log-every", type=int, default=None, metavar="N", help="log.csv row every N steps (default 1)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build the TrainConfig (one-line ConfigError on bad options), then train."""
    from vitprobe.train import loss_summary, train

    config = training_config(args)
    final = train(config, resume=args.resume, progress=not args.no_progress)
    if int(os.environ.get("RANK", "0")) == 0:
        print(loss_summary(final.parent, config))
        print(final)
    return 0


def training_config(args: argparse.Namespace) -> "TrainConfig":
    """The TrainConfig from, in rising precedence: ``--config FILE`` (else, with --resume, the
    run's own ``config.json``), then the options given on the command line; ``--set`` values
    are merged key by key into the file's ``hparams``. An error in the file's options names it."""
    from vitprobe.train import TrainConfig
    from vitprobe.train.config import layered_options, read_train_config, resumed_base

    given: dict[str, Any] = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
                             if getattr(args, f.name, None) is not None}  # options named as fields
    hparams = parse_key_values(args.set, "--set", "mask_ratio=0.75")
    base: dict[str, Any] = {}
    source: str | None = None  # the file that gave the base options, named in their errors
    if args.config is not None:
        source, base = args.config, read_train_config(Path(args.config))
        try:
            TrainConfig.check_names(base, method=given.get("method"))
        except ConfigError as err:
            raise ConfigError(f"{source}: {err}") from None
    elif args.resume:
        source = str(Path(given.get("out", TrainConfig.out)) / "config.json")
        base = resumed_base(given)
    options = layered_options(base, {**given, **({"hparams": hparams} if hparams else {})})
    for name in ("method", "data"):
        if name not in options:
            raise ConfigError(f"give --{name}, or --config FILE with a {name}: key, or --resume "
                              "with the --out of a run to continue")
    try:
        return _checked_config(options)
    except ConfigError as err:
        if source is None:
            raise
        raise ConfigError(f"{_culprit(source, base, given, err)}: {err}") from None


def _checked_config(options: dict[str, Any]) -> "TrainConfig":
    """The TrainConfig of ``options``, its objective's hyper-parameters checked too (here, where
    an error can still name the file that gave them, not once training starts)."""
    from vitprobe.train import TrainConfig
    from vitprobe.train.objectives import objective_class

    config = TrainConfig.from_overrides(options)
    objective_class(config.method).resolve_hparams(config.hparams)
    return config


def _culprit(config: str, base: dict[str, Any], given: dict[str, Any], err: ConfigError) -> str:
    """``config`` where the file with only the method and data it may leave to the command
    line fails in the same way, else the command line's options (over ``config``): the file
    alone is sound, so the fault is in what the command line adds."""
    alone = {**{k: given[k] for k in ("method", "data") if k in given}, **base}
    try:
        _checked_config(alone)
    except ConfigError as own:
        if str(own) == str(err):
            return config
    return f"the command line's options (over {config})"
