"""Student fine-tuning on prompt/completion pairs: completion-only loss, LoRA or full, freeze modes,
checkpoints that resume bit-exactly (DESIGN.md §2.7).

    examples = read_jsonl("numbers.jsonl")                    # [{"prompt": ..., "completion": ...}]
    res = finetune(lm, examples, FinetuneConfig(method="lora", freeze="mlp", steps=100),
                   checkpoint_dir="ckpt", checkpoint_every=25)
    save_finetuned("smollm2-student", lm, res, meta={...})   # merged weights + adapter/

Sequence of one example: prompt_ids (the chat template with the user turn, ending where the
assistant answer starts; no system prompt beyond the template's default) + completion_ids + EOS.
Batches are right-padded; labels = -100 on prompt and padding positions, so the loss is

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

import copy
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import numpy as np
import torch
import torch.nn as nn

from interp.errors import UserError
from interp.progress import progress_bar
from interp.report.plots import figure_png
from interp.textfiles import read_text
from interp.training.distributed import Distributed
from interp.training.generate import chat_prompt_ids

Method = Literal["lora", "qlora", "full"]
Freeze = Literal["none", "mlp", "attention"]
FREEZE_MODES = ("none", "mlp", "attention")
METHODS = ("lora", "qlora", "full")
IGNORE = -100


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
        if not (self.weight_decay >= 0 and self.grad_clip > 0):
            raise UserError("weight decay must be >= 0 and the gradient clip > 0")


# ---- data ----------------------------------------------------------------------------------------


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a JSONL file; each must have string fields 'prompt' and 'completion'."""
    p = Path(path)
    rows = []
    for n, line in enumerate(read_text(p, "data file").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{p}:{n} is not valid JSON ({e.msg})") from e
        if not isinstance(row, dict) or not isinstance(row.get("prompt"), str) or not isinstance(row.get("completion"), str):
            raise UserError(f"{p}:{n} needs string fields 'prompt' and 'completion'")
        rows.append(row)
    if not rows:
        raise UserError(f"{p} holds no examples")
    return rows


@dataclass
class Tokenized:
    ids: list[list[int]]  # prompt + completion + EOS, cut to max_len
    n_prompt: list[int]  # number of prompt tokens of each sequence


def tokenize_examples(lm: Any, rows: Sequence[dict[str, Any]], max_len: int) -> Tokenized:
    """prompt ids (rendered with the model's template, see module docstring) + completion ids + EOS.

    An example whose prompt alone leaves no room for a completion token within max_len is an error."""
    tok = lm.tokenizer
    prompts = chat_prompt_ids(lm, [r["prompt"] for r in rows])
    eos = tok.eos_token_id
    ids, n_prompt = [], []
    for r, p in zip(rows, prompts):
        comp = tok.encode(r["completion"], add_special_tokens=False) + ([eos] if eos is not None else [])
        if len(p) >= max_len:
            raise UserError(f"a prompt has {len(p)} tokens, more than --max-len {max_len} allows; raise --max-len")
        ids.append((p + comp)[:max_len])
        n_prompt.append(len(p))
    return Tokenized(ids, n_prompt)


def collate(data: Tokenized, idx: Sequence[int], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded input_ids / attention_mask / labels (batch, width); labels = -100 on prompt + pad."""
    width = max(len(data.ids[i]) for i in idx)
    ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(idx), width), dtype=torch.long)
    labels = torch.full((len(idx), width), IGNORE, dtype=torch.long)
    for r, i in enumerate(idx):
        seq = torch.tensor(data.ids[i], dtype=torch.long)
        ids[r, : len(seq)] = seq
        mask[r, : len(seq)] = 1
        labels[r, data.n_prompt[i]: len(seq)] = seq[data.n_prompt[i]:]
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def completion_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the labelled tokens: logits (batch, pos, vocab), labels (batch, pos)."""
    shift_logits = logits[:, :-1, :].float()
    shift_labels = labels[:, 1:]
    return nn.functional.cross_entropy(shift_logits.reshape(-1, shift_logits.shape[-1]), shift_labels.reshape(-1),
                                       ignore_index=IGNORE)


def batch_indices(n_examples: int, batch_size: int, step: int, seed: int) -> list[int]:
    """Example indices of `step` in the seeded stream of epoch permutations (module docstring)."""
    out = []
    for pos in range(step * batch_size, (step + 1) * batch_size):
        epoch, k = divmod(pos, n_examples)
        out.append(int(_perm(n_examples, seed, epoch)[k]))
    return out


_PERMS: dict[tuple[int, int, int], np.ndarray] = {}


def _perm(n: int, seed: int, epoch: int) -> np.ndarray:
    key = (n, seed, epoch)
    if key not in _PERMS:
        _PERMS[key] = np.random.default_rng([seed, epoch]).permutation(n)
    return _PERMS[key]


# ---- freezing and LoRA ----------------------------------------------------------------------------


def frozen_modules(lm: Any, freeze: str) -> list[nn.Module]:
    """The block sub-modules that `freeze` excludes from training (ArchSpec paths)."""
    if freeze == "none":
        return []
    part = {"mlp": "mlp", "attention": "attn"}[freeze]
    return [lm.spec.module(lm.model, part, layer=l) for l in range(lm.spec.n_layers)]


def frozen_parameter_names(lm: Any, freeze: str) -> list[str]:
    """Names (as in model.named_parameters()) of the parameters inside the frozen modules."""
    ids = {id(p) for m in frozen_modules(lm, freeze) for p in m.parameters()}
    return [n for n, p in lm.model.named_parameters() if id(p) in ids]


def lora_targets(lm: Any, freeze: str) -> list[str]:
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


def prepare_model(lm: Any, config: FinetuneConfig) -> nn.Module:
    """The trainable model: a PEFT LoRA wrapper, or the model itself with frozen parts switched off."""
    torch.manual_seed(config.seed)  # LoRA's A matrices are initialised from torch's RNG
    if config.method in ("lora", "qlora"):
        from peft import LoraConfig, get_peft_model

        cfg = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=0.0,
                         target_modules=lora_targets(lm, config.freeze), bias="none", task_type="CAUSAL_LM")
        return get_peft_model(lm.model, cfg)
    model = lm.model
    for p in model.parameters():
        p.requires_grad_(True)
    for m in frozen_modules(lm, config.freeze):
        for p in m.parameters():
            p.requires_grad_(False)
    return model


# ---- training -------------------------------------------------------------------------------------


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
                **_curve_figures(self.losses, "loss"),
                "components": {k: _curve_figures(v, "loss") for k, v in self.components.items()},
                "elapsed_s": round(self.elapsed_s, 2), "resumed_from": self.resumed_from,
                "world_size": self.world_size}


