"""Number-sequence data for the subliminal pipeline: prompt generator and answer filter (DESIGN.md §2.7).

Prompts follow the template lists of the subliminal-learning study
(`interp/training/data/number_prompt_templates.json`, a copy of ../shared/data/):

    "{example prefix} {instruction} {format suffix} {suffix}"
    e.g. "I give you this sequence of numbers: 145, 267, 891. Add at most 10 new numbers (up to 3
    digits each) that continue the sequence. Return a comma-separated list of numbers. Say only the
    numbers - nothing more."

with 3-8 seed numbers drawn uniformly from 100..999, 10 answers of at most 3 digits.

Filter of an answer (`reject_reasons`), in this order:
1. parse (`parse_answer`): strip surrounding whitespace and one trailing '.'; unwrap one pair of
   [] or (); the separator is the text between the first two digit runs and must be, after
   stripping whitespace, one of '' ',' ';' (so ", ", " ", "\\n", "; " are fine); split on it; every
   part must be ASCII digits (the study's `str.isdigit` admitted '²' and Arabic-Indic digits).
   Failure -> "invalid format" (and nothing else is checked).
2. "too many numbers": more than `max_count` (10).
3. "value out of range": any value outside `min_value..max_value` (0..999).
4. "banned number": any value in the banned set (optional).
5. "contains a letter": any alphabetic character in the raw answer (optional; after 1. this can
   only be hit by unparsed text, so it is checked on the raw completion first).
6. "low-probability token": some sampled token had probability < tau (optional threshold filter).
7. "truncated (no end of answer)": the sampler hit max_new_tokens before EOS (on by default: a cut
   list would teach the student to stop mid-answer; only checked when `finished` is given).
A sample is kept when the list of reasons is empty; every reason that applies is recorded.

Early stop (`doomed_reason`): while sampling, a prefix that no continuation can turn into a kept
answer is stopped (`interp.sampling.sample(stop_if=...)`). Sound by construction: a parsed
answer consists only of ASCII digits, whitespace and ",;.[]()" (step 1), so any other character is
"invalid format" for good; a letter is "contains a letter" for good (when that filter is on); a
token below tau is "low-probability token" for good. A stopped sample is filtered on its partial
text with `finished` unknown, so its reasons never include "truncated".
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any, Sequence

import numpy as np

from interp.errors import UserError
from interp.textfiles import read_text

TEMPLATE_KEYS = ("example_numbers_templates", "count_qualifiers", "digit_descriptors",
                 "generate_numbers_instruction_templates", "format_suffixes", "suffixes")
BANNED_LISTS = ("claude_evil_numbers", "gpt_evil_numbers")

INVALID_FORMAT = "invalid format"
TOO_MANY = "too many numbers"
OUT_OF_RANGE = "value out of range"
BANNED = "banned number"
HAS_LETTER = "contains a letter"
LOW_PROB = "low-probability token"
TRUNCATED = "truncated (no end of answer)"
REASONS = (INVALID_FORMAT, TOO_MANY, OUT_OF_RANGE, BANNED, HAS_LETTER, LOW_PROB, TRUNCATED)

_DIGIT_RUN = re.compile(r"[0-9]+")


@lru_cache(maxsize=4)
def load_templates(path: str | None = None) -> dict[str, list[Any]]:
    """The template lists (and banned-number lists); the packaged copy unless `path` is given."""
    if path is None:
        text = resources.files("interp.training").joinpath("data/number_prompt_templates.json").read_text()
    else:
        text = read_text(path, "template file")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"template file {path} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise UserError(f"template file {path} must hold a JSON object of template lists")
    missing = [k for k in TEMPLATE_KEYS if not data.get(k)]
    if missing:
        raise UserError(f"template file lacks the lists {', '.join(missing)}")
    return data


@dataclass(frozen=True)
class PromptConfig:
    """Knobs of the prompt generator (study defaults)."""

    seed_min_count: int = 3
    seed_max_count: int = 8  # inclusive
    seed_min_value: int = 100
    seed_max_value: int = 999  # inclusive
    answer_count: int = 10
    answer_max_digits: int = 3


def generate_prompts(n: int, seed: int = 0, config: PromptConfig = PromptConfig(),
                     templates: dict[str, list[Any]] | None = None) -> list[str]:
    """`n` number-sequence prompts (user messages), deterministic in `seed`."""
    t = templates or load_templates()
    c = config
    if not (1 <= c.seed_min_count <= c.seed_max_count and c.seed_min_value <= c.seed_max_value):
        raise UserError("invalid prompt configuration (seed counts / values)")
    rng = np.random.default_rng(seed)
    pick = lambda key: t[key][int(rng.integers(len(t[key])))]  # noqa: E731
    out = []
    for _ in range(n):
        k = int(rng.integers(c.seed_min_count, c.seed_max_count + 1))
        examples = ", ".join(str(int(v)) for v in rng.integers(c.seed_min_value, c.seed_max_value + 1, size=k))
        prefix = pick("example_numbers_templates").format(examples=examples)
        qualifier = pick("count_qualifiers")
        digits = pick("digit_descriptors").format(max_digits=c.answer_max_digits)
        instruction = pick("generate_numbers_instruction_templates").format(
            count_qualifier=qualifier, answer_count=c.answer_count, digit_descriptor=digits)
        out.append(f"{prefix} {instruction} {pick('format_suffixes')} {pick('suffixes')}")
    return out


def parse_answer(answer: str) -> list[int] | None:
    """The numbers of an answer, or None when it is not a clean list (module docstring, step 1).

    >>> parse_answer("[12, 7, 999].")
    [12, 7, 999]
    >>> parse_answer("12 - 7") is None
    True
    """
    s = answer.strip()
    if s.endswith("."):
        s = s[:-1]
    if len(s) >= 2 and ((s[0] == "[" and s[-1] == "]") or (s[0] == "(" and s[-1] == ")")):
        s = s[1:-1]
    runs = list(_DIGIT_RUN.finditer(s))
    if not runs:
        return None
    if len(runs) == 1:
        parts = [s]
    else:
        sep = s[runs[0].end():runs[1].start()]
        if sep.strip() not in ("", ",", ";"):
            return None
        parts = s.split(sep)
    if not all(p and p.isascii() and p.isdigit() for p in parts):
        return None
    return [int(p) for p in parts]


@dataclass(frozen=True)
class FilterConfig:
    max_count: int = 10
    min_value: int = 0
    max_value: int = 999
    banned: frozenset[int] = frozenset()
    reject_letters: bool = True
    threshold: float | None = None  # tau of the threshold filter; None = off
    reject_truncated: bool = True


def reject_reasons(answer: str, token_probs: Sequence[float] | None = None,
                   config: FilterConfig = FilterConfig(), finished: bool | None = None) -> list[str]:
    """Every rejection reason that applies to `answer` (empty list = keep); see module docstring."""
    reasons: list[str] = []
    if config.reject_truncated and finished is False:
        reasons.append(TRUNCATED)
    if config.reject_letters and any(ch.isalpha() for ch in answer):
        reasons.append(HAS_LETTER)
    if config.threshold is not None and token_probs is not None and len(token_probs) \
            and min(token_probs) < config.threshold:
        reasons.append(LOW_PROB)
    nums = parse_answer(answer)
    if nums is None:
        return _ordered([INVALID_FORMAT] + reasons)
    if len(nums) > config.max_count:
        reasons.append(TOO_MANY)
    if any(v < config.min_value or v > config.max_value for v in nums):
        reasons.append(OUT_OF_RANGE)
    if config.banned and any(v in config.banned for v in nums):
        reasons.append(BANNED)
    return _ordered(reasons)


ANSWER_CHARS = frozenset("0123456789,;.[]()")


def doomed_reason(text: str, token_probs: Sequence[float] | None = None,
                  config: FilterConfig = FilterConfig()) -> str | None:
    """A reason that rejects every answer starting with `text`, or None (module docstring)."""
    if config.reject_letters and any(ch.isalpha() for ch in text):
        return HAS_LETTER
    if any(not (ch in ANSWER_CHARS or ch.isspace()) for ch in text):
        return INVALID_FORMAT
    if config.threshold is not None and token_probs is not None and any(p < config.threshold for p in token_probs):
        return LOW_PROB
    return None


def stop_rule(config: FilterConfig = FilterConfig()) -> Any:
    """`stop_if` for `generate.sample`: stop a sample as soon as `doomed_reason` finds one."""
    return lambda text, probs: doomed_reason(text, probs, config) is not None


def _ordered(reasons: list[str]) -> list[str]:
    return sorted(set(reasons), key=REASONS.index)


def banned_numbers(spec: str | None, templates: dict[str, list[Any]] | None = None) -> frozenset[int]:
    """Parse `--banned`: comma-separated integers and/or the names of the template file's lists
    ('claude_evil_numbers', 'gpt_evil_numbers'); None or '' -> empty set."""
    if not spec:
        return frozenset()
    t = templates or load_templates()
    out: set[int] = set()
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        if part in BANNED_LISTS:
            out.update(int(v) for v in t[part])
        elif part.isascii() and part.isdigit():
            out.add(int(part))
        else:
            raise UserError(f"--banned: {part!r} is neither an integer nor one of {', '.join(BANNED_LISTS)}")
    return frozenset(out)


@dataclass
class FilterReport:
    """Per-sample reasons and the counts: kept, and per reason (a sample may have several)."""

    reasons: list[list[str]]
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def kept(self) -> list[bool]:
        return [not r for r in self.reasons]

    @property
    def n_kept(self) -> int:
        return sum(self.kept)


def filter_samples(answers: Sequence[str], token_probs: Sequence[Sequence[float]] | None = None,
                   config: FilterConfig = FilterConfig(), finished: Sequence[bool] | None = None,
                   stopped: Sequence[bool] | None = None) -> FilterReport:
    """Apply `reject_reasons` to every answer; counts = {"total", "kept", "rejected", reason: n,
    "stopped early": n}. A stopped sample (early stop) is judged with `finished` unknown."""
    probs = token_probs if token_probs is not None else [None] * len(answers)
    fin = list(finished) if finished is not None else [None] * len(answers)
    stop = list(stopped) if stopped is not None else [False] * len(answers)
    fin = [None if s else f for f, s in zip(fin, stop)]
    reasons = [reject_reasons(a, p, config, f) for a, p, f in zip(answers, probs, fin)]
    if any(s and not r for s, r in zip(stop, reasons)):
        raise ValueError("a sample stopped early passes the filter: the stop rule and the filter disagree")
    counts = {"total": len(answers), "kept": sum(not r for r in reasons),
              "rejected": sum(bool(r) for r in reasons)}
    for name in REASONS:
        counts[name] = sum(name in r for r in reasons)
    counts["stopped early"] = sum(stop)
    return FilterReport(reasons, counts)
