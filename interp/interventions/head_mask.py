"""Zero chosen attention heads where it changes the computation: the input of o_proj.

    with HeadMask(lm, [(3, 0), (5, 7)]):        # (layer, head) pairs
        logits = lm.model(ids).logits           # heads L3H0 and L5H7 contribute nothing
        out = lm.model.generate(ids)            # ... also while generating
        loss.backward()                         # ... and while training (no gradient reaches them)

The input of o_proj (TransformerLens' `blocks.{l}.attn.hook_z`, flattened) is z of shape
(batch, pos, n_heads * head_dim); head h owns z[..., h * head_dim:(h + 1) * head_dim]. A forward
pre-hook multiplies z by a 0/1 vector, so head h's output z_h W_O,h vanishes while the other heads
and the o_proj bias stay. This works for every family in `ArchSpec` (Llama, Gemma, GPT-2's c_proj)
and for grouped-query attention, because z is always per *query* head. Multiplying the attention
weights the module returns (after the output is computed) changes nothing; this does.

The hooks are removed when the block exits, also on an exception.
"""

from __future__ import annotations

from typing import Any, Iterable

import torch
import torch.nn as nn

from interp.errors import UserError
from interp.models.arch import ArchSpec

Head = tuple[int, int]


def head_keep_vectors(spec: ArchSpec, heads: Iterable[Head]) -> dict[int, torch.Tensor]:
    """One 0/1 vector of shape (n_heads * head_dim,) per layer that has a masked head."""
    out: dict[int, torch.Tensor] = {}
    for layer, head in heads:
        if not 0 <= layer < spec.n_layers or not 0 <= head < spec.n_heads:
            raise UserError(f"head L{layer}H{head} does not exist: the model has {spec.n_layers} layers "
                            f"x {spec.n_heads} heads")
        vec = out.setdefault(int(layer), torch.ones(spec.n_heads * spec.head_dim))
        vec[head * spec.head_dim:(head + 1) * spec.head_dim] = 0.0
    return out


class HeadMask:
    """Context manager: zero the o_proj-input slices of `heads` in `model` (see module docstring).

    `target` is a `LoadedModel` (its `.model` and `.spec` are used) or a bare model with `spec`.
    """

    def __init__(self, target: Any, heads: Iterable[Head], spec: ArchSpec | None = None) -> None:
        self.model: nn.Module = getattr(target, "model", target)
        self.spec: ArchSpec = spec if spec is not None else target.spec
        self.heads = sorted({(int(l), int(h)) for l, h in heads})
        self.keep = head_keep_vectors(self.spec, self.heads)
        self._handles: list[Any] = []

    def __enter__(self) -> "HeadMask":
        for layer, keep in self.keep.items():
            o_proj = self.spec.module(self.model, "o_proj", layer=layer)
            self._handles.append(o_proj.register_forward_pre_hook(_zero_hook(keep)))
        return self

    def __exit__(self, *exc: Any) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()


def _zero_hook(keep: torch.Tensor) -> Any:
    def hook(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        z = args[0]  # (batch, pos, n_heads * head_dim)
        return (z * keep.to(device=z.device, dtype=z.dtype),) + tuple(args[1:])

    return hook