def _curve_figures(values: Sequence[float], name: str) -> dict[str, float | None]:
    return {f"first_{name}": values[0] if values else None, f"last_{name}": values[-1] if values else None,
            f"mean_{name}_last_10": float(np.mean(values[-10:])) if values else None}


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


def finetune(lm: Any, rows: Sequence[dict[str, Any]], config: FinetuneConfig,
             checkpoint_dir: str | Path | None = None, checkpoint_every: int = 0, resume: bool = False,
             progress: bool = False, stop_after: int | None = None) -> FinetuneResult:
    """Train on `rows` (prompt/completion dicts); see the module docstring for every rule.

    `stop_after` ends the run early after that many steps (the schedule still assumes the full
    run), used to simulate an interruption."""
    return train(lm, rows, config, lm_batch_loss, checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every,
                 resume=resume, progress=progress, stop_after=stop_after)


def train(lm: Any, rows: Sequence[dict[str, Any]], config: FinetuneConfig, batch_loss: BatchLoss, *,
          data: Tokenized | None = None, make_batch: Callable[[list[int]], dict[str, torch.Tensor]] | None = None,
          checkpoint_dir: str | Path | None = None, checkpoint_every: int = 0,
          resume: bool = False, progress: bool = False, stop_after: int | None = None,
          resume_meta: dict[str, Any] | None = None, description: str = "fine-tuning") -> FinetuneResult:
    """Prepare `lm` (LoRA / full, freeze mode), run `train_loop` with `batch_loss` on the batches of
    `rows` (`make_batch(indices)`, default `collate` of the tokenised rows; `data` if already
    tokenised), and wrap the outcome as a FinetuneResult (model left in eval mode)."""
    config.validate()
    t0 = time.perf_counter()
    data = data if data is not None else tokenize_examples(lm, rows, config.max_len)
    total = config.total_steps(len(rows))
    frozen = frozen_parameter_names(lm, config.freeze)
    model = prepare_model(lm, config)
    pad = lm.tokenizer.pad_token_id
    out = train_loop(model, config, len(rows), total, make_batch or (lambda idx: collate(data, idx, pad)), batch_loss,
                     checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every, resume=resume,
                     progress=progress, stop_after=stop_after, resume_meta=resume_meta, description=description)
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return FinetuneResult(model, config, out.losses, out.steps, len(rows), n_train, frozen,
                          time.perf_counter() - t0, out.resumed_from, out.checkpoints, out.components, out.world_size,
                          out.full_state)


