"""`interp crows`: CrowS-Pairs pct_stereotype of a causal LM (summed sentence log-likelihoods)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from interp.cli.app import app
from interp.cli.bias_common import (
    BiasTypeOpt,
    DataOpt,
    LimitOpt,
    NBootOpt,
    need_data,
    print_crows,
)
from interp.cli.common import (
    BatchOpt,
    ModelLoad,
    ModelOpt,
    RunOptions,
    SeedOpt,
    console,
    model_options,
    run_options,
)


@app.command("crows")
@run_options
@model_options()
def crows_command(
    model: str = ModelOpt,
    data: Optional[Path] = DataOpt,
    bias_type: Optional[str] = BiasTypeOpt,
    limit: Optional[int] = LimitOpt,
    n_boot: int = NBootOpt,
    batch_size: int = BatchOpt,
    seed: int = SeedOpt,
    output: RunOptions = RunOptions(),
    loader: ModelLoad = ModelLoad(),
) -> None:
    """How often the model prefers the stereotypical sentence of a CrowS-Pairs pair (ideal 50%), with CIs."""
    from interp.evals.crows import load_crows, run_crows
    from interp.evals.sentence import lm_scorer

    run = output.prepare("crows")
    items = load_crows(need_data(data, "crows_pairs_anonymized.csv"), bias_type=bias_type, limit=limit)
    lm = loader.load(model)
    res = run_crows(items, lm_scorer(lm, batch_size, progress=True, description=f"CrowS-Pairs ({2 * len(items)} sentences)"),
                    n_boot=n_boot, seed=seed)
    run.write_csv("crows_pairs.csv", res.table)
    run.write_csv("crows_by_type.csv", res.by_type)
    run.write_summary(inputs={"model": model, "data": str(data), "bias_type": bias_type, "limit": limit,
                              "n_boot": n_boot, "batch_size": batch_size}, model=lm, seed=seed, figures=res.summary)
    print_crows(res.summary, res.by_type, f"CrowS-Pairs: {lm.name} (ideal 50)")
    console.print(f"wrote {run.path}/crows_pairs.csv, crows_by_type.csv and summary.json")
