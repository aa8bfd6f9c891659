"""Engines: the one thing that runs a loaded model's forwards, chosen once, at load.

    lm = load_model("smollm2")                      # lm.engine: HFEngine (interp.models.hf_engine)
    lm = attach(load_model("tiny-llama"), Executor("simulate"))   # lm.engine: NnsightEngine (interp.models.remote)
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
subclass of `Engine` (`interp.models.loaded`); nothing in scoring, probes or evals changes.

Modules, one way: `loaded` (LoadedModel, the Engine ABC) <- `hf_engine`, `executor` <- `nnsight_engine`
<- this module (`engine_for`: another engine over the same weights, on request) and `remote` (attach,
hosted models) <- `loading` (`load_model`).
"""

from __future__ import annotations

from interp.errors import UserError
from interp.models.executor import Executor
from interp.models.hf_engine import HFEngine
from interp.models.loaded import Engine, LoadedModel
from interp.models.nnsight_engine import NnsightEngine


def engine_for(lm: LoadedModel, backend: str | None) -> Engine:
    """The engine that serves activations with `backend`: None -> `lm.engine`; "bridge" -> an
    HFEngine over the local weights; "nnsight" -> `lm.engine` if it is nnsight, else a local
    nnsight engine over the same model (both kept in `lm.engines`)."""
    if backend is None or backend == lm.engine.backend:
        return lm.engine
    if backend == "bridge":
        if not lm.engine.weights_here:
            raise UserError("the TransformerLens bridge needs the weights in this process; this model runs on a server")
        if "bridge" not in lm.engines:
            lm.engines["bridge"] = HFEngine(lm)
        return lm.engines["bridge"]
    if backend == "nnsight":
        if "nnsight" not in lm.engines:
            lm.engines["nnsight"] = NnsightEngine(lm, Executor("local"))
        return lm.engines["nnsight"]
    raise ValueError(f"unknown backend {backend!r}; choose from bridge, nnsight")


__all__ = ["engine_for"]
