"""Activation access under TransformerLens hook names, through the TransformerLens 4.x bridge or nnsight.

    acts = cache_last(lm, ids, [hook.resid_post(l) for l in range(L)])   # {name: (n, d_model)}
    acts = cache_last(lm, ids, [hook.z(5)], backend="nnsight")            # {name: (n, head, d_head)}

Both backends return the same names and shapes (tested per family):

| name                          | shape at all positions        | bridge                | nnsight                          |
|-------------------------------|-------------------------------|-----------------------|----------------------------------|
| `blocks.{l}.hook_resid_pre`   | (batch, pos, d_model)         | yes                   | input of block l                 |
| `blocks.{l}.hook_resid_mid`   | (batch, pos, d_model)         | yes                   | -                                |
| `blocks.{l}.hook_resid_post`  | (batch, pos, d_model)         | yes                   | output of block l                |
| `blocks.{l}.attn.hook_z`      | (batch, pos, head, d_head)    | yes                   | input of o_proj, split by head   |
| `blocks.{l}.hook_mlp_out`     | (batch, pos, d_model)         | yes (what joins the residual) | -                        |
| `blocks.{l}.attn.hook_pattern`| (batch, head, query, key)     | yes                   | -                                |
| `ln_final.hook_out`           | (batch, pos, d_model)         | yes                   | -                                |

Prompts are given as HF token ids (never `bridge.to_tokens`, which adds a BOS the HF tokenizer
may not). Prompts are grouped by length and run without padding, so batching cannot change a
value. The bridge is booted once per `LoadedModel` (`TransformerBridge.boot_transformers(name,
hf_model=lm.model, tokenizer=...)`); booting switches the HF model to eager attention.
Every run caches through a `names_filter`, so only the requested hooks are kept.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from typing import Any, Callable, Literal, Sequence

import torch

from interp.models.arch import base_model
from interp.models.loading import LoadedModel
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

        hf = base_model(lm.model)
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
    by_len: dict[int, list[int]] = defaultdict(list)
    for i, s in enumerate(ids):
        by_len[len(s)].append(i)
    out: list[list[int]] = []
    for length in sorted(by_len):
        idx = by_len[length]
        size = max(1, max_tokens // max(length, 1))
        out += [idx[k:k + size] for k in range(0, len(idx), size)]
    return out


def last_position(name: str, t: torch.Tensor) -> torch.Tensor:
    """The last (query) position of a cached hook: pattern (b, head, q, k) -> (b, head, k); else (b, pos, ...) -> (b, ...)."""
    return t[:, :, -1] if name.endswith("hook_pattern") else t[:, -1]


def run_cached(lm: LoadedModel, tokens: torch.Tensor, names: Sequence[str], backend: Backend = "bridge",
               hooks: Sequence[tuple[str, Callable[..., Any]]] = ()) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One unpadded batch (batch, pos) -> (last-position logits (batch, vocab), {name: activation at all positions}).

    `hooks` are (name, fn(activation, hook) -> activation) editing hooks, bridge backend only.
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
        return _nnsight_run(lm, tokens, names)
    raise ValueError(f"unknown backend {backend!r}; choose from {BACKENDS}")


def cache_last(lm: LoadedModel, ids: Sequence[Sequence[int]], names: Sequence[str], backend: Backend = "bridge",
               progress: bool = False, description: str = "caching activations",
               max_tokens: int = MAX_BATCH_TOKENS) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Last-position logits (n, vocab) and last-position activations {name: (n, ...)} for each prompt
    in `ids` (HF token ids), in the order given; prompts of equal length share a forward."""
    logits: torch.Tensor | None = None
    out: dict[str, torch.Tensor] = {}
    with progress_bar(len(ids), description, progress) as advance:
        for idx in length_groups(ids, max_tokens):
            tokens = torch.tensor([list(ids[i]) for i in idx], dtype=torch.long, device=lm.device)
            lg, acts = run_cached(lm, tokens, names, backend)
            if logits is None:
                logits = torch.empty((len(ids), lg.shape[-1]), dtype=lg.dtype)
            logits[idx] = lg.cpu()
            for n in names:
                a = last_position(n, acts[n]).cpu()
                if n not in out:
                    out[n] = torch.empty((len(ids), *a.shape[1:]), dtype=a.dtype)
                out[n][idx] = a
            advance(len(idx))
    assert logits is not None, "no prompts given"
    return logits, out


# ---- nnsight ------------------------------------------------------------------------------------

def nnsight_model(lm: LoadedModel) -> Any:
    """nnsight's wrapper of the same HF module (kept in `lm.extra['nnsight']`)."""
    if "nnsight" not in lm.extra:
        from nnsight.modeling.transformers import TransformersModel

        lm.extra["nnsight"] = TransformersModel(base_model(lm.model), tokenizer=lm.tokenizer, task="text-generation")
    return lm.extra["nnsight"]


def _envoy(root: Any, path: str) -> Any:
    obj = root
    for part in path.split("."):
        obj = obj[int(part)] if part.isdigit() else getattr(obj, part)
    return obj


def _nnsight_run(lm: LoadedModel, tokens: torch.Tensor, names: Sequence[str]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """resid_pre / resid_post / hook_z through nnsight, read in execution order (an nnsight rule)."""
    spec = lm.spec
    nn_model = nnsight_model(lm)
    plan: list[tuple[int, int, str]] = []  # (layer, stage, name); stage orders reads inside a block
    for n in names:
        parts = n.split(".")
        if len(parts) < 3 or parts[0] != "blocks":
            raise ValueError(f"nnsight backend: unsupported hook {n!r}")
        layer, rest = int(parts[1]), ".".join(parts[2:])
        stage = {"hook_resid_pre": 0, "attn.hook_z": 1, "hook_resid_post": 2}.get(rest)
        if stage is None:
            raise ValueError(f"nnsight backend supports hook_resid_pre, attn.hook_z and hook_resid_post, not {n!r}")
        plan.append((layer, stage, n))
    plan.sort()
    layers_path = spec.layout.layers
    saved: dict[str, Any] = {}
    with torch.no_grad(), nn_model.trace(tokens):
        for layer, stage, n in plan:
            if stage == 0:
                saved[n] = _envoy(nn_model, f"{layers_path}.{layer}").inputs[0][0].save()
            elif stage == 1:
                saved[n] = _envoy(nn_model, spec.path("o_proj", layer)).input.save()
            else:
                saved[n] = _envoy(nn_model, f"{layers_path}.{layer}").output.save()
        logits = _envoy(nn_model, spec.path("lm_head")).output.save()
    out: dict[str, torch.Tensor] = {}
    for layer, stage, n in plan:
        t = saved[n]
        t = t[0] if isinstance(t, tuple) else t
        t = torch.as_tensor(t).detach()
        if stage == 1:
            t = t.reshape(*t.shape[:-1], spec.n_heads, spec.head_dim)
        out[n] = t
    lg = logits[0] if isinstance(logits, tuple) else logits
    return torch.as_tensor(lg)[:, -1].detach(), out
