"""Student fine-tuning on prompt/completion pairs: completion-only loss, LoRA or full, freeze modes,
checkpoints that resume bit-exactly (DESIGN.md §2.7).

    examples = read_jsonl("numbers.jsonl")                    # [{"prompt": ..., "completion": ...}]
    res = finetune(lm, examples, FinetuneConfig(method="lora", freeze="mlp", steps=100),
                   checkpoint_dir="ckpt", checkpoint_every=25)
    save_finetuned("smollm2-student", lm, res, meta={...})   # interp.training.saving: merged weights + adapter/

Module layout, one way: the config and result types (`interp.training.config`) below the data
(`interp.training.examples`), the checkpoints (`interp.training.checkpoints`) and what a run leaves
(`interp.training.saving`); this module holds freezing / LoRA and the training loop, on top. Import
each name from the module that defines it (there is no re-export).

Sequence of one example: see `interp.training.examples`. Batches are right-padded; labels = -100 on prompt and padding positions, so the loss is

    L = - (1 / #{t : label_t != -100}) * sum_{t : label_t != -100} log p(label_t | tokens_<t)

(logits at position t-1 predict token t), averaged over the completion tokens of the batch.

Freeze modes (the localisation experiment): `none`; `mlp` = every block's MLP (spec.module(.., "mlp"))
receives no update; `attention` = every block's attention (spec.module(.., "attn")) receives none.
Full fine-tuning sets requires_grad=False on the frozen parameters (they stay bit-identical);
LoRA puts adapters only on the Linear layers of the blocks' non-frozen parts.

Data order: step s uses positions s*B .. (s+1)*B-1 of the stream
perm_0 ++ perm_1 ++ ... with perm_e = default_rng([seed, e]).permutation(n_examples), so the batch
of a step depends only on (seed, step). A checkpoint (every N steps) holds the trainable tensors,
the AdamW and LR-scheduler states, torch's RNG state and the loss histories; `resume=True` restores
the latest one and continues, which reproduces the uninterrupted run exactly on CPU.

The loop itself is `train_loop`, shared by every trainer (fine-tuning here, distillation in
`interp.training.distill`): it takes a per-batch loss callable returning (total loss, {component:
float}) and keeps one history per component. It runs unchanged under `accelerate launch` (DDP, or
FSDP through an accelerate config; `interp.training.distributed`): the step's global batch of
`batch_size` examples is split over the ranks, each rank's mean loss is weighted by its share of
the completion tokens so the update equals the one-process update on the whole batch, the logged
loss is the global token mean, and only the main process writes checkpoints (all ranks resume from
the same one). Without a launcher it is plain single-process torch, bit for bit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn as nn

from interp.errors import UserError
from interp.models.loaded import LoadedModel
from interp.progress import progress_bar
from interp.training.checkpoints import Checkpointer, Histories
from interp.training.config import FinetuneConfig, FinetuneResult
from interp.training.distributed import Distributed
from interp.training.examples import IGNORE, Tokenized, batch_indices, collate, tokenize_examples
from interp.training.optimizers import make_optimizer

def completion_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the labelled tokens: logits (batch, pos, vocab), labels (batch, pos)."""
    shift_logits = logits[:, :-1, :].float()
    shift_labels = labels[:, 1:]
    return nn.functional.cross_entropy(shift_logits.reshape(-1, shift_logits.shape[-1]), shift_labels.reshape(-1),
                                       ignore_index=IGNORE)


# ---- freezing and LoRA ----------------------------------------------------------------------------


def frozen_modules(lm: LoadedModel, freeze: str) -> list[nn.Module]:
    """The block sub-modules that `freeze` excludes from training (ArchSpec paths)."""
    if freeze == "none":
        return []
    part = {"mlp": "mlp", "attention": "attn"}[freeze]
    return [lm.spec.module(lm.model, part, layer=l) for l in range(lm.spec.n_layers)]


def frozen_parameter_names(lm: LoadedModel, freeze: str) -> list[str]:
    """Names (as in model.named_parameters()) of the parameters inside the frozen modules."""
    ids = {id(p) for m in frozen_modules(lm, freeze) for p in m.parameters()}
    return [n for n, p in lm.model.named_parameters() if id(p) in ids]


