"""Perplexity on held-out plain English text.

The text is tokenised once (no special tokens) and cut into consecutive, non-overlapping windows
of `window` tokens. In each window every token after the first is predicted from the tokens before
it in that window; with a tokenizer that prepends BOS (Gemma), BOS is the context and every token of
the window is predicted. Over all predicted tokens t:

    NLL = -mean_t log P(t | window prefix)        perplexity = exp(NLL)

The default text (`data/heldout.txt`, about 3,000 tokens) was written for this project; it is
plain English prose on everyday subjects, unrelated to animals-as-favourites or numbers.

    ppl = perplexity(lm).perplexity
    with HeadMask(lm, pruned):
        ppl_pruned = perplexity(lm).perplexity
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np

from interp.errors import UserError
from interp.models.loaded import LoadedModel
from interp.scoring import adds_bos, shared_prefix_logprobs
from interp.textfiles import read_text

DEFAULT_WINDOW = 256


def load_heldout(path: str | Path | None = None) -> str:
    """The held-out text: `path`, or the one shipped in the package."""
    if path is None:
        return files("interp.evals").joinpath("data/heldout.txt").read_text()
    return read_text(path, "held-out text file")


@dataclass(frozen=True)
class Perplexity:
    perplexity: float
    nll: float  # mean negative log-likelihood per predicted token (nats)
    n_tokens: int  # predicted tokens
    n_windows: int
    window: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def window_pairs(tokenizer: Any, text: str, window: int = DEFAULT_WINDOW) -> list[tuple[list[int], list[int]]]:
    """(context, continuation) token pairs, one per window (see module docstring)."""
    if window < 2:
        raise UserError("the perplexity window must be at least 2 tokens")
    ids = tokenizer.encode(text, add_special_tokens=False)
    if len(ids) < 2:
        raise UserError("the held-out text is too short to score (fewer than 2 tokens)")
    bos = [tokenizer.bos_token_id] if adds_bos(tokenizer) else []
    pairs = []
    for start in range(0, len(ids), window):
        chunk = ids[start:start + window]
        if bos:
            pairs.append((bos, chunk))
        elif len(chunk) >= 2:
            pairs.append((chunk[:1], chunk[1:]))
    return pairs


def perplexity(lm: LoadedModel, text: str | None = None, window: int = DEFAULT_WINDOW, batch_size: int = 2,
               progress: bool = False, description: str = "perplexity") -> Perplexity:
    """Perplexity of `lm` on `text` (default: the packaged held-out text); module docstring.
    `description` labels the progress line (e.g. which condition is being measured)."""
    pairs = window_pairs(lm.tokenizer, load_heldout() if text is None else text, window)
    lps = shared_prefix_logprobs(lm, pairs, batch_size, progress, description=description)
    allp = np.concatenate(lps)
    nll = float(-allp.mean())
    return Perplexity(math.exp(nll), nll, int(allp.size), len(pairs), window)
