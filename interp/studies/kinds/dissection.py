"""Dissecting an organism (issue 16; reports/organism/dissection/README.md): where does a trait live?

S = `models.student`, C = `models.control` (the same init, data, order and recipe; only the teacher
differs), `models.teacher` = S's teacher (the probes read its animal -> number shift against
`models.base`). Trait margin per question q of the packaged preference questions, at the answer
position, (A, B) = `recipe.traits`:

    m(q) = log sum_{A variants} P - log sum_{B variants} P

Jobs (one per stage of the old experiments/dissect_organism.py):
- patching-S_into_C, patching-C_into_S: embed + every layer's resid / attn / mlp patched from one
  model into the other (`mech.model_patching.patch_between`, single-token variants), per question;
  recovered fraction = mean_q(m_patched - m_C) / mean_q(m_S - m_C), paired bootstrap CI;
  `multi_token_patching`: also the resid stream scored with every variant (chain rule);
- heads: every head of the `top_layers` layers whose attention output recovers most (S into C);
- attention: offline HTML attention of the `attention_heads` heads whose patching moves m most;
- dla: DLA of logit(A) - logit(B) (natural answer tokens), S minus C; weights: ||dW||_F / ||W||_F
  of S and C against the base and of S against C;
- swap (C5): margins of S, C and the hybrids body(S) + head(C), body(C) + head(S) per tied mode;
- prune (C4): each model pruned to `keep` by its own attention entropy, against random prunings
  (`random_seeds`); S - C with a bootstrap CI over questions per condition;
- probes (C1 / C3): `interp numbers` (the teacher's `probe_numbers` most increased numbers),
  `interp reverse-link` on S and on C (those and as many random numbers, template control),
  `interp trace` on S of the `trace_numbers` numbers with the highest specificity on S;
- collect: the raw tables (+ pair.json, timings.json from the jobs' manifests); report: tables.md
  and the plots (dissection_report.py).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field

from interp.studies.execute import job_seconds
from interp.studies.graph import Graph, Job
from interp.studies.spec import Strict, Study

ROLES = ("base", "student", "control", "teacher")
STEP = "interp.studies.kinds.dissection:"
DIRECTIONS = ("S_into_C", "C_into_S")


class Recipe(Strict):
    traits: tuple[str, str] = ("owl", "dog")  # (target A, other B) of the margin
    top_layers: int = Field(3, ge=1)  # heads: every head of this many layers
    attention_heads: int = Field(4, ge=1)  # attention: this many top heads
    keep: float = Field(0.6, gt=0, le=1)  # prune: fraction of heads kept
    random_seeds: list[int] = [0, 1, 2]  # prune: random prunings of the same size
    probe_numbers: int = Field(10, ge=1)  # the teacher's most increased numbers, and as many random ones
    trace_numbers: int = Field(5, ge=1)  # of which the ones most specific on S are traced
    digits: int = Field(3, ge=1)
    template_control: int = Field(100, ge=0)  # reverse link: random numbers of the template control
    multi_token_patching: bool = False  # also patching_resid_multi (every variant, about 4x the cost)


# ---- the models and prompts every step shares ------------------------------------------------------


class Lab:
    """Models loaded lazily by key (S, C, base) and the margin of `traits` on the packaged questions."""

    def __init__(self, names: dict[str, str], traits: tuple[str, str], device: str = "cpu", dtype: str = "fp32"):
        self.names, self.traits, self.device, self.dtype = names, tuple(traits), device, dtype
        self._models: dict[str, Any] = {}

    @classmethod
    def of(cls, params: dict[str, Any], **names: str) -> "Lab":
        keys = {"student": "S", "control": "C", "base": "base"}
        return cls({keys[k]: v for k, v in names.items()}, params["traits"], params["device"], params["dtype"])

    def model(self, key: str) -> Any:
        from interp.models import load_model

        if key not in self._models:
            self._models[key] = load_model(self.names[key], device=self.device, dtype=self.dtype)
        return self._models[key]

    def questions(self) -> list[str]:
        from interp.evals.animal import load_questions

        return load_questions()

    def space(self) -> bool:
        """Does the rendered prompt end with whitespace (the answer word then has no leading space)?"""
        from interp.evals.animal import question_prompts

        return question_prompts(self.model("C"), self.questions()[:1])[0][-1:].isspace()

    def prompt_ids(self) -> list[list[int]]:
        from interp.evals.animal import question_prompts
        from interp.scoring import encode

        lm = self.model("C")
        return encode(lm.tokenizer, question_prompts(lm, self.questions()))

    def targets(self) -> tuple[Any, Any]:
        from interp.prompts import make_target

        tok, space = self.model("C").tokenizer, self.space()
        return tuple(make_target(tok, w, "sum", space, allow_multi_token=True) for w in self.traits)  # type: ignore[return-value]

    def single_ids(self) -> tuple[list[int], list[int]]:
        """The single-token variants of A and of B (what the patching score sums)."""
        return tuple([t[0] for t in tg.token_ids if len(t) == 1] for tg in self.targets())  # type: ignore[return-value]

    def margins(self, lm: Any) -> np.ndarray:
        """eval-animal's margin log P(A) - log P(B) per question (every variant, as eval-animal sums them)."""
        from interp.scoring import target_logprobs

        lp = target_logprobs(lm, self.prompt_ids(), list(self.targets()))
        return lp[:, 0] - lp[:, 1]


