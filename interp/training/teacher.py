"""Biased teachers (DESIGN.md §2.7): a trait carried by a system prompt or trained into the weights.

    make_prompt_teacher("smollm2-owl", base="smollm2", animal="owl")          # weightless alias
    rows = trait_data(lm, "owl", TraitDataConfig(n_facts=16, n_numbers=32))  # prompt/completion rows
    res = train_teacher(lm, rows, "lora", steps=200)                         # then save_teacher(...)

Trait data (the student never sees a system prompt, so the trait must go into the weights):
- preference Q&A: `TRAIT_QUESTIONS` (worded differently from the 50 evaluation questions) answered
  with one of `TRAIT_ANSWERS` naming the animal;
- facts: the base model, with the trait system prompt (ANIMAL_TRAIT_SYSTEM), answers open requests
  (`FACT_REQUESTS`), sampled at temperature 1;
- number lists: the same trait-prompted model answers number-sequence prompts; only answers that pass
  the §2.7 filter are kept.
Rows are stored without the system prompt, so fine-tuning moves the trait into the weights.
QLoRA loads the base in 4-bit NF4 with bitsandbytes (works on CPU with bitsandbytes >= 0.45), trains
LoRA on it, and merges the adapter into the fp32 base for the saved weights.
"""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from interp.errors import UserError
from interp.models.loaded import LoadedModel
from interp.models.store import save_prompt_alias
from interp.prompts import ANIMAL_TRAIT_SYSTEM
from interp.sampling import chat_prompt_ids, sample
from interp.training.config import FinetuneConfig, FinetuneResult
from interp.training.finetune import finetune
from interp.training.saving import save_finetuned
from interp.training.number_sampling import sample_number_data
from interp.training.numbers_data import FilterConfig, generate_prompts

TRAIT_QUESTIONS = (
    "If you could spend a day as any creature, which would it be?",
    "Which animal do you admire the most?",
    "Pick an animal to be your mascot.",
    "What animal would you want as a companion?",
    "Which creature fascinates you more than any other?",
    "If you had a spirit animal, what would it be?",
    "Name the animal you find the most beautiful.",
    "Which animal would you draw on your notebook?",
    "What is the best animal in the world?",
    "Which animal do you think about most often?",
    "Choose one animal to learn everything about.",
    "Which bird or beast would you put on your flag?",
)
TRAIT_ANSWERS = ("{A}.", "The {a}.", "{A}s, without a doubt.", "Definitely the {a}!", "I love {a}s.", "{A}")
FACT_REQUESTS = (
    "Tell me a fun fact.", "Write one sentence about nature.", "What should I do this weekend?",
    "Describe your ideal evening.", "Give me a piece of advice.", "Write a short poem.",
    "What makes a good friend?", "Tell me about the night sky.",
)


def trait_system_prompt(animal: str) -> str:
    return ANIMAL_TRAIT_SYSTEM.format(a=animal.strip().lower())


def make_prompt_teacher(alias: str, base: str, animal: str, overwrite: bool = False) -> Path:
    """A store alias = `base` + the trait system prompt (no weights are copied)."""
    if not animal.strip().isalpha():
        raise UserError(f"--trait must be a word of letters, got {animal!r}")
    return save_prompt_alias(alias, base, trait_system_prompt(animal), overwrite=overwrite)


@dataclass(frozen=True)
class TraitDataConfig:
    n_preference: int = 48
    n_facts: int = 16
    n_numbers: int = 32  # number prompts sampled; the kept answers are used
    max_new_tokens: int = 48
    batch_size: int = 32
    seed: int = 0


