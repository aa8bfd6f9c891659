"""Squeezing-Heads Distillation (Bing et al. 2025), DESIGN.md §2.8: the math, as pure functions.

A teacher with k heads is distilled into a student with m < k heads through attention maps:

1. Value streams X_i = LN(x) W_V,i W_O,i (kv heads expanded), shape (batch, head, S, d).
2. Merge two heads p, q into  A~ = a A_p + (1 - a) A_q  with a minimising
       || A~ (X_p + X_q) - (A_p X_p + A_q X_q) ||_F^2.
   The residual is a M + N with M = (A_p - A_q)(X_p + X_q), N = (A_q - A_p) X_p, so
       a* = -<M, N>_F / ||M||_F^2, clamped to [0, 1]; a = 1/2 when ||M|| = 0.
   Computed per example (never per batch).
3. Progressive squeeze k -> m: merge adjacent pairs round by round; each round merges
   min(floor(h / 2), h - m) pairs, so it stops exactly at m (9 -> 5 -> 4; 16 -> 12; 32 -> 18).
4. Layer map: l_T = floor(l_S * N_T / N_S).
5. Loss: KL(A~_T || A_S) per query row, over valid (non-padding) rows and keys, mean over rows,
   heads and aligned layers. Teacher temperature tau: A -> A^(1/tau) renormalised per row
   (= softmax(scores / tau)), applied to the teacher's maps before squeezing.
6. Different tokenizers: positions are aligned through character offsets (`align_tokens`); identical
   tokenizers on the same ids use `identity_alignment`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

EPS = 1e-12


# ---- merging ---------------------------------------------------------------------------------


def optimal_alpha(A_p: torch.Tensor, A_q: torch.Tensor, X_p: torch.Tensor, X_q: torch.Tensor) -> torch.Tensor:
    """a* per example. A_*: (..., S, S) row-stochastic maps; X_*: (..., S, d) value streams.

    Returns (...) in [0, 1]: a* = -<M, N>_F / ||M||_F^2, M = (A_p - A_q)(X_p + X_q), N = (A_q - A_p) X_p.
    """
    D = A_p - A_q
    M = D @ (X_p + X_q)
    N = -(D @ X_p)
    mm = (M * M).sum(dim=(-2, -1))
    mn = (M * N).sum(dim=(-2, -1))
    alpha = torch.where(mm > EPS, -mn / mm.clamp_min(EPS), torch.full_like(mm, 0.5))
    return alpha.clamp(0.0, 1.0)


def merge_pair(A_p: torch.Tensor, A_q: torch.Tensor, X_p: torch.Tensor, X_q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(A~, X_p + X_q) for one pair; A~ = a A_p + (1 - a) A_q with a = optimal_alpha per example."""
    a = optimal_alpha(A_p, A_q, X_p, X_q)[..., None, None]
    return a * A_p + (1 - a) * A_q, X_p + X_q


