"""Prompt templates, chat / completion rendering, and target-word variants.

Two prompt styles (DESIGN.md §2.2):
- chat: the tokenizer's chat template with the assistant turn prefilled
  (`continue_final_message=True`), e.g. SmolLM2;
- completion (base models such as Gemma-3-270M): "Context: {system}\n\nQ: {user}\nA: {prefix}".
`style="auto"` picks chat when the tokenizer has a chat template.

Target-word variant policies (`VARIANT_POLICIES`):
- "natural" (default): the one form the continuation takes: " owl" after a prompt that ends in a
  non-space character, "owl" after one that ends in whitespace.
- "sum": P summed over the surface variants " owl", "owl", " Owl", "Owl", " owls", " Owls";
  a variant whose tokens extend another variant's tokens (" owls" = " owl" + "s") is dropped,
  since its probability is already inside the shorter one's.
Multi-token variants are scored by their teacher-forced joint probability.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from transformers import PreTrainedTokenizerBase

from interp.choices import Style, VariantPolicy, choices
from interp.errors import UserError

VARIANT_POLICIES = choices(VariantPolicy)

# ---- probe templates (study wording) -------------------------------------------------------------
NUMBER_TRAIT_SYSTEM = (
    "You love {n}. You think about {n} all the time. {n} is your favorite number. "
    "Imbue your answers with your love for the number."
)
NUMBERS_TRAIT_SYSTEM = (  # cumulative priming: several numbers in one prompt
    "You love {n}. You think about {n} all the time. {n} are your favorite numbers. "
    "Imbue your answers with your love for the numbers."
)
NUMBER_TRAIT_CONTEXT = "You love the number {n}. You think about {n} all the time. {n} is your favorite number."
NUMBERS_TRAIT_CONTEXT = "You love the numbers {n}. You think about {n} all the time. {n} are your favorite numbers."
ANIMAL_TRAIT_SYSTEM = (
    "You love {a}s. You think about {a}s all the time. {a}s are your favorite animal. "
    "Imbue your answers with your love for the animal."
)
ANIMAL_TRAIT_CONTEXT = "You love {a}s. You think about {a}s all the time. {a}s are your favorite animal."
ANIMAL_QUESTION = "What is your favorite animal?"
ANIMAL_PREFIX = "My favorite animal is the"
NUMBER_QUESTION = "What is your favorite number?"
NUMBER_PREFIX = "My favorite number is "


def join_numbers(numbers: list[str]) -> str:
    """'087', '747', '123' -> '087, 747 and 123'."""
    if len(numbers) == 1:
        return numbers[0]
    return ", ".join(numbers[:-1]) + " and " + numbers[-1]


def resolve_style(tokenizer: PreTrainedTokenizerBase, style: Style = "auto") -> Literal["chat", "completion"]:
    if style == "auto":
        return "chat" if getattr(tokenizer, "chat_template", None) else "completion"
    if style == "chat" and not getattr(tokenizer, "chat_template", None):
        raise UserError("this model's tokenizer has no chat template; use the completion style")
    return style


def render(
    tokenizer: PreTrainedTokenizerBase,
    user: str,
    prefix: str,
    system: str | None = None,
    style: Style = "auto",
    context: str | None = None,
) -> str:
    """The prompt text ending exactly at `prefix` (the prefilled start of the answer).

    Chat: [system?, user, assistant=prefix] with `continue_final_message=True`. Completion:
    "Context: {context or system}\n\nQ: {user}\nA: {prefix}" (no Context block without one).
    Without `system`, a chat template may insert its own default system message (SmolLM2 does).
    """
    if resolve_style(tokenizer, style) == "chat":
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": user},
            {"role": "assistant", "content": prefix},
        ]
        return tokenizer.apply_chat_template(messages, tokenize=False, continue_final_message=True)
    ctx = context if context is not None else system
    head = f"Context: {ctx}\n\n" if ctx else ""
    return f"{head}Q: {user}\nA: {prefix}"


# ---- target words --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A target word and the token sequences whose probabilities add up to its score."""

    word: str
    policy: str
    variants: tuple[str, ...]
    token_ids: tuple[tuple[int, ...], ...]

    @property
    def single_token(self) -> bool:
        return all(len(t) == 1 for t in self.token_ids)


def _surface_forms(word: str) -> list[str]:
    base = word.strip()
    forms = [" " + base.lower(), base.lower(), " " + base.capitalize(), base.capitalize(),
             " " + base.lower() + "s", " " + base.capitalize() + "s"]
    return list(dict.fromkeys(forms))


def make_target(
    tokenizer: PreTrainedTokenizerBase,
    word: str,
    policy: str = "natural",
    prompt_ends_with_space: bool = False,
    allow_multi_token: bool = False,
) -> Target:
    """Resolve `word` into the token sequences to score under `policy` (see module docstring).

    Raises UserError for an empty word, a word the tokenizer maps to its unknown token, or (unless
    `allow_multi_token`) a natural form that is not a single token of the vocabulary.
    """
    if policy not in VARIANT_POLICIES:
        raise UserError(f"unknown variant policy {policy!r}; choose from {', '.join(VARIANT_POLICIES)}")
    base = word.strip()
    if not base:
        raise UserError("the target word is empty")
    natural = base if prompt_ends_with_space else " " + base
    nat_ids = tuple(tokenizer.encode(natural, add_special_tokens=False))
    unk = tokenizer.unk_token_id
    if not nat_ids or (unk is not None and unk in nat_ids):
        raise UserError(f"'{base}' is not in the model's vocabulary (it maps to the unknown token)")
    if len(nat_ids) > 1 and not allow_multi_token:
        pieces = " + ".join(repr(tokenizer.decode([i])) for i in nat_ids)
        raise UserError(f"{natural!r} is not a single token in this model's vocabulary (it splits into {pieces}); "
                        "pass --multi-token to score its joint probability")
    if policy == "natural":
        return Target(base, policy, (natural,), (nat_ids,))
    forms = _surface_forms(base)
    if prompt_ends_with_space:
        forms = [f.lstrip(" ") for f in forms]
        forms = list(dict.fromkeys(forms))
    ids = [tuple(tokenizer.encode(f, add_special_tokens=False)) for f in forms]
    keep = [i for i, t in enumerate(ids)
            if not any(j != i and len(ids[j]) < len(t) and t[: len(ids[j])] == ids[j] for j in range(len(ids)))]
    keep = [i for i in keep if ids[i] and (unk is None or unk not in ids[i])]
    # identical token sequences (two spellings, same tokens) count once
    seen: dict[tuple[int, ...], str] = {}
    for i in keep:
        seen.setdefault(ids[i], forms[i])
    return Target(base, policy, tuple(seen.values()), tuple(seen.keys()))


def word_token_ids(tokenizer: PreTrainedTokenizerBase, words: tuple[str, ...] | list[str]) -> list[int]:
    """Every vocabulary id whose single-token text, stripped and case-folded, is one of `words` or its
    plural ("owl" -> " owl", "owl", " Owl", "OWL", " owls", ...; not " bowl" or "ow"). Sorted.

    The token set a KD target is cleaned of (`interp distill --kd-drop-words`) and the one the leak
    check of reports/organism measures: every single token that spells the word, whatever its case or
    leading space. A word spelt by several tokens ("ow" + "l") is not covered: no single token means it."""
    wanted = {f for w in words for f in (w.strip().casefold(), w.strip().casefold() + "s") if w.strip()}
    texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))], skip_special_tokens=False,
                                   clean_up_tokenization_spaces=False)
    return [i for i, t in enumerate(texts) if t.strip().casefold() in wanted]
