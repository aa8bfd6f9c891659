"""The types every trainer shares, below the loop, the checkpoints and the saving: the recipe of a
fine-tuning run (`FinetuneConfig`) and what a finished run hands back (`FinetuneResult`). Imports no
torch at run time."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Sequence


import numpy as np

from interp.choices import FreezeMode, LossMask, OptimizerName, TrainMethod, choices
from interp.errors import UserError
from interp.fields import option

if TYPE_CHECKING:  # torch only for the types of a result: the CLI reads the config's options without it
    import torch
    import torch.nn as nn

FREEZE_MODES = choices(FreezeMode)
METHODS = choices(TrainMethod)
LOSS_MASKS = choices(LossMask)
OPTIMIZERS = choices(OptimizerName)


@dataclass(frozen=True)
class FinetuneConfig:
    """The recipe of a fine-tuning run. A field declared with `option` is a command-line option of every
    training command (`interp.cli.training_opts` generates them from here)."""

    method: str = "lora"  # lora | qlora (base already loaded in 4-bit) | full; the CLI's --full/--lora
    freeze: FreezeMode = option("none", "--freeze", "component that receives no update: none | mlp | attention")
    steps: int | None = option(None, "--steps", "optimizer steps (or --epochs)", ge=1)  # exactly one of steps / epochs
    epochs: float | None = option(None, "--epochs", "passes over the data (or --steps)", gt=0)
    batch_size: int = option(8, "--batch-size", "examples per step", ge=1)
    lr: float | None = option(None, "--lr", "learning rate (default 2e-4 LoRA, 2e-5 full)", gt=0)
    warmup_steps: int = option(0, "--warmup", "linear warm-up steps (then linear decay to 0)", ge=0)
    optimizer: OptimizerName = option("adamw", "--optimizer", "adamw | sgd (momentum 0.9) | signsgd (p -= lr sign(g)): "
                                      "the reference's optimizer ablation; give each its own --lr")
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    # tokens per example (prompt + completion + EOS); longer completions are cut
    max_len: int = option(128, "--max-len", "tokens per example", ge=4)
    lora_r: int = option(8, "--lora-r", "LoRA rank (alpha = 2r)", ge=1)
    lora_alpha: int = 16
    seed: int = 0
    # examples.py: rows marked by `interp mark-divergence`
    loss_mask: LossMask = option("all", "--loss-mask", "all | divergent | non-divergent: completion tokens in the "
                                 "loss (rows marked by `interp mark-divergence`; rows left with none are dropped)")

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
        if self.optimizer not in OPTIMIZERS:
            raise UserError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}")
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
