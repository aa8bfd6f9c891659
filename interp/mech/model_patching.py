"""Activation patching between two models of one lineage: where does the difference of S and C live?

S (source) and C (target) share config and tokenizer (`models.lineage.check_lineage`), e.g. a student
that acquired a trait and its matched control. For each prompt, run S and keep its activation at a
site, then run C with that site's activation replaced by S's at **every position** (so everything
downstream of the site is C's weights reading S's signal), and score the last position:

    score(model, prompt) = m = log sum_{t in A} P(t | prompt) - log sum_{t in B} P(t | prompt)
                                                          (e.g. A = owl's tokens, B = dog's)
    delta(site)     = mean_q [ m_patched(q) - m_C(q) ]                                  (nats)
    recovered(site) = mean_q [ m_patched(q) - m_C(q) ] / mean_q [ m_S(q) - m_C(q) ]     (ratio of means)

1 = the site carries S's whole margin over C into C; 0 = none of it. The bootstrap CI of `recovered`
resamples questions (paired, `evals.stats.ratio_of_means_ci`). Patching the other way (C into S) shows what
removes the trait from S. Sites:

| site         | what is replaced                                                            |
|--------------|-----------------------------------------------------------------------------|
| `embed`      | the token embedding's output (the residual stream before block 0)           |
| `L{l}resid`  | block l's output, resid_post[l] (everything upstream of it is S's)          |
| `L{l}attn`   | what block l's attention adds to the residual stream (after Gemma's post-norm) |
| `L{l}mlp`    | what block l's MLP adds to the residual stream (after Gemma's post-norm)    |
| `L{l}H{h}`   | head h's term of o_proj's output: C's z_h W_O,h replaced by S's z_h W_O,h   |

Multi-token answers (`SequenceMargin`): a word spelled with several tokens ('O' + 'wl') is scored by
its chain-rule probability, P(w | prompt) = prod_j P(w_j | prompt + w_<j), so

    m = log sum_{w in A} P(w | prompt) - log sum_{w in B} P(w | prompt)

needs one forward per distinct proper prefix of the words (the empty prefix included). Each runs on
prompt + prefix, S's activations recorded on that same sequence and patched into C at every position:
the patched margin is the one C would assign if its site read S's signal throughout. With single-token
words only, SequenceMargin equals `margin_score` (tested), at the cost of one forward.

Sites joined by "+" are patched together. Known answers (tests/test_model_patching.py): patching a
model into itself changes nothing (delta exactly 0, recovered exactly 0 against another reference);
patching the last block's output, or every block's, into a model that differs from the source only in
its blocks recovers exactly 1. With S and C fine-tuned as a whole, the embedding and the LM head (tied
in SmolLM2) differ too, so `L{L-1}resid` recovers what the body carries and 1 - it is the head's share.

Plain PyTorch forward hooks on the Hugging Face modules (`ArchSpec` paths), not TransformerLens: the
bridge patches within one model, and a head's term needs each model's own W_O. Prompts go right-padded
(a real position never attends to the padding after it) with several sites per forward, each a copy of
the batch (`patch_between`); values equal unpadded one-prompt forwards up to fp32 summation order.
"""

from __future__ import annotations

import re
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from interp.errors import UserError
from interp.evals.stats import bootstrap_ci, ratio_of_means_ci
from interp.models.head_positions import HeadPositions
from interp.models.lineage import check_lineage
from interp.models.loaded import LoadedModel
from interp.progress import progress_bar

_SITE = re.compile(r"^(?:embed|L(\d+)(resid|attn|mlp|H(\d+)))$")
Score = Callable[[torch.Tensor], torch.Tensor]  # last-position logits (n, vocab) -> (n,)


@dataclass(frozen=True)
class Site:
    kind: str  # embed | resid | attn | mlp | head
    layer: int | None = None
    head: int | None = None

    @property
    def name(self) -> str:
        if self.kind == "embed":
            return "embed"
        return f"L{self.layer}H{self.head}" if self.kind == "head" else f"L{self.layer}{self.kind}"


def parse_site(name: str, n_layers: int, n_heads: int) -> Site:
    """'L3resid' -> Site('resid', 3); 'L3H5' -> Site('head', 3, 5); 'embed'; UserError otherwise."""
    m = _SITE.match(name.strip())
    if not m:
        raise UserError(f"site {name!r} is not one of embed, L<l>resid, L<l>attn, L<l>mlp, L<l>H<h>")
    if m.group(1) is None:
        return Site("embed")
    layer = int(m.group(1))
    head = int(m.group(3)) if m.group(3) is not None else None
    if not 0 <= layer < n_layers or (head is not None and not 0 <= head < n_heads):
        raise UserError(f"site {name!r} is out of range ({n_layers} layers x {n_heads} heads)")
    return Site("head", layer, head) if head is not None else Site(m.group(2), layer)


