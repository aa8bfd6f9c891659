"""Feed a causal LM's head only chosen positions: a forward pre-hook on the LM head (`ArchSpec.lm_head`)
that replaces its input hidden (batch, pos, d_model) by hidden[rows, cols] as (1, n, d_model), so the
forward's logits are (1, n, vocab): no head matmul or vocabulary-sized tensor for padding, prompt
positions or anything else not read. What the model does after its head (Gemma 2's soft-capping) still
applies. Used by the trie forest (every trie node, no padding) and two-model patching (each row's last
real position).

    with HeadPositions(lm) as head:
        head.select(rows, cols)                       # (n,), (n,) long
        logits = lm.engine.forward(**batch).logits[0]  # (n, vocab)
"""

from __future__ import annotations

from typing import Any

import torch

from interp.models.loaded import LoadedModel


class HeadPositions:
    """Context manager: while open, the LM head of `lm` sees only the positions last `select`ed."""

    def __init__(self, lm: LoadedModel) -> None:
        self.module = lm.spec.module(lm.model, "lm_head")
        self.rows = self.cols = torch.zeros(0, dtype=torch.long)
        self.handle: Any = None

    def select(self, rows: torch.Tensor, cols: torch.Tensor) -> None:
        self.rows, self.cols = rows.long(), cols.long()

    def __enter__(self) -> "HeadPositions":
        def fn(_mod: torch.nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
            h = args[0]
            return (h[self.rows.to(h.device), self.cols.to(h.device)][None], *args[1:])
        self.handle = self.module.register_forward_pre_hook(fn)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.handle is not None:
            self.handle.remove()
            self.handle = None


__all__ = ["HeadPositions"]