def squeeze_schedule(k: int, m: int) -> list[int]:
    """Head counts after each round of the progressive merge, e.g. (9, 4) -> [5, 4]."""
    if not 1 <= m <= k:
        raise ValueError(f"cannot squeeze {k} heads into {m}")
    out, h = [], k
    while h > m:
        h -= min(h // 2, h - m)
        out.append(h)
    return out


def squeeze_heads(A: torch.Tensor, X: torch.Tensor, m: int) -> torch.Tensor:
    """Squeeze k teacher heads into m maps. A: (batch, k, S, S); X: (batch, k, S, d) -> (batch, m, S, S).

    Each round merges adjacent pairs (0,1), (2,3), ... but only as many as are needed to reach m;
    unpaired heads pass through unchanged. Rows stay distributions (convex combinations).
    """
    k = A.shape[1]
    squeeze_schedule(k, m)  # validates
    heads_A = list(A.unbind(1))
    heads_X = list(X.unbind(1))
    while len(heads_A) > m:
        n_merge = min(len(heads_A) // 2, len(heads_A) - m)
        new_A, new_X = [], []
        for i in range(n_merge):
            a, x = merge_pair(heads_A[2 * i], heads_A[2 * i + 1], heads_X[2 * i], heads_X[2 * i + 1])
            new_A.append(a)
            new_X.append(x)
        new_A += heads_A[2 * n_merge:]
        new_X += heads_X[2 * n_merge:]
        heads_A, heads_X = new_A, new_X
    return torch.stack(heads_A, dim=1)


def sharpen(A: torch.Tensor, tau: float, key_mask: torch.Tensor | None = None) -> torch.Tensor:
    """A^(1/tau) renormalised over keys (= softmax(scores / tau)). A: (..., S, S)."""
    if tau == 1.0:
        return A
    logA = torch.log(A.clamp_min(EPS)) / tau
    if key_mask is not None:
        logA = logA.masked_fill(~key_mask, float("-inf"))
    logA = logA.masked_fill(A <= 0, float("-inf"))
    out = torch.softmax(logA, dim=-1)
    return torch.nan_to_num(out, nan=0.0)


def layer_map(n_student: int, n_teacher: int) -> list[int]:
    """l_T = floor(l_S * N_T / N_S) for every student layer l_S."""
    return [(l * n_teacher) // n_student for l in range(n_student)]


# ---- loss -------------------------------------------------------------------------------------


def attention_kl(target: torch.Tensor, student: torch.Tensor, row_mask: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
    """Mean over valid rows and heads of KL(target_row || student_row).

    target, student: (batch, head, S, S); row_mask: (batch, S) valid query positions;
    key_mask: (batch, S, S) or (batch, head, S, S) allowed keys per query (causal and non-padding;
    per head, e.g. also a sliding window). Target mass on disallowed keys is dropped and the target
    row renormalised.
    """
    km = key_mask[:, None] if key_mask.dim() == 3 else key_mask  # (batch, 1 or head, S, S)
    t = target.masked_fill(~km, 0.0)
    t = t / t.sum(-1, keepdim=True).clamp_min(EPS)
    log_t = torch.log(t.clamp_min(EPS))
    log_s = torch.log(student.clamp_min(EPS))
    kl_rows = (t * (log_t - log_s)).masked_fill(~km, 0.0).sum(-1)  # (batch, head, S)
    rm = row_mask[:, None, :].to(kl_rows.dtype)
    return (kl_rows * rm).sum() / (rm.sum() * target.shape[1]).clamp_min(1.0)


def causal_key_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """(batch, S, S) boolean: query i may see key j iff j <= i and key j is not padding."""
    S = attention_mask.shape[-1]
    causal = torch.ones(S, S, dtype=torch.bool, device=attention_mask.device).tril()
    return causal[None] & attention_mask.bool()[:, None, :]


# ---- alignment across tokenizers --------------------------------------------------------------


@dataclass(frozen=True)
class Alignment:
    """Maps teacher positions onto student positions for one text.

    query_index[j]: the teacher token covering the last character of student token j (-1: none).
    key_pool: (S_teacher, S_student) 0/1 matrix sending each teacher key to the student token
    that contains its last character; rows of a teacher map times key_pool stay distributions.
    """

    query_index: torch.Tensor  # (S_student,) long
    key_pool: torch.Tensor  # (S_teacher, S_student)

    def apply(self, A_T: torch.Tensor) -> torch.Tensor:
        """Teacher maps (..., S_T, S_T) -> (..., S_S, S_S) in student positions."""
        q = self.query_index.clamp_min(0)
        rows = A_T[..., q, :]  # (..., S_S, S_T)
        out = rows @ self.key_pool.to(A_T.dtype)
        return out * (self.query_index >= 0).to(A_T.dtype)[:, None]


def identity_alignment(n: int) -> Alignment:
    """The alignment of a tokenisation with itself: query j -> j, key i -> i (DESIGN.md §2.8:
    identical tokenizers reduce to the plain position-wise loss). Built directly, because char
    offsets cannot tell apart the byte-level tokens of one character (several tokens share the
    span of "🦉"), which `align_tokens` would merge into one."""
    return Alignment(torch.arange(n), torch.eye(n))


def same_vocabulary(a: Any, b: Any) -> bool:
    """Whether two tokenizers have identical vocabularies (every id means the same string): then the
    same text gets the same ids, and the teacher can read the student's ids as they are."""
    return a is b or a.get_vocab() == b.get_vocab()


def token_offsets(tokenizer: Any, ids: Sequence[int]) -> tuple[str, list[tuple[int, int]]]:
    """(text, char span of each token) for `ids`: text = decode(ids) with special tokens written out;
    token k spans decode(ids[:k]) .. decode(ids[:k+1]) (where a prefix's text changes, e.g. inside a
    multi-byte character, the span starts at the common prefix)."""
    spans, prev = [], ""
    for k in range(1, len(ids) + 1):
        cur = tokenizer.decode(list(ids[:k]), skip_special_tokens=False, clean_up_tokenization_spaces=False)
        start = len(prev)
        if not cur.startswith(prev):
            start = next((i for i, (a, b) in enumerate(zip(prev, cur)) if a != b), min(len(prev), len(cur)))
        spans.append((start, len(cur)))
        prev = cur
    return prev, spans


def align_tokens(student_offsets: list[tuple[int, int]], teacher_offsets: list[tuple[int, int]]) -> Alignment:
    """Build the `Alignment` of two tokenisations of the same text from (start, end) char offsets.

    Tokens with an empty span (special tokens such as BOS) map to each other in order when both
    sides have them at the same place, else to nothing (-1 query; key dropped).
    """
    def owner(offsets: list[tuple[int, int]], char: int) -> int:
        for i, (s, e) in enumerate(offsets):
            if s <= char < e:
                return i
        return -1

    S_s, S_t = len(student_offsets), len(teacher_offsets)
    q = torch.full((S_s,), -1, dtype=torch.long)
    pool = torch.zeros((S_t, S_s))
    s_special = [j for j, (s, e) in enumerate(student_offsets) if e <= s]
    t_special = [i for i, (s, e) in enumerate(teacher_offsets) if e <= s]
    for j, (s, e) in enumerate(student_offsets):
        if e > s:
            q[j] = owner(teacher_offsets, e - 1)
    for i, (s, e) in enumerate(teacher_offsets):
        if e > s:
            j = owner(student_offsets, e - 1)
            if j >= 0:
                pool[i, j] = 1.0
    for js, it in zip(s_special, t_special):
        q[js] = it
        pool[it, js] = 1.0
    return Alignment(q, pool)
