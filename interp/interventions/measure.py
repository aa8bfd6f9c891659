"""The figures every intervention reports for one model condition: bias (probability- and
generation-based, `interp.evals.animal`) and perplexity (`interp.evals.perplexity`).

    cfg = MeasureConfig(bias="owl", system="You love owls...", samples=4)
    m = measure(lm, cfg)                          # the model as it is
    with HeadMask(lm, pruned):
        m_pruned = measure(lm, cfg)               # the same, with heads zeroed
    m.row()                                       # flat dict for a table / CSV
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from interp.evals.animal import BiasGeneration, BiasProbability, bias_generation, bias_probability, load_questions
from interp.evals.perplexity import Perplexity, perplexity
from interp.models.loaded import LoadedModel


@dataclass(frozen=True)
class MeasureConfig:
    bias: str | None = "owl"  # None: perplexity only
    system: str | None = None  # appended to the model's own trait prompt
    questions: tuple[str, ...] = field(default_factory=lambda: tuple(load_questions()))
    samples: int = 4  # sampled answers per question (0: no generation measure)
    max_new_tokens: int = 8
    temperature: float = 1.0
    policy: str = "sum"
    heldout: str | None = None  # text; None = the packaged held-out text
    window: int = 256
    seed: int = 0
    batch_size: int = 16


@dataclass
class Measurement:
    condition: str
    probability: BiasProbability | None
    generation: BiasGeneration | None
    perplexity: Perplexity

    def row(self) -> dict[str, Any]:
        r: dict[str, Any] = {"condition": self.condition}
        if self.probability is not None:
            m = self.probability.mean
            r.update(p_bias_mean=m.estimate, p_bias_lo=m.lo, p_bias_hi=m.hi)
        if self.generation is not None:
            s = self.generation.share
            r.update(gen_share=s.estimate, gen_lo=s.lo, gen_hi=s.hi,
                     gen_k=int(self.generation.table.names_target.sum()), gen_n=len(self.generation.table))
        r.update(perplexity=self.perplexity.perplexity, nll=self.perplexity.nll, ppl_tokens=self.perplexity.n_tokens)
        return r

    def to_dict(self) -> dict[str, Any]:
        return {"condition": self.condition,
                "probability": self.probability.to_dict() if self.probability else None,
                "generation": self.generation.to_dict() if self.generation else None,
                "perplexity": self.perplexity.to_dict()}


def measure(lm: LoadedModel, cfg: MeasureConfig, condition: str = "model", progress: bool = False) -> Measurement:
    """Bias probability, bias generation share and perplexity of `lm` as it is now (hooks included)."""
    prob = gen = None
    if cfg.bias:
        prob = bias_probability(lm, cfg.questions, cfg.bias, cfg.system, cfg.policy, batch_size=cfg.batch_size,
                                seed=cfg.seed, progress=progress)
        if cfg.samples > 0:
            gen = bias_generation(lm, cfg.questions, cfg.bias, cfg.system, cfg.samples, cfg.seed, cfg.max_new_tokens,
                                  cfg.temperature, batch_size=cfg.batch_size, progress=progress)
    ppl = perplexity(lm, cfg.heldout, cfg.window, progress=progress, description=f"perplexity ({condition})")
    return Measurement(condition, prob, gen, ppl)
