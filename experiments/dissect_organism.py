"""Dissect the organism (issue 16): where does a subliminally acquired trait live? Resumable stages.

S = the organism student, C = its matched control (reports/organism/models.json: the same init, data,
order and recipe; only the teacher differs: owl LoRA teacher vs dog LoRA teacher). Trait margin per
question q of the 50 packaged preference questions, at the answer position:

    m(q) = log sum_{owl tokens} P - log sum_{dog tokens} P       (single-token variants of eval-animal)

    python experiments/dissect_organism.py --stage patching   # S -> C and C -> S, every layer's resid / attn / mlp
    python experiments/dissect_organism.py --stage patching-multi  # every layer's resid, all of eval-animal's variants
    python experiments/dissect_organism.py --stage heads      # single heads of the layers that matter
    python experiments/dissect_organism.py --stage attention  # offline HTML attention report of the top heads
    python experiments/dissect_organism.py --stage dla        # DLA of logit(" owl") - logit(" dog"), S minus C
    python experiments/dissect_organism.py --stage weights    # ||dW||_F / ||W||_F of S and C against the base
    python experiments/dissect_organism.py --stage swap       # C5: LM-head swap S <-> C
    python experiments/dissect_organism.py --stage prune      # C4: entropy pruning keep 0.6 vs random, S and C
    python experiments/dissect_organism.py --stage probes     # C1 / C3: reverse link on S and C, trace on S
    python experiments/dissect_organism.py --stage report     # tables.md, plots
    python experiments/dissect_organism.py --stage all

Every stage writes its tables under reports/organism/dissection/ and skips itself when they exist
(`--force` redoes it). A missing S or C is rebuilt by experiments/organism.py from its recipe.
Statistics: recovered fraction = mean_q(m_patched - m_C) / mean_q(m_S - m_C) (`mech.model_patching`),
95% paired bootstrap CI over questions; swap shares the same way; pruning: S - C margin with a
bootstrap CI over questions, per condition.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import units  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ORG = ROOT / "reports" / "organism"
OUT = ORG / "dissection"
STAGES = ["patching", "patching-multi", "heads", "attention", "dla", "weights", "swap", "prune", "probes", "report"]
TOP_LAYERS = 3  # heads stage: every head of the layers whose attention output recovers most
KEEP = 0.6
RANDOM_SEEDS = (0, 1, 2)
ATTENTION_HEADS = 4  # attention stage: the heads whose patching moves the margin most
PROBE_NUMBERS = 10  # probes stage: the owl teacher's 10 most increased 3-digit numbers, and 10 random ones
TRACE_NUMBERS = 5  # ... of which the 5 with the highest reverse-link specificity on S are traced


def organism_pair(arm: str, seed: int) -> tuple[str, str]:
    """(S, C) aliases of `arm`, seed: the owl-teacher student and its crossover control."""
    models = json.loads((ORG / "models.json").read_text())
    s = next((m for m in models if m["arm"] == arm and m["seed"] == seed and m["teacher"] == "owl"), None)
    if s is None:
        raise SystemExit(f"no owl-teacher student of arm {arm} seed {seed} in {ORG / 'models.json'}")
    return s["alias"], s["control"]


def ensure_models(arm: str, seed: int, aliases: tuple[str, str]) -> None:
    """Rebuild S and C from their recipe (experiments/organism.py) when the store lacks them."""
    from interp.models.store import read_meta

    if all(read_meta(a) is not None for a in aliases):
        return
    print(f"rebuilding {aliases} from the organism recipe", flush=True)
    subprocess.run([sys.executable, str(ROOT / "experiments" / "organism.py"), "--stage", "students", "--arms", arm,
                    "--seeds", str(seed)], check=True, cwd=ROOT)  # a unit missing from the store is retrained


def record_time(out: Path, stage: str, seconds: float) -> None:
    units.record_time(out, stage, seconds)


class Lab:
    """The models and prompts every stage shares (loaded once, lazily)."""

    def __init__(self, s: str, c: str, out: Path, teacher: str = "smollm2-owl-lora") -> None:
        self.names = {"S": s, "C": c, "base": "smollm2"}
        self.out = out
        self.teacher = teacher  # S's teacher (the probes stage reads its animal -> number shift)
        self.direction: str | None = None  # patching: only this direction (None: both)
        self._models: dict[str, Any] = {}

    def model(self, key: str) -> Any:
        from interp.models import load_model

        if key not in self._models:
            self._models[key] = load_model(self.names[key])
        return self._models[key]

    def questions(self) -> list[str]:
        from interp.evals.animal import load_questions

        return load_questions()

    def prompt_ids(self) -> list[list[int]]:
        from interp.evals.animal import question_prompts
        from interp.scoring import encode

        lm = self.model("C")
        return encode(lm.tokenizer, question_prompts(lm, self.questions()))

    def targets(self) -> tuple[Any, Any]:
        from interp.evals.animal import question_prompts
        from interp.prompts import make_target

        lm = self.model("C")
        space = question_prompts(lm, self.questions()[:1])[0][-1:].isspace()
        return tuple(make_target(lm.tokenizer, w, "sum", space, allow_multi_token=True) for w in ("owl", "dog"))

    def single_ids(self) -> tuple[list[int], list[int]]:
        """The single-token variants of owl and of dog (what the patching score sums)."""
        return tuple([t[0] for t in tg.token_ids if len(t) == 1] for tg in self.targets())  # type: ignore[return-value]

    def sequence_margin(self) -> Any:
        """Every variant of owl and of dog, multi-token ones by the chain rule: eval-animal's margin."""
        from interp.mech.model_patching import SequenceMargin

        owl, dog = self.targets()
        return SequenceMargin.of(owl.token_ids, dog.token_ids)

    def margins(self, lm: Any) -> np.ndarray:
        """eval-animal's margin log P(owl) - log P(dog) per question (all variants, as eval-animal sums them)."""
        from interp.scoring import target_logprobs

        lp = target_logprobs(lm, self.prompt_ids(), list(self.targets()))
        return lp[:, 0] - lp[:, 1]


