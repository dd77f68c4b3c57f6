"""Hybrid CL + MIM on one shared encoder: L = (1 - lam) L_MIM + lam L_CL (Park et al. 2023)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from vitprobe.errors import ConfigError, warn_user
from vitprobe.models.architecture import ArchSpec
from vitprobe.train.objectives.base import Objective, StepInfo, get_objective, objective_class, register_objective

MIM_CHOICES = ("mae", "simmim")
CL_CHOICES = ("mocov3", "dino")


@register_objective
class Hybrid(Objective):
    """A MIM objective and a CL objective built around the SAME encoder; a branch of weight 0 is not run.

    ``mim_hparams`` / ``cl_hparams`` go to the two objectives. With cl = mocov3 the patch
    embedding is trained (``stop_grad_patch_embed`` False) unless ``cl_hparams`` says
    otherwise, since the MIM branch needs it. The optimiser defaults are MoCo v3's (the
    default CL branch) with MIM's weight decay 0.05; unless given, ``momentum`` is the CL
    branch's own (0.99 MoCo v3, 0.996 DINO), unused at lam 0 (no teacher runs). The log
    has ``mim_loss`` and ``cl_loss`` beside each branch's other health metrics. The shared
    encoder keeps timm's learned position embedding and initialisation (no hybrid reference
    fixes one): a branch's ``encoder_init`` is "timm" unless its hparams say "reference", which
    at most one branch may.
    """

    name = "hybrid"
    loss_text = "{mim_weight:g} x the {mim} loss + {lam:g} x the {cl} loss"
    published_epochs = 100  # the cl-vs-mim hybrid's short schedule
    defaults = dict(
        base_lr=1.5e-4, min_lr=0.0, lr_drop=None, warmup_epochs=40, weight_decay=0.05, weight_decay_end=0.05,
        momentum=0.99, betas=(0.9, 0.999), clip_grad=None, drop_path=None,
        mim="simmim", cl="mocov3", lam=0.5, mim_hparams={}, cl_hparams={},
    )
    choices = {"mim": MIM_CHOICES, "cl": CL_CHOICES}
    # no reference recipe: biases, norms, position embedding and tokens are spared weight decay
    no_decay_names = frozenset({"pos_embed", "cls_token", "reg_token", "mask_token"})

    @classmethod
    def describe_loss(cls, hparams: Mapping[str, Any]) -> str:
        """``loss_text`` with the weights 1 - lambda and lambda and the branches' names."""
        return cls.loss_text.format_map({**hparams, "mim_weight": 1.0 - hparams["lam"]})

    @classmethod
    def resolve_hparams(cls, given: dict[str, Any], via: str | None = None) -> dict[str, Any]:
        """As every objective's, with ``<part>_hparams`` resolved by that part (its defaults filled,
        what :meth:`branch_hparams` gives it, checked) and ``momentum``, where not given, the CL
        part's (the teacher it moves): what each branch trains with. One of a part's own given at
        the top level is refused with where it belongs."""
        for key in (k for k in given if k not in cls.defaults):
            owners = cls.branches_taking(key, given)
            if owners:
                inside = {key: given[key]}
                ways = " or ".join(f"--set {part}_hparams={json.dumps(inside, default=repr, separators=(',', ':'))} "
                                   f"(Python: hparams={{'{part}_hparams': {inside!r}}})" for part in owners)
                whose = " and ".join(f"its {part.upper()} branch ({name})" for part, name in owners.items())
                raise ConfigError(f"objective 'hybrid': {key} is a hyper-parameter of {whose}; give it inside "
                                  f"{' or '.join(f'{part}_hparams' for part in owners)}, e.g. {ways}")
        out = super().resolve_hparams(given, via)
        for part in ("mim", "cl"):
            branch = objective_class(out[part])
            applied = branch.resolve_hparams(cls.branch_hparams(out, part), via=f"{part}_hparams")
            if branch.encoder_arch(ArchSpec(), applied) != ArchSpec():
                raise ConfigError(f"objective 'hybrid': its {part.upper()} branch ({out[part]}) with encoder_init "
                                  "'reference' trains a ViT of its own, but the branches share one timm ViT; keep "
                                  f"encoder_init 'timm' in {part}_hparams")
            out[f"{part}_hparams"] = applied
        if "momentum" not in given:
            out["momentum"] = out["cl_hparams"]["momentum"]
        setting_up = [out[part] for part in ("mim", "cl")
                      if out[f"{part}_hparams"].get("encoder_init") == "reference"]
        if len(setting_up) > 1:
            raise ConfigError(f"objective 'hybrid': both branches ({' and '.join(setting_up)}) ask for "
                              "encoder_init 'reference', but they share one encoder; keep it in one branch's hparams")
        return out

    @staticmethod
    def branch_hparams(h: Mapping[str, Any], part: str) -> dict[str, Any]:
        """What branch ``part`` ("mim" or "cl") of the hybrid with hyper-parameters ``h`` is
        given: its ``<part>_hparams``, with MoCo v3's patch projection trained
        (``stop_grad_patch_embed`` False) and timm's encoder set-up (``encoder_init`` "timm")
        unless they say otherwise."""
        given = dict(h[f"{part}_hparams"])
        if part == "cl" and h["cl"] == "mocov3":
            given.setdefault("stop_grad_patch_embed", False)
        if "encoder_init" in objective_class(h[part]).defaults:
            given.setdefault("encoder_init", "timm")
        return given

    @classmethod
    def branches_taking(cls, key: str, given: Mapping[str, Any]) -> dict[str, str]:
        """{part: objective} of the branches whose hyper-parameters include ``key``; the
        branches are ``given``'s ``mim`` and ``cl`` (else the defaults; a name not among the
        choices is none)."""
        branches = {part: given.get(part, cls.defaults[part]) for part in ("mim", "cl")}
        return {part: name for part, name in branches.items()
                if name in cls.choices[part] and key in objective_class(name).defaults}

    @classmethod
    def least_batch_size(cls, given: dict[str, Any]) -> int:
        """The CL part's least batch, where it runs (lam > 0); else the MIM part's."""
        h = cls.resolve_hparams(given)
        return objective_class(h["cl"] if h["lam"] > 0 else h["mim"]).min_batch_size

    def __init__(self, encoder: nn.Module, arch: ArchSpec, **hparams: Any):
        super().__init__(encoder, arch, **hparams)
        h = self.hparams  # resolved: each branch's hparams in full, the CL part's momentum unless given
        self.lam = float(h["lam"])
        self.mim = get_objective(h["mim"], encoder, arch, **h["mim_hparams"])
        self.cl = get_objective(h["cl"], encoder, arch, **h["cl_hparams"])
        self.collapse_dim = self.cl.collapse_dim
        if "momentum" in hparams and self.lam == 0.0:
            warn_user(f"hybrid at lambda 0: momentum {hparams['momentum']} has no effect (the CL branch, "
                      "whose teacher it moves, does not run)")

    def views(self, image: Tensor, g: torch.Generator) -> dict[str, Tensor]:
        """The MIM views under "mim.<key>", then the CL views under "cl.<key>" (drawn in that order from g)."""
        out = {f"mim.{k}": v for k, v in self.mim.views(image, g).items()}
        out.update({f"cl.{k}": v for k, v in self.cl.views(image, g).items()})
        return out

    def forward(self, views: dict[str, Tensor], step: StepInfo) -> tuple[Tensor, dict[str, float]]:
        metrics: dict[str, float] = {}
        loss: Tensor | None = None
        for branch, weight in ((self.mim, 1.0 - self.lam), (self.cl, self.lam)):
            if weight == 0.0:
                continue
            prefix = "mim." if branch is self.mim else "cl."
            part, part_metrics = branch({k[len(prefix):]: v for k, v in views.items() if k.startswith(prefix)},
                                        step)
            # the branch's loss is logged as <branch>_loss; the MIM one's recon_loss is that loss again
            metrics.update((k, v) for k, v in part_metrics.items() if k not in ("loss", "recon_loss"))
            metrics[f"{prefix[:-1]}_loss"] = part.item()
            loss = weight * part if loss is None else loss + weight * part
        assert loss is not None
        metrics["loss"] = loss.item()
        return loss, metrics

    def leaves_parameters_unused(self) -> bool:
        """At lambda 0 or 1 the other branch is skipped, so its heads get no gradient."""
        return self.lam in (0.0, 1.0)

    def stochastic_depth(self) -> float:
        """``drop_path`` if given, else ``(1 - lam) r_MIM + lam r_CL`` of the two branches' rates:
        the pure objectives' own rates at lam 0 and 1 (no published hybrid recipe states one)."""
        if self.hparams["drop_path"] is not None:
            return float(self.hparams["drop_path"])
        return (1.0 - self.lam) * self.mim.stochastic_depth() + self.lam * self.cl.stochastic_depth()

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return self.cl.momentum_pairs() if self.lam > 0.0 else []

    def after_backward(self, step: StepInfo) -> None:
        self.mim.after_backward(step)
        self.cl.after_backward(step)
