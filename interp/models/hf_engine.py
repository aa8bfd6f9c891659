"""Plain Hugging Face forwards in this process: `HFEngine`, the engine of every model loaded here,
and `local_model`, which makes a `LoadedModel` with it.

    lm = local_model(model, tokenizer, arch_spec(model.config), "name", "where it came from")
"""

from __future__ import annotations

import copy
from typing import Any, Sequence

import numpy as np
import torch

from interp.batching import run_with_backoff
from interp.models.compat import cache_kwargs
from interp.models.loaded import Engine, Hook, LoadedModel
from interp.models.sharing import shared_copy
from interp.models.tree import TreePlan, model_masks, trie_node_budget
from interp.progress import progress_bar


def local_model(*args: Any, **kwargs: Any) -> LoadedModel:
    """`LoadedModel(*args, **kwargs)` whose forwards run here (`HFEngine`)."""
    lm = LoadedModel(*args, **kwargs)
    lm.engine = HFEngine(lm)
    return lm


class HFEngine(Engine):
    """Plain Hugging Face forwards here; activations through TransformerLens' bridge, booted once over
    `shared_copy(lm.model)` (booting rebuilds the model it is given), so `lm.model` stays as loaded."""

    backend = "bridge"
    weights_here = True
    bridge_available = True
    _bridge: Any = None  # the TransformerLens bridge, booted on first use

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
                rows, seqs, toks = plan.gather(a, b)
                r = torch.tensor(rows, dtype=torch.long, device=logits.device)
                logits = logits.float()
                # log-softmax at the wanted (node, token) pairs only: logit - logsumexp over the vocabulary
                vals = (logits[r, torch.tensor(toks, dtype=torch.long, device=logits.device)]
                        - torch.logsumexp(logits, dim=-1)[r]).double().cpu().numpy()
                plan.add_to(sums, seqs, vals)
                del logits
                advance(b - a)

            run_with_backoff(list(range(trie.n_nodes)), budget, chunk, what=description)
        return sums

    def bridge(self) -> Any:
        """The TransformerLens bridge (booted once, kept by this engine)."""
        lm = self.lm
        if self._bridge is None:
            from transformer_lens.model_bridge import TransformerBridge

            from interp.models.arch import base_model

            hf: Any = shared_copy(base_model(lm.model))  # the bridge rebuilds what it is given
            if not getattr(hf.config, "architectures", None):  # random models built from a config carry none
                hf.config.architectures = [type(hf).__name__]
            # The bridge rebuilds its tokenizer from init_kwargs["name_or_path"] unless add_bos_token is set;
            # give it a private copy that needs no reload (we pass token ids, never text).
            tok = copy.deepcopy(lm.tokenizer)
            tok.init_kwargs.setdefault("name_or_path", lm.path or lm.name)
            tok.init_kwargs["add_bos_token"] = True
            self._bridge = TransformerBridge.boot_transformers(
                lm.name, hf_model=hf, tokenizer=tok, device=str(lm.device))
        return self._bridge

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


__all__ = ["HFEngine", "local_model", "tree_forward", "crop"]
