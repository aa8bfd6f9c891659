"""Typer options shared by the training commands (`interp finetune`, `interp distill`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer

from interp.choices import FreezeMode, LossMask
from interp.cli.params import Float, InFile, Int
from interp.cli.common import bundle_options

if TYPE_CHECKING:
    from interp.cli.common import RunOptions
    from interp.models.loaded import LoadedModel
    from interp.report.runs import RunDir
    from interp.training.config import FinetuneConfig

DataOpt = InFile(..., "--data", help="JSONL with 'prompt' and 'completion' fields (e.g. gen-numbers output)")
FullOpt = typer.Option(False, "--full/--lora", help="full fine-tuning instead of LoRA (default --lora)")
StepsOpt = Int(None, "--steps", help="optimizer steps (or --epochs)", ge=1)
EpochsOpt = Float(None, "--epochs", help="passes over the data (or --steps)", gt=0)
BatchSizeOpt = Int(8, "--batch-size", help="examples per step", ge=1)
LrOpt = Float(None, "--lr", help="learning rate (default 2e-4 LoRA, 2e-5 full)", gt=0)
WarmupOpt = Int(0, "--warmup", help="linear warm-up steps (then linear decay to 0)", ge=0)
MaxLenOpt = Int(128, "--max-len", help="tokens per example", ge=2)
LoraROpt = Int(8, "--lora-r", help="LoRA rank (alpha = 2r)", ge=1)
CheckpointEveryOpt = Int(0, "--checkpoint-every", help="save a resumable checkpoint every N steps (0: off)", ge=0)
ResumeOpt = typer.Option(False, "--resume", help="continue from the latest checkpoint in OUT/checkpoints")
LimitOpt = Int(None, "--limit", help="use only the first N examples", ge=1)
FreezeOpt = typer.Option("none", "--freeze", help="none | mlp | attention: component that receives no update")
LossMaskOpt = typer.Option("all", "--loss-mask", help="all | divergent | non-divergent: completion tokens in the loss "
                           "(rows marked by `interp mark-divergence`; rows left with none are dropped)")


@dataclass(frozen=True)
class TrainingOptions:
    """The optimisation options of one training command (see `training_options`)."""

    full: bool = False
    steps: Optional[int] = None
    epochs: Optional[float] = None
    batch_size: int = 8
    lr: Optional[float] = None
    warmup: int = 0
    max_len: int = 128
    lora_r: int = 8
    checkpoint_every: int = 0
    resume: bool = False
    limit: Optional[int] = None
    loss_mask: LossMask = "all"
    freeze: FreezeMode = "none"

    def config(self, seed: int) -> FinetuneConfig:
        from interp.training.config import FinetuneConfig

        return FinetuneConfig(method="full" if self.full else "lora", freeze=self.freeze, steps=self.steps,
                              epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, warmup_steps=self.warmup,
                              max_len=self.max_len, lora_r=self.lora_r, lora_alpha=2 * self.lora_r, seed=seed,
                              loss_mask=self.loss_mask)

    def rows(self, data: Path) -> list[dict[str, Any]]:
        """The examples of DATA (the first --limit of them), less those --loss-mask leaves without a token."""
        from interp.cli.common import console
        from interp.training.examples import read_jsonl, select_rows

        rows = read_jsonl(data)
        rows = rows[:self.limit] if self.limit else rows
        kept, dropped = select_rows(rows, self.loss_mask)
        if dropped:
            console.print(f"--loss-mask {self.loss_mask}: {dropped} of {len(rows)} examples have no token to train on "
                          f"and are left out; {len(kept)} remain")
        if not kept:
            from interp.errors import UserError

            raise UserError(f"--loss-mask {self.loss_mask} leaves no example with a token to train on")
        return kept

    def fit(self, rows: list[dict[str, Any]], lm: LoadedModel) -> list[dict[str, Any]]:
        """`rows` less those whose labelled tokens under --loss-mask all lie beyond --max-len once the
        model's prompt is in the window (e.g. a divergence token late in a long example)."""
        if self.loss_mask == "all":
            return rows
        from interp.cli.common import console
        from interp.errors import UserError
        from interp.training.examples import completion_windows, select_rows

        kept, dropped = select_rows(rows, self.loss_mask, completion_windows(lm, rows, self.max_len))
        if dropped:
            console.print(f"--loss-mask {self.loss_mask}: {dropped} of {len(rows)} examples keep no labelled token within "
                          f"--max-len {self.max_len} and are left out; {len(kept)} remain")
        if not kept:
            raise UserError(f"--loss-mask {self.loss_mask} leaves no example with a token to train on within --max-len {self.max_len}")
        return kept

    def inputs(self) -> dict[str, Any]:
        return {"limit": self.limit, "checkpoint_every": self.checkpoint_every, "resume": self.resume,
                "loss_mask": self.loss_mask}


_TRAIN_PARAMS = {"full": (bool, FullOpt), "steps": (Optional[int], StepsOpt), "epochs": (Optional[float], EpochsOpt),
                 "batch_size": (int, BatchSizeOpt), "lr": (Optional[float], LrOpt), "warmup": (int, WarmupOpt),
                 "max_len": (int, MaxLenOpt), "lora_r": (int, LoraROpt),
                 "checkpoint_every": (int, CheckpointEveryOpt), "resume": (bool, ResumeOpt),
                 "limit": (Optional[int], LimitOpt), "loss_mask": (LossMask, LossMaskOpt), "freeze": (FreezeMode, FreezeOpt)}

training_options = bundle_options("training", _TRAIN_PARAMS, TrainingOptions)
"""Decorator for a command with a `training: TrainingOptions` parameter (--full/--lora, --steps,
--epochs, --batch-size, --lr, --warmup, --max-len, --lora-r, --checkpoint-every, --resume, --limit,
--loss-mask, --freeze)."""


def prepare_training_run(output: RunOptions, command: str, alias: str, resume: bool) -> RunDir:
    """The checks every training command makes before loading a model: --resume needs --out, the
    output folder is writable, the alias is valid and new (or --force / --resume)."""
    from interp.errors import UserError
    from interp.models.store import read_meta, validate_new_alias
    from interp.report.runs import RunDir

    if resume and output.out is None:
        raise UserError("--resume needs the --out folder of the interrupted run")
    run = RunDir.prepare(output.out, command, output.force or resume, replace=output.force and not resume)
    validate_new_alias(alias)
    if read_meta(alias) is not None and not (output.force or resume):
        raise UserError(f"alias '{alias}' already exists in the store; choose another or pass --force")
    return run