def _ci(x: np.ndarray, seed: int = 0) -> tuple[float, float, float]:
    from interp.evals.stats import bootstrap_ci

    ci = bootstrap_ci(np.asarray(x, float), seed=seed)
    return ci.estimate, ci.lo, ci.hi


# ---- stages ------------------------------------------------------------------------------------------


def stage_patching(lab: Lab, sites: list[str] | None = None, tag: str = "layers",
                   directions: tuple[str, ...] = ("S_into_C", "C_into_S"), score: Any = None) -> None:
    """S -> C and C -> S at `sites` (default: embed + every layer's resid / attn / mlp), per question.

    Each direction is written as it finishes (patching_TAG_DIRECTION.csv, per question) and skipped when
    its file exists, so the two directions can run as two processes (`--direction`)."""
    from interp.mech.model_patching import layer_sites, margin_score, patch_between, recovered_table

    s, c = lab.model("S"), lab.model("C")
    sites = sites or ["embed", *layer_sites(c.spec.n_layers)]
    score = score or margin_score(*lab.single_ids())
    ids = lab.prompt_ids()
    for direction, src, tgt in (("S_into_C", s, c), ("C_into_S", c, s)):
        if direction not in directions:
            continue
        path = lab.out / f"patching_{tag}_{direction}.csv"
        if path.exists() or (lab.direction and lab.direction != direction):
            continue
        df = patch_between(src, tgt, ids, sites, score, progress=True)
        df.insert(0, "direction", direction)
        df.to_csv(path, index=False, float_format="%.6f")
    parts = [lab.out / f"patching_{tag}_{d}.csv" for d in directions]
    if all(p.exists() for p in parts):
        tables = []
        for p in parts:
            df = pd.read_csv(p)
            t = recovered_table(df)
            t.insert(0, "direction", df.direction.iloc[0])
            tables.append(t)
        pd.concat(tables).to_csv(lab.out / f"patching_{tag}.csv", index=False, float_format="%.5g")


def stage_patching_multi(lab: Lab) -> None:
    """The residual stream of every layer, scored with every variant of eval-animal (multi-token ones by
    the chain rule, one forward per prefix): the single-token score's caveat, measured."""
    from interp.mech.model_patching import layer_sites

    sites = ["embed", *layer_sites(lab.model("C").spec.n_layers, ("resid",))]
    stage_patching(lab, sites, tag="resid_multi", score=lab.sequence_margin())


