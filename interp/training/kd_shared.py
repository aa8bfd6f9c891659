"""Logit KD across tokenizers (`--kind kd-shared`): the next-token distributions of teacher and student
compared over the vocabulary both share, at the completion positions where both tokenizations cut the
text at the same character.

    pairs = shared_vocabulary(student.tokenizer, teacher.tokenizer)     # (s_ids, t_ids), (n_shared,) each
    inputs = SharedKdTeacherInputs(teacher, student, rows, data)
    aligned, t_z = inputs.logits(idx, labels)     # (n_labelled,) bool, (n_aligned, teacher vocab)
    L = kd_kl(s_z[aligned][:, s_ids], t_z[:, t_ids], tau)

- Shared vocabulary: token id pairs (s, t) whose single-token decodings are the same string, one id per
  string on each side (a string several ids decode to keeps the id the tokenizer emits for it alone, else
  is left out), with no U+FFFD (a partial UTF-8 byte means nothing alone); the two end-of-sequence tokens are paired with each other whatever
  their strings. Both softmaxes run over these pairs only (each distribution renormalised over the
  shared strings, as `--kd-drop-words` renormalises over the kept tokens).
- Alignment: the student's completion ids (after its prompt; the EOS it appends aside) decode to the
  completion text, each token with its character span (`token_offsets`). The teacher reads its own
  prompt rendering (its chat template and system prompt, as in `KdTeacherInputs`) + its own
  tokenisation of that text + its EOS. Student completion token k (span starting at char a) is aligned
  with the teacher token starting at char a, when there is one: both models then predict "the token
  that starts here". The student's EOS is aligned with the teacher's. Positions where only one side
  cuts the text are left out of the loss (`aligned` False).
- With identical tokenizers every position aligns and the pairs are the identity on the kept ids: the loss is `--kind kd` with the other ids dropped (tested). Across tokenizers that
  split the text differently it is an approximation (the probability of the string "1" as a next token
  means less where the other tokenizer would emit "12"); SmolLM2, Qwen2.5 and Gemma3 all split numbers
  into single digits, ',' and ' ', so on number data every position aligns (tested on the embedded
  tokenizers). Vocabulary mapping by exact string is the simplest of the literature's cross-tokenizer
  alignments (FuseLLM maps by minimum edit distance; ULD matches sorted probabilities)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from interp.models.loaded import LoadedModel
from interp.training.examples import IGNORE, Tokenized, collate, prompt_ids
from interp.training.shd import token_offsets

REPLACEMENT = "\ufffd"


@dataclass(frozen=True)
class SharedVocabulary:
    """Paired ids: student s_ids[i] and teacher t_ids[i] spell the same string. (n_shared,) each."""

    s_ids: torch.Tensor
    t_ids: torch.Tensor

    def __len__(self) -> int:
        return int(self.s_ids.numel())


def _spellings(tokenizer: Any) -> dict[str, int]:
    """{string: id}: each whole string (no U+FFFD, not empty) a single id decodes to, with its id; a string
    several ids decode to (e.g. "1" and Gemma's byte-fallback <0x31>) keeps the id the tokenizer emits
    when it encodes the string alone, and is left out when it emits none of them as one token."""
    texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))], skip_special_tokens=False,
                                   clean_up_tokenization_spaces=False)
    counts = Counter(texts)
    out = {s: i for i, s in enumerate(texts) if counts[s] == 1 and REPLACEMENT not in s and s != ""}
    for s in (s for s, n in counts.items() if n > 1 and REPLACEMENT not in s and s != ""):
        ids = tokenizer.encode(s, add_special_tokens=False)
        if len(ids) == 1 and texts[ids[0]] == s:
            out[s] = ids[0]
    return out


def shared_vocabulary(student_tok: Any, teacher_tok: Any) -> SharedVocabulary:
    """The pairs of the module docstring, ordered by student id (EOS pair included when both have one)."""
    s_map, t_map = _spellings(student_tok), _spellings(teacher_tok)
    s_eos, t_eos = student_tok.eos_token_id, teacher_tok.eos_token_id
    pairs = {s: t_map[text] for text, s in s_map.items() if text in t_map}
    if s_eos is not None and t_eos is not None:
        pairs = {s: t for s, t in pairs.items() if s != s_eos and t != t_eos}
        pairs[s_eos] = t_eos
    order = sorted(pairs)
    return SharedVocabulary(torch.tensor(order, dtype=torch.long), torch.tensor([pairs[s] for s in order], dtype=torch.long))


def completion_alignment(student_tok: Any, teacher_tok: Any, completion: Sequence[int]) -> tuple[list[int], list[int]]:
    """(teacher completion ids, for each student completion token k the index of the teacher completion
    token it is aligned with, or -1). `completion`: the student's ids after its prompt, its EOS last when
    it has one (then the teacher's EOS ends the teacher's ids and the two are aligned)."""
    s_eos = student_tok.eos_token_id
    has_eos = len(completion) > 0 and s_eos is not None and completion[-1] == s_eos
    body = list(completion[:-1] if has_eos else completion)
    text, spans = token_offsets(student_tok, body) if body else ("", [])
    enc = teacher_tok(text, add_special_tokens=False, return_offsets_mapping=True)
    t_ids = list(enc["input_ids"])
    starts: dict[int, int] = {}
    for j, (a, b) in enumerate(enc["offset_mapping"]):
        if b > a:
            starts.setdefault(a, j)
    align = [starts.get(a, -1) if b > a else -1 for a, b in spans]
    if has_eos:
        if teacher_tok.eos_token_id is not None:
            t_ids.append(teacher_tok.eos_token_id)
            align.append(len(t_ids) - 1)
        else:
            align.append(-1)
    return t_ids, align


def teacher_logits_at(teacher: LoadedModel, seqs: list[list[int]], idx: Sequence[int], rows: torch.Tensor,
                      cols: torch.Tensor) -> torch.Tensor:
    """Teacher logits (n, vocab) at (rows[j], cols[j]) of the right-padded batch of `seqs[idx]`: its
    next-token distribution after token cols[j] of row rows[j]. One no-grad forward that keeps the logits
    from the first column asked for on (`logits_to_keep`); no forward when nothing is asked for."""
    device = next(teacher.model.parameters()).device
    if len(cols) == 0:
        return torch.zeros((0, teacher.model.get_output_embeddings().weight.shape[0]), device=device)
    pad = teacher.tokenizer.pad_token_id
    batch = collate(Tokenized(seqs, [0] * len(seqs)), idx, pad if pad is not None else 0)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    start = int(cols.min())
    with torch.no_grad():
        out = teacher.model(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False,
                            logits_to_keep=ids.shape[1] - start)
    return out.logits[rows.to(device), (cols - start).to(device)]


class SharedKdTeacherInputs:
    """The teacher's sequence of each example (its prompt rendering + its tokenisation of the student's
    completion text + EOS) and the alignment of the student's completion tokens to it."""

    def __init__(self, teacher: LoadedModel, student: LoadedModel, rows: Sequence[dict[str, Any]], data: Tokenized):
        prompts = prompt_ids(teacher, rows, system=teacher.system_prompt)
        self.teacher, self.data = teacher, data
        self.ids, self.align = [], []
        for i, p in enumerate(prompts):
            t_comp, align = completion_alignment(student.tokenizer, teacher.tokenizer, data.ids[i][data.n_prompt[i]:])
            self.ids.append(p + t_comp)
            self.align.append([len(p) + j if j >= 0 else -1 for j in align])  # teacher column of token k

    def aligned_fraction(self) -> float:
        """Share of the student's completion tokens (all examples) that have a teacher position."""
        flat = [j for a in self.align for j in a]
        return sum(j >= 0 for j in flat) / max(len(flat), 1)

    def logits(self, idx: Sequence[int], labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(aligned, teacher logits): aligned (n,) bool over the student's labelled positions in the
        row-major order of `student_logits[:, :-1][labels[:, 1:] != IGNORE]`; teacher logits
        (n_aligned, teacher vocab), the teacher's distribution of the aligned token at each.
        labels: the student's (batch, width) labels."""
        rows, cols = (labels[:, 1:] != IGNORE).nonzero(as_tuple=True)  # the student predicts token cols + 1
        t_col = torch.tensor([self.align[idx[r]][c + 1 - self.data.n_prompt[idx[r]]]
                              for r, c in zip(rows.tolist(), cols.tolist())], dtype=torch.long)
        aligned = t_col >= 0
        rows, t_col = rows[aligned], t_col[aligned] - 1  # the teacher predicts column t_col from t_col - 1
        return aligned, teacher_logits_at(self.teacher, self.ids, idx, rows, t_col)
