"""Activation access under TransformerLens hook names (`interp.models.hooks`), through the model's engine.

    acts = cache_last(lm, ids, [hook.resid_post(l) for l in range(L)])   # {name: (n, d_model)}
    acts = cache_last(lm, ids, [hook.z(5)], backend="nnsight")            # {name: (n, head, d_head)}

`lm.engine` serves the activations: the local engine through TransformerLens' bridge (booted once
over a private copy of the model), the nnsight engine through nnsight envoys (`--remote`, `--serve`,
`attach`). `backend="bridge" | "nnsight"` picks one explicitly (`interp.models.engine.engine_for`):
DLA, patching and attention maps ask for the bridge (they read TransformerLens-only hooks). Both
return the same names and shapes where both serve a hook (tested per family):

| name                          | bridge | nnsight                          |
|-------------------------------|--------|----------------------------------|
| `blocks.{l}.hook_resid_pre`   | yes    | input of block l                 |
| `blocks.{l}.hook_resid_mid`   | yes    | -                                |
| `blocks.{l}.hook_resid_post`  | yes    | output of block l                |
| `blocks.{l}.attn.hook_z`      | yes    | input of o_proj, split by head   |
| `blocks.{l}.attn.hook_result` | -      | z_h W_O,h, computed in the trace |
| `blocks.{l}.hook_mlp_out`     | yes    | the same, read off the module    |
| `blocks.{l}.attn.hook_pattern`| yes    | -                                |
| `ln_final.hook_out`           | yes    | -                                |

Prompts are given as HF token ids (never `bridge.to_tokens`, which adds a BOS the HF tokenizer
may not). Prompts are grouped by length and run without padding, so batching cannot change a
value; only the last position comes back from `cache_last`. Groups back off on out-of-memory
(`interp.batching`). Every run caches through a `names_filter`, so only the requested hooks are kept.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Callable, Sequence

import torch

from interp.choices import Backend, choices
from interp.batching import run_with_backoff
from interp.models.engine import engine_for
from interp.models.hooks import hook, last_position  # noqa: F401 (re-exported)
from interp.models.loaded import LoadedModel
from interp.progress import progress_bar

BACKENDS = choices(Backend)
MAX_BATCH_TOKENS = 1024  # tokens per forward (the bridge computes full-vocabulary logits at every position)


def bridge(lm: LoadedModel) -> Any:
    """The TransformerLens bridge over a private copy of `lm.model` (booted once)."""
    return engine_for(lm, "bridge").bridge()


def length_groups(ids: Sequence[Sequence[int]], max_tokens: int = MAX_BATCH_TOKENS) -> list[list[int]]:
    """Indices of `ids` grouped by length (no padding needed), each group cut to <= max_tokens tokens."""
    return length_groups_of(range(len(ids)), [len(s) for s in ids], max_tokens)


def length_groups_of(items: Sequence[int], lengths: Sequence[int], max_tokens: int,
                     max_items: int | None = None) -> list[list[int]]:
    """`items` (indices into `lengths`) grouped by length, each group cut to <= max_tokens tokens
    (and <= max_items prompts)."""
    by_len: dict[int, list[int]] = defaultdict(list)
    for i in items:
        by_len[lengths[i]].append(i)
    out: list[list[int]] = []
    for length in sorted(by_len):
        idx = by_len[length]
        size = max(1, max_tokens // max(length, 1))
        size = min(size, max_items) if max_items else size
        out += [idx[k:k + size] for k in range(0, len(idx), size)]
    return out


def run_cached(lm: LoadedModel, tokens: torch.Tensor, names: Sequence[str], backend: Backend | None = None,
               hooks: Sequence[tuple[str, Callable[..., Any]]] = (), last_only: bool = False
               ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One unpadded batch (batch, pos) -> (last-position logits (batch, vocab), {name: activation at all positions}).

    `hooks` are (name, fn(activation, hook) -> activation) editing hooks, bridge backend only.
    `last_only`: an engine that ships data back (nnsight) returns only the last position (length 1).
    """
    return engine_for(lm, backend).activations(tokens, names, last_only=last_only, hooks=hooks)


def cache_last(lm: LoadedModel, ids: Sequence[Sequence[int]], names: Sequence[str], backend: Backend | None = None,
               progress: bool = False, description: str = "caching activations",
               max_tokens: int = MAX_BATCH_TOKENS) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Last-position logits (n, vocab) and last-position activations {name: (n, ...)} for each prompt
    in `ids` (HF token ids), in the order given; prompts of equal length share a forward."""
    engine = engine_for(lm, backend)
    holder: dict[str, Any] = {"logits": None}
    out: dict[str, torch.Tensor] = {}
    lengths = [len(s) for s in ids]
    with progress_bar(len(ids), description, progress) as advance:

        def one(idx: list[int]) -> None:
            tokens = torch.tensor([list(ids[i]) for i in idx], dtype=torch.long, device=engine.input_device)
            lg, acts = run_cached(lm, tokens, names, backend, last_only=True)
            if holder["logits"] is None:
                holder["logits"] = torch.empty((len(ids), lg.shape[-1]), dtype=lg.dtype)
            holder["logits"][idx] = lg.cpu()
            for n in names:
                a = last_position(n, acts[n]).cpu()
                if n not in out:
                    out[n] = torch.empty((len(ids), *a.shape[1:]), dtype=a.dtype)
                out[n][idx] = a
            advance(len(idx))

        run_with_backoff(list(range(len(ids))), max(1, len(ids)), one,
                         lambda items, size: length_groups_of(items, lengths, max_tokens, size), what="activation cache")
    assert holder["logits"] is not None, "no prompts given"
    return holder["logits"], out
