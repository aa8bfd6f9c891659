"""Engines: the one thing that runs a loaded model's forwards, chosen once, at load.

    lm = load_model("smollm2")                      # lm.engine: HFEngine (plain transformers forwards here)
    lm = attach(load_model("tiny-llama"), Executor("simulate"))   # lm.engine: NnsightEngine (interp.models.nnsight_engine)
    lp = lm.engine.logprobs(batch, keep=1)          # what interp.scoring calls; it never asks which engine it has

Every engine answers the same calls, each with its own strategy:

| call                                   | HFEngine                                   | NnsightEngine                              |
|----------------------------------------|--------------------------------------------|--------------------------------------------|
| `logprobs(batch, keep, columns)`       | one forward, log-softmax here              | one trace, log-softmax where the weights are |
| `trie_logprobs(plan, max_nodes, ...)`  | KV cache, nodes in BFS chunks (back-off)   | the whole tree in one cache-free forward   |
| `activations(tokens, names, ...)`      | TransformerLens bridge (editing hooks too) | nnsight envoys (last position shipped back) |
| `forward(**kwargs)`                    | `lm.model(**kwargs)` (the sampler's loop)  | the same when the weights are here, else a UserError |

Capabilities, for the few analyses that need more than forwards: `weights_here` (the weights are in
this process: W_O products, sampling), `bridge_available` (DLA, patching and attention maps read
TransformerLens-only hooks). Adding an engine (say vLLM for sampling) is one new file with a
subclass of `Engine`; nothing in scoring, probes or evals changes.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import torch

from interp.batching import run_with_backoff
from interp.models.compat import cache_kwargs
from interp.models.sharing import shared_copy
from interp.models.tree import TreePlan, model_masks, trie_node_budget
from interp.progress import progress_bar

if TYPE_CHECKING:
    from interp.models.loading import LoadedModel

Hook = tuple[str, Callable[..., Any]]  # (hook name, fn(activation, hook) -> activation), bridge only


class Engine(ABC):
    """What runs the forwards of one `LoadedModel` (module docstring): an engine must implement
    `logprobs`, `trie_logprobs` and `activations`; `forward` defaults to the local model."""

    backend: str = "?"  # how activations are read: "bridge" | "nnsight"
    weights_here: bool = True
    bridge_available: bool = False

    def __init__(self, lm: "LoadedModel") -> None:
        self.lm = lm  # the model is read at call time: a caller may replace lm.model

    def describe(self) -> dict[str, Any] | None:
        """What summary.json records about the engine (None for plain local forwards)."""
        return None

    @property
    def input_device(self) -> torch.device | str:
        """Where input tensors go."""
        return next(self.lm.model.parameters()).device

    @abstractmethod
    def logprobs(self, batch: dict[str, torch.Tensor], keep: int, columns: Sequence[int] | None = None) -> torch.Tensor:
        """log-softmax of the last `keep` positions of a padded batch: (batch, keep, vocab or
        len(columns)) float32 on the CPU."""

    @abstractmethod
    def trie_logprobs(self, plan: TreePlan, max_nodes: int | None = None, progress: bool = False,
                      description: str = "trie") -> np.ndarray:
        """log P(sequence | context) for every sequence of `plan`: (n_seq,) float64."""

    @abstractmethod
    def activations(self, tokens: torch.Tensor, names: Sequence[str], last_only: bool = False,
                    hooks: Sequence[Hook] = ()) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One unpadded batch (batch, pos) -> (last-position logits (batch, vocab), {hook name: activation})."""

    def forward(self, **kwargs: Any) -> Any:
        """A plain forward of the model (the sampler's KV-cache loop)."""
        return self.lm.model(**kwargs)


# ---- plain transformers forwards in this process -------------------------------------------------


