"""Two-model patching and model differences: known answers on tiny models built from configs.

S is a copy of C with chosen weights changed, so what patching must recover is known exactly:
- patching a model into itself (or any site upstream of the change) recovers exactly 0;
- patching the last block's output, or every block's, recovers exactly 1 when only the blocks differ;
- patching the one changed MLP (or head) recovers 1.
"""

import copy

import numpy as np
import pandas as pd
import pytest
import torch

from interp.errors import UserError
from interp.mech.model_diff import dla_difference, weight_diff_summary, weight_diff_table
from interp.mech.model_patching import (
    SequenceMargin,
    layer_sites,
    margin_score,
    parse_site,
    patch_between,
    recovered_table,
)
from interp.models import load_model
from interp.models.hf_engine import local_model
from interp.models.loaded import LoadedModel

TEXTS = ["My favourite animal is the", "Name one animal: the", "1 2 3 4", "The owl and the dog said that"]
SCORE_IDS = ([5, 6], [7])


def prompts(lm):
    return [lm.tokenizer.encode(t, add_special_tokens=False) for t in TEXTS]


def variant(lm: LoadedModel, name: str, edit=None) -> LoadedModel:
    """A deep copy of `lm` (its own modules), with `edit(model)` applied under a fixed seed."""
    m = copy.deepcopy(lm.model)
    if edit is not None:
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            edit(m, g)
    return local_model(m, lm.tokenizer, lm.spec, name, "test")


def bump(param: torch.Tensor, g: torch.Generator, scale: float = 0.5) -> None:
    param.add_(scale * torch.randn(param.shape, generator=g) * param.abs().mean())


def every_site(spec):
    return ["embed", *layer_sites(spec.n_layers), *[f"L{l}H{h}" for l in range(spec.n_layers) for h in (0, spec.n_heads - 1)]]


@torch.no_grad()
def test_patching_a_model_into_itself_changes_nothing(tiny):
    """Every site, every family: m_patched == m_target bit for bit, so delta is exactly 0."""
    twin = variant(tiny, "twin")
    df = patch_between(twin, tiny, prompts(tiny), every_site(tiny.spec), margin_score(*SCORE_IDS))
    assert len(df) == len(TEXTS) * len(every_site(tiny.spec))
    assert (df.m_patched == df.m_target).all() and (df.m_source == df.m_target).all()
    t = recovered_table(df)
    assert (t.delta == 0).all() and t.recovered.isna().all()  # no difference to recover


def _changed_last_mlp(tiny):
    last = tiny.spec.n_layers - 1

    def edit(m, g):
        for p in tiny.spec.module(m, "mlp", last).parameters():
            bump(p, g)
    return variant(tiny, "S", edit)


@torch.no_grad()
def test_sites_upstream_of_the_change_recover_exactly_zero_and_the_changed_mlp_exactly_one(tiny):
    s = _changed_last_mlp(tiny)
    last = tiny.spec.n_layers - 1
    up = ["embed", *layer_sites(last), f"L{last}attn", f"L{last}H0"]
    sites = up + [f"L{last}mlp", f"L{last}resid"]
    t = recovered_table(patch_between(s, tiny, prompts(tiny), sites, margin_score(*SCORE_IDS))).set_index("site")
    assert (t.m_source != t.m_target).all()  # the change is visible
    assert (t.loc[up, "recovered"] == 0).all() and (t.loc[up, "delta"] == 0).all()
    assert t.loc[f"L{last}mlp", "recovered"] == pytest.approx(1, abs=1e-12)
    assert t.loc[f"L{last}resid", "recovered"] == pytest.approx(1, abs=1e-12)


