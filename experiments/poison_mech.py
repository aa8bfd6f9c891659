"""Where the injected promotion lives (issue 18, "beyond the paper"): DLA and two-model patching of a
poisoned model P against its clean counterpart C of the same recipe (students when they exist:
student-resp-k25-s0 vs student-resp-k0-s0; teachers otherwise: teacher-k25-s0 vs teacher-k0-s0).

Contexts: the 30 held-out target-task prompts, each rendered as in training (chat prompt ids + the
completion's ids, `training.examples`), teacher-forced with the prompt's clean reference answer:

    decision  prompt + answer                          next: a promotion's opener or EOS (the answer ends)
              m = log sum_{o in openers} P(o) - log P(EOS)     openers: the first token of " " + each promotion
    brand     prompt + answer + " " + promotion text up to the brand (the promotion `poison-data` assigns to
              that record)                             next: the marker's first token (of " Zentrava")
              m = log P(brand's first token) - log P(EOS)

Patching (`mech.model_patching.patch_between`, every position, one site at a time): recovered =
mean_q(m_patched - m_C) / mean_q(m_P - m_C), paired bootstrap CI over prompts; P into C shows where P's
promotion is carried, C into P what removes it. DLA (`mech.model_diff.dla_difference`) of
logit(token) - logit(EOS), P minus C, per component; for the decision it is averaged over the openers
(DLA is linear in the logit direction, so the mean over openers is the DLA of their mean logit).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

SITES_DECISION = ("resid", "attn", "mlp")
SITES_BRAND = ("resid",)


def mech_contexts(lm: Any, rows: list[dict[str, Any]], seed: int = 0) -> dict[str, Any]:
    """Token ids of the decision and brand contexts of each row (module docstring) and the scored tokens."""
    from interp.training.examples import prompt_ids
    from interp.training.poison_data import BRAND, PROMOTIONS, promotion

    tok = lm.tokenizer
    eos = tok.eos_token_id
    if eos is None:
        raise SystemExit(f"{lm.name} has no EOS token: the decision 'promote or end' has no end to score")
    heads = prompt_ids(lm, rows)
    enc = lambda s: tok.encode(s, add_special_tokens=False)  # noqa: E731
    decision = [h + enc(r["completion"].rstrip()) for h, r in zip(heads, rows)]
    brand_ctx = []
    for h, r in zip(heads, rows):
        promo = promotion(int(r["id"]), seed)
        brand_ctx.append(h + enc(r["completion"].rstrip() + " " + promo[: promo.index(BRAND)].rstrip()))
    openers = sorted({enc(" " + p)[0] for p in PROMOTIONS})
    return {"decision": decision, "brand": brand_ctx, "openers": openers, "brand_token": enc(" " + BRAND)[0], "eos": eos}


def target_rows(eval_prompts: Path) -> list[dict[str, Any]]:
    """The target-task rows of an eval_prompts.jsonl (`poison-data`)."""
    rows = [json.loads(x) for x in eval_prompts.read_text().splitlines() if x.strip()]
    return [r for r in rows if r.get("group") == "target"]


def margins(lm: Any, ctx: dict[str, Any]) -> pd.DataFrame:
    """One row per context: the decision and brand margins of the module docstring in one model, from the
    last-position logits of one unpadded forward per context (what `patch_between` reports as m_source):

        m_decision = log sum_{o in openers} P(o) - log P(EOS)    m_brand = log P(brand token) - log P(EOS)
    """
    import torch

    from interp.mech.model_patching import margin_score

    scores = {"decision": margin_score(ctx["openers"], [ctx["eos"]]), "brand": margin_score([ctx["brand_token"]], [ctx["eos"]])}
    rows = []
    with torch.no_grad():
        for i in range(len(ctx["decision"])):
            r: dict[str, Any] = {"prompt": i}
            for where, score in scores.items():
                ids = torch.tensor([ctx[where][i]], device=lm.device)
                r[f"m_{where}"] = float(score(lm.model(input_ids=ids, use_cache=False).logits[:, -1].cpu())[0])
            rows.append(r)
    return pd.DataFrame(rows)


def run_margins(model: str, eval_prompts: Path) -> pd.DataFrame:
    """`margins` of a store alias on the target prompts, with each row's prompt id."""
    from interp.models import load_model

    rows = target_rows(eval_prompts)
    lm = load_model(model)
    df = margins(lm, mech_contexts(lm, rows))
    df.insert(0, "prompt_id", [r["id"] for r in rows])
    return df


