"""Batched scoring: next-token log-probs, teacher-forced continuation log-probs, target matrices.

All functions take a `LoadedModel` (or anything with `.model` and `.tokenizer`) and token ids,
left-pad a batch with an attention mask and explicit position ids
(position = cumsum(mask) - 1), so a padded batch gives the same numbers as one prompt at a
time (tested to 1e-5). Sequences are sorted by length before batching to bound padding.

    ids = encode(lm.tokenizer, prompts)                     # list[list[int]], BOS rule applied
    lp = next_token_logprobs(lm, ids)                       # (n_prompts, vocab) float32, log-softmax
    s = target_logprobs(lm, ids, [owl, dog])                # (n_prompts, n_targets) log P(target | prompt)
    per_tok = continuation_logprobs(lm, pairs)              # list of (len(cont),) arrays
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from interp.progress import progress_bar
from interp.prompts import Target

DEFAULT_BATCH = 16


def adds_bos(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Whether the tokenizer prepends BOS by itself (Gemma does, SmolLM2 does not)."""
    bos = tokenizer.bos_token_id
    if bos is None:
        return False
    ids = tokenizer("a", add_special_tokens=True)["input_ids"]
    return len(ids) > 0 and ids[0] == bos


def encode(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of prompt texts; BOS is prepended once when the tokenizer adds one by default
    and the text (e.g. a rendered chat template) does not already start with it."""
    add = adds_bos(tokenizer)
    out = []
    for t in texts:
        ids = tokenizer.encode(t, add_special_tokens=False)
        if add and not (ids and ids[0] == tokenizer.bos_token_id):
            ids = [tokenizer.bos_token_id] + ids
        out.append(ids)
    return out


def left_pad(seqs: Sequence[Sequence[int]], pad_id: int, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """input_ids, attention_mask, position_ids for left-padded `seqs`: each (batch, max_len)."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        if len(s) == 0:
            raise ValueError("cannot score an empty sequence")
        ids[i, width - len(s):] = torch.tensor(list(s), dtype=torch.long)
        mask[i, width - len(s):] = 1
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device), "position_ids": pos.to(device)}


def _model_tok(lm: Any) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
    return lm.model, lm.tokenizer


MAX_BATCH_TOKENS = 8192  # padded tokens per forward; a long prompt gets a batch of its own


def _batches(order: list[int], size: int, lengths: Sequence[int] | None = None,
             max_tokens: int = MAX_BATCH_TOKENS) -> list[list[int]]:
    """Split `order` (sorted by length) into batches of at most `size` items and at most
    `max_tokens` padded tokens (len(batch) * longest), so one long prompt never pads a whole batch."""
    out: list[list[int]] = []
    cur: list[int] = []
    for i in order:
        width = max([lengths[j] for j in cur] + [lengths[i]]) if lengths is not None else 0
        if cur and (len(cur) >= size or (lengths is not None and width * (len(cur) + 1) > max_tokens)):
            out.append(cur)
            cur = []
        cur.append(i)
    if cur:
        out.append(cur)
    return out


@torch.no_grad()
def _last_logprobs(model: torch.nn.Module, batch: dict[str, torch.Tensor], keep: int) -> torch.Tensor:
    """log-softmax of the last `keep` positions: (batch, keep, vocab), float32 on CPU."""
    out = model(**batch, logits_to_keep=keep, use_cache=False)
    return torch.log_softmax(out.logits[:, -keep:, :].float(), dim=-1).cpu()


