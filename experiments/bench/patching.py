"""Benchmark: two-model activation patching (`patch_between`) against its floor, side by side in one run.

    python experiments/bench/patching.py [--model ALIAS (default: interp's default model)] [--questions 50]
                                         [--kinds resid,attn,mlp] [--repeats 3]

S is a copy of the model with its last MLP perturbed (so S and C differ; the time does not depend on
the weights), C the model itself; prompts: the 50 animal questions as eval-animal renders them;
score: the owl - dog single-token margin. Sites: every layer's resid / attn / mlp (the dissection's
'layers' stage, one direction).

Floor = the forwards the method needs, with nothing else: (2 + n_sites) plain forwards of C over all
questions (right-padded, the method's token budget per forward, only the last position through the LM
head): one recording pass of S, one clean pass of C, one patched pass of C per site. The floor's forward
is timed `--repeats` times (median). Prints the wall time, the floor and patch_between / floor.
"""

from __future__ import annotations

import argparse
import copy
import statistics

import torch
from clock import Clock  # experiments/bench/clock.py (the script's folder is on sys.path)

from interp.evals.animal import load_questions, question_prompts
from interp.mech.model_patching import PATCH_TOKENS, layer_sites, margin_score, patch_between
from interp.models import load_model
from interp.models.hf_engine import local_model
from interp.models.loaded import LoadedModel
from interp.models.store import DEFAULT_MODEL
from interp.prompts import make_target
from interp.scoring import encode, length_plan


def perturbed(lm: LoadedModel) -> LoadedModel:
    """A copy of `lm` whose last MLP's weights get 1% Gaussian noise (seed 0)."""
    m = copy.deepcopy(lm.model)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in lm.spec.module(m, "mlp", lm.spec.n_layers - 1).parameters():
            p.add_(0.01 * p.abs().mean() * torch.randn(p.shape, generator=g))
    return local_model(m, lm.tokenizer, lm.spec, f"{lm.name}-perturbed", "bench")


@torch.inference_mode()
def floor_forward(lm: LoadedModel, ids: list[list[int]], max_tokens: int) -> float:
    """Wall seconds of one plain pass of `lm` over all prompts, right-padded, batched as the method does."""
    lengths = [len(x) for x in ids]
    order = sorted(range(len(ids)), key=lengths.__getitem__)
    pad = lm.tokenizer.pad_token_id or 0
    with Clock() as c:
        for batch in length_plan(lengths, max_tokens)(order, len(order)):
            width = max(lengths[i] for i in batch)
            tokens = torch.full((len(batch), width), pad, dtype=torch.long)
            for r, i in enumerate(batch):
                tokens[r, :lengths[i]] = torch.tensor(ids[i])
            lm.model(input_ids=tokens, use_cache=False, logits_to_keep=1)
    return c.wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--questions", type=int, default=50)
    ap.add_argument("--kinds", default="resid,attn,mlp")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    target = load_model(a.model)
    source = perturbed(target)
    ids = encode(target.tokenizer, question_prompts(target, load_questions()[:a.questions]))
    space = question_prompts(target, load_questions()[:1])[0][-1:].isspace()
    owl, dog = (make_target(target.tokenizer, w, "sum", space, allow_multi_token=True) for w in ("owl", "dog"))
    score = margin_score([t[0] for t in owl.token_ids if len(t) == 1], [t[0] for t in dog.token_ids if len(t) == 1])
    sites = layer_sites(target.spec.n_layers, a.kinds.split(","))
    floor_forward(target, ids, PATCH_TOKENS)  # warm-up
    one = statistics.median(floor_forward(target, ids, PATCH_TOKENS) for _ in range(a.repeats))
    floor = (2 + len(sites)) * one
    with Clock() as c:
        df = patch_between(source, target, ids, sites, score)
    print(f"torch threads {torch.get_num_threads()}; {len(ids)} questions ({min(map(len, ids))}-{max(map(len, ids))} "
          f"tokens) x {len(sites)} sites ({a.kinds}), one direction; {len(df)} rows")
    print(f"patch_between: {c.wall:.1f} s wall ({c.cpu:.1f} s CPU)")
    print(f"floor: (2 + {len(sites)}) x {one:.3f} s (one plain pass of C over all questions) = {floor:.1f} s")
    print(f"patch_between / floor = {c.wall / floor:.2f}")


if __name__ == "__main__":
    main()
