"""Process-level facts, below every other module: which rank this process is, how many there are.

Read from the launcher's environment (`accelerate launch` / torchrun set RANK and WORLD_SIZE), so
the CLI, run folders and the store can ask cheaply, without importing torch or training code.
"""

from __future__ import annotations

import os


def is_main_process() -> bool:
    """Rank 0 (or no launcher): the process that prints results and writes files."""
    return int(os.environ.get("RANK", "0")) == 0


def launched_distributed() -> bool:
    """True under `accelerate launch` / torchrun with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


__all__ = ["is_main_process", "launched_distributed"]
