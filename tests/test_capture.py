"""The hook engine against independent computations on timm ViT and Beit models."""

from __future__ import annotations

import weakref

import pytest
import torch
import torch.nn.functional as F

from vitprobe.capture import Site, attention_sites, capture, model_info, token_sites
from vitprobe.errors import CaptureError
from vitprobe.models.architecture import ArchSpec, build_model

SPECS = {
    "vit": ArchSpec(patch_size=8, embed_dim=32, depth=3, num_heads=4, img_size=32),
    "vit_registers": ArchSpec(patch_size=8, embed_dim=32, depth=3, num_heads=2, img_size=32,
                              reg_tokens=2, layer_scale=0.1),
    "beit_shared": ArchSpec(family="beit", patch_size=8, embed_dim=32, depth=3, num_heads=4,
                            img_size=32, layer_scale=0.1, rel_pos_bias="shared",
                            abs_pos_emb=False, global_pool="avg"),
    "beit_per_block": ArchSpec(family="beit", patch_size=8, embed_dim=32, depth=3, num_heads=4,
                               img_size=32, layer_scale=0.1, rel_pos_bias="per_block",
                               abs_pos_emb=True, global_pool="avg"),
}


def _model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(SPECS[name])
    # Random relative position biases, so that leaving them out would be caught.
    for param_name, param in model.named_parameters():
        if "relative_position_bias_table" in param_name:
            torch.nn.init.normal_(param, std=0.5)
    return model


def _block_inputs(model: torch.nn.Module, images: torch.Tensor) -> list[torch.Tensor]:
    """Inputs of every block from timm's own forward_intermediates (no vitprobe hooks)."""
    final, inter = model.forward_intermediates(images, output_fmt="NLC", return_prefix_tokens=True)
    outputs = [torch.cat([prefix, spatial], dim=1) for spatial, prefix in inter]
    first = _embedding(model, images)
    return [first] + outputs[:-1]