def layer_sites(n_layers: int, kinds: Sequence[str] = ("resid", "attn", "mlp")) -> list[str]:
    """Every layer's sites of `kinds`, layer-major: ['L0resid', 'L0attn', 'L0mlp', 'L1resid', ...]."""
    return [f"L{layer}{k}" for layer in range(n_layers) for k in kinds]


def margin_score(target_ids: Sequence[int], other_ids: Sequence[int]) -> Score:
    """logits (n, vocab) -> log sum_{A} softmax - log sum_{B} softmax, in float64: (n,)."""
    a, b = list(target_ids), list(other_ids)
    if not a or not b:
        raise UserError("margin_score needs at least one token on each side")

    def score(logits: torch.Tensor) -> torch.Tensor:
        lp = torch.log_softmax(logits.double(), dim=-1)
        return torch.logsumexp(lp[:, a], -1) - torch.logsumexp(lp[:, b], -1)
    return score


@dataclass(frozen=True)
class SequenceMargin:
    """m = log sum_{w in a} P(w) - log sum_{w in b} P(w) over token sequences w (module docstring).

    prefixes: every distinct proper prefix (the empty one first), one forward each."""

    a: tuple[tuple[int, ...], ...]
    b: tuple[tuple[int, ...], ...]

    def __post_init__(self) -> None:
        if not self.a or not self.b or any(len(w) == 0 for w in (*self.a, *self.b)):
            raise UserError("a sequence margin needs at least one non-empty token sequence on each side")

    @classmethod
    def of(cls, a: Sequence[Sequence[int]], b: Sequence[Sequence[int]]) -> "SequenceMargin":
        return cls(tuple(tuple(int(t) for t in w) for w in a), tuple(tuple(int(t) for t in w) for w in b))

    @property
    def prefixes(self) -> list[tuple[int, ...]]:
        seen = {w[:j] for w in (*self.a, *self.b) for j in range(len(w))}
        return sorted(seen, key=lambda x: (len(x), x))

    def next_tokens(self, prefix: tuple[int, ...]) -> list[int]:
        """The tokens that follow `prefix` in some word, sorted: the only log-probs kept of its forward."""
        return sorted({w[len(prefix)] for w in (*self.a, *self.b) if len(w) > len(prefix) and w[:len(prefix)] == prefix})

    def step(self, prefix: tuple[int, ...], logits: torch.Tensor) -> torch.Tensor:
        """Last-position logits (n, vocab) of prompt + prefix -> log P(next | prompt + prefix) of
        `next_tokens(prefix)`, (n, k) in float64."""
        return torch.log_softmax(logits.double(), dim=-1)[:, self.next_tokens(prefix)]

    def combine(self, logprobs: dict[tuple[int, ...], torch.Tensor]) -> torch.Tensor:
        """{prefix: `step` output} -> m (n,), float64."""
        col = {p: {t: k for k, t in enumerate(self.next_tokens(p))} for p in logprobs}

        def side(words: tuple[tuple[int, ...], ...]) -> torch.Tensor:
            per_word = [sum(logprobs[w[:j]][:, col[w[:j]][w[j]]] for j in range(len(w))) for w in words]  # each (n,)
            return torch.logsumexp(torch.stack(per_word, dim=-1), dim=-1)
        return side(self.a) - side(self.b)


def _module(lm: LoadedModel, site: Site) -> nn.Module:
    """The module whose output (or, for a head, o_proj) the site lives at."""
    spec, model = lm.spec, lm.model
    if site.kind == "embed":
        return spec.module(model, "embed")
    if site.kind == "resid":
        return spec.layers(model)[site.layer]
    if site.kind == "attn":
        return spec.module(model, "attn_out_norm" if spec.layout.attn_out_norm else "attn", site.layer)
    if site.kind == "mlp":
        return spec.module(model, "mlp_out_norm" if spec.layout.mlp_out_norm else "mlp", site.layer)
    return spec.module(model, "o_proj", site.layer)


