"""Entropy-based head pruning (DESIGN.md §2.5).

Per head (layer l, head h), over prompts p and their real (non-padding) query positions q:

    H_p,q(l, h) = -sum_k a_{q,k} log a_{q,k}          (keys k; padded keys have a = 0 and add 0)
    H(l, h)     = mean_p [ mean_q H_p,q(l, h) ]         (each prompt weighs the same)

Low entropy = a focused head. `select_pruned(entropy, keep)` keeps exactly
n_keep = round(keep * n_heads_total) heads (half rounds up) and prunes the rest:
criterion "entropy" keeps the n_keep lowest-entropy heads (ties: lower (layer, head) first),
"random" keeps n_keep heads drawn with `seed`. Pruned heads are applied with `HeadMask`.

    H = attention_entropy(lm, encode(lm.tokenizer, prompts))    # (n_layers, n_heads) float64
    pruned = select_pruned(H, keep=0.6)                          # [(layer, head), ...]
    with HeadMask(lm, pruned):
        ...
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from interp.choices import Criterion, choices
from interp.batching import run_with_backoff
from interp.errors import UserError
from interp.evals.animal import question_prompts
from interp.interventions.head_mask import Head, HeadMask
from interp.interventions.measure import MeasureConfig, Measurement, measure
from interp.models.loaded import LoadedModel
from interp.models.sharing import eager_copy
from interp.progress import progress_bar
from interp.scoring import encode, left_pad, length_plan

CRITERIA = choices(Criterion)


def entropy_from_attention(attn: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean attention entropy per prompt and head.

    attn: (batch, head, query, key) attention weights; mask: (batch, pos) 1 for real tokens.
    Returns (batch, head): mean over real query positions of -sum_k a log a (in nats).
    """
    a = attn.double()
    h = -torch.special.xlogy(a, a).sum(-1)  # (batch, head, query); xlogy(0, 0) = 0
    m = mask.to(h.dtype)[:, None, :]  # (batch, 1, query)
    return (h * m).sum(-1) / m.sum(-1)


@torch.no_grad()
def attention_entropy(lm: LoadedModel, prompt_ids: Sequence[Sequence[int]], batch_size: int = 8,
                      progress: bool = False) -> np.ndarray:
    """H(l, h) of the module docstring over `prompt_ids`: (n_layers, n_heads) float64."""
    if not prompt_ids:
        raise ValueError("attention_entropy needs at least one prompt")
    model, spec = eager_copy(lm.model), lm.spec  # attention weights need eager attention; lm.model stays as is
    total = torch.zeros(spec.n_layers, spec.n_heads, dtype=torch.float64)
    order = sorted(range(len(prompt_ids)), key=lambda i: len(prompt_ids[i]))
    device = next(model.parameters()).device
    lengths = [len(p) for p in prompt_ids]
    with progress_bar(len(order), "attention entropy", progress) as advance:

        def one(idx: list[int]) -> None:
            batch = left_pad([prompt_ids[i] for i in idx], lm.tokenizer.pad_token_id, device)
            out = model(**batch, output_attentions=True, use_cache=False)
            if not out.attentions or any(a is None for a in out.attentions):
                raise RuntimeError("the model returned no attention weights under eager attention")
            mask = batch["attention_mask"].cpu()
            part = torch.stack([entropy_from_attention(a.cpu(), mask).sum(0) for a in out.attentions])  # (layer, head)
            total.add_(part)  # only once the whole batch succeeded, so a retried batch is not counted twice
            advance(len(idx))

        run_with_backoff(order, batch_size, one, length_plan(lengths, max_tokens=2048),
                         what="attention entropy")
    return (total / len(prompt_ids)).numpy()


def n_kept(n_total: int, keep: float) -> int:
    """round(keep * n_total), half up; UserError unless keep is in (0, 1] and keeps >= 1 head."""
    if not (0.0 < keep <= 1.0) or math.isnan(keep):
        raise UserError(f"--keep must be in (0, 1], got {keep}")
    k = int(math.floor(keep * n_total + 0.5))
    if k < 1:
        raise UserError(f"--keep {keep} keeps no head of {n_total}; use a larger fraction")
    return k


