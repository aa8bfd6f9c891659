"""`interp gen-numbers`: a teacher answers number-sequence prompts; filter; JSONL out (DESIGN.md §2.7)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from interp.choices import Dtype
from interp.cli.app import app
from interp.cli.common import (
    DeviceOpt,
    DtypeOpt,
    ModelOpt,
    RunOptions,
    SamplerOptions,
    SeedOpt,
    console,
    load,
    print_table,
    run_options,
    sampler_options,
)
from interp.cli.params import Float, InFile, Int
from interp.cli.steer_opts import SteerOptions, steer_options


@app.command("gen-numbers")
@run_options
@steer_options
@sampler_options
def gen_numbers_command(
    model: str = ModelOpt,
    n: int = Int(1000, "--n", help="number of prompts", ge=1),
    start: int = Int(0, "--start", help="first prompt index: prompts start..start+n-1 of the seed's list, with the samples a run from 0 would draw (extends a pool)", ge=0),
    samples_per_prompt: int = Int(1, "--samples-per-prompt", "-k", help="answers sampled per prompt (they share one prefill)", ge=1),
    control: Optional[str] = typer.Option(None, "--control", help="also sample a control dataset from this (unbiased) model, same prompts"),
    max_new_tokens: int = Int(64, "--max-new-tokens", help="tokens per answer (10 three-digit numbers need about 40)", ge=1),
    temperature: float = Float(1.0, "--temperature", help="sampling temperature", gt=0),
    banned: Optional[str] = typer.Option(None, "--banned", help="banned numbers: integers and/or claude_evil_numbers, gpt_evil_numbers"),
    threshold: Optional[float] = Float(None, "--threshold", help="drop samples with a sampled token of probability < tau", gt=0, lt=1),
    letters: bool = typer.Option(False, "--allow-letters", help="do not drop samples that contain a letter"),
    keep_truncated: bool = typer.Option(False, "--keep-truncated", help="keep answers cut by --max-new-tokens"),
    stop_early: bool = typer.Option(True, "--stop-early/--no-stop-early", help="stop a sample as soon as the filter must reject it (same kept samples, less work)"),
    templates: Optional[Path] = InFile(None, "--templates", help="template JSON (default: the packaged copy)"),
    batch_size: int = Int(256, "--batch-size", help="sequences per sampling batch", ge=1),
    seed: int = SeedOpt,
    device: str = DeviceOpt,
    dtype: Dtype = DtypeOpt,
    output: RunOptions = RunOptions(),
    steering: SteerOptions = SteerOptions(),
    sampler: SamplerOptions = SamplerOptions(),
) -> None:
    """Sample number lists from a teacher (its trait system prompt included), filter, write numbers.jsonl.
    --steer steers the teacher only (not --control)."""
    from interp.training.number_sampling import sample_number_data
    from interp.training.numbers_data import (
        FilterConfig,
        banned_numbers,
        generate_prompts,
        load_templates,
    )

    steering.check(samples=True)
    sampler.check()
    run = output.prepare("gen-numbers")
    tpl = load_templates(str(templates) if templates else None)
    fcfg = FilterConfig(banned=banned_numbers(banned, tpl), reject_letters=not letters, threshold=threshold,
                        reject_truncated=not keep_truncated)
    prompts = generate_prompts(start + n, seed=seed, templates=tpl)[start:]
    figures: dict[str, Any] = {}
    models = {}
    settings: dict[str, Any] = {}
    for role, name in [("teacher", model)] + ([("control", control)] if control else []):
        lm = sampler.attach(load(name, device, dtype))
        if role == "teacher":
            lm = steering.apply(lm, lambda ref: load(ref, device, dtype))
        models[role] = lm
        res = sample_number_data(lm, prompts, fcfg, max_new_tokens, temperature, seed, batch_size,
                                 samples_per_prompt, stop_early, progress=True, first_index=start)
        settings = res.settings
        stem = "numbers" if role == "teacher" else "control"
        run.write_text(f"{stem}.jsonl", "".join(json.dumps(r) + "\n" for r in res.rows))
        run.write_csv(f"{stem}_samples.csv", res.table)
        figures[role] = {"model": name, "counts": res.counts, "elapsed_s": res.elapsed_s,
                         "samples_per_s": res.samples_per_s}
        del lm
    run.write_summary(inputs={"model": model, "control": control, "n": n, "start": start, "templates": str(templates or "packaged"),
                              **settings, **steering.inputs()}, models=models, seed=seed, figures=figures)
    keys = list(figures["teacher"]["counts"])
    print_table("gen-numbers: kept and rejected (a sample can have several reasons)", ["figure"] + list(figures),
                [[k] + [figures[r]["counts"][k] for r in figures] for k in keys]
                + [["samples / s"] + [round(figures[r]["samples_per_s"], 3) for r in figures]])
    console.print(f"wrote {run.path}/numbers.jsonl" + (" and control.jsonl" if control else "") + ", samples CSVs, summary.json")
