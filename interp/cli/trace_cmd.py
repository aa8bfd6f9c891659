"""`interp trace`: residual-stream trace, head/MLP attribution, DLA and activation patching (study Phase 4)."""

from __future__ import annotations

from typing import Optional

import typer

from interp.choices import Backend
from interp.cli.app import app
from interp.cli.common import (
    BiasOpt,
    ControlOpt,
    ModelLoad,
    ModelOpt,
    NumberSelection,
    RunOptions,
    SeedOpt,
    console,
    fmt,
    model_options,
    number_options,
    print_table,
    run_options,
)
from interp.cli.params import Int


@app.command("trace")
@run_options
@number_options(sample=100)
@model_options(remote=True)
def trace_command(
    model: str = ModelOpt,
    number: Optional[str] = typer.Option(None, "--number", help="one number, e.g. 087"),
    numbers: NumberSelection = NumberSelection(),  # --numbers, --numbers-file, --digits, --sample
    bias: str = BiasOpt,
    control: str = ControlOpt,
    layer: Optional[int] = Int(None, "--layer", help="layer for the head table (default: spike layer of the mean sim_diff)", ge=0),
    reference_template: str = typer.Option("My favorite animal is the {animal}", "--reference-template"),
    number_template: str = typer.Option("My favorite number is {n}", "--number-template"),
    dla: bool = typer.Option(True, "--dla/--no-dla", help="direct logit attribution on the primed prompt"),
    top_k: int = Int(4, "--patch-top", help="components to patch, by |mean DLA clean - corrupt| (0: none)", ge=0),
    patch_numbers: int = Int(20, "--patch-numbers", help="patch on the first k numbers", ge=1),
    backend: Backend = typer.Option("bridge", "--backend", help="bridge (TransformerLens) | nnsight, for the residual/z trace"),
    seed: int = SeedOpt,
    output: RunOptions = RunOptions(),
    loader: ModelLoad = ModelLoad(),
) -> None:
    """Per-layer cos(number state, bias / control reference), spike layer, per-head and MLP cosines, DLA, patching."""
    from interp.errors import UserError
    from interp.mech.trace import TraceConfig, trace
    from interp.report.html import write_report

    run = output.prepare("trace")
    nums = numbers.resolve(seed, number=number)
    for tmpl, key in ((reference_template, "{animal}"), (number_template, "{n}")):
        if key not in tmpl:
            raise UserError(f"template {tmpl!r} has no {key} placeholder")
    lm = loader.load(model)
    cfg = TraceConfig(bias=bias, control=control, reference_template=reference_template, number_template=number_template,
                      layer=layer, dla=dla, top_k=top_k, patch_numbers=patch_numbers, backend=backend,  # type: ignore[arg-type]
                      seed=seed)
    res = trace(lm, nums, cfg, progress=True)
    if "skipped" in res.summary:
        console.print(f"note: {', '.join(res.summary['skipped']['what'])} skipped: {res.summary['skipped']['why']}")

    run.write_csv("trace.csv", res.layers)
    run.write_csv("heads.csv", res.heads)
    if res.dla is not None:
        run.write_csv("dla.csv", res.dla)
        run.write_csv("dla_per_number.csv", res.dla_per_number)  # type: ignore[arg-type]
    if res.patching is not None:
        run.write_csv("patching.csv", res.patching)
        run.write_csv("patching_summary.csv", res.patching_summary)  # type: ignore[arg-type]
    if res.attention is not None:
        run.write_json("attention.json", res.attention)
    inputs = {"model": model, "numbers": nums, "config": {k: v for k, v in cfg.__dict__.items() if k != "reverse_link"}}
    run.write_summary(inputs=inputs, model=lm, seed=seed, figures=res.summary)
    write_report(run.files_at, run)
    _print(res)
    console.print(f"wrote {run.path}/trace.csv, heads.csv, summary.json and report.html")


def _print(res: object) -> None:
    s = res.summary  # type: ignore[attr-defined]
    rows = [("numbers", s["n_numbers"]),
            ("spike layer (mean sim_diff curve)", f"{s['spike_layer_mean']} (sim_diff {fmt(s['sim_diff_at_spike_mean'])})"),
            ("head-table layer", f"{s['layer']} ({s['layer_source']})"),
            ("top head by output sim_diff", f"{s['top_head']} ({fmt(s['top_head_sim_diff_out'])})"),
            ("MLP output sim_diff", fmt(s["mlp_sim_diff_out"]))]
    if len(s["spike_layer_counts"]) > 1:
        rows.append(("spike layer per number (layer: count)", ", ".join(f"{k}: {v}" for k, v in s["spike_layer_counts"].items())))
    if "dla" in s:
        d = s["dla"]
        rows += [(f"logit({s['bias']}) - logit({s['control']}), primed / control number",
                  f"{fmt(d['logit_diff_clean_mean'])} / {fmt(d['logit_diff_corrupt_mean'])}"),
                 ("DLA: max |sum of components - actual|", fmt(d["max_abs_sum_minus_actual"])),
                 ("top heads by DLA (primed)", ", ".join(f"{k} {v:+.3f}" for k, v in list(d["top_heads_clean"].items())[:3]))]
    print_table("trace", ["figure", "value"], rows)
    heads = res.heads  # type: ignore[attr-defined]
    print_table(f"heads at layer {s['layer']} (means over numbers)", ["component", "sim_diff (out)", "sim_diff (z)", "cos bias (out)"],
                heads[["component", "sim_diff_out", "sim_diff_z", "cos_bias_out"]].itertuples(index=False))
    ps = res.patching_summary  # type: ignore[attr-defined]
    if ps is not None:
        print_table(f"activation patching, primed -> control number ({s['patching']['n_numbers']} numbers)",
                    ["component", "LD clean", "LD corrupt", "LD patched", "recovered"],
                    ps[["component", "ld_clean", "ld_corrupt", "ld_patched", "recovered"]].itertuples(index=False))
