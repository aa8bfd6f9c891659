import numpy as np
import torch

from interp.prompts import make_target, render
from interp.scoring import continuation_logprobs, encode, left_pad, next_token_logprobs, target_logprobs
from tests.helpers import plain_next_logprobs, plain_sequence_logprob

PRIMES = ["", "You love 087.", "You love 1. You love 1. You love 1.", "You love 4567 and 22."]


def _prompts(lm):
    return [render(lm.tokenizer, "What is your favorite animal?", "My favorite animal is the", system=s or None)
            for s in PRIMES]


def test_left_pad_positions():
    b = left_pad([[1, 2, 3], [4]], pad_id=0)
    assert b["input_ids"].tolist() == [[1, 2, 3], [0, 0, 4]]
    assert b["attention_mask"].tolist() == [[1, 1, 1], [0, 0, 1]]
    assert b["position_ids"].tolist() == [[0, 1, 2], [0, 0, 0]]


def test_batched_equals_one_at_a_time(tiny):
    ids = encode(tiny.tokenizer, _prompts(tiny))
    assert len({len(i) for i in ids}) > 1, "prompts must differ in length to exercise padding"
    batched = next_token_logprobs(tiny, ids, batch_size=len(ids))
    single = torch.cat([next_token_logprobs(tiny, [i], batch_size=1) for i in ids])
    assert (batched - single).abs().max().item() < 1e-5


def test_next_token_matches_plain_forward(tiny):
    texts = _prompts(tiny)
    got = next_token_logprobs(tiny, encode(tiny.tokenizer, texts), batch_size=3)
    for k, t in enumerate(texts):
        ref = plain_next_logprobs(tiny, t)
        assert torch.allclose(got[k].double(), ref, atol=1e-5)


def test_continuation_logprobs_teacher_forced(tiny):
    ids = encode(tiny.tokenizer, _prompts(tiny))
    conts = [[40], [41, 42], [43, 44, 45], [46, 47]]
    got = continuation_logprobs(tiny, list(zip(ids, conts)), batch_size=4)
    for c, x, g in zip(ids, conts, got):
        assert g.shape == (len(x),)
        assert abs(g.sum() - plain_sequence_logprob(tiny, c, x)) < 1e-4


def test_target_logprobs_single_multi_and_sum(tiny_llama):
    lm = tiny_llama
    texts = _prompts(lm)
    ids = encode(lm.tokenizer, texts)
    owl = make_target(lm.tokenizer, "owl")  # ' owl' is one token of the tiny vocabulary
    owl_nospace = make_target(lm.tokenizer, "owl", prompt_ends_with_space=True, allow_multi_token=True)
    assert owl.single_token and not owl_nospace.single_token  # 'owl' = 'ow' + 'l'
    owl_sum = make_target(lm.tokenizer, "owl", policy="sum")
    got = target_logprobs(lm, ids, [owl, owl_nospace, owl_sum])
    for k, t in enumerate(texts):
        ref = plain_next_logprobs(lm, t)
        assert abs(got[k, 0] - ref[owl.token_ids[0][0]].item()) < 1e-5
        assert abs(got[k, 1] - plain_sequence_logprob(lm, ids[k], list(owl_nospace.token_ids[0]))) < 1e-4
        manual = np.logaddexp.reduce([plain_sequence_logprob(lm, ids[k], list(v)) for v in owl_sum.token_ids])
        assert abs(got[k, 2] - manual) < 1e-4
    assert np.all(got[:, 2] >= got[:, 0])  # the sum includes ' owl'


def test_encode_adds_bos_once_when_tokenizer_does():
    from tokenizers import processors

    from interp.models.tiny import tiny_tokenizer

    tok = tiny_tokenizer()
    bos = tok.bos_token_id
    tok._tokenizer.post_processor = processors.TemplateProcessing(single="<|im_start|> $A", special_tokens=[("<|im_start|>", bos)])
    assert encode(tok, ["My favorite"])[0][0] == bos
    assert encode(tok, ["<|im_start|>My favorite"])[0].count(bos) == 1
    plain = __import__("interp.models.tiny", fromlist=["x"]).tiny_tokenizer()
    assert bos not in encode(plain, ["My favorite"])[0]