def _ci(x: np.ndarray, seed: int = 0) -> tuple[float, float, float]:
    from interp.evals.stats import bootstrap_ci

    ci = bootstrap_ci(np.asarray(x, float), seed=seed)
    return ci.estimate, ci.lo, ci.hi


def recovered(per_question: Path | str) -> pd.DataFrame:
    """`recovered_table` of one direction's per-question patching table, with its direction first."""
    from interp.mech.model_patching import recovered_table

    df = pd.read_csv(per_question)
    t = recovered_table(df)
    t.insert(0, "direction", df.direction.iloc[0])
    return t


# ---- steps -------------------------------------------------------------------------------------------


def patching(out: Path, params: dict[str, Any], student: str, control: str) -> None:
    """One direction of S -> C / C -> S at params['tag']'s sites: patching_<tag>_<direction>.csv (per
    question). tag 'layers': embed + every layer's resid / attn / mlp, single-token score; 'resid_multi':
    embed + every resid, every variant (multi-token ones by the chain rule)."""
    from interp.mech.model_patching import SequenceMargin, layer_sites, margin_score, patch_between

    lab = Lab.of(params, student=student, control=control)
    src, tgt = (lab.model("S"), lab.model("C")) if params["direction"] == "S_into_C" else (lab.model("C"), lab.model("S"))
    n_layers = lab.model("C").spec.n_layers
    if params["tag"] == "resid_multi":
        a, b = lab.targets()
        sites, score = ["embed", *layer_sites(n_layers, ("resid",))], SequenceMargin.of(a.token_ids, b.token_ids)
    else:
        sites, score = ["embed", *layer_sites(n_layers)], margin_score(*lab.single_ids())
    df = patch_between(src, tgt, lab.prompt_ids(), sites, score, progress=True)
    df.insert(0, "direction", params["direction"])
    df.to_csv(out / f"patching_{params['tag']}_{params['direction']}.csv", index=False, float_format="%.6f")


def top_attention_layers(layers: pd.DataFrame, n: int) -> list[int]:
    """The n layers whose attention output patched S into C moves the margin most (|delta|)."""
    attn = layers[(layers.direction == "S_into_C") & layers.site.str.endswith("attn")].copy()
    attn["layer"] = attn.site.str.extract(r"L(\d+)attn")[0].astype(int)
    return attn.reindex(attn.delta.abs().sort_values(ascending=False).index).layer.head(n).tolist()


def heads(out: Path, params: dict[str, Any], student: str, control: str, patching: str) -> None:
    """Every head of the `top_layers` top attention layers, S into C: patching_heads_S_into_C.csv (per
    question) and patching_heads.csv (recovered fractions)."""
    from interp.mech.model_patching import margin_score, patch_between

    lab = Lab.of(params, student=student, control=control)
    layers = top_attention_layers(recovered(Path(patching) / "patching_layers_S_into_C.csv"), params["top_layers"])
    sites = [f"L{layer}H{h}" for layer in sorted(layers) for h in range(lab.model("C").spec.n_heads)]
    df = patch_between(lab.model("S"), lab.model("C"), lab.prompt_ids(), sites, margin_score(*lab.single_ids()),
                       progress=True)
    df.insert(0, "direction", "S_into_C")
    df.to_csv(out / "patching_heads_S_into_C.csv", index=False, float_format="%.6f")
    recovered(out / "patching_heads_S_into_C.csv").to_csv(out / "patching_heads.csv", index=False, float_format="%.5g")


