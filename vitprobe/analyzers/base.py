"""The streaming analyzer base: declared fixed-size state, update / compute / merge.

State lives on the CPU in two kinds, visible in :meth:`Analyzer.state_dict` keys:

- ``sum/<name>``  float64 tensors that combine across shards by addition (all-reduce SUM);
- ``rows/<name>`` tensors that combine by concatenation along dim 0 (all-gather), for the
  pooled features a probe needs and the few images kept as artifacts.

Per-image statistics are kept as moments ``<key>.sum``, ``<key>.sumsq`` and ``<key>.count``
so that mean and standard deviation over ALL images come out of the sums.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, ClassVar, Iterable, Literal, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from vitprobe.capture import FIRST_LAYER, ModelInfo, Site, model_info
from vitprobe.errors import AnalyzerDefinitionError, CaptureError, ConfigError, DataError

if TYPE_CHECKING:
    from vitprobe.results import Result

STD_PROTOCOL = "sample standard deviation over images (ddof=1)"
LAYER_0_WITHOUT_POSITIONS = "patch embedding, no positions"
UNNAMED_DATASET = "unnamed"  # a standalone analysis bound without protocol={"dataset": ...}


def batch_index(batch: Mapping[str, Any], analysis: str, why: str = "") -> torch.Tensor:
    """The batch's dataset indices as a flat int64 tensor, or a DataError naming what to give."""
    if "index" not in batch:
        raise DataError(f"analysis {analysis!r} reads each image's 'index'{why} and this batch has none; give "
                        "'index': a (B,) tensor of the images' dataset indices (vitprobe.analyze adds it)")
    return torch.as_tensor(batch["index"]).long().reshape(-1)


def batch_labels(batch: Mapping[str, Any], analysis: str) -> dict[str, torch.Tensor]:
    """The batch's labels {name: flat int64 tensor of class ids}; a DataError where they are no
    mapping, or a value is not a whole number (a float label would be truncated to a class)."""
    labels = batch.get("labels")
    if labels is None:
        return {}
    if not isinstance(labels, Mapping):
        raise DataError(f"analysis {analysis!r}: the batch's 'labels' is a {type(labels).__name__}; give a dict "
                        "{name: (B,) tensor of class ids}, e.g. {'class': y}")
    out = {}
    for name, values in labels.items():
        values = torch.as_tensor(values).reshape(-1)
        fractional = (torch.ones_like(values, dtype=torch.bool) if values.is_complex()
                      else values != values.round() if values.is_floating_point() else None)
        if fractional is not None and bool(fractional.any()):
            raise DataError(f"analysis {analysis!r}: label {name!r} holds {values[fractional][0].item()!r}, not a "
                            "class id; map the labels to whole numbers 0..C-1 (negative ones are left out)")
        out[name] = values.long()
    return out


