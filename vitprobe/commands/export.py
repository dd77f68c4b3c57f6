"""``vitprobe export``: a vitprobe checkpoint's encoder in an official training-code layout."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``export`` sub-command."""
    from vitprobe.models.export import EXPORTERS

    p = subparsers.add_parser(
        "export", help="write a vitprobe checkpoint's encoder as a DINO/MAE/MoCo v3/SimMIM file",
        description="Write the encoder of a vitprobe .safetensors checkpoint nested as the "
                    "official training code saves it, so that their loaders read it. ViT "
                    "encoders export to dino, mae, mocov3; BEiT-layout encoders with a shared "
                    "relative position bias to simmim (what `train --method simmim` trains, as "
                    "SimMIM's code does; with --set encoder_init=timm it trains a ViT, which "
                    "exports to dino, mae or mocov3).")
    p.add_argument("--checkpoint", required=True, metavar="PATH", help="vitprobe .safetensors checkpoint")
    p.add_argument("--format", required=True, choices=sorted(EXPORTERS), help="target layout")
    p.add_argument("--out", required=True, metavar="PATH", help="output .pth file")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the checkpoint in the chosen official layout; note a head count the layout loses."""
    from vitprobe.models import inspect_checkpoint
    from vitprobe.models.export import export_checkpoint

    out = export_checkpoint(args.checkpoint, args.format, args.out, overwrite=args.overwrite)
    source = inspect_checkpoint(args.checkpoint)["arch"]["num_heads"]
    written = inspect_checkpoint(out)["arch"]["num_heads"]
    print(f"wrote {out} ({args.format} layout)")
    if written != source:
        print(f"note: the {args.format} layout cannot say this encoder has {source} heads; "
              f"load it with --num-heads {source}")
    return 0