def _embedding(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    x = model.patch_embed(images)
    if hasattr(model, "_pos_embed"):
        return model.norm_pre(model._pos_embed(x))
    x = torch.cat([model.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
    return x + model.pos_embed if model.pos_embed is not None else x


def _plain_softmax_attention(model: torch.nn.Module, layer: int, x: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(d) + relative bias) computed from the block's weights by hand."""
    block = model.blocks[layer - 1]
    attn = block.attn
    h = block.norm1(x)
    B, N, C = h.shape
    bias = attn.qkv.bias
    if getattr(attn, "q_bias", None) is not None:
        bias = torch.cat([attn.q_bias, attn.k_bias, attn.v_bias])
    qkv = F.linear(h, attn.qkv.weight, bias).reshape(B, N, 3, attn.num_heads, -1)
    q, k, _ = qkv.permute(2, 0, 3, 1, 4).unbind(0)
    if hasattr(attn, "q_norm"):
        q, k = attn.q_norm(q), attn.k_norm(k)
    logits = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
    if getattr(attn, "relative_position_bias_table", None) is not None:
        logits = logits + attn._get_rel_pos_bias()
    if getattr(model, "rel_pos_bias", None) is not None:
        logits = logits + model.rel_pos_bias()
    return logits.softmax(dim=-1)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_attention_equals_plain_softmax(name: str) -> None:
    model = _model(name)
    images = torch.randn(3, 3, 32, 32)
    info = model_info(model)
    with torch.no_grad():
        inputs = _block_inputs(model, images)
        with capture(model, attention_sites(info.depth)) as cap:
            got = cap.run(images)
        for layer in range(1, info.depth + 1):
            want = _plain_softmax_attention(model, layer, inputs[layer - 1])
            assert got[Site("attn", layer)].shape == (3, info.num_heads, info.num_tokens, info.num_tokens)
            torch.testing.assert_close(got[Site("attn", layer)], want, atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_tokens_equal_forward_intermediates(name: str) -> None:
    model = _model(name)
    images = torch.randn(2, 3, 32, 32)
    depth = model_info(model).depth
    with torch.no_grad():
        inputs = _block_inputs(model, images)
        _, inter = model.forward_intermediates(images, output_fmt="NLC", return_prefix_tokens=True)
        with capture(model, token_sites(depth)) as cap:
            got = cap.run(images)
    torch.testing.assert_close(got[Site("tokens", 0)], inputs[0], atol=0, rtol=0)
    for layer, (spatial, prefix) in enumerate(inter, start=1):
        torch.testing.assert_close(got[Site("tokens", layer)], torch.cat([prefix, spatial], 1),
                                   atol=0, rtol=0)


def _hook_count(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_model_unchanged_after_context_and_after_error() -> None:
    model = _model("vit")
    images = torch.randn(2, 3, 32, 32)
    fused_before = [blk.attn.fused_attn for blk in model.blocks]
    with torch.no_grad():
        before = model(images)
        with capture(model, attention_sites(3) + token_sites(3)) as cap:
            assert not any(blk.attn.fused_attn for blk in model.blocks)
            cap.run(images)
        def broken(x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("an error inside the pass")

        model.blocks[0].mlp.forward = broken
        with pytest.raises(RuntimeError, match="inside the pass"):
            with capture(model, [Site("attn", 2)]) as cap:
                cap.run(images)
        del model.blocks[0].mlp.forward  # the class's own forward again
        after = model(images)
    assert _hook_count(model) == 0
    assert [blk.attn.fused_attn for blk in model.blocks] == fused_before
    torch.testing.assert_close(before, after, atol=0, rtol=0)


def test_the_model_called_inside_a_capture_and_nested_captures_run_whole() -> None:
    """The hooks act only inside their own run(): model(x) inside the block gives the usual
    output, and a capture inside another (on the same model) gives what it gives alone."""
    model = _model("vit")
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        plain = model(images)
        with capture(model, [Site("attn", 1), Site("tokens", 3), Site("tokens", 0)]) as outer:
            torch.testing.assert_close(model(images), plain)
            assert outer._store == {}  # the model called outside run() kept nothing
            alone = outer.run(images)
            with capture(model, [Site("tokens", 1)]) as inner:
                assert set(inner.run(images)) == {Site("tokens", 1)}
                nested = outer.run(images)
            torch.testing.assert_close(model(images), plain)
    assert set(nested) == set(alone)
    for site in alone:
        torch.testing.assert_close(nested[site], alone[site], atol=0, rtol=0)
    assert _hook_count(model) == 0


def test_only_requested_attention_is_unfused_and_deeper_blocks_not_run() -> None:
    model = _model("vit")
    calls = []
    model.blocks[2].register_forward_hook(lambda *_: calls.append(3))
    for blk in model.blocks:
        blk.attn.fused_attn = True
    with torch.no_grad(), capture(model, [Site("attn", 1), Site("tokens", 2)]) as cap:
        assert [blk.attn.fused_attn for blk in model.blocks] == [False, True, True]
        out = cap.run(torch.randn(2, 3, 32, 32))
    assert set(out) == {Site("attn", 1), Site("tokens", 2)}
    assert calls == []  # block 3 was never computed


def test_embedding_only_runs_no_block() -> None:
    model = _model("vit")
    calls = []
    model.blocks[0].register_forward_hook(lambda *_: calls.append(1))
    with torch.no_grad(), capture(model, [Site("tokens", 0)]) as cap:
        out = cap.run(torch.randn(1, 3, 32, 32))
    assert out[Site("tokens", 0)].shape == (1, 17, 32)
    assert calls == []


def test_site_that_does_not_fire_raises() -> None:
    model = _model("vit")
    attn = model.blocks[1].attn

    def fused_only(x, attn_mask=None, is_causal=False):  # an attention that ignores fused_attn
        B, N, C = x.shape
        q, k, v = attn.qkv(x).reshape(B, N, 3, attn.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        return attn.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, N, C))

    attn.forward = fused_only
    with torch.no_grad(), capture(model, [Site("attn", 2)]) as cap:
        with pytest.raises(CaptureError, match="attn.2"):
            cap.run(torch.randn(1, 3, 32, 32))
    assert _hook_count(model) == 0


def test_bad_sites_are_rejected() -> None:
    model = _model("vit")
    with pytest.raises(CaptureError, match="outside this model"):
        with capture(model, [Site("attn", 4)]):
            pass
    with pytest.raises(CaptureError, match="outside this model"):
        with capture(model, [Site("attn", 0)]):
            pass
    with pytest.raises(CaptureError, match="unknown site kind"):
        with capture(model, [Site("mlp", 1)]):
            pass
    assert _hook_count(model) == 0


def test_one_site_alone_and_images_of_another_size() -> None:
    model = _model("vit")
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad(), capture(model, Site("attn", 2)) as cap:
        assert set(cap.run(images)) == {Site("attn", 2)}
        with pytest.raises(CaptureError, match="images are 48x48 px but the model takes 32x32"):
            cap.run(torch.randn(2, 3, 48, 48))
    assert _hook_count(model) == 0


def test_sites_can_be_given_as_they_print_or_as_pairs() -> None:
    model = _model("vit")
    images = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        for given in ("attn.2", ("attn", 2), ["attn.2", ("tokens", 1)], [Site("attn", 2)]):
            with capture(model, given) as cap:
                found = cap.run(images)
            assert Site("attn", 2) in found  # and indexed as it was given, printed or as a pair
            assert found["attn.2"] is found[("attn", 2)] is found[Site("attn", 2)]
        with pytest.raises(KeyError, match=r"'tokens.2' was not captured; the capture holds attn.2\b"):  # the last capture's sites
            found["tokens.2"]
        for bad in ("attn", "attn.two", [("attn", "2")], [3]):
            with pytest.raises(CaptureError, match=r"is not a site; give Site\('attn', 3\), \('attn', 3\) or 'attn.3'"):
                capture(model, bad).__enter__()
    assert _hook_count(model) == 0


@pytest.mark.parametrize("images, message", [
    (torch.randn(3, 32, 32), r"one image without a batch dimension; use images.unsqueeze\(0\)"),
    (torch.randn(2, 32, 32, 3), r"channels last; use images.permute\(0, 3, 1, 2\)"),
    (torch.randn(2, 1, 32, 32), r"give a batch of RGB images \(B, 3, H, W\)"),
    (torch.randn(2, 3, 32, 32, dtype=torch.float64), r"images are torch.float64 and the model's weights "
                                                     r"torch.float32; convert them: images.to\(torch.float32\)"),
    ([[0.0]], "images must be a torch.Tensor"),
])
def test_images_that_do_not_fit_are_one_line_naming_the_fix(images, message) -> None:
    model = _model("vit")
    with torch.no_grad(), capture(model, "attn.1") as cap:
        with pytest.raises(CaptureError, match=message):
            cap.run(images)


def test_running_a_capture_after_its_block_says_so() -> None:
    model = _model("vit")
    with capture(model, "attn.1") as cap:
        pass
    with pytest.raises(CaptureError, match=r"hooks are not installed: call run inside `with capture"):
        cap.run(torch.randn(1, 3, 32, 32))


def test_nothing_is_retained_between_batches() -> None:
    model = _model("vit")
    refs = []
    with torch.no_grad(), capture(model, attention_sites(3) + token_sites(3)) as cap:
        for _ in range(5):
            out = cap.run(torch.randn(2, 3, 32, 32))
            refs.extend(weakref.ref(t) for t in out.values())
            del out
        assert cap._store == {}
    assert all(r() is None for r in refs)


def test_model_info_reads_prefix_tokens_and_grid() -> None:
    info = model_info(_model("vit_registers"))
    assert (info.num_prefix_tokens, info.grid, info.num_heads, info.depth) == (3, (4, 4), 2, 3)
    assert info.num_tokens == 19 and info.final_norm is not None


def test_sites_of_a_half_precision_model_come_back_in_float32() -> None:
    """Analyzers compute in float32 whatever the model's dtype: each site is handed out as float32."""
    model = _model("vit").to(torch.bfloat16)
    images = torch.randn(2, 3, 32, 32, dtype=torch.bfloat16)
    with torch.no_grad(), capture(model, [Site("attn", 2), Site("tokens", 0), Site("tokens", 3)]) as cap:
        out = cap.run(images)
    assert {site: t.dtype for site, t in out.items()} == {
        Site("attn", 2): torch.float32, Site("tokens", 0): torch.float32, Site("tokens", 3): torch.float32}


def test_model_info_of_a_model_of_oblong_images() -> None:
    from timm.models.vision_transformer import VisionTransformer

    model = VisionTransformer(img_size=(32, 48), patch_size=8, embed_dim=32, depth=1, num_heads=2, num_classes=0)
    info = model_info(model)
    assert (info.grid, info.input_size, info.num_tokens) == ((4, 6), (32, 48), 25)