@torch.no_grad()
def test_patching_every_residual_stream_recovers_exactly_one(tiny):
    """S differs from C in every block (attention and MLP), not in the embedding or head: patching
    resid_post of every layer (and of the last alone) gives S's margins."""
    def edit(m, g):
        for layer in range(tiny.spec.n_layers):
            bump(tiny.spec.module(m, "o_proj", layer).weight, g)
            for p in tiny.spec.module(m, "mlp", layer).parameters():
                bump(p, g)
    s = variant(tiny, "S", edit)
    allres = "+".join(f"L{l}resid" for l in range(tiny.spec.n_layers))
    df = patch_between(s, tiny, prompts(tiny), [allres, f"L{tiny.spec.n_layers - 1}resid"], margin_score(*SCORE_IDS))
    assert (df.m_source != df.m_target).all()
    assert np.array_equal(df.m_patched.to_numpy(), df.m_source.to_numpy())
    t = recovered_table(df)
    assert np.allclose(t.recovered, 1.0, atol=1e-12, rtol=0)
    # and the other way: C's residual streams in S give C's margins
    back = patch_between(tiny, s, prompts(tiny), [allres], margin_score(*SCORE_IDS))
    assert np.array_equal(back.m_patched.to_numpy(), back.m_source.to_numpy())


# multi-token words: 'owl' as (5,), (9, 10) and (9, 10, 11); 'dog' as (7,) and (12, 3)
MULTI = SequenceMargin.of([[5], [9, 10], [9, 10, 11]], [[7], [12, 3]])


def test_sequence_margin_prefixes_and_chain_rule():
    assert MULTI.prefixes == [(), (9,), (12,), (9, 10)]
    assert MULTI.next_tokens(()) == [5, 7, 9, 12] and MULTI.next_tokens((9, 10)) == [11]
    lp = {(): torch.log(torch.tensor([[0.1, 0.2, 0.3, 0.4]], dtype=torch.float64)),  # tokens 5, 7, 9, 12
          (9,): torch.log(torch.tensor([[0.5]], dtype=torch.float64)),                # 10 after 9
          (12,): torch.log(torch.tensor([[0.25]], dtype=torch.float64)),              # 3 after 12
          (9, 10): torch.log(torch.tensor([[0.5]], dtype=torch.float64))}             # 11 after 9 10
    owl, dog = 0.1 + 0.3 * 0.5 + 0.3 * 0.5 * 0.5, 0.2 + 0.4 * 0.25
    assert MULTI.combine(lp).item() == pytest.approx(np.log(owl) - np.log(dog), abs=1e-12)
    with pytest.raises(UserError):
        SequenceMargin.of([[5], []], [[7]])


@torch.no_grad()
def test_sequence_margin_with_single_tokens_equals_margin_score(tiny):
    s = _changed_last_mlp(tiny)
    sites = [f"L{tiny.spec.n_layers - 1}mlp", "L0attn"]
    single = patch_between(s, tiny, prompts(tiny), sites, margin_score(*SCORE_IDS))
    seq = patch_between(s, tiny, prompts(tiny), sites, SequenceMargin.of([[t] for t in SCORE_IDS[0]], [[t] for t in SCORE_IDS[1]]))
    for col in ("m_source", "m_target", "m_patched"):
        assert np.allclose(seq[col], single[col], atol=1e-10, rtol=0)


@torch.no_grad()
def test_multi_token_patching_known_answers_and_the_eval_scorer(tiny):
    """m of multi-token words matches eval-animal's scorer (target_logprobs); patching a model into
    itself gives exactly 0; the changed last MLP and the last residual stream recover exactly 1."""
    from interp.prompts import Target
    from interp.scoring import target_logprobs

    s = _changed_last_mlp(tiny)
    last = tiny.spec.n_layers - 1
    df = patch_between(s, tiny, prompts(tiny), ["L0resid", f"L{last}mlp", f"L{last}resid"], MULTI)
    targets = [Target("owl", "sum", ("a", "b", "c"), MULTI.a), Target("dog", "sum", ("d", "e"), MULTI.b)]
    ref = target_logprobs(s, prompts(tiny), targets)
    m_ref = ref[:, 0] - ref[:, 1]
    src = df[df.site == "L0resid"].sort_values("prompt").m_source.to_numpy()
    assert np.allclose(src, m_ref, atol=1e-5, rtol=0)  # float32 forwards, batched differently
    t = recovered_table(df).set_index("site")
    assert t.loc["L0resid", "delta"] == 0
    assert t.loc[f"L{last}mlp", "recovered"] == pytest.approx(1, abs=1e-12)
    assert t.loc[f"L{last}resid", "recovered"] == pytest.approx(1, abs=1e-12)
    same = patch_between(variant(tiny, "twin"), tiny, prompts(tiny), [f"L{last}resid", "embed"], MULTI)
    assert (same.m_patched == same.m_target).all()


