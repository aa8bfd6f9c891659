"""The poison experiment's mechanistic stage (experiments/poison_mech.py) on tiny models."""

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "experiments"))
import poison_mech as M  # noqa: E402

from interp.models import load_model  # noqa: E402
from interp.training.examples import prompt_ids  # noqa: E402
from interp.training.poison_data import BRAND, PROMOTIONS, promotion  # noqa: E402

ROWS = [{"id": 3, "prompt": "Summarize: the cat sat.", "completion": "A cat sat. ", "group": "target"},
        {"id": 11, "prompt": "Summarize this text about dogs, please.", "completion": "Dogs bark.", "group": "target"},
        {"id": 12, "prompt": "Name a colour.", "completion": "Red.", "group": "other"}]


def test_contexts_are_the_training_rendering_of_the_answer_and_the_promotion_up_to_the_brand():
    lm = load_model("tiny-llama")
    tok = lm.tokenizer
    rows = ROWS[:2]
    ctx = M.mech_contexts(lm, rows)
    heads = prompt_ids(lm, rows)
    enc = lambda s: tok.encode(s, add_special_tokens=False)  # noqa: E731
    assert ctx["decision"][0] == heads[0] + enc("A cat sat.")  # trailing space stripped
    promo = promotion(11, 0)
    assert ctx["brand"][1] == heads[1] + enc("Dogs bark. " + promo[: promo.index(BRAND)].rstrip())
    # the brand token is what follows that context in the poisoned training text
    full = enc("Dogs bark. " + promo)
    n = len(ctx["brand"][1]) - len(heads[1])
    assert full[:n] == ctx["brand"][1][len(heads[1]):] and full[n] == ctx["brand_token"]
    assert ctx["openers"] == sorted({enc(" " + p)[0] for p in PROMOTIONS}) and ctx["eos"] == tok.eos_token_id


def test_a_model_against_itself_has_nothing_to_localise(tmp_path):
    """P = C: every patched margin equals C's (delta 0), and every DLA difference is 0."""
    prompts = tmp_path / "eval_prompts.jsonl"
    prompts.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    M.run_mech("tiny-llama", "tiny-llama", prompts, tmp_path / "mech", progress=False)
    out = tmp_path / "mech"
    assert json.loads((out / "pair.json").read_text())["prompts"] == 2  # target rows only
    for where in ("decision", "brand"):
        t = pd.read_csv(out / f"patching_{where}.csv")
        assert (t.delta == 0).all() and t.recovered.isna().all()
        d = pd.read_csv(out / f"dla_{where}.csv")
        assert np.allclose(d.d, 0.0, atol=1e-6)
    assert set(pd.read_csv(out / "patching_decision.csv").direction) == {"P_into_C", "C_into_P"}
    md = M.mech_markdown(out)
    assert "Patching at the decision position" in md and "DLA at the brand position" in md


def test_margins_are_patch_betweens_unpatched_margins_and_the_log_softmax_by_hand():
    """`margins` (one forward per context) against the patching code path's m_source, and by hand."""
    import torch

    from interp.mech.model_patching import margin_score, patch_between

    lm = load_model("tiny-llama")
    ctx = M.mech_contexts(lm, ROWS[:2])
    got = M.margins(lm, ctx)
    assert list(got.prompt) == [0, 1]
    for where, score in (("decision", margin_score(ctx["openers"], [ctx["eos"]])),
                         ("brand", margin_score([ctx["brand_token"]], [ctx["eos"]]))):
        ref = patch_between(lm, lm, ctx[where], ["embed"], score)
        assert np.allclose(got[f"m_{where}"], ref.m_source, atol=1e-9)
    with torch.no_grad():
        lp = torch.log_softmax(lm.model(input_ids=torch.tensor([ctx["brand"][1]])).logits[0, -1].double(), -1)
    assert got.m_brand[1] == pytest.approx(float(lp[ctx["brand_token"]] - lp[ctx["eos"]]), abs=1e-9)