def stage_heads(lab: Lab) -> None:
    """Every head of the TOP_LAYERS layers whose attention output recovers most of S's margin in C."""
    t = pd.read_csv(lab.out / "patching_layers.csv")
    attn = t[(t.direction == "S_into_C") & t.site.str.endswith("attn")].copy()
    attn["layer"] = attn.site.str.extract(r"L(\d+)attn").astype(int)
    layers = attn.reindex(attn.delta.abs().sort_values(ascending=False).index).layer.head(TOP_LAYERS).tolist()
    n_heads = lab.model("C").spec.n_heads
    sites = [f"L{layer}H{h}" for layer in sorted(layers) for h in range(n_heads)]
    stage_patching(lab, sites, tag="heads", directions=("S_into_C",))  # what carries S's trait into C


def stage_dla(lab: Lab) -> None:
    from interp.evals.animal import question_prompts
    from interp.mech.model_diff import dla_difference, layer_totals
    from interp.prompts import make_target

    c = lab.model("C")
    # the natural answer tokens at the answer position (the prompt ends with "assistant\n": 'owl', 'dog',
    # no leading space), as the reverse link resolves them
    space = question_prompts(c, lab.questions()[:1])[0][-1:].isspace()
    owl, dog = (make_target(c.tokenizer, w, "natural", space).token_ids[0][0] for w in ("owl", "dog"))
    comp, per = dla_difference(lab.model("S"), c, lab.prompt_ids(), owl, dog, progress=True)
    comp.to_csv(lab.out / "dla.csv", index=False, float_format="%.6g")
    per.to_csv(lab.out / "dla_per_question.csv", index=False, float_format="%.6g")
    layer_totals(comp, c.spec).to_csv(lab.out / "dla_layers.csv", index=False, float_format="%.6g")


def stage_weights(lab: Lab) -> None:
    from interp.mech.model_diff import weight_diff_summary, weight_diff_table

    tables, sums = [], []
    for name, a, b in (("S_vs_base", "S", "base"), ("C_vs_base", "C", "base"), ("S_vs_C", "S", "C")):
        t = weight_diff_table(lab.model(a), lab.model(b))
        t.insert(0, "comparison", name)
        tables.append(t)
        s = weight_diff_summary(t.drop(columns="comparison"))
        s.insert(0, "comparison", name)
        sums.append(s)
    pd.concat(tables).to_csv(lab.out / "weights.csv", index=False, float_format="%.6g")
    pd.concat(sums).to_csv(lab.out / "weights_summary.csv", index=False, float_format="%.6g")


def stage_swap(lab: Lab) -> None:
    """C5: margins of S, C and the hybrids body(S)+head(C), body(C)+head(S), per tied mode."""
    from interp.evals.perplexity import perplexity
    from interp.evals.stats import ratio_of_means_ci
    from interp.interventions.head_swap import TIED_MODES, build_hybrid

    s, c = lab.model("S"), lab.model("C")
    rows = {"S": lab.margins(s), "C": lab.margins(c)}
    ppl = {"S": perplexity(s).perplexity, "C": perplexity(c).perplexity}
    for mode in TIED_MODES:
        for name, body, head in ((f"body S + head C ({mode})", s, c), (f"body C + head S ({mode})", c, s)):
            h = build_hybrid(body, head, mode)
            rows[name] = lab.margins(h)
            ppl[name] = perplexity(h).perplexity
            del h
    per_q = pd.DataFrame(rows)
    per_q.insert(0, "question", range(len(per_q)))
    per_q.to_csv(lab.out / "swap_per_question.csv", index=False, float_format="%.6f")
    gap = per_q.S - per_q.C
    out = []
    for name in rows:
        d = per_q[name] - per_q.C
        est, lo, hi = _ci(d.to_numpy())
        share = ratio_of_means_ci(d.to_numpy(), gap.to_numpy())
        out.append({"model": name, "margin": per_q[name].mean(), "vs_C": est, "vs_C_lo": lo, "vs_C_hi": hi,
                    "share_of_S_minus_C": share.estimate, "share_lo": share.lo, "share_hi": share.hi, "perplexity": ppl[name]})
    pd.DataFrame(out).to_csv(lab.out / "swap.csv", index=False, float_format="%.5g")


