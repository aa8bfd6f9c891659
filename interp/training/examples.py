"""Training examples: prompt/completion JSONL -> token ids with completion-only labels -> batches.

    rows = read_jsonl("numbers.jsonl")                # [{"prompt": ..., "completion": ...}] or [{"text": ...}]
    data = tokenize_examples(lm, rows, max_len=128)   # ids, labels (-100 on the prompt), per example
    batch = collate(data, batch_indices(len(rows), 8, step, seed), pad_id)   # right-padded

Sequence of one example: prompt_ids (the chat template with the user turn, ending where the
assistant answer starts; no system prompt beyond the template's default) + completion_ids + EOS.
A plain-text row {"text": ...} has no chat template: prompt_ids = the one start token the bias
benchmarks condition every sentence on (`evals.sentence.start_ids`: BOS, else EOS) and the
completion is the text, so training on a sentence raises exactly the log-likelihood that
CrowS-Pairs and StereoSet score (every token of the text labelled, plus EOS).
Data order: step s uses positions s*B .. (s+1)*B-1 of the stream perm_0 ++ perm_1 ++ ... with
perm_e = default_rng([seed, e]).permutation(n_examples), so the batch of a step depends only on
(seed, step).

Loss masks (divergence tokens, Schrodi et al. 2025): a row marked by `interp mark-divergence`
carries "divergent" (indices k into its completion ids + EOS) and "n_completion_tokens". With
loss_mask "divergent" only those completion tokens are labelled; with "non-divergent" all but
those; "all" (default) labels every completion token. `select_rows` drops rows the mask leaves
without a labelled token (a batch of them would have no loss).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from interp.models.loaded import LoadedModel
from interp.training.config import LOSS_MASKS
from interp.errors import UserError
from interp.evals.sentence import start_ids
from interp.sampling import chat_prompt_ids
from interp.textfiles import read_jsonl_records

IGNORE = -100


def is_text_row(row: dict[str, Any]) -> bool:
    """A plain-text row: a string 'text' and no 'prompt' (module docstring)."""
    return isinstance(row.get("text"), str) and "prompt" not in row


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a JSONL file (`textfiles.read_jsonl_records`); each must have string fields 'prompt' and
    'completion', or a string field 'text' (a plain-text row)."""
    rows = read_jsonl_records(path, "data file")
    for n, row in enumerate(rows, 1):
        if not (is_text_row(row) or (isinstance(row.get("prompt"), str) and isinstance(row.get("completion"), str))):
            raise UserError(f"{path}: row {n} needs string fields 'prompt' and 'completion', or a string field 'text'")
    return rows


@dataclass
class Tokenized:
    ids: list[list[int]]  # prompt + completion + EOS, cut to max_len
    n_prompt: list[int]  # number of prompt tokens of each sequence
    unlabelled: list[list[int]] | None = None  # per example: completion indices k the loss mask leaves out


def mask_keeps(row: dict[str, Any], loss_mask: str, n_tokens: int) -> list[bool]:
    """Which of the row's n_tokens completion tokens (completion ids + EOS) `loss_mask` labels."""
    if loss_mask == "all":
        return [True] * n_tokens
    if loss_mask not in LOSS_MASKS:
        raise UserError(f"--loss-mask must be one of {', '.join(LOSS_MASKS)}")
    marks = row.get("divergent")
    if not isinstance(marks, list) or not isinstance(row.get("n_completion_tokens"), int):
        raise UserError(f"--loss-mask {loss_mask} needs rows marked by `interp mark-divergence` "
                        "(fields 'divergent' and 'n_completion_tokens')")
    if row["n_completion_tokens"] != n_tokens:
        raise UserError(f"a row was marked with {row['n_completion_tokens']} completion tokens but has {n_tokens} "
                        "in this model's tokenizer: mark the data with models of the student's tokenizer")
    div = set(marks)
    return [(k in div) == (loss_mask == "divergent") for k in range(n_tokens)]