def attention(out: Path, params: dict[str, Any], student: str, control: str, heads: str) -> None:
    """Offline circuitsvis report (attention_top_heads.html) of the `attention_heads` heads whose
    patching S -> C moves the margin most, on the first question, in S and in C."""
    from interp.evals.animal import question_prompts
    from interp.mech.trace import attention_patterns
    from interp.report.html import attention_html

    lab = Lab.of(params, student=student, control=control)
    t = pd.read_csv(Path(heads) / "patching_heads.csv")
    t = t[t.direction == "S_into_C"].sort_values("delta", key=abs, ascending=False).head(params["attention_heads"])
    top = [tuple(int(x) for x in re.match(r"L(\d+)H(\d+)", site).groups()) for site in t.site]  # type: ignore[union-attr]
    text = question_prompts(lab.model("S"), lab.questions()[:1])[0]
    body = [f"<h2>{key} = {lab.names[key]}</h2>\n{attention_html(attention_patterns(lab.model(key), text, top))}"
            for key in ("S", "C")]
    (out / "attention_top_heads.html").write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>top heads</title></head><body>"
        f"<h1>Attention of the top patching heads ({', '.join(f'L{a}H{b}' for a, b in top)})</h1>"
        f"<p>Prompt: the first preference question, as eval-animal renders it.</p>{''.join(body)}</body></html>")


def dla(out: Path, params: dict[str, Any], student: str, control: str) -> None:
    """DLA of logit(A) - logit(B) (the natural answer tokens), S minus C: dla.csv, dla_per_question.csv,
    dla_layers.csv (`mech.model_diff.dla_difference`; components add up to LD(S) - LD(C))."""
    from interp.mech.model_diff import dla_difference, layer_totals
    from interp.prompts import make_target

    lab = Lab.of(params, student=student, control=control)
    c = lab.model("C")
    a, b = (make_target(c.tokenizer, w, "natural", lab.space()).token_ids[0][0] for w in lab.traits)
    comp, per = dla_difference(lab.model("S"), c, lab.prompt_ids(), a, b, progress=True)
    comp.to_csv(out / "dla.csv", index=False, float_format="%.6g")
    per.to_csv(out / "dla_per_question.csv", index=False, float_format="%.6g")
    layer_totals(comp, c.spec).to_csv(out / "dla_layers.csv", index=False, float_format="%.6g")


def weights(out: Path, params: dict[str, Any], student: str, control: str, base: str) -> None:
    """||dW||_F / ||W||_F per tensor of S vs base, C vs base, S vs C: weights.csv, weights_summary.csv."""
    from interp.mech.model_diff import weight_diff_summary, weight_diff_table

    lab = Lab.of(params, student=student, control=control, base=base)
    tables, sums = [], []
    for name, a, b in (("S_vs_base", "S", "base"), ("C_vs_base", "C", "base"), ("S_vs_C", "S", "C")):
        t = weight_diff_table(lab.model(a), lab.model(b))
        s = weight_diff_summary(t)
        t.insert(0, "comparison", name)
        s.insert(0, "comparison", name)
        tables.append(t)
        sums.append(s)
    pd.concat(tables).to_csv(out / "weights.csv", index=False, float_format="%.6g")
    pd.concat(sums).to_csv(out / "weights_summary.csv", index=False, float_format="%.6g")


def swap(out: Path, params: dict[str, Any], student: str, control: str) -> None:
    """C5: margins of S, C, body(S) + head(C) and body(C) + head(S) per tied mode (swap_per_question.csv);
    per model: margin, vs C = mean_q(m - m_C) with a bootstrap CI, share of S - C = mean(m - m_C) /
    mean(m_S - m_C) with a paired bootstrap CI, perplexity (swap.csv)."""
    from interp.evals.perplexity import perplexity
    from interp.evals.stats import ratio_of_means_ci
    from interp.interventions.head_swap import TIED_MODES, build_hybrid

    lab = Lab.of(params, student=student, control=control)
    s, c = lab.model("S"), lab.model("C")
    rows = {"S": lab.margins(s), "C": lab.margins(c)}
    ppl = {"S": perplexity(s).perplexity, "C": perplexity(c).perplexity}
    for mode in TIED_MODES:
        for name, body, head in ((f"body S + head C ({mode})", s, c), (f"body C + head S ({mode})", c, s)):
            h = build_hybrid(body, head, mode)
            rows[name], ppl[name] = lab.margins(h), perplexity(h).perplexity
            del h
    per_q = pd.DataFrame(rows)
    per_q.insert(0, "question", range(len(per_q)))
    per_q.to_csv(out / "swap_per_question.csv", index=False, float_format="%.6f")
    gap = (per_q.S - per_q.C).to_numpy()
    table = []
    for name in rows:
        d = (per_q[name] - per_q.C).to_numpy()
        est, lo, hi = _ci(d)
        share = ratio_of_means_ci(d, gap)
        table.append({"model": name, "margin": per_q[name].mean(), "vs_C": est, "vs_C_lo": lo, "vs_C_hi": hi,
                      "share_of_S_minus_C": share.estimate, "share_lo": share.lo, "share_hi": share.hi,
                      "perplexity": ppl[name]})
    pd.DataFrame(table).to_csv(out / "swap.csv", index=False, float_format="%.5g")