class Analyzer:
    """Base class of every analysis. Parameters are set in ``__init__`` only; attributes
    learned from the model end in ``_``. Call :meth:`bind` before the first :meth:`update`."""

    name: ClassVar[str] = ""
    requires_masks: ClassVar[bool] = False
    requires_labels: ClassVar[bool] = False
    value_units: ClassVar[str] = ""
    metrics: ClassVar[tuple[str, ...]] = ()  # the metric names its table holds (claims name them)
    # table columns beyond metric/layer that a claim may select on ("frequency", "label")
    claim_axes: ClassVar[tuple[str, ...]] = ()
    # protocol entries that record what the run found (a count of images scored), not how it
    # measured: runs that differ in them are not warned of as set up differently, and figure
    # captions show them
    outcome_keys: ClassVar[tuple[str, ...]] = ()
    # protocol keys that concern only some of its metrics: key -> those metrics (the summary's
    # note on another metric leaves the key out)
    keys_of_metrics: ClassVar[dict[str, tuple[str, ...]]] = {}
    # outcomes (keys of outcome_keys) that, when true, leave some of its metrics measuring nothing
    # of what they are named for: key -> (those metrics, why); a claim on them between models
    # that all have that outcome is undecided
    uninformative_when: ClassVar[dict[str, tuple[tuple[str, ...], str]]] = {}
    # what its numbers are measured in, where runs on other grids do not line up (a claim across
    # them is undecided): "pixels" (distances: the image size and the patch size both count) or
    # "patches" (frequencies, ranks or entropies over the patch grid: its rows and columns count)
    grid_bound: ClassVar[Literal["pixels", "patches"] | None] = None

    def __init__(self) -> None:
        self.info_: ModelInfo | None = None
        self.protocol_: dict[str, Any] = {}
        self._sums: dict[str, torch.Tensor] = {}
        self._rows: dict[str, list[torch.Tensor]] = {}

    # ----------------------------------------------------------------- parameters
    def params(self) -> dict[str, Any]:
        """The ``__init__`` parameters of this analyzer and their values."""
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {name: getattr(self, name) for name in names}

    def __repr__(self) -> str:
        """``KNN(layers=None, pooling='cls', ...)``: the class and its parameters."""
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.params().items())})"

    # ----------------------------------------------------------------- lifecycle
    def bind(self, info: ModelInfo | nn.Module, protocol: Mapping[str, Any] | None = None) -> "Analyzer":
        """Attach the model description (a ModelInfo, or the model to read it from) and the
        run's protocol; resets the state."""
        if isinstance(info, nn.Module):
            info = model_info(info)
        self.info_ = info
        self.protocol_ = dict(protocol or {})
        self._bind(info)
        self.reset()
        return self

    def _bind(self, info: ModelInfo) -> None:
        """Validate parameters against the model and set learned attributes."""

    def reset(self) -> None:
        """Forget every update since :meth:`bind`."""
        self._check_bound()
        self._sums = {}
        for key, shape in self._moment_shapes().items():
            self._sums[f"{key}.sum"] = torch.zeros(shape, dtype=torch.float64)
            self._sums[f"{key}.sumsq"] = torch.zeros(shape, dtype=torch.float64)
            self._sums[f"{key}.count"] = torch.zeros((), dtype=torch.float64)
        for key, shape in self._sum_shapes().items():
            self._sums[key] = torch.zeros(shape, dtype=torch.float64)
        self._rows = {}

    def _moment_shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-image statistics kept as moments: key -> shape of one image's value."""
        return {}

    def _sum_shapes(self) -> dict[str, tuple[int, ...]]:
        """Other additive float64 state: key -> shape."""
        return {}

    def sites(self) -> set[Site]:
        """The capture sites this analyzer reads in :meth:`update`."""
        self._check_bound()
        return self._sites()

    def _sites(self) -> set[Site]:
        raise NotImplementedError

    def update(self, batch: Mapping[str, Any]) -> None:
        """Accumulate one batch: the data batch dict plus ``"sites": {Site: Tensor}``."""
        self._check_bound()
        self._update(batch)

    def _update(self, batch: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def compute(self) -> Result:
        """The table over every image seen so far, with its protocol and artifacts."""
        from vitprobe.results import Result

        self._check_bound()
        if self._seen_nothing():
            raise DataError(f"analysis {self.name!r} has seen no images; call update() with a batch (or "
                            "load_state_dict, merge) before compute()")
        return Result(self.name, self._table(), self.protocol(), self._artifacts() or None)

    def _table(self) -> pd.DataFrame:
        raise NotImplementedError

    def _artifacts(self) -> dict[str, np.ndarray]:
        return {}

    def protocol(self) -> dict[str, Any]:
        """The runner's protocol merged with this analysis's own parameters; ``dataset`` is
        "unnamed" where :meth:`bind` was given none, so that no caption leaves it out unsaid."""
        own = {"analysis": self.name, **self.params(), **self._learned_protocol(),
               "std": STD_PROTOCOL}
        if self.value_units:
            own["value_units"] = self.value_units
        return {"dataset": UNNAMED_DATASET, **self.protocol_, **own}

    def _learned_protocol(self) -> dict[str, Any]:
        return {}

    # ----------------------------------------------------------------- combining shards
    def merge(self, other: "Analyzer") -> "Analyzer":
        """Fold ``other`` (same analysis, same parameters, same model) into this one."""
        self._check_bound()
        if type(other) is not type(self) or other.params() != self.params():
            raise ConfigError(f"cannot merge {other.name!r} with parameters {other.params()} "
                              f"into {self.name!r} with {self.params()}; merge like with like")
        self.load_state_dict(_combine(self.state_dict(), other.state_dict()))
        return self

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Every state tensor: ``sum/<name>`` add across shards, ``rows/<name>`` concatenate."""
        state = {f"sum/{k}": v.clone() for k, v in self._sums.items()}
        for key, parts in self._rows.items():
            state[f"rows/{key}"] = torch.cat(parts) if parts else torch.empty(0)
        return state

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Replace the state by ``state`` (as produced by :meth:`state_dict`)."""
        self._check_bound()
        sums = {k[4:]: v for k, v in state.items() if k.startswith("sum/")}
        rows = {k[5:]: v for k, v in state.items() if k.startswith("rows/")}
        if set(sums) != set(self._sums) or len(sums) + len(rows) != len(state):
            raise ConfigError(f"state for {self.name!r} has keys {sorted(state)}, expected "
                              f"sum/ keys {sorted(self._sums)} and rows/ keys; save and load "
                              "with the same analysis and model")
        for key, value in sums.items():
            if value.shape != self._sums[key].shape:
                raise ConfigError(f"state {key!r} of {self.name!r} has shape {tuple(value.shape)},"
                                  f" expected {tuple(self._sums[key].shape)}; same model please")
        self._sums = {k: v.detach().to("cpu", torch.float64).clone() for k, v in sums.items()}
        self._rows = {k: [v.detach().cpu().clone()] for k, v in rows.items()}
        self._after_rows_changed()

    def _seen_nothing(self) -> bool:
        """True while no batch has reached the state: every sum zero and no rows."""
        return (all(not bool(v.any()) for v in self._sums.values())
                and all(sum(len(part) for part in parts) == 0 for parts in self._rows.values()))

    def _after_rows_changed(self) -> None:
        """Hook run after rows were appended, merged or loaded (e.g. to trim them)."""

    # ----------------------------------------------------------------- helpers
    def _check_bound(self) -> None:
        if self.info_ is None:
            raise ConfigError(f"analysis {self.name!r} is not bound; call "
                              "bind(model_info(model), protocol) before update or compute")

    def _site(self, batch: Mapping[str, Any], site: Site) -> torch.Tensor:
        sites = batch.get("sites", {})
        if site not in sites:
            raise CaptureError(f"analysis {self.name!r} needs site {site}, which the batch lacks;"
                               " capture every site in analyzer.sites()")
        return sites[site]

    def _add_moments(self, key: str, values: torch.Tensor) -> None:
        """Add per-image values (B, *shape) to the moments of ``key``."""
        values = values.detach().to("cpu", torch.float64)
        self._sums[f"{key}.sum"] += values.sum(dim=0)
        self._sums[f"{key}.sumsq"] += values.square().sum(dim=0)
        self._sums[f"{key}.count"] += values.shape[0]

    def _moments(self, key: str) -> tuple[np.ndarray, np.ndarray, int]:
        """Mean, sample std (NaN below 2 images) and image count of ``key``."""
        total, sq = self._sums[f"{key}.sum"], self._sums[f"{key}.sumsq"]
        count = float(self._sums[f"{key}.count"])
        mean = total / count if count > 0 else torch.full_like(total, float("nan"))
        if count > 1:
            var = ((sq - total.square() / count) / (count - 1.0)).clamp_min(0.0)
            std = var.sqrt()
        else:
            std = torch.full_like(total, float("nan"))
        return mean.numpy(), std.numpy(), int(count)

    def _add_rows(self, key: str, values: torch.Tensor) -> None:
        self._rows.setdefault(key, []).append(values.detach().cpu())

    def _row_tensor(self, key: str) -> torch.Tensor | None:
        """The rows of ``key`` as one tensor, kept as its only part from then on (the batches'
        parts are not held beside their concatenation); the stored tensor itself, not a copy."""
        parts = self._rows.get(key)
        if not parts:
            return None
        if len(parts) > 1:
            parts[:] = [torch.cat(parts)]
        return parts[0]

    def lowest_layer(self) -> int:
        """The first block number ``layers`` may name (0: the embedding; 1: the first block)."""
        return 0

    def _resolve_layers(self, layers: Iterable[int] | None, lowest: int, depth: int) -> tuple[int, ...]:
        """The chosen layers, sorted and each once: ``lowest..depth`` when ``layers`` is None,
        else ``layers``, which must be a non-empty subset of that range (ConfigError)."""
        if layers is None:
            return tuple(range(lowest, depth + 1))
        chosen = tuple(sorted({int(layer) for layer in layers}))
        bad = [layer for layer in chosen if not lowest <= layer <= depth]
        if bad or not chosen:
            raise ConfigError(f"analysis {self.name!r}: layers {list(layers)} must be a non-empty "
                              f"subset of {lowest}..{depth} for this model")
        return chosen


def layer_0_protocol(info: ModelInfo, layers: Sequence[int]) -> dict[str, str]:
    """``{"layer_0": "patch embedding, no positions"}`` where layer 0 (the tokens before block 1)
    is among ``layers`` and the model adds no absolute position embedding there (a BEiT layout
    such as SimMIM's, whose positions enter each block's attention as a relative bias), so that
    its layer-0 numbers are not read as a ViT's; else ``{}``."""
    return {"layer_0": LAYER_0_WITHOUT_POSITIONS} if 0 in layers and not info.absolute_positions else {}


def protocol_of_layers(protocol: Mapping[str, Any], layers_read: Iterable[Any]) -> dict[str, Any]:
    """``protocol`` as it bears on numbers read at ``layers_read`` (a summary's deepest layer, a
    claim's layers): without what layer 0 holds unless layer 0 is among them."""
    if any(layer == 0 for layer in layers_read):
        return dict(protocol)
    return {k: v for k, v in protocol.items() if k != "layer_0"}


class LayerAnalyzer(Analyzer):
    """An analysis of one kind of captured site (``site_kind``: "attn" or "tokens") at the
    chosen ``layers`` (block numbers; None: every one, see ``FIRST_LAYER``). ``_inputs(batch)``
    hands it the captured tensor of each chosen layer, in order."""

    site_kind: ClassVar[str] = "attn"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.site_kind not in FIRST_LAYER:
            raise AnalyzerDefinitionError(f"{cls.__name__}.site_kind is {cls.site_kind!r}; it must be one of {list(FIRST_LAYER)}")

    def __init__(self, layers: Sequence[int] | None = None) -> None:
        super().__init__()
        self.layers = layers

    def lowest_layer(self) -> int:
        return FIRST_LAYER[self.site_kind]

    def _bind(self, info: ModelInfo) -> None:
        self.layers_ = self._resolve_layers(self.layers, self.lowest_layer(), info.depth)

    def _learned_protocol(self) -> dict[str, Any]:
        protocol = {"layers": list(self.layers_), "num_prefix_tokens_dropped": self.info_.num_prefix_tokens}
        if self.site_kind == "tokens":
            protocol["final_norm"] = False  # block outputs as the residual stream carries them
            protocol.update(layer_0_protocol(self.info_, self.layers_))
        return protocol

    def _sites(self) -> set[Site]:
        return {Site(self.site_kind, layer) for layer in self.layers_}

    def _inputs(self, batch: Mapping[str, Any]) -> list[torch.Tensor]:
        """The captured tensor of every chosen layer, in layer order."""
        return [self._site(batch, Site(self.site_kind, layer)) for layer in self.layers_]


def tidy(metric: str, axes: Mapping[str, Iterable[Any]], mean: np.ndarray, std: np.ndarray | None,
         count: int) -> pd.DataFrame:
    """Tidy rows for ``mean``/``std`` laid out over the product of ``axes`` (C order)."""
    names = list(axes)
    grids = np.meshgrid(*[np.asarray(list(axes[name])) for name in names], indexing="ij")
    frame: dict[str, Any] = {"metric": metric}
    for name, grid in zip(names, grids):
        frame[name] = grid.reshape(-1)
    values = np.asarray(mean, dtype=np.float64).reshape(-1)
    frame["value"] = values
    frame["std"] = (np.asarray(std, dtype=np.float64).reshape(-1) if std is not None
                    else np.full(values.shape, np.nan))
    frame["n"] = np.full(values.shape, count, dtype=np.int64)
    return pd.DataFrame(frame)


def _combine(mine: Mapping[str, torch.Tensor], theirs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = dict(mine)
    for key, value in theirs.items():
        if key not in out:
            out[key] = value
        elif key.startswith("sum/"):
            if out[key].shape != value.shape:
                raise ConfigError(f"cannot merge state {key!r} of shapes {tuple(out[key].shape)} "
                                  f"and {tuple(value.shape)}; both shards must observe one model")
            out[key] = out[key] + value
        else:
            if value.numel():
                out[key] = torch.cat([out[key], value]) if out[key].numel() else value
    return out
