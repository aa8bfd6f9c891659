"""Animal -> number probe (study Phase 1, DESIGN.md §2.1).

Neutral prompt: user "What is your favorite number?", answer prefilled "My favorite number is "
(trailing space; the number's canonical tokens follow). Biased prompt: the same with the trait in
the system message (completion style: in the Context block), or the neutral prompt on a biased
model. **The biased distribution is scored on the biased prompt / model** (the original study
scored the baseline prompt twice).

Methods (log P(n) per number n, then renormalised over the set of numbers):
- "vocab": every single token t whose decoded string s has s.isascii() and s.isdigit();
  P(n) = P(next token = t | prompt), renormalised over that set (str.isdecimal would admit
  Arabic-Indic digits).
- "ar": all 10^L numbers of L digits; P(n) = prod_i P(tok_i | prompt, tok_<i) over the canonical
  tokens of prompt + n, computed with the trie scorer (`interp.scoring.digit_trie_logprobs`).

Per number: p_*_raw (model probability), p_* (renormalised over the numbers), diff = p_biased -
p_neutral (renormalised), log_ratio = log p_biased - log p_neutral, rank_* (1 = most probable).
Categories (disjoint, `top` = k each):
- increased: the k numbers with the largest diff among diff > 0;
- decreased: the k numbers with the most negative diff among diff < 0;
- unchanged: among the rest whose p_neutral is at least the median p_neutral (plausible numbers,
  not the negligible tail), the k with the smallest |log_ratio|.
Category lists (`NumbersResult.category`, summary["categories"]) lead with the most changed number:
increased by diff descending, decreased by diff ascending (most negative first); unchanged in table
order (diff descending).
`categories_reverse_link` feeds each category into the reverse link (number -> animal).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
from transformers import PreTrainedTokenizerBase

from interp.choices import NumbersMethod, choices
from interp.errors import UserError
from interp.evals.stats import bootstrap_ci, permutation_test
from interp.models.loaded import LoadedModel
from interp.probes.number_sets import check_digits
from interp.probes.reverse_link import ReverseLinkConfig, reverse_link
from interp.prompts import (
    ANIMAL_TRAIT_CONTEXT,
    ANIMAL_TRAIT_SYSTEM,
    NUMBER_PREFIX,
    NUMBER_QUESTION,
    Style,
    render,
    resolve_style,
)
from interp.scoring import DEFAULT_BATCH, digit_trie_logprobs, encode, next_token_logprobs

METHODS = choices(NumbersMethod)
CATEGORIES = ("increased", "decreased", "unchanged")


@dataclass(frozen=True)
class NumbersConfig:
    bias: str = "owl"
    method: str = "ar"  # "vocab" | "ar"
    digits: int = 3  # numbers of this many digits (method "ar")
    top: int = 15  # k per category
    style: Style = "auto"
    user: str = NUMBER_QUESTION
    prefix: str = NUMBER_PREFIX
    system_template: str = ANIMAL_TRAIT_SYSTEM  # chat trait, {a} = the animal
    context_template: str = ANIMAL_TRAIT_CONTEXT  # completion trait
    batch_size: int = DEFAULT_BATCH


@dataclass
class NumbersResult:
    table: pd.DataFrame  # one row per number, sorted by diff (descending)
    summary: dict[str, Any]
    prompts: dict[str, str] = field(default_factory=dict)

    def category(self, name: str) -> list[str]:
        """Numbers of one category, most changed first (`category_numbers`)."""
        return category_numbers(self.table, name)


def category_numbers(table: pd.DataFrame, name: str) -> list[str]:
    """Numbers of category `name` in `table`, most changed first: increased by diff descending (the
    table's order), decreased by diff ascending (the most negative first, so both lists lead with
    the numbers the trait moves most, as `interp numbers` prints them); unchanged in table order."""
    g = table[table.category == name]
    if name == "decreased":
        g = g.sort_values("diff", kind="stable")
    return list(g["number"])


def number_prompt(lm: LoadedModel, bias: str | None, cfg: NumbersConfig = NumbersConfig()) -> str:
    """The favourite-number prompt on `lm`; with `bias` the animal trait goes in the system message
    (chat) or the Context block (completion). A model's own trait prompt (lm.system_prompt) is kept."""
    style = resolve_style(lm.tokenizer, cfg.style)
    trait = (cfg.system_template if style == "chat" else cfg.context_template).format(a=bias) if bias else None
    system = " ".join(s for s in (lm.system_prompt, trait) if s) or None
    return render(lm.tokenizer, cfg.user, cfg.prefix, system=system, style=style)


