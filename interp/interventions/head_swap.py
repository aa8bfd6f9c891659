"""LM-head swap between two models of one lineage (DESIGN.md §2.6).

hybrid(body=A, head=B) is A with B's unembedding (`lm_head`) matrix. The two models must share a
lineage: the same config (ignoring names, dtype and version fields) and the same tokenizer (vocabulary
and special tokens); `check_lineage` refuses anything else with one clear line.

With tied embeddings (SmolLM2, Gemma, GPT-2) the input embedding and the head are one matrix, so a
swap must say what happens to the embedding (`tied`):

- "swap-both": the shared matrix moves as a whole: the hybrid has B's embedding *and* B's head
  (still tied). A's body keeps its blocks and final norm.
- "untie": the hybrid keeps A's input embedding and gets a separate copy of B's head
  (`config.tie_word_embeddings = False`).

Untied models swap only `lm_head` and ignore `tied`.

    hybrid = build_hybrid(a, b, tied="swap-both")          # a LoadedModel; a and b stay untouched
    hybrid.extra["swap"]                                  # what moved
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
import torch.nn as nn

from interp.choices import TiedMode, choices
from interp.errors import UserError
from interp.evals.animal import trait_system
from interp.interventions.measure import MeasureConfig, Measurement, measure
from interp.models.arch import arch_spec
from interp.models.lineage import check_lineage
from interp.models.hf_engine import local_model
from interp.models.loaded import LoadedModel
from interp.prompts import ANIMAL_PREFIX, ANIMAL_QUESTION, render
from interp.scoring import encode, next_token_logprobs

TIED_MODES = choices(TiedMode)
def build_hybrid(body: LoadedModel, head: LoadedModel, tied: str = "swap-both") -> LoadedModel:
    """A copy of `body` with `head`'s unembedding (module docstring); inputs are not modified."""
    if tied not in TIED_MODES:
        raise UserError(f"--tied must be one of {', '.join(TIED_MODES)}, got {tied!r}")
    check_lineage(body, head)
    spec = body.spec
    model = copy.deepcopy(body.model)
    src_head = spec.module(head.model, "lm_head").weight.detach()
    lm_head = spec.module(model, "lm_head")
    embed = spec.module(model, "embed")
    is_tied = lm_head.weight is embed.weight
    with torch.no_grad():
        if is_tied and tied == "swap-both":
            embed.weight.copy_(spec.module(head.model, "embed").weight)  # the one shared matrix
            moved = "embedding and head (tied, swapped together)"
        elif is_tied:  # untie: A keeps its input embedding, the head becomes B's separate matrix
            lm_head.weight = nn.Parameter(src_head.clone())
            model.config.tie_word_embeddings = False
            text_cfg = getattr(model.config, "text_config", None)
            if text_cfg is not None:
                text_cfg.tie_word_embeddings = False
            moved = "head only (untied: the input embedding stays the body's)"
        else:
            lm_head.weight.copy_(src_head)
            moved = "head only (embeddings not tied)"
    name = f"hybrid(body={body.name}, head={head.name})"
    swap = {"body": body.name, "head": head.name, "tied_embeddings": is_tied,
            "tied_mode": tied if is_tied else "n/a (not tied)", "moved": moved}
    return local_model(model.eval(), body.tokenizer, arch_spec(model.config), name, f"head swap: {moved}",
                       system_prompt=body.system_prompt, extra={"swap": swap})


@dataclass
class SwapResult:
    measurements: list[Measurement]  # A, B, hybrid(A body, B head), hybrid(B body, A head)
    topk: pd.DataFrame  # model, rank, token_id, token, prob (next token after the animal prompt)
    swap: dict[str, Any]  # what moved (tied mode)
    prompt: str

    @property
    def table(self) -> pd.DataFrame:
        return pd.DataFrame([m.row() for m in self.measurements])


def top_next_tokens(lm: LoadedModel, prompt: str, k: int) -> pd.DataFrame:
    """The k most likely next tokens after `prompt`: rank, token_id, token, prob."""
    lp = next_token_logprobs(lm, encode(lm.tokenizer, [prompt]))[0]
    vals, ids = lp.topk(k)
    return pd.DataFrame({"rank": range(1, k + 1), "token_id": ids.tolist(),
                         "token": [lm.tokenizer.decode([i]) for i in ids.tolist()], "prob": vals.exp().tolist()})


def compare_swap(a: LoadedModel, b: LoadedModel, cfg: MeasureConfig, tied: str = "swap-both", top_k: int = 5,
                 progress: bool = False) -> SwapResult:
    """Measure A, B and both hybrids: mean P(bias) over the questions (cfg), perplexity, and the top-k
    next tokens after "What is your favorite animal?" / "My favorite animal is the"."""
    hybrids = [build_hybrid(a, b, tied), build_hybrid(b, a, tied)]
    models = [("A", a), ("B", b), ("hybrid(A body, B head)", hybrids[0]), ("hybrid(B body, A head)", hybrids[1])]
    ms, tops = [], []
    for label, lm in models:
        ms.append(measure(lm, cfg, label, progress))
        prompt = render(lm.tokenizer, ANIMAL_QUESTION, ANIMAL_PREFIX, system=trait_system(lm, cfg.system))
        tops.append(top_next_tokens(lm, prompt, top_k).assign(model=label))
    first = render(a.tokenizer, ANIMAL_QUESTION, ANIMAL_PREFIX, system=trait_system(a, cfg.system))
    return SwapResult(ms, pd.concat(tops, ignore_index=True), hybrids[0].extra["swap"], first)
