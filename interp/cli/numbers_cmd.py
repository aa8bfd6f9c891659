"""`interp numbers`: animal -> number probe (study Phase 1)."""

from __future__ import annotations

from typing import Optional

import typer

from interp.choices import NumbersMethod, Style
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
    fmt,
    model_options,
    print_table,
    row_ci,
    run_options,
)
from interp.cli.params import Int
from interp.probes.number_sets import MAX_DIGITS


@app.command("numbers")
@run_options
@model_options(remote=True)
def numbers_command(
    model: str = ModelOpt,
    bias: str = BiasOpt,
    biased_model: Optional[str] = typer.Option(None, "--biased-model", help="compare this model on the neutral prompt instead of a trait system prompt"),
    method: NumbersMethod = typer.Option("ar", "--method", help="vocab (single digit tokens) | ar (all 10^L numbers, trie)"),
    digits: int = Int(3, "--digits", help="number length for --method ar", ge=1, le=MAX_DIGITS),
    top: int = Int(15, "--top", help="numbers per category", ge=1),
    style: Style = StyleOpt,
    then_reverse_link: bool = typer.Option(False, "--then-reverse-link", help="feed each category into the reverse link"),
    control: str = ControlOpt,
    template_control: int = Int(100, "--template-control", help="random numbers per length for the reverse link's template control", ge=0),
    batch_size: int = BatchOpt,
    seed: int = SeedOpt,
    output: RunOptions = RunOptions(),
    loader: ModelLoad = ModelLoad(),
) -> None:
    """Which numbers does the animal trait make more / less probable? P(number) neutral vs biased."""
    from interp.probes.number_sets import check_digits
    from interp.probes.numbers import (
        NumbersConfig,
        animal_numbers,
        categories_reverse_link,
    )
    from interp.probes.reverse_link import ReverseLinkConfig, resolve_targets

    run = output.prepare("numbers")
    if method == "ar":
        check_digits(digits)
    lm = loader.load(model)
    b_lm = loader.load(biased_model) if biased_model else None
    cfg = NumbersConfig(bias=bias, method=method, digits=digits, top=top, style=style,  # type: ignore[arg-type]
                        batch_size=batch_size)
    rl_cfg = ReverseLinkConfig(bias=bias, control=control, style=style, template_control=template_control,  # type: ignore[arg-type]
                               seed=seed, batch_size=batch_size)
    if then_reverse_link:
        resolve_targets(lm, rl_cfg)  # a bad --bias / --control fails before any work
    res = animal_numbers(lm, bias, cfg, biased_model=b_lm, progress=True)
    figures: dict = dict(res.summary)
    link = categories_reverse_link(lm, res, control, rl_cfg, progress=True) if then_reverse_link else None
    run.write_csv("numbers.csv", res.table)
    run.write_json("prompts.json", res.prompts)
    if link is not None:
        run.write_csv("reverse_link.csv", link.table)
        run.write_csv("categories.csv", link.per_category)
        figures["then_reverse_link"] = link.summary
    inputs = {"model": model, "biased_model": biased_model, "bias": bias, "config": cfg.__dict__,
              "then_reverse_link": then_reverse_link, "control": control, "template_control": template_control}
    run.write_summary(inputs=inputs, model=lm, models={"biased": b_lm} if b_lm else None, seed=seed, figures=figures)
    _print(res, link, bias, top)
    console.print(f"wrote {run.path}/numbers.csv" + (", reverse_link.csv, categories.csv" if link else "") + " and summary.json")


def _print(res: object, link: object, bias: str, top: int) -> None:
    s = res.summary  # type: ignore[attr-defined]
    t = res.table  # type: ignore[attr-defined]
    print_table(f"numbers ({s['method']}, {s['n_numbers']} numbers, {s['comparison']})", ["figure", "value"], [
        ("P(any listed number) neutral / biased (raw)", f"{fmt(s['mass_neutral'])} / {fmt(s['mass_biased'])}"),
        ("total variation (renormalised)", s["total_variation"]),
        ("top neutral", " ".join(s["top_neutral"][:10])),
        (f"top with {bias}", " ".join(s["top_biased"][:10])),
    ])
    cols = ["number", "p_neutral", "p_biased", "diff", "log_ratio", "rank_neutral", "rank_biased"]
    for c in ("increased", "decreased", "unchanged"):
        g = t[t.category == c]
        if c == "decreased":
            g = g.sort_values("diff")
        if len(g):
            print_table(f"{c} (top {len(g)})", cols, g[cols].head(top).itertuples(index=False))
    if link is not None:
        pc = link.per_category  # type: ignore[attr-defined]
        rows = []
        for d in pc.to_dict(orient="records"):
            rows.append((d["category"], d["n"], row_ci(d, "bias_ratio"), row_ci(d, "bias_ratio_vs_template"),
                         row_ci(d, "specificity")))
        print_table("reverse link by category (mean [95% CI])",
                    ["category", "n", "bias_ratio", "bias_ratio / template", "specificity"], rows)
        tests = link.summary["permutation_tests"]  # type: ignore[attr-defined]
        print_table("permutation tests between categories", ["pair", "bias_ratio diff (p)", "specificity diff (p)"],
                    [(k, f"{v['bias_ratio'].statistic:+.4f} (p={v['bias_ratio'].p_value:.4g})",
                      f"{v['specificity'].statistic:+.4f} (p={v['specificity'].p_value:.4g})") for k, v in tests.items()])
