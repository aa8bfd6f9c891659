"""`interp eval-animal`: animal preference over the 50 one-word questions (probability + sampling)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from interp.choices import VariantPolicy
from interp.cli.app import app
from interp.cli.common import (
    BatchOpt,
    ModelLoad,
    ModelOpt,
    QuestionsOpt,
    RunOptions,
    SamplerOptions,
    SeedOpt,
    ci,
    console,
    model_options,
    print_table,
    run_options,
    sampler_options,
)
from interp.cli.params import Float, Int
from interp.cli.steer_opts import SteerOptions, steer_options


@app.command("eval-animal")
@run_options
@model_options()
@steer_options
@sampler_options
def eval_animal_command(
    model: str = ModelOpt,
    target: str = typer.Option("owl", "--target", help="the animal to measure"),
    system: Optional[str] = typer.Option(None, "--system", help="extra system prompt (appended to a prompt teacher's own)"),
    other: Optional[str] = typer.Option(None, "--other", help="a second animal: also P(other) and the margin "
                                        "log P(target) - log P(other) per question (the crossover statistic)"),
    baseline: Optional[str] = typer.Option(None, "--baseline", help="model to compare log P(target) with, question by question"),
    samples: int = Int(20, "--samples", help="sampled answers per question (0: probability only)", ge=0),
    questions: Optional[Path] = QuestionsOpt,
    policy: VariantPolicy = typer.Option("sum", "--variants", help="sum (owl, Owl, owls... summed) | natural"),
    max_new_tokens: int = Int(8, "--max-new-tokens", help="tokens per sampled answer", ge=1),
    temperature: float = Float(1.0, "--temperature", help="sampling temperature", gt=0),
    top: int = Int(10, "--top", help="most frequent answers to list", ge=1),
    batch_size: int = BatchOpt,
    seed: int = SeedOpt,
    output: RunOptions = RunOptions(),
    loader: ModelLoad = ModelLoad(),
    steering: SteerOptions = SteerOptions(),
    sampler: SamplerOptions = SamplerOptions(),
) -> None:
    """Mean P(target) after each question (and delta log P vs --baseline), sampled target rate (Wilson CI), top answers."""
    from interp.errors import UserError
    from interp.evals import animal as A

    steering.check()
    sampler.check()
    run = output.prepare("eval-animal")
    qs = A.load_questions(questions)
    lm = steering.apply(loader.load(model), loader.load)
    if samples:
        lm = sampler.attach(lm)  # the sampled rates only; probabilities stay on the local forwards
    prob = A.bias_probability(lm, qs, target, system, policy, batch_size=batch_size, seed=seed, progress=True)
    figures: dict = {"probability": prob.to_dict()}
    table = prob.table.copy()
    rows = [(f"mean P({target}) [95% CI]", ci(prob.mean))]
    if other:
        import numpy as np

        from interp.evals.stats import bootstrap_ci

        if other.strip().lower() == target.strip().lower():
            raise UserError("--other must name a different animal than --target")
        oth = A.bias_probability(lm, qs, other, system, policy, batch_size=batch_size, seed=seed, progress=True)
        table["p_other"] = oth.table.p_target.to_numpy()
        table["margin"] = np.log(table.p_target.to_numpy()) - np.log(table.p_other.to_numpy())
        margin = bootstrap_ci(table.margin.to_numpy(), seed=seed)
        figures["other_probability"] = oth.to_dict()
        figures["margin"] = {"definition": f"mean over questions of log P({target}) - log P({other})",
                             **margin.to_dict()}
        rows += [(f"mean P({other}) [95% CI]", ci(oth.mean)),
                 (f"margin log P({target}) - log P({other}) [95% CI]", ci(margin))]
    models = {"model": lm}
    if baseline:
        blm = loader.load(baseline)
        models["baseline"] = blm
        base = A.bias_probability(blm, qs, target, system, policy, batch_size=batch_size, seed=seed, progress=True)
        d = A.delta_log_p(prob, base, seed=seed)
        figures["baseline_probability"] = base.to_dict()
        figures["delta_log_p"] = d.to_dict()
        table["p_target_baseline"] = base.table.p_target.to_numpy()
        rows += [(f"baseline mean P({target}) [95% CI]", ci(base.mean)),
                 ("mean delta log P [95% CI], perm. p", f"{ci(d.mean_diff)}, p={d.p_value:.4g}")]
    run.write_csv("probability.csv", table)
    if samples:
        gen = A.bias_generation(lm, qs, target, system, samples, seed, max_new_tokens, temperature,
                                batch_size=batch_size, progress=True)
        tops = A.top_answers(gen.table, top)
        figures["generation"] = gen.to_dict()
        figures["top_answers"] = tops
        run.write_csv("answers.csv", gen.table)
        run.write_csv("top_answers.csv", tops)
        g = figures["generation"]
        rows.append((f"sampled answers naming {target} [Wilson 95% CI]", f"{g['k']}/{g['n']} = {ci(gen.share)}"))
    run.write_summary(inputs={"model": model, "target": target, "other": other, "system": system, "baseline": baseline,
                              "samples": samples, "questions": str(questions or "packaged (50)"), "variants": policy,
                              "max_new_tokens": max_new_tokens, "temperature": temperature, **steering.inputs()},
                      model=lm, models=models, seed=seed, figures=figures)
    print_table(f"eval-animal: {model}", ["figure", "value"], rows)
    if samples:
        print_table(f"top {len(tops)} answers", ["answer", "count", "share"], tops.itertuples(index=False))
    console.print(f"wrote {run.path}/probability.csv" + (", answers.csv, top_answers.csv" if samples else "") + ", summary.json")
