"""The nnsight engine: every forward is an nnsight trace, run by any executor (local, simulated
remote, NDIF, self-hosted), with one trace code path (`interp.models.executor`).

    lm = attach(load_model("tiny-llama"), Executor("simulate"))   # lm.engine is an NnsightEngine
    lm = load_remote("meta-llama/Llama-3.1-8B", Executor("ndif"))   # meta weights here, real ones on NDIF

Each `with nn.trace(...)` block references only tensors, plain values, envoys, torch and nnsight,
so the block serialises for a server that has no `interp` installed (`Executor("simulate")` checks
that by hiding every non-installed module while it deserialises). Results computed inside the block
(last position, log-softmax, gathered columns) are all that travels back. The trie runs in ONE
cache-free forward with a tree mask (a KV cache cannot travel).

Hook names served (TransformerLens names, read in execution order inside each block):

| name                          | read                                   | shape (all positions)        |
|-------------------------------|----------------------------------------|------------------------------|
| `blocks.{l}.hook_resid_pre`   | input of block l                       | (batch, pos, d_model)        |
| `blocks.{l}.attn.hook_z`      | input of o_proj, split by head         | (batch, pos, head, d_head)   |
| `blocks.{l}.attn.hook_result` | z_h W_O,h per head (effective W_O)     | (batch, pos, head, d_model)  |
| `blocks.{l}.hook_mlp_out`     | output of the MLP (Gemma: of its post-feedforward norm) | (batch, pos, d_model) |
| `blocks.{l}.hook_resid_post`  | output of block l                      | (batch, pos, d_model)        |
"""

from __future__ import annotations

import copy
from typing import Any, Sequence

import numpy as np
import torch

from interp.errors import UserError
from interp.models.arch import base_model
from interp.models.loaded import Engine, Hook, LoadedModel
from interp.models.executor import Executor, remote_errors
from interp.models.hooks import parse
from interp.models.tree import TreePlan, mask_layer_types, tree_mask

SERVED = {"hook_resid_pre": 0, "attn.hook_z": 1, "attn.hook_result": 1, "hook_mlp_out": 2, "hook_resid_post": 3}


