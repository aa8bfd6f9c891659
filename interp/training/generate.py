"""Batched, seeded sampling with the probability of every sampled token (the one sampling routine).

    ids = chat_prompt_ids(lm, ["What is your favorite animal?"], system=lm.system_prompt)
    samples = sample(lm, ids, max_new_tokens=40, temperature=1.0, seed=0, batch_size=32)
    samples[0].text, samples[0].token_probs       # str, (n_new,) float64

Prompts are left-padded (`interp.scoring.left_pad`: mask + position ids) and decoded with the
KV cache. At each step the next-token distribution is q = softmax(logits / T); the token is drawn by
inverse-CDF sampling with a uniform u from a generator private to the sample,
seeded with (seed, index of the prompt), so a sample does not depend on batch size or batch
composition. `token_probs[i]` = q(sampled token i) (equal to the model probability at T = 1), the
input of the threshold filter. Generation stops at the tokenizer's EOS (SmolLM2: <|im_end|>) or
after `max_new_tokens`; the EOS token is not part of `text` but its probability is recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from interp.progress import progress_bar
from interp.prompts import render
from interp.scoring import _batches, encode, left_pad


@dataclass
class Sample:
    prompt_index: int
    token_ids: list[int]  # sampled tokens, EOS included when it was produced
    token_probs: np.ndarray  # (len(token_ids),) q(token) at the sampling temperature
    text: str  # decoded completion without special tokens
    finished: bool  # True when EOS was produced within max_new_tokens


def chat_prompt_ids(lm: Any, users: Sequence[str], system: str | None = None, prefix: str = "") -> list[list[int]]:
    """Token ids of each user message rendered as a prompt that ends where the answer starts."""
    return encode(lm.tokenizer, [render(lm.tokenizer, u, prefix, system=system) for u in users])


def stop_ids(lm: Any) -> set[int]:
    """Token ids that end a completion: the tokenizer's EOS and the generation config's EOS ids."""
    ids: set[int] = set()
    eos = lm.tokenizer.eos_token_id
    if eos is not None:
        ids.add(int(eos))
    cfg = getattr(lm.model, "generation_config", None)
    extra = getattr(cfg, "eos_token_id", None) if cfg is not None else None
    if isinstance(extra, int):
        ids.add(extra)
    elif extra:
        ids.update(int(e) for e in extra)
    return ids


def sample_seed(seed: int, index: int) -> int:
    """Seed of the private generator of prompt `index`."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1, dtype=np.uint64)[0] % (2**63 - 1))


@torch.no_grad()
def sample(lm: Any, prompt_ids: Sequence[Sequence[int]], max_new_tokens: int = 40, temperature: float = 1.0,
           seed: int = 0, batch_size: int = 32, progress: bool = False,
           description: str = "sampling") -> list[Sample]:
    """One sampled completion per prompt (see module docstring). Returns samples in prompt order."""
    if temperature <= 0:
        raise ValueError("temperature must be > 0 (use a small value for near-greedy decoding)")
    model, tok = lm.model, lm.tokenizer
    device = next(model.parameters()).device
    stops = stop_ids(lm)
    out: list[Sample | None] = [None] * len(prompt_ids)
    order = sorted(range(len(prompt_ids)), key=lambda i: len(prompt_ids[i]))
    with progress_bar(len(order), description, progress) as advance:
        for idx in _batches(order, batch_size, [len(p) for p in prompt_ids]):
            gens = [torch.Generator().manual_seed(sample_seed(seed, i)) for i in idx]
            toks, probs, done = _sample_batch(model, tok.pad_token_id, [prompt_ids[i] for i in idx], gens,
                                              max_new_tokens, temperature, stops, device)
            for row, i in enumerate(idx):
                text_ids = [t for t in toks[row] if t not in stops]
                out[i] = Sample(i, toks[row], np.asarray(probs[row], dtype=np.float64),
                                tok.decode(text_ids, skip_special_tokens=True), done[row])
            advance(len(idx))
    return [s for s in out if s is not None]


def _sample_batch(model: torch.nn.Module, pad_id: int, seqs: list[Sequence[int]], gens: list[torch.Generator],
                  max_new: int, temperature: float, stops: set[int],
                  device: torch.device) -> tuple[list[list[int]], list[list[float]], list[bool]]:
    batch = left_pad(seqs, pad_id, device)
    mask, pos = batch["attention_mask"], batch["position_ids"]
    n = len(seqs)
    toks: list[list[int]] = [[] for _ in range(n)]
    probs: list[list[float]] = [[] for _ in range(n)]
    done = [False] * n
    past = None
    step_ids = batch["input_ids"]
    step_pos = pos
    for _ in range(max_new):
        res = model(input_ids=step_ids, attention_mask=mask, position_ids=step_pos, past_key_values=past,
                    use_cache=True, logits_to_keep=1)
        past = res.past_key_values
        q = torch.softmax(res.logits[:, -1, :].float() / temperature, dim=-1).cpu()  # (batch, vocab)
        cdf = q.double().cumsum(-1)
        nxt = torch.full((n,), pad_id, dtype=torch.long)
        for r in range(n):
            if done[r]:
                continue
            u = torch.rand(1, generator=gens[r], dtype=torch.float64) * cdf[r, -1]
            t = int(torch.searchsorted(cdf[r], u).clamp(max=q.shape[-1] - 1))
            toks[r].append(t)
            probs[r].append(float(q[r, t]))
            nxt[r] = t
            done[r] = t in stops
        if all(done):
            break
        step_ids = nxt[:, None].to(device)
        mask = torch.cat([mask, torch.ones((n, 1), dtype=mask.dtype, device=device)], dim=1)
        step_pos = step_pos[:, -1:] + 1
    return toks, probs, done