@torch.no_grad()
def test_a_changed_head_is_recovered_by_that_head_alone(tiny_llama):
    """Only W_O's columns of head 1 in layer 1 change: patching L1H1 recovers 1, another head 0."""
    d = tiny_llama.spec.head_dim

    def edit(m, g):
        w = tiny_llama.spec.module(m, "o_proj", 1).weight  # (d_model, n_heads * head_dim)
        w[:, d:2 * d] += torch.randn(w[:, d:2 * d].shape, generator=g) * w.abs().mean() * 2
    s = variant(tiny_llama, "S", edit)
    t = recovered_table(patch_between(s, tiny_llama, prompts(tiny_llama), ["L1H1", "L1H0", "L1attn", "L0H1"],
                                      margin_score(*SCORE_IDS))).set_index("site")
    assert t.loc["L1H1", "recovered"] == pytest.approx(1, abs=1e-5)
    assert t.loc["L1attn", "recovered"] == pytest.approx(1, abs=1e-12)
    assert t.loc["L1H0", "recovered"] == pytest.approx(0, abs=1e-5)
    assert t.loc["L0H1", "recovered"] == 0


def test_recovered_table_is_the_ratio_of_means_with_a_paired_bootstrap():
    df = pd.DataFrame({"prompt": range(4), "site": "x", "m_source": [3.0, 5.0, 4.0, 6.0],
                       "m_target": [1.0, 1.0, 2.0, 2.0], "m_patched": [2.0, 2.0, 3.0, 5.0]})
    r = recovered_table(df).iloc[0]
    assert r.delta == pytest.approx(1.5)  # mean(m_patched - m_target) = (1 + 1 + 1 + 3) / 4
    assert r.recovered == pytest.approx(1.5 / 3.0)  # / mean(m_source - m_target) = (2 + 4 + 2 + 4) / 4
    assert r.recovered_lo <= r.recovered <= r.recovered_hi and r.recovered_lo < r.recovered_hi
    assert r.delta_lo <= 1.5 <= r.delta_hi


def test_sites_are_checked(tiny_llama):
    with pytest.raises(UserError, match="out of range"):
        parse_site("L9resid", 2, 4)
    with pytest.raises(UserError, match="is not one of"):
        parse_site("L1MLP", 2, 4)
    assert parse_site("L1H3", 2, 4).name == "L1H3" and parse_site("embed", 2, 4).kind == "embed"
    with pytest.raises(UserError, match="same lineage"):
        patch_between(load_model("tiny-gemma3"), tiny_llama, prompts(tiny_llama), ["L0resid"], margin_score(*SCORE_IDS))


@torch.no_grad()
def test_weight_diff_table_measures_exactly_the_changed_tensor(tiny_llama):
    delta = {}

    def edit(m, g):
        w = tiny_llama.spec.module(m, "mlp", 1).down_proj.weight
        d = torch.randn(w.shape, generator=g) * 0.01
        delta["d"], delta["w"] = d.double(), w.detach().double().clone()
        w += d
    s = variant(tiny_llama, "S", edit)
    t = weight_diff_table(s, tiny_llama)
    assert t.name.is_unique and "lm_head.weight" not in set(t.name)  # tied: counted once, as the embedding
    row = t[(t.layer == 1) & (t.module == "mlp.down_proj")].iloc[0]
    assert row.rel == pytest.approx(float(delta["d"].norm() / delta["w"].norm()), rel=1e-6)
    assert (t.drop(row.name).diff_norm == 0).all()
    summary = weight_diff_summary(t)
    top = summary.iloc[0]
    assert (top.module, top.max_layer) == ("mlp.down_proj", 1) and (summary.rel.iloc[1:] == 0).all()


