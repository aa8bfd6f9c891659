"""The seed study's probes on one model (seed 002, DESIGN.md §2.1-2.5; issue 35 item 5), with a verdict on
each of the study's claims C1-C4. Any model: `models.base` of the spec.

    reverse-link   `interp reverse-link` of `sample` random `digits`-digit numbers (seed `seed`) plus
                   `extra_numbers` (the Owls post's "087"), template control (`template_control` random
                   numbers of each length), bias vs control animal
    numbers-vocab  `interp numbers --method vocab` (single digit tokens; owl system prompt vs none)
    numbers-ar     `interp numbers --method ar --then-reverse-link`: all 10^digits numbers by the trie, the
                   `top` increased / decreased / unchanged numbers, each category's reverse link
    digit-length   `interp digit-length` over `lengths` (`top` increased numbers a length)
    trace-<k>      `interp trace` of the `trace_numbers` numbers of the sample with the highest
                   specificity_vs_template (one job a number; DLA and patching of the top components)
    prune          the trait's lift under head masks (`prune_lift`): full, entropy pruning to `keep`,
                   random pruning of the same size (`random_seeds`)
    collect        the raw per-item tables; report: verdicts.csv, tables.md (`report`)

The claims (seed 002's conclusion; the project's numbering of issue 16, C2 = its digit-length finding):
- C1 "numbers are not specially entangled": the increased numbers' reverse link is not above the other
  categories'. Test: specificity_vs_template of increased vs decreased + unchanged (permutation).
- C2 "1-digit numbers show a stronger entanglement than longer ones": bias_ratio of the 1-digit numbers vs
  the longer ones (permutation, alpha 0.05), raw and against each length's template control; supported
  only when both are higher.
- C3 "spike layers, and re-used heads such as L0H9, L1H24, L0H23": spike layer and top head of each
  traced number; is one head top in more than half of them (re-used), are the named heads among their
  top heads or top DLA heads; a re-used head counts for the trait only where C1 found trait specificity.
- C4 "the bias survives pruning 40% of heads": trait lift = mean_q log P(bias | trait system prompt) -
  log P(bias | none) under each mask; retained = lift(pruned) / lift(full) (paired bootstrap CI over
  questions), perplexity beside it. Supported when the CI of retained lies above 0.5, contradicted when
  below; not a fair test when pruning multiplies the perplexity by more than 10; not tested when the full
  model's lift is not above 0.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field

from interp.studies.execute import job_seconds
from interp.studies.graph import Graph, Job
from interp.studies.spec import Strict, Study

ROLES = ("base",)
STEP = "interp.studies.kinds.seed_probes:"
NAMED_HEADS = ("L0H9", "L1H24", "L0H23")  # the heads seed 002 names as re-used
ALPHA = 0.05


class Recipe(Strict):
    bias: str = "owl"
    control: str = "dog"
    digits: int = Field(3, ge=1, le=4)
    sample: int = Field(200, ge=2)  # random numbers of the reverse link
    extra_numbers: list[str] = ["087"]  # also linked, reported one by one
    template_control: int = Field(100, ge=2)
    top: int = Field(10, ge=2)  # numbers per category (numbers-ar) / increased numbers a length (digit-length)
    lengths: str = "1-4"
    length_template_control: int = Field(30, ge=2)
    trace_numbers: int = Field(5, ge=1)
    keep: float = Field(0.6, gt=0, lt=1)
    random_seeds: list[int] = [0, 1, 2]
    seed: int = Field(0, ge=0)


# ---- steps -------------------------------------------------------------------------------------------


def pick_numbers(out: Path, params: dict[str, Any]) -> None:
    """numbers.txt: `sample` random numbers (none of the extras), then the extras; groups.json."""
    from interp.probes.number_sets import random_numbers

    extras = list(params["extra_numbers"])
    sample = random_numbers(params["digits"], params["sample"], seed=params["seed"], exclude=set(extras))
    (out / "numbers.txt").write_text(",".join(sample + extras) + "\n")
    (out / "groups.json").write_text(json.dumps({"sample": sample, "extra": extras}, indent=1) + "\n")


def trace_numbers(out: Path, params: dict[str, Any], groups: str, link: str) -> None:
    """trace_<k>.txt: the `n` sampled numbers with the highest specificity_vs_template, one a file."""
    sample = set(json.loads(Path(groups).read_text())["sample"])
    t = pd.read_csv(Path(link) / "reverse_link.csv", dtype={"number": str})
    top = t[t.number.isin(sample)].sort_values("specificity_vs_template", ascending=False).number.head(params["n"])
    for k, n in enumerate(top):
        (out / f"trace_{k}.txt").write_text(n + "\n")


def prune_lift(out: Path, params: dict[str, Any]) -> None:
    """prune_per_question.csv (log P(bias) with and without the trait system prompt per question and mask),
    prune_conditions.csv (per mask: n_pruned, perplexity), prune_heads.json. The entropy is scored on the
    questions with the system prompt (as `interp prune` does); the random masks draw from the same count."""
    from interp.evals.animal import bias_probability, load_questions, question_prompts
    from interp.evals.perplexity import perplexity
    from interp.interventions.head_mask import HeadMask
    from interp.interventions.pruning import attention_entropy, select_pruned
    from interp.models import load_model
    from interp.scoring import encode
    from interp.training.teacher import trait_system_prompt

    lm = load_model(params["model"], device=params["device"], dtype=params["dtype"])
    qs, system = load_questions(), trait_system_prompt(params["bias"])
    ent = attention_entropy(lm, encode(lm.tokenizer, question_prompts(lm, qs, system)), progress=True)
    masks = {"full": [], "entropy": select_pruned(ent, params["keep"], "entropy")}
    masks |= {f"random_s{r}": select_pruned(ent, params["keep"], "random", r) for r in params["random_seeds"]}
    rows, conds = [], []
    for cond, heads in masks.items():
        with HeadMask(lm, heads):
            lp = {k: np.log(bias_probability(lm, qs, params["bias"], s).table.p_target.to_numpy())
                  for k, s in (("trait", system), ("none", None))}
            ppl = perplexity(lm).perplexity
        rows.append(pd.DataFrame({"condition": cond, "question": range(len(qs)), "logp_trait": lp["trait"],
                                  "logp_none": lp["none"]}))
        conds.append({"condition": cond, "n_pruned": len(heads), "n_heads": lm.spec.n_components,
                      "keep": params["keep"], "perplexity": ppl})
        print(f"  {cond}: {len(heads)} heads pruned, lift {np.mean(lp['trait'] - lp['none']):+.3f}, ppl {ppl:.2f}",
              flush=True)
    pd.concat(rows).to_csv(out / "prune_per_question.csv", index=False, float_format="%.6f")
    pd.DataFrame(conds).to_csv(out / "prune_conditions.csv", index=False, float_format="%.6g")
    (out / "prune_heads.json").write_text(json.dumps(
        {c: [f"L{a}H{b}" for a, b in h] for c, h in masks.items()}, indent=1) + "\n")


def collect(out: Path, params: dict[str, Any], groups: str, link: str, vocab: str, ar: str, sweep: str,
            prune: str, **traces: str) -> None:
    """The raw folder: groups.json, reverse_link.csv + template_control.csv (the sample and extras),
    numbers_vocab.csv, numbers_ar.csv + categories_reverse_link.csv, digit_length.csv +
    digit_length_numbers.csv, trace_layers.csv + trace_spikes.csv (one row a traced number), the prune
    tables, model.json (params) and timings.json (job -> seconds)."""
    from interp.studies.kinds.dissection import trace_spike

    shutil.copyfile(groups, out / "groups.json")
    for src, dst in ((Path(link) / "reverse_link.csv", "reverse_link.csv"),
                     (Path(link) / "template_control.csv", "template_control.csv"),
                     (Path(vocab) / "numbers.csv", "numbers_vocab.csv"), (Path(ar) / "numbers.csv", "numbers_ar.csv"),
                     (Path(ar) / "reverse_link.csv", "categories_reverse_link.csv"),
                     (Path(sweep) / "digit_length.csv", "digit_length.csv"),
                     (Path(sweep) / "numbers.csv", "digit_length_numbers.csv"),
                     (Path(sweep) / "digit_length.png", "digit_length.png")):
        shutil.copyfile(src, out / dst)
    for f in ("prune_per_question.csv", "prune_conditions.csv", "prune_heads.json"):
        shutil.copyfile(Path(prune) / f, out / f)
    layers, spikes = zip(*(trace_spike(Path(traces[f"trace_{k}"])) for k in range(len(traces))))
    pd.concat(layers).to_csv(out / "trace_layers.csv", index=False, float_format="%.6g")
    pd.DataFrame(spikes).to_csv(out / "trace_spikes.csv", index=False, float_format="%.6g")
    runs = {"reverse-link": link, "numbers-vocab": vocab, "numbers-ar": ar, "digit-length": sweep, "prune": prune,
            **{f"trace-{k}": traces[f"trace_{k}"] for k in range(len(traces))}}
    (out / "timings.json").write_text(json.dumps({j: job_seconds(r) for j, r in runs.items()}, indent=1) + "\n")
    (out / "model.json").write_text(json.dumps(params["model"], indent=1) + "\n")


def report_step(out: Path, params: dict[str, Any], raw: str) -> None:
    """The raw tables (copied) and the report on them."""
    from interp.studies.steps import copy_files

    copy_files(raw, out)
    report(Path(raw), out, Recipe(**params))


# ---- report ------------------------------------------------------------------------------------------


def _ci(x: Any, seed: int = 0) -> tuple[float, float, float]:
    from interp.evals.stats import bootstrap_ci

    iv = bootstrap_ci(np.asarray(x, float), seed=seed)
    return iv.estimate, iv.lo, iv.hi


def _fmt(est: float, lo: float, hi: float, digits: int = 3, sign: str = "+") -> str:
    return f"{est:{sign}.{digits}f} [{lo:{sign}.{digits}f}, {hi:{sign}.{digits}f}]"


def _ratio(est: float, lo: float, hi: float) -> str:
    return _fmt(est, lo, hi, sign="")


def c1(raw: Path, recipe: Recipe) -> dict[str, Any]:
    """Increased numbers vs the other categories, specificity_vs_template (numbers-ar's reverse link)."""
    from interp.evals.stats import permutation_test

    t = pd.read_csv(raw / "categories_reverse_link.csv", dtype={"number": str})
    inc = t[t.category == "increased"].specificity_vs_template
    rest = t[t.category != "increased"].specificity_vs_template
    test = permutation_test(inc, rest, seed=recipe.seed)
    special = test.statistic > 0 and test.p_value < ALPHA and _ci(inc)[1] > 0
    return {"claim": "C1", "text": "numbers are not specially entangled",
            "verdict": "contradicted (the increased numbers are more specific)" if special else "supported (no special entanglement)",
            "number": f"specificity_vs_template, increased {_fmt(*_ci(inc))} (n={len(inc)}) vs decreased+unchanged "
                      f"{_fmt(*_ci(rest))} (n={len(rest)}): diff {test.statistic:+.3f}, permutation p = {test.p_value:.3g}",
            "job": "numbers-ar"}


def c2(raw: Path, recipe: Recipe) -> dict[str, Any]:
    """1-digit vs longer numbers' bias_ratio (raw and / template) in the digit-length sweep."""
    from interp.evals.stats import permutation_test

    t = pd.read_csv(raw / "digit_length_numbers.csv", dtype={"number": str})
    one, longer = t[t.length == 1], t[t.length > 1]
    if one.empty or longer.empty:
        return {"claim": "C2", "text": "1-digit numbers are more strongly entangled", "verdict": "not tested",
                "number": "the sweep needs length 1 and a longer one", "job": "digit-length"}
    raw_t = permutation_test(one.bias_ratio, longer.bias_ratio, seed=recipe.seed)
    tmp_t = permutation_test(one.bias_ratio_vs_template, longer.bias_ratio_vs_template, seed=recipe.seed)
    raw_yes = raw_t.statistic > 0 and raw_t.p_value < ALPHA
    tmp_yes = tmp_t.statistic > 0 and tmp_t.p_value < ALPHA
    raw_against = raw_t.statistic < 0 and raw_t.p_value < ALPHA
    verdict = ("supported" if raw_yes and tmp_yes else
               "raw ratio only: the template's, not the numbers'" if raw_yes else
               "against the template only" if tmp_yes else
               "contradicted (longer numbers are stronger)" if raw_against else f"not supported (no difference at p < {ALPHA})")
    return {"claim": "C2", "text": "1-digit numbers are more strongly entangled", "verdict": verdict,
            "number": f"bias_ratio 1-digit {one.bias_ratio.mean():.3f} (n={len(one)}) vs longer "
                      f"{longer.bias_ratio.mean():.3f} (n={len(longer)}), p = {raw_t.p_value:.3g}; / template "
                      f"{one.bias_ratio_vs_template.mean():.3f} vs {longer.bias_ratio_vs_template.mean():.3f}, "
                      f"p = {tmp_t.p_value:.3g}",
            "job": "digit-length"}


def c3(raw: Path, recipe: Recipe, c1_row: dict[str, Any]) -> dict[str, Any]:
    """Spike layers and top heads of the traced numbers: is one head top in most, are the named heads there."""
    sp = pd.read_csv(raw / "trace_spikes.csv", dtype={"number": str})
    n = len(sp)
    head, k = sp.top_head.value_counts().index[0], int(sp.top_head.value_counts().iloc[0])
    layer, kl = int(sp.spike_layer.value_counts().index[0]), int(sp.spike_layer.value_counts().iloc[0])
    named = sorted({h for h in NAMED_HEADS if (sp.top_head == h).any() or sp.top_dla_heads.fillna("").str.contains(rf"\b{h}\b").any()})
    reused = k > n / 2
    trait = c1_row["verdict"].startswith("contradicted")
    verdict = (("a re-used head, of the trait" if trait else "a re-used head, but of the template (no trait specificity, C1)")
               if reused else "contradicted (no re-used head)")
    verdict += "; named heads " + (", ".join(named) + " present" if named else "absent")
    return {"claim": "C3", "text": "spike layers and re-used heads (L0H9, L1H24, L0H23)", "verdict": verdict,
            "number": f"{n} traced numbers ({' '.join(sp.number)}): spike layer L{layer} in {kl} of {n}, top head "
                      f"{head} in {k} of {n}",
            "job": "trace-*"}


def c4(raw: Path, recipe: Recipe) -> dict[str, Any]:
    """The trait's lift under pruning, retained share with a paired bootstrap CI, perplexity beside it."""
    from interp.evals.stats import ratio_of_means_ci

    pq = pd.read_csv(raw / "prune_per_question.csv")
    cond = pd.read_csv(raw / "prune_conditions.csv").set_index("condition")
    lift = {c: (g.logp_trait - g.logp_none).to_numpy() for c, g in pq.groupby("condition", sort=False)}
    ent = ratio_of_means_ci(lift["entropy"], lift["full"])
    rand = [c for c in lift if c.startswith("random")]
    rand_share = [float(lift[c].mean() / lift["full"].mean()) for c in rand]
    ppl = cond.perplexity
    broken = ppl["entropy"] > 10 * ppl["full"]
    verdict = ("supported" if ent.lo > 0.5 else "contradicted" if ent.hi < 0.5 else "inconclusive")
    if _ci(lift["full"])[1] <= 0:
        verdict = "not tested: the full model shows no trait lift to retain"
    elif broken:
        verdict += f", and not a fair test (pruning multiplies the perplexity by {ppl['entropy'] / ppl['full']:.0f})"
    return {"claim": "C4", "text": f"the bias survives pruning {1 - recipe.keep:.0%} of heads", "verdict": verdict,
            "number": f"trait lift full {lift['full'].mean():+.3f} nats; entropy-pruned keeps {ent.estimate:.3f} "
                      f"[{ent.lo:.3f}, {ent.hi:.3f}] of it (perplexity {ppl['full']:.1f} -> {ppl['entropy']:.1f}); "
                      f"random pruning keeps {', '.join(f'{s:.2f}' for s in rand_share)} (perplexity "
                      f"{', '.join(f'{ppl[c]:.1f}' for c in rand)})",
            "job": "prune"}


def link_summary(raw: Path, recipe: Recipe) -> pd.DataFrame:
    """The reverse link of the sample against its template control, and each extra number's row with its
    rank among the sample (share of the sample it exceeds in specificity_vs_template)."""
    from interp.evals.stats import permutation_test

    groups = json.loads((raw / "groups.json").read_text())
    t = pd.read_csv(raw / "reverse_link.csv", dtype={"number": str})
    tmpl = pd.read_csv(raw / "template_control.csv", dtype={"number": str})
    s = t[t.number.isin(groups["sample"])]
    test = permutation_test(s.specificity, tmpl.specificity, seed=recipe.seed)
    rows = [{"what": f"{len(s)} random {recipe.digits}-digit numbers", "bias_ratio": _ratio(*_ci(s.bias_ratio)),
             "bias_ratio_vs_template": _ratio(*_ci(s.bias_ratio_vs_template)),
             "specificity_vs_template": _fmt(*_ci(s.specificity_vs_template)),
             "note": f"specificity vs template: diff {test.statistic:+.4f}, permutation p = {test.p_value:.3g}"},
            {"what": f"template control ({len(tmpl)} numbers)", "bias_ratio": _ratio(*_ci(tmpl.bias_ratio)),
             "bias_ratio_vs_template": "", "specificity_vs_template": "", "note": ""}]
    for n in groups["extra"]:
        r = t[t.number == n].iloc[0]
        rank = float((s.specificity_vs_template < r.specificity_vs_template).mean())
        rows.append({"what": n, "bias_ratio": f"{r.bias_ratio:.3f}", "bias_ratio_vs_template": f"{r.bias_ratio_vs_template:.3f}",
                     "specificity_vs_template": f"{r.specificity_vs_template:+.3f}",
                     "note": f"above {rank:.0%} of the sample"})
    return pd.DataFrame(rows)


def animal_to_number(raw: Path) -> pd.DataFrame:
    """Both animal -> number probes: per method, the numbers the trait made most and least probable
    (diff = P_biased - P_neutral, each renormalised over the scored set) and the total variation
    0.5 sum |diff|."""
    rows = []
    for method, f in (("vocab (single digit tokens)", "numbers_vocab.csv"), ("ar (all 3-digit numbers, trie)", "numbers_ar.csv")):
        t = pd.read_csv(raw / f, dtype={"number": str}).sort_values("diff", ascending=False)
        rows.append({"method": method, "numbers scored": len(t), "total variation": f"{0.5 * t['diff'].abs().sum():.3f}",
                     "most increased": " ".join(f"{n} ({d:+.4f})" for n, d in zip(t.number.head(5), t["diff"].head(5))),
                     "most decreased": " ".join(f"{n} ({d:+.4f})" for n, d in zip(t.number.tail(5)[::-1], t["diff"].tail(5)[::-1]))})
    return pd.DataFrame(rows)


def verdicts(raw: Path, recipe: Recipe) -> pd.DataFrame:
    first = c1(raw, recipe)
    return pd.DataFrame([first, c2(raw, recipe), c3(raw, recipe, first), c4(raw, recipe)])


def report(raw: Path, out: Path, recipe: Recipe) -> None:
    """verdicts.csv, link_summary.csv and tables.md from the raw tables alone."""
    from interp.report.tables import frame_markdown

    v, link = verdicts(raw, recipe), link_summary(raw, recipe)
    v.to_csv(out / "verdicts.csv", index=False)
    link.to_csv(out / "link_summary.csv", index=False)
    sweep = pd.read_csv(raw / "digit_length.csv")
    spikes = pd.read_csv(raw / "trace_spikes.csv", dtype={"number": str})
    cond = pd.read_csv(raw / "prune_conditions.csv")
    model = json.loads((raw / "model.json").read_text())
    parts = [f"# The seed study's probes on {model}\n",
             f"Recipe: {json.dumps(recipe.model_dump(mode='json'))}\n",
             "## Verdicts\n", frame_markdown(v[["claim", "text", "verdict", "number", "job"]]),
             "## Reverse link with the template control\n", frame_markdown(link),
             "## Animal -> number\n", frame_markdown(animal_to_number(raw)),
             "## Digit-length sweep\n", frame_markdown(sweep),
             "## Traces\n", frame_markdown(spikes),
             "## Pruning\n", frame_markdown(cond)]
    (out / "tables.md").write_text("\n".join(parts))


# ---- the graph ---------------------------------------------------------------------------------------


def build(study: Study, g: Graph) -> str:
    r: Recipe = study.recipe
    base, load = study.model("base"), study.loading()
    animals = ["--bias", r.bias, "--control", r.control]
    pick = g.step("pick-numbers", STEP + "pick_numbers",
                  {"digits": r.digits, "sample": r.sample, "extra_numbers": r.extra_numbers, "seed": r.seed})
    link = g.command("reverse-link", ["reverse-link", "--model", base, *animals, "--numbers-file",
                                      g.out(pick, "numbers.txt"), "--template-control", str(r.template_control),
                                      "--seed", str(r.seed), *load], **study.resources("reverse-link"))
    vocab = g.command("numbers-vocab", ["numbers", "--model", base, "--bias", r.bias, "--method", "vocab", "--top",
                                        str(r.top), *load], **study.resources("numbers"))
    ar = g.command("numbers-ar", ["numbers", "--model", base, *animals, "--method", "ar", "--digits", str(r.digits),
                                  "--top", str(r.top), "--then-reverse-link", "--template-control",
                                  str(r.template_control), "--seed", str(r.seed), *load], **study.resources("numbers"))
    sweep = g.command("digit-length", ["digit-length", "--model", base, *animals, "--digits", r.lengths, "--top",
                                       str(r.top), "--template-control", str(r.length_template_control), "--seed",
                                       str(r.seed), *load], **study.resources("digit-length"))
    top = g.step("trace-numbers", STEP + "trace_numbers", {"n": r.trace_numbers},
                 {"groups": g.out(pick, "groups.json"), "link": g.out(link)})
    traces: list[Job] = [g.command(f"trace-{k}", ["trace", "--model", base, "--numbers-file", g.out(top, f"trace_{k}.txt"),
                                                  *animals, *load], **study.resources("trace"))
                         for k in range(r.trace_numbers)]
    prune = g.step("prune", STEP + "prune_lift",
                   {"model": base, "device": study.spec.device, "dtype": study.spec.dtype, "bias": r.bias,
                    "keep": r.keep, "random_seeds": r.random_seeds}, **study.resources("prune"))
    col = g.step("collect", STEP + "collect", {"model": base},
                 {"groups": g.out(pick, "groups.json"), "link": g.out(link), "vocab": g.out(vocab), "ar": g.out(ar),
                  "sweep": g.out(sweep), "prune": g.out(prune), **{f"trace_{k}": g.out(t) for k, t in enumerate(traces)}})
    return g.step("report", STEP + "report_step", r.model_dump(mode="json"), {"raw": g.out(col)}).name
