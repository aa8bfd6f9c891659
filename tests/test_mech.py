"""Activation access (bridge vs HF vs nnsight), DLA and patching: known-answer tests on tiny models of each family."""

from __future__ import annotations

import pytest
import torch

from interp.errors import UserError
from interp.mech.activations import cache_last, hook
from interp.mech.attribution import (
    decompose_residual,
    decomposition_hooks,
    freeze_norm,
    head_outputs,
    logit_attribution,
)
from interp.mech.patching import parse_component, patch_components, recovered_summary
from interp.models import load_model
from tests.helpers import plain_resid_posts

FAMILIES = ["llama", "gemma3", "gpt2"]
PROMPTS = [[5, 6, 7, 8, 9, 10, 11], [20, 21, 22, 23, 24, 25, 26], [30, 31, 32, 33, 34]]


def fresh(family: str):
    """A fresh tiny model (the bridge boots on a private copy of whatever it is given); eager
    attention like the bridge's, so references agree to float rounding."""
    return load_model(f"tiny-{family}", attn_implementation="eager")


@pytest.mark.parametrize("family", FAMILIES)
def test_bridge_resid_post_equals_hf_hidden_states(family):
    ref, lm = fresh(family), fresh(family)
    names = [hook.resid_post(layer) for layer in range(lm.spec.n_layers)]
    logits, acts = cache_last(lm, PROMPTS, names)
    for i, ids in enumerate(PROMPTS):
        states, ref_logits = plain_resid_posts(ref, ids)
        for layer, s in enumerate(states):
            torch.testing.assert_close(acts[hook.resid_post(layer)][i], s, atol=1e-4, rtol=1e-4)  # bridge re-implements attention: fp32 rounding
        torch.testing.assert_close(logits[i], ref_logits, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("family", FAMILIES)
def test_bridge_and_nnsight_agree_on_per_head_outputs(family):
    lm = fresh(family)
    names = [hook.z(layer) for layer in range(lm.spec.n_layers)] + [hook.resid_pre(1), hook.resid_post(1)]
    _, b = cache_last(lm, PROMPTS, names, backend="bridge")
    _, n = cache_last(lm, PROMPTS, names, backend="nnsight")
    for name in names:
        assert b[name].shape == n[name].shape
        torch.testing.assert_close(b[name], n[name], atol=1e-5, rtol=1e-5)
    assert b[hook.z(0)].shape == (len(PROMPTS), lm.spec.n_heads, lm.spec.head_dim)
    # per-head outputs through W_O agree too, and sum (plus o_proj's bias) to o_proj(z)
    for layer in range(lm.spec.n_layers):
        w_o = lm.spec.out_weight(lm.model, layer).detach()
        ob, on = head_outputs(b[hook.z(layer)], w_o), head_outputs(n[hook.z(layer)], w_o)
        torch.testing.assert_close(ob, on, atol=1e-5, rtol=1e-5)
        o_proj = lm.spec.module(lm.model, "o_proj", layer)
        with torch.no_grad():
            direct = o_proj(b[hook.z(layer)].flatten(1))
        bias = o_proj.bias if getattr(o_proj, "bias", None) is not None else 0.0
        torch.testing.assert_close(ob.sum(1) + bias, direct, atol=1e-5, rtol=1e-5)


def test_nnsight_rejects_unsupported_hooks(tiny_llama):
    with pytest.raises(ValueError, match="nnsight backend"):
        cache_last(tiny_llama, PROMPTS[:1], [hook.pattern(0)], backend="nnsight")


@pytest.mark.parametrize("family", FAMILIES)
def test_nnsight_mlp_out_and_head_results_agree_with_the_bridge(family):
    """hook_mlp_out read off the module (Gemma: its post-feedforward norm) equals the bridge's, and
    hook_result computed inside the trace equals z_h W_O,h from the local weights."""
    lm = fresh(family)
    L = lm.spec.n_layers
    names = [hook.mlp_out(layer) for layer in range(L)] + [hook.z(layer) for layer in range(L)]
    _, b = cache_last(lm, PROMPTS, names, backend="bridge")
    _, n = cache_last(lm, PROMPTS, [hook.mlp_out(layer) for layer in range(L)] + [hook.result(layer) for layer in range(L)],
                      backend="nnsight")
    for layer in range(L):
        torch.testing.assert_close(n[hook.mlp_out(layer)], b[hook.mlp_out(layer)], atol=1e-5, rtol=1e-5)
        expect = head_outputs(b[hook.z(layer)], lm.spec.out_weight(lm.model, layer).detach())
        torch.testing.assert_close(n[hook.result(layer)], expect, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_frozen_norm_reproduces_the_norm(family):
    lm = fresh(family)
    norm = lm.spec.module(lm.model, "final_norm")
    y = torch.randn(4, lm.spec.d_model) * 3
    fn = freeze_norm(norm, y)
    with torch.no_grad():
        expect = norm(y)
    torch.testing.assert_close(fn.apply(y) + (fn.bias if fn.bias is not None else 0), expect, atol=1e-5, rtol=1e-5)
    # linear in its argument once frozen
    a, b = torch.randn(4, lm.spec.d_model), torch.randn(4, lm.spec.d_model)
    torch.testing.assert_close(fn.apply(a + 2 * b), fn.apply(a) + 2 * fn.apply(b), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_dla_sums_to_the_actual_logit_difference(family):
    """Known answer: embed + every head + attention biases + every MLP + norm/head biases = logit[b] - logit[c]
    of a plain HF forward on an untouched copy of the model."""
    ref, lm = fresh(family), fresh(family)
    bias_id, control_id = 100, 200
    logits, acts = cache_last(lm, PROMPTS, decomposition_hooks(lm.spec))
    dec = decompose_residual(lm.model, lm.spec, acts)
    assert len(dec.names) == 1 + lm.spec.n_layers * (lm.spec.n_heads + 2)
    la = logit_attribution(lm.model, lm.spec, dec, bias_id, control_id, logits)
    for i, ids in enumerate(PROMPTS):
        states, ref_logits = plain_resid_posts(ref, ids)
        torch.testing.assert_close(dec.vectors[i].sum(0), states[-1], atol=1e-4, rtol=1e-4)
        actual = float(ref_logits[bias_id] - ref_logits[control_id])
        assert float(la.total[i]) == pytest.approx(actual, abs=1e-4)
        assert float(la.actual[i]) == pytest.approx(actual, abs=1e-4)
    # the answer is not trivially carried by one term
    assert (la.contributions.abs() > 1e-3).sum(1).min() > 3


@torch.no_grad()
def hf_patched_logit_diff(lm, clean: list[int], corrupt: list[int], layer: int, head: int, b: int, c: int) -> float:
    """Independent patching: a forward pre-hook on o_proj copies head `head`'s slice of the clean input."""
    o_proj = lm.spec.module(lm.model, "o_proj", layer)
    d = lm.spec.head_dim
    saved: dict[str, torch.Tensor] = {}
    h = o_proj.register_forward_pre_hook(lambda m, args: saved.__setitem__("z", args[0].clone()))
    lm.model(torch.tensor([clean]))
    h.remove()

    def patch(m, args):
        z = args[0].clone()
        z[..., head * d:(head + 1) * d] = saved["z"][..., head * d:(head + 1) * d]
        return (z,)

    h = o_proj.register_forward_pre_hook(patch)
    try:
        logits = lm.model(torch.tensor([corrupt])).logits[0, -1]
    finally:
        h.remove()
    return float(logits[b] - logits[c])


@pytest.mark.parametrize("family", FAMILIES)
def test_head_patching_matches_an_o_proj_pre_hook(family):
    ref, lm = fresh(family), fresh(family)
    clean, corrupt = [PROMPTS[0], PROMPTS[1]], [PROMPTS[1], PROMPTS[0]]
    df = patch_components(lm, clean, corrupt, ["L1H2", "L0H1+L1H3", "L1MLP"], 100, 200)
    assert len(df) == 6 and list(df.component.unique()) == ["L1H2", "L0H1+L1H3", "L1MLP"]
    for pair in range(2):
        row = df[(df.component == "L1H2") & (df.pair == pair)].iloc[0]
        expect = hf_patched_logit_diff(ref, clean[pair], corrupt[pair], 1, 2, 100, 200)
        assert row.ld_patched == pytest.approx(expect, abs=1e-4)
        assert row.recovered == pytest.approx((row.ld_patched - row.ld_corrupt) / (row.ld_clean - row.ld_corrupt))
    s = recovered_summary(df)
    assert list(s.component) == ["L1H2", "L0H1+L1H3", "L1MLP"]


def test_patching_every_component_of_the_last_layer_and_the_residual_recovers_all(tiny_llama):
    """Patching clean into an identical run changes nothing; patching a component into a different
    prompt changes the logit difference."""
    df = patch_components(tiny_llama, [PROMPTS[0]], [PROMPTS[0]], ["L1H0", "L1MLP"], 100, 200)
    assert (df.ld_patched - df.ld_corrupt).abs().max() < 1e-5
    df = patch_components(tiny_llama, [PROMPTS[0]], [PROMPTS[1]], ["L1MLP"], 100, 200)
    assert abs(df.ld_patched[0] - df.ld_corrupt[0]) > 1e-3


def test_patching_needs_aligned_prompts_and_valid_components(tiny_llama):
    with pytest.raises(UserError, match="aligned"):
        patch_components(tiny_llama, [PROMPTS[0]], [PROMPTS[2]], ["L1H0"], 100, 200)
    with pytest.raises(UserError, match="not a head"):
        parse_component("H3", 2, 4)
    with pytest.raises(UserError, match="out of range"):
        parse_component("L2H0", 2, 4)
    assert parse_component("L1MLP", 2, 4) == (1, None)


def tiny_gemma_v1():
    """A random 2-layer Gemma (v1) of Gemma-2B's shape family (1 kv head, tied embeddings, embeddings
    scaled by sqrt(d)): the tiny alias `tiny-gemma` (every tiny family: tests/test_arch_conformance.py)."""
    return load_model("tiny-gemma")


def test_gemma_v1_spec_and_dla_closure():
    """Gemma (v1) is in ArchSpec.LAYOUTS: shapes read from its config, and the DLA of its heads, MLPs and
    embedding sums to the logit difference of a plain forward (as for the other families)."""
    ref, lm = tiny_gemma_v1(), tiny_gemma_v1()
    s = lm.spec
    assert (s.model_type, s.n_layers, s.n_heads, s.n_kv_heads, s.head_dim, s.d_model, s.tied_embeddings) == \
        ("gemma", 2, 4, 1, 16, 64, True)
    logits, acts = cache_last(lm, PROMPTS, decomposition_hooks(s))
    dec = decompose_residual(lm.model, s, acts)
    la = logit_attribution(lm.model, s, dec, 100, 200, logits)
    for i, ids in enumerate(PROMPTS):
        states, ref_logits = plain_resid_posts(ref, ids)
        torch.testing.assert_close(dec.vectors[i].sum(0), states[-1], atol=1e-4, rtol=1e-4)
        assert float(la.total[i]) == pytest.approx(float(ref_logits[100] - ref_logits[200]), abs=1e-4)
    assert (la.contributions.abs() > 1e-3).sum(1).min() > 3
