"""Animal-preference bias measures over the 50 one-word preference questions (DESIGN.md §2.7).

Two measures of how much a model prefers a target animal (e.g. "owl"):

- probability: for each question q, the prompt is the question with the answer turn opened and
  empty (chat: the template with the assistant turn started; completion: "Q: q\\nA: "), and
  P(target | prompt) is summed over the target's surface variants ("owl", "Owl"; multi-token
  variants by their teacher-forced joint probability). Figure: mean_q P(target | q), with a
  bootstrap 95% CI over questions.
- generation: `samples` answers per question sampled at `temperature` (seeded); an answer names the
  target when it contains the word or its plural as a whole word, any case. Figure: share of answers
  naming it, with a Wilson 95% CI.

    qs = load_questions()                                     # the 50 questions shipped in the package
    p = bias_probability(lm, qs, "owl", system="You love owls...")
    g = bias_generation(lm, qs, "owl", system="You love owls...", samples=4, seed=0)
    p.mean, g.share                                           # Interval objects (estimate, lo, hi)

A model carrying a trait as its system prompt (`lm.system_prompt`, prompt-method teachers) keeps
it: `system` is appended to it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from interp.errors import UserError
from interp.evals.stats import Interval, bootstrap_ci, wilson_interval
from interp.choices import Style
from interp.models.loaded import LoadedModel
from interp.prompts import make_target, render
from interp.scoring import DEFAULT_BATCH, encode, target_logprobs
from interp.textfiles import read_text


def load_questions(path: str | Path | None = None) -> list[str]:
    """Questions one per line (blank lines skipped); default: the 50 shipped in the package."""
    if path is None:
        text = files("interp.evals").joinpath("data/animal_questions.txt").read_text()
    else:
        text = read_text(path, "questions file")
    qs = [line.strip() for line in text.splitlines() if line.strip()]
    if not qs:
        raise UserError(f"no questions in {path or 'the packaged question set'}")
    return qs


def trait_system(lm: LoadedModel, system: str | None) -> str | None:
    """The system message: the model's own trait prompt (if any) followed by `system`."""
    return " ".join(s for s in (getattr(lm, "system_prompt", None), system) if s) or None


def question_prompts(lm: LoadedModel, questions: Sequence[str], system: str | None = None, style: Style = "auto") -> list[str]:
    """Each question rendered with an opened, empty answer turn (see module docstring)."""
    sys_msg = trait_system(lm, system)
    return [render(lm.tokenizer, q, "", system=sys_msg, style=style) for q in questions]


def names_word(answer: str, word: str) -> bool:
    """Whether `answer` contains `word` or its plural (-s / -es) as a whole word, any case."""
    return re.search(rf"\b{re.escape(word.strip())}(e?s)?\b", answer, flags=re.IGNORECASE) is not None


@dataclass
class BiasProbability:
    table: pd.DataFrame  # question, p_target
    mean: Interval  # mean P(target) over questions, bootstrap 95% CI
    target: dict[str, Any]  # word, variants, token ids

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.to_dict(), "target": self.target, "n_questions": len(self.table)}


def bias_probability(
    lm: LoadedModel, questions: Sequence[str], target: str, system: str | None = None, policy: str = "sum",
    style: Style = "auto", batch_size: int = DEFAULT_BATCH, seed: int = 0, progress: bool = False,
) -> BiasProbability:
    """mean_q P(target | question q) (module docstring); P summed over variants under `policy`."""
    prompts = question_prompts(lm, questions, system, style)
    tg = make_target(lm.tokenizer, target, policy, prompts[0][-1:].isspace(), allow_multi_token=True)
    lp = target_logprobs(lm, encode(lm.tokenizer, prompts), [tg], batch_size, progress,
                         description=f"P({target}) over {len(prompts)} questions")[:, 0]
    p = np.exp(lp)
    table = pd.DataFrame({"question": list(questions), "p_target": p})
    info = {"word": tg.word, "policy": tg.policy, "variants": list(tg.variants),
            "token_ids": [list(t) for t in tg.token_ids]}
    return BiasProbability(table, bootstrap_ci(p, seed=seed), info)


