"""`interp compare`: several models on the same bias-benchmark items, paired against the first."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Optional

import typer

from interp.choices import Bench, ScoreKind
from interp.cli.app import app
from interp.cli.bias_common import (
    BiasTypeOpt,
    DataOpt,
    DomainOpt,
    LimitOpt,
    NBootOpt,
    ScoreOpt,
    SplitOpt,
    need_data,
    print_compare,
)
from interp.cli.common import (
    BatchOpt,
    ModelLoad,
    RunOptions,
    SeedOpt,
    console,
    model_options,
    refuse_given,
    run_options,
)


@app.command("compare")
@run_options
@model_options()
def compare_command(
    models: str = typer.Option(..., "--models", help="comma-separated models; the first is the reference, e.g. base,student,control"),
    bench: Bench = typer.Option("crows", "--bench", help="crows | stereoset"),
    data: Optional[Path] = DataOpt,
    bias_type: Optional[str] = BiasTypeOpt,
    domain: Optional[str] = DomainOpt,
    split: Optional[str] = SplitOpt,
    score: ScoreKind = ScoreOpt,
    limit: Optional[int] = LimitOpt,
    n_boot: int = NBootOpt,
    batch_size: int = BatchOpt,
    seed: int = SeedOpt,
    output: RunOptions = RunOptions(),
    loader: ModelLoad = ModelLoad(),
) -> None:
    """One table: each model's bias scores, deltas against the first model, and paired p-values."""
    from interp.errors import UserError
    from interp.evals.compare import compare_tables
    from interp.evals.crows import crows_table, load_crows
    from interp.evals.sentence import lm_scorer
    from interp.evals.stereoset import load_stereoset, stereoset_table

    run = output.prepare("compare")
    names = [m.strip() for m in models.split(",") if m.strip()]
    if len(names) < 2:
        raise UserError("--models needs at least two comma-separated models (the first is the reference)")
    if len(set(names)) != len(names):
        raise UserError("--models lists a model twice")
    if bench == "crows":
        refuse_given(["score"], "--score chooses the StereoSet candidate score; CrowS-Pairs sums every token")
        if domain or split:
            raise UserError("--domain / --split are StereoSet options; with --bench crows use --bias-type")
        items = load_crows(need_data(data, "crows_pairs_anonymized.csv"), bias_type=bias_type, limit=limit)
    else:
        if bias_type:
            raise UserError("--bias-type is a CrowS-Pairs option; with --bench stereoset use --domain")
        items = load_stereoset(need_data(data, "the StereoSet JSONL/JSON"), domain=domain, split=split, limit=limit)

    tables: dict[str, Any] = {}
    identities: dict[str, Any] = {}
    for name in names:
        lm = loader.load(name)
        scorer = lm_scorer(lm, batch_size, progress=True, description=f"{bench}: {name}")
        tables[name] = crows_table(items, scorer) if bench == "crows" else stereoset_table(items, scorer, score)
        ident = lm.identity()
        identities[name] = SimpleNamespace(identity=lambda d=ident: d)
        del lm  # one model in memory at a time
    df = compare_tables(tables, bench, n_boot=n_boot, seed=seed)

    run.write_csv("compare.csv", df)
    for name, t in tables.items():
        run.write_csv(f"items_{_safe(name)}.csv", t)
    run.write_summary(inputs={"models": names, "bench": bench, "data": str(data), "bias_type": bias_type,
                              "domain": domain, "split": split, "score": score if bench == "stereoset" else None,
                              "limit": limit, "n_boot": n_boot, "batch_size": batch_size},
                      models=identities, seed=seed, figures={"reference": names[0], "rows": df.to_dict(orient="records")})
    print_compare(df, bench, f"{bench}: {len(items)} items, paired against {names[0]}")
    console.print(f"wrote {run.path}/compare.csv, items_<model>.csv and summary.json")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "model"
