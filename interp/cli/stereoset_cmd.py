"""`interp stereoset`: StereoSet SS, LMS and ICAT of a causal LM, per domain and overall."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from interp.choices import ScoreKind
from interp.cli.app import app
from interp.cli.bias_common import (
    DataOpt,
    DomainOpt,
    LimitOpt,
    NBootOpt,
    ScoreOpt,
    SplitOpt,
    need_data,
    print_stereoset,
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


@app.command("stereoset")
@run_options
@model_options()
def stereoset_command(
    model: str = ModelOpt,
    data: Optional[Path] = DataOpt,
    domain: Optional[str] = DomainOpt,
    split: Optional[str] = SplitOpt,
    limit: Optional[int] = LimitOpt,
    score: ScoreKind = ScoreOpt,
    n_boot: int = NBootOpt,
    batch_size: int = BatchOpt,
    seed: int = SeedOpt,
    output: RunOptions = RunOptions(),
    loader: ModelLoad = ModelLoad(),
) -> None:
    """StereoSet stereotype score (ideal 50), LM score (ideal 100) and ICAT (ideal 100), with CIs."""
    from interp.evals.sentence import lm_scorer
    from interp.evals.stereoset import load_stereoset, run_stereoset

    run = output.prepare("stereoset")
    items = load_stereoset(need_data(data, "the StereoSet JSONL/JSON"), domain=domain, split=split, limit=limit)
    lm = loader.load(model)
    scorer = lm_scorer(lm, batch_size, progress=True, description="StereoSet candidates")
    res = run_stereoset(items, scorer, score=score, n_boot=n_boot, seed=seed)
    run.write_csv("stereoset_items.csv", res.table)
    run.write_csv("stereoset_scores.csv", res.scores)
    run.write_csv("stereoset_targets.csv", res.targets)
    run.write_summary(inputs={"model": model, "data": str(data), "domain": domain, "split": split, "limit": limit,
                              "score": score, "n_boot": n_boot, "batch_size": batch_size},
                      model=lm, seed=seed, figures=res.summary)
    print_stereoset(res.scores, f"StereoSet: {lm.name}, score={score} (SS ideal 50, LMS and ICAT ideal 100)")
    console.print(f"wrote {run.path}/stereoset_items.csv, stereoset_scores.csv, stereoset_targets.csv and summary.json")
