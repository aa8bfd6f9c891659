"""The types every trainer shares, below the loop, the checkpoints and the saving: the recipe of a
fine-tuning run (`FinetuneConfig`) and what a finished run hands back (`FinetuneResult`)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn as nn

from interp.choices import FreezeMode, LossMask, TrainMethod, choices
from interp.errors import UserError

FREEZE_MODES = choices(FreezeMode)
METHODS = choices(TrainMethod)
LOSS_MASKS = choices(LossMask)


@dataclass(frozen=True)
class FinetuneConfig:
    method: str = "lora"  # lora | qlora (base already loaded in 4-bit) | full
    freeze: str = "none"  # none | mlp | attention
    steps: int | None = None  # exactly one of steps / epochs
    epochs: float | None = None
    batch_size: int = 8
    lr: float | None = None  # default: 2e-4 for LoRA, 2e-5 for full
    warmup_steps: int = 0
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    max_len: int = 128  # tokens per example (prompt + completion + EOS); longer completions are cut
    lora_r: int = 8
    lora_alpha: int = 16
    seed: int = 0
    loss_mask: str = "all"  # all | divergent | non-divergent (examples.py: rows marked by mark-divergence)

    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else (2e-5 if self.method == "full" else 2e-4)

    def total_steps(self, n_examples: int) -> int:
        if (self.steps is None) == (self.epochs is None):
            raise UserError("give exactly one of --steps and --epochs")
        if self.steps is not None:
            if self.steps < 1:
                raise UserError("--steps must be >= 1")
            return self.steps
        assert self.epochs is not None
        if self.epochs <= 0:
            raise UserError("--epochs must be > 0")
        return max(1, math.ceil(self.epochs * n_examples / self.batch_size))

    def validate(self) -> None:
        if self.method not in METHODS:
            raise UserError(f"unknown method {self.method!r}; choose from {', '.join(METHODS)}")
        if self.freeze not in FREEZE_MODES:
            raise UserError(f"--freeze must be one of {', '.join(FREEZE_MODES)}")
        if self.batch_size < 1 or self.max_len < 4:
            raise UserError("--batch-size must be >= 1 and --max-len >= 4")
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr > 0):
            raise UserError(f"--lr must be a positive number, got {self.lr}")
        if self.warmup_steps < 0:
            raise UserError(f"--warmup must be >= 0, got {self.warmup_steps}")
        if self.lora_r < 1 or self.lora_alpha <= 0:
            raise UserError(f"--lora-r must be >= 1, got {self.lora_r}")
        if self.loss_mask not in LOSS_MASKS:
            raise UserError(f"--loss-mask must be one of {', '.join(LOSS_MASKS)}")
        if not (self.weight_decay >= 0 and self.grad_clip > 0):
            raise UserError("weight decay must be >= 0 and the gradient clip > 0")


@dataclass
class FinetuneResult:
    model: nn.Module  # PeftModel for LoRA, else the plain model (trained in place)
    config: FinetuneConfig
    losses: list[float]
    steps: int
    n_examples: int
    trainable_params: int
    frozen_params: list[str]
    elapsed_s: float
    resumed_from: int | None = None
    checkpoints: list[str] = field(default_factory=list)
    components: dict[str, list[float]] = field(default_factory=dict)  # per-step history of each loss term
    world_size: int = 1  # data-parallel processes that trained it
    full_state: dict[str, torch.Tensor] | None = field(default=None, repr=False)  # FSDP: gathered weights to save

    def summary(self) -> dict[str, Any]:
        return {"config": asdict(self.config), "steps": self.steps, "n_examples": self.n_examples,
                "trainable_params": self.trainable_params, "n_frozen_tensors": len(self.frozen_params),
                **curve_figures(self.losses, "loss"),
                "components": {k: curve_figures(v, "loss") for k, v in self.components.items()},
                "elapsed_s": round(self.elapsed_s, 2), "resumed_from": self.resumed_from,
                "world_size": self.world_size}


def curve_figures(values: Sequence[float], name: str) -> dict[str, float | None]:
    """first / last value of a loss curve and the mean of its last 10 (None for an empty curve)."""
    return {f"first_{name}": values[0] if values else None, f"last_{name}": values[-1] if values else None,
            f"mean_{name}_last_10": float(np.mean(values[-10:])) if values else None}
