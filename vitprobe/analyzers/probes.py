"""Per-layer probes on pooled features: multinomial logistic regression and DINO's k-NN."""

from __future__ import annotations

import math
import typing
from typing import Any, Literal, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from vitprobe.analyzers._registry import register_analyzer
from vitprobe.analyzers._split import heldout_mask
from vitprobe.analyzers.base import Analyzer, batch_index, batch_labels, layer_0_protocol, tidy
from vitprobe.capture import ModelInfo, Site
from vitprobe.errors import ConfigError, DataError, check_whole, is_real, plural, warn_user
from vitprobe.metrics import fit_logistic, knn_predict

# Fewer held-out images than this make a probe accuracy too coarse to read (warned).
_FEW_HELD_OUT = 50
# The linear probe stops when max |gradient| <= this (scikit-learn's default tol).
PROBE_TOL = 1e-4

Pooling = Literal["cls", "mean"]
POOLINGS: tuple[str, ...] = typing.get_args(Pooling)


class _PooledFeatureProbe(Analyzer):
    """Keeps one pooled vector per image and layer; scores a classifier per (layer, label)
    trained on the samples whose index hashes outside the held-out fraction."""

    requires_labels = True
    claim_axes = ("label",)
    outcome_keys = ("held_out", "majority_class_top1")
    value_units = "% top-1, held out"
    metric = ""

    def __init__(self, layers: Sequence[int] | None = None, pooling: Pooling = "cls",
                 final_norm: bool = False, heldout_fraction: float = 0.2, split_seed: int = 0) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ConfigError(f"analysis {self.name!r}: pooling {pooling!r} is not one of {', '.join(POOLINGS)}")
        if not (is_real(heldout_fraction) and 0.0 < heldout_fraction < 1.0):
            raise ConfigError(f"analysis {self.name!r}: heldout_fraction={heldout_fraction} must lie "
                              "strictly between 0 and 1; 0.2 holds out a fifth")
        self.layers = layers
        self.pooling = pooling
        self.final_norm = final_norm
        self.heldout_fraction = heldout_fraction
        self.split_seed = split_seed

    def _bind(self, info: ModelInfo) -> None:
        # default: blocks 1..L; the embedding (layer 0) only when asked for
        self.layers_ = self._resolve_layers(self.layers, 1 if self.layers is None else self.lowest_layer(), info.depth)
        if self.pooling == "cls" and not info.class_token:
            raise ConfigError(f"analysis {self.name!r}: pooling 'cls' needs a class token and this "
                              f"model has none{info.registers_note}; use pooling='mean'")
        if self.pooling == "cls" and 0 in self.layers_:
            raise ConfigError(f"analysis {self.name!r}: layer 0 with pooling 'cls': before the first block the "
                              "class token is one learned vector, the same for every image, so a probe on it "
                              "scores chance; use layers from 1, or pooling='mean' (the patch embeddings)")
        if self.final_norm and info.final_norm is None:
            raise ConfigError(f"analysis {self.name!r}: final_norm=True but this model has no final "
                              "norm; use final_norm=False")

    def _learned_protocol(self) -> dict[str, Any]:
        protocol = {"layers": list(self.layers_), "split": "hash(index, split_seed) < heldout_fraction",
                    "labels_below_zero": "ignored", **layer_0_protocol(self.info_, self.layers_)}
        index = self._row_tensor("index")
        if index is not None:  # the share the hash held out, which on few images is not the fraction
            held = heldout_mask(index, self.heldout_fraction, self.split_seed).numpy()
            protocol["held_out"] = f"{int(held.sum())} of {plural(len(index), 'image')}"
            baselines = self._majority_baselines(held)
            if baselines:
                protocol["majority_class_top1"] = ", ".join(f"{k}: {v:.3g}" for k, v in baselines.items())
        return protocol

    def _majority_baselines(self, held: np.ndarray) -> dict[str, float]:
        """Per label scored on some ``held`` rows, the share (%) of all its labelled images, both
        splits, in its commonest class: 100 * max_c count(c) / n, what always answering that
        class scores on a held-out split in expectation over splits (100 / K for a balanced
        K-way label), the chance level a probe's accuracy is read against. (The training
        split's commonest class scored on the held-out rows reads low on a balanced set: the
        class with the most training images has the fewest held out.)"""
        baselines = {}
        for key in sorted(k for k in self._rows if k.startswith("label/")):
            labels = self._row_tensor(key).numpy()
            known = labels >= 0
            if (known & held).any() and (known & ~held).any():
                baselines[key[6:]] = 100.0 * float(np.bincount(labels[known]).max()) / int(known.sum())
        return baselines

    def _sites(self) -> set[Site]:
        return {Site("tokens", layer) for layer in self.layers_}

    def _pool(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, N, C) -> (B, C): CLS or patch mean, with the final norm (if asked) where the
        model applies it: ``norm`` on every token before pooling, ``fc_norm`` after."""
        info = self.info_
        norm = info.final_norm if self.final_norm else None
        with torch.no_grad():
            if norm is not None and not info.final_norm_after_pooling:
                tokens = norm(tokens)
            prefix = info.num_prefix_tokens
            pooled = tokens[:, 0] if self.pooling == "cls" else tokens[:, prefix:].mean(dim=1)
            if norm is not None and info.final_norm_after_pooling:
                pooled = norm(pooled)
        return pooled.float()

    def _update(self, batch: Mapping[str, Any]) -> None:
        labels = batch_labels(batch, self.name)
        if not labels:
            raise DataError(f"analysis {self.name!r} needs labels and this dataset gives none; "
                            "drop the probe or use a labelled dataset")
        known = {k[6:] for k in self._rows if k.startswith("label/")}
        if known and known != set(labels):
            raise DataError(f"labels changed between batches: {sorted(known)} then {sorted(labels)}")
        features = torch.stack([self._pool(self._site(batch, Site("tokens", layer)))
                                for layer in self.layers_], dim=1)
        self._add_rows("features", features)
        self._add_rows("index", batch_index(batch, self.name, " (to hold out the same images in every run)"))
        for name, values in labels.items():
            self._add_rows(f"label/{name}", values)

    def _score(self, train_x: torch.Tensor, train_y: np.ndarray, test_x: torch.Tensor) -> np.ndarray:
        """Predicted labels of ``test_x`` (float32 features, one row per image)."""
        raise NotImplementedError

    def _table(self) -> pd.DataFrame:
        features = self._row_tensor("features")
        if features is None:
            return pd.DataFrame({"metric": [], "layer": [], "label": [], "value": [], "std": [], "n": []})
        index = self._row_tensor("index")
        order = torch.argsort(index, stable=True)
        self._warn_if_shared(index[order])
        held = heldout_mask(index[order], self.heldout_fraction, self.split_seed).numpy()
        frames = []
        for key in sorted(k for k in self._rows if k.startswith("label/")):
            labels = self._row_tensor(key)[order].numpy()
            train, test = (~held) & (labels >= 0), held & (labels >= 0)
            self._warn_if_meaningless(key[6:], labels[train], int(test.sum()))
            train_rows, test_rows = torch.from_numpy(train), torch.from_numpy(test)
            accuracy = []
            for i in range(len(self.layers_)):
                if not test.any() or len(np.unique(labels[train])) < 2:  # nothing to tell apart: no accuracy
                    accuracy.append(np.nan)
                    continue
                # One layer at a time: copies of 1/L of the features, never of all of them.
                x = features[:, i][order]
                predicted = self._score(x[train_rows], labels[train], x[test_rows])
                accuracy.append(100.0 * float(np.mean(predicted == labels[test])))
            frame = tidy(self.metric, {"layer": self.layers_}, np.array(accuracy), None, int(test.sum()))
            frame.insert(2, "label", key[6:])
            frames.append(frame)
        return pd.concat(frames, ignore_index=True)

    def _warn_if_shared(self, sorted_index: torch.Tensor) -> None:
        """Warn (one line) where items share an index: the split hashes the index, so each group
        that shares one (e.g. a label given as the index) lands whole in training or held out."""
        shared = sorted_index[1:][sorted_index[1:] == sorted_index[:-1]].unique()
        if len(shared):
            warn_user(f"{self.name}: images share an 'index' ({plural(len(shared), 'shared value')}, e.g. "
                      f"{int(shared[0])}); the held-out split is chosen by index, so images that share one fall on "
                      "the same side together: give each item its own 'index'")

    def _warn_if_meaningless(self, label: str, train_labels: np.ndarray, n_test: int) -> None:
        """Warn (one line) where the split cannot give a meaningful accuracy."""
        where = f"{self.name} on label {label!r}"
        if len(train_labels) == 0:
            warn_user(f"{where}: no image fell in the training split (all {plural(n_test, 'image')} held out), so "
                      "there is no accuracy (NaN); use more images or a smaller heldout_fraction")
        elif len(np.unique(train_labels)) < 2:
            warn_user(f"{where}: the training split holds 1 class, so every image would be given it and "
                      "there is no accuracy (NaN); use data with several classes")
        elif n_test == 0:
            warn_user(f"{where}: no image fell in the held-out split ({self.heldout_fraction:g} "
                          "of the images, chosen by index), so there is no accuracy (NaN); use more "
                          "images or a larger heldout_fraction")
        elif n_test < _FEW_HELD_OUT:
            warn_user(f"{where}: only {plural(n_test, 'held-out image')}, so one image moves the accuracy "
                          f"by {100 / n_test:.1f} points; use more images")


@register_analyzer
class LinearProbe(_PooledFeatureProbe):
    """Multinomial logistic regression on standardised frozen features, per (layer, label)."""

    name = "linear_probe"
    metric = "linear_probe_top1"
    metrics = (metric,)
    outcome_keys = (*_PooledFeatureProbe.outcome_keys, "unconverged_fits")

    def __init__(self, layers: Sequence[int] | None = None, pooling: Pooling = "cls",
                 final_norm: bool = False, heldout_fraction: float = 0.2, split_seed: int = 0,
                 C: float = 1.0, max_iter: int = 1000) -> None:
        super().__init__(layers, pooling, final_norm, heldout_fraction, split_seed)
        if not (is_real(C) and math.isfinite(C) and C > 0):
            raise ConfigError(f"analysis 'linear_probe': C must be a finite number > 0 (the inverse L2 strength), got {C!r}")
        self.C = C
        self.max_iter = check_whole(max_iter, "analysis 'linear_probe': max_iter")

    def _score(self, train_x: torch.Tensor, train_y: np.ndarray, test_x: torch.Tensor) -> np.ndarray:
        classes = np.unique(train_y)
        if len(classes) == 1:
            return np.full(len(test_x), classes[0])
        device = "cuda" if self.protocol_.get("device") == "cuda" and torch.cuda.is_available() else "cpu"
        probe = fit_logistic(train_x.to(device, torch.float64), torch.from_numpy(train_y).to(device),
                             C=self.C, max_iter=self.max_iter, tol=PROBE_TOL)
        self.fits_ += 1
        if not probe.converged:
            self.unconverged_fits_ += 1
        return probe.predict(test_x.to(device, torch.float64)).cpu().numpy()

    def _table(self) -> pd.DataFrame:
        self.unconverged_fits_, self.fits_ = 0, 0
        table = super()._table()
        if self.unconverged_fits_:
            warn_user(f"{self.name}: {self.unconverged_fits_} of {plural(self.fits_, 'fit')} stopped at max_iter "
                      f"{self.max_iter} before converging (largest gradient above tol {PROBE_TOL:g}), so "
                      f"their accuracies may be too low; raise --param {self.name}.max_iter")
        return table

    def _learned_protocol(self) -> dict[str, Any]:
        return {**super()._learned_protocol(),
                "classifier": "multinomial logistic regression on standardised features (scikit-learn's "
                              "LogisticRegression objective: mean cross-entropy + ||W||^2 / (2 C n)), "
                              "L-BFGS in float64 on the analysis device (vitprobe.metrics.fit_logistic)",
                "tol": PROBE_TOL, "unconverged_fits": getattr(self, "unconverged_fits_", 0)}


@register_analyzer
class KNN(_PooledFeatureProbe):
    """DINO's weighted k-NN (cosine similarity, top k vote with weight exp(sim / T))."""

    name = "knn"
    metric = "knn_top1"
    metrics = (metric,)

    def __init__(self, layers: Sequence[int] | None = None, pooling: Pooling = "cls",
                 final_norm: bool = False, heldout_fraction: float = 0.2, split_seed: int = 0,
                 k: int = 20, T: float = 0.07) -> None:
        super().__init__(layers, pooling, final_norm, heldout_fraction, split_seed)
        self.k = check_whole(k, "analysis 'knn': k")
        if not (is_real(T) and math.isfinite(T) and T > 0):
            raise ConfigError(f"analysis 'knn': T must be a finite number > 0 (DINO uses 0.07), got {T!r}")
        self.T = T

    def _learned_protocol(self) -> dict[str, Any]:
        return {**super()._learned_protocol(), "classifier": "weighted k-NN on L2-normalised features"}

    def _warn_if_meaningless(self, label: str, train_labels: np.ndarray, n_test: int) -> None:
        super()._warn_if_meaningless(label, train_labels, n_test)
        if 0 < len(train_labels) <= self.k:
            warn_user(f"knn on label {label!r}: k = {self.k} neighbours of only "
                      f"{plural(len(train_labels), 'training image')}: every image votes; use more images or a smaller k")

    def _score(self, train_x: torch.Tensor, train_y: np.ndarray, test_x: torch.Tensor) -> np.ndarray:
        predicted = knn_predict(train_x, torch.from_numpy(train_y), test_x, k=self.k, T=self.T,
                                num_classes=int(train_y.max()) + 1)
        return predicted.numpy()
