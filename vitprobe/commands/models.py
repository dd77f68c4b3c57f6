"""``vitprobe models``: the checkpoint formats vitprobe reads and the architecture families."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``models`` sub-command."""
    p = subparsers.add_parser("models", help="list supported checkpoint formats and architectures",
                              description="Checkpoint formats (detected automatically, in this "
                                          "order), what each drops, and the ViT families.")
    p.add_argument("--json", action="store_true", help="print the listing as JSON")
    p.set_defaults(func=run)


def listing() -> dict[str, Any]:
    """Formats (summary, --key choices, drops) and architecture facts as plain data."""
    from vitprobe.models.formats import BUFFER_DROPS, formats
    from vitprobe.models.formats.dino import DINO_ARCHS
    from vitprobe.models.formats.mocov3 import MOCO_ARCHS
    from vitprobe.models.inference import PUBLISHED_HEADS

    return {
        "formats": {name: {"summary": f.summary, "keys": list(f.keys), "drops": dict(f.drops)}
                    for name, f in formats().items()},
        "dropped_in_every_format": dict(BUFFER_DROPS),
        "families": {"vit": "timm VisionTransformer (DINO, MoCo v3, MAE, timm)",
                     "beit": "timm Beit: relative position bias, gamma layer scale (BEiT, SimMIM)"},
        "heads_by_width": {str(w): h for w, h in PUBLISHED_HEADS.items()},
        "heads_otherwise": "width // 64 (at least 1), unless --num-heads is given",
        "dino_archs": {n: arch._asdict() for n, arch in DINO_ARCHS.items()},
        "mocov3_archs": {n: arch._asdict() for n, arch in MOCO_ARCHS.items()},
    }


def run(args: argparse.Namespace) -> int:
    """Print the checkpoint formats and architectures (as JSON with --json)."""
    info = listing()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print("checkpoint formats (auto-detected in this order; force one with --format):")
    for name, f in info["formats"].items():
        keys = f"  --key {'|'.join(f['keys'])} (default {f['keys'][0]})" if f["keys"] else ""
        print(f"  {name:9s} {f['summary']}{keys}")
        for pattern, reason in f["drops"].items():
            print(f"  {'':9s}   drops {pattern}: {reason}")
    for pattern, reason in info["dropped_in_every_format"].items():
        print(f"  every format drops {pattern}: {reason}")
    print("architecture families:")
    for name, text in info["families"].items():
        print(f"  {name:9s} {text}")
    widths = ", ".join(f"{w}: {h}" for w, h in info["heads_by_width"].items())
    print(f"heads are not stored in weights; by width {widths}; otherwise {info['heads_otherwise']}")
    moco = ", ".join(f"{n} {a['heads']}" for n, a in info["mocov3_archs"].items())
    print(f"MoCo v3 names set heads: {moco}; vitprobe's own checkpoints store them exactly")
    return 0