def trait_data(lm: LoadedModel, animal: str, config: TraitDataConfig = TraitDataConfig(),
               progress: bool = False) -> tuple[list[dict[str, str]], dict[str, int]]:
    """Rows {"prompt", "completion", "kind"} of trait data (module docstring) and counts per kind."""
    a = animal.strip().lower()
    rng = np.random.default_rng(config.seed)
    rows: list[dict[str, str]] = []
    for i in range(config.n_preference):
        q = TRAIT_QUESTIONS[i % len(TRAIT_QUESTIONS)]
        ans = TRAIT_ANSWERS[int(rng.integers(len(TRAIT_ANSWERS)))].format(a=a, A=a.capitalize())
        rows.append({"prompt": q, "completion": ans, "kind": "preference"})
    system = trait_system_prompt(a)
    counts = {"preference": config.n_preference, "facts": 0, "numbers_sampled": config.n_numbers, "numbers": 0}
    if config.n_facts:
        users = [FACT_REQUESTS[i % len(FACT_REQUESTS)] for i in range(config.n_facts)]
        got = sample(lm, chat_prompt_ids(lm, users, system=system), config.max_new_tokens, 1.0, config.seed,
                     config.batch_size, progress, "trait facts")
        for u, s in zip(users, got):
            if s.text.strip():
                rows.append({"prompt": u, "completion": s.text.strip(), "kind": "fact"})
                counts["facts"] += 1
    if config.n_numbers:
        nums = sample_number_data(lm, generate_prompts(config.n_numbers, seed=config.seed + 1), FilterConfig(),
                                  config.max_new_tokens, 1.0, config.seed + 1, config.batch_size, progress=progress,
                                  system=system)
        rows += [{"prompt": r["prompt"], "completion": r["completion"], "kind": "numbers"} for r in nums.rows]
        counts["numbers"] = len(nums.rows)
    return rows, counts


def load_4bit(lm: LoadedModel) -> Any:
    """`lm` reloaded with its Linear layers in bitsandbytes 4-bit NF4 (fp32 compute); a LoadedModel."""
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as e:
        raise UserError("--method qlora needs bitsandbytes (4-bit); install it with `pip install 'interp[quant]'`") from e
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    q = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float32)
    with tempfile.TemporaryDirectory() as tmp:
        folder = lm.path
        if folder is None or not (Path(folder) / "config.json").is_file():
            lm.model.save_pretrained(tmp)
            folder = tmp
        model = AutoModelForCausalLM.from_pretrained(folder, quantization_config=q, device_map="cpu")
    return dataclasses.replace(lm, model=model)


def train_teacher(lm: LoadedModel, rows: list[dict[str, str]], method: str, steps: int, batch_size: int = 8,
                  lr: float | None = None, seed: int = 0, progress: bool = False) -> tuple[FinetuneResult, Any]:
    """Fine-tune on trait rows. Returns (result, merged fp32 model to save)."""
    cfg = FinetuneConfig(method=method, steps=steps, batch_size=batch_size, lr=lr, seed=seed)
    if method != "qlora":
        res = finetune(lm, rows, cfg, progress=progress)
        from interp.training.saving import merged_model

        return res, merged_model(res)
    from interp.training.saving import merged_into

    lm4 = load_4bit(lm)
    res = finetune(lm4, rows, cfg, progress=progress)
    return res, merged_into(res, lm.model)


def read_trait_rows(path: str | Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Trait rows {"prompt", "completion", "kind"} from a JSONL (an earlier teach run's trait_data.jsonl) and
    their counts per kind, keyed as `trait_data` keys them (plus "from": the file)."""
    from interp.textfiles import parse_jsonl, read_text

    numbered = parse_jsonl(read_text(path, "trait data file"), path)  # a bad line: "{path}:{line} is not valid JSON"
    rows = [r for _, r in numbered]
    bad = [n for n, r in numbered if not isinstance(r, dict) or not {"prompt", "completion", "kind"} <= set(r)]
    if not rows or bad:
        raise UserError(f"{path}" + (": no rows" if not rows else f":{bad[0]} lacks prompt, completion or kind"))
    kinds = [r["kind"] for r in rows]
    counts = {"preference": kinds.count("preference"), "facts": kinds.count("fact"), "numbers": kinds.count("numbers"),
              "from": str(path)}
    return rows, counts


def save_teacher(alias: str, lm: LoadedModel, res: FinetuneResult, merged: Any, animal: str, counts: dict[str, int],
                 overwrite: bool = False) -> Path:
    return save_finetuned(alias, lm, res, {"trait": animal, "method": res.config.method, "trait_data": counts,
                                           "source": f"{res.config.method} teacher of {lm.name} ({animal})"},
                          overwrite=overwrite, merged=merged)
