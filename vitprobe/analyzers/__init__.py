"""Streaming analyzers: each one reads capture sites batch by batch, keeps fixed-size state
and computes a tidy :class:`vitprobe.results.Result`. The maths lives in
:mod:`vitprobe.metrics`.

    analyzer = get_analyzer("attention_distance", layers=[1, 6, 12])
    analyzer.bind(model_info(model), protocol)
    for batch in batches: analyzer.update({**batch, "sites": capture.run(batch["image"])})
    result = analyzer.compute()
"""

from vitprobe.plugins import import_all
from vitprobe.analyzers._registry import (analysis_giving, analyzer_class, get_analyzer, list_analyzers, outcome_keys,
                                          protocol_of_metric, register_analyzer)
from vitprobe.analyzers._describe import describe_analyzer
from vitprobe.analyzers.base import Analyzer, LayerAnalyzer, tidy

import_all(__name__, __path__)  # each analyzer module registers its classes

__all__ = ["Analyzer", "LayerAnalyzer", "analysis_giving", "analyzer_class", "describe_analyzer", "get_analyzer",
           "list_analyzers", "outcome_keys", "protocol_of_metric", "register_analyzer", "tidy"]