def next_token_logprobs(
    lm: Any, prompt_ids: Sequence[Sequence[int]], batch_size: int = DEFAULT_BATCH, progress: bool = False,
    description: str = "next-token log-probs", columns: Sequence[int] | None = None,
) -> torch.Tensor:
    """log P(next token | prompt), normalised over the full vocabulary: (n_prompts, vocab) float32,
    or (n_prompts, len(columns)) when only some token ids are wanted (saves memory on big vocabularies)."""
    model, tok = _model_tok(lm)
    order = sorted(range(len(prompt_ids)), key=lambda i: len(prompt_ids[i]))
    result: torch.Tensor | None = None
    with progress_bar(len(order), description, progress) as advance:
        for idx in _batches(order, batch_size, [len(p) for p in prompt_ids]):
            batch = left_pad([prompt_ids[i] for i in idx], tok.pad_token_id, _device(model))
            lp = _last_logprobs(model, batch, 1)[:, -1, :]
            if columns is not None:
                lp = lp[:, list(columns)]
            if result is None:
                result = torch.empty((len(prompt_ids), lp.shape[-1]), dtype=torch.float32)
            result[idx] = lp
            advance(len(idx))
    assert result is not None, "no prompts given"
    return result


def continuation_logprobs(
    lm: Any, pairs: Sequence[tuple[Sequence[int], Sequence[int]]], batch_size: int = DEFAULT_BATCH,
    progress: bool = False, description: str = "continuation log-probs",
) -> list[np.ndarray]:
    """Teacher-forced log P(c_i | context, c_<i) for each (context_ids, continuation_ids) pair.

    Returns one float64 array of shape (len(continuation),) per pair. The context must be
    non-empty (it holds at least BOS or the prompt).
    """
    model, tok = _model_tok(lm)
    seqs = [list(c) + list(x) for c, x in pairs]
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    out: list[np.ndarray | None] = [None] * len(seqs)
    with progress_bar(len(order), description, progress) as advance:
        for idx in _batches(order, batch_size, [len(x) for x in seqs]):
            n_cont = [len(pairs[i][1]) for i in idx]
            if any(len(pairs[i][0]) == 0 for i in idx):
                raise ValueError("continuation_logprobs needs a non-empty context for every pair")
            keep = max(n_cont) + 1
            batch = left_pad([seqs[i] for i in idx], tok.pad_token_id, _device(model))
            lp = _last_logprobs(model, batch, keep)  # positions predicting the last keep-1 tokens and one more
            for row, i in enumerate(idx):
                k = n_cont[row]
                cont = torch.tensor(list(pairs[i][1]), dtype=torch.long)
                # logits at position t predict token t+1; the last k tokens are predicted by positions -k-1..-2
                preds = lp[row, keep - 1 - k: keep - 1, :]
                out[i] = preds.gather(1, cont[:, None])[:, 0].double().numpy()
            advance(len(idx))
    return [o if o is not None else np.zeros(0) for o in out]


def target_logprobs(
    lm: Any, prompt_ids: Sequence[Sequence[int]], targets: Sequence[Target], batch_size: int = DEFAULT_BATCH,
    progress: bool = False, description: str = "scoring",
) -> np.ndarray:
    """log P(target | prompt) for every prompt x target: (n_prompts, n_targets), float64.

    A target's probability is the sum over its variants of each variant's joint (teacher-forced)
    probability. Single-token variants come from one next-token pass per prompt; multi-token
    variants add one pass per (prompt, variant).
    """
    single = sorted({t[0] for tg in targets for t in tg.token_ids if len(t) == 1})
    multi = sorted({t for tg in targets for t in tg.token_ids if len(t) > 1})
    logp: dict[tuple[int, ...], np.ndarray] = {}
    n = len(prompt_ids)
    if single:
        mat = next_token_logprobs(lm, prompt_ids, batch_size, progress, description, columns=single).double().numpy()
        for j, t in enumerate(single):
            logp[(t,)] = mat[:, j]
    if multi:
        pairs = [(p, m) for m in multi for p in prompt_ids]
        res = continuation_logprobs(lm, pairs, batch_size, progress, description)
        for k, m in enumerate(multi):
            logp[m] = np.array([res[k * n + i].sum() for i in range(n)])
    out = np.empty((n, len(targets)), dtype=np.float64)
    for j, tg in enumerate(targets):
        stack = np.stack([logp[t] for t in tg.token_ids], axis=0)
        out[:, j] = np.logaddexp.reduce(stack, axis=0)
    return out


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device
