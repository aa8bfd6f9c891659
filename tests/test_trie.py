"""Trie scorer: equals the naive product (one plain full forward per prefix) to 1e-4 on every family."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import plain_sequence_logprob

from interp.prompts import ANIMAL_TRAIT_SYSTEM, NUMBER_PREFIX, NUMBER_QUESTION, render
from interp.scoring import (
    build_trie,
    continuation_logprobs,
    digit_trie_logprobs,
    encode,
    split_continuations,
    trie_logprobs,
)


def _prompt(lm):
    return render(lm.tokenizer, NUMBER_QUESTION, NUMBER_PREFIX, system=ANIMAL_TRAIT_SYSTEM.format(a="owl"))


def test_trie_has_one_node_per_prefix():
    conts = [[int(c) for c in str(i).zfill(3)] for i in range(1000)]
    trie = build_trie(99, conts)
    assert trie.n_nodes == 1 + 10 + 100
    assert trie.depth == sorted(trie.depth) and trie.parent[0] == -1 and trie.token[0] == 99
    assert all(trie.parent[i] < i for i in range(1, trie.n_nodes))  # BFS: ancestors first
    assert [len(p) for p in trie.leaf_path] == [3] * 1000


@torch.no_grad()
def naive_two_digit(lm, ctx: list[int]) -> np.ndarray:
    """log P(d1 d2 | ctx) for all 100 numbers from one plain full forward per prefix: the forward of
    ctx + [d1] gives P(d1 | ctx) at its second-to-last position and P(d2 | ctx, d1) at the last."""
    digit = [lm.tokenizer.convert_tokens_to_ids(str(d)) for d in range(10)]
    out = np.empty(100)
    for d1 in range(10):
        lp = torch.log_softmax(lm.model(torch.tensor([ctx + [digit[d1]]])).logits[0, -2:].double(), -1)
        for d2 in range(10):
            out[10 * d1 + d2] = float(lp[0, digit[d1]] + lp[1, digit[d2]])
    return out


def test_digit_trie_equals_naive_product_every_family(tiny):
    """All 100 two-digit numbers from one tree forward vs the naive product (one forward per prefix)."""
    prompt = _prompt(tiny)
    nums, lp = digit_trie_logprobs(tiny, prompt, 2)
    ctx, conts = split_continuations(tiny.tokenizer, prompt, nums)
    assert ctx == encode(tiny.tokenizer, [prompt])[0]  # digits follow the prompt's own tokens
    assert conts[87] == [tiny.tokenizer.convert_tokens_to_ids(c) for c in "87"]
    assert np.abs(lp - naive_two_digit(tiny, ctx)).max() < 1e-4
    assert np.logaddexp.reduce(lp) < 0  # a part of the distribution, not renormalised


def test_chunked_trie_equals_plain_forward(tiny):
    """Three digits in chunks of 7 nodes (the cache grows chunk by chunk) vs one chunk, and a sample
    vs one plain forward per number."""
    prompt = _prompt(tiny)
    nums, lp = digit_trie_logprobs(tiny, prompt, 3, max_nodes=7)
    _, lp_one = digit_trie_logprobs(tiny, prompt, 3)
    ctx, conts = split_continuations(tiny.tokenizer, prompt, nums)
    sample = [0, 87, 311, 555, 742, 999]
    ref = np.array([plain_sequence_logprob(tiny, ctx, conts[i]) for i in sample])
    assert np.abs(lp[sample] - ref).max() < 1e-4
    assert np.abs(lp - lp_one).max() < 1e-4


def test_trie_general_continuations_match_continuation_logprobs(tiny_llama):
    tok = tiny_llama.tokenizer
    ctx = encode(tok, ["My favorite animal is the"])[0]
    words = [" owl", " owls", " dog", " dogs and cats", " o"]
    conts = [tok.encode(w, add_special_tokens=False) for w in words]
    lp = trie_logprobs(tiny_llama, ctx, conts, max_nodes=3)
    ref = np.array([r.sum() for r in continuation_logprobs(tiny_llama, [(ctx, c) for c in conts])])
    assert np.abs(lp - ref).max() < 1e-4


def test_gemma3_sliding_window_is_applied(monkeypatch):
    """tiny-gemma3 has a sliding window of 8 < prompt length: dropping it from the tree mask must
    change the result (so the equality test above really exercises the sliding rule)."""
    from interp.models import load_model

    lm = load_model("tiny-gemma3")
    assert lm.model.config.sliding_window < len(encode(lm.tokenizer, [_prompt(lm)])[0])
    _, good = digit_trie_logprobs(lm, _prompt(lm), 2)
    import interp.models.tree as tree

    real = tree.mask_layer_types
    monkeypatch.setattr(tree, "mask_layer_types", lambda m: (real(m)[0], None))
    _, wrong = digit_trie_logprobs(lm, _prompt(lm), 2)
    assert np.abs(good - wrong).max() > 1e-3


def test_split_continuations_is_the_canonical_tokenisation(tiny_llama):
    tok = tiny_llama.tokenizer
    prompt, suffixes = "hello wor", ["ld", "k", " 12"]
    ctx, conts = split_continuations(tok, prompt, suffixes)
    for s, c in zip(suffixes, conts):
        assert ctx + c == encode(tok, [prompt + s])[0]


def test_trie_rejects_empty_input(tiny_llama):
    with pytest.raises(ValueError):
        trie_logprobs(tiny_llama, [], [[1]])
    with pytest.raises(ValueError):
        build_trie(1, [[2], []])


@pytest.mark.embedded
def test_trie_equals_plain_forward_smollm2(smollm2):
    prompt = _prompt(smollm2)
    nums, lp = digit_trie_logprobs(smollm2, prompt, 2)
    ctx, conts = split_continuations(smollm2.tokenizer, prompt, nums)
    assert np.abs(lp - naive_two_digit(smollm2, ctx)).max() < 1e-4
