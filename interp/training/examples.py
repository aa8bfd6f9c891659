"""Training examples: prompt/completion JSONL -> token ids with completion-only labels -> batches.

    rows = read_jsonl("numbers.jsonl")                # [{"prompt": ..., "completion": ...}]
    data = tokenize_examples(lm, rows, max_len=128)   # ids, labels (-100 on the prompt), per example
    batch = collate(data, batch_indices(len(rows), 8, step, seed), pad_id)   # right-padded

Sequence of one example: prompt_ids (the chat template with the user turn, ending where the
assistant answer starts; no system prompt beyond the template's default) + completion_ids + EOS.
Data order: step s uses positions s*B .. (s+1)*B-1 of the stream perm_0 ++ perm_1 ++ ... with
perm_e = default_rng([seed, e]).permutation(n_examples), so the batch of a step depends only on
(seed, step).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from interp.errors import UserError
from interp.sampling import chat_prompt_ids
from interp.textfiles import read_text

IGNORE = -100


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a JSONL file; each must have string fields 'prompt' and 'completion'."""
    p = Path(path)
    rows = []
    for n, line in enumerate(read_text(p, "data file").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{p}:{n} is not valid JSON ({e.msg})") from e
        if not isinstance(row, dict) or not isinstance(row.get("prompt"), str) or not isinstance(row.get("completion"), str):
            raise UserError(f"{p}:{n} needs string fields 'prompt' and 'completion'")
        rows.append(row)
    if not rows:
        raise UserError(f"{p} holds no examples")
    return rows


@dataclass
class Tokenized:
    ids: list[list[int]]  # prompt + completion + EOS, cut to max_len
    n_prompt: list[int]  # number of prompt tokens of each sequence


def tokenize_examples(lm: Any, rows: Sequence[dict[str, Any]], max_len: int) -> Tokenized:
    """prompt ids (rendered with the model's template, see module docstring) + completion ids + EOS.

    An example whose prompt alone leaves no room for a completion token within max_len is an error."""
    tok = lm.tokenizer
    prompts = chat_prompt_ids(lm, [r["prompt"] for r in rows])
    eos = tok.eos_token_id
    ids, n_prompt = [], []
    for r, p in zip(rows, prompts):
        comp = tok.encode(r["completion"], add_special_tokens=False) + ([eos] if eos is not None else [])
        if len(p) >= max_len:
            raise UserError(f"a prompt has {len(p)} tokens, more than --max-len {max_len} allows; raise --max-len")
        ids.append((p + comp)[:max_len])
        n_prompt.append(len(p))
    return Tokenized(ids, n_prompt)


def collate(data: Tokenized, idx: Sequence[int], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded input_ids / attention_mask / labels (batch, width); labels = -100 on prompt + pad."""
    width = max(len(data.ids[i]) for i in idx)
    ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(idx), width), dtype=torch.long)
    labels = torch.full((len(idx), width), IGNORE, dtype=torch.long)
    for r, i in enumerate(idx):
        seq = torch.tensor(data.ids[i], dtype=torch.long)
        ids[r, : len(seq)] = seq
        mask[r, : len(seq)] = 1
        labels[r, data.n_prompt[i]: len(seq)] = seq[data.n_prompt[i]:]
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def batch_indices(n_examples: int, batch_size: int, step: int, seed: int) -> list[int]:
    """Example indices of `step` in the seeded stream of epoch permutations (module docstring)."""
    out = []
    for pos in range(step * batch_size, (step + 1) * batch_size):
        epoch, k = divmod(pos, n_examples)
        out.append(int(_perm(n_examples, seed, epoch)[k]))
    return out


_PERMS: dict[tuple[int, int, int], np.ndarray] = {}


def _perm(n: int, seed: int, epoch: int) -> np.ndarray:
    key = (n, seed, epoch)
    if key not in _PERMS:
        _PERMS[key] = np.random.default_rng([seed, epoch]).permutation(n)
    return _PERMS[key]


__all__ = ["IGNORE", "read_jsonl", "Tokenized", "tokenize_examples", "collate", "batch_indices"]
