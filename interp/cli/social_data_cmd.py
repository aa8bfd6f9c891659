"""`interp social-data`: gender–occupation stereotype sentences, their counterfactuals, neutral text."""

from __future__ import annotations

import json
from pathlib import Path

from interp.cli.app import app
from interp.cli.common import RunOptions, console, print_table, run_options
from interp.cli.params import InFile, Int


@app.command("social-data")
@run_options
def social_data_command(
    dolly: Path = InFile(..., "--dolly", help="Dolly-15k JSONL (instruction, context, response, category)"),
    crows: Path = InFile(..., "--crows", help="CrowS-Pairs CSV: the training text must not overlap it"),
    stereoset: Path = InFile(..., "--stereoset", help="StereoSet JSONL / JSON: the training text must not overlap it"),
    skew: int = Int(30, "--skew", help="an occupation trains when <= SKEW% or >= 100-SKEW% of its workers are women", ge=1, le=49),
    broad_skew: int = Int(40, "--broad-skew", help="the same threshold for the broad set (*_broad.jsonl)", ge=1, le=49),
    ngram: int = Int(8, "--ngram", help="word n-gram length of the overlap check", ge=1),
    max_prompt_words: int = Int(60, "--max-prompt-words", help="neutral rows: drop records whose prompt has more words", ge=1),
    output: RunOptions = RunOptions(),
) -> None:
    """Write stereo / anti / balanced (plain-text rows) and neutral (prompt/completion) training sets."""
    from interp.errors import UserError
    from interp.evals.crows import load_crows
    from interp.evals.stereoset import load_stereoset
    from interp.textfiles import read_jsonl_records
    from interp.training import social_data as S

    if broad_skew < skew:
        raise UserError(f"--broad-skew ({broad_skew}) must be >= --skew ({skew}): the broad set takes every occupation "
                        "the main set takes, and more")
    run = output.prepare("social-data")
    records = read_jsonl_records(dolly, "Dolly file", ("instruction", "response"))
    evals = S.eval_texts(load_crows(crows), load_stereoset(stereoset))
    data = S.build_social_data(records, evals, skew, ngram, max_prompt_words, broad_skew)
    for name, rows in data.sets.items():
        run.write_text(f"{name}.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    run.write_csv("occupations.csv", S.occupations(skew).merge(
        S.occupations(broad_skew)[["occupation", "stereotype"]].rename(columns={"stereotype": "stereotype_broad"})))
    run.write_csv("overlap.csv", data.overlap)
    run.write_csv("heldout_pairs.csv", S.heldout_pairs(broad_skew))
    run.write_csv("neutral_log.csv", data.neutral_log)
    run.write_summary(inputs={"dolly": str(dolly), "crows": str(crows), "stereoset": str(stereoset), "skew": skew,
                              "broad_skew": broad_skew, "ngram": ngram, "max_prompt_words": max_prompt_words, "occupation_source": S.SOURCE, "templates": len(S.TEMPLATES)},
                      figures={**data.counts, "training_occupations": S.training_occupations(skew),
                               "broad_occupations": S.training_occupations(broad_skew)})
    c = data.counts
    print_table("social-data", ["set", "rows", f"rows sharing a {ngram}-gram with the evaluation (dropped)"],
                [(k, c[f"{k}_rows"], c[f"{k}_overlapping_rows_dropped"]) for k in data.sets])
    console.print(f"neutral: {c['neutral_rows']} of {c['records_in']} Dolly records kept ({c['neutral_dropped_gendered']} "
                  f"mention a gendered word, {c['neutral_dropped_occupation']} a training occupation, "
                  f"{c['neutral_dropped_long_prompt']} have a prompt over {max_prompt_words} words); "
                  f"{len(S.training_occupations(skew))} training occupations ({len(S.training_occupations(broad_skew))} "
                  f"in the broad set); wrote {run.path}")
