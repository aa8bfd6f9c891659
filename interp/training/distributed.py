"""Data-parallel training through Hugging Face accelerate; one code path for 1 and N processes.

    dist = Distributed.create("cpu")         # an Accelerator under `accelerate launch`, else plain torch
    model, opt = dist.prepare(model, opt)    # DDP / FSDP wrapping as the accelerate config says
    local = dist.shard(global_batch)         # this rank's examples of the step's global batch
    n_all, = dist.sums([n_local])            # e.g. completion tokens over all ranks (one all-reduce)
    dist.backward(local_mean * dist.weight(n_local, n_all))

Global batch B (the `--batch-size` of the command) is split across W ranks: rank r takes positions
r, r + W, ... of the step's batch (B must be divisible by W). A loss that is a mean over units
(completion tokens, attention rows, ...) is made rank-exact by weighting: rank r computes its local
mean m_r over n_r units and back-propagates m_r * n_r * W / N with N = sum_r n_r; DDP averages the
gradients over the W ranks, so the update is that of the global mean sum_r m_r n_r / N, the same as
one process with the whole batch (up to floating-point summation order). The training loop counts
completion tokens as the units: exact for the LM and logit-KD terms; the SHD term (a mean over
attention rows and layers) is then a token-weighted mean of per-rank means, equal to the global one
only when the ranks' row and token shares agree.

Only the main process writes checkpoints, logs and store entries (`is_main`); `barrier()` keeps the
others from reading a checkpoint before it exists. The LR scheduler is stepped by hand once per
optimizer step on every rank (not passed to accelerate, which would step it W times).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from interp.errors import UserError
from interp.runtime import launched_distributed

if TYPE_CHECKING:  # torch is imported where used
    import torch

LAUNCHER_ENV = ("WORLD_SIZE", "ACCELERATE_MIXED_PRECISION", "ACCELERATE_USE_FSDP")


@dataclass
class Distributed:
    accelerator: Any | None = None  # accelerate.Accelerator, or None for a plain single process

    @classmethod
    def create(cls, device: str = "cpu") -> "Distributed":
        if not launched_distributed():
            return cls(None)
        from accelerate import Accelerator

        return cls(Accelerator(cpu=(device == "cpu")))

    @property
    def world(self) -> int:
        return self.accelerator.num_processes if self.accelerator is not None else 1

    @property
    def rank(self) -> int:
        return self.accelerator.process_index if self.accelerator is not None else 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_fsdp(self) -> bool:
        return self.accelerator is not None and str(self.accelerator.distributed_type).endswith("FSDP")

    @property
    def device(self) -> torch.device | None:
        return self.accelerator.device if self.accelerator is not None else None

    def prepare(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> tuple[Any, Any]:
        if self.accelerator is None:
            return model, optimizer
        return self.accelerator.prepare(model, optimizer)

    def shard(self, global_batch: Sequence[int]) -> list[int]:
        """This rank's part of a step's global batch: positions rank, rank + W, ..."""
        if len(global_batch) % self.world:
            raise UserError(f"--batch-size {len(global_batch)} is not divisible by the {self.world} processes")
        return list(global_batch[self.rank::self.world])

    def sums(self, values: Sequence[float]) -> list[float]:
        """Each per-rank number summed over all ranks, in one all-reduce."""
        if self.accelerator is None:
            return [float(v) for v in values]
        import torch

        t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=self.accelerator.device)
        return [float(v) for v in self.accelerator.reduce(t, reduction="sum")]

    def weight(self, n_local: float, n_all: float) -> float:
        """Factor n_r * W / N that makes DDP's gradient average equal the global mean's gradient."""
        return n_local * self.world / n_all if n_all else 0.0

    def backward(self, loss: torch.Tensor) -> None:
        if self.accelerator is None:
            loss.backward()
        else:
            self.accelerator.backward(loss)

    def clip_grad_norm_(self, params: Sequence[torch.nn.Parameter], max_norm: float) -> None:
        if self.accelerator is None:
            import torch

            torch.nn.utils.clip_grad_norm_(params, max_norm)
        else:
            self.accelerator.clip_grad_norm_(params, max_norm)

    def unwrap(self, model: torch.nn.Module) -> torch.nn.Module:
        return self.accelerator.unwrap_model(model) if self.accelerator is not None else model

    def full_state_dict(self, model: Any) -> dict[str, Any]:
        """The whole model's weights gathered from the shards (FSDP; a collective call on every rank)."""
        return self.accelerator.get_state_dict(model) if self.accelerator is not None else model.state_dict()

    def barrier(self) -> None:
        if self.accelerator is not None:
            self.accelerator.wait_for_everyone()
