"""Entropy scoring (padding masked), exact keep counts, and the prune command."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from interp.errors import UserError
from interp.interventions.head_mask import HeadMask
from interp.interventions.pruning import attention_entropy, select_pruned
from interp.models.sharing import eager_attention
from interp.scoring import encode
from tests.test_cli import run as _run

PROMPTS = ["What is your favorite animal?", "Name one bird.", "The cat sat on the mat near 1 2 3 4 5 6 7 trees today"]


@torch.no_grad()
def reference_entropy(lm, texts):
    """One unpadded eager forward per prompt; H = mean over prompts of mean over queries of -sum a log a."""
    total = np.zeros((lm.spec.n_layers, lm.spec.n_heads))
    with eager_attention(lm.model):
        for ids in encode(lm.tokenizer, texts):
            att = lm.model(torch.tensor([ids]), output_attentions=True).attentions
            for layer, a in enumerate(att):
                p = a[0].double().numpy()  # (head, query, key)
                with np.errstate(divide="ignore", invalid="ignore"):
                    terms = np.where(p > 0, p * np.log(p), 0.0)
                total[layer] += -terms.sum(-1).mean(-1)
    return total / len(texts)


def test_entropy_batched_with_padding_equals_one_prompt_at_a_time(tiny):
    impl = tiny.model.config._attn_implementation
    got = attention_entropy(tiny, encode(tiny.tokenizer, PROMPTS), batch_size=3)
    assert tiny.model.config._attn_implementation == impl  # restored
    np.testing.assert_allclose(got, reference_entropy(tiny, PROMPTS), rtol=1e-5, atol=1e-6)
    assert got.shape == (2, 4) and (got > 0).all()


def test_keep_counts_and_order():
    rng = np.random.default_rng(1)
    h = rng.random((30, 9))
    pruned = select_pruned(h, 0.6)
    assert len(pruned) == 108  # 270 - round(0.6 * 270)
    kept = [h[l, k] for l in range(30) for k in range(9) if (l, k) not in set(pruned)]
    assert max(kept) < min(h[l, k] for l, k in pruned)  # the lowest-entropy heads are kept
    assert select_pruned(h, 1.0) == []
    assert len(select_pruned(h, 0.5)) == 135 and len(select_pruned(h, 1 / 270)) == 269
    r0, r1 = select_pruned(h, 0.6, "random", seed=0), select_pruned(h, 0.6, "random", seed=1)
    assert len(r0) == 108 and r0 == select_pruned(h, 0.6, "random", seed=0) and r0 != r1


@pytest.mark.parametrize("keep", [0.0, -0.1, 1.5, float("nan"), 0.001])
def test_bad_keep(keep):
    with pytest.raises(UserError):
        select_pruned(np.zeros((2, 4)), keep)


@torch.no_grad()
def test_keep_one_leaves_logits_identical():
    # a fresh model: the session fixture may have had its TransformerLens bridge booted by earlier
    # tests, and a bridge-wrapped model returns no attention weights (attention_entropy refuses it)
    from interp.models import load_model

    tiny_llama = load_model("tiny-llama")
    ids = torch.tensor(encode(tiny_llama.tokenizer, PROMPTS[:1]))
    base = tiny_llama.model(ids).logits
    h = attention_entropy(tiny_llama, encode(tiny_llama.tokenizer, PROMPTS))
    with HeadMask(tiny_llama, select_pruned(h, 1.0)):
        assert torch.equal(tiny_llama.model(ids).logits, base)
    with HeadMask(tiny_llama, select_pruned(h, 0.75)):  # 2 of 8 heads pruned
        assert (tiny_llama.model(ids).logits - base).abs().max() > 1e-3



def test_prune_command_writes_results(capsys, tmp_path):
    qs = tmp_path / "q.txt"
    qs.write_text("Name your favorite animal.\nWhich animal do you like most?\n")
    text = tmp_path / "heldout.txt"
    text.write_text("The river ran past the old mill and the bakers were busy before dawn. " * 3)
    out = tmp_path / "run"
    code, stdout, _ = _run(capsys, "prune", "--model", "tiny-llama", "--keep", "0.6", "--bias", "owl", "--system",
                           "You love owls.", "--questions", str(qs), "--heldout", str(text), "--samples", "2",
                           "--out", str(out))
    assert code == 0
    heads = pd.read_csv(out / "prune.csv")
    # 8 heads, keep round(0.6 * 8) = 5, prune 3
    assert len(heads) == 8 and heads.pruned_entropy.sum() == 3 and heads.pruned_random_control.sum() == 3
    assert heads[~heads.pruned_entropy].entropy.max() <= heads[heads.pruned_entropy].entropy.min()
    cond = pd.read_csv(out / "conditions.csv")
    assert list(cond.condition) == ["full", "pruned_entropy", "pruned_random_control"]
    assert (cond.gen_n == 4).all()
    s = json.loads((out / "summary.json").read_text())
    assert s["figures"]["n_pruned"] == 3 and s["inputs"]["system"] == "You love owls."
    assert (out / "entropy_heatmap.png").read_bytes()[:4] == b"\x89PNG"
    assert len(pd.read_csv(out / "samples.csv")) == 12 and "head pruning" in stdout


@pytest.mark.parametrize("args, message", [
    (["--keep", "1.5"], "'--keep': must be in (0, 1]"),
    (["--keep", "0.6", "--criterion", "magnitude"], "Invalid value for '--criterion'"),
    (["--keep", "0.6", "--questions", "/nonexistent/q.txt"], "does not exist"),
])
def test_prune_bad_input(capsys, tmp_path, args, message):
    out = tmp_path / "run"
    code, _, err = _run(capsys, "prune", "--model", "tiny-llama", *args, "--out", str(out))
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.embedded
def test_smollm2_keep_06_prunes_108_of_270(smollm2):
    h = attention_entropy(smollm2, encode(smollm2.tokenizer, PROMPTS[:2]))
    assert h.shape == (30, 9)
    pruned = select_pruned(h, 0.6)
    assert len(pruned) == 108
    np.testing.assert_allclose(h, reference_entropy(smollm2, PROMPTS[:2]), rtol=1e-5, atol=1e-6)