def train_loop(model: nn.Module, config: FinetuneConfig, n_examples: int, total: int,
               make_batch: Callable[[list[int]], dict[str, torch.Tensor]], batch_loss: BatchLoss, *,
               checkpoint_dir: str | Path | None = None, checkpoint_every: int = 0, resume: bool = False,
               progress: bool = False, stop_after: int | None = None, resume_meta: dict[str, Any] | None = None,
               description: str = "fine-tuning", dist: Distributed | None = None) -> LoopOutcome:
    """The one training loop: for step s in [start, end)

        idx = shard(batch_indices(n_examples, B, s, seed))      # this rank's part of the global batch
        loss, parts = batch_loss(model, make_batch(idx))           # forward + objective (local mean)
        backward(loss * n_r W / N); clip; AdamW step; LR step      # N = completion tokens of all ranks
        histories: losses += global mean, components[k] += global mean

    AdamW over the parameters with requires_grad, linear warm-up then linear decay to 0 over `total`
    steps. Checkpoints (module docstring) also hold the component histories and `resume_meta`
    (extra settings a resume must match, e.g. the distillation's beta and teacher)."""
    dist = dist or Distributed.create(next(model.parameters()).device.type)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=config.learning_rate(), weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _schedule(config.warmup_steps, total))
    hist = Histories([], {})
    start, resumed = 0, None
    ckdir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if resume:
        if ckdir is None:
            raise UserError("--resume needs a checkpoint folder")
        start, hist, _ = resume_from(ckdir, model, opt, sched, config, resume_meta)
        resumed = start
    if dist.is_fsdp and (config.method != "full" or (ckdir is not None and checkpoint_every)):
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
            if ckdir is not None and checkpoint_every and (step + 1) % checkpoint_every == 0:
                if dist.is_main:
                    saved.append(str(save_checkpoint(ckdir, step + 1, model, opt, sched, hist, config, resume_meta)))
                dist.barrier()
    full_state = dist.full_state_dict(wrapped) if dist.is_fsdp else None  # collective: every rank takes part
    model.eval()
    return LoopOutcome(hist.losses, hist.components, end, resumed, saved, dist.world, full_state)


def loss_units(batch: dict[str, torch.Tensor]) -> int:
    """Units the batch loss averages over: labelled (completion) tokens after the one-position shift."""
    return int((batch["labels"][:, 1:] != IGNORE).sum())


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


def _to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


# ---- checkpoints ----------------------------------------------------------------------------------

_RESUME_KEYS = ("method", "freeze", "batch_size", "lr", "warmup_steps", "weight_decay", "grad_clip", "max_len",
                "lora_r", "lora_alpha", "seed", "steps", "epochs")


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


# ---- outputs --------------------------------------------------------------------------------------


def merged_model(result: FinetuneResult) -> nn.Module:
    """Plain HF model with the LoRA update merged (a copy; the PEFT model is kept), or the model."""
    if result.config.method == "full":
        return result.model
    return copy.deepcopy(result.model).merge_and_unload()


def save_finetuned(alias: str, lm: Any, result: FinetuneResult, meta: dict[str, Any], overwrite: bool = False,
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
