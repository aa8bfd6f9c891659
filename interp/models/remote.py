"""Models whose forwards run through nnsight: `attach` an executor to a loaded model, or load a hosted
one (`load_remote`: meta weights here, real ones on NDIF or a self-hosted server). Above the nnsight
engine and the executors (`interp.models.executor` has the table of executors and the checks)."""

from __future__ import annotations

import json
import os
from typing import Any

from interp.errors import UserError
from interp.models.arch import arch_spec
from interp.models.executor import Executor, check_hosted, check_reachable, hub_error, require_keys
from interp.models.loaded import DTYPES, LoadedModel
from interp.models.nnsight_engine import NnsightEngine


def attach(lm: LoadedModel, executor: Executor) -> LoadedModel:
    """Run `lm`'s forwards through nnsight with `executor` from now on (returns `lm`)."""
    lm.engine = NnsightEngine(lm, executor)
    return lm


def load_remote(name: str, executor: Executor) -> LoadedModel:
    """A `LoadedModel` for hosted model `name` (an HF id): meta weights here, real ones on the server.

    The meta model takes the checkpoint's declared dtype (what a server loading with dtype="auto"
    runs: bf16 for Llama 3); tensors built here to go into the forward (the one-forward trie's mask)
    use it. --dtype does not apply: the server chose its dtype.

    Order of checks (each a one-line UserError): the API key, an HF id, a TCP connection to the
    server, the config and tokenizer from the hub (`HF_TOKEN` for gated repos), the server's list of
    running models (NDIF).
    """
    require_keys(executor)
    if "/" not in name or name.startswith((".", "/")) or os.path.isdir(os.path.expanduser(name)):
        raise UserError(f"--remote / --serve run hosted models by Hugging Face id (org/name); '{name}' is not one")
    check_reachable(executor)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from nnsight.modeling.transformers import TransformersModel

    try:
        nn = TransformersModel(name, task="text-generation")
    except Exception as e:  # hub errors subclass OSError / requests / httpx errors
        raise UserError(hub_error(name, e)) from e
    repo_id = _canonical_id(nn, name)
    if executor.kind == "ndif":
        check_hosted(repo_id, executor)
    return hosted_model(nn, name, executor, f"remote:{repo_id}@{nn.revision or 'main'}")


def hosted_model(nn: Any, name: str, executor: Executor, key: str) -> LoadedModel:
    """A `LoadedModel` over nnsight wrapper `nn` whose weights are on the server (meta tensors here)."""
    model = nn._module
    dtype = next(model.parameters()).dtype
    dtype_name = {v: k for k, v in DTYPES.items()}.get(dtype, str(dtype).removeprefix("torch."))
    lm = LoadedModel(model, nn.tokenizer, arch_spec(model.config), name, f"{executor.kind}:{executor.host}",
                     sha256=f"{key} (weights on the server, not hashed here)")
    lm.extra["placement"] = {"dtype": dtype_name, "device": "remote", "device_map": None, "load_in_4bit": False}
    lm.engine = NnsightEngine(lm, executor, wrapper=nn)
    if lm.tokenizer.pad_token is None:
        lm.tokenizer.pad_token = lm.tokenizer.eos_token
    return lm


def _canonical_id(nn: Any, name: str) -> str:
    """The repo id as the server keys it (nnsight canonicalises spelling through the hub)."""
    try:
        return json.loads(nn.to_model_key().split(":", 1)[1])["repo_id"]
    except Exception as e:
        raise UserError(hub_error(name, e)) from e


__all__ = ["attach", "hosted_model", "load_remote"]