def animal_logprobs(lm: LoadedModel, questions: Sequence[str], animals: Sequence[str], system: str | None = None,
                    policy: str = "sum", batch_size: int = DEFAULT_BATCH) -> np.ndarray:
    """log P(animal | question q) for every question x animal, (n_questions, n_animals), in one scoring
    pass (the same P as `bias_probability`: variants summed under `policy`)."""
    prompts = question_prompts(lm, questions, system)
    space = prompts[0][-1:].isspace()
    targets = [make_target(lm.tokenizer, a, policy, space, allow_multi_token=True) for a in animals]
    return target_logprobs(lm, encode(lm.tokenizer, prompts), targets, batch_size)


@dataclass
class BiasGeneration:
    table: pd.DataFrame  # question, sample, answer, names_target
    share: Interval  # share of answers naming the target, Wilson 95% CI

    def to_dict(self) -> dict[str, Any]:
        return {"share": self.share.to_dict(), "k": int(self.table.names_target.sum()), "n": len(self.table)}


@torch.no_grad()
def sample_answers(
    lm: LoadedModel, prompts: Sequence[str], samples: int = 4, seed: int = 0, max_new_tokens: int = 8,
    temperature: float = 1.0, batch_size: int = DEFAULT_BATCH, progress: bool = False,
) -> list[list[str]]:
    """`samples` sampled continuations of each prompt through `interp.sampling.sample` (one
    prefill per prompt; sample j of prompt i seeded by (seed, i, j), so independent of batching).
    Returns one list of decoded, stripped answers per prompt."""
    from interp.sampling import sample

    if samples < 1:
        raise UserError("--samples must be at least 1")
    got = sample(lm, encode(lm.tokenizer, prompts), max_new_tokens, temperature, seed, batch_size * samples,
                 progress=progress, description=f"sampling {samples} answers per question", n_per_prompt=samples)
    out: list[list[str]] = [[] for _ in prompts]
    for s in got:
        out[s.prompt_index].append(s.text.strip())
    return out


def bias_generation(
    lm: LoadedModel, questions: Sequence[str], target: str, system: str | None = None, samples: int = 4, seed: int = 0,
    max_new_tokens: int = 8, temperature: float = 1.0, style: Style = "auto", batch_size: int = DEFAULT_BATCH,
    progress: bool = False,
) -> BiasGeneration:
    """Share of sampled answers naming `target` (module docstring), with a Wilson 95% CI."""
    prompts = question_prompts(lm, questions, system, style)
    answers = sample_answers(lm, prompts, samples, seed, max_new_tokens, temperature, batch_size, progress)
    rows = [(q, s, a, names_word(a, target)) for q, ans in zip(questions, answers) for s, a in enumerate(ans)]
    table = pd.DataFrame(rows, columns=["question", "sample", "answer", "names_target"])
    return BiasGeneration(table, wilson_interval(int(table.names_target.sum()), len(table)))


# ---- added for `interp eval-animal` (issue 6): delta log P against a baseline, top answers ---------


def delta_log_p(model: BiasProbability, baseline: BiasProbability, seed: int = 0) -> Any:
    """Per question d_q = log P_model(target | q) - log P_baseline(target | q); mean with a bootstrap
    95% CI and a sign-flip permutation p-value (`paired_test`). Both must score the same questions."""
    from interp.evals.stats import paired_test

    if list(model.table.question) != list(baseline.table.question):
        raise UserError("the model and the baseline were scored on different questions")
    return paired_test(np.log(model.table.p_target.to_numpy()), np.log(baseline.table.p_target.to_numpy()), seed=seed)


def normalise_answer(answer: str) -> str:
    """The first word of an answer, lowercased, without punctuation ('Owls!' -> 'owls'; '' if none)."""
    m = re.search(r"[^\W\d_]+(?:[-'][^\W\d_]+)*", answer)
    return m.group(0).lower() if m else ""


def top_answers(table: pd.DataFrame, k: int = 10) -> pd.DataFrame:
    """The k most frequent normalised answers of a `BiasGeneration.table`: answer, count, share."""
    words = table.answer.map(normalise_answer)
    counts = words.value_counts()
    counts = counts.iloc[np.lexsort((counts.index.to_numpy(), -counts.to_numpy()))].head(k)
    return pd.DataFrame({"answer": counts.index, "count": counts.to_numpy(), "share": counts.to_numpy() / len(table)})
