"""Pure functions on tensors behind every analysis; usable on your own tensors in Jupyter.

Attention tensors are post-softmax probabilities (B, H, N, N); token tensors are the residual
stream (B, N, C); the first ``num_prefix_tokens`` tokens (CLS, registers) are dropped where a
metric is about patches. See each function's docstring for the definitions.
"""

from vitprobe.metrics._checks import MetricInputError, ShapeError, patch_attention, patch_grid, patch_tokens
from vitprobe.metrics.accuracy import accuracy_standard_error
from vitprobe.metrics.attention import (
    attention_distance,
    attention_nmi,
    attention_nmi_and_diversity,
    distance_matrix,
    even_attention_distance,
    head_diversity,
)
from vitprobe.metrics.fourier import fourier_delta_log_amplitude, fourier_frequencies
from vitprobe.metrics.knn import knn_predict
from vitprobe.metrics.logistic import LogisticProbe, fit_logistic
from vitprobe.metrics.masks import attention_mask, jaccard, jaccard_matrix, upsample_patch_mask
from vitprobe.metrics.spectrum import (
    covariance_from_sums,
    log_singular_values,
    moment_sums,
    token_covariance_log_spectrum,
)
from vitprobe.metrics.tokens import token_cosine_similarity, unit_rows

__all__ = [
    "LogisticProbe",
    "MetricInputError",
    "ShapeError",
    "accuracy_standard_error",
    "attention_distance",
    "attention_mask",
    "attention_nmi",
    "attention_nmi_and_diversity",
    "covariance_from_sums",
    "distance_matrix",
    "even_attention_distance",
    "fit_logistic",
    "fourier_delta_log_amplitude",
    "fourier_frequencies",
    "head_diversity",
    "jaccard",
    "jaccard_matrix",
    "knn_predict",
    "log_singular_values",
    "moment_sums",
    "patch_attention",
    "patch_grid",
    "patch_tokens",
    "token_cosine_similarity",
    "token_covariance_log_spectrum",
    "unit_rows",
    "upsample_patch_mask",
]
