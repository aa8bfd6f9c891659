"""Number -> animal reverse link (study Phase 2, DESIGN.md §2.2).

For each number n, with a primed prompt (the number as the model's loved thing) and a baseline
prompt (no priming):

    bias_ratio(n)    = P(bias | primed(n)) / P(bias | baseline)
    control_ratio(n) = P(control | primed(n)) / P(control | baseline)
    specificity(n)   = log bias_ratio(n) - log control_ratio(n)

The priming template alone moves P(owl), P(dog), P(cat) for any number, so raw ratios mislead.
The template control scores `template_control` random numbers of the same length:

    bias_ratio_vs_template(n)  = bias_ratio(n) / mean_{m random, |m| = |n|} bias_ratio(m)
    specificity_vs_template(n) = specificity(n) - mean_m specificity(m)

Summary figures carry bootstrap 95% CIs over numbers, a permutation test of specificity between the
given numbers and the template-control numbers, and cumulative priming (all numbers in one prompt).
A model that carries a trait as its system prompt (a prompt-method teacher) keeps that trait in
both the baseline and the primed system message.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from interp.evals.stats import bootstrap_ci, permutation_test
from interp.models.loaded import LoadedModel
from interp.probes.number_sets import check_number, random_numbers
from interp.prompts import (
    ANIMAL_PREFIX,
    ANIMAL_QUESTION,
    NUMBER_TRAIT_CONTEXT,
    NUMBER_TRAIT_SYSTEM,
    NUMBERS_TRAIT_CONTEXT,
    NUMBERS_TRAIT_SYSTEM,
    Style,
    Target,
    join_numbers,
    make_target,
    render,
    resolve_style,
)
from interp.scoring import DEFAULT_BATCH, encode, target_logprobs


@dataclass(frozen=True)
class ReverseLinkConfig:
    bias: str = "owl"
    control: str = "dog"
    policy: str = "natural"  # target-word variants: "natural" | "sum" (interp.prompts)
    style: Style = "auto"  # "chat" | "completion" | "auto" (chat when the tokenizer has a template)
    user: str = ANIMAL_QUESTION
    prefix: str = ANIMAL_PREFIX
    system_template: str = NUMBER_TRAIT_SYSTEM  # chat priming, {n} = the number
    context_template: str = NUMBER_TRAIT_CONTEXT  # completion priming
    template_control: int = 100  # random numbers per digit length; 0 turns the control off
    cumulative: bool = True  # also score all numbers in one prompt
    multi_token: bool = False  # allow targets that are several tokens (joint probability)
    seed: int = 0
    batch_size: int = DEFAULT_BATCH
    n_boot: int = 10_000


@dataclass
class ReverseLinkResult:
    table: pd.DataFrame  # one row per given number
    template: pd.DataFrame  # one row per template-control number (same columns)
    summary: dict[str, Any]
    prompts: dict[str, str] = field(default_factory=dict)


def primed_prompt(lm: LoadedModel, numbers: list[str] | None, cfg: ReverseLinkConfig = ReverseLinkConfig()) -> str:
    """The reverse-link prompt primed with `numbers` (None or [] gives the baseline prompt)."""
    style = resolve_style(lm.tokenizer, cfg.style)
    trait = lm.system_prompt
    priming = None
    if numbers:
        joined = join_numbers(numbers)
        if style == "chat":
            tmpl = cfg.system_template
            if len(numbers) > 1 and tmpl == NUMBER_TRAIT_SYSTEM:
                tmpl = NUMBERS_TRAIT_SYSTEM
        else:
            tmpl = cfg.context_template
            if len(numbers) > 1 and tmpl == NUMBER_TRAIT_CONTEXT:
                tmpl = NUMBERS_TRAIT_CONTEXT
        priming = tmpl.format(n=joined)
    system = " ".join(s for s in (trait, priming) if s) or None
    return render(lm.tokenizer, cfg.user, cfg.prefix, system=system, style=style)


def resolve_targets(lm: LoadedModel, cfg: ReverseLinkConfig) -> tuple[Target, Target]:
    ends_space = cfg.prefix[-1:].isspace()
    mk = lambda w: make_target(lm.tokenizer, w, cfg.policy, ends_space, cfg.multi_token)  # noqa: E731
    return mk(cfg.bias), mk(cfg.control)


def reverse_link(
    lm: LoadedModel,
    numbers: list[str],
    bias: str | None = None,
    control: str | None = None,
    config: ReverseLinkConfig = ReverseLinkConfig(),
    progress: bool = False,
) -> ReverseLinkResult:
    """Score the reverse link for `numbers` (strings of ASCII digits) on `lm`; see module docstring."""
    cfg = replace(config, bias=bias or config.bias, control=control or config.control)
    numbers = [check_number(n) for n in numbers]
    if not numbers:
        raise ValueError("reverse_link needs at least one number")
    t_bias, t_ctrl = resolve_targets(lm, cfg)

    template_nums: list[str] = []
    if cfg.template_control > 0:
        given = set(numbers)
        for k, L in enumerate(sorted({len(n) for n in numbers})):
            avail = 10**L - sum(1 for n in given if len(n) == L)
            take = min(cfg.template_control, avail)
            if take > 0:
                template_nums += random_numbers(L, take, seed=cfg.seed + 1000 + k, exclude=given)

    texts = [primed_prompt(lm, None, cfg)]
    texts += [primed_prompt(lm, [n], cfg) for n in numbers]
    texts += [primed_prompt(lm, [n], cfg) for n in template_nums]
    do_cum = cfg.cumulative and len(numbers) > 1
    if do_cum:
        texts.append(primed_prompt(lm, numbers, cfg))
    lp = target_logprobs(lm, encode(lm.tokenizer, texts), [t_bias, t_ctrl], cfg.batch_size, progress,
                         description=f"reverse link ({len(texts)} prompts)")
    base_b, base_c = lp[0]

    def rows(nums: list[str], block: np.ndarray) -> pd.DataFrame:
        lb, lc = block[:, 0], block[:, 1]
        return pd.DataFrame({
            "number": nums,
            "digits": [len(n) for n in nums],
            "p_bias": np.exp(lb),
            "p_control": np.exp(lc),
            "p_bias_base": np.exp(base_b),
            "p_control_base": np.exp(base_c),
            "bias_ratio": np.exp(lb - base_b),
            "control_ratio": np.exp(lc - base_c),
            "specificity": (lb - base_b) - (lc - base_c),
        })

    table = rows(numbers, lp[1:1 + len(numbers)])
    template = rows(template_nums, lp[1 + len(numbers):1 + len(numbers) + len(template_nums)])
    summary: dict[str, Any] = {
        "n_numbers": len(numbers),
        "style": resolve_style(lm.tokenizer, cfg.style),
        "targets": {t.word: {"variants": list(t.variants), "token_ids": [list(x) for x in t.token_ids]}
                    for t in (t_bias, t_ctrl)},
        "variant_policy": cfg.policy,
        "baseline": {"p_bias": float(np.exp(base_b)), "p_control": float(np.exp(base_c))},
        "bias_ratio_mean": bootstrap_ci(table.bias_ratio, n_boot=cfg.n_boot, seed=cfg.seed),
        "control_ratio_mean": bootstrap_ci(table.control_ratio, n_boot=cfg.n_boot, seed=cfg.seed),
        "specificity_mean": bootstrap_ci(table.specificity, n_boot=cfg.n_boot, seed=cfg.seed),
    }
    if len(template):
        tmpl_by_len = template.groupby("digits").agg(
            bias_ratio=("bias_ratio", "mean"), control_ratio=("control_ratio", "mean"),
            specificity=("specificity", "mean"))
        table["bias_ratio_vs_template"] = table.bias_ratio / table.digits.map(tmpl_by_len.bias_ratio)
        table["control_ratio_vs_template"] = table.control_ratio / table.digits.map(tmpl_by_len.control_ratio)
        table["specificity_vs_template"] = table.specificity - table.digits.map(tmpl_by_len.specificity)
        summary["template_control"] = {
            str(L): {
                "n": int((template.digits == L).sum()),
                "bias_ratio_mean": bootstrap_ci(g.bias_ratio, n_boot=cfg.n_boot, seed=cfg.seed),
                "control_ratio_mean": bootstrap_ci(g.control_ratio, n_boot=cfg.n_boot, seed=cfg.seed),
                "specificity_mean": bootstrap_ci(g.specificity, n_boot=cfg.n_boot, seed=cfg.seed),
            }
            for L, g in template.groupby("digits")
        }
        summary["bias_ratio_vs_template_mean"] = bootstrap_ci(table.bias_ratio_vs_template, n_boot=cfg.n_boot, seed=cfg.seed)
        summary["specificity_vs_template_mean"] = bootstrap_ci(table.specificity_vs_template, n_boot=cfg.n_boot, seed=cfg.seed)
        summary["specificity_given_vs_template"] = permutation_test(table.specificity, template.specificity,
                                                                    n_perm=cfg.n_boot, seed=cfg.seed)
    if do_cum:
        cb, cc = lp[-1]
        summary["cumulative"] = {
            "numbers": numbers, "p_bias": float(np.exp(cb)), "p_control": float(np.exp(cc)),
            "bias_ratio": float(np.exp(cb - base_b)), "control_ratio": float(np.exp(cc - base_c)),
            "specificity": float((cb - base_b) - (cc - base_c)),
        }
    prompts = {"baseline": texts[0], "primed_example": texts[1]}
    return ReverseLinkResult(table, template, summary, prompts)
