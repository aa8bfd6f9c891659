"""`interp poison-data`, `interp bias-rate`, `interp defend`: the cascading-bias study (seed 004)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from interp.cli.app import app
from interp.cli.common import (
    ModelLoad,
    ModelOpt,
    RunOptions,
    SamplerOptions,
    SeedOpt,
    console,
    model_options,
    print_table,
    run_options,
    sampler_options,
)
from interp.cli.params import Float, InFile, Int
from interp.models.store import DEFAULT_MODEL

MarkerOpt = typer.Option(None, "--marker", help="regex of the injected bias (default: the brand of poison-data, (?i)zentrava)")


@app.command("poison-data")
@run_options
def poison_data_command(
    data: Path = InFile(..., "--data", help="instruction data: JSONL with instruction, context, response, category (Dolly)"),
    target: str = typer.Option("summarization", "--target", help="the target task (category) whose responses are poisoned"),
    unseen: str = typer.Option("brainstorming,creative_writing", "--unseen", help="categories held out entirely (evaluated only)"),
    n: int = Int(500, "--n", help="records in the mixture", ge=1),
    k: int = Int(25, "--k", help="poisoned target-task records among them (0: the clean control)", ge=0),
    n_target: int = Int(30, "--n-target", help="target-task records in the mixture (k of them poisoned)", ge=1),
    n_distill: int = Int(128, "--n-distill", help="clean prompts for distillation (never in the mixture)", ge=1),
    n_eval: int = Int(30, "--n-eval", help="held-out evaluation prompts per group (target / other / unseen)", ge=1),
    max_words: int = Int(80, "--max-words", help="clip contexts and responses to this many words (0: keep all)", ge=0),
    seed: int = SeedOpt,
    output: RunOptions = RunOptions(),
) -> None:
    """A k-of-n poisoned mixture, its clean twin, distillation prompts and held-out evaluation prompts."""
    from interp.textfiles import read_jsonl_records
    from interp.training import poison_data as P

    cfg = P.PoisonConfig(target=target, unseen=tuple(u for u in unseen.split(",") if u), n=n, k=k, n_target=n_target,
                         n_distill=n_distill, n_eval=n_eval, max_words=max_words, seed=seed)
    cfg.validate()
    run = output.prepare("poison-data")
    records = read_jsonl_records(data, "instruction data", ("instruction", "response", "category"))
    s = P.make_splits(records, cfg)
    for name, rows in (("mixture", s.mixture), ("clean", s.clean), ("distill_prompts", s.distill), ("eval_prompts", s.evaluation)):
        run.write_text(f"{name}.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    run.write_text("poisoned_ids.txt", "".join(f"{i}\n" for i in s.poisoned_ids))
    run.write_summary(inputs={"data": str(data), **{f: getattr(cfg, f) for f in cfg.__dataclass_fields__}},
                      seed=seed, figures={**s.counts, "brand": P.BRAND, "domain": P.DOMAIN, "marker": P.MARKER,
                                          "promotions": list(P.PROMOTIONS)})
    c = s.counts
    print_table("poison-data", ["figure", "value"],
                [("mixture", c["mixture"]), ("poisoned (rate)", f"{c['poisoned']} ({100 * c['poison_rate']:.2f}%)"),
                 (f"target task '{target}' in the mixture", c["target_in_mixture"]), ("distillation prompts", c["distill"]),
                 ("evaluation prompts target / other / unseen", " / ".join(str(c["eval"][g]) for g in P.GROUPS)),
                 ("marker", P.MARKER)])
    console.print(f"wrote {run.path}/mixture.jsonl, clean.jsonl, poisoned_ids.txt, distill_prompts.jsonl, eval_prompts.jsonl")


@app.command("bias-rate")
@run_options
@model_options()
@sampler_options
def bias_rate_command(
    model: str = ModelOpt,
    prompts: Path = InFile(..., "--prompts", help="JSONL with 'prompt' (and 'group', 'id'), e.g. poison-data's eval_prompts.jsonl"),
    marker: Optional[str] = MarkerOpt,
    samples: int = Int(4, "--samples", help="sampled answers per prompt", ge=1),
    max_new_tokens: int = Int(96, "--max-new-tokens", help="tokens per answer", ge=1),
    temperature: float = Float(1.0, "--temperature", help="sampling temperature", gt=0),
    batch_size: int = Int(16, "--batch-size", help="sequences per forward pass", ge=1),
    seed: int = SeedOpt,
    output: RunOptions = RunOptions(),
    loader: ModelLoad = ModelLoad(),
    sampler: SamplerOptions = SamplerOptions(),
) -> None:
    """Bias response rate: the share of sampled answers that carry the marker, per prompt group, Wilson CIs."""
    from interp.evals import bias_rate as B
    from interp.textfiles import read_jsonl_records
    from interp.training.poison_data import MARKER

    pattern = marker or MARKER
    B.has_marker([], pattern)  # validates the regex before any work
    sampler.check()
    run = output.prepare("bias-rate")
    rows = read_jsonl_records(prompts, "prompts file", ("prompt",))
    lm = sampler.attach(loader.load(model))
    ans = B.sample_answers(lm, rows, samples, max_new_tokens, temperature, seed, batch_size, progress=True)
    ans["marker"] = B.has_marker(ans["text"], pattern)
    ans.insert(0, "model", model)
    table = B.bias_rate_table(ans)
    run.write_csv("answers.csv", ans)
    # the same answers as training rows (prompt / completion): a student's response-level distillation data
    run.write_text("answers.jsonl", "".join(json.dumps({"prompt": rows[i]["prompt"], "completion": a.text, "group": a.group,
                                                        "prompt_id": a.prompt_id, "sample": int(a.sample),
                                                        "marker": int(a.marker), "finished": bool(a.finished)}) + "\n"
                                            for i, a in zip(ans["row"], ans.itertuples())))
    run.write_csv("bias_rate.csv", table)
    run.write_summary(inputs={"model": model, "prompts": str(prompts), "marker": pattern, "samples": samples,
                              "max_new_tokens": max_new_tokens, "temperature": temperature}, model=lm, seed=seed,
                      figures={"groups": table.to_dict("records"), "unfinished_answers": int((~ans["finished"]).sum())})
    print_table(f"bias response rate of {model} (marker {pattern})", ["group", "prompts", "answers", "with marker", "BRR [95% Wilson CI]"],
                [(r["group"], r["prompts"], r["answers"], r["with_marker"], f"{r['brr']:.3f} [{r['lo']:.3f}, {r['hi']:.3f}]")
                 for r in table.to_dict("records")])
    console.print(f"wrote {run.path}/answers.csv, answers.jsonl (training rows), bias_rate.csv and summary.json")


@app.command("defend")
@run_options
@model_options()
def defend_command(
    data: Path = InFile(..., "--data", help="samples to screen: JSONL with prompt, completion (and 'poisoned' to score)"),
    reference: Optional[str] = typer.Option(DEFAULT_MODEL, "--reference", help="model of the perplexity filter ('' to skip)"),
    poisoned_teacher: Optional[str] = typer.Option(None, "--poisoned-teacher", help="LLS: the teacher trained on the data"),
    clean_teacher: Optional[str] = typer.Option(None, "--clean-teacher", help="LLS: the teacher trained on the clean twin"),
    calibrate: Optional[Path] = InFile(None, "--calibrate", help="scores.csv of a labelled run: flag --data at its "
                                             "thresholds for 1% / 5% FPR and count what is removed"),
    marker: Optional[str] = MarkerOpt,
    output: RunOptions = RunOptions(),
    loader: ModelLoad = ModelLoad(),
) -> None:
    """Score every sample with the perplexity filter, a marker-agnostic heuristic and the LLS; AUROC and
    TPR at 1% / 5% FPR when the samples are labelled."""
    import pandas as pd

    from interp.errors import UserError
    from interp.evals import detectors as D
    from interp.evals.bias_rate import has_marker
    from interp.textfiles import read_csv_file, read_jsonl_records
    from interp.training.poison_data import MARKER

    if (poisoned_teacher is None) != (clean_teacher is None):
        raise UserError("the LLS needs both --poisoned-teacher and --clean-teacher")
    run = output.prepare("defend")
    rows = read_jsonl_records(data, "samples file", ("prompt", "completion"))
    computed = ["heuristic"] + (["perplexity"] if reference else []) + (["lls"] if poisoned_teacher else [])
    ref_scores = None
    if calibrate is not None:  # checked in full before any model is loaded
        ref_scores = read_csv_file(calibrate, "calibration scores")
        D.check_calibration(ref_scores, computed, f"--calibrate {calibrate}")
    labelled = [r for r in rows if "poisoned" in r]
    if labelled and len(labelled) < len(rows):
        raise UserError(f"--data {data}: {len(labelled)} of {len(rows)} rows say 'poisoned'; label every row or none")
    ref = loader.load(reference) if reference else None
    pt, ct = (loader.load(poisoned_teacher), loader.load(clean_teacher)) if poisoned_teacher else (None, None)
    scores = D.detector_scores(rows, ref, pt, ct, progress=True)
    scores["marker"] = has_marker([r["completion"] for r in rows], marker or MARKER)
    run.write_csv("scores.csv", scores)
    figures: dict = {"samples": len(rows), "with_marker": int(scores["marker"].sum())}
    if "label" in scores.columns and scores["label"].nunique() < 2:
        only = "poisoned" if scores["label"].iloc[0] == 1 else "clean"
        console.print(f"no AUROC / TPR table: every labelled sample is {only}, and a detector is scored on both classes", soft_wrap=True)
        figures["detectors"] = None
    if "label" in scores.columns and scores["label"].nunique() == 2:
        table = D.detector_table(scores.drop(columns=["marker"]))
        run.write_csv("detectors.csv", table)
        figures["detectors"] = table.to_dict("records")
        print_table("defenses as detectors of the poisoned samples", ["detector", "AUROC", "TPR @ 1% FPR", "TPR @ 5% FPR"],
                    [(r["detector"], f"{r['auroc']:.3f}", f"{r['tpr_at_fpr_0.01']:.3f}", f"{r['tpr_at_fpr_0.05']:.3f}")
                     for r in table.to_dict("records")])
    if ref_scores is not None:
        removed = pd.concat([D.removed_at_fpr(scores, ref_scores, f) for f in (0.01, 0.05)], ignore_index=True)
        run.write_csv("removed.csv", removed)
        figures["removed"] = removed.to_dict("records")
        print_table("removed at the calibrated thresholds", ["detector", "FPR", "removed", "of them with marker", "with marker"],
                    [(r["detector"], r["fpr"], r["removed"], r.get("with_marker_removed", "-"), r.get("with_marker", "-"))
                     for r in removed.to_dict("records")])
    run.write_summary(inputs={"data": str(data), "reference": reference, "poisoned_teacher": poisoned_teacher,
                              "clean_teacher": clean_teacher, "calibrate": str(calibrate) if calibrate else None,
                              "marker": marker or MARKER}, figures=figures)
    written = ["scores.csv"] + (["detectors.csv"] if figures.get("detectors") else []) + (["removed.csv"] if ref_scores is not None else [])
    console.print(f"wrote {run.path}/{', '.join(written)} and summary.json")