def lora_targets(lm: LoadedModel, freeze: str) -> list[str]:
    """Full names of the Linear (or GPT-2 Conv1D) layers inside the blocks, minus the frozen parts."""
    frozen = {id(m) for f in frozen_modules(lm, freeze) for m in f.modules()}
    layers = {id(m) for m in lm.spec.layers(lm.model).modules()}
    out = []
    for name, mod in lm.model.named_modules():
        linear = isinstance(mod, nn.Linear) or type(mod).__name__ in ("Conv1D", "Linear4bit", "Linear8bitLt")
        if linear and id(mod) in layers and id(mod) not in frozen:
            out.append(name)
    if not out:
        raise UserError("no layers left to train with this freeze mode")
    return out


def prepare_model(lm: LoadedModel, config: FinetuneConfig) -> nn.Module:
    """The trainable model: a PEFT LoRA wrapper, or the model itself with frozen parts switched off."""
    torch.manual_seed(config.seed)  # LoRA's A matrices are initialised from torch's RNG
    if config.method in ("lora", "qlora"):
        from peft import LoraConfig, get_peft_model

        from interp.models.peft_compat import peft_wrapping

        cfg = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=0.0,
                         target_modules=lora_targets(lm, config.freeze), bias="none", task_type="CAUSAL_LM")
        with peft_wrapping():
            return get_peft_model(lm.model, cfg)
    model = lm.model
    for p in model.parameters():
        p.requires_grad_(True)
    for m in frozen_modules(lm, config.freeze):
        for p in m.parameters():
            p.requires_grad_(False)
    return model


# ---- training -------------------------------------------------------------------------------------


def _schedule(warmup: int, total: int):  # noqa: ANN202
    def f(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))
    return f


BatchLoss = Callable[[nn.Module, dict[str, torch.Tensor]], tuple[torch.Tensor, dict[str, float]]]


@dataclass
class LoopOutcome:
    """What `train_loop` returns: histories (total and per component), end step, resume info."""

    losses: list[float]
    components: dict[str, list[float]]
    steps: int
    resumed_from: int | None
    checkpoints: list[str]
    world_size: int = 1
    full_state: dict[str, torch.Tensor] | None = None  # gathered weights of an FSDP run (rank 0)


def forward_completion(model: nn.Module, batch: dict[str, torch.Tensor], **kwargs: Any) -> tuple[Any, torch.Tensor]:
    """The model's output on a collated batch with logits only from position s on, where s is one
    before the batch's first labelled token (`logits_to_keep`; the LM head is most of the cost with
    a large vocabulary), and the labels cut to match: `completion_loss(out.logits, labels)` equals
    the loss of the full logits."""
    labels = batch["labels"]
    cols = (labels != IGNORE).any(0).nonzero()
    start = max(0, int(cols[0]) - 1) if len(cols) else labels.shape[1] - 1
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False,
                logits_to_keep=labels.shape[1] - start, **kwargs)
    return out, labels[:, start:]


def lm_batch_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    """The fine-tuning objective: completion-only cross-entropy, one component 'lm'."""
    out, labels = forward_completion(model, batch)
    loss = completion_loss(out.logits, labels)
    return loss, {"lm": float(loss.detach())}


def finetune(lm: LoadedModel, rows: Sequence[dict[str, Any]], config: FinetuneConfig,
             checkpoint_dir: str | Path | None = None, checkpoint_every: int = 0, resume: bool = False,
             progress: bool = False, stop_after: int | None = None) -> FinetuneResult:
    """Train on `rows` (prompt/completion dicts); see the module docstring for every rule.

    `stop_after` ends the run early after that many steps (the schedule still assumes the full
    run), used to simulate an interruption."""
    return train(lm, rows, config, lm_batch_loss, checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every,
                 resume=resume, progress=progress, stop_after=stop_after)


def train(lm: LoadedModel, rows: Sequence[dict[str, Any]], config: FinetuneConfig, batch_loss: BatchLoss, *,
          data: Tokenized | None = None, make_batch: Callable[[list[int]], dict[str, torch.Tensor]] | None = None,
          checkpoint_dir: str | Path | None = None, checkpoint_every: int = 0,
          resume: bool = False, progress: bool = False, stop_after: int | None = None,
          resume_meta: dict[str, Any] | None = None, description: str = "fine-tuning") -> FinetuneResult:
    """Prepare `lm` (LoRA / full, freeze mode), run `train_loop` with `batch_loss` on the batches of
    `rows` (`make_batch(indices)`, default `collate` of the tokenised rows; `data` if already
    tokenised), and wrap the outcome as a FinetuneResult (model left in eval mode)."""
    config.validate()
    t0 = time.perf_counter()
    data = data if data is not None else tokenize_examples(lm, rows, config.max_len, config.loss_mask)
    total = config.total_steps(len(rows))
    frozen = frozen_parameter_names(lm, config.freeze)
    model = prepare_model(lm, config)
    pad = lm.tokenizer.pad_token_id
    if resume and checkpoint_dir is None:
        raise UserError("--resume needs a checkpoint folder")
    saver = (Checkpointer(Path(checkpoint_dir), config, checkpoint_every, resume_meta)
             if checkpoint_dir is not None else None)
    out = train_loop(model, config, len(rows), total, make_batch or (lambda idx: collate(data, idx, pad)), batch_loss,
                     checkpoints=saver, resume=resume, progress=progress, stop_after=stop_after,
                     description=description)
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return FinetuneResult(model, config, out.losses, out.steps, len(rows), n_train, frozen,
                          time.perf_counter() - t0, out.resumed_from, out.checkpoints, out.components, out.world_size,
                          out.full_state)


