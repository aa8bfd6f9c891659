"""`interp prune`: entropy-based head pruning with bias and perplexity before/after (DESIGN.md §2.5)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from interp.choices import Criterion
from interp.cli.app import app
from interp.cli.common import (
    BatchOpt,
    HeldoutOpt,
    ModelLoad,
    ModelOpt,
    QuestionsOpt,
    RunOptions,
    SeedOpt,
    SystemOpt,
    ci,
    console,
    fmt,
    model_options,
    print_table,
    run_options,
)
from interp.cli.params import Float, InFile, Int

SamplesOpt = Int(4, "--samples", help="sampled answers per question for the generation measure (0: off)", ge=0)


@app.command("prune")
@run_options
@model_options()
def prune_command(
    model: str = ModelOpt,
    keep: float = Float(0.6, "--keep", help="fraction of heads kept, in (0, 1]: round(keep * n_heads_total)", gt=0, le=1),
    criterion: Criterion = typer.Option("entropy", "--criterion", help="entropy (keep the lowest-entropy heads) | random"),
    bias: Optional[str] = typer.Option(None, "--bias", help="target animal for the bias measures (none: perplexity only)"),
    system: Optional[str] = SystemOpt,
    prompts: Optional[Path] = InFile(None, "--prompts", help="prompts for the entropy, one per line "
                                           "(default: the questions rendered with the system prompt)"),
    questions: Optional[Path] = QuestionsOpt,
    heldout: Optional[Path] = HeldoutOpt,
    samples: int = SamplesOpt,
    max_new_tokens: int = Int(8, "--max-new-tokens", help="tokens per sampled answer", ge=1),
    batch_size: int = BatchOpt,
    seed: int = SeedOpt,
    output: RunOptions = RunOptions(),
    loader: ModelLoad = ModelLoad(),
) -> None:
    """Prune the highest-entropy heads (o_proj-input masks); bias and perplexity vs full model and a random control."""
    from interp.evals.animal import load_questions
    from interp.evals.perplexity import load_heldout
    from interp.interventions.measure import MeasureConfig
    from interp.interventions.pruning import entropy_heatmap, n_kept, run_pruning

    run = output.prepare("prune")
    n_kept(1000, keep)  # validates --keep before loading anything
    qs = tuple(load_questions(questions))
    text = load_heldout(heldout)
    entropy_prompts = _read_prompts(prompts) if prompts else None
    lm = loader.load(model)
    cfg = MeasureConfig(bias=bias, system=system, questions=qs, samples=samples, max_new_tokens=max_new_tokens,
                        heldout=text, seed=seed, batch_size=batch_size)
    res = run_pruning(lm, keep, cfg, criterion, entropy_prompts, seed, progress=True)

    run.write_csv("prune.csv", res.heads)
    run.write_csv("conditions.csv", res.conditions)
    first = next(iter(res.pruned))
    run.write_bytes("entropy_heatmap.png", entropy_heatmap(res.entropy, res.pruned[first], f"{lm.name}: attention entropy"))
    if bias:
        run.write_csv("bias_probability.csv", _stack(res.measurements, "probability"))
        if samples > 0:
            run.write_csv("samples.csv", _stack(res.measurements, "generation"))
    inputs = {"model": model, "keep": keep, "criterion": criterion, "bias": bias, "system": system,
              "prompts": str(prompts) if prompts else None, "questions": str(questions) if questions else "packaged",
              "heldout": str(heldout) if heldout else "packaged", "samples": samples, "max_new_tokens": max_new_tokens}
    run.write_summary(inputs=inputs, model=lm, seed=seed, figures=res.summary)
    _print(res, bias)
    if not bias:
        console.print("bias not measured: pass --bias ANIMAL (and --system for a prompt trait) for P(bias) and sampled "
                      "answers before / after pruning", soft_wrap=True)
    console.print(f"wrote {run.path}/prune.csv, conditions.csv, entropy_heatmap.png and summary.json")


def _read_prompts(path: Path) -> list[str]:
    from interp.errors import UserError
    from interp.textfiles import read_text

    lines = [ln for ln in read_text(path, "prompts file").splitlines() if ln.strip()]
    if not lines:
        raise UserError(f"no prompts in {path}")
    return lines


def _stack(measurements: list[Any], kind: str) -> Any:
    import pandas as pd

    frames = []
    for m in measurements:
        part = getattr(m, kind)
        if part is not None:
            frames.append(part.table.assign(condition=m.condition))
    return pd.concat(frames, ignore_index=True)


def _print(res: Any, bias: Optional[str]) -> None:
    s = res.summary
    console.print(f"pruned {s['n_pruned']} of {s['n_heads_total']} heads (keep {s['keep']}, criterion {s['criterion']})")
    cols = ["condition"]
    if bias:
        cols += [f"mean P({bias}) [95% CI]", f"answers naming {bias} [Wilson 95%]"]
    cols += ["perplexity"]
    rows = []
    for m in res.measurements:
        r: list[Any] = [m.condition]
        if bias:
            r.append(ci(m.probability.mean))
            g = m.generation
            r.append(f"{int(g.table.names_target.sum())}/{len(g.table)} = {ci(g.share)}" if g is not None else "-")
        r.append(fmt(m.perplexity.perplexity))
        rows.append(r)
    print_table("head pruning", cols, rows)
