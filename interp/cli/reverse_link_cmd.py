"""`interp reverse-link`: number -> animal probe (study Phase 2)."""

from __future__ import annotations

import typer

from interp.choices import Style, VariantPolicy
from interp.cli.app import app
from interp.cli.common import (
    BatchOpt,
    BiasOpt,
    ControlOpt,
    ModelLoad,
    ModelOpt,
    NumberSelection,
    RunOptions,
    SeedOpt,
    StyleOpt,
    ci,
    console,
    model_options,
    number_options,
    print_table,
    run_options,
)
from interp.cli.params import Int
from interp.cli.steer_opts import SteerOptions, steer_options


@app.command("reverse-link")
@run_options
@number_options(sample=200)
@model_options(remote=True)
@steer_options
def reverse_link_command(
    model: str = ModelOpt,
    bias: str = BiasOpt,
    control: str = ControlOpt,
    numbers: NumberSelection = NumberSelection(),  # --numbers, --numbers-file, --digits, --sample (default: --digits 3)
    template_control: int = Int(100, "--template-control", help="random numbers per length for the template control (0: off)", ge=0),
    policy: VariantPolicy = typer.Option("natural", "--variants", help="target variants: natural (' owl') | sum (' owl','owl',' Owl',...)"),
    style: Style = StyleOpt,
    multi_token: bool = typer.Option(False, "--multi-token", help="allow multi-token targets (joint probability)"),
    cumulative: bool = typer.Option(True, "--cumulative/--no-cumulative", help="also prime with all numbers in one prompt"),
    top: int = Int(10, "--top", help="numbers to print, by specificity", ge=1),
    batch_size: int = BatchOpt,
    seed: int = SeedOpt,
    output: RunOptions = RunOptions(),
    loader: ModelLoad = ModelLoad(),
    steering: SteerOptions = SteerOptions(),
) -> None:
    """P(bias | number-primed prompt) / P(bias | baseline), with the template control, specificity and CIs."""
    from interp.probes.reverse_link import ReverseLinkConfig, reverse_link

    steering.check()
    run = output.prepare("reverse-link")
    nums = numbers.resolve(seed, default_digits=3)
    lm = steering.apply(loader.load(model), loader.load)
    cfg = ReverseLinkConfig(bias=bias, control=control, policy=policy, style=style,  # type: ignore[arg-type]
                            template_control=template_control, cumulative=cumulative, multi_token=multi_token,
                            seed=seed, batch_size=batch_size)
    res = reverse_link(lm, nums, config=cfg, progress=True)

    run.write_csv("reverse_link.csv", res.table)
    if len(res.template):
        run.write_csv("template_control.csv", res.template)
    run.write_json("prompts.json", res.prompts)
    run.write_summary(inputs={"model": model, "bias": bias, "control": control, "numbers": nums,
                              "config": cfg.__dict__, **steering.inputs()}, model=lm, seed=seed, figures=res.summary)
    _print(res, bias, control, top)
    console.print(f"wrote {run.path}/reverse_link.csv and summary.json")


def _print(res: object, bias: str, control: str, top: int) -> None:
    s = res.summary  # type: ignore[attr-defined]
    rows = [
        (f"P({bias}) baseline", f"{s['baseline']['p_bias']:.6g}"),
        (f"P({control}) baseline", f"{s['baseline']['p_control']:.6g}"),
        ("numbers", s["n_numbers"]),
        ("mean bias_ratio [95% CI]", ci(s["bias_ratio_mean"])),
        ("mean control_ratio [95% CI]", ci(s["control_ratio_mean"])),
        ("mean specificity (log) [95% CI]", ci(s["specificity_mean"])),
    ]
    for L, t in s.get("template_control", {}).items():
        rows.append((f"template control, {L} digits (n={t['n']}) bias_ratio", ci(t["bias_ratio_mean"])))
        rows.append((f"template control, {L} digits specificity", ci(t["specificity_mean"])))
    if "bias_ratio_vs_template_mean" in s:
        rows.append(("mean bias_ratio / template [95% CI]", ci(s["bias_ratio_vs_template_mean"])))
        p = s["specificity_given_vs_template"]
        rows.append(("specificity: given vs template (perm. p)", f"diff {p.statistic:+.4f}, p={p.p_value:.4g}"))
    if "cumulative" in s:
        c = s["cumulative"]
        rows.append((f"cumulative ({len(c['numbers'])} numbers) bias / control ratio",
                     f"{c['bias_ratio']:.4f} / {c['control_ratio']:.4f}"))
    print_table("reverse link", ["figure", "value"], rows)
    t = res.table.sort_values("specificity", ascending=False).head(top)  # type: ignore[attr-defined]
    print_table(f"top {len(t)} numbers by specificity", ["number", f"P({bias})", "bias_ratio", "control_ratio", "specificity"],
                t[["number", "p_bias", "bias_ratio", "control_ratio", "specificity"]].itertuples(index=False))
