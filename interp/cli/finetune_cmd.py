"""`interp finetune`: student fine-tuning on prompt/completion JSONL (completion-only loss)."""

from __future__ import annotations

from pathlib import Path

import typer

from interp.cli.app import app
from interp.cli.common import (
    ModelLoad,
    ModelOpt,
    RunOptions,
    SeedOpt,
    console,
    model_options,
    print_table,
    run_options,
)
from interp.cli.training_opts import (
    DataOpt,
    TrainingOptions,
    prepare_training_run,
    store_weights,
    training_options,
)


@app.command("finetune")
@run_options
@model_options()
@training_options
def finetune_command(
    model: str = ModelOpt,
    data: Path = DataOpt,
    alias: str = typer.Option(..., "--alias", help="store alias of the trained model, e.g. smollm2-student"),
    seed: int = SeedOpt,
    loader: ModelLoad = ModelLoad(),
    output: RunOptions = RunOptions(),
    training: TrainingOptions = TrainingOptions(),
) -> None:
    """Fine-tune a student; saves merged weights (+ adapter) to the store as ALIAS, loss curve in OUT."""
    from interp.errors import UserError
    from interp.training.finetune import finetune
    from interp.training.saving import loss_curve_png, save_finetuned

    resume = training.resume
    run = prepare_training_run(output, "finetune", alias, resume)
    rows = training.rows(data)
    cfg = training.config(seed, loader)
    cfg.validate()
    cfg.total_steps(len(rows))
    lm = loader.load(model)
    if lm.system_prompt:
        raise UserError(f"'{model}' is a prompt alias; fine-tune its base model instead")
    rows = training.fit(rows, lm)
    res = finetune(lm, rows, cfg, checkpoint_dir=run.path / "checkpoints", checkpoint_every=training.checkpoint_every,
                   resume=resume, progress=True)
    import pandas as pd

    run.write_csv("losses.csv", pd.DataFrame({"step": range(1, len(res.losses) + 1), "loss": res.losses}))
    run.write_bytes("loss_curve.png", loss_curve_png(res.losses, f"{alias}: {cfg.method}, freeze {cfg.freeze}"))
    path = save_finetuned(alias, lm, res, {"data": str(data), "n_examples": len(rows)}, overwrite=output.force or resume,
                          merged=store_weights(res, loader, model))
    run.write_summary(inputs={"model": model, "data": str(data), "alias": alias, **training.inputs()},
                      model=lm, seed=seed, figures={**res.summary(), "store_path": str(path)})
    s = res.summary()
    print_table("finetune", ["figure", "value"], [
        ("method / freeze", f"{cfg.method} / {cfg.freeze}"), ("examples", len(rows)), ("steps", res.steps),
        ("trainable parameters", res.trainable_params), ("frozen tensors", s["n_frozen_tensors"]),
        ("first loss", s["first_loss"]), ("mean loss, last 10 steps", s["mean_loss_last_10"]),
        ("resumed from step", s["resumed_from"]), ("seconds", s["elapsed_s"])])
    console.print(f"saved '{alias}' to {path}; wrote {run.path}/losses.csv, loss_curve.png, summary.json")
