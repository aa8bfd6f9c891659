"""`interp ARGS` with a count of the token positions its models run forward (for experiments/bench/scaling.py).

    python experiments/bench/counted.py TOKENS_FILE reverse-link --model MODEL ...

Counts, over every forward of every model the command loads, the ids entering a vocabulary embedding
(an `nn.Embedding` with at least 1,000 rows: the token embedding, never a position embedding): prompt
tokens x prompts for a scoring pass (padding included, since it is computed), one token per sequence per
step of cached generation, teacher and student both for distillation. Backward passes are not counted.
Writes the count to TOKENS_FILE when the command exits (also on an error exit).
"""

from __future__ import annotations

import atexit
import sys
from pathlib import Path

import torch

from interp.cli import main

VOCAB_ROWS = 1000
count = 0


def _hook(module: torch.nn.Module, args: tuple, output: torch.Tensor) -> None:
    global count
    if isinstance(module, torch.nn.Embedding) and module.num_embeddings >= VOCAB_ROWS and args:
        count += int(args[0].numel())


if __name__ == "__main__":
    target = Path(sys.argv[1])
    torch.nn.modules.module.register_module_forward_hook(_hook)
    atexit.register(lambda: target.write_text(f"{count}\n"))
    main(sys.argv[2:])
