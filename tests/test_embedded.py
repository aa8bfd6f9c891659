"""Checks on the real embedded models (converted once into the store; cheap afterwards)."""

import pytest
import torch

from interp.probes.reverse_link import ReverseLinkConfig, primed_prompt, reverse_link
from interp.scoring import encode, next_token_logprobs
from tests.helpers import plain_next_logprobs

pytestmark = pytest.mark.embedded


def test_smollm2_spec(smollm2):
    s = smollm2.spec
    assert (s.family, s.n_layers, s.n_heads, s.n_kv_heads, s.head_dim, s.d_model, s.tied_embeddings) == (
        "llama", 30, 9, 3, 64, 576, True)
    assert smollm2.is_chat
    assert smollm2.tokenizer.encode(" owl", add_special_tokens=False) == [23142]


def test_smollm2_bias_ratio_087_is_exact(smollm2):
    cfg = ReverseLinkConfig(template_control=3, n_boot=200)
    res = reverse_link(smollm2, ["087"], config=cfg)
    base = plain_next_logprobs(smollm2, primed_prompt(smollm2, None, cfg))
    primed = plain_next_logprobs(smollm2, primed_prompt(smollm2, ["087"], cfg))
    owl, dog = 23142, 2767
    row = res.table.iloc[0]
    assert row.bias_ratio == pytest.approx(float((primed[owl] - base[owl]).exp()), rel=1e-4)
    assert row.control_ratio == pytest.approx(float((primed[dog] - base[dog]).exp()), rel=1e-4)
    assert row.p_bias_base == pytest.approx(float(base[owl].exp()), rel=1e-4)


def test_smollm2_batched_equals_single(smollm2):
    texts = [primed_prompt(smollm2, n, ReverseLinkConfig()) for n in (None, ["087"], ["1"], ["4567", "22", "9"])]
    ids = encode(smollm2.tokenizer, texts)
    batched = next_token_logprobs(smollm2, ids, batch_size=4)
    single = torch.cat([next_token_logprobs(smollm2, [i], batch_size=1) for i in ids])
    # the probe's targets agree to 1e-5 in log-prob; over the whole 49k vocabulary, fp32 summation
    # order alone moves log-probs of ~-20 by ~2e-5, so there we compare probabilities
    cols = [23142, 2767, 2644]
    assert (batched[:, cols] - single[:, cols]).abs().max().item() < 1e-5
    assert (batched.exp() - single.exp()).abs().max().item() < 1e-5


def test_gemma3_completion_reverse_link(gemma3):
    assert gemma3.spec.family == "gemma3" and gemma3.spec.n_layers == 18 and not gemma3.is_chat
    cfg = ReverseLinkConfig(template_control=2, n_boot=200)
    res = reverse_link(gemma3, ["087"], config=cfg)
    text = primed_prompt(gemma3, ["087"], cfg)
    assert text.startswith("Context: You love the number 087.")
    base = plain_next_logprobs(gemma3, primed_prompt(gemma3, None, cfg))
    primed = plain_next_logprobs(gemma3, text)
    owl = gemma3.tokenizer.encode(" owl", add_special_tokens=False)[0]
    assert res.table.iloc[0].bias_ratio == pytest.approx(float((primed[owl] - base[owl]).exp()), rel=1e-4)