class NnsightEngine(Engine):
    backend = "nnsight"
    bridge_available = False  # DLA, patching and attention maps use TransformerLens-only hooks

    def __init__(self, lm: LoadedModel, executor: Executor, wrapper: Any = None) -> None:
        super().__init__(lm)
        self.executor = executor
        self._nn = wrapper  # nnsight's wrapper of the model: a hosted model brings its own, else made on first use

    @property
    def weights_here(self) -> bool:  # type: ignore[override]
        return not self.executor.is_remote

    def describe(self) -> dict[str, Any] | None:
        return self.executor.describe()

    @property
    def input_device(self) -> torch.device | str:
        return "cpu" if self.executor.is_remote else next(self.lm.model.parameters()).device

    def nn(self) -> Any:
        """nnsight's wrapper of the model (kept by this engine; a hosted model brings its own)."""
        if self._nn is None:
            from nnsight.modeling.transformers import TransformersModel

            # nnsight sets padding_side on the tokenizer it is given: hand it a private copy (we pass ids)
            self._nn = TransformersModel(base_model(self.lm.model), tokenizer=copy.deepcopy(self.lm.tokenizer),
                                         task="text-generation")
        return self._nn

    def forward(self, **kwargs: Any) -> Any:
        if self.executor.is_remote:
            raise UserError(f"sampling runs a KV-cache loop on local weights; this model runs on {self.executor.host}")
        return self.lm.model(**kwargs)

    def logprobs(self, batch: dict[str, torch.Tensor], keep: int, columns: Sequence[int] | None = None) -> torch.Tensor:
        """Computed inside the trace: only the wanted positions (and columns) travel back."""
        import nnsight

        nn, dev = self.nn(), self.input_device
        cols = torch.tensor(list(columns), dtype=torch.long) if columns is not None else None
        inputs: dict[str, Any] = {k: v.to(dev) for k, v in batch.items()}
        inputs.update(logits_to_keep=keep, use_cache=False)
        with remote_errors(self.executor), torch.no_grad():
            with nn.trace(inputs, **self.executor.trace_kwargs()):
                lp = torch.log_softmax(nn.output.logits[:, -keep:].float(), dim=-1)
                if cols is not None:
                    lp = lp[..., cols.to(lp.device)]
                lp = nnsight.save(lp)
        return torch.as_tensor(lp).detach().float().cpu()

    def trie_logprobs(self, plan: TreePlan, max_nodes: int | None = None, progress: bool = False,
                      description: str = "trie") -> np.ndarray:
        """context[:-1] then every node in ONE forward without a cache, with the tree mask (the
        context causal; a node sees the context and its ancestors); log-softmax and gather inside."""
        import nnsight

        n_ctx, n = plan.n_ctx, plan.trie.n_nodes
        total = n_ctx + n
        vis = torch.zeros((total, total), dtype=torch.bool)
        vis[:n_ctx, :n_ctx] = torch.ones((n_ctx, n_ctx), dtype=torch.bool).tril()
        vis[n_ctx:, :n_ctx] = True
        vis[n_ctx:].scatter_(1, plan.anc, True)
        kinds, window = mask_layer_types(self.lm.model)
        span = int(plan.pos_all.max()) + 1
        if kinds is not None and "sliding_attention" in kinds and window is not None and span > window:
            raise UserError(f"the one-forward trie (remote scoring) spans {span} positions, more than the sliding "
                            f"window ({window}); use a shorter prompt or --method vocab")
        mask = tree_mask(vis, plan.pos_all, plan.pos_all, next(self.lm.model.parameters()).dtype)
        rows_l, seqs, toks_l = plan.gather(0, n)
        rows, toks = torch.tensor(rows_l, dtype=torch.long), torch.tensor(toks_l, dtype=torch.long)
        nn, dev = self.nn(), self.input_device
        inputs = {"input_ids": torch.tensor([plan.ctx[:-1] + plan.trie.token]).to(dev),
                  "position_ids": plan.pos_all[None].to(dev), "attention_mask": mask.to(dev),
                  "logits_to_keep": n, "use_cache": False}
        with remote_errors(self.executor), torch.no_grad():
            with nn.trace(inputs, **self.executor.trace_kwargs()):
                lp = torch.log_softmax(nn.output.logits[0].float(), dim=-1)
                vals = nnsight.save(lp[rows.to(lp.device), toks.to(lp.device)])
        sums = np.zeros(plan.n_seq, dtype=np.float64)
        plan.add_to(sums, seqs, torch.as_tensor(vals).detach().double().cpu().numpy())
        return sums

    def _reads(self, names: Sequence[str]) -> list[tuple[Any, str, list[tuple[str, str]]]]:
        """(envoy, what to read, [(hook name, kind)]) in execution order; kind: plain | heads | result."""
        spec, nn = self.lm.spec, self.nn()
        by_key: dict[tuple[int, int], list[tuple[str, str]]] = {}
        for n in names:
            layer, rest = parse(n)
            if layer is None or rest not in SERVED:
                raise ValueError(f"nnsight backend supports {', '.join(SERVED)} hooks, not {n!r}")
            kind = {"attn.hook_z": "heads", "attn.hook_result": "result"}.get(rest, "plain")
            by_key.setdefault((layer, SERVED[rest]), []).append((n, kind))
        reads = []
        for (layer, stage), outs in sorted(by_key.items()):
            if stage == 0:
                reads.append((_envoy(nn, f"{spec.layout.layers}.{layer}"), "input0", outs))
            elif stage == 1:
                reads.append((_envoy(nn, spec.path("o_proj", layer)), "input", outs))
            elif stage == 2:
                reads.append((_envoy(nn, spec.mlp_out_path(layer)), "output", outs))
            else:
                reads.append((_envoy(nn, f"{spec.layout.layers}.{layer}"), "output", outs))
        return reads

    def activations(self, tokens: torch.Tensor, names: Sequence[str], last_only: bool = False,
                    hooks: Sequence[Hook] = ()) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Activations keep their position axis: all positions, or only the last (length 1) with
        `last_only` (what a remote run should ship back)."""
        import nnsight

        if hooks:
            raise ValueError("editing hooks are supported on the bridge backend only")
        lm, nn = self.lm, self.nn()
        reads = self._reads(names)
        heads, transposed = lm.spec.n_heads, lm.spec.o_proj_transposed
        # W_O for hook_result: the effective matrix (LoRA on o_proj of an adapter included), computed
        # here where the weights are here; a remote model (an HF id, no adapter) reads its own o_proj weight
        local_w = {} if self.executor.is_remote else {
            layer: lm.spec.out_weight(lm.model, layer).detach()
            for layer, site in map(parse, names) if layer is not None and site == "attn.hook_result"}
        inputs = {"input_ids": tokens.to(self.input_device)}
        with remote_errors(self.executor), torch.no_grad():
            with nn.trace(inputs, **self.executor.trace_kwargs()):
                out = nnsight.save({})
                for env, what, outs in reads:
                    t = env.inputs[0][0] if what == "input0" else (env.input if what == "input" else env.output)
                    t = t[0] if isinstance(t, tuple) else t
                    t = t[:, -1:] if last_only else t
                    for name, kind in outs:
                        if kind == "plain":
                            out[name] = t
                        else:
                            z = t.reshape(*t.shape[:-1], heads, -1)
                            if kind == "heads":
                                out[name] = z
                            else:
                                layer = parse(name)[0]
                                w = local_w[layer] if layer in local_w else (env.weight.T if transposed else env.weight)
                                out[name] = torch.einsum("...he,dhe->...hd", z, w.reshape(w.shape[0], heads, -1).to(z.dtype))
                out["logits"] = nn.output.logits[:, -1]
        res = {k: torch.as_tensor(v).detach() for k, v in out.items()}
        return res.pop("logits"), res


def _envoy(root: Any, path: str) -> Any:
    obj = root
    for part in path.split("."):
        obj = obj[int(part)] if part.isdigit() else getattr(obj, part)
    return obj


__all__ = ["NnsightEngine", "SERVED"]
