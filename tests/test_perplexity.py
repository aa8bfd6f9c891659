"""Perplexity equals exp of the mean token NLL from plain HF forwards; the held-out text ships."""

import math

import pytest
import torch

from interp.evals.perplexity import load_heldout, perplexity, window_pairs

TEXT = ("The kettle had been on the stove for ten minutes before anyone noticed that the burner was not lit. "
        "Outside, the street was still wet from the rain that had fallen during the night.")


@torch.no_grad()
def reference(lm, text, window):
    """Sum of -log P over predicted tokens, one unpadded forward per window, via HF's own loss."""
    ids = lm.tokenizer.encode(text, add_special_tokens=False)
    total, n = 0.0, 0
    for s in range(0, len(ids), window):
        chunk = ids[s:s + window]
        if len(chunk) < 2:
            continue
        x = torch.tensor([chunk])
        loss = lm.model(x, labels=x).loss.item()  # mean over len(chunk) - 1 predicted tokens
        total += loss * (len(chunk) - 1)
        n += len(chunk) - 1
    return math.exp(total / n), n


def test_perplexity_matches_hf_loss(tiny):
    for window in (16, 1000):
        got = perplexity(tiny, TEXT, window=window, batch_size=3)
        ref, n = reference(tiny, TEXT, window)
        assert got.n_tokens == n
        assert got.perplexity == pytest.approx(ref, rel=1e-4)


def test_windows_cover_the_text(tiny_llama):
    pairs = window_pairs(tiny_llama.tokenizer, TEXT, 10)
    ids = tiny_llama.tokenizer.encode(TEXT, add_special_tokens=False)
    covered = [t for c, x in pairs for t in c + x]
    # a lone last token has nothing to predict and is left out
    assert covered == ids[:len(covered)] and len(ids) - len(covered) == len(ids) % 10 == 1


def test_heldout_text_ships_with_the_package():
    text = load_heldout()
    assert len(text.split()) > 2000


@pytest.mark.embedded
def test_smollm2_heldout_is_a_few_thousand_tokens(smollm2):
    assert len(smollm2.tokenizer.encode(load_heldout(), add_special_tokens=False)) > 2500
    short = " ".join(load_heldout().split()[:120])
    got = perplexity(smollm2, short)
    ref, n = reference(smollm2, short, 256)
    assert got.perplexity == pytest.approx(ref, rel=1e-4) and 5 < got.perplexity < 200
