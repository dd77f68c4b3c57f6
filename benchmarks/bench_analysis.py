"""Speed of one analysis pass against a bare timm forward of the same model on the same images.

Target: every streaming analysis together (attention distance, NMI + head diversity,
Fourier, token similarity + spectra, k-NN features, Jaccard) costs at most 1.3x the bare
forward. Bare and analysed passes are interleaved; the median ratio is printed.

    OMP_NUM_THREADS=2 python benchmarks/bench_analysis.py --model vit_small_patch16_224 \
        --images 128 --batch-size 32 --rounds 5 [--breakdown] [--device cuda --amp] \
        [--spectrum-fraction 0.125]
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    analysed_pass,
    bare_pass,
    bench_parser,
    build_vit,
    environment,
    interleaved_ratio,
    missing_analyses,
    positive,
    streaming_analyzers,
    synthetic_batches,
)

TARGET = 1.3


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser(__doc__)
    parser.add_argument("--model", default="vit_small_patch16_224", help="timm ViT name (random weights)")
    parser.add_argument("--img-size", type=positive, default=224, help="image side in pixels")
    parser.add_argument("--images", type=positive, default=128, help="images per pass")
    parser.add_argument("--batch-size", type=positive, default=32, help="images per forward")
    parser.add_argument("--rounds", type=positive, default=5, help="bare and analysed passes each; the median ratio is printed")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--amp", action="store_true", help="autocast bfloat16 for both passes")
    parser.add_argument("--spectrum-fraction", type=float, default=1.0, metavar="F",
                        help="token_similarity's spectrum_fraction: the token spectrum on this share of "
                             "the images (1: every image)")
    parser.add_argument("--breakdown", action="store_true",
                        help="also time capture alone and capture + each analyzer alone")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    model = build_vit(args.model, args.img_size).to(device)
    batches = [{**b, "image": b["image"].to(device), "mask": b["mask"].to(device)}
               for b in synthetic_batches(args.images, args.batch_size, args.img_size)]
    analyzers = streaming_analyzers(model, params={"token_similarity": {"spectrum_fraction": args.spectrum_fraction}})
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if args.amp
                else contextlib.nullcontext())

    def run(fn, *extra):
        def call() -> None:
            with autocast:
                fn(model, *extra, batches)
        return call

    print(f"# bench_analysis: {args.model} @ {args.img_size}, {args.images} images, batch "
          f"{args.batch_size}, {args.rounds} rounds, device {device}{' AMP bf16' if args.amp else ''}, "
          f"token spectrum on {'every image' if args.spectrum_fraction == 1 else f'a {args.spectrum_fraction:g} share of the images'}")
    print(f"# {environment(device)}")
    missing = missing_analyses()
    print(f"# analyses: {', '.join(a.name for a in analyzers)}"
          + (f"; NOT REGISTERED (left out): {', '.join(missing)}" if missing else ""))
    run(bare_pass)()  # warm-up: allocator, caches, first-call dispatch
    run(analysed_pass, analyzers)()

    ratio, analysed, bare = interleaved_ratio(run(analysed_pass, analyzers), run(bare_pass), args.rounds)
    print(f"bare forward      median {sorted(bare)[len(bare) // 2]:.2f} s/pass")
    print(f"all analyses      median {sorted(analysed)[len(analysed) // 2]:.2f} s/pass")
    verdict = "meets" if ratio <= TARGET else "MISSES"
    print(f"RATIO analysed/bare = {ratio:.2f} (median of {args.rounds}; target <= {TARGET}: {verdict})")

    if args.breakdown:
        parts = [("capture only", [])] + [(a.name, [a]) for a in analyzers]
        for label, chosen in parts:
            if not chosen:
                sites = set().union(*(a.sites() for a in analyzers))
                chosen = [_SitesOnly(sites)]
            r, _, _ = interleaved_ratio(run(analysed_pass, chosen), run(bare_pass), max(1, args.rounds // 2))
            print(f"  breakdown {label:<20s} (capture + it) / bare = {r:.2f}")
    return 0 if ratio <= TARGET else 1


class _SitesOnly:
    """Asks for every site the analyses need and does nothing with them: the capture's cost."""

    def __init__(self, sites: set) -> None:
        self._sites = sites

    def sites(self) -> set:
        return self._sites

    def update(self, batch: dict) -> None:
        pass


if __name__ == "__main__":
    sys.exit(main())
