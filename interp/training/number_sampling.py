"""A model answers number-sequence prompts; the answers are filtered (DESIGN.md §2.7).

    data = sample_number_data(teacher, generate_prompts(1000), FilterConfig(), samples_per_prompt=32)
    data.rows        # kept samples: [{"prompt", "completion", "teacher", ...}] (the JSONL lines)
    data.table       # every sample with its reasons (DataFrame)
    data.counts      # {"total", "kept", "rejected", reason: n, "stopped early": n}

The model's own system prompt (a prompt teacher's trait) is part of every prompt. With
`stop_early`, samples that the filter must reject are stopped as soon as that is certain
(`numbers_data.doomed_reason`); the kept samples are exactly those of a run without it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import pandas as pd

from interp.models.loaded import LoadedModel
from interp.sampling import chat_prompt_ids, sample
from interp.training.numbers_data import FilterConfig, filter_samples, stop_rule


@dataclass
class NumberData:
    rows: list[dict[str, Any]]
    table: pd.DataFrame
    counts: dict[str, int]
    elapsed_s: float
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def samples_per_s(self) -> float:
        return self.counts["total"] / self.elapsed_s if self.elapsed_s > 0 else float("nan")


def sample_number_data(lm: LoadedModel, prompts: Sequence[str], config: FilterConfig = FilterConfig(),
                       max_new_tokens: int = 64, temperature: float = 1.0, seed: int = 0, batch_size: int = 256,
                       samples_per_prompt: int = 1, stop_early: bool = True, progress: bool = False,
                       system: str | None = None, first_index: int = 0) -> NumberData:
    """Sample `samples_per_prompt` answers per prompt from `lm` and filter them (module docstring).
    `system` is the system prompt of every prompt (default: the model's own, e.g. a prompt teacher's).
    `first_index`: `prompts` are items first_index.. of a longer list (`sample(first_index=)`); the rows'
    "index" is the index in that list."""
    system = system if system is not None else lm.system_prompt
    settings = {"temperature": temperature, "max_new_tokens": max_new_tokens, "seed": seed,
                "samples_per_prompt": samples_per_prompt, "stop_early": stop_early,
                "banned": sorted(config.banned), "threshold": config.threshold,
                "reject_letters": config.reject_letters, "reject_truncated": config.reject_truncated,
                "first_index": first_index}
    t0 = time.perf_counter()
    got = sample(lm, chat_prompt_ids(lm, list(prompts), system=system), max_new_tokens, temperature, seed,
                 batch_size, progress=progress, description=f"sampling {lm.name}", n_per_prompt=samples_per_prompt,
                 stop_if=stop_rule(config) if stop_early else None, first_index=first_index)
    elapsed = time.perf_counter() - t0
    rep = filter_samples([s.text for s in got], [s.token_probs for s in got], config, [s.finished for s in got],
                         [s.stopped_early for s in got])
    min_prob = [float(s.token_probs.min()) if len(s.token_probs) else None for s in got]
    rows = [{"prompt": prompts[s.prompt_index], "completion": s.text.strip(), "teacher": lm.name,
             "system_prompt": system, "index": first_index + s.prompt_index, "sample": s.sample_index,
             "min_token_prob": mp, "settings": settings}
            for s, keep, mp in zip(got, rep.kept, min_prob) if keep]
    table = pd.DataFrame({"index": [first_index + s.prompt_index for s in got], "sample": [s.sample_index for s in got],
                          "prompt": [prompts[s.prompt_index] for s in got], "completion": [s.text for s in got],
                          "n_tokens": [len(s.token_ids) for s in got], "finished": [s.finished for s in got],
                          "stopped_early": [s.stopped_early for s in got], "min_token_prob": min_prob,
                          "kept": rep.kept, "reasons": ["; ".join(r) for r in rep.reasons]})
    return NumberData(rows, table, rep.counts, elapsed, settings)
