"""TransformerLens hook names, the vocabulary every engine serves activations under.

| name                          | shape at all positions        |
|-------------------------------|-------------------------------|
| `blocks.{l}.hook_resid_pre`   | (batch, pos, d_model)         |
| `blocks.{l}.hook_resid_mid`   | (batch, pos, d_model)         |
| `blocks.{l}.hook_resid_post`  | (batch, pos, d_model)         |
| `blocks.{l}.attn.hook_z`      | (batch, pos, head, d_head)    |
| `blocks.{l}.attn.hook_result` | (batch, pos, head, d_model)   |
| `blocks.{l}.hook_mlp_out`     | (batch, pos, d_model)         |
| `blocks.{l}.attn.hook_pattern`| (batch, head, query, key)     |
| `ln_final.hook_out`           | (batch, pos, d_model)         |
"""

from __future__ import annotations


class hook:
    """TransformerLens hook names."""

    @staticmethod
    def resid_pre(layer: int) -> str:
        return f"blocks.{layer}.hook_resid_pre"

    @staticmethod
    def resid_mid(layer: int) -> str:
        return f"blocks.{layer}.hook_resid_mid"

    @staticmethod
    def resid_post(layer: int) -> str:
        return f"blocks.{layer}.hook_resid_post"

    @staticmethod
    def z(layer: int) -> str:
        return f"blocks.{layer}.attn.hook_z"

    @staticmethod
    def result(layer: int) -> str:
        return f"blocks.{layer}.attn.hook_result"

    @staticmethod
    def mlp_out(layer: int) -> str:
        return f"blocks.{layer}.hook_mlp_out"

    @staticmethod
    def pattern(layer: int) -> str:
        return f"blocks.{layer}.attn.hook_pattern"

    final_norm_out = "ln_final.hook_out"


def parse(name: str) -> tuple[int | None, str]:
    """(layer, site) of a hook name: "blocks.3.attn.hook_z" -> (3, "attn.hook_z"); a name outside the
    blocks -> (None, name), e.g. (None, "ln_final.hook_out"). ValueError for a malformed block name."""
    parts = name.split(".")
    if parts[0] != "blocks":
        return None, name
    if len(parts) < 3 or not parts[1].isdigit():
        raise ValueError(f"not a TransformerLens hook name: {name!r}")
    return int(parts[1]), ".".join(parts[2:])


def last_position(name: str, t: "object") -> "object":
    """The last (query) position of a cached hook: pattern (b, head, q, k) -> (b, head, k); else (b, pos, ...) -> (b, ...)."""
    return t[:, :, -1] if name.endswith("hook_pattern") else t[:, -1]  # type: ignore[index]


__all__ = ["hook", "last_position", "parse"]