def test_batches_respect_token_budget():
    from interp.scoring import _batches

    lengths = [10, 10, 10, 10, 1000]
    order = sorted(range(5), key=lambda i: lengths[i])
    assert _batches(order, 16, lengths, max_tokens=1500) == [[0, 1, 2, 3], [4]]
    assert _batches(order, 2, lengths, max_tokens=10**6) == [[0, 1], [2, 3], [4]]


def test_forest_logprobs_equals_one_forward_per_sequence(tiny):
    """Several tries per forward (right-padded, 4D tree masks): every sequence's log-likelihood equals a
    plain full forward of context + continuation within 1e-4 (fp32 summation order), whatever the
    token budget cuts the forest into, duplicates and a continuation that is a prefix of another
    included."""
    from interp.models.tree import TreePlan
    from interp.scoring import forest_logprobs

    ctxs = encode(tiny.tokenizer, _prompts(tiny)[:3])
    conts = [[[40, 41, 42], [40, 41, 43], [40, 44], [40, 41]],
             [[50], [51, 52, 53, 54], [51, 52, 55, 56]],
             [[60, 61], [60, 61]]]
    plans = [TreePlan.build(c, x) for c, x in zip(ctxs, conts)]
    for budget in (None, 1):  # one forward for the forest; one trie per forward
        got = forest_logprobs(tiny, plans, max_tokens=budget)
        for c, xs, g in zip(ctxs, conts, got):
            assert [a.shape for a in g] == [(len(x),) for x in xs]
            want = [plain_sequence_logprob(tiny, c, x) for x in xs]
            np.testing.assert_allclose([a.sum() for a in g], want, atol=1e-4)
    per_token = continuation_logprobs(tiny, [(c, x) for c, xs in zip(ctxs, conts) for x in xs], batch_size=4)
    np.testing.assert_allclose(np.concatenate([a for g in got for a in g]), np.concatenate(per_token), atol=1e-4)


def test_prefix_groups_share_a_start_and_stay_small():
    from interp.scoring import prefix_groups

    pairs = [((1,), (5, 6)), ((1,), (7,)), ((2,), (5, 6)), ((1,), (5, 8)), ((1,), (5, 9)), ((1,), (5, 10))]
    assert prefix_groups(pairs, group=2) == [((1,), [0, 3]), ((1,), [4, 5]), ((1,), [1]), ((2,), [2])]
    prompt = [((1, 2, 3), (5,)), ((1, 2, 3), (7, 8)), ((1, 2, 3), (9,)), ((4,), (6,))]  # a prompt is shared whole
    assert prefix_groups(prompt, group_long=2) == [((1, 2, 3), [0, 1]), ((1, 2, 3), [2]), ((4,), [3])]


def test_score_sentences_trie_path_equals_plain_path(tiny):
    """The sentence scorer's tries (sentences sharing a start, duplicates, several tries) give the plain
    scorer's per-sentence sums within 1e-4 and the same token counts."""
    from interp.evals.sentence import score_sentences, sentence_pairs
    from interp.scoring import TRIE_GROUP

    base = ["The nurse said she was tired.", "The nurse said he was tired.", "A man walked in.",
            "A woman walked in.", "The nurse said she was tired."]
    sentences = base + [f"The nurse said {k} things." for k in range(TRIE_GROUP + 2)]
    got = score_sentences(tiny, sentences)
    pairs = sentence_pairs(tiny.tokenizer, sentences, None)
    want = continuation_logprobs(tiny, [(list(c), list(x)) for c, x in pairs], batch_size=4)
    np.testing.assert_allclose(got.total, [w.sum() for w in want], atol=1e-4)
    assert list(got.n_tokens) == [len(x) for _, x in pairs]
