"""What a finished training run leaves: merged weights in the store (+ the adapter) and its loss curve.

    save_finetuned("smollm2-student", lm, res, meta={...})   # merged weights + adapter/
    png = loss_curve_png(res.losses, "smollm2-student")
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch.nn as nn

from interp.models.loaded import LoadedModel
from interp.plots import figure_png

if TYPE_CHECKING:
    from interp.training.config import FinetuneResult


def merged_model(result: FinetuneResult) -> nn.Module:
    """Plain HF model with the LoRA update merged (a copy; the PEFT model is kept), or the model."""
    if result.config.method == "full":
        return result.model
    return copy.deepcopy(result.model).merge_and_unload()


def merged_into(result: FinetuneResult, base: nn.Module) -> nn.Module:
    """The LoRA update of `result` (trained over 4-bit weights: QLoRA) merged into `base`, the same
    model in full precision: a plain model whose weights can be saved and reloaded without bitsandbytes."""
    from peft import get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict

    from interp.models.peft_compat import peft_wrapping

    with peft_wrapping():
        fp = get_peft_model(base, result.model.peft_config["default"])
    set_peft_model_state_dict(fp, get_peft_model_state_dict(result.model))
    return fp.merge_and_unload()


def save_finetuned(alias: str, lm: LoadedModel, result: FinetuneResult, meta: dict[str, Any], overwrite: bool = False,
                   merged: nn.Module | None = None) -> Path:
    """Save to the store: merged weights (+ `adapter/` for LoRA) and a record of the training."""
    from interp.models.store import save_model

    model = merged if merged is not None else merged_model(result)
    adapter = result.model if result.config.method in ("lora", "qlora") else None
    info = {"kind": "made", "source": f"finetune of {lm.name}", "base": lm.name, "system_prompt": None,
            "training": result.summary(), **meta}
    return save_model(alias, model, lm.tokenizer, info, overwrite=overwrite, adapter=adapter,
                      state_dict=result.full_state)


def loss_curve_png(losses: Sequence[float], title: str = "training loss",
                   ylabel: str = "completion loss (nats/token)") -> bytes:
    """PNG of the per-step loss and its 10-step running mean."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    x = np.arange(1, len(losses) + 1)
    ax.plot(x, losses, lw=0.8, alpha=0.5, label="loss")
    if len(losses) >= 10:
        run = np.convolve(losses, np.ones(10) / 10, mode="valid")
        ax.plot(x[9:], run, lw=1.6, label="10-step mean")
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    return figure_png(fig)