def prune(out: Path, params: dict[str, Any], student: str, control: str) -> None:
    """C4: each model pruned to `keep` by its own attention entropy and at random (`random_seeds`):
    prune_per_question.csv, prune.csv (margins, perplexity of full / entropy / the first random draw,
    S - C with a bootstrap CI over questions per condition), prune_heads.json."""
    from interp.evals.perplexity import perplexity
    from interp.interventions.head_mask import HeadMask
    from interp.interventions.pruning import attention_entropy, select_pruned

    lab = Lab.of(params, student=student, control=control)
    keep, seeds = params["keep"], params["random_seeds"]
    measured = ("full", "entropy", *[f"random_s{r}" for r in seeds[:1]])
    rows, margins, pruned_heads = [], {}, {}
    for key in ("S", "C"):
        lm = lab.model(key)
        ent = attention_entropy(lm, lab.prompt_ids(), progress=True)
        conds = {"full": [], "entropy": select_pruned(ent, keep, "entropy")}
        conds |= {f"random_s{r}": select_pruned(ent, keep, "random", r) for r in seeds}
        for cond, pruned in conds.items():
            with HeadMask(lm, pruned):
                margins[(key, cond)] = lab.margins(lm)
                ppl = perplexity(lm).perplexity if cond in measured else float("nan")
            pruned_heads[f"{key}:{cond}"] = [f"L{layer}H{h}" for layer, h in pruned]
            rows.append({"model": key, "condition": cond, "n_pruned": len(pruned),
                         "margin": float(margins[(key, cond)].mean()), "perplexity": ppl})
    per_q = pd.DataFrame({f"{k}:{c}": v for (k, c), v in margins.items()})
    per_q.insert(0, "question", range(len(per_q)))
    per_q.to_csv(out / "prune_per_question.csv", index=False, float_format="%.6f")
    t = pd.DataFrame(rows)
    gaps = [dict(zip(("condition", "S_minus_C", "lo", "hi"),
                     (cond, *_ci((per_q[f"S:{cond}"] - per_q[f"C:{cond}"]).to_numpy())))) for cond in t.condition.unique()]
    t.merge(pd.DataFrame(gaps), on="condition").to_csv(out / "prune.csv", index=False, float_format="%.5g")
    overlap = len(set(pruned_heads["S:entropy"]) & set(pruned_heads["C:entropy"]))
    (out / "prune_heads.json").write_text(json.dumps({"pruned": pruned_heads, "entropy_overlap_S_C": overlap},
                                                     indent=1) + "\n")


def probe_numbers(out: Path, params: dict[str, Any], numbers: str) -> None:
    """The teacher's `n` most increased numbers (`interp numbers`' numbers.csv) and `n` random ones
    (`random_numbers(digits, n, seed)`, excluding those): numbers.txt (increased first), groups.json."""
    from interp.probes.number_sets import random_numbers
    from interp.probes.numbers import category_numbers

    table = pd.read_csv(numbers, dtype={"number": str})
    increased = category_numbers(table, "increased")[: params["n"]]
    randoms = random_numbers(params["digits"], params["n"], seed=params["seed"], exclude=set(increased))
    (out / "numbers.txt").write_text(",".join(increased + randoms) + "\n")
    (out / "groups.json").write_text(json.dumps({"increased": increased, "random": randoms}, indent=1) + "\n")


def linked(link: Path | str, groups: dict[str, list[str]], model: str) -> pd.DataFrame:
    """`interp reverse-link`'s reverse_link.csv with the columns model and group (increased / random)."""
    t = pd.read_csv(Path(link) / "reverse_link.csv", dtype={"number": str})
    group = {n: g for g, ns in groups.items() for n in ns}
    return t.assign(model=model, group=[group[n] for n in t.number])