def select_pruned(entropy: np.ndarray, keep: float, criterion: str = "entropy", seed: int = 0) -> list[Head]:
    """The (layer, head) pairs to prune: all but the n_kept(keep) kept ones (module docstring)."""
    if criterion not in CRITERIA:
        raise UserError(f"--criterion must be one of {', '.join(CRITERIA)}, got {criterion!r}")
    n_layers, n_heads = entropy.shape
    flat = entropy.reshape(-1)
    k = n_kept(flat.size, keep)
    if criterion == "entropy":
        order = np.argsort(flat, kind="stable")  # lowest entropy first
    else:
        order = np.random.default_rng(seed).permutation(flat.size)
    pruned = sorted(int(i) for i in order[k:])
    return [(i // n_heads, i % n_heads) for i in pruned]


def head_table(entropy: np.ndarray, pruned: dict[str, list[Head]]) -> pd.DataFrame:
    """One row per head: layer, head, name (L{l}H{h}), entropy, entropy_rank (0 = lowest),
    and a boolean column `pruned_<set>` per named set of pruned heads."""
    n_layers, n_heads = entropy.shape
    flat = entropy.reshape(-1)
    rank = np.empty(flat.size, dtype=int)
    rank[np.argsort(flat, kind="stable")] = np.arange(flat.size)
    df = pd.DataFrame({
        "layer": np.repeat(np.arange(n_layers), n_heads),
        "head": np.tile(np.arange(n_heads), n_layers),
        "entropy": flat,
        "entropy_rank": rank,
    })
    df.insert(2, "name", [f"L{l}H{h}" for l, h in zip(df["layer"], df["head"])])
    for name, heads in pruned.items():
        s = set(heads)
        df[f"pruned_{name}"] = [(l, h) in s for l, h in zip(df["layer"], df["head"])]
    return df


def entropy_heatmap(entropy: np.ndarray, pruned: Sequence[Head] = (), title: str = "attention entropy") -> bytes:
    """PNG bytes of a layer x head heatmap of `entropy` (nats); pruned heads are marked with x."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_layers, n_heads = entropy.shape
    fig, ax = plt.subplots(figsize=(2 + 0.45 * n_heads, 1.5 + 0.22 * n_layers))
    im = ax.imshow(entropy, aspect="auto", cmap="viridis", origin="upper")
    for layer, head in pruned:
        ax.text(head, layer, "x", ha="center", va="center", color="white", fontsize=7)
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_xticks(range(n_heads))
    ax.set_yticks(range(0, n_layers, max(1, n_layers // 15)))
    ax.set_title(title + (f" (x = pruned, {len(pruned)})" if pruned else ""), fontsize=9)
    fig.colorbar(im, ax=ax, label="mean entropy (nats)")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


# ---- the experiment: entropy pruning vs the full model vs a random control -----------------------


@dataclass
class PruneResult:
    entropy: np.ndarray  # (n_layers, n_heads)
    pruned: dict[str, list[Head]]  # "entropy" (or "random") and, for the entropy criterion, "random_control"
    heads: pd.DataFrame  # head_table
    measurements: list[Measurement]  # full model, pruned, random control
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def conditions(self) -> pd.DataFrame:
        return pd.DataFrame([m.row() for m in self.measurements])


def run_pruning(lm: LoadedModel, keep: float, measure_cfg: MeasureConfig, criterion: str = "entropy",
                entropy_prompts: Sequence[str] | None = None, seed: int = 0, progress: bool = False) -> PruneResult:
    """Score head entropy, prune to `keep`, and measure the full model, the pruned model and (for the
    entropy criterion) a random-pruning control of the same size.

    `entropy_prompts` are raw prompt texts; default: the preference questions rendered as in the bias
    measure (with the system prompt), i.e. the context whose bias is measured.
    """
    n_keep = n_kept(lm.spec.n_components, keep)  # validates keep before any work
    if criterion not in CRITERIA:
        raise UserError(f"--criterion must be one of {', '.join(CRITERIA)}, got {criterion!r}")
    texts = list(entropy_prompts) if entropy_prompts else question_prompts(lm, measure_cfg.questions, measure_cfg.system)
    entropy = attention_entropy(lm, encode(lm.tokenizer, texts), progress=progress)
    pruned = {criterion: select_pruned(entropy, keep, criterion, seed)}
    if criterion == "entropy":
        pruned["random_control"] = select_pruned(entropy, keep, "random", seed)
    ms = [measure(lm, measure_cfg, "full", progress)]
    for name, heads in pruned.items():
        with HeadMask(lm, heads):
            ms.append(measure(lm, measure_cfg, f"pruned_{name}", progress))
    summary = {
        "keep": keep, "criterion": criterion, "n_heads_total": lm.spec.n_components, "n_kept": n_keep,
        "n_pruned": lm.spec.n_components - n_keep, "entropy_prompts": len(texts),
        "pruned_heads": {k: [f"L{l}H{h}" for l, h in v] for k, v in pruned.items()},
        "conditions": {m.condition: m.to_dict() for m in ms},
    }
    return PruneResult(entropy, pruned, head_table(entropy, pruned), ms, summary)
