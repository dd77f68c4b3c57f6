"""The linear probe's fit: vitprobe's torch L-BFGS against scikit-learn's LogisticRegression.

Both minimise the same objective (standardised features, mean cross-entropy + ||W||^2 / (2 C n),
tol 1e-4) on the same features; the ratio is the median of interleaved rounds. The features
mimic one layer of a ViT: ``images`` x ``width`` with a decaying spectrum (ill-conditioned, as
real tokens are), labels from a noisy linear rule over ``classes`` classes. Prints how often
the two predict the same held-out class and both accuracies.

    OMP_NUM_THREADS=2 python benchmarks/bench_probe.py --images 8000 --width 384 --classes 100
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import bench_parser, environment, interleaved_ratio, positive  # noqa: E402

from vitprobe.analyzers.probes import PROBE_TOL  # noqa: E402
from vitprobe.metrics import fit_logistic  # noqa: E402


def layer_like_features(images: int, width: int, classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Features ``z A`` with ``A``'s rows scaled by exp(-i / 20) (plus 1% noise) and labels
    ``argmax(z[:, :32] W + Gumbel noise)`` (the 32 strongest directions decide; all of a
    narrower width)."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(images, width))
    mixing = rng.normal(size=(width, width)) * np.exp(-np.arange(width) / 20.0)[:, None]
    features = latent @ mixing + 0.01 * rng.normal(size=(images, width))
    strong = min(32, width)
    labels = np.argmax(latent[:, :strong] @ rng.normal(size=(strong, classes)) + rng.gumbel(size=(images, classes)), axis=1)
    return features, labels


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--images", type=positive, default=8000,
                        help="training rows (a quarter as many more are held out; at least 4)")
    parser.add_argument("--width", type=positive, default=384, help="feature width")
    parser.add_argument("--classes", type=positive, default=100, help="label classes")
    parser.add_argument("--rounds", type=positive, default=3, help="fits of each; the median ratio is printed")
    parser.add_argument("--max-iter", type=positive, default=1000, help="iteration limit of both solvers")
    parser.add_argument("--device", default="cpu", help="where vitprobe's fit runs (scikit-learn: CPU)")
    args = parser.parse_args()
    if args.images < 4:
        parser.error(f"argument --images: at least 4, so that a quarter as many are held out, got {args.images}")
    device = torch.device(args.device)
    held = args.images // 4
    x, y = layer_like_features(args.images + held, args.width, args.classes)
    train_x, train_y, test_x, test_y = x[:args.images], y[:args.images], x[args.images:], y[args.images:]
    fitted: dict[str, np.ndarray] = {}

    def ours() -> None:
        probe = fit_logistic(torch.from_numpy(train_x).to(device), torch.from_numpy(train_y).to(device),
                             max_iter=args.max_iter, tol=PROBE_TOL)
        fitted["vitprobe"] = probe.predict(torch.from_numpy(test_x).to(device)).cpu().numpy()
        fitted["vitprobe iterations"] = probe.iterations

    def scikit_learn() -> None:
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=args.max_iter, tol=PROBE_TOL))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a ConvergenceWarning is reported below as iterations
            model.fit(train_x, train_y)
        fitted["scikit-learn"] = model.predict(test_x)
        fitted["scikit-learn iterations"] = int(model[-1].n_iter_.max())

    print(environment(device))
    print(f"features {args.images} x {args.width}, {args.classes} classes, {held} held out; "
          f"tol {PROBE_TOL}, max_iter {args.max_iter}; vitprobe on {device}")
    ratio, num, den = interleaved_ratio(ours, scikit_learn, args.rounds)
    agree = float(np.mean(fitted["vitprobe"] == fitted["scikit-learn"]))
    accuracy = {name: 100.0 * float(np.mean(fitted[name] == test_y)) for name in ("vitprobe", "scikit-learn")}
    print(f"vitprobe {np.median(num):.2f} s ({fitted['vitprobe iterations']} iterations), scikit-learn "
          f"{np.median(den):.2f} s ({fitted['scikit-learn iterations']} iterations) per fit")
    print(f"same held-out prediction {100 * agree:.2f}%; top-1 vitprobe {accuracy['vitprobe']:.2f}, "
          f"scikit-learn {accuracy['scikit-learn']:.2f}")
    print(f"RATIO vitprobe/scikit-learn = {ratio:.2f}")


if __name__ == "__main__":
    main()