def stage_prune(lab: Lab) -> None:
    """C4: each model pruned to KEEP by its own attention entropy, against random pruning of the same size."""
    from interp.evals.animal import question_prompts
    from interp.evals.perplexity import perplexity
    from interp.interventions.head_mask import HeadMask
    from interp.interventions.pruning import attention_entropy, select_pruned
    from interp.scoring import encode

    rows, margins, heads = [], {}, {}
    for key in ("S", "C"):
        lm = lab.model(key)
        ent = attention_entropy(lm, encode(lm.tokenizer, question_prompts(lm, lab.questions())), progress=True)
        conds = {"full": []} | {"entropy": select_pruned(ent, KEEP, "entropy")}
        conds |= {f"random_s{r}": select_pruned(ent, KEEP, "random", r) for r in RANDOM_SEEDS}
        for cond, pruned in conds.items():
            with HeadMask(lm, pruned):
                margins[(key, cond)] = lab.margins(lm)
                ppl = perplexity(lm).perplexity if cond in ("full", "entropy", "random_s0") else float("nan")
            heads[f"{key}:{cond}"] = [f"L{layer}H{h}" for layer, h in pruned]
            rows.append({"model": key, "condition": cond, "n_pruned": len(pruned),
                         "margin": float(margins[(key, cond)].mean()), "perplexity": ppl})
    per_q = pd.DataFrame({f"{k}:{c}": v for (k, c), v in margins.items()})
    per_q.insert(0, "question", range(len(per_q)))
    per_q.to_csv(lab.out / "prune_per_question.csv", index=False, float_format="%.6f")
    t = pd.DataFrame(rows)
    gaps = []
    for cond in t.condition.unique():
        est, lo, hi = _ci((per_q[f"S:{cond}"] - per_q[f"C:{cond}"]).to_numpy())
        gaps.append({"condition": cond, "S_minus_C": est, "lo": lo, "hi": hi})
    t = t.merge(pd.DataFrame(gaps), on="condition")
    t.to_csv(lab.out / "prune.csv", index=False, float_format="%.5g")
    s_e, c_e = set(heads["S:entropy"]), set(heads["C:entropy"])
    (lab.out / "prune_heads.json").write_text(json.dumps({"pruned": heads, "entropy_overlap_S_C": len(s_e & c_e)},
                                                     indent=1) + "\n")


def stage_probes(lab: Lab) -> None:
    """C1 / C3: the owl teacher's most increased 3-digit numbers (its animal -> number shift against the base,
    neutral prompt) through the template-controlled reverse link on S and on C, against random 3-digit
    numbers (the template control); then the trace on S of the numbers with the highest specificity on S."""
    from interp.mech.trace import TraceConfig, trace
    from interp.models import load_model
    from interp.probes.number_sets import random_numbers
    from interp.probes.numbers import NumbersConfig, animal_numbers
    from interp.probes.reverse_link import ReverseLinkConfig, reverse_link

    rl_path = lab.out / "probe_reverse_link.csv"
    if rl_path.exists():  # resume: the reverse links are done
        table = pd.read_csv(rl_path, dtype={"number": str})
        increased = list(dict.fromkeys(table[table.group == "increased"].number))
        randoms = list(dict.fromkeys(table[table.group == "random"].number))
        summaries = {}
    else:
        teacher = load_model(lab.teacher)
        shift = animal_numbers(lab.model("base"), "owl", NumbersConfig(method="ar", digits=3, top=PROBE_NUMBERS),
                               biased_model=teacher, progress=True)
        del teacher
        shift.table.to_csv(lab.out / "probe_teacher_numbers.csv", index=False, float_format="%.6g")
        increased = shift.category("increased")[:PROBE_NUMBERS]
        randoms = random_numbers(3, PROBE_NUMBERS, seed=0, exclude=set(increased))
        rows, summaries = [], {}
        cfg = ReverseLinkConfig(bias="owl", control="dog", template_control=100, cumulative=False)
        group = {n: "increased" for n in increased} | {n: "random" for n in randoms}
        for key in ("S", "C"):  # one call per model: the template control (100 random numbers) is scored once
            res = reverse_link(lab.model(key), increased + randoms, config=cfg, progress=True)
            rows.append(res.table.assign(model=key, group=[group[str(n).zfill(3)] for n in res.table.number]))
            summaries[key] = res.summary
        table = pd.concat(rows, ignore_index=True)
        table.to_csv(rl_path, index=False, float_format="%.6g")
    s_inc = table[(table.model == "S") & (table.group == "increased")].sort_values("specificity_vs_template",
                                                                                  ascending=False)
    top = list(s_inc.number.astype(str).str.zfill(3).head(TRACE_NUMBERS))
    # one trace per number: its own spike layer and its top head there (do they repeat across numbers?)
    spikes, layers = [], []
    for n in top:
        tr = trace(lab.model("S"), [n], TraceConfig(bias="owl", control="dog", top_k=0, attention_heads=0), progress=True)
        layers.append(tr.layers)
        spikes.append({"number": n, "spike_layer": tr.summary["spike_layer_mean"], "top_head": tr.summary["top_head"],
                       "sim_diff_at_spike": tr.summary["sim_diff_at_spike_mean"],
                       "top_dla_heads": ",".join(tr.summary["dla"]["top_heads_clean"]) if "dla" in tr.summary else ""})
    pd.concat(layers).to_csv(lab.out / "probe_trace_layers.csv", index=False, float_format="%.6g")
    sp = pd.DataFrame(spikes)
    sp.to_csv(lab.out / "probe_trace_spikes.csv", index=False, float_format="%.6g")
    (lab.out / "probe_summary.json").write_text(json.dumps(
        {"increased": increased, "random": randoms, "traced": top, "reverse_link": summaries,
         "spike_layer_counts": sp.spike_layer.value_counts().to_dict(), "top_head_counts": sp.top_head.value_counts().to_dict()},
        indent=1, default=str) + "\n")


