"""DINO's attention-mask Jaccard: last-block CLS attention against ground-truth object masks."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd
import torch

from vitprobe.analyzers._registry import register_analyzer
from vitprobe.analyzers.base import Analyzer, batch_index, tidy
from vitprobe.capture import ModelInfo, Site
from vitprobe.data.base import to_uint8_images
from vitprobe.errors import ConfigError, DataError, check_whole, warn_user
from vitprobe.data.items import MASK_IGNORE
from vitprobe.metrics import attention_mask, jaccard_matrix, upsample_patch_mask
from vitprobe.metrics.masks import check_keep_mass


@register_analyzer
class AttentionJaccard(Analyzer):
    """Per head, the smallest patch set holding ``keep_mass`` of the last block's CLS attention,
    upsampled (nearest) to the image; IoU with each annotated object (255 ignored), averaged
    over the image's objects; reported per head, for each image's best head, and for the
    union of the heads' masks, averaged over images that have at least one object.
    ``mask_area`` is each head's kept share of the patches over the same images: a head that
    attends evenly keeps about ``keep_mass`` of them, and its IoU then measures that share, not
    the object (warned when every head does). The ``num_artifacts`` images of smallest index
    keep their pictures, masks and attention maps for the figure of example masks (0: none)."""

    name = "attention_jaccard"
    requires_masks = True
    value_units = "mask_area: share of the patches in the mask, 0..1; jaccard*: IoU, 0..1"
    metrics = ("jaccard", "jaccard_best_head", "jaccard_union", "mask_area")
    outcome_keys = ("images_scored", "even_masks")
    uninformative_when = {"even_masks": (("jaccard", "jaccard_best_head", "jaccard_union"),
                                         "every head's mask keeps about keep_mass of the patches, as attention "
                                         "spread evenly does, so the IoU measures the masks' share of the image, "
                                         "not the object")}
    # A head whose mask keeps at least this share of keep_mass counts as attending evenly.
    EVEN_SHARE = 0.9

    def __init__(self, keep_mass: float = 0.6, num_artifacts: int = 8) -> None:
        super().__init__()
        check_keep_mass(keep_mass)
        self.keep_mass = keep_mass
        self.num_artifacts = check_whole(num_artifacts, "analysis 'attention_jaccard': num_artifacts", minimum=0)

    def _bind(self, info: ModelInfo) -> None:
        if not info.class_token:
            raise ConfigError("analysis 'attention_jaccard' reads CLS attention and this model has "
                              f"no class token{info.registers_note}; leave it out")

    def _learned_protocol(self) -> dict[str, Any]:
        return {"layer": self.info_.depth, "attention": "CLS to patches, last block",
                "upsampling": "nearest", "ignore_label": MASK_IGNORE,
                "averaging": "IoU averaged over objects per image, then over images with objects",
                "best_head": "per image, the head with the highest object-averaged IoU",
                "images_scored": int(self._sums["jaccard_union.count"]),
                "even_masks": self._even_areas() is not None}

    def _sites(self) -> set[Site]:
        return {Site("attn", self.info_.depth)}

    def _moment_shapes(self) -> dict[str, tuple[int, ...]]:
        heads = self.info_.num_heads
        return {"jaccard": (heads,), "jaccard_best_head": (), "jaccard_union": (), "mask_area": (heads,)}

    def _sum_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"images": ()}  # every image seen, with objects or not

    def _update(self, batch: Mapping[str, Any]) -> None:
        if batch.get("mask") is None:
            raise DataError("analysis 'attention_jaccard' needs object masks and this dataset has "
                            "none; use a dataset with masks (e.g. voc:PATH)")
        info = self.info_
        attn = self._site(batch, Site("attn", info.depth))
        cls_attn = attn[:, :, 0, info.num_prefix_tokens:]
        batch_size, heads = cls_attn.shape[:2]
        patch_masks = attention_mask(cls_attn, self.keep_mass).reshape(batch_size, heads, *info.grid)
        gt = torch.as_tensor(batch["mask"]).to(attn.device).long()
        pixel_masks = upsample_patch_mask(patch_masks, tuple(gt.shape[-2:]))
        per_head, union = self._object_iou(pixel_masks, gt)
        self._sums["images"] += batch_size
        has_objects = ~torch.isnan(union)
        if has_objects.any():
            self._add_moments("jaccard", per_head[has_objects])
            self._add_moments("jaccard_best_head", per_head[has_objects].amax(dim=1))
            self._add_moments("jaccard_union", union[has_objects])
            self._add_moments("mask_area", patch_masks[has_objects].flatten(2).float().mean(dim=2))
        self._keep_artifacts(batch, cls_attn, gt)

    @staticmethod
    def _object_iou(pixel_masks: torch.Tensor, gt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Object-averaged IoU per (image, head) and of the union of heads per image; NaN
        for images without objects."""
        ids = torch.unique(gt)
        ids = ids[(ids != 0) & (ids != MASK_IGNORE)]
        batch_size, heads = pixel_masks.shape[:2]
        if ids.numel() == 0:
            nan = torch.full((batch_size,), float("nan"), device=gt.device)
            return nan[:, None].expand(batch_size, heads), nan
        objects = gt[:, None] == ids[None, :, None, None]
        present = objects.flatten(2).any(dim=2)
        ignore = gt == MASK_IGNORE
        candidates = torch.cat([pixel_masks, pixel_masks.any(dim=1, keepdim=True)], dim=1)
        iou = jaccard_matrix(candidates, objects, ignore)
        iou = torch.where(present[:, None, :], iou.nan_to_num(0.0), torch.zeros_like(iou))
        per_image = iou.sum(dim=2) / present.sum(dim=1, keepdim=True)
        return per_image[:, :heads], per_image[:, heads]

    def _keep_artifacts(self, batch: Mapping[str, Any], cls_attn: torch.Tensor, gt: torch.Tensor) -> None:
        if self.num_artifacts <= 0:
            return
        info = self.info_
        index = batch_index(batch, self.name, " (to keep the first images' maps)").cpu()
        kept = self._row_tensor("artifact.index")
        if kept is not None and len(kept) >= self.num_artifacts and bool((index > kept.max()).all()):
            return  # every image kept comes before these (the data is read in index order)
        pick = torch.argsort(index, stable=True)[: self.num_artifacts]
        pixels = to_uint8_images(batch["image"][pick.to(batch["image"].device)], info.mean, info.std)
        self._add_rows("artifact.index", index[pick])
        self._add_rows("artifact.image", pixels)
        self._add_rows("artifact.mask", gt.cpu()[pick].to(torch.uint8))
        attention = cls_attn.detach().float().cpu()[pick]
        self._add_rows("artifact.attention", attention.reshape(len(pick), attention.shape[1], *info.grid))
        self._after_rows_changed()

    def _after_rows_changed(self) -> None:
        """Keep only the ``num_artifacts`` images with the smallest sample index."""
        if "artifact.index" not in self._rows:
            return
        index = self._row_tensor("artifact.index")
        keep = torch.argsort(index, stable=True)[: self.num_artifacts]
        for key in [k for k in self._rows if k.startswith("artifact.")]:
            self._rows[key] = [self._row_tensor(key)[keep]]

    def _artifacts(self) -> dict[str, np.ndarray]:
        """``index`` (k,), ``images`` (k, S, S, 3) uint8, ``masks`` (k, S, S), ``head_attn``
        (k, H, h, w) CLS attention and ``head_masks`` (k, H, h, w) the kept patches of each head."""
        if "artifact.index" not in self._rows:
            return {}
        attention = self._row_tensor("artifact.attention")
        kept = attention_mask(attention.flatten(2), self.keep_mass).reshape(attention.shape)
        # Copies: the result's arrays do not share memory with this analyzer's state.
        return {"index": self._row_tensor("artifact.index").numpy().copy(),
                "images": self._row_tensor("artifact.image").numpy().copy(),
                "masks": self._row_tensor("artifact.mask").numpy().copy(),
                "head_attn": attention.numpy().copy(),
                "head_masks": kept.numpy()}

    def _table(self) -> pd.DataFrame:
        if self._sums.get("jaccard_union.count", 0) == 0:
            warn_user(f"{self.name}: no image had an object in its mask, so every IoU is NaN; masks "
                      f"hold 0 for background, 1..254 for objects and {MASK_IGNORE} for ignored "
                      f"pixels (a 0/{MASK_IGNORE} mask marks no object: give objects as 1)")
        heads = {"head": range(self.info_.num_heads)}
        per_head = tidy("jaccard", heads, *self._moments("jaccard"))
        summary = [tidy(key, {}, *self._moments(key)) for key in ("jaccard_best_head", "jaccard_union")]
        area = tidy("mask_area", heads, *self._moments("mask_area"))
        self._warn_if_even()
        frame = pd.concat([per_head, *summary, area], ignore_index=True)
        frame.insert(1, "layer", self.info_.depth)
        return frame

    def _even_areas(self) -> tuple[float, float] | None:
        """The least and largest of the heads' mean mask areas when every head keeps at least
        ``EVEN_SHARE`` of ``keep_mass`` of the patches, as attention spread evenly does; else None."""
        areas = self._moments("mask_area")[0]
        if len(areas) and not np.isnan(areas).any() and float(areas.min()) >= self.EVEN_SHARE * self.keep_mass:
            return float(areas.min()), float(areas.max())
        return None

    def _warn_if_even(self) -> None:
        """Warn when every head's mask is even (:meth:`_even_areas`): the IoU then reflects the
        mask's share of the image."""
        even = self._even_areas()
        if even is not None:
            low, high = f"{even[0]:.0%}", f"{even[1]:.0%}"
            warn_user(f"{self.name}: every head of the last block attends about evenly: its mask keeps "
                      f"{low if low == high else f'{low}-{high}'} of the patches (even attention keeps "
                      f"{self.keep_mass:.0%}), so the IoU measures the masks' share of the image, not the "
                      "object, as for any encoder that attends evenly (table: mask_area)")