def _first(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


def _replace_first(output: Any, value: torch.Tensor) -> Any:
    return (value, *output[1:]) if isinstance(output, tuple) else value


def _head_term(lm: LoadedModel, layer: int, head: int, z: torch.Tensor) -> torch.Tensor:
    """z_h W_O,h^T: z (batch, pos, n_heads * head_dim) -> (batch, pos, d_model), with lm's own W_O."""
    d = lm.spec.head_dim
    w = lm.spec.out_weight(lm.model, layer)[:, head * d:(head + 1) * d]  # (d_model, head_dim)
    return z[..., head * d:(head + 1) * d] @ w.T.to(z.dtype)


class _Recorder:
    """Forward hooks that keep each site's activation of one forward of `lm` (heads: z_h W_O,h)."""

    def __init__(self, lm: LoadedModel, sites: Sequence[Site]) -> None:
        self.lm, self.sites, self.acts, self.handles = lm, list(sites), {}, []

    def __enter__(self) -> "_Recorder":
        for site in self.sites:
            def fn(mod: nn.Module, args: tuple[Any, ...], out: Any, site: Site = site) -> None:
                if site.kind == "head":
                    self.acts[site] = _head_term(self.lm, site.layer, site.head, args[0]).detach()
                else:
                    self.acts[site] = _first(out).detach()
            self.handles.append(_module(self.lm, site).register_forward_hook(fn))
        return self

    def __exit__(self, *exc: Any) -> None:
        for h in self.handles:
            h.remove()


def _local(lm: LoadedModel) -> None:
    if not lm.engine.weights_here:
        raise UserError(f"patching between models needs both models' weights in this process; {lm.name} runs on a server")


PATCH_TOKENS = 8192  # padded tokens per forward (site copies x rows x width)


class _CopyPatcher:
    """Forward hooks for a batch stacked as copies (copy k = rows k*n .. (k+1)*n - 1): each site in
    `plan` writes its recorded activation (n, T, d) from another model into the copies that name it."""

    def __init__(self, lm: LoadedModel, plan: dict[Site, tuple[torch.Tensor, list[int]]], n: int) -> None:
        self.lm, self.plan, self.n, self.handles = lm, plan, n, []

    def __enter__(self) -> "_CopyPatcher":
        n = self.n
        for site, (value, copies) in self.plan.items():
            def fn(mod: nn.Module, args: tuple[Any, ...], out: Any, site: Site = site, value: torch.Tensor = value,
                   copies: list[int] = copies) -> Any:
                new = _first(out).clone()
                for k in copies:
                    rows = slice(k * n, (k + 1) * n)
                    if site.kind == "head":
                        new[rows] += value.to(new) - _head_term(self.lm, site.layer, site.head, args[0][rows])
                    else:
                        new[rows] = value.to(new)
                return _replace_first(out, new)
            self.handles.append(_module(self.lm, site).register_forward_hook(fn))
        return self

    def __exit__(self, *exc: Any) -> None:
        for h in self.handles:
            h.remove()


def _right_padded(seqs: Sequence[Sequence[int]], pad: int, device: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(tokens (n, width) right-padded with `pad`, index of each row's last real token (n,)). Under the
    causal mask a real position never sees the padding after it, so its activations are the unpadded
    ones (up to the summation order of a different batch shape)."""
    width = max(len(x) for x in seqs)
    tokens = torch.full((len(seqs), width), pad, dtype=torch.long)
    for r, x in enumerate(seqs):
        tokens[r, :len(x)] = torch.tensor(list(x), dtype=torch.long)
    return tokens.to(device), torch.tensor([len(x) - 1 for x in seqs], dtype=torch.long)


@torch.inference_mode()
def patch_between(
    source: LoadedModel, target: LoadedModel, prompt_ids: Sequence[Sequence[int]], sites: Sequence[str],
    score: Score | SequenceMargin, progress: bool = False, max_tokens: int = PATCH_TOKENS,
) -> pd.DataFrame:
    """One row per (prompt, site): m_source, m_target, m_patched (module docstring); in the order given.

    `sites` are names like "L3resid", "L3attn", "L3mlp", "L3H5", "embed" or "L0resid+L1resid" (together).
    `score` maps last-position logits to the margin (`margin_score`: single tokens, one forward per prompt),
    or is a `SequenceMargin` (multi-token words: one row per prompt and prefix).

    Batching: the rows (prompt + prefix) go right-padded, sorted by length, at most `max_tokens` padded
    tokens per forward; per batch of rows, S runs once (recording every site), C once, and the patched
    runs of C stack as many site copies of the batch per forward as the budget holds (each copy patched
    at its own site). Only each row's last position reaches the LM head (`HeadPositions`). Values equal one unpadded
    forward per prompt up to fp32 summation order (tests/test_model_patching.py states the tolerance).
    """
    from interp.scoring import length_plan

    check_lineage(source, target)
    _local(source)
    _local(target)
    spec = target.spec
    parsed = {s: [parse_site(p, spec.n_layers, spec.n_heads) for p in s.split("+")] for s in sites}
    names = list(parsed)
    every = sorted({x for parts in parsed.values() for x in parts}, key=lambda x: (x.layer or -1, x.kind, x.head or 0))
    # one row per prompt and prefix; what each keeps of its last-position logits, and how the kept parts make m
    if isinstance(score, SequenceMargin):
        prefixes, last, finish = score.prefixes, score.step, score.combine
    else:
        prefixes, last, finish = [()], (lambda _p, logits: score(logits)), (lambda kept: kept[()])
    rows = [(i, p) for i in range(len(prompt_ids)) for p in prefixes]
    seqs = [list(prompt_ids[i]) + list(p) for i, p in rows]
    lengths = [len(x) for x in seqs]
    pad = target.tokenizer.pad_token_id if target.tokenizer.pad_token_id is not None else 0
    kept: dict[str, dict[tuple[int, ...], dict[int, torch.Tensor]]] = {
        k: {p: {} for p in prefixes} for k in ["\0source", "\0target", *names]}

    def keep(into: str, batch: list[int], logits: torch.Tensor) -> None:
        """logits (len(batch), vocab) of rows `batch` -> `last` per prefix, kept by prompt."""
        for p in prefixes:
            sel = [j for j, r in enumerate(batch) if rows[r][1] == p]
            if sel:
                got = last(p, logits[sel].cpu())
                for j, v in zip(sel, got):
                    kept[into][p][rows[batch[j]][0]] = v

    order = sorted(range(len(rows)), key=lengths.__getitem__)
    batches = length_plan(lengths, max_tokens)(order, len(order))
    with progress_bar(len(rows) * (2 + len(names)), f"patching {len(names)} sites", progress) as advance, \
            ExitStack() as stack:
        t_last = stack.enter_context(HeadPositions(target))
        s_last = t_last if source.model is target.model else stack.enter_context(HeadPositions(source))
        for batch in batches:
            tokens, index = _right_padded([seqs[r] for r in batch], pad, target.device)
            s_last.select(torch.arange(len(batch)), index)
            t_last.select(torch.arange(len(batch)), index)
            with _Recorder(source, every) as rec:
                keep("\0source", batch, source.model(input_ids=tokens.to(source.device), use_cache=False).logits[0])
            keep("\0target", batch, target.model(input_ids=tokens, use_cache=False).logits[0])
            advance(2 * len(batch))
            acts = {x: a.to(target.device) for x, a in rec.acts.items()}
            per_forward = max(1, max_tokens // tokens.numel())
            for k0 in range(0, len(names), per_forward):
                chunk = names[k0:k0 + per_forward]
                plan = {x: (acts[x], [k for k, name in enumerate(chunk) if x in parsed[name]])
                        for x in dict.fromkeys(x for name in chunk for x in parsed[name])}
                t_last.select(torch.arange(len(chunk) * len(batch)), index.repeat(len(chunk)))
                with _CopyPatcher(target, plan, len(batch)):
                    logits = target.model(input_ids=tokens.repeat(len(chunk), 1), use_cache=False).logits[0]
                for k, name in enumerate(chunk):
                    keep(name, batch, logits[k * len(batch):(k + 1) * len(batch)])
                advance(len(chunk) * len(batch))

    def margins(into: str) -> torch.Tensor:
        return finish({p: torch.stack([kept[into][p][i] for i in range(len(prompt_ids))]) for p in prefixes})

    m_src, m_tgt = margins("\0source"), margins("\0target")
    out = []
    for name in names:
        m_pat = margins(name)
        out += [{"prompt": i, "site": name, "m_source": float(m_src[i]), "m_target": float(m_tgt[i]),
                 "m_patched": float(m_pat[i])} for i in range(len(prompt_ids))]
    return pd.DataFrame(out)


def recovered_table(df: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Per site: n, mean margins, delta = mean(m_patched - m_target) with its 95% bootstrap CI, and
    recovered = delta / mean(m_source - m_target) with a paired 95% bootstrap CI over prompts
    (`evals.stats.ratio_of_means_ci`). recovered is NaN where source and target agree on average."""
    out = []
    for site, g in df.groupby("site", sort=False):
        num = (g.m_patched - g.m_target).to_numpy()
        den = (g.m_source - g.m_target).to_numpy()
        d = bootstrap_ci(num, seed=seed)
        row: dict[str, Any] = {"site": site, "n": len(g), "m_source": g.m_source.mean(), "m_target": g.m_target.mean(),
                               "m_patched": g.m_patched.mean(), "delta": d.estimate, "delta_lo": d.lo, "delta_hi": d.hi}
        if den.mean() != 0:
            r = ratio_of_means_ci(num, den, seed=seed)
            row |= {"recovered": r.estimate, "recovered_lo": r.lo, "recovered_hi": r.hi}
        else:
            row |= {"recovered": np.nan, "recovered_lo": np.nan, "recovered_hi": np.nan}
        out.append(row)
    return pd.DataFrame(out)


__all__ = ["Site", "SequenceMargin", "parse_site", "layer_sites", "margin_score", "patch_between", "recovered_table"]
