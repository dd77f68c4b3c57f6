"""Layer 0 of a BEiT layout without position embeddings is named wherever its numbers appear."""

from __future__ import annotations

import pytest
import torch

from vitprobe.analysis import analyze
from vitprobe.comparability import setting_differences
from vitprobe.models.architecture import ArchSpec, build_model
from vitprobe.plots.style import protocol_caption

SIZE = dict(patch_size=8, embed_dim=32, depth=2, num_heads=2, img_size=32)
PARAMS = {"knn": {"layers": [0, 1, 2], "pooling": "mean", "k": 3}, "token_similarity": {"layers": [1, 2]}}


@pytest.fixture(scope="module")
def runs():
    torch.manual_seed(0)
    models = {"vit": build_model(ArchSpec(**SIZE)),
              "simmim": build_model(ArchSpec(family="beit", abs_pos_emb=False, rel_pos_bias="shared",
                                             layer_scale=0.1, **SIZE)),
              "beit": build_model(ArchSpec(family="beit", abs_pos_emb=True, rel_pos_bias="per_block", **SIZE))}
    return {name: analyze(model, "synthetic:16", ["knn", "token_similarity", "fourier"], batch_size=8,
                          progress=False, analyzer_params=PARAMS)
            for name, model in models.items()}


def test_only_a_model_without_absolute_positions_is_named_and_only_where_layer_0_is_read(runs):
    assert runs["simmim"]["knn"].protocol["layer_0"] == "patch embedding, no positions"
    assert runs["simmim"]["fourier"].protocol["layer_0"] == "patch embedding, no positions"  # its default: 0..L
    assert "layer_0" not in runs["simmim"]["token_similarity"].protocol  # blocks 1 and 2 only
    for name in ("vit", "beit"):
        assert all("layer_0" not in runs[name][analysis].protocol for analysis in runs[name]), name


def test_captions_name_the_runs_whose_layer_0_has_no_positions_and_no_setting_is_said_to_differ(runs):
    protocols = [runs[name]["knn"].protocol for name in ("vit", "simmim")]
    caption = protocol_caption(protocols, labels=["MoCo v3", "SimMIM"])
    assert "layer 0 patch embedding, no positions (SimMIM)" in caption
    assert setting_differences(protocols, ["MoCo v3", "SimMIM"]) == []


def test_a_summary_row_names_it_only_when_its_deepest_layer_is_0(runs):
    rows = runs["simmim"].summary()
    assert len(rows) and not rows["protocol"].str.contains("layer 0").any()  # read at block 2
    model = build_model(ArchSpec(family="beit", abs_pos_emb=False, rel_pos_bias="shared", **SIZE))
    only_0 = analyze(model, "synthetic:16", ["knn"], batch_size=8, progress=False,
                     analyzer_params={"knn": {"layers": [0], "pooling": "mean", "k": 3}})
    assert only_0.summary()["protocol"].str.contains("layer 0 patch embedding, no positions").all()
