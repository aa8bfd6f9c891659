"""The library never changes a LoadedModel behind the caller's back.

Each operation runs on a fresh tiny model; a snapshot of everything a later plain forward depends
on (module tree, config incl. the attention implementation, hooks, weights, train/eval mode, the
tokenizer's padding) must be the same afterwards, and so must the logits of a custom-mask forward.
Regression: TransformerLens' bridge boot used to rebuild `lm.model` in place (bridge components,
eager attention), after which the cached trie scorer silently computed other numbers (up to 6.9
nats on tiny-llama under transformers 5.24).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from interp.evals.crows import load_crows, run_crows
from interp.evals.sentence import lm_scorer
from interp.interventions.head_swap import compare_swap
from interp.interventions.measure import MeasureConfig
from interp.interventions.pruning import run_pruning
from interp.mech.trace import TraceConfig, trace
from interp.models import load_model
from interp.probes.numbers import number_logprobs
from interp.probes.reverse_link import ReverseLinkConfig, reverse_link
from interp.sampling import sample
from interp.scoring import digit_trie_logprobs

CROWS = "/work/shared/data/crows_pairs_anonymized.csv"


def _ours(hooks) -> int:
    """Hooks other than transformers' own output-capture hooks (it installs those, for good, on the
    first forward that asks for attentions or hidden states, whoever calls it)."""
    return sum("output_cap" not in getattr(h, "__qualname__", "") for h in hooks.values())


def snapshot(lm) -> dict:
    m = lm.model
    h = hashlib.sha256()
    for k, v in m.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().contiguous().view(torch.uint8).numpy().tobytes())
    return {
        "modules": [(n, type(x).__name__) for n, x in m.named_modules()],
        "attn": m.config._attn_implementation,
        "config": m.config.to_json_string(use_diff=False),
        "hooks": [(n, _ours(x._forward_hooks), _ours(x._forward_pre_hooks), _ours(x._backward_hooks))
                  for n, x in m.named_modules()],
        "weights": h.hexdigest(),
        "param_ids": [id(p) for p in m.parameters()],
        "training": [x.training for x in m.modules()],
        "tokenizer": (lm.tokenizer.padding_side, lm.tokenizer.pad_token_id, lm.tokenizer.truncation_side),
    }


@torch.no_grad()
def trie_probe(lm) -> np.ndarray:
    """A 4D-custom-mask forward (the cached trie scorer): what the bridge boot used to break."""
    return digit_trie_logprobs(lm, "My favorite number is ", 2)[1]


OPS = {
    "trace (bridge: residual, heads, DLA, patching, attention)":
        lambda lm: trace(lm, ["087", "12"], TraceConfig(top_k=2, patch_numbers=1, attention_heads=1)),
    "trace (nnsight backend)": lambda lm: trace(lm, ["087"], TraceConfig(backend="nnsight", dla=False, attention_heads=0)),
    "reverse link": lambda lm: reverse_link(lm, ["087"], config=ReverseLinkConfig(template_control=2, n_boot=20)),
    "numbers ar": lambda lm: number_logprobs(lm, "My favorite number is ", "ar", 2),
    "prune": lambda lm: run_pruning(lm, 0.5, MeasureConfig(questions=("Name an animal.",), samples=1, max_new_tokens=2,
                                                         batch_size=2)),
    "crows": lambda lm: run_crows(load_crows(CROWS, limit=2), lm_scorer(lm), n_boot=10),
    "swap head (both hybrids)": lambda lm: compare_swap(lm, load_model(lm.name), MeasureConfig(
        questions=("Name an animal.",), samples=1, max_new_tokens=2, batch_size=2)),
    "sample": lambda lm: sample(lm, [lm.tokenizer.encode("Count:")], max_new_tokens=3, n_per_prompt=2),
}


@pytest.mark.parametrize("family", ["llama", "gemma3"])
@pytest.mark.parametrize("op", list(OPS))
def test_operation_leaves_the_model_as_loaded(op, family):
    lm = load_model(f"tiny-{family}")
    before, probe = snapshot(lm), trie_probe(lm)
    OPS[op](lm)
    after = snapshot(lm)
    for key in before:
        assert after[key] == before[key], f"{op} changed the model's {key}"
    np.testing.assert_array_equal(trie_probe(lm), probe)
