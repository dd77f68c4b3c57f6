"""Collapse warnings of a training run: what the health metrics show, and the papers' advice."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Collapse:
    """One collapse that the health metrics show: its kind (one of ``COLLAPSE_KINDS``), the
    values measured and the advice; ``str()`` gives all three. Both wordings start with the
    kind, by which a recorded warning is recognised."""

    kind: str
    measured: str
    advice: str

    def __str__(self) -> str:
        return f"{self.kind} ({self.measured}): {self.advice}"

    def persisting(self, since: int) -> str:
        """The short line for a collapse that has shown every epoch since epoch ``since``."""
        return f"{self.kind} persists ({self.measured}) since epoch {since}, whose warning gives the advice"


COLLAPSE_KINDS = ("DINO collapse to one prototype", "DINO collapse to the uniform distribution",
                  "contrastive collapse")


def collapse_warnings(metrics: dict[str, float], K: int | None, momentum: float | None = None) -> list[Collapse]:
    """The papers' advice when the health metrics show a collapse (for DINO on a short run, also
    what vitprobe measured on the tiny preset: a lower teacher momentum), worded from the values
    in force: the epoch's mean ``teacher_temp`` metric and the base teacher ``momentum``.

    DINO (K prototypes): teacher_batch_entropy < 0.1 log K means one prototype takes all
    images; teacher_entropy > 0.9 log K means the teacher is near uniform. Contrastive
    (K = embedding width): emb_std * sqrt(K) < 0.1 means the embeddings collapsed to a point
    (healthy is about 1).
    """
    one, uniform, contrastive = COLLAPSE_KINDS
    out: list[Collapse] = []
    if K and "teacher_batch_entropy" in metrics:
        log_k = math.log(K)
        if metrics["teacher_batch_entropy"] < 0.1 * log_k:
            out.append(Collapse(one, f"teacher batch entropy {metrics['teacher_batch_entropy']:.3g} of log K = "
                                     f"{log_k:.3g}",
                                "centring is too weak; lower center_momentum or raise teacher_temp"))
        elif metrics.get("teacher_entropy", 0.0) > 0.9 * log_k:
            out.append(Collapse(
                uniform, f"teacher entropy {metrics['teacher_entropy']:.3g} of log K = {log_k:.3g}",
                f"sharpening is too weak; "
                f"{_lower_advice(metrics.get('teacher_temp'), 'teacher_temp / warmup_teacher_temp', _DINO_TEMP, 'DINO code default')}, "
                f"and on a run of a few hundred steps "
                f"{_lower_advice(momentum, 'teacher momentum', _SHORT_RUN_MOMENTUM, 'measured on the tiny preset')} "
                f"so that the teacher leaves its random initialisation (or train for more steps)"))
    if K and "emb_std" in metrics and metrics["emb_std"] * math.sqrt(K) < 0.1:
        out.append(Collapse(contrastive, f"embedding std {metrics['emb_std']:.3g}, healthy about {1 / math.sqrt(K):.3g}",
                            "lower the learning rate, keep the predictor and BN in the projector, check the "
                            "momentum schedule"))
    return out


_DINO_TEMP = 0.04  # main_dino.py's teacher_temp and warmup_teacher_temp default
_SHORT_RUN_MOMENTUM = 0.95  # a teacher that moves within a few hundred steps (tiny preset)


def _lower_advice(in_force: float | None, what: str, suggested: float, source: str) -> str:
    """Advice to lower ``what``: to ``suggested`` where that is below the value in force (or
    the value is unknown), else below the value in force V (e.g. 2 V - 1 for a momentum, V / 2
    for anything else)."""
    if in_force is None or in_force > suggested + 1e-12:
        now = "" if in_force is None else f" from {in_force:.3g}"
        return f"lower {what}{now} to {suggested:g} ({source})"
    further = 2 * in_force - 1 if "momentum" in what else in_force / 2
    return f"lower {what} below its {in_force:.3g} (e.g. {further:.3g})"