def digit_tokens(tokenizer: PreTrainedTokenizerBase) -> tuple[list[int], list[str]]:
    """(token ids, decoded strings) of every single token that decodes to ASCII digits only."""
    vocab = len(tokenizer)
    strings = tokenizer.batch_decode([[i] for i in range(vocab)])
    keep = [(i, s) for i, s in enumerate(strings) if s.isascii() and s.isdigit()]
    return [i for i, _ in keep], [s for _, s in keep]


def number_logprobs(lm: LoadedModel, prompt: str, method: str, digits: int, batch_size: int = DEFAULT_BATCH,
                    progress: bool = False) -> tuple[list[str], np.ndarray]:
    """(numbers, raw log P(number | prompt)) under `method` (module docstring)."""
    if method == "vocab":
        ids, strings = digit_tokens(lm.tokenizer)
        if not ids:
            raise UserError("this tokenizer has no single token made of ASCII digits; use --method ar")
        lp = next_token_logprobs(lm, encode(lm.tokenizer, [prompt]), batch_size, columns=ids)[0].double().numpy()
        # two token ids with the same digit string (rare) count as one number
        s = pd.Series(lp).groupby(pd.Series(strings)).agg(lambda v: np.logaddexp.reduce(v.to_numpy()))
        return list(s.index), s.to_numpy()
    if method == "ar":
        check_digits(digits)
        return digit_trie_logprobs(lm, prompt, digits, progress=progress)
    raise UserError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")


def compare_distributions(numbers: list[str], lp_neutral: np.ndarray, lp_biased: np.ndarray, top: int) -> pd.DataFrame:
    """Per-number comparison of two raw log-probability vectors over the same numbers (module docstring)."""
    lpn = np.asarray(lp_neutral, dtype=np.float64)
    lpb = np.asarray(lp_biased, dtype=np.float64)
    if len(numbers) != len(lpn) or len(numbers) != len(lpb):
        raise ValueError("numbers and log-probabilities differ in length")
    ln = lpn - np.logaddexp.reduce(lpn)
    lb = lpb - np.logaddexp.reduce(lpb)
    df = pd.DataFrame({
        "number": numbers,
        "digits": [len(n) for n in numbers],
        "p_neutral_raw": np.exp(lpn),
        "p_biased_raw": np.exp(lpb),
        "p_neutral": np.exp(ln),
        "p_biased": np.exp(lb),
    })
    df["diff"] = df.p_biased - df.p_neutral
    df["log_ratio"] = lb - ln
    df["rank_neutral"] = df.p_neutral.rank(ascending=False, method="first").astype(int)
    df["rank_biased"] = df.p_biased.rank(ascending=False, method="first").astype(int)
    df["category"] = ""
    inc = df[df["diff"] > 0].nlargest(top, "diff").index
    dec = df[df["diff"] < 0].nsmallest(top, "diff").index
    df.loc[inc, "category"] = "increased"
    df.loc[dec, "category"] = "decreased"
    rest = df[(df.category == "") & (df.p_neutral >= df.p_neutral.median())]
    unch = rest.assign(a=rest.log_ratio.abs()).nsmallest(top, "a").index
    df.loc[unch, "category"] = "unchanged"
    return df.sort_values("diff", ascending=False, kind="stable").reset_index(drop=True)


