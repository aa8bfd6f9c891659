"""nnsight traces, written once and run by any executor (local, simulated remote, NDIF, self-hosted).

    logits, acts = run(lm, tokens, [hook.resid_post(3), hook.z(3)], last_only=True)   # acts[n]: (batch, 1, ...)
    lp = logprobs(lm, batch, keep=1, columns=[owl, dog])                            # (batch, 1, 2)
    vals = tree_logprobs(lm, ids, positions, mask, rows, toks)                       # (n_pairs,)

The executor is `interp.models.executor.nnsight_executor(lm)` (None: plain local nnsight). Each
`with nn.trace(...)` block references only tensors, plain values, envoys, torch and nnsight, so the
block serialises for a server that has no `interp` installed (`Executor("simulate")` checks that
by hiding every non-installed module while it deserialises). Results computed inside the block
(last position, log-softmax, gathered columns) are all that travels back.

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

import torch

from interp.models.arch import base_model
from interp.models.executor import Executor, nnsight_executor, remote_errors

SERVED = {"hook_resid_pre": 0, "attn.hook_z": 1, "attn.hook_result": 1, "hook_mlp_out": 2, "hook_resid_post": 3}


def nnsight_model(lm: Any) -> Any:
    """nnsight's wrapper of the model (kept in `lm.extra['nnsight']`; a hosted model brings its own)."""
    if "nnsight" not in lm.extra:
        from nnsight.modeling.transformers import TransformersModel

        # nnsight sets padding_side on the tokenizer it is given: hand it a private copy (we pass ids)
        lm.extra["nnsight"] = TransformersModel(base_model(lm.model), tokenizer=copy.deepcopy(lm.tokenizer),
                                                task="text-generation")
    return lm.extra["nnsight"]


def _envoy(root: Any, path: str) -> Any:
    obj = root
    for part in path.split("."):
        obj = obj[int(part)] if part.isdigit() else getattr(obj, part)
    return obj


def _kwargs(executor: Executor | None) -> dict[str, Any]:
    return executor.trace_kwargs() if executor is not None else {}


def _input_device(lm: Any, executor: Executor | None) -> torch.device | str:
    return "cpu" if executor is not None and executor.is_remote else lm.device


def _reads(lm: Any, names: Sequence[str]) -> list[tuple[Any, str, list[tuple[str, str]]]]:
    """(envoy, what to read, [(hook name, kind)]) in execution order; kind: plain | heads | result."""
    spec, nn = lm.spec, nnsight_model(lm)
    by_key: dict[tuple[int, int], list[tuple[str, str]]] = {}
    for n in names:
        parts = n.split(".")
        rest = ".".join(parts[2:])
        if len(parts) < 3 or parts[0] != "blocks" or rest not in SERVED:
            raise ValueError(f"nnsight backend supports {', '.join(SERVED)} hooks, not {n!r}")
        layer = int(parts[1])
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


def run(lm: Any, tokens: torch.Tensor, names: Sequence[str], last_only: bool = False
        ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One unpadded batch (batch, pos) -> (last-position logits (batch, vocab), {name: activation}).

    Activations keep their position axis: all positions, or only the last (length 1) with
    `last_only` (what a remote run should ship back).
    """
    import nnsight

    executor = nnsight_executor(lm)
    nn = nnsight_model(lm)
    reads = _reads(lm, names)
    heads, transposed = lm.spec.n_heads, lm.spec.o_proj_transposed
    # W_O for hook_result: the effective matrix (LoRA on o_proj of an adapter included) computed here
    # where the weights are here; a remote model (an HF id, no adapter) reads its own o_proj weight
    local_w = {} if executor is not None and executor.is_remote else {
        int(n.split(".")[1]): lm.spec.out_weight(lm.model, int(n.split(".")[1])).detach()
        for n in names if n.endswith("attn.hook_result")}
    inputs = {"input_ids": tokens.to(_input_device(lm, executor))}
    with remote_errors(executor), torch.no_grad():
        with nn.trace(inputs, **_kwargs(executor)):
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
                            layer = int(name.split(".")[1])
                            w = local_w[layer] if layer in local_w else (env.weight.T if transposed else env.weight)
                            out[name] = torch.einsum("...he,dhe->...hd", z, w.reshape(w.shape[0], heads, -1).to(z.dtype))
            out["logits"] = nn.output.logits[:, -1]
    res = {k: torch.as_tensor(v).detach() for k, v in out.items()}
    return res.pop("logits"), res


def logprobs(lm: Any, batch: dict[str, torch.Tensor], keep: int, columns: Sequence[int] | None = None) -> torch.Tensor:
    """log-softmax of the last `keep` positions of a (padded) batch, optionally only some token
    columns: (batch, keep, vocab or len(columns)) float32 on the CPU. Computed inside the trace."""
    import nnsight

    executor = nnsight_executor(lm)
    nn = nnsight_model(lm)
    dev = _input_device(lm, executor)
    cols = torch.tensor(list(columns), dtype=torch.long) if columns is not None else None
    inputs: dict[str, Any] = {k: v.to(dev) for k, v in batch.items()}
    inputs.update(logits_to_keep=keep, use_cache=False)
    with remote_errors(executor), torch.no_grad():
        with nn.trace(inputs, **_kwargs(executor)):
            lp = torch.log_softmax(nn.output.logits[:, -keep:].float(), dim=-1)
            if cols is not None:
                lp = lp[..., cols.to(lp.device)]
            lp = nnsight.save(lp)
    return torch.as_tensor(lp).detach().float().cpu()


def tree_logprobs(lm: Any, ids: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor, n_keep: int,
                  rows: torch.Tensor, toks: torch.Tensor) -> torch.Tensor:
    """One forward of `ids` (1, N) with explicit `positions` (1, N) and an additive 4D `mask`
    (1, 1, N, N); log-softmax over the last `n_keep` positions, gathered at (rows, toks) inside
    the trace: (len(rows),) float64 on the CPU."""
    import nnsight

    executor = nnsight_executor(lm)
    nn = nnsight_model(lm)
    dev = _input_device(lm, executor)
    inputs = {"input_ids": ids.to(dev), "position_ids": positions.to(dev), "attention_mask": mask.to(dev),
              "logits_to_keep": n_keep, "use_cache": False}
    with remote_errors(executor), torch.no_grad():
        with nn.trace(inputs, **_kwargs(executor)):
            lp = torch.log_softmax(nn.output.logits[0].float(), dim=-1)
            vals = nnsight.save(lp[rows.to(lp.device), toks.to(lp.device)])
    return torch.as_tensor(vals).detach().double().cpu()


__all__ = ["nnsight_model", "run", "logprobs", "tree_logprobs", "SERVED"]