def stage_attention(lab: Lab) -> None:
    """Offline circuitsvis report (one HTML file) of the heads whose patching S -> C moves the margin most."""
    from interp.mech.trace import attention_patterns
    from interp.report.html import attention_html

    t = pd.read_csv(lab.out / "patching_heads.csv")
    t = t[t.direction == "S_into_C"].sort_values("delta", key=abs, ascending=False).head(ATTENTION_HEADS)
    heads = [tuple(int(x) for x in re.match(r"L(\d+)H(\d+)", site).groups()) for site in t.site]
    from interp.evals.animal import question_prompts

    text = question_prompts(lab.model("S"), lab.questions()[:1])[0]
    body = []
    for key in ("S", "C"):
        att = attention_patterns(lab.model(key), text, heads)
        body.append(f"<h2>{key} = {lab.names[key]}</h2>\n{attention_html(att)}")
    html = ("<!doctype html><html><head><meta charset='utf-8'><title>top heads</title></head><body>"
            f"<h1>Attention of the top patching heads ({', '.join(f'L{a}H{b}' for a, b in heads)})</h1>"
            f"<p>Prompt: the first preference question, as eval-animal renders it.</p>{''.join(body)}</body></html>")
    (lab.out / "attention_top_heads.html").write_text(html)


STAGE_FILES = {"patching": "patching_layers.csv", "patching-multi": "patching_resid_multi.csv",
               "heads": "patching_heads.csv", "dla": "dla.csv", "weights": "weights_summary.csv", "swap": "swap.csv", "prune": "prune.csv",
               "probes": "probe_summary.json", "attention": "attention_top_heads.html"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", required=True, choices=[*STAGES, "all"])
    ap.add_argument("--arm", default="kd-unbiased-data-lora")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--force", action="store_true", help="redo a stage whose tables exist")
    ap.add_argument("--pair", default=None, help="S,C store aliases instead of the organism pair (e.g. the LoRA "
                    "teachers: a trait fine-tuned in directly)")
    ap.add_argument("--direction", choices=["S_into_C", "C_into_S"], default=None,
                    help="patching / heads: only this direction (run the two as two processes)")
    ap.add_argument("--out", type=Path, default=None, help=f"tables go here (default {OUT.relative_to(ROOT)})")
    a = ap.parse_args()
    out = a.out or OUT
    out.mkdir(parents=True, exist_ok=True)
    s, c = a.pair.split(",") if a.pair else organism_pair(a.arm, a.seed)
    (out / "pair.json").write_text(json.dumps({"S": s, "C": c, "arm": None if a.pair else a.arm,
                                               "seed": None if a.pair else a.seed, "base": "smollm2"},
                                              indent=1) + "\n")
    lab = Lab(s, c, out)
    lab.direction = a.direction
    for stage in STAGES if a.stage == "all" else [a.stage]:
        if stage == "report":
            from dissect_report import write_report  # experiments/dissect_report.py

            write_report(out)
            continue
        if (out / STAGE_FILES[stage]).exists() and not a.force:
            print(f"{stage}: done ({STAGE_FILES[stage]} exists)")
            continue
        if not a.pair:
            ensure_models(a.arm, a.seed, (s, c))
        t0 = time.perf_counter()
        globals()[f"stage_{stage.replace('-', '_')}"](lab)
        record_time(out, stage, time.perf_counter() - t0)
        print(f"{stage}: {time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
