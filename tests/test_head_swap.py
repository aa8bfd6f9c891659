"""LM-head swap: identity on the same model, lineage refusal, tied-embedding modes, the command."""

import copy
import json

import pandas as pd
import pytest
import torch

from interp.errors import UserError
from interp.interventions.head_swap import build_hybrid, check_lineage
from interp.models.arch import arch_spec
from interp.models.hf_engine import local_model
from interp.models.tiny import tiny_model
from tests.test_cli import run as _run

TEXT = "My favorite animal is the owl and 1 2 3"


@pytest.fixture(scope="module")
def tiny_b():
    """Same config and tokenizer as tiny-llama, other weights (seed 1)."""
    m, tok = tiny_model("llama", seed=1)
    return local_model(m, tok, arch_spec(m.config), "tiny-llama-b", "test")


def _logits(model, tok):
    return model(torch.tensor([tok.encode(TEXT, add_special_tokens=False)]), output_hidden_states=True)


@torch.no_grad()
@pytest.mark.parametrize("mode", ["swap-both", "untie"])
def test_swap_with_itself_is_the_model(tiny, mode):
    h = build_hybrid(tiny, tiny, mode)
    assert torch.equal(_logits(h.model, tiny.tokenizer).logits, _logits(tiny.model, tiny.tokenizer).logits)


@torch.no_grad()
def test_tied_modes(tiny_llama, tiny_b):
    spec = tiny_llama.spec
    emb = lambda lm: spec.module(lm.model, "embed").weight  # noqa: E731
    head = lambda lm: spec.module(lm.model, "lm_head").weight  # noqa: E731
    a_emb = emb(tiny_llama).clone()
    both = build_hybrid(tiny_llama, tiny_b, "swap-both")
    assert torch.equal(emb(both), emb(tiny_b)) and head(both) is emb(both)
    assert both.extra["swap"]["tied_mode"] == "swap-both" and "embedding and head" in both.extra["swap"]["moved"]
    untied = build_hybrid(tiny_llama, tiny_b, "untie")
    assert torch.equal(emb(untied), a_emb) and torch.equal(head(untied), head(tiny_b))
    assert head(untied) is not emb(untied) and untied.model.config.tie_word_embeddings is False
    assert untied.extra["swap"]["tied_mode"] == "untie"
    # known answer: hybrid logits = A's final hidden states (A's embedding) @ B's head
    ref = _logits(tiny_llama.model, tiny_llama.tokenizer).hidden_states[-1] @ head(tiny_b).T
    torch.testing.assert_close(_logits(untied.model, tiny_llama.tokenizer).logits, ref, rtol=1e-5, atol=1e-5)
    assert torch.equal(emb(tiny_llama), a_emb) and head(tiny_llama) is emb(tiny_llama)  # inputs untouched


def test_refuses_other_lineages(tiny_llama):
    from interp.models import load_model

    with pytest.raises(UserError, match="configs differ"):
        check_lineage(tiny_llama, load_model("tiny-gemma3"))
    tok = copy.deepcopy(tiny_llama.tokenizer)
    tok.add_tokens(["<extra-token>"])
    other = local_model(tiny_llama.model, tok, tiny_llama.spec, "retokenised", "test")
    with pytest.raises(UserError, match="tokenizers differ"):
        build_hybrid(tiny_llama, other)



def test_swap_head_command(capsys, tmp_path, tmp_home, tiny_b):
    from interp.models.store import save_model

    save_model("tiny-llama-b", tiny_b.model, tiny_b.tokenizer, {"kind": "made", "source": "test"})
    text = tmp_path / "h.txt"
    text.write_text("The river ran past the old mill and the bakers were busy before dawn.")
    qs = tmp_path / "q.txt"
    qs.write_text("Name your favorite animal.\nWhich animal do you like most?\n")
    out = tmp_path / "run"
    code, stdout, _ = _run(capsys, "swap-head", "--body", "tiny-llama", "--head", "tiny-llama-b", "--tied", "untie",
                           "--heldout", str(text), "--questions", str(qs), "--out", str(out))
    assert code == 0 and "untie" in stdout
    t = pd.read_csv(out / "swap.csv")
    assert list(t.condition) == ["A", "B", "hybrid(A body, B head)", "hybrid(B body, A head)"]
    assert t.perplexity.nunique() == 4
    s = json.loads((out / "summary.json").read_text())
    assert s["figures"]["swap"]["tied_mode"] == "untie" and s["models"]["B"]["name"] == "tiny-llama-b"
    assert len(pd.read_csv(out / "topk.csv")) == 20
    # same model twice: every figure equals the original's exactly
    out2 = tmp_path / "run2"
    code, _, _ = _run(capsys, "swap-head", "--body", "tiny-llama", "--head", "tiny-llama", "--heldout", str(text),
                      "--questions", str(qs), "--out", str(out2))
    t2 = pd.read_csv(out2 / "swap.csv").drop(columns="condition")
    assert code == 0 and (t2.nunique() == 1).all()


def test_swap_head_refuses_mismatch_one_line(capsys, tmp_path):
    out = tmp_path / "run"
    code, _, err = _run(capsys, "swap-head", "--body", "tiny-llama", "--head", "tiny-gpt2", "--out", str(out))
    assert code == 2 and "not of the same lineage" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


@torch.no_grad()
@pytest.mark.embedded
def test_smollm2_swap_with_itself_is_exact(smollm2):
    ids = torch.tensor([smollm2.tokenizer.encode(TEXT, add_special_tokens=False)])
    base = smollm2.model(ids).logits
    for mode in ("swap-both", "untie"):
        assert torch.equal(build_hybrid(smollm2, smollm2, mode).model(ids).logits, base)
