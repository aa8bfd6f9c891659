"""Keyword and attribute names that differ between the transformers releases we support.

transformers 5.24 renamed a forward's `past_key_values` argument and output field to `cache`
(the old name still works there, with a deprecation warning, until 5.40). The name is read once
per model class from its forward's signature:

    out = model(ids, **cache_kwargs(model, past), use_cache=True)
    past = output_cache(out)
"""

from __future__ import annotations

import inspect
from functools import lru_cache
from typing import Any

import torch.nn as nn


@lru_cache(maxsize=None)
def _cache_name(cls: Any) -> str:
    params = inspect.signature(cls.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def cache_kwargs(model: nn.Module, cache: Any) -> dict[str, Any]:
    """{"cache": cache} on transformers >= 5.24, {"past_key_values": cache} before."""
    cls: Any = type(model)  # classes are hashable (typeshed's Module.__hash__ signature hides it)
    return {_cache_name(cls): cache}


def output_cache(output: Any) -> Any:
    """The KV cache a forward returned, under either field name."""
    fields = output.keys() if hasattr(output, "keys") else ()
    if "cache" in fields:
        return output["cache"]
    return output["past_key_values"] if "past_key_values" in fields else getattr(output, "past_key_values", None)


__all__ = ["cache_kwargs", "output_cache"]
