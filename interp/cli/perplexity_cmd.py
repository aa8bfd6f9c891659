"""`interp perplexity`: perplexity on held-out plain English text (a model that merely broke shows here)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from interp.cli.app import app
from interp.cli.common import (
    HeldoutOpt,
    ModelLoad,
    ModelOpt,
    RunOptions,
    console,
    model_options,
    print_table,
    run_options,
)
from interp.cli.params import Int


@app.command("perplexity")
@run_options
@model_options()
def perplexity_command(
    model: str = ModelOpt,
    heldout: Optional[Path] = HeldoutOpt,
    window: int = Int(256, "--window", help="tokens per non-overlapping window", ge=2),
    batch_size: int = Int(2, "--batch-size", help="windows per forward pass", ge=1),
    output: RunOptions = RunOptions(),
    loader: ModelLoad = ModelLoad(),
) -> None:
    """exp(mean NLL) of every token after the first of each window (evals.perplexity); per-token, so
    compare models of one tokenizer only."""
    from interp.evals.perplexity import load_heldout, perplexity

    run = output.prepare("perplexity")
    text = load_heldout(heldout)
    lm = loader.load(model)
    res = perplexity(lm, text, window=window, batch_size=batch_size, progress=True)
    run.write_summary(inputs={"model": model, "heldout": str(heldout) if heldout else "packaged heldout.txt",
                              "window": window}, model=lm, figures=res.to_dict())
    print_table(f"perplexity of {model}", ["figure", "value"],
                [("perplexity", f"{res.perplexity:.3f}"), ("mean NLL (nats / token)", f"{res.nll:.4f}"),
                 ("tokens scored", res.n_tokens), ("windows", res.n_windows)])
    console.print(f"wrote {run.path}/summary.json")