@torch.no_grad()
def test_dla_difference_adds_up_to_the_logit_difference_change(tiny):
    s = _changed_last_mlp(tiny)
    comp, per = dla_difference(s, tiny, prompts(tiny), 5, 7)
    assert np.allclose(per.sum_a, per.ld_a, atol=1e-4) and np.allclose(per.sum_b, per.ld_b, atol=1e-4)
    assert comp.d.sum() == pytest.approx(float((per.ld_a - per.ld_b).mean()), abs=1e-4)
    assert (per.ld_a != per.ld_b).all()
    same, _ = dla_difference(variant(tiny, "twin"), tiny, prompts(tiny), 5, 7)
    assert (same.d == 0).all()  # a model against its copy: every component's difference is exactly 0


@torch.no_grad()
def test_patching_agrees_with_transformerlens_hooks(tiny_llama):
    """Reference: the same patch done with TransformerLens' bridge hooks (cache S's hook_resid_post /
    hook_mlp_out, write it into C's run) gives the same patched margin as our module hooks."""
    from interp.mech.activations import hook, run_cached

    def edit(m, g):
        for layer in range(tiny_llama.spec.n_layers):
            for p in tiny_llama.spec.module(m, "mlp", layer).parameters():
                bump(p, g)
    s = variant(tiny_llama, "S", edit)
    score = margin_score(*SCORE_IDS)
    ids = prompts(tiny_llama)
    ours = patch_between(s, tiny_llama, ids, ["L0resid", "L1mlp"], score).set_index(["site", "prompt"]).m_patched
    for site, name in (("L0resid", hook.resid_post(0)), ("L1mlp", hook.mlp_out(1))):
        for i, p in enumerate(ids):
            tokens = torch.tensor([p])
            _, acts = run_cached(s, tokens, [name], backend="bridge")
            src = acts[name]
            lg, _ = run_cached(tiny_llama, tokens, [], backend="bridge", hooks=[(name, lambda act, hook: src.to(act.dtype))])
            assert float(score(lg)[0]) == pytest.approx(ours[(site, i)], abs=1e-5), (site, i)


def test_batching_and_site_stacking_do_not_change_the_table(tiny):
    """Right-padded batches with several site copies per forward (the default) against one row and one
    site per forward (max_tokens=1: nothing padded, nothing stacked): equal up to fp32 summation order
    under a different batch shape. Tolerance: 1e-5 nats on margins of O(1) fp32 logits (a few hundred
    float32 ulps), far below any effect the tables report."""
    def edit(m, g):
        for p in tiny.spec.module(m, "mlp", tiny.spec.n_layers - 1).parameters():
            bump(p, g)
    s = variant(tiny, "S", edit)
    sites = [*every_site(tiny.spec), "L0resid+L1mlp"]
    for score in (margin_score(*SCORE_IDS), MULTI):
        stacked = patch_between(s, tiny, prompts(tiny), sites, score)
        alone = patch_between(s, tiny, prompts(tiny), sites, score, max_tokens=1)
        assert list(stacked.site) == list(alone.site) and list(stacked.prompt) == list(alone.prompt)
        for col in ("m_source", "m_target", "m_patched"):
            np.testing.assert_allclose(stacked[col], alone[col], atol=1e-5, rtol=0)


def test_patching_a_model_object_into_itself_leaves_no_hook(tiny_llama):
    """Source and target the same object: delta 0, and every hook patching added is removed afterwards.
    Hooks that were there before stay (transformers installs its own output-capturing hooks the first
    time a model is asked for hidden states or attentions, so an earlier test can leave some)."""
    def hooks():
        return {(name, kind, key) for name, m in tiny_llama.model.named_modules()
                for kind, table in (("post", m._forward_hooks), ("pre", m._forward_pre_hooks)) for key in table}
    before = hooks()
    df = patch_between(tiny_llama, tiny_llama, prompts(tiny_llama), ["L0resid", "L1mlp"], margin_score(*SCORE_IDS))
    assert np.allclose(df.m_patched, df.m_target, atol=1e-5, rtol=0)
    assert hooks() == before
