"""Batched forwards that back off on out-of-memory instead of crashing.

    def one(batch: list[int]) -> None: ...          # runs one batch, writes its own results
    size = run_with_backoff(order, 16, one, plan)    # plan(items, size) -> batches of <= size items

On an out-of-memory error (`torch.OutOfMemoryError` on CUDA, a CPU allocator failure, MPS) the
failed batch and everything after it are re-planned with half the failed batch's size, and the
loop goes on from there; a single item that does not fit becomes a one-line `UserError` with
advice. `run` must be safe to repeat for a batch (write results by index, advance progress last).
"""

from __future__ import annotations

import gc
import warnings
from typing import Callable, Sequence, TypeVar

import torch

from interp.errors import UserError

T = TypeVar("T")

OOM_MARKERS = ("out of memory", "not enough memory", "defaultcpuallocator", "can't allocate memory",
               "failed to allocate")
ADVICE = ("try --dtype bf16, --device-map auto (several GPUs), --load-in-4bit, shorter inputs, "
          "or a smaller model")


def is_oom(err: BaseException) -> bool:
    """Whether `err` is an allocator failure (CUDA, CPU, MPS), not an ordinary bug."""
    oom_type = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    if oom_type is not None and isinstance(err, oom_type):
        return True
    if isinstance(err, (RuntimeError, MemoryError)):
        msg = str(err).lower()
        return isinstance(err, MemoryError) or any(m in msg for m in OOM_MARKERS)
    return False


def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def chunks(items: Sequence[T], size: int) -> list[list[T]]:
    """Consecutive batches of at most `size` items (the plain planner)."""
    return [list(items[k:k + size]) for k in range(0, len(items), size)]


def run_with_backoff(items: Sequence[T], size: int, run: Callable[[list[T]], None],
                     plan: Callable[[list[T], int], list[list[T]]] = chunks, what: str = "forward") -> int:
    """Run `run` on every batch of `plan(items, size)`; on out-of-memory halve the failed batch and
    re-plan the rest (module docstring). Returns the batch size it ended with."""
    if size < 1:
        raise UserError(f"the batch size must be at least 1, got {size}")
    batches, k = plan(list(items), size), 0
    while k < len(batches):
        batch = batches[k]
        try:
            run(batch)
        except Exception as e:  # noqa: BLE001 - only allocator failures are handled
            if not is_oom(e):
                raise
            free_memory()
            if len(batch) <= 1:
                raise UserError(f"out of memory on a single item ({what}), even after backing off; {ADVICE}") from None
            size = max(1, len(batch) // 2)
            warnings.warn(f"{what}: out of memory at a batch of {len(batch)}; retrying with batches of {size}",
                          RuntimeWarning, stacklevel=2)
            rest = [x for b in batches[k:] for x in b]
            batches, k = plan(rest, size), 0
            continue
        k += 1
    return size


__all__ = ["run_with_backoff", "is_oom", "chunks", "free_memory"]
