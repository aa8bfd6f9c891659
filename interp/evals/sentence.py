"""Sentence log-likelihoods for the bias benchmarks (CrowS-Pairs, StereoSet), one rule for all.

    scorer = lm_scorer(lm, batch_size=32, progress=True)
    s = scorer(["The nurse was tired."])                               # unconditional
    s = scorer(["He is tall."], contexts=["My neighbour is a man."])  # given a context
    s.total        # (n,) float64: sum_i log P(t_i | start, context, t_<i)
    s.n_tokens     # (n,) int: tokens scored per sentence
    s.mean         # (n,) float64: total / n_tokens (per-token mean log-likelihood)

**The start rule (how the first token is scored).** A causal LM cannot score the first token of
a text without something before it, so every sentence is conditioned on one start token:
the tokenizer's BOS token (`bos_token_id`; Gemma's tokenizer adds it anyway), or its EOS token
when it has no BOS (GPT-2 style, as the StereoSet reference code conditions GPT-2 on
`<|endoftext|>`). For SmolLM2 the start token is BOS = `<|im_start|>` (id 1). So

    log L(sentence)            = sum_{i=1..T} log P(t_i | start, t_<i)
    log L(sentence | context)  = sum_{i=1..T} log P(t_i | start, context tokens, t_<i)

where the sentence is tokenised without special tokens, and after a context as " " + sentence
(the context and the sentence are joined by one space; both are stripped). The same rule is used
for every benchmark, so scores of the two sentences of a pair are always comparable; when both
share their first token (nearly all CrowS-Pairs and intrasentence StereoSet items) its log-prob
cancels in the comparison of sums.

A `SentenceScorer` is any callable `(sentences, contexts=None) -> SentenceScores`; the benchmarks
take one (`lm_scorer(lm)` in practice; tests pass a stub with hand-chosen log-likelihoods).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Protocol, Sequence

import numpy as np
import pandas as pd

from interp.choices import ScoreKind, choices
from interp.errors import UserError

if TYPE_CHECKING:  # the loaders of crows / stereoset import this module; they need no torch
    from transformers import PreTrainedTokenizerBase

    from interp.models.loaded import LoadedModel


@dataclass(frozen=True)
class SentenceScores:
    """Per-sentence log-likelihoods (natural log): total (n,), n_tokens (n,)."""

    total: np.ndarray
    n_tokens: np.ndarray

    @property
    def mean(self) -> np.ndarray:
        """Per-token mean log-likelihood total / n_tokens: (n,)."""
        return self.total / np.maximum(self.n_tokens, 1)

    def get(self, kind: str) -> np.ndarray:
        """'sum' -> total, 'mean' -> mean."""
        if kind == "sum":
            return self.total
        if kind == "mean":
            return self.mean
        raise ValueError(f"unknown score kind {kind!r} (sum | mean)")


class SentenceScorer(Protocol):
    def __call__(self, sentences: Sequence[str], contexts: Optional[Sequence[str]] = None) -> SentenceScores: ...


SCORE_KINDS = choices(ScoreKind)


def start_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """The one start token every sentence is conditioned on: [BOS], else [EOS] (see module doc)."""
    for tid in (tokenizer.bos_token_id, tokenizer.eos_token_id):
        if tid is not None:
            return [int(tid)]
    raise ValueError("the tokenizer has neither a BOS nor an EOS token to condition the first token on")


def sentence_pairs(tokenizer: PreTrainedTokenizerBase, sentences: Sequence[str],
                   contexts: Optional[Sequence[str]] = None) -> list[tuple[list[int], list[int]]]:
    """(context_ids, sentence_ids) per sentence under the start rule: context_ids = start (+ context)."""
    if contexts is not None and len(contexts) != len(sentences):
        raise ValueError("contexts and sentences must have the same length")
    start = start_ids(tokenizer)
    out = []
    for k, s in enumerate(sentences):
        ctx = contexts[k].strip() if contexts is not None else ""
        text = s.strip()
        ctx_ids = start + (tokenizer.encode(ctx, add_special_tokens=False) if ctx else [])
        cont = tokenizer.encode((" " + text) if ctx else text, add_special_tokens=False)
        if not cont:
            raise ValueError(f"empty sentence at index {k}")
        out.append((ctx_ids, cont))
    return out


def score_sentences(lm: LoadedModel, sentences: Sequence[str], contexts: Optional[Sequence[str]] = None,
                    batch_size: Optional[int] = None, progress: bool = False,
                    description: str = "sentence log-likelihoods") -> SentenceScores:
    """Teacher-forced log-likelihood of each sentence (given its context, if any) with `lm`.

    Each distinct token position is computed once (`interp.scoring.shared_prefix_logprobs`: identical
    sequences once, sentences sharing a start in one trie, e.g. the common start of a CrowS pair).
    `batch_size` None: scoring's default (used by a hosted model's plain path; tries go by a token budget).
    """
    from interp.scoring import DEFAULT_BATCH, shared_prefix_logprobs

    pairs = sentence_pairs(lm.tokenizer, sentences, contexts)
    lps = shared_prefix_logprobs(lm, [(list(c), list(x)) for c, x in pairs],
                                 DEFAULT_BATCH if batch_size is None else batch_size, progress, description)
    return SentenceScores(np.array([lp.sum() for lp in lps], dtype=np.float64),
                          np.array([len(lp) for lp in lps], dtype=np.int64))


def lm_scorer(lm: LoadedModel, batch_size: Optional[int] = None, progress: bool = False,
              description: str = "sentence log-likelihoods") -> SentenceScorer:
    """A `SentenceScorer` backed by `score_sentences` on `lm`."""

    def scorer(sentences: Sequence[str], contexts: Optional[Sequence[str]] = None) -> SentenceScores:
        return score_sentences(lm, sentences, contexts, batch_size=batch_size, progress=progress,
                               description=description)

    return scorer



def first_items(df: pd.DataFrame, limit: Optional[int]) -> pd.DataFrame:
    """The first `limit` rows of a benchmark's items (all when None), re-indexed 0..n-1."""
    if limit is not None:
        if limit <= 0:
            raise UserError("--limit must be positive")
        df = df.head(limit)
    return df.reset_index(drop=True)
