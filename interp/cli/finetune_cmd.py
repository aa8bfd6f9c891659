"""`interp finetune`: student fine-tuning on prompt/completion JSONL (completion-only loss)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from interp.cli.app import app
from interp.cli.common import DeviceOpt, ForceOpt, ModelOpt, OutOpt, SeedOpt, console, load, print_table
from interp.cli.training_opts import (BatchSizeOpt, CheckpointEveryOpt, DataOpt, EpochsOpt, FullOpt, LimitOpt,
                                       LoraROpt, LrOpt, MaxLenOpt, ResumeOpt, StepsOpt, WarmupOpt,
                                       prepare_training_run)


@app.command("finetune")
def finetune_command(
    model: str = ModelOpt,
    data: Path = DataOpt,
    alias: str = typer.Option(..., "--alias", help="store alias of the trained model, e.g. smollm2-student"),
    full: bool = FullOpt,
    freeze: str = typer.Option("none", "--freeze", help="none | mlp | attention: component that receives no update"),
    steps: Optional[int] = StepsOpt,
    epochs: Optional[float] = EpochsOpt,
    batch_size: int = BatchSizeOpt,
    lr: Optional[float] = LrOpt,
    warmup: int = WarmupOpt,
    max_len: int = MaxLenOpt,
    lora_r: int = LoraROpt,
    checkpoint_every: int = CheckpointEveryOpt,
    resume: bool = ResumeOpt,
    limit: Optional[int] = LimitOpt,
    seed: int = SeedOpt,
    device: str = DeviceOpt,
    out: Optional[Path] = OutOpt,
    force: bool = ForceOpt,
) -> None:
    """Fine-tune a student; saves merged weights (+ adapter) to the store as ALIAS, loss curve in OUT."""
    from interp.errors import UserError
    from interp.training.finetune import FinetuneConfig, finetune, loss_curve_png, read_jsonl, save_finetuned

    run = prepare_training_run(out, "finetune", alias, force, resume)
    rows = read_jsonl(data)[:limit] if limit else read_jsonl(data)
    cfg = FinetuneConfig(method="full" if full else "lora", freeze=freeze, steps=steps, epochs=epochs,
                         batch_size=batch_size, lr=lr, warmup_steps=warmup, max_len=max_len, lora_r=lora_r,
                         lora_alpha=2 * lora_r, seed=seed)
    cfg.validate()
    cfg.total_steps(len(rows))
    lm = load(model, device)
    if lm.system_prompt:
        raise UserError(f"'{model}' is a prompt alias; fine-tune its base model instead")
    res = finetune(lm, rows, cfg, checkpoint_dir=run.path / "checkpoints", checkpoint_every=checkpoint_every,
                   resume=resume, progress=True)
    import pandas as pd

    run.write_csv("losses.csv", pd.DataFrame({"step": range(1, len(res.losses) + 1), "loss": res.losses}))
    run.write_bytes("loss_curve.png", loss_curve_png(res.losses, f"{alias}: {cfg.method}, freeze {cfg.freeze}"))
    path = save_finetuned(alias, lm, res, {"data": str(data), "n_examples": len(rows)}, overwrite=force or resume)
    run.write_summary(inputs={"model": model, "data": str(data), "alias": alias, "limit": limit,
                              "checkpoint_every": checkpoint_every, "resume": resume},
                      model=lm, seed=seed, figures={**res.summary(), "store_path": str(path)})
    s = res.summary()
    print_table("finetune", ["figure", "value"], [
        ("method / freeze", f"{cfg.method} / {cfg.freeze}"), ("examples", len(rows)), ("steps", res.steps),
        ("trainable parameters", res.trainable_params), ("frozen tensors", s["n_frozen_tensors"]),
        ("first loss", s["first_loss"]), ("mean loss, last 10 steps", s["mean_loss_last_10"]),
        ("resumed from step", s["resumed_from"]), ("seconds", s["elapsed_s"])])
    console.print(f"saved '{alias}' to {path}; wrote {run.path}/losses.csv, loss_curve.png, summary.json")