def train_loop(model: nn.Module, config: FinetuneConfig, n_examples: int, total: int,
               make_batch: Callable[[list[int]], dict[str, torch.Tensor]], batch_loss: BatchLoss, *,
               checkpoints: Checkpointer | None = None, resume: bool = False, progress: bool = False,
               stop_after: int | None = None, description: str = "fine-tuning",
               dist: Distributed | None = None) -> LoopOutcome:
    """The one training loop: for step s in [start, end)

        idx = shard(batch_indices(n_examples, B, s, seed))      # this rank's part of the global batch
        loss, parts = batch_loss(model, make_batch(idx))           # forward + objective (local mean)
        backward(loss * n_r W / N); clip; optimizer step; LR step  # N = completion tokens of all ranks
        histories: losses += global mean, components[k] += global mean

    The optimizer (`interp.training.optimizers`: AdamW, SGD with momentum, SignSGD) over the parameters with
    requires_grad, linear warm-up then linear decay to 0 over `total`
    steps. `checkpoints` (the saver, a callback: `interp.training.checkpoints.Checkpointer`) writes
    them every N steps on the main process and restores the newest with `resume`."""
    dist = dist or Distributed.create(next(model.parameters()).device.type)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = make_optimizer(params, config)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _schedule(config.warmup_steps, total))
    hist = Histories([], {})
    start, resumed = 0, None
    if resume:
        if checkpoints is None:
            raise UserError("--resume needs a checkpoint folder")
        start, hist = checkpoints.resume(model, opt, sched)
        resumed = start
    if dist.is_fsdp and (config.method != "full" or (checkpoints is not None and checkpoints.every)):
        raise UserError("under FSDP interp runs full fine-tuning without checkpoints (sharded optimizer state "
                        "is not saved yet); use DDP for LoRA or for resumable runs")
    wrapped, opt = dist.prepare(model, opt)
    device = next(model.parameters()).device
    end = total if stop_after is None else min(total, stop_after)
    saved: list[str] = []
    wrapped.train()
    with progress_bar(end - start, description, progress and dist.is_main) as advance:
        for step in range(start, end):
            idx = dist.shard(batch_indices(n_examples, config.batch_size, step, config.seed))
            batch = _to_device(make_batch(idx), device)
            loss, parts = batch_loss(wrapped, batch)
            n_local, names = loss_units(batch), list(parts)
            # one all-reduce per step: units, and the unit-weighted sums of the loss and its components
            n_all, loss_sum, *part_sums = dist.sums([n_local, float(loss.detach()) * n_local,
                                                     *(parts[k] * n_local for k in names)])
            opt.zero_grad(set_to_none=True)
            dist.backward(loss * dist.weight(n_local, n_all))
            if config.grad_clip:
                dist.clip_grad_norm_(params, config.grad_clip)
            opt.step()
            sched.step()
            hist.append(loss_sum / n_all, {k: v / n_all for k, v in zip(names, part_sums)})
            advance(1)
            if checkpoints is not None and checkpoints.due(step + 1):
                if dist.is_main:
                    saved.append(str(checkpoints.save(step + 1, model, opt, sched, hist)))
                dist.barrier()
    full_state = dist.full_state_dict(wrapped) if dist.is_fsdp else None  # collective: every rank takes part
    model.eval()
    return LoopOutcome(hist.losses, hist.components, end, resumed, saved, dist.world, full_state)


def loss_units(batch: dict[str, torch.Tensor]) -> int:
    """Units the batch loss averages over: labelled (completion) tokens after the one-position shift."""
    return int((batch["labels"][:, 1:] != IGNORE).sum())


def _to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}

