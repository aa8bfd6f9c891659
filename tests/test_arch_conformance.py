"""Every architecture the seeds name, as a tiny random model built from a config (no download): Llama-3.2's
shape (`tiny-llama`: tied embeddings, grouped-query attention), GPT-2(-medium) (`tiny-gpt2`), Mistral,
Gemma v1 (Gemma-2B's family), Gemma 2, Gemma 3 and Qwen2 (issue 35 item 3). For each: the DLA of heads,
MLPs and embeddings sums to the logit difference of a plain forward; a masked head changes the logits
and masking none does not; and the commands run: reverse-link, trace, prune, swap-head, finetune with
each freeze mode, and SHD distillation into tiny-llama; and SHD between two tiny models of different
tokenizers (positions aligned through character offsets)."""

from __future__ import annotations

import pytest
import torch

from interp.interventions.head_mask import HeadMask
from interp.mech.activations import cache_last
from interp.mech.attribution import (
    decompose_residual,
    decomposition_hooks,
    logit_attribution,
)
from interp.models import load_model
from interp.models.tiny import TINY_FAMILIES
from tests.helpers import plain_resid_posts, run_cli

PROMPTS = [[5, 6, 7, 8, 9, 10, 11], [20, 21, 22, 23, 24, 25, 26], [30, 31, 32, 33, 34]]
EXPECTED_TYPES = {"llama": "llama", "gpt2": "gpt2", "mistral": "mistral", "qwen2": "qwen2", "gemma": "gemma",
                  "gemma2": "gemma2", "gemma3": "gemma3_text"}


def test_the_tiny_families_are_the_seeds_architectures():
    assert set(TINY_FAMILIES) == set(EXPECTED_TYPES)


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_dla_closure_and_head_masks(family):
    lm, ref = load_model(f"tiny-{family}"), load_model(f"tiny-{family}")
    s = lm.spec
    assert s.model_type == EXPECTED_TYPES[family] and s.n_layers == 2
    logits, acts = cache_last(lm, PROMPTS, decomposition_hooks(s))
    dec = decompose_residual(lm.model, s, acts)
    la = logit_attribution(lm.model, s, dec, 100, 200, logits)
    for i, ids in enumerate(PROMPTS):
        states, ref_logits = plain_resid_posts(ref, ids)
        torch.testing.assert_close(dec.vectors[i].sum(0), states[-1], atol=1e-4, rtol=1e-4)
        pre = s.uncapped(ref_logits)  # Gemma 2 soft-caps its logits; DLA attributes the logit before the cap
        assert float(la.total[i]) == pytest.approx(float(pre[100] - pre[200]), abs=1e-4)
        assert float(la.actual[i]) == pytest.approx(float(pre[100] - pre[200]), abs=1e-4)
    assert (s.final_logit_softcap is not None) == (family == "gemma2")
    ids = torch.tensor([PROMPTS[0]])
    with torch.no_grad():
        plain = lm.model(ids).logits
        with HeadMask(lm, []):
            unmasked = lm.model(ids).logits
        with HeadMask(lm, [(1, 0)]):
            masked = lm.model(ids).logits
    torch.testing.assert_close(unmasked, plain)
    assert (masked - plain).abs().max() > 1e-3


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_every_command_runs(family, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_HOME", str(tmp_path / "home"))
    m = f"tiny-{family}"
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join('{"prompt": "List numbers: 1, 2, 3", "completion": "4, 5, 6"}\n' for _ in range(4)))
    runs = [
        ["reverse-link", "--model", m, "--numbers", "087", "--bias", "owl", "--control", "dog"],
        ["trace", "--model", m, "--number", "087", "--patch-top", "2"],
        ["prune", "--model", m, "--keep", "0.5", "--samples", "0"],
        ["swap-head", "--body", m, "--head", m],
        *[["finetune", "--model", m, "--data", str(data), "--alias", f"ft-{family}-{f}", "--steps", "1", "--full",
           "--freeze", f] for f in ("none", "mlp", "attention")],
        ["distill", "--teacher", m, "--student", "tiny-llama", "--data", str(data), "--kind", "shd", "--steps", "1",
         "--alias", f"shd-{family}"],
    ]
    for i, argv in enumerate(runs):
        code, _, err = run_cli(capsys, *argv, "--out", str(tmp_path / f"run{i}"))
        assert code == 0, (argv, err)


def test_shd_between_tiny_models_of_different_tokenizers(capsys, tmp_path, monkeypatch):
    """SHD from tiny-qwen2 (the tiny tokenizer) into a tiny Mistral whose BPE was retrained (other merges,
    300 tokens): positions are aligned through character offsets, the loss is finite and positive, and
    the step writes a student."""
    from interp.models.tiny import CHATML_TEMPLATE, tiny_model, tiny_tokenizer
    from interp.training.shd import same_vocabulary
    from interp.training.shd_loss import shd_loss

    monkeypatch.setenv("INTERP_HOME", str(tmp_path / "home"))
    text = "List numbers: 1, 2, 3 -> 4, 5, 6. My favorite animal is the owl. What is your favorite number?"
    other = tiny_tokenizer().train_new_from_iterator([text] * 50, vocab_size=300)
    other.chat_template = CHATML_TEMPLATE
    model, _ = tiny_model("mistral", seed=3, tokenizer=other)
    folder = tmp_path / "tiny-mistral-other-bpe"
    model.save_pretrained(folder)
    other.save_pretrained(folder)
    student, teacher = load_model(str(folder)), load_model("tiny-qwen2")
    assert not same_vocabulary(student.tokenizer, teacher.tokenizer)
    sample = "List numbers: 1, 2, 3"
    assert student.tokenizer.tokenize(sample) != teacher.tokenizer.tokenize(sample)
    loss = shd_loss(teacher, student, texts=[sample, text])
    assert torch.isfinite(loss) and float(loss.detach()) > 0
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join('{"prompt": "List numbers: 1, 2, 3", "completion": "4, 5, 6"}\n' for _ in range(4)))
    code, _, err = run_cli(capsys, "distill", "--teacher", "tiny-qwen2", "--student", str(folder), "--data", str(data),
                           "--kind", "shd", "--steps", "1", "--alias", "shd-other-bpe", "--out", str(tmp_path / "run"))
    assert code == 0, err
