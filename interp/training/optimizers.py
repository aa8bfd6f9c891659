"""The optimizers of a training run (`FinetuneConfig.optimizer`; issue 36 claim 4, the reference's optimizer
ablation, agu18dec/steering-vector-distillation `optimizer_ablation/`):

    adamw     torch.optim.AdamW(lr, weight_decay)                       (every run before: the default)
    sgd       torch.optim.SGD(lr, momentum 0.9, weight_decay)           (the reference's sgd_momentum)
    signsgd   p <- p - lr sign(g)                                       (`SignSGD`: uniform step per coordinate)

Each needs its own learning rate (a sweep): the default --lr suits AdamW only.
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch

from interp.training.config import FinetuneConfig

SGD_MOMENTUM = 0.9


class SignSGD(torch.optim.Optimizer):
    """p <- p - lr sign(grad) (coordinates with grad 0 stay); no state, so nothing to checkpoint but lr."""

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float):
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad.sign(), alpha=-group["lr"])
        return loss


def make_optimizer(params: list[torch.nn.Parameter], config: FinetuneConfig) -> torch.optim.Optimizer:
    lr = config.learning_rate()
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=SGD_MOMENTUM, weight_decay=config.weight_decay)
    if config.optimizer == "signsgd":
        return SignSGD(params, lr=lr)
    return torch.optim.AdamW(params, lr=lr, weight_decay=config.weight_decay)
