"""`interp distill`: a student trained on prompt/completion JSONL with SHD, logit KD, or no teacher (beta 0)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from interp.choices import DistillKind, LossForm
from interp.cli.app import app
from interp.cli.common import (
    ModelLoad,
    RunOptions,
    SeedOpt,
    console,
    model_options,
    print_table,
    run_options,
)
from interp.cli.params import Float
from interp.cli.steer_opts import SteerOptions, steer_options
from interp.cli.training_opts import (
    DataOpt,
    TrainingOptions,
    prepare_training_run,
    store_weights,
    training_options,
)


@app.command("distill")
@run_options
@model_options()
@training_options
@steer_options
def distill_command(
    teacher: str = typer.Option(..., "--teacher", help="teacher alias (trait in the weights, e.g. from `interp teach --method lora`)"),
    student: str = typer.Option(..., "--student", help="student alias, e.g. gemma3-270m or smollm2"),
    data: Path = DataOpt,
    beta: Optional[float] = Float(None, "--beta", help="weight of the distillation loss, default 1 (0: plain "
                                  "fine-tuning, the control)", ge=0),
    tau: Optional[float] = Float(None, "--tau", help="teacher temperature, default 1 (SHD: maps^(1/tau); KD: logits / tau)",
                                 gt=0),
    kind: DistillKind = typer.Option("shd", "--kind", help="shd (attention maps, any tokenizers) | kd (logits, same tokenizer) | kd-shared (logits over the vocabulary both tokenizers share, at the positions both cut alike) | none (no teacher: plain fine-tuning, the beta = 0 control)"),
    form: Optional[LossForm] = typer.Option(None, "--form", help="sum (default): L_LM + beta L | convex: (1 - beta) L_LM + beta L"),
    drop_words: str = typer.Option("", "--kd-drop-words", help="kd: comma-separated words (e.g. owl,dog) whose tokens "
                                   "leave the teacher's and student's distributions, both renormalised (a control: "
                                   "the target shows no mass on them)"),
    alias: Optional[str] = typer.Option(None, "--alias", help="store alias of the student (default STUDENT-KIND-TEACHER)"),
    seed: int = SeedOpt,
    loader: ModelLoad = ModelLoad(),
    output: RunOptions = RunOptions(),
    training: TrainingOptions = TrainingOptions(),
    steering: SteerOptions = SteerOptions(),
) -> None:
    """Distil TEACHER into STUDENT on DATA; saves the student to the store, loss curves and summary in OUT.
    --steer steers the teacher (its logits for kd, its attention maps for shd)."""
    from interp.errors import UserError

    steering.check()
    if kind == "none" and steering.steer is not None:
        raise UserError("--steer steers the teacher; --kind none has no teacher")

    if kind == "none":  # options that shape a distillation loss are refused, not recorded as if used
        given = [f for f, v in (("--beta", beta), ("--tau", tau), ("--form", form), ("--kd-drop-words", drop_words)) if v]
        if given or beta == 0:
            raise UserError(f"{', '.join(given or ['--beta'])}: --kind none trains on the LM loss alone, with no "
                            "distillation loss to weight or shape")
    if beta == 0 and (tau is not None or drop_words):
        raise UserError(f"{'--tau' if tau is not None else '--kd-drop-words'}: --beta 0 computes no distillation loss "
                        "(the control); leave it out")
    beta, tau, form = (1.0 if beta is None else beta), (1.0 if tau is None else tau), form or "sum"
    from interp.training.distill import (
        DistillConfig,
        check_pair,
        component_curves,
        distill,
        save_distilled,
    )
    from interp.training.saving import loss_curve_png

    resume = training.resume
    words = tuple(w.strip() for w in drop_words.split(",")) if drop_words else ()
    cfg = DistillConfig(training.config(seed, loader), kind=kind, beta=beta, tau=tau, form=form, drop_words=words)
    cfg.validate()
    name = alias or f"{student}-{cfg.active}-{teacher}".replace("/", "-")
    run = prepare_training_run(output, "distill", name, resume)
    rows = training.rows(data)
    cfg.finetune.total_steps(len(rows))
    t_lm = steering.apply(loader.load(teacher), loader.load)
    s_lm = loader.load(student)
    check_pair(s_lm, t_lm, cfg)
    rows = training.fit(rows, s_lm)
    res = distill(s_lm, t_lm, rows, cfg, checkpoint_dir=run.path / "checkpoints", checkpoint_every=training.checkpoint_every,
                  resume=resume, progress=True)
    import pandas as pd

    run.write_csv("losses.csv", pd.DataFrame({"step": range(1, len(res.losses) + 1), "total": res.losses,
                                              **res.components}))
    title = f"{name} ({cfg.active}" + (f", beta {beta:g}, tau {tau:g})" if cfg.active != "none" else ")")
    for fname, png in component_curves(res, title).items():
        run.write_bytes(fname, png)
    if len(res.components) > 1:
        run.write_bytes("loss_total.png", loss_curve_png(res.losses, f"{title}: total", "total loss"))
    path = save_distilled(name, s_lm, t_lm, res, {"data": str(data), "n_examples": len(rows)},
                          overwrite=output.force or resume, merged=store_weights(res, loader, student))
    s = res.summary()
    run.write_summary(inputs={"teacher": teacher, "student": student, "data": str(data), "alias": name,
                              **training.inputs(), **steering.inputs()},
                      model=s_lm, models={"teacher": t_lm}, seed=seed,
                      figures={**s, "store_path": str(path)})
    comp = s["components"]
    table = [("teacher -> student", f"{teacher} -> {student}"), ("objective", cfg.describe()),
             ("method / freeze", f"{cfg.finetune.method} / {cfg.finetune.freeze}"), ("examples / steps", f"{len(rows)} / {res.steps}"),
             ("trainable parameters", res.trainable_params)]
    for k, v in comp.items():
        table.append((f"{k} loss: first -> mean last 10", f"{v['first_loss']:.4f} -> {v['mean_loss_last_10']:.4f}"))
    if words:
        table.append(("dropped from the KD target", ", ".join(repr(t) for t in s["distill"]["dropped_tokens"])))
    if "aligned_fraction" in s["distill"]:
        table.append(("shared vocabulary / tokens aligned", f"{s['distill']['shared_vocabulary']} / "
                                                            f"{s['distill']['aligned_fraction']:.1%}"))
    table += [("resumed from step", s["resumed_from"]), ("seconds", s["elapsed_s"])]
    print_table("distill", ["figure", "value"], table)
    curves = ", ".join(f"loss_{k}.png" for k in res.components)
    console.print(f"saved '{name}' to {path}; wrote {run.path}/losses.csv, {curves}, summary.json")
