"""Per-head attention analyses: mean attention distance, NMI and head diversity."""

from __future__ import annotations

from typing import Any, Mapping

import pandas as pd
import torch

from vitprobe.analyzers._registry import register_analyzer
from vitprobe.analyzers.base import LayerAnalyzer, tidy
from vitprobe.errors import warn_user
from vitprobe.metrics import attention_distance, attention_nmi_and_diversity, even_attention_distance


@register_analyzer
class AttentionDistance(LayerAnalyzer):
    """Mean attention distance in pixels per (layer, head), averaged over all images; the
    protocol holds ``even_attention_px``, the distance of attention spread evenly over the
    patches (where a head lands that does not choose)."""

    name = "attention_distance"
    grid_bound = "pixels"
    value_units = "pixels"
    metrics = ("attention_distance_px",)

    def _moment_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"attention_distance_px": (len(self.layers_), self.info_.num_heads)}

    def _update(self, batch: Mapping[str, Any]) -> None:
        info = self.info_
        values = [attention_distance(attn, info.patch_size, info.num_prefix_tokens, info.grid)
                  for attn in self._inputs(batch)]
        self._add_moments("attention_distance_px", torch.stack(values, dim=1))

    def _learned_protocol(self) -> dict[str, Any]:
        info = self.info_
        return {**super()._learned_protocol(),
                "even_attention_px": round(even_attention_distance(info.grid, info.patch_size), 4)}

    def _table(self) -> pd.DataFrame:
        mean, std, count = self._moments("attention_distance_px")
        axes = {"layer": self.layers_, "head": range(self.info_.num_heads)}
        return tidy("attention_distance_px", axes, mean, std, count)


@register_analyzer
class AttentionNMI(LayerAnalyzer):
    """Query-key NMI per (layer, head) and mean pairwise Jensen-Shannon divergence of the
    heads per layer, averaged over all images."""

    name = "attention_nmi"
    grid_bound = "patches"  # entropies over them
    value_units = "nmi: 0..1; head_diversity_jsd: nats, 0..log 2"
    metrics = ("nmi", "head_diversity_jsd")

    def _moment_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"nmi": (len(self.layers_), self.info_.num_heads),
                "head_diversity_jsd": (len(self.layers_),)}

    def _update(self, batch: Mapping[str, Any]) -> None:
        prefix = self.info_.num_prefix_tokens
        pairs = [attention_nmi_and_diversity(attn, prefix) for attn in self._inputs(batch)]
        self._add_moments("nmi", torch.stack([nmi for nmi, _ in pairs], dim=1))
        self._add_moments("head_diversity_jsd", torch.stack([div for _, div in pairs], dim=1))

    def _table(self) -> pd.DataFrame:
        if self.info_.num_heads < 2:
            warn_user(f"{self.name}: head_diversity_jsd compares pairs of heads and this model has one, so it is "
                      "NaN; if the checkpoint has more, give their number (--num-heads)")
        nmi = tidy("nmi", {"layer": self.layers_, "head": range(self.info_.num_heads)},
                   *self._moments("nmi"))
        jsd = tidy("head_diversity_jsd", {"layer": self.layers_}, *self._moments("head_diversity_jsd"))
        return pd.concat([nmi, jsd], ignore_index=True)