class HFEngine(Engine):
    """Plain Hugging Face forwards here; activations through TransformerLens' bridge, booted once over
    `shared_copy(lm.model)` (booting rebuilds the model it is given), so `lm.model` stays as loaded."""

    backend = "bridge"
    weights_here = True
    bridge_available = True

    @torch.no_grad()
    def logprobs(self, batch: dict[str, torch.Tensor], keep: int, columns: Sequence[int] | None = None) -> torch.Tensor:
        out = self.lm.model(**batch, logits_to_keep=keep, use_cache=False)
        lp = torch.log_softmax(out.logits[:, -keep:, :].float(), dim=-1)
        return (lp[..., list(columns)] if columns is not None else lp).cpu()

    @torch.no_grad()
    def trie_logprobs(self, plan: TreePlan, max_nodes: int | None = None, progress: bool = False,
                      description: str = "trie") -> np.ndarray:
        """context[:-1] into a fresh full-length cache (no sliding-window eviction: the tree's
        positions are not its storage order), then the nodes in BFS chunks of at most `max_nodes`
        (default `trie_node_budget`), each appended to the same cache and masked so a node sees only
        the context and its ancestors. A chunk that runs out of memory is retried in halves (the
        cache is cropped back first)."""
        from transformers import DynamicCache

        model, n_ctx, trie, pos_all = self.lm.model, plan.n_ctx, plan.trie, plan.pos_all
        budget = max_nodes or trie_node_budget(int(model.config.vocab_size))
        cache = DynamicCache()
        if n_ctx:
            vis = torch.ones((n_ctx, n_ctx), dtype=torch.bool).tril()
            tree_forward(model, cache, plan.ctx[:-1], pos_all[:n_ctx], vis, pos_all[:n_ctx], keep_all=False)
        sums = np.zeros(plan.n_seq, dtype=np.float64)
        with progress_bar(trie.n_nodes, description, progress) as advance:

            def chunk(nodes: list[int]) -> None:
                a, b = nodes[0], nodes[-1] + 1
                crop(cache, n_ctx + a)  # drops what a chunk that ran out of memory may have appended
                vis = torch.zeros((b - a, n_ctx + b), dtype=torch.bool)
                vis[:, :n_ctx] = True
                vis.scatter_(1, plan.anc[a:b], True)
                logits = tree_forward(model, cache, trie.token[a:b], pos_all[n_ctx + a:n_ctx + b], vis,
                                      pos_all[:n_ctx + b], keep_all=True)
                lp = torch.log_softmax(logits.float(), dim=-1).double().cpu()
                rows, seqs, toks = plan.gather(a, b)
                vals = lp[torch.tensor(rows, dtype=torch.long), torch.tensor(toks, dtype=torch.long)].numpy()
                plan.add_to(sums, seqs, vals)
                del logits, lp
                advance(b - a)

            run_with_backoff(list(range(trie.n_nodes)), budget, chunk, what=description)
        return sums

    def bridge(self) -> Any:
        """The TransformerLens bridge (booted once, kept in `lm.extra['tl_bridge']`)."""
        lm = self.lm
        if "tl_bridge" not in lm.extra:
            from transformer_lens.model_bridge import TransformerBridge

            from interp.models.arch import base_model

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

    def activations(self, tokens: torch.Tensor, names: Sequence[str], last_only: bool = False,
                    hooks: Sequence[Hook] = ()) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Through the bridge: every position is returned (`last_only` is for engines that ship data)."""
        br = self.bridge()
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


@torch.no_grad()
def tree_forward(model: torch.nn.Module, cache: Any, tokens: list[int], positions: torch.Tensor,
                 visible: torch.Tensor, pos_all: torch.Tensor, keep_all: bool) -> torch.Tensor:
    """One forward of `tokens` (batch 1) appended to `cache`, with `visible` (query, past + query)
    as the attention pattern; returns logits (query or 1, vocab)."""
    dev = next(model.parameters()).device
    mask = model_masks(model, visible, positions, pos_all, next(model.parameters()).dtype)
    mask = {k: v.to(dev) for k, v in mask.items()} if isinstance(mask, dict) else mask.to(dev)
    out = model(input_ids=torch.tensor([tokens], device=dev), position_ids=positions[None].to(dev),
                attention_mask=mask, **cache_kwargs(model, cache), use_cache=True, logits_to_keep=0 if keep_all else 1)
    return out.logits[0]


def crop(cache: Any, length: int) -> None:
    """Cut every layer of a DynamicCache back to `length` tokens (layers a failed forward reached
    may be longer than the others)."""
    for layer in getattr(cache, "layers", []):
        if getattr(layer, "is_initialized", False) and layer.get_seq_length() > length:
            layer.crop(length - layer.get_seq_length())


# ---- choosing an activation engine explicitly (trace --backend) -----------------------------------


def engine_for(lm: "LoadedModel", backend: str | None) -> Engine:
    """The engine that serves activations with `backend`: None -> `lm.engine`; "bridge" -> an
    HFEngine over the local weights; "nnsight" -> `lm.engine` if it is nnsight, else a local
    nnsight engine over the same model (both kept in `lm.extra`)."""
    from interp.errors import UserError

    if backend is None or backend == lm.engine.backend:
        return lm.engine
    if backend == "bridge":
        if not lm.engine.weights_here:
            raise UserError("the TransformerLens bridge needs the weights in this process; this model runs on a server")
        if "hf_engine" not in lm.extra:
            lm.extra["hf_engine"] = HFEngine(lm)
        return lm.extra["hf_engine"]
    if backend == "nnsight":
        from interp.models.executor import Executor
        from interp.models.nnsight_engine import NnsightEngine

        if "nnsight_engine" not in lm.extra:
            lm.extra["nnsight_engine"] = NnsightEngine(lm, Executor("local"))
        return lm.extra["nnsight_engine"]
    raise ValueError(f"unknown backend {backend!r}; choose from bridge, nnsight")


__all__ = ["Engine", "HFEngine", "engine_for", "tree_forward", "crop"]
