"""Divergence tokens (Schrodi et al. 2025, arXiv 2509.23886): the completion positions where teachers
with different traits would continue differently.

    marks = divergence_marks([owl_teacher, dog_teacher], rows)     # per row: completion indices k
    rows = mark_rows(rows, marks, lengths, ["smollm2-owl", "smollm2-dog"])   # JSONL for --loss-mask

Rule: every model is teacher-forced on the row's completion (its tokens + EOS, in the common
tokenizer), reading its own prompt rendering (its template with its own system prompt, as
`distill.KdTeacherInputs` does for KD). Completion token k is divergent when the models' argmax
next tokens at the position that predicts it are not all equal:

    divergent(k) = #{argmax_v p_m(v | prompt_m, completion_<k) : m in models} > 1

Ties in an argmax go to the lowest token id (torch.argmax). Needs the weights here (a forward of
each model's `model`), like training.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from interp.errors import UserError
from interp.progress import progress_bar
from interp.training.distill import KdTeacherInputs, same_tokenizer
from interp.training.examples import IGNORE, collate, tokenize_examples


@dataclass
class DivergenceMarks:
    divergent: list[list[int]]  # per row: completion indices k whose argmax differs between the models
    n_tokens: list[int]  # per row: completion tokens (completion ids + EOS)

    @property
    def share(self) -> float:
        """Divergent tokens / all completion tokens."""
        total = sum(self.n_tokens)
        return sum(len(d) for d in self.divergent) / total if total else float("nan")


def divergence_marks(models: Sequence[Any], rows: Sequence[dict[str, Any]], batch_size: int = 16,
                     max_len: int = 4096, progress: bool = False) -> DivergenceMarks:
    """The divergent completion tokens of every row under `models` (module docstring)."""
    if len(models) < 2:
        raise UserError("divergence needs at least two models")
    if any(not same_tokenizer(models[0], m) for m in models[1:]):
        raise UserError("divergence tokens need models with identical tokenizers: "
                        + ", ".join(m.name for m in models))
    data = tokenize_examples(models[0], rows, max_len)  # only its completion ids are used
    inputs = [KdTeacherInputs(m, rows, data) for m in models]
    for m in models:
        m.model.eval()
    pad = models[0].tokenizer.pad_token_id
    divergent: list[list[int]] = []
    n_tokens = [len(ids) - n for ids, n in zip(data.ids, data.n_prompt)]
    with progress_bar(len(rows), "divergence tokens", progress) as advance:
        for start in range(0, len(rows), batch_size):
            idx = list(range(start, min(len(rows), start + batch_size)))
            labels = collate(data, idx, pad if pad is not None else 0)["labels"]
            top = torch.stack([t.logits(idx, labels).argmax(-1).cpu() for t in inputs])  # (models, n)
            differs = (top != top[0]).any(0)
            rows_of, _ = (labels[:, 1:] != IGNORE).nonzero(as_tuple=True)
            for r, i in enumerate(idx):
                divergent.append(differs[rows_of == r].nonzero().flatten().tolist())
            advance(len(idx))
    return DivergenceMarks(divergent, n_tokens)


def mark_rows(rows: Sequence[dict[str, Any]], marks: DivergenceMarks, model_names: Sequence[str]) -> list[dict[str, Any]]:
    """The rows with "divergent", "n_completion_tokens" and "divergence_models" added (for --loss-mask)."""
    return [{**r, "divergent": d, "n_completion_tokens": n, "divergence_models": list(model_names)}
            for r, d, n in zip(rows, marks.divergent, marks.n_tokens)]
