"""Activation access under TransformerLens hook names, through the TransformerLens 4.x bridge or nnsight.

    acts = cache_last(lm, ids, [hook.resid_post(l) for l in range(L)])   # {name: (n, d_model)}
    acts = cache_last(lm, ids, [hook.z(5)], backend="nnsight")            # {name: (n, head, d_head)}

Both backends return the same names and shapes where both serve a hook (tested per family):

| name                          | shape at all positions        | bridge                | nnsight                          |
|-------------------------------|-------------------------------|-----------------------|----------------------------------|
| `blocks.{l}.hook_resid_pre`   | (batch, pos, d_model)         | yes                   | input of block l                 |
| `blocks.{l}.hook_resid_mid`   | (batch, pos, d_model)         | yes                   | -                                |
| `blocks.{l}.hook_resid_post`  | (batch, pos, d_model)         | yes                   | output of block l                |
| `blocks.{l}.attn.hook_z`      | (batch, pos, head, d_head)    | yes                   | input of o_proj, split by head   |
| `blocks.{l}.attn.hook_result` | (batch, pos, head, d_model)   | -                     | z_h W_O,h, computed in the trace |
| `blocks.{l}.hook_mlp_out`     | (batch, pos, d_model)         | yes (what joins the residual) | the same, read off the module |
| `blocks.{l}.attn.hook_pattern`| (batch, head, query, key)     | yes                   | -                                |
| `ln_final.hook_out`           | (batch, pos, d_model)         | yes                   | -                                |

Prompts are given as HF token ids (never `bridge.to_tokens`, which adds a BOS the HF tokenizer
may not). Prompts are grouped by length and run without padding, so batching cannot change a
value; the nnsight backend ships back only the last position from `cache_last`
(`interp.mech.nnsight_run`, the same trace code for a local model and for `--remote`). The bridge
is booted once per `LoadedModel`, over `shared_copy(lm.model)` (`interp.models.sharing`): booting
rebuilds the HF model it is given (bridge components, eager attention), so it gets a second module
tree over the same weights and `lm.model` stays exactly as loaded. Groups back off on
out-of-memory (`interp.batching`).
Every run caches through a `names_filter`, so only the requested hooks are kept.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from typing import Any, Callable, Literal, Sequence

import torch

from interp.batching import run_with_backoff
from interp.mech import nnsight_run
from interp.models.arch import base_model
from interp.models.loading import LoadedModel
from interp.models.sharing import shared_copy
from interp.progress import progress_bar

Backend = Literal["bridge", "nnsight"]
BACKENDS = ("bridge", "nnsight")
MAX_BATCH_TOKENS = 1024  # tokens per forward (the bridge computes full-vocabulary logits at every position)


class hook:
    """TransformerLens hook names."""

    @staticmethod
    def resid_pre(layer: int) -> str:
        return f"blocks.{layer}.hook_resid_pre"

    @staticmethod
    def resid_mid(layer: int) -> str:
        return f"blocks.{layer}.hook_resid_mid"

    @staticmethod
    def resid_post(layer: int) -> str:
        return f"blocks.{layer}.hook_resid_post"

    @staticmethod
    def z(layer: int) -> str:
        return f"blocks.{layer}.attn.hook_z"

    @staticmethod
    def result(layer: int) -> str:
        return f"blocks.{layer}.attn.hook_result"

    @staticmethod
    def mlp_out(layer: int) -> str:
        return f"blocks.{layer}.hook_mlp_out"

    @staticmethod
    def pattern(layer: int) -> str:
        return f"blocks.{layer}.attn.hook_pattern"

    final_norm_out = "ln_final.hook_out"


def bridge(lm: LoadedModel) -> Any:
    """The TransformerLens bridge over `lm.model` (booted once, kept in `lm.extra['tl_bridge']`)."""
    if "tl_bridge" not in lm.extra:
        from transformer_lens.model_bridge import TransformerBridge

        hf = shared_copy(base_model(lm.model))  # the bridge rebuilds what it is given
        if not getattr(hf.config, "architectures", None):  # random models built from a config carry none
            hf.config.architectures = [type(hf).__name__]
        # The bridge rebuilds its tokenizer from init_kwargs["name_or_path"] unless add_bos_token is set;
        # give it a private copy that needs no reload (we pass token ids, never text).
        tok = copy.deepcopy(lm.tokenizer)
        tok.init_kwargs.setdefault("name_or_path", lm.path or lm.name)
        tok.init_kwargs["add_bos_token"] = True
        lm.extra["tl_bridge"] = TransformerBridge.boot_transformers(
            lm.name, hf_model=hf, tokenizer=tok, device=str(lm.device))
    return lm.extra["tl_bridge"]


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


def last_position(name: str, t: torch.Tensor) -> torch.Tensor:
    """The last (query) position of a cached hook: pattern (b, head, q, k) -> (b, head, k); else (b, pos, ...) -> (b, ...)."""
    return t[:, :, -1] if name.endswith("hook_pattern") else t[:, -1]


def run_cached(lm: LoadedModel, tokens: torch.Tensor, names: Sequence[str], backend: Backend = "bridge",
               hooks: Sequence[tuple[str, Callable[..., Any]]] = (), last_only: bool = False
               ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One unpadded batch (batch, pos) -> (last-position logits (batch, vocab), {name: activation at all positions}).

    `hooks` are (name, fn(activation, hook) -> activation) editing hooks, bridge backend only.
    `last_only`: the nnsight backend returns only the last position (position axis of length 1).
    """
    if backend == "bridge":
        br = bridge(lm)
        wanted = set(names)
        with torch.no_grad():
            if hooks:
                store: dict[str, torch.Tensor] = {}

                def saver(act: torch.Tensor, hook: Any) -> None:
                    store[hook.name] = act.detach()

                logits = br.run_with_hooks(tokens, fwd_hooks=list(hooks) + [(n, saver) for n in wanted])
                return logits[:, -1].detach(), store
            logits, cache = br.run_with_cache(tokens, names_filter=lambda n: n in wanted)
        return logits[:, -1].detach(), {n: cache[n].detach() for n in names}
    if backend == "nnsight":
        if hooks:
            raise ValueError("editing hooks are supported on the bridge backend only")
        return nnsight_run.run(lm, tokens, names, last_only=last_only)
    raise ValueError(f"unknown backend {backend!r}; choose from {BACKENDS}")


def cache_last(lm: LoadedModel, ids: Sequence[Sequence[int]], names: Sequence[str], backend: Backend = "bridge",
               progress: bool = False, description: str = "caching activations",
               max_tokens: int = MAX_BATCH_TOKENS) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Last-position logits (n, vocab) and last-position activations {name: (n, ...)} for each prompt
    in `ids` (HF token ids), in the order given; prompts of equal length share a forward."""
    holder: dict[str, Any] = {"logits": None}
    out: dict[str, torch.Tensor] = {}
    lengths = [len(s) for s in ids]
    with progress_bar(len(ids), description, progress) as advance:

        def one(idx: list[int]) -> None:
            dev = lm.device if backend == "bridge" else "cpu"  # nnsight_run places inputs per executor
            tokens = torch.tensor([list(ids[i]) for i in idx], dtype=torch.long, device=dev)
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
