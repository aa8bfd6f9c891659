"""Two models of one lineage: the same config (ignoring names, dtype and version fields) and the same
tokenizer (vocabulary and special tokens). What the LM-head swap and two-model patching require.

    check_lineage(a, b)      # UserError naming the first difference, else None
"""

from __future__ import annotations

from typing import Any

import torch.nn as nn

from interp.errors import UserError
from interp.models.loaded import LoadedModel

_IGNORED_CONFIG_KEYS = {"_name_or_path", "name_or_path", "transformers_version", "torch_dtype", "dtype",
                        "_attn_implementation", "_attn_implementation_internal", "attn_implementation",
                        "_commit_hash", "quantization_config", "architectures"}


def _config_dict(model: nn.Module) -> dict[str, Any]:
    cfg = getattr(model, "config").to_dict()
    return {k: v for k, v in cfg.items() if k not in _IGNORED_CONFIG_KEYS}


def _special_tokens(tok: Any) -> tuple[Any, ...]:
    return (sorted(tok.all_special_tokens), tok.bos_token, tok.eos_token, tok.pad_token)


def check_lineage(a: LoadedModel, b: LoadedModel) -> None:
    """UserError (one line, first difference named) unless `a` and `b` share config and tokenizer."""
    ca, cb = _config_dict(a.model), _config_dict(b.model)
    diff = sorted(k for k in set(ca) | set(cb) if ca.get(k) != cb.get(k))
    if diff:
        k = diff[0]
        raise UserError(f"{a.name} and {b.name} are not of the same lineage: their configs differ "
                        f"({len(diff)} fields, e.g. {k}: {ca.get(k)!r} vs {cb.get(k)!r})")
    va, vb = a.tokenizer.get_vocab(), b.tokenizer.get_vocab()
    if va != vb:
        only = sorted(set(va) ^ set(vb))
        what = f"e.g. {only[0]!r} is in one vocabulary only" if only else "the same tokens map to different ids"
        raise UserError(f"{a.name} and {b.name} are not of the same lineage: their tokenizers differ ({what})")
    if _special_tokens(a.tokenizer) != _special_tokens(b.tokenizer):
        raise UserError(f"{a.name} and {b.name} are not of the same lineage: their tokenizers' special tokens differ")


__all__ = ["check_lineage"]
