"""Checkpoints of a training run that resume it bit-exactly on CPU.

    save_checkpoint(ckdir, step, model, opt, sched, hist, config, meta)   # ckdir/step-000025/
    step, hist, used = resume_from(ckdir, model, opt, sched, config, meta) # newest readable one

A checkpoint holds the trainable tensors (trainable.safetensors), the AdamW and LR-scheduler states
and torch's RNG state (optimizer.pt, weights_only), and the loss histories, config and run settings
(state.json); it is written to a temporary folder and renamed. A damaged newer checkpoint is
skipped with a warning (`resume_from`); settings that differ from the run's are refused.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn as nn

from interp.errors import UserError

if TYPE_CHECKING:
    from interp.training.config import FinetuneConfig


@dataclass(frozen=True)
class Checkpointer:
    """A run's checkpoint saver, handed to the training loop as a callback (`train_loop(...,
    checkpoints=...)`): `save` every `every` steps into `folder`, `resume` from the newest readable one.
    `meta`: extra settings a resume must match (e.g. the distillation's beta and teacher)."""

    folder: Path
    config: FinetuneConfig
    every: int = 0
    meta: dict[str, Any] | None = None

    def due(self, step: int) -> bool:
        """True after optimizer step `step` (1-based) when a checkpoint is due."""
        return bool(self.every) and step % self.every == 0

    def save(self, step: int, model: nn.Module, opt: torch.optim.Optimizer, sched: Any, hist: Histories) -> Path:
        return save_checkpoint(self.folder, step, model, opt, sched, hist, self.config, self.meta)

    def resume(self, model: nn.Module, opt: torch.optim.Optimizer, sched: Any) -> tuple[int, Histories]:
        start, hist, _ = resume_from(self.folder, model, opt, sched, self.config, self.meta)
        return start, hist


@dataclass
class Histories:
    """Per-step total loss and one list per named component (all the same length)."""

    losses: list[float]
    components: dict[str, list[float]]

    def append(self, total: float, parts: dict[str, float]) -> None:
        if self.components and set(parts) != set(self.components):
            raise ValueError(f"loss components changed from {sorted(self.components)} to {sorted(parts)}")
        self.losses.append(total)
        for k, v in parts.items():
            self.components.setdefault(k, []).append(float(v))


_RESUME_KEYS = ("method", "freeze", "batch_size", "lr", "warmup_steps", "weight_decay", "grad_clip", "max_len",
                "lora_r", "lora_alpha", "seed", "steps", "epochs", "loss_mask", "optimizer")


def _trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone().contiguous() for n, p in model.named_parameters() if p.requires_grad}


def save_checkpoint(ckdir: Path, step: int, model: nn.Module, opt: torch.optim.Optimizer,
                    sched: Any, hist: Histories, config: FinetuneConfig, meta: dict[str, Any] | None = None) -> Path:
    """`ckdir/step-{step:06d}/`: trainable.safetensors, optimizer.pt, state.json (atomic by rename)."""
    from safetensors.torch import save_file

    final = ckdir / f"step-{step:06d}"
    tmp = ckdir / f".tmp-step-{step:06d}"
    tmp.mkdir(parents=True, exist_ok=True)
    save_file(_trainable_state(model), str(tmp / "trainable.safetensors"))
    torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "torch_rng": torch.get_rng_state()},
               tmp / "optimizer.pt")
    (tmp / "state.json").write_text(json.dumps({"step": step, "losses": hist.losses, "components": hist.components,
                                                "config": asdict(config), "meta": meta or {},
                                                "data_order": "default_rng([seed, epoch]).permutation(n)"}, indent=1))
    if final.exists():
        import shutil

        shutil.rmtree(final)
    tmp.rename(final)
    return final


def latest_checkpoint(ckdir: Path) -> Path | None:
    found = checkpoints_newest_first(ckdir)
    return found[0] if found else None


def checkpoints_newest_first(ckdir: Path) -> list[Path]:
    """The finished checkpoints (`step-*` with a state.json) in `ckdir`, newest first."""
    return sorted((p for p in ckdir.glob("step-*") if (p / "state.json").is_file()), reverse=True) if ckdir.is_dir() else []


class UnreadableCheckpoint(Exception):
    """A checkpoint whose files cannot be read back (truncated, corrupted)."""


def read_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor], dict[str, Any]]:
    """(state.json, trainable tensors, optimizer/scheduler/rng state) of a checkpoint, all read before
    anything is applied; UnreadableCheckpoint (with the reason) if any file is damaged."""
    from safetensors.torch import load_file

    try:
        state = json.loads((path / "state.json").read_text(encoding="utf-8"))
        tensors = load_file(str(path / "trainable.safetensors"))
        other = torch.load(path / "optimizer.pt", weights_only=True)
        int(state["step"]), state["config"], other["optimizer"], other["scheduler"], other["torch_rng"]
    except Exception as e:  # noqa: BLE001 - safetensors, pickle, json, OS and key errors all mean "damaged"
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UnreadableCheckpoint(f"{type(e).__name__}: {first}") from None
    return state, tensors, other


def resume_from(ckdir: Path, model: nn.Module, opt: torch.optim.Optimizer, sched: Any, config: FinetuneConfig,
                meta: dict[str, Any] | None = None) -> tuple[int, Histories, Path]:
    """Load the newest readable checkpoint of `ckdir`: a damaged newer one is skipped with a warning
    on stderr naming it and the reason. (step, histories, the checkpoint used)."""
    found = checkpoints_newest_first(ckdir)
    if not found:
        raise UserError(f"no checkpoint to resume from in {ckdir}")
    for i, path in enumerate(found):
        try:
            content = read_checkpoint(path)
        except UnreadableCheckpoint as e:
            nxt = f"falling back to {found[i + 1].name}" if i + 1 < len(found) else "and no older one is left"
            print(f"warning: checkpoint {path} is unreadable ({e}); {nxt}", file=sys.stderr)
            continue
        step, hist = load_checkpoint(path, model, opt, sched, config, meta, content=content)
        return step, hist, path
    raise UserError(f"no readable checkpoint in {ckdir} ({len(found)} found, all damaged); start again without --resume")


def load_checkpoint(path: Path, model: nn.Module, opt: torch.optim.Optimizer, sched: Any,
                    config: FinetuneConfig, meta: dict[str, Any] | None = None,
                    content: tuple[dict[str, Any], dict[str, torch.Tensor], dict[str, Any]] | None = None
                    ) -> tuple[int, Histories]:
    """Restore a checkpoint into the prepared model / optimizer / scheduler; returns (step, histories).

    The run's settings (`_RESUME_KEYS` of the config, and every key of `meta`) must match the saved ones.
    `content`: what `read_checkpoint(path)` returned (read here otherwise)."""
    state, tensors, other = content if content is not None else read_checkpoint(path)
    old, old_meta, new_meta = state["config"], state.get("meta", {}), json.loads(json.dumps(meta or {}))
    old = {**asdict(type(config)()), **old}  # a key saved before it existed had its default value
    diff = [k for k in _RESUME_KEYS if old.get(k) != asdict(config).get(k)]
    diff += [k for k in sorted(set(old_meta) | set(new_meta)) if old_meta.get(k) != new_meta.get(k)]
    if diff:
        raise UserError(f"cannot resume from {path}: its settings differ in {', '.join(diff)}")
    named = dict(model.named_parameters())
    if set(tensors) != {n for n, p in named.items() if p.requires_grad}:
        raise UserError(f"checkpoint {path} does not match the model's trainable parameters")
    with torch.no_grad():
        for n, t in tensors.items():
            named[n].copy_(t)
    opt.load_state_dict(other["optimizer"])
    sched.load_state_dict(other["scheduler"])
    torch.set_rng_state(other["torch_rng"])
    return int(state["step"]), Histories(list(state["losses"]), {k: list(v) for k, v in state.get("components", {}).items()})
