"""``vitprobe inspect``: what a checkpoint holds, without building the model."""

from __future__ import annotations

import argparse
import json
from typing import Any

from vitprobe.errors import abbreviate, plural


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``inspect`` sub-command."""
    from vitprobe.models.formats import key_choices

    p = subparsers.add_parser(
        "inspect", help="show a checkpoint's format, architecture and load report",
        description="Detect the checkpoint format, infer the architecture from the weights and "
                    "metadata, and report which keys are dropped and whether a strict load "
                    "succeeds (exit status 1 if it would not). Nothing in the file is executed.")
    p.add_argument("--checkpoint", required=True, metavar="PATH", help="a .pth/.pt/.pth.tar or .safetensors file")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--format", default=None, help="force a format (see `vitprobe models`)")
    p.add_argument("--key", default=None,
                   help=f"which weights of a training checkpoint ({key_choices()}; default first)")
    p.add_argument("--num-heads", default=None, metavar="N",
                   help="attention heads, where the weights cannot tell (auto: the default rule)")
    p.set_defaults(func=run)


def _training_lines(training: Any) -> list[str]:
    """``trained ...`` lines of vitprobe's own checkpoint: its :func:`training_summary` and each
    collapse its training warned of."""
    from vitprobe.models.loading import training_summary

    if not isinstance(training, dict):
        return [f"trained      {json.dumps(training)}"]
    lines = [f"trained      {training_summary(training)} (--json shows the whole config)"]
    lines += [f"  warned     {w}" for w in training.get("warnings") or []]
    return lines


def describe(info: dict[str, Any]) -> str:
    """Readable multi-line text of an ``inspect_checkpoint`` result."""
    arch, report = info["arch"], info["report"]
    key = f" (key {report['key']})" if report.get("key") else ""
    lines = [
        f"checkpoint   {info['path']}",
        f"sha256       {info['sha256']}",
        f"format       {info['format']}{key}",
        f"architecture {info['summary']}  (heads: {report['num_heads_from']})",
        f"  patch size {arch['patch_size']}, width {arch['embed_dim']}, depth {arch['depth']}, "
        f"heads {arch['num_heads']}, image size {arch['img_size']}, prefix tokens "
        f"{info['num_prefix_tokens']} (registers {arch['reg_tokens']})",
        f"  layer scale {'yes' if arch['layer_scale'] is not None else 'no'}, relative position "
        f"bias {arch['rel_pos_bias']}, absolute position embedding "
        f"{'yes' if arch['abs_pos_emb'] else 'no'}, qkv bias {'yes' if arch['qkv_bias'] else 'no'}, "
        f"mlp ratio {arch['mlp_ratio']:g}, classifier outputs {arch['num_classes']}",
        f"tensors      {report['tensors']} read",
    ]
    for reason, keys in report["dropped"].items():
        lines.append(f"dropped      {plural(len(keys), 'key')}: {reason} ({abbreviate(keys, 3)})")
    if report.get("ignored_entries"):
        lines.append(f"also held    {abbreviate(report['ignored_entries'], 12)} (entries beside the weights, "
                     "not loaded; hints such as args or arch are read from them)")
    if "training" in report:
        lines += _training_lines(report["training"])
    lines.append("strict load  ok" if report["fits"] else f"strict load  FAILS: {report['fit_error']}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Print what the file holds and how it fits; exit 1 when it does not fit the architecture."""
    from vitprobe.commands.analyze import head_count
    from vitprobe.models import inspect_checkpoint

    heads = None if args.num_heads in (None, "auto") else head_count(args.num_heads)
    info = inspect_checkpoint(args.checkpoint, format=args.format, key=args.key, num_heads=heads)
    print(json.dumps(info, indent=2, sort_keys=True) if args.json else describe(info))
    return 0 if info["report"]["fits"] else 1
