"""`interp swap-head`: LM-head swap between two models of one lineage (DESIGN.md §2.6)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from interp.choices import TiedMode
from interp.cli.app import app
from interp.cli.common import (
    BatchOpt,
    BiasOpt,
    HeldoutOpt,
    ModelLoad,
    QuestionsOpt,
    RunOptions,
    SystemOpt,
    ci,
    console,
    fmt,
    model_options,
    print_table,
    run_options,
)
from interp.cli.params import Int


@app.command("swap-head")
@run_options
@model_options()
def swap_head_command(
    body: str = typer.Option(..., "--body", help="model A (alias, folder or HF id): its body is kept in hybrid A"),
    head: str = typer.Option(..., "--head", help="model B: its LM head goes onto A's body"),
    tied: TiedMode = typer.Option("swap-both", "--tied", help="with tied embeddings: swap-both (the embedding moves with "
                             "the head) | untie (the body keeps its embedding)"),
    bias: str = BiasOpt,
    system: Optional[str] = SystemOpt,
    questions: Optional[Path] = QuestionsOpt,
    heldout: Optional[Path] = HeldoutOpt,
    top_k: int = Int(5, "--top-k", help="next tokens to list after the animal prompt", ge=1),
    batch_size: int = BatchOpt,
    output: RunOptions = RunOptions(),
    loader: ModelLoad = ModelLoad(),
) -> None:
    """Compare A, B, hybrid(A body, B head) and hybrid(B body, A head): P(bias), top-k next tokens, perplexity."""
    from interp.evals.animal import load_questions
    from interp.evals.perplexity import load_heldout
    from interp.interventions.head_swap import check_lineage, compare_swap
    from interp.interventions.measure import MeasureConfig

    run = output.prepare("swap-head")
    qs = tuple(load_questions(questions))
    text = load_heldout(heldout)
    a = loader.load(body)
    b = a if head == body else loader.load(head)
    check_lineage(a, b)
    cfg = MeasureConfig(bias=bias, system=system, questions=qs, samples=0, heldout=text, batch_size=batch_size)
    res = compare_swap(a, b, cfg, tied, top_k, progress=True)

    run.write_csv("swap.csv", res.table)
    run.write_csv("topk.csv", res.topk)
    figures = {"swap": res.swap, "prompt": res.prompt,
               "conditions": {m.condition: m.to_dict() for m in res.measurements},
               "topk": {k: g.drop(columns="model").to_dict(orient="records") for k, g in res.topk.groupby("model", sort=False)}}
    run.write_summary(inputs={"body": body, "head": head, "tied": tied, "bias": bias, "system": system,
                              "questions": str(questions) if questions else "packaged",
                              "heldout": str(heldout) if heldout else "packaged", "top_k": top_k},
                      models={"A": a, "B": b}, figures=figures)
    _print(res, bias)
    console.print(f"wrote {run.path}/swap.csv, topk.csv and summary.json")


def _print(res: Any, bias: str) -> None:
    s = res.swap
    console.print(f"tied embeddings: {s['tied_embeddings']}; --tied {s['tied_mode']}: moved {s['moved']}")
    rows = []
    for m in res.measurements:
        top = res.topk[res.topk.model == m.condition]
        rows.append((m.condition, ci(m.probability.mean), fmt(m.perplexity.perplexity),
                     ", ".join(f"{t!r} {p:.3f}" for t, p in zip(top.token, top.prob))))
    print_table("LM-head swap", ["model", f"mean P({bias}) [95% CI]", "perplexity", "top next tokens"], rows)
