"""A second module tree over the same weights, for libraries that rebuild a model in place.

    view = shared_copy(lm.model)      # new modules, config and hooks; the SAME parameter and buffer tensors

TransformerLens' `TransformerBridge.boot_transformers(hf_model=m)` replaces m's submodules with its
own bridge components (and switches m to eager attention), so every later plain forward of `m`
would run through TransformerLens' attention, which builds its own mask and ignores a custom 4D
one. Booting on `shared_copy(m)` keeps `m` as loaded at no extra weight memory: the copy's
`nn.Parameter`s and buffers are the original objects (an in-place weight update shows in both).
"""

from __future__ import annotations

import contextlib
import copy
from typing import Any, Iterator

import torch.nn as nn


def shared_copy(module: nn.Module) -> nn.Module:
    """`copy.deepcopy(module)` except that every parameter and buffer is shared, not copied."""
    memo: dict[int, object] = {}
    for t in list(module.parameters(recurse=True)) + list(module.buffers(recurse=True)):
        memo[id(t)] = t
    return copy.deepcopy(module, memo)


def _hf(model: nn.Module) -> Any:
    """The transformers model under a PEFT wrapper (it holds the config and set_attn_implementation)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def eager_copy(model: nn.Module) -> nn.Module:
    """`shared_copy(model)` switched to eager attention (the only implementation that returns
    attention weights); `model` keeps its own implementation and gains no output-capture hooks."""
    view = shared_copy(model)
    _hf(view).set_attn_implementation("eager")
    return view


@contextlib.contextmanager
def eager_attention(*models: nn.Module) -> Iterator[None]:
    """Switch `models` to eager attention inside the block and back to what each had, also on an
    exception (for training, where the step must run on the model being optimised)."""
    bases = [_hf(m) for m in models]
    before = [b.config._attn_implementation for b in bases]
    for b, impl in zip(bases, before):
        if impl != "eager":
            b.set_attn_implementation("eager")
    try:
        yield
    finally:
        for b, impl in zip(bases, before):
            if impl != "eager":
                b.set_attn_implementation(impl)


__all__ = ["shared_copy", "eager_copy", "eager_attention"]
