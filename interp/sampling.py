"""Batched, seeded sampling with the probability of every sampled token (the one sampling routine).

A capability of a loaded model (its forwards run through `lm.engine.forward`), used by evals and
training alike.

    ids = chat_prompt_ids(lm, ["What is your favorite animal?"], system=lm.system_prompt)
    samples = sample(lm, ids, max_new_tokens=40, temperature=1.0, seed=0, batch_size=32)
    samples[0].text, samples[0].token_probs       # str, (n_new,) float64

Prompts are left-padded (`interp.scoring.left_pad`: mask + position ids) and decoded with the
KV cache. At each step the next-token distribution is q = softmax(logits / T); the token is drawn by
inverse-CDF sampling with a uniform u from a generator private to the sample, seeded with
(seed, prompt index, sample index), so a sample does not depend on batch size or batch composition.
`token_probs[i]` = q(sampled token i) (equal to the model probability at T = 1), the input of the
threshold filter. Generation stops at the tokenizer's EOS (SmolLM2: <|im_end|>) or after
`max_new_tokens`; the EOS token is not part of `text` but its probability is recorded.

Speed (rejection sampling at a low keep rate is mostly wasted work, so three things cut it):
- `n_per_prompt` = k samples of each prompt share one prefill: the prompt's KV cache is computed
  once; the k first tokens come from its logits, and only rows still running afterwards get a copy
  of its cache (`Cache.batch_select_indices` with repeated rows); sample j of prompt i is row i*k + j.
- `stop_if(text, token_probs)`: a row whose text so far can only be rejected (e.g. it contains a
  letter, see `numbers_data.doomed_reason`) stops at once; `Sample.stopped_early` marks it. Rows
  that are not stopped draw exactly the tokens they would draw without `stop_if`.
- finished and stopped rows leave the batch (`Cache.batch_select_indices`), so a step costs only
  the rows still running.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from interp.batching import run_with_backoff
from interp.models.compat import cache_kwargs, output_cache
from interp.models.loaded import LoadedModel
from interp.progress import progress_bar
from interp.prompts import render
from interp.scoring import encode, left_pad, length_plan


@dataclass
class Sample:
    prompt_index: int
    token_ids: list[int]  # sampled tokens, EOS included when it was produced
    token_probs: np.ndarray  # (len(token_ids),) q(token) at the sampling temperature
    text: str  # decoded completion without special tokens
    finished: bool  # True when EOS was produced within max_new_tokens
    sample_index: int = 0  # j of the k samples of this prompt
    stopped_early: bool = False  # `stop_if` ended the sample before EOS / max_new_tokens


StopIf = Callable[[str, Sequence[float]], bool]


def chat_prompt_ids(lm: LoadedModel, users: Sequence[str], system: str | None = None, prefix: str = "") -> list[list[int]]:
    """Token ids of each user message rendered as a prompt that ends where the answer starts."""
    return encode(lm.tokenizer, [render(lm.tokenizer, u, prefix, system=system) for u in users])


def stop_ids(lm: LoadedModel) -> set[int]:
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


def sample_seed(seed: int, index: int, sample_index: int = 0) -> int:
    """Seed of the private generator of sample `sample_index` of prompt `index`."""
    state = np.random.SeedSequence([seed, index, sample_index]).generate_state(1, dtype=np.uint64)[0]
    return int(state % (2**63 - 1))


@torch.no_grad()
def sample(lm: LoadedModel, prompt_ids: Sequence[Sequence[int]], max_new_tokens: int = 40, temperature: float = 1.0,
           seed: int = 0, batch_size: int = 32, progress: bool = False, description: str = "sampling",
           n_per_prompt: int = 1, stop_if: StopIf | None = None, first_index: int = 0) -> list[Sample]:
    """`n_per_prompt` sampled completions per prompt (module docstring), prompt-major: the result's
    element i * n_per_prompt + j is sample j of prompt i. `batch_size` counts sequences (rows).
    `first_index`: the prompts are items first_index.. of a longer list; sample j of prompt i draws from
    `sample_seed(seed, first_index + i, j)`, so a list sampled in parts gives the samples of one run."""
    if temperature <= 0:
        raise ValueError("temperature must be > 0 (use a small value for near-greedy decoding)")
    if n_per_prompt < 1 or batch_size < 1 or max_new_tokens < 1:
        raise ValueError("n_per_prompt, batch_size and max_new_tokens must be >= 1")
    if lm.engine.sampler() is not None:
        return _server_samples(lm, prompt_ids, max_new_tokens, temperature, seed, n_per_prompt, first_index,
                               progress, description)
    model, tok = lm.model, lm.tokenizer
    device = lm.engine.input_device
    stops = stop_ids(lm)
    k = n_per_prompt
    out: list[Sample | None] = [None] * (len(prompt_ids) * k)
    order = sorted(range(len(prompt_ids)), key=lambda i: len(prompt_ids[i]))
    prompts_per_batch = max(1, batch_size // k)
    lengths = [len(p) for p in prompt_ids]
    decode = lambda ids: tok.decode([t for t in ids if t not in stops], skip_special_tokens=True)  # noqa: E731
    with progress_bar(len(out), description, progress) as advance:
        def run(idx: list[int]) -> None:  # safe to repeat: fresh generators, results written by index
            rows = [(i, j) for i in idx for j in range(k)]
            gens = [torch.Generator().manual_seed(sample_seed(seed, first_index + i, j)) for i, j in rows]
            res = _sample_batch(lm.engine.forward, model, tok.pad_token_id, [prompt_ids[i] for i in idx], k, gens, max_new_tokens,
                                temperature, stops, device, decode, stop_if)
            for r, (i, j) in enumerate(rows):
                toks, probs, done, stopped = res[r]
                out[i * k + j] = Sample(i, toks, np.asarray(probs, dtype=np.float64), decode(toks), done, j, stopped)
            advance(len(rows))

        run_with_backoff(order, prompts_per_batch, run, length_plan(lengths),
                         what="sampling")
    return [s for s in out if s is not None]


def _server_samples(lm: LoadedModel, prompt_ids: Sequence[Sequence[int]], max_new_tokens: int, temperature: float,
                    seed: int, k: int, first_index: int, progress: bool, description: str) -> list[Sample]:
    """`sample` through the engine's server (`interp.models.openai_engine`): one request per prompt with
    n = k and seed `sample_seed(seed, first_index + i)`; reproducible by seed on the same server, but not
    the draws of the local sampler (another generator). `stop_if` does not apply (the server finishes
    every sample; the filters then reject the same samples)."""
    server = lm.engine.server  # type: ignore[attr-defined]
    stops = stop_ids(lm)
    tok = lm.tokenizer
    out: list[Sample] = []
    step = max(1, server.concurrency)
    with progress_bar(len(prompt_ids) * k, f"{description} (server)", progress) as advance:
        for a in range(0, len(prompt_ids), step):
            part = range(a, min(a + step, len(prompt_ids)))
            got = server.complete_all([(prompt_ids[i], k, sample_seed(seed, first_index + i)) for i in part],
                                      max_new_tokens, temperature, stops)
            for i, choices in zip(part, got):
                for j, c in enumerate(choices):
                    text = tok.decode([t for t in c.token_ids if t not in stops], skip_special_tokens=True)
                    out.append(Sample(i, c.token_ids, np.exp(np.asarray(c.logprobs, dtype=np.float64)), text,
                                      c.finished, j))
            advance(len(part) * k)
    return out


RowResult = tuple[list[int], list[float], bool, bool]  # tokens, their q, finished (EOS), stopped early


def _sample_batch(forward: Callable[..., Any], model: torch.nn.Module, pad_id: int, seqs: list[Sequence[int]], k: int,
                  gens: list[torch.Generator], max_new: int, temperature: float, stops: set[int],
                  device: torch.device, decode: Callable[[list[int]], str],
                  stop_if: StopIf | None) -> list[RowResult]:
    """Rows r = i * k + j (prompt i, sample j). One prefill per prompt; the first tokens of its k rows
    are drawn from the prompt's logits, and only the rows still running get (a copy of) its cache."""
    batch = left_pad(seqs, pad_id, device)
    res = forward(**batch, use_cache=True, logits_to_keep=1)
    past, logits = output_cache(res), res.logits[:, -1, :]  # logits (cache rows, vocab)
    mask, pos = batch["attention_mask"], batch["position_ids"][:, -1:]
    n = len(seqs) * k
    toks: list[list[int]] = [[] for _ in range(n)]
    probs: list[list[float]] = [[] for _ in range(n)]
    finished, stopped = [False] * n, [False] * n
    running = list(range(n))  # rows still sampling
    cache_row = [r // k for r in running]  # row of logits / cache that running[b] reads
    for step in range(max_new):
        q = torch.softmax(logits.float() / temperature, dim=-1).cpu()  # (cache rows, vocab)
        cdf = q.double().cumsum(-1)
        nxt, keep = [], []
        for b, r in enumerate(running):
            c = cache_row[b]
            u = torch.rand(1, generator=gens[r], dtype=torch.float64) * cdf[c, -1]
            t = int(torch.searchsorted(cdf[c], u).clamp(max=q.shape[-1] - 1))
            toks[r].append(t)
            probs[r].append(float(q[c, t]))
            if t in stops:
                finished[r] = True
            elif stop_if is not None and stop_if(decode(toks[r]), probs[r]):
                stopped[r] = True
            else:
                keep.append(b)
                nxt.append(t)
        if not keep or step == max_new - 1:
            break
        rows = [cache_row[b] for b in keep]
        if rows != list(range(logits.shape[0])):
            sel = torch.tensor(rows, device=device)
            past.batch_select_indices(sel)  # gathers (and at step 0 repeats) cache rows
            mask, pos = mask[sel], pos[sel]
        running = [running[b] for b in keep]
        cache_row = list(range(len(running)))
        mask = torch.cat([mask, torch.ones((len(running), 1), dtype=mask.dtype, device=device)], dim=1)
        pos = pos + 1
        res = forward(input_ids=torch.tensor(nxt, device=device)[:, None], attention_mask=mask, position_ids=pos,
                    **cache_kwargs(model, past), use_cache=True, logits_to_keep=1)
        past, logits = output_cache(res), res.logits[:, -1, :]
    return [(toks[r], probs[r], finished[r], stopped[r]) for r in range(n)]
