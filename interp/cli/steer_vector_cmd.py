"""`interp steer-vector`: a steering vector v[l] = mean resid_post[l] under A - under B (issue 36)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

import typer

from interp.cli.app import app
from interp.cli.common import (
    ModelLoad,
    RunOptions,
    SeedOpt,
    console,
    model_options,
    print_table,
    run_options,
)
from interp.cli.params import Int

PromptSet = Literal["numbers", "questions"]


@app.command("steer-vector")
@run_options
@model_options()
def steer_vector_command(
    a: str = typer.Option(..., "--a", help="model A (e.g. a student, or the base with --system-a)"),
    b: Optional[str] = typer.Option(None, "--b", help="model B of the same lineage (default: A itself)"),
    system_a: Optional[str] = typer.Option(None, "--system-a", help="system prompt under A"),
    system_b: Optional[str] = typer.Option(None, "--system-b", help="system prompt under B"),
    trait: Optional[str] = typer.Option(None, "--trait", help="shortcut: --system-a = the trait system prompt of this "
                                        "animal (v_teacher: prompted minus unprompted)"),
    prompts: str = typer.Option("numbers", "--prompts", help="numbers (the gen-numbers prompts) | questions (the 50 "
                                "animal questions) | a file of prompts, one per line"),
    n: int = Int(256, "--n", help="prompts (numbers: the first n of the seed's list; questions / file: at most n)", ge=1),
    positions: Literal["last", "all"] = typer.Option("last", "--positions", help="last (the last prompt token, where "
                                                     "the answer starts) | all (every prompt token)"),
    batch_size: int = Int(8, "--batch-size", help="prompts per forward pass", ge=1),
    seed: int = SeedOpt,
    output: RunOptions = RunOptions(),
    loader: ModelLoad = ModelLoad(),
) -> None:
    """v[l] = mean over prompts and positions of resid_post[l] under A minus under B; vector.pt, vector.json
    (provenance + per-layer norms beside the residual norm), norms.csv."""
    from interp.errors import UserError
    from interp.interventions.steering import extract_steering_vector

    if trait and system_a:
        raise UserError("--trait sets --system-a; give one of them")
    if b is None and not (trait or system_a or system_b):
        raise UserError("A and B are the same model with the same prompt: give --b, --trait or a --system-a / --system-b")
    texts, source = _prompts(prompts, n, seed)
    run = output.prepare("steer-vector")
    if trait:
        from interp.training.teacher import trait_system_prompt

        system_a = trait_system_prompt(trait)
    lm_a = loader.load(a)
    lm_b = lm_a if b is None or b == a else loader.load(b)
    vec = extract_steering_vector(lm_a, lm_b, texts, positions, system_a, system_b, batch_size,
                                  meta={"kind": "v_teacher" if trait else "difference", "trait": trait, "prompts": source})
    vec.save(run.path / "vector.pt")
    import pandas as pd

    table = pd.DataFrame(vec.table())
    run.write_csv("norms.csv", table)
    run.write_summary(inputs={"a": a, "b": b or a, "system_a": system_a, "system_b": system_b, "trait": trait,
                              "prompts": source, "n": len(texts), "positions": positions},
                      models={"a": lm_a, "b": lm_b}, seed=seed,
                      figures={"layers": vec.table(), "argmax_layer": int(vec.norm.argmax())})
    print_table(f"steer-vector: {a}{' + ' + repr(system_a[:30]) if system_a else ''} minus {b or a}"
                f"{' + ' + repr(system_b[:30]) if system_b else ''}", ["layer", "|v|", "mean |resid|", "|v| / |resid|"],
                [(r["layer"], f"{r['norm']:.4g}", f"{r['resid_norm']:.4g}", f"{r['ratio']:.4f}") for r in vec.table()])
    console.print(f"wrote {run.path}/vector.pt, vector.json, norms.csv, summary.json")


def _prompts(spec: str, n: int, seed: int) -> tuple[list[str], str]:
    """The prompt texts and how they were chosen."""
    from interp.errors import UserError

    if spec == "numbers":
        from interp.training.numbers_data import generate_prompts

        return generate_prompts(n, seed=seed), f"numbers (gen-numbers prompts 0..{n - 1}, seed {seed})"
    if spec == "questions":
        from interp.evals.animal import load_questions

        return load_questions()[:n], "questions (the packaged animal questions)"
    path = Path(spec)
    if not path.is_file():
        raise UserError(f"--prompts {spec!r}: numbers, questions, or a file of prompts (no such file)")
    from interp.textfiles import read_text

    lines = [ln.strip() for ln in read_text(path, "--prompts").splitlines() if ln.strip()]
    if not lines:
        raise UserError(f"--prompts {spec}: the file has no prompt")
    return lines[:n], f"file {path} ({min(n, len(lines))} of {len(lines)} lines)"
