"""`interp mark-divergence`: mark the divergence tokens of prompt/completion data (for --loss-mask)."""

from __future__ import annotations

from pathlib import Path

import typer

from interp.cli.app import app
from interp.cli.common import (
    BatchOpt,
    ModelLoad,
    RunOptions,
    console,
    model_options,
    print_table,
    run_options,
)
from interp.cli.training_opts import DataOpt


@app.command("mark-divergence")
@run_options
@model_options()
def mark_divergence_command(
    models: str = typer.Option(..., "--models", help="comma-separated teachers, e.g. smollm2-owl,smollm2-dog"),
    data: Path = DataOpt,
    batch_size: int = BatchOpt,
    output: RunOptions = RunOptions(),
    loader: ModelLoad = ModelLoad(),
) -> None:
    """Completion tokens where the MODELS' argmax next tokens differ; writes OUT/marked.jsonl."""
    import json

    from interp.errors import UserError
    from interp.training.divergence import divergence_marks, mark_rows
    from interp.training.examples import read_jsonl

    names = [m.strip() for m in models.split(",") if m.strip()]
    if len(names) < 2 or len(set(names)) != len(names):
        raise UserError("--models needs at least two different aliases, e.g. smollm2-owl,smollm2-dog")
    run = output.prepare("mark-divergence")
    rows = read_jsonl(data)
    lms = [loader.load(n) for n in names]
    marks = divergence_marks(lms, rows, batch_size=batch_size, progress=True)
    marked = mark_rows(rows, marks, names)
    run.write_text("marked.jsonl", "".join(json.dumps(r) + "\n" for r in marked))
    n_div = sum(len(d) for d in marks.divergent)
    figures = {"rows": len(rows), "completion_tokens": sum(marks.n_tokens), "divergent_tokens": n_div,
               "divergent_share": marks.share, "rows_with_divergent": sum(1 for d in marks.divergent if d),
               "rows_all_divergent": sum(1 for d, n in zip(marks.divergent, marks.n_tokens) if len(d) == n)}
    run.write_summary(inputs={"models": names, "data": str(data), "batch_size": batch_size},
                      models={f"model_{i}": lm for i, lm in enumerate(lms)}, figures=figures)
    print_table("mark-divergence", ["figure", "value"], [(k, v) for k, v in figures.items()])
    console.print(f"wrote {run.path}/marked.jsonl (fields divergent, n_completion_tokens), summary.json")
