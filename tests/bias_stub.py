"""A scorer stub for the bias-benchmark tests: hand-chosen log-likelihoods, looked up by text.

Only tests use it, with expected figures computed by hand from the same numbers.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from interp.evals.sentence import SentenceScores


class StubScorer:
    """table[sentence] or table[(context, sentence)] -> (summed log-likelihood, n_tokens)."""

    def __init__(self, table: dict) -> None:
        self.table = table
        self.calls: list[tuple[list[str], Optional[list[str]]]] = []

    def __call__(self, sentences: Sequence[str], contexts: Optional[Sequence[str]] = None) -> SentenceScores:
        self.calls.append((list(sentences), list(contexts) if contexts is not None else None))
        vals = [self.table[(contexts[k], s) if contexts is not None else s] for k, s in enumerate(sentences)]
        return SentenceScores(np.array([v[0] for v in vals], dtype=np.float64), np.array([v[1] for v in vals]))
