"""Typer options shared by the training commands (`interp finetune`, `interp distill`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from interp.report.runs import RunDir

DataOpt = typer.Option(..., "--data", help="JSONL with 'prompt' and 'completion' fields (e.g. gen-numbers output)")
FullOpt = typer.Option(False, "--full/--lora", help="full fine-tuning instead of LoRA (default --lora)")
StepsOpt = typer.Option(None, "--steps", help="optimizer steps (or --epochs)")
EpochsOpt = typer.Option(None, "--epochs", help="passes over the data (or --steps)")
BatchSizeOpt = typer.Option(8, "--batch-size", help="examples per step")
LrOpt = typer.Option(None, "--lr", help="learning rate (default 2e-4 LoRA, 2e-5 full)")
WarmupOpt = typer.Option(0, "--warmup", help="linear warm-up steps (then linear decay to 0)")
MaxLenOpt = typer.Option(128, "--max-len", help="tokens per example")
LoraROpt = typer.Option(8, "--lora-r", help="LoRA rank (alpha = 2r)")
CheckpointEveryOpt = typer.Option(0, "--checkpoint-every", help="save a resumable checkpoint every N steps (0: off)")
ResumeOpt = typer.Option(False, "--resume", help="continue from the latest checkpoint in OUT/checkpoints")
LimitOpt = typer.Option(None, "--limit", help="use only the first N examples")


def prepare_training_run(out: Path | None, command: str, alias: str, force: bool, resume: bool) -> RunDir:
    """The checks every training command makes before loading a model: --resume needs --out, the
    output folder is writable, the alias is valid and new (or --force / --resume)."""
    from interp.errors import UserError
    from interp.models.store import read_meta, validate_alias
    from interp.report.runs import RunDir

    if resume and out is None:
        raise UserError("--resume needs the --out folder of the interrupted run")
    run = RunDir.prepare(out, command, force or resume)
    validate_alias(alias)
    if read_meta(alias) is not None and not (force or resume):
        raise UserError(f"alias '{alias}' already exists in the store; choose another or pass --force")
    return run