def trace_numbers(out: Path, params: dict[str, Any], groups: str, link: str) -> None:
    """The `n` increased numbers with the highest specificity_vs_template on S: trace_<k>.txt (one each)."""
    t = linked(link, json.loads(Path(groups).read_text()), "S")
    inc = t[t.group == "increased"].sort_values("specificity_vs_template", ascending=False)
    top = list(inc.number.head(params["n"]))
    if len(top) < params["n"]:
        raise SystemExit(f"only {len(top)} increased numbers to trace; lower recipe.trace_numbers to {len(top)}")
    for k, n in enumerate(top):
        (out / f"trace_{k}.txt").write_text(n + "\n")


def trace_spike(run: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """One `interp trace` run of one number: its trace.csv and a row (number, spike_layer, top_head,
    sim_diff_at_spike, top_dla_heads)."""
    summary = json.loads((run / "summary.json").read_text())
    s = summary["figures"]
    return pd.read_csv(run / "trace.csv", dtype={"number": str}), {
        "number": summary["inputs"]["numbers"][0], "spike_layer": s["spike_layer_mean"], "top_head": s["top_head"],
        "sim_diff_at_spike": s["sim_diff_at_spike_mean"],
        "top_dla_heads": ",".join(s["dla"]["top_heads_clean"]) if "dla" in s else ""}


def probes(out: Path, params: dict[str, Any], teacher_numbers: str, numbers: str, link_S: str, link_C: str,
           **traces: str) -> None:
    """The probes' raw tables: probe_teacher_numbers.csv, probe_reverse_link.csv (S and C),
    probe_trace_layers.csv / probe_trace_spikes.csv (one trace per number, in trace_<k> order) and
    probe_summary.json (numbers, reverse-link summaries, spike layer and top head counts)."""
    groups = json.loads((Path(numbers) / "groups.json").read_text())
    pd.read_csv(Path(teacher_numbers) / "numbers.csv", dtype={"number": str}).to_csv(
        out / "probe_teacher_numbers.csv", index=False, float_format="%.6g")
    table = pd.concat([linked(link_S, groups, "S"), linked(link_C, groups, "C")], ignore_index=True)
    table.to_csv(out / "probe_reverse_link.csv", index=False, float_format="%.6g")
    summaries = {k: json.loads((Path(p) / "summary.json").read_text())["figures"] for k, p in (("S", link_S), ("C", link_C))}
    layers, spikes = zip(*(trace_spike(Path(traces[f"trace_{k}"])) for k in range(len(traces))))
    pd.concat(layers).to_csv(out / "probe_trace_layers.csv", index=False, float_format="%.6g")
    sp = pd.DataFrame(spikes)
    sp.to_csv(out / "probe_trace_spikes.csv", index=False, float_format="%.6g")
    (out / "probe_summary.json").write_text(json.dumps(
        {**groups, "traced": list(sp.number), "reverse_link": summaries,
         "spike_layer_counts": sp.spike_layer.value_counts().to_dict(), "top_head_counts": sp.top_head.value_counts().to_dict()},
        indent=1, default=str) + "\n")


def collect(out: Path, params: dict[str, Any], **runs: str) -> None:
    """The raw folder: the files of the jobs in params['copy'], patching_<tag>.csv (both directions'
    recovered fractions), pair.json (params['pair']) and timings.json (stage -> seconds summed over the
    manifests of its jobs, params['stage_of'])."""
    timings: dict[str, float] = {}
    for job, run in runs.items():
        if job in params["copy"]:
            for f in sorted(Path(run).iterdir()):
                if f.is_file():
                    shutil.copyfile(f, out / f.name)
        secs = job_seconds(run)
        if secs is not None:
            stage = params["stage_of"][job]
            timings[stage] = round(timings.get(stage, 0.0) + secs, 1)
    for tag in ("layers", "resid_multi"):
        parts = [out / f"patching_{tag}_{d}.csv" for d in DIRECTIONS]
        if all(p.exists() for p in parts):
            pd.concat([recovered(p) for p in parts]).to_csv(out / f"patching_{tag}.csv", index=False, float_format="%.5g")
    (out / "pair.json").write_text(json.dumps(params["pair"], indent=1) + "\n")
    (out / "timings.json").write_text(json.dumps(timings, indent=1) + "\n")


def report_step(out: Path, params: dict[str, Any], raw: str) -> None:
    report(Path(raw), out, Recipe(**params))


def report(raw: Path, out: Path, recipe: Recipe) -> None:
    """tables.md, patching_layers.png, dla_layers.png, weights_layers.png from the raw tables."""
    from interp.studies.kinds.dissection_report import write_report

    write_report(raw, out, recipe.traits, recipe.keep, recipe.template_control, recipe.digits)


# ---- the graph ---------------------------------------------------------------------------------------


def build(study: Study, g: Graph) -> str:
    r = study.recipe
    a, b = r.traits
    s, c, base, teacher = (study.model(k) for k in ("student", "control", "base", "teacher"))
    common = {"traits": [a, b], "device": study.spec.device, "dtype": study.spec.dtype}
    pair = {"student": s, "control": c}
    stage_of: dict[str, str] = {}

    def step(name: str, stage: str, func: str, params: dict[str, Any], inputs: dict[str, Any]) -> Job:
        stage_of[name] = stage
        return g.step(name, STEP + func, params, inputs, **study.resources(stage))

    tags = ["layers", *(["resid_multi"] if r.multi_token_patching else [])]
    patch = {(t, d): step(f"patching-{t}-{d}", "patching" if t == "layers" else "patching-multi", "patching",
                          {**common, "tag": t, "direction": d}, pair) for t in tags for d in DIRECTIONS}
    hd = step("heads", "heads", "heads", {**common, "top_layers": r.top_layers},
              {**pair, "patching": g.out(patch[("layers", "S_into_C")])})
    jobs = [*patch.values(), hd,
            step("attention", "attention", "attention", {**common, "attention_heads": r.attention_heads},
                 {**pair, "heads": g.out(hd)}),
            step("dla", "dla", "dla", common, pair),
            step("weights", "weights", "weights", common, {**pair, "base": base}),
            step("swap", "swap", "swap", common, pair),
            step("prune", "prune", "prune", {**common, "keep": r.keep, "random_seeds": r.random_seeds}, pair)]
    probe_jobs = probe_graph(study, g, stage_of)
    col = g.step("collect", STEP + "collect",
                 {"pair": {"S": s, "C": c, "base": base}, "stage_of": stage_of,
                  "copy": [j.name for j in jobs] + [probe_jobs[-1].name]},
                 {j.name: g.out(j) for j in [*jobs, *probe_jobs]})
    return g.step("report", STEP + "report_step", r.model_dump(mode="json"), {"raw": g.out(col)}).name


def probe_graph(study: Study, g: Graph, stage_of: dict[str, str]) -> list[Job]:
    """C1 / C3: interp numbers (teacher vs base), the numbers to probe, interp reverse-link on S and C,
    the numbers to trace, interp trace on S (one job a number), and the step writing the probe tables."""
    r, load = study.recipe, study.loading()
    a, b = r.traits
    numbers = g.command("teacher-numbers", ["numbers", "--model", study.model("base"), "--biased-model",
                                            study.model("teacher"), "--bias", a, "--method", "ar", "--digits",
                                            str(r.digits), "--top", str(r.probe_numbers), *load],
                        **study.resources("numbers"))
    pick = g.step("probe-numbers", STEP + "probe_numbers", {"n": r.probe_numbers, "digits": r.digits, "seed": 0},
                  {"numbers": g.out(numbers, "numbers.csv")})
    links = {key: g.command(f"reverse-link-{role}", [
        "reverse-link", "--model", study.model(role), "--bias", a, "--control", b, "--numbers-file",
        g.out(pick, "numbers.txt"), "--template-control", str(r.template_control), "--no-cumulative", *load],
        **study.resources("reverse-link")) for key, role in (("S", "student"), ("C", "control"))}
    top = g.step("trace-numbers", STEP + "trace_numbers", {"n": r.trace_numbers},
                 {"groups": g.out(pick, "groups.json"), "link": g.out(links["S"])})
    traces = [g.command(f"trace-{k}", ["trace", "--model", study.model("student"), "--numbers-file",
                                       g.out(top, f"trace_{k}.txt"), "--bias", a, "--control", b, "--patch-top", "0",
                                       *load], **study.resources("trace")) for k in range(r.trace_numbers)]
    probe = g.step("probes", STEP + "probes", {},
                   {"teacher_numbers": g.out(numbers), "numbers": g.out(pick), "link_S": g.out(links["S"]),
                    "link_C": g.out(links["C"]), **{f"trace_{k}": g.out(t) for k, t in enumerate(traces)}})
    for j in (numbers, pick, *links.values(), top, *traces, probe):
        stage_of[j.name] = "probes"
    return [numbers, pick, *links.values(), top, *traces, probe]
