"""Peak memory of an analysis pass against the number of images.

Target: peak RSS grows by at most 10% from 512 to 4096 images, the probe features aside
(they grow by exactly their pooled vectors: images x layers x width x 4 bytes). Each size
runs in its own subprocess (a fresh peak); the parent prints the ratio.

    OMP_NUM_THREADS=2 python benchmarks/bench_memory.py --sizes 512 4096

Batches are generated one at a time and streamed through capture + every streaming analyzer,
then every analyzer computes its result (k-NN scores its held-out split).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    analysed_pass,
    bench_parser,
    build_vit,
    environment,
    positive,
    streaming_analyzers,
    synthetic_batches,
)

TARGET = 1.10
# A small ViT so that 4096 images take minutes on two cores.
SMALL = dict(name="vit_tiny_patch16_224", img_size=64, patch_size=8, embed_dim=96, depth=4, num_heads=3)


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _current_rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def _row_bytes(analyzers) -> int:
    """Bytes held by row state (probe features, indices, labels, artifacts): ``rows/`` keys."""
    return sum(value.numel() * value.element_size() for analyzer in analyzers
               for key, value in analyzer.state_dict().items() if key.startswith("rows/"))


def child(images: int, batch_size: int) -> dict:
    """Stream ``images`` images through every streaming analyzer; return the peak RSS and
    the row-state bytes."""
    spec = dict(SMALL)
    model = build_vit(spec.pop("name"), spec.pop("img_size"), **spec)
    analyzers = streaming_analyzers(model)
    setup = _current_rss_bytes()
    for start in range(0, images, batch_size):
        # Generated one batch at a time, as a data loader hands them out.
        batch = synthetic_batches(min(batch_size, images - start), batch_size, SMALL["img_size"],
                                  seed=start)[0]
        batch["index"] = batch["index"] + start
        analysed_pass(model, analyzers, [batch])
    for analyzer in analyzers:
        analyzer.compute()
    return {"images": images, "peak_rss": _peak_rss_bytes(), "rows_bytes": _row_bytes(analyzers),
            "setup_rss": setup}


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser(__doc__)
    parser.add_argument("--sizes", type=positive, nargs=2, default=[512, 4096], metavar=("SMALL", "LARGE"),
                        help="image counts of the two passes, each in its own process")
    parser.add_argument("--batch-size", type=positive, default=64, help="images per forward")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        print(json.dumps(child(args.child, args.batch_size)))
        return 0

    print(f"# bench_memory: {SMALL}, batch {args.batch_size}, sizes {args.sizes}")
    print(f"# {environment()}")
    results = []
    for size in args.sizes:
        out = subprocess.run([sys.executable, __file__, "--child", str(size), "--batch-size",
                              str(args.batch_size)],
                             check=True, capture_output=True, text=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        r = results[-1]
        print(f"{size:6d} images: peak RSS {r['peak_rss'] / 2**20:8.1f} MiB, rows (probe features, "
              f"indices, labels, artifacts) {r['rows_bytes'] / 2**20:7.2f} MiB, RSS after imports and "
              f"model {r['setup_rss'] / 2**20:8.1f} MiB")
    small, large = results
    raw = large["peak_rss"] / small["peak_rss"]
    net = (large["peak_rss"] - large["rows_bytes"]) / (small["peak_rss"] - small["rows_bytes"])
    print(f"RATIO peak RSS {args.sizes[1]}/{args.sizes[0]} = {raw:.3f} (raw)")
    work = [r["peak_rss"] - r["setup_rss"] - r["rows_bytes"] for r in results]
    print(f"RATIO working memory (peak - after setup - rows) {args.sizes[1]}/{args.sizes[0]} = "
          f"{work[1] / work[0]:.3f} ({work[0] / 2**20:.1f} -> {work[1] / 2**20:.1f} MiB)")
    verdict = "meets" if net <= TARGET else "MISSES"
    print(f"RATIO peak RSS minus rows {args.sizes[1]}/{args.sizes[0]} = {net:.3f} "
          f"(target <= {TARGET}: {verdict})")
    return 0 if net <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
