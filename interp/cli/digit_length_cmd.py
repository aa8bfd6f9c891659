"""`interp digit-length`: the digit-length sweep (study Phase 3)."""

from __future__ import annotations

import typer

from interp.choices import Style
from interp.cli.app import app
from interp.cli.common import (
    BatchOpt,
    BiasOpt,
    ControlOpt,
    ModelLoad,
    ModelOpt,
    RunOptions,
    SeedOpt,
    StyleOpt,
    console,
    model_options,
    print_table,
    row_ci,
    run_options,
)
from interp.cli.params import Int


@app.command("digit-length")
@run_options
@model_options()
def digit_length_command(
    model: str = ModelOpt,
    bias: str = BiasOpt,
    control: str = ControlOpt,
    digits: str = typer.Option("1-4", "--digits", help="lengths, e.g. 1-4 or 1,3"),
    top: int = Int(15, "--top", help="increased numbers per length fed into the reverse link", ge=1),
    template_control: int = Int(100, "--template-control", help="random numbers per length for the template control (the sweep reports ratios against it)", ge=1),
    style: Style = StyleOpt,
    batch_size: int = BatchOpt,
    seed: int = SeedOpt,
    output: RunOptions = RunOptions(),
    loader: ModelLoad = ModelLoad(),
) -> None:
    """Per number length: top increased numbers under the trait, their reverse-link ratios vs the template control."""
    from interp.probes.digit_length import (
        digit_length_sweep,
        parse_digit_range,
        plot_sweep,
    )
    from interp.probes.numbers import NumbersConfig
    from interp.probes.reverse_link import ReverseLinkConfig, resolve_targets

    run = output.prepare("digit-length")
    lengths = parse_digit_range(digits)
    lm = loader.load(model)
    ncfg = NumbersConfig(bias=bias, top=top, style=style, batch_size=batch_size)  # type: ignore[arg-type]
    rcfg = ReverseLinkConfig(bias=bias, control=control, style=style, template_control=template_control,  # type: ignore[arg-type]
                             seed=seed, batch_size=batch_size)
    resolve_targets(lm, rcfg)  # a bad --bias / --control fails before any work
    res = digit_length_sweep(lm, bias, control, lengths, top, ncfg, rcfg, progress=True)
    png = plot_sweep(res.table, bias)
    run.write_csv("digit_length.csv", res.table)
    run.write_csv("numbers.csv", res.numbers)
    run.write_bytes("digit_length.png", png)
    run.write_summary(inputs={"model": model, "bias": bias, "control": control, "lengths": lengths, "top": top,
                              "template_control": template_control, "style": style},
                      model=lm, seed=seed, figures={"table": res.table, **res.summary})
    rows = []
    for r in res.table.to_dict(orient="records"):
        rows.append((r["length"], r["n"], row_ci(r, "bias_ratio"), r.get("template_bias_ratio", "-"),
                     row_ci(r, "bias_ratio_vs_template"), row_ci(r, "specificity"), r["top_numbers"]))
    print_table(f"digit-length sweep: reverse link of the top {top} increased numbers (mean [95% CI])",
                ["length", "n", "bias_ratio", "template bias_ratio", "bias_ratio / template", "specificity", "top numbers"],
                rows)
    console.print(f"wrote {run.path}/digit_length.csv, numbers.csv, digit_length.png and summary.json")