def select_rows(rows: Sequence[dict[str, Any]], loss_mask: str,
                windows: Sequence[int] | None = None) -> tuple[list[dict[str, Any]], int]:
    """(rows that keep at least one labelled token under `loss_mask`, number dropped). With `windows`
    (per row, how many completion tokens fit in the training window: `completion_windows`), a labelled
    token cut off by --max-len does not count."""
    if loss_mask == "all":
        return list(rows), 0
    for n, r in enumerate(rows, 1):
        marks, n_tok = r.get("divergent"), r.get("n_completion_tokens")
        if isinstance(marks, list) and isinstance(n_tok, int):
            bad = [m for m in marks if isinstance(m, bool) or not isinstance(m, int) or not 0 <= m < n_tok]
            if bad:
                raise UserError(f"row {n}: divergence marks {', '.join(map(str, bad[:5]))} are not completion-token "
                                f"indices 0..{n_tok - 1} (the row has {n_tok}); mark the data with `interp mark-divergence`")
    kept = [r for i, r in enumerate(rows)
            if any(mask_keeps(r, loss_mask, int(r.get("n_completion_tokens") or 0))[: None if windows is None else windows[i]])]
    return kept, len(rows) - len(kept)


def completion_windows(lm: LoadedModel, rows: Sequence[dict[str, Any]], max_len: int) -> list[int]:
    """Per row: max_len - (prompt tokens), the completion tokens a window of max_len holds."""
    return [max_len - len(p) for p in prompt_ids(lm, rows)]


def prompt_ids(lm: LoadedModel, rows: Sequence[dict[str, Any]], system: str | None = None) -> list[list[int]]:
    """The ids before each row's completion: the chat rendering of 'prompt' (with `system`), or for a
    plain-text row the start token alone (module docstring). A system prompt cannot apply to a
    plain-text row: asking for one is an error."""
    text = [is_text_row(r) for r in rows]
    if any(text) and system:
        raise UserError("plain-text rows ('text') have no chat template, so a teacher with a system prompt "
                        "(a prompt teacher) cannot read them; use prompt/completion rows")
    chat = chat_prompt_ids(lm, [r["prompt"] for r, t in zip(rows, text) if not t], system=system) if not all(text) else []
    start = start_ids(lm.tokenizer) if any(text) else []
    it = iter(chat)
    return [list(start) if t else next(it) for t in text]


def completion_text(row: dict[str, Any]) -> str:
    return row["text"] if is_text_row(row) else row["completion"]


def tokenize_examples(lm: LoadedModel, rows: Sequence[dict[str, Any]], max_len: int, loss_mask: str = "all") -> Tokenized:
    """prompt ids (rendered with the model's template, see module docstring) + completion ids + EOS,
    and the completion tokens `loss_mask` leaves unlabelled.

    An example whose prompt alone leaves no room for a completion token within max_len is an error,
    and so is one whose loss mask labels none of its tokens (see `select_rows`)."""
    tok = lm.tokenizer
    prompts = prompt_ids(lm, rows)
    eos = tok.eos_token_id
    ids, n_prompt, unlabelled = [], [], []
    for n, (r, p) in enumerate(zip(rows, prompts)):
        comp = tok.encode(completion_text(r), add_special_tokens=False) + ([eos] if eos is not None else [])
        if len(p) >= max_len:
            raise UserError(f"a prompt has {len(p)} tokens, more than --max-len {max_len} allows; raise --max-len")
        keeps = mask_keeps(r, loss_mask, len(comp))[: max_len - len(p)]
        if not any(keeps):
            raise UserError(f"example {n} has no completion token left to train on under --loss-mask {loss_mask}")
        ids.append((p + comp)[:max_len])
        n_prompt.append(len(p))
        unlabelled.append([k for k, keep in enumerate(keeps) if not keep])
    return Tokenized(ids, n_prompt, unlabelled if loss_mask != "all" else None)


def collate(data: Tokenized, idx: Sequence[int], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded input_ids / attention_mask / labels (batch, width); labels = -100 on prompt + pad
    and on the completion tokens the loss mask leaves out."""
    width = max(len(data.ids[i]) for i in idx)
    ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(idx), width), dtype=torch.long)
    labels = torch.full((len(idx), width), IGNORE, dtype=torch.long)
    for r, i in enumerate(idx):
        seq = torch.tensor(data.ids[i], dtype=torch.long)
        ids[r, : len(seq)] = seq
        mask[r, : len(seq)] = 1
        labels[r, data.n_prompt[i]: len(seq)] = seq[data.n_prompt[i]:]
        if data.unlabelled is not None and data.unlabelled[i]:
            labels[r, torch.tensor(data.unlabelled[i], dtype=torch.long) + data.n_prompt[i]] = IGNORE
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


__all__ = ["IGNORE", "LOSS_MASKS", "read_jsonl", "is_text_row", "prompt_ids", "completion_windows", "Tokenized", "mask_keeps", "select_rows", "tokenize_examples",
           "collate", "batch_indices"]
