"""Wrapping a model in PEFT without transformers' deprecation notice from inside peft.

    with peft_wrapping():
        model = get_peft_model(lm.model, LoraConfig(...))      # or PeftModel.from_pretrained(...)

`PeftModel.__init__` (peft 0.21.2, the newest release on the index) reads
`getattr(model, "is_gradient_checkpointing", True)` to decide whether to hook the input embeddings
for gradient checkpointing. transformers 5.x renamed that property `is_activation_checkpointing` and
made the old name an alias that emits a FutureWarning on every read, so every LoRA finetune, teach,
distill and adapter load printed it, although nothing in interp reads the deprecated name (interp
never enables checkpointing; the property returns False and peft does nothing with it). The call is
peft's, and no PEFT entry point avoids it (`get_peft_model`, `PeftModel(...)` and
`PeftModel.from_pretrained` all run that `__init__`), so the only warning silenced is that one
message from transformers.modeling_utils, and only while the wrapper is built: every other warning,
including our own use of a deprecated API, still shows. `tests/test_distill.py` fails once peft
stops reading the old name, so this shim is removed then.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Iterator

PEFT_READS_DEPRECATED = r"`is_gradient_checkpointing` is deprecated"


@contextlib.contextmanager
def peft_wrapping() -> Iterator[None]:
    """Silence only peft's own read of transformers' deprecated `is_gradient_checkpointing` while a
    PEFT wrapper is built (module docstring)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=PEFT_READS_DEPRECATED, category=FutureWarning,
                                module=r"transformers\.modeling_utils")
        yield


__all__ = ["PEFT_READS_DEPRECATED", "peft_wrapping"]