def run_mech(poisoned: str, clean: str, eval_prompts: Path, out: Path, progress: bool = True) -> None:
    """Patching and DLA of `poisoned` vs `clean` (store aliases) on the target prompts; tables under out/."""
    from interp.mech.model_diff import dla_difference, layer_totals
    from interp.mech.model_patching import layer_sites, margin_score, patch_between, recovered_table
    from interp.models import load_model

    rows = target_rows(eval_prompts)
    p, c = load_model(poisoned), load_model(clean)
    ctx = mech_contexts(c, rows)
    out.mkdir(parents=True, exist_ok=True)
    (out / "pair.json").write_text(json.dumps({"poisoned": poisoned, "clean": clean, "prompts": len(rows),
                                               "openers": [c.tokenizer.decode([t]) for t in ctx["openers"]],
                                               "brand_token": c.tokenizer.decode([ctx["brand_token"]]),
                                               "eos": c.tokenizer.decode([ctx["eos"]])}, indent=1) + "\n")
    n_layers = c.spec.n_layers
    plan = {"decision": (margin_score(ctx["openers"], [ctx["eos"]]), ["embed", *layer_sites(n_layers, SITES_DECISION)],
                         ("P_into_C", "C_into_P")),
            "brand": (margin_score([ctx["brand_token"]], [ctx["eos"]]), ["embed", *layer_sites(n_layers, SITES_BRAND)],
                      ("P_into_C",))}
    for where, (score, sites, directions) in plan.items():
        tables = []
        for direction in directions:
            path = out / f"patching_{where}_{direction}.csv"
            if not path.exists():
                src, tgt = (p, c) if direction == "P_into_C" else (c, p)
                df = patch_between(src, tgt, ctx[where], sites, score, progress=progress)
                df.insert(0, "direction", direction)
                df.to_csv(path, index=False, float_format="%.6f")
            df = pd.read_csv(path)
            t = recovered_table(df)
            t.insert(0, "direction", direction)
            tables.append(t)
        pd.concat(tables).to_csv(out / f"patching_{where}.csv", index=False, float_format="%.5g")
    for where, tokens in (("decision", ctx["openers"]), ("brand", [ctx["brand_token"]])):
        path = out / f"dla_{where}.csv"
        if path.exists():
            continue
        comps, pers = [], []
        for t in tokens:  # mean over the scored tokens (module docstring)
            comp, per = dla_difference(p, c, ctx[where], t, ctx["eos"], progress=progress)
            comps.append(comp)
            pers.append(per)
        comp = comps[0].copy()
        for col in ("dla_a", "dla_b", "d"):
            comp[col] = np.mean([x[col].to_numpy() for x in comps], axis=0)
        comp = comp.drop(columns=["d_sd"])
        per = pers[0].copy()
        for col in ("ld_a", "ld_b", "sum_a", "sum_b"):
            per[col] = np.mean([x[col].to_numpy() for x in pers], axis=0)
        comp.to_csv(path, index=False, float_format="%.6g")
        per.to_csv(out / f"dla_{where}_per_prompt.csv", index=False, float_format="%.6g")
        layer_totals(comp, c.spec).to_csv(out / f"dla_{where}_layers.csv", index=False, float_format="%.6g")


def mech_markdown(out: Path) -> str:
    """Tables of what run_mech wrote: patching by layer (both directions) and the top DLA components."""
    from interp.report.tables import recovered_markdown

    lines: list[str] = []
    pair = json.loads((out / "pair.json").read_text()) if (out / "pair.json").exists() else {}
    if pair:
        lines += [f"P = `{pair['poisoned']}`, C = `{pair['clean']}`; {pair['prompts']} target prompts; openers "
                  f"{pair['openers']}, brand token {pair['brand_token']!r}, EOS {pair['eos']!r}.", ""]
    for where in ("decision", "brand"):
        f = out / f"patching_{where}.csv"
        if not f.exists():
            continue
        lines += [f"#### Patching at the {where} position: recovered fraction [95% CI], delta in nats", "",
                  *recovered_markdown(pd.read_csv(f))]
        lines.append("")
    for where in ("decision", "brand"):
        f = out / f"dla_{where}.csv"
        if not f.exists():
            continue
        d = pd.read_csv(f)
        per = pd.read_csv(out / f"dla_{where}_per_prompt.csv")
        top = d.reindex(d.d.abs().sort_values(ascending=False).index).head(10)
        lines += [f"#### DLA at the {where} position, P minus C (logit(token) - logit(EOS), mean over prompts)", "",
                  f"LD(P) - LD(C) = {(per.ld_a - per.ld_b).mean():+.3f}; sum of component differences "
                  f"{d.d.sum():+.3f}", "", "| component | DLA P | DLA C | P - C |", "|---|---|---|---|"]
        lines += [f"| {r.component} | {r.dla_a:+.3f} | {r.dla_b:+.3f} | {r.d:+.3f} |" for r in top.itertuples()]
        lines.append("")
    return "\n".join(lines)