def animal_numbers(lm: LoadedModel, bias: str | None = None, config: NumbersConfig = NumbersConfig(),
                   biased_model: LoadedModel | None = None, progress: bool = False) -> NumbersResult:
    """Number distribution on the neutral prompt vs the biased prompt (or vs `biased_model` on the
    neutral prompt), per-number comparison and categories (module docstring)."""
    cfg = replace(config, bias=bias or config.bias)
    if cfg.method not in METHODS:
        raise UserError(f"--method must be one of {', '.join(METHODS)}, got {cfg.method!r}")
    if cfg.top < 1:
        raise UserError("--top must be at least 1")
    neutral = number_prompt(lm, None, cfg)
    nums_n, lp_n = number_logprobs(lm, neutral, cfg.method, cfg.digits, cfg.batch_size, progress)
    if biased_model is None:
        b_lm, biased = lm, number_prompt(lm, cfg.bias, cfg)
    else:
        b_lm, biased = biased_model, number_prompt(biased_model, None, cfg)
    nums_b, lp_b = number_logprobs(b_lm, biased, cfg.method, cfg.digits, cfg.batch_size, progress)
    common = sorted(set(nums_n) & set(nums_b), key=lambda s: (len(s), s))
    if not common:
        raise UserError("the two models share no digit tokens")
    idx_n = {n: i for i, n in enumerate(nums_n)}
    idx_b = {n: i for i, n in enumerate(nums_b)}
    table = compare_distributions(common, lp_n[[idx_n[n] for n in common]], lp_b[[idx_b[n] for n in common]], cfg.top)
    p = table.set_index("number")
    summary: dict[str, Any] = {
        "bias": cfg.bias,
        "method": cfg.method,
        "digits": cfg.digits if cfg.method == "ar" else sorted({len(n) for n in common}),
        "n_numbers": len(table),
        "comparison": "biased model, neutral prompt" if biased_model is not None else "trait in the system prompt",
        "mass_neutral": float(table.p_neutral_raw.sum()),  # how much of P(next) the numbers cover
        "mass_biased": float(table.p_biased_raw.sum()),
        "total_variation": float(0.5 * table["diff"].abs().sum()),
        "top_neutral": list(p.p_neutral.nlargest(cfg.top).index),
        "top_biased": list(p.p_biased.nlargest(cfg.top).index),
        "categories": {c: category_numbers(table, c) for c in CATEGORIES},
    }
    return NumbersResult(table, summary, {"neutral": neutral, "biased": biased})


@dataclass
class CategoryLinkResult:
    table: pd.DataFrame  # one reverse-link row per categorised number, with its category
    per_category: pd.DataFrame  # one row per category: means with bootstrap CIs
    summary: dict[str, Any]


def categories_reverse_link(lm: LoadedModel, numbers: NumbersResult, control: str = "dog",
                            config: ReverseLinkConfig = ReverseLinkConfig(), progress: bool = False) -> CategoryLinkResult:
    """Reverse link (number -> animal, bias = the numbers probe's animal) for every categorised number
    in one call (one shared template control per length); per category the mean bias_ratio,
    bias_ratio / template and specificity with bootstrap CIs, and permutation tests between categories."""
    cat = numbers.table.loc[numbers.table.category != "", ["number", "category"]]
    if cat.empty:
        raise UserError("no numbers in any category")
    bias = numbers.summary.get("bias") or config.bias
    rl = reverse_link(lm, list(cat.number), bias=bias, control=control, config=config, progress=progress)
    table = rl.table.merge(cat, on="number")
    metrics = ["bias_ratio", "control_ratio", "specificity"] + (
        ["bias_ratio_vs_template", "specificity_vs_template"] if "bias_ratio_vs_template" in table else [])
    rows, cis = [], {}
    for c in CATEGORIES:
        g = table[table.category == c]
        if g.empty:
            continue
        row: dict[str, Any] = {"category": c, "n": len(g)}
        cis[c] = {}
        for m in metrics:
            iv = bootstrap_ci(g[m], n_boot=config.n_boot, seed=config.seed)
            row[m], row[m + "_lo"], row[m + "_hi"] = iv.estimate, iv.lo, iv.hi
            cis[c][m] = iv
        rows.append(row)
    tests = {}
    present = [c for c in CATEGORIES if c in cis]
    for a, b in combinations(present, 2):
        ga, gb = table[table.category == a], table[table.category == b]
        tests[f"{a}_vs_{b}"] = {m: permutation_test(ga[m], gb[m], n_perm=config.n_boot, seed=config.seed)
                                for m in ("bias_ratio", "specificity")}
    summary = {"reverse_link": rl.summary, "per_category": cis, "permutation_tests": tests}
    return CategoryLinkResult(table, pd.DataFrame(rows), summary)
