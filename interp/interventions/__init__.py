"""Interventions: head masks (`HeadMask`), entropy-based pruning (`pruning`), LM-head swaps (`head_swap`)."""

from interp.interventions.head_mask import HeadMask

__all__ = ["HeadMask"]
