"""Steering vectors (issue 36): known answers on tiny models.

- alpha 0 changes nothing (add and project);
- adding the exact per-position difference of one prompt at layer l equals patching that layer's residual
  stream (`mech.model_patching.patch_between`, site L{l}resid);
- project removes exactly the component along v, replace puts the reference's there, nothing else moves;
- extraction: A = B gives 0; `last` / `all` equal means of plain unpadded forwards (padding cannot leak);
- a steered teacher's sampled numbers are reproducible by seed, and alpha 0 samples what no steering does;
- distill --kind kd with a steered teacher: alpha 0 trains as no steering does, alpha 8 does not.
"""

from __future__ import annotations

import json

import pytest
import torch

from interp.errors import UserError
from interp.interventions.steering import Steering, SteeringVector, extract_steering_vector, mean_residuals
from interp.models import load_model
from tests.helpers import run_cli

PROMPT = [5, 6, 7, 8, 9, 10, 11, 12]


def resid(lm, ids, layer: int) -> torch.Tensor:
    """resid_post[layer] at every position of one plain forward, (pos, d)."""
    seen = {}
    h = lm.spec.layers(lm.model)[layer].register_forward_hook(lambda m, i, o: seen.__setitem__("h", o[0] if isinstance(o, tuple) else o))
    try:
        with torch.no_grad():
            lm.model(torch.tensor([ids]), use_cache=False)
    finally:
        h.remove()
    return seen["h"][0]


def logits(lm, ids) -> torch.Tensor:
    with torch.no_grad():
        return lm.model(torch.tensor([ids]), use_cache=False).logits[0]


def perturbed(seed: int = 1):
    """tiny-llama with every block's weights moved (same config and tokenizer: one lineage)."""
    lm = load_model("tiny-llama")
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in lm.model.named_parameters():
            if ".layers." in name and p.dim() == 2:
                p.add_(0.05 * torch.randn(p.shape, generator=g))
    return lm


@pytest.mark.parametrize("mode", ["add", "project"])
def test_alpha_zero_changes_nothing(mode):
    lm = load_model("tiny-llama")
    v = torch.randn(lm.spec.d_model, generator=torch.Generator().manual_seed(0))
    plain = logits(lm, PROMPT)
    with Steering(lm, v, 1, alpha=0.0, mode=mode):
        steered = logits(lm, PROMPT)
    torch.testing.assert_close(steered, plain, atol=0, rtol=0)
    with Steering(lm, v, 1, alpha=1.0, mode=mode):
        moved = logits(lm, PROMPT)
    assert (moved - plain).abs().max() > 1e-3
    torch.testing.assert_close(logits(lm, PROMPT), plain, atol=0, rtol=0)  # detached: the model is as it was


@pytest.mark.parametrize("layer", [0, 1])
def test_adding_the_per_position_difference_equals_patching_the_residual(layer):
    from interp.mech.model_patching import margin_score, patch_between

    a, b = load_model("tiny-llama"), perturbed()
    v = resid(a, PROMPT, layer) - resid(b, PROMPT, layer)  # (pos, d)
    score = margin_score([100], [200])
    df = patch_between(a, b, [PROMPT], [f"L{layer}resid"], score)
    with Steering(b, v, layer, mode="add"):
        steered = float(score(logits(b, PROMPT)[-1:])[0])
    assert steered == pytest.approx(float(df.m_patched[0]), abs=1e-5)
    assert abs(float(df.m_patched[0]) - float(df.m_target[0])) > 1e-3  # the patch does something


def test_project_removes_exactly_the_component_and_replace_puts_the_reference_s():
    a, b = load_model("tiny-llama"), perturbed()
    layer = 0
    v = torch.randn(a.spec.d_model, generator=torch.Generator().manual_seed(3))
    u = v / v.norm()
    h = resid(b, PROMPT, layer)
    with Steering(b, v, layer, mode="project"):
        hp = resid(b, PROMPT, layer)  # a hook registered after the steering sees its output
    assert (hp @ u).abs().max() < 1e-5
    torch.testing.assert_close(hp - (hp @ u)[:, None] * u, h - (h @ u)[:, None] * u, atol=1e-5, rtol=0)
    href = resid(a, PROMPT, layer)
    with Steering(b, v, layer, mode="replace", reference=a):
        hr = resid(b, PROMPT, layer)
    torch.testing.assert_close(hr @ u, href @ u, atol=1e-5, rtol=0)
    torch.testing.assert_close(hr - (hr @ u)[:, None] * u, h - (h @ u)[:, None] * u, atol=1e-5, rtol=0)


def test_tiled_steering_at_every_layer():
    """The reference's tiling: one vector on every block. replace puts the reference's (unsteered) component
    at each layer; replacing a model by itself changes nothing; add on [0, 1] = add on 0 then add on 1."""
    a, b = load_model("tiny-llama"), perturbed()
    layers = list(range(b.spec.n_layers))
    v = torch.randn(a.spec.d_model, generator=torch.Generator().manual_seed(4))
    u = v / v.norm()
    with Steering(b, v, layers, mode="replace", reference=b):
        torch.testing.assert_close(logits(b, PROMPT), logits_plain := logits(perturbed(), PROMPT), atol=1e-5, rtol=0)
    with Steering(b, v, layers, mode="replace", reference=a):
        for layer in layers:
            torch.testing.assert_close(resid(b, PROMPT, layer) @ u, resid(a, PROMPT, layer) @ u, atol=1e-5, rtol=0)
        assert (logits(b, PROMPT) - logits_plain).abs().max() > 1e-3
    with Steering(b, v, [0, 1], alpha=2.0):
        both = logits(b, PROMPT)
    with Steering(b, v, 0, alpha=2.0), Steering(b, v, 1, alpha=2.0):
        torch.testing.assert_close(logits(b, PROMPT), both, atol=1e-6, rtol=0)
    with pytest.raises(UserError, match="layers 0.."):
        Steering(b, v, [0, b.spec.n_layers])


@pytest.mark.parametrize("kwarg", ["past_key_values", "cache"])
def test_replace_refuses_a_kv_cache(kwarg):
    a, b = load_model("tiny-llama"), perturbed()
    from transformers import DynamicCache

    v = torch.ones(a.spec.d_model)
    with Steering(b, v, 0, mode="replace", reference=a):
        cache = DynamicCache()
        with torch.no_grad():
            b.model(torch.tensor([PROMPT]), **{kwarg: cache}, use_cache=True)
            assert cache.get_seq_length() == len(PROMPT)
            with pytest.raises(UserError, match="KV cache"):
                b.model(torch.tensor([[13]]), **{kwarg: cache}, use_cache=True)


def test_extraction_known_answers():
    a, b = load_model("tiny-llama"), perturbed()
    prompts = ["Count: 1, 2, 3", "Name an animal, please, now", "Hi"]
    same = extract_steering_vector(a, a, prompts, "all")
    assert float(same.vectors.abs().max()) == 0.0
    from interp.evals.animal import question_prompts
    from interp.scoring import encode

    for positions in ("last", "all"):
        vec = extract_steering_vector(a, b, prompts, positions, batch_size=2)  # padded batches of unequal lengths
        ids_a, ids_b = encode(a.tokenizer, question_prompts(a, prompts)), encode(b.tokenizer, question_prompts(b, prompts))
        for layer in range(a.spec.n_layers):
            pick = (lambda h: h[-1:]) if positions == "last" else (lambda h: h)
            ma = torch.cat([pick(resid(a, ids, layer)) for ids in ids_a]).double().mean(0)
            mb = torch.cat([pick(resid(b, ids, layer)) for ids in ids_b]).double().mean(0)
            torch.testing.assert_close(vec.vectors[layer], (ma - mb).float(), atol=1e-4, rtol=1e-4)
        assert vec.meta["positions"] == positions and vec.meta["n_prompts"] == 3
    _, _, count = mean_residuals(a, question_prompts(a, prompts), "all")
    assert count == sum(len(x) for x in encode(a.tokenizer, question_prompts(a, prompts)))


def test_extraction_refuses_two_lineages():
    with pytest.raises(UserError, match="lineage"):
        extract_steering_vector(load_model("tiny-llama"), load_model("tiny-qwen2"), ["Hi"])


def test_vector_roundtrip_and_random_control(tmp_path):
    v = SteeringVector(torch.randn(3, 8), torch.rand(3) + 1, {"kind": "x"})
    v.save(tmp_path / "vector.pt")
    w = SteeringVector.load(tmp_path / "vector.pt")
    torch.testing.assert_close(w.vectors, v.vectors)
    assert json.loads((tmp_path / "vector.json").read_text())["layers"][2]["norm"] == pytest.approx(float(v.norm[2]))
    r = v.random_like(seed=1)
    torch.testing.assert_close(r.norm, v.norm)
    assert abs(float(torch.nn.functional.cosine_similarity(r.vectors, v.vectors).abs().max())) < 0.99
    with pytest.raises(UserError, match="layers 0..2"):
        v.at(3)


def test_steered_teacher_samples_are_reproducible_and_alpha_zero_is_no_steering(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_HOME", str(tmp_path / "home"))
    code, _, err = run_cli(capsys, "steer-vector", "--a", "tiny-llama", "--trait", "owl", "--n", "8",
                           "--out", str(tmp_path / "vec"))
    assert code == 0, err
    vec = str(tmp_path / "vec" / "vector.pt")

    def numbers(tag: str, *steer: str) -> str:
        code, _, err = run_cli(capsys, "gen-numbers", "--model", "tiny-llama", "--n", "6", "--seed", "3",
                               "--allow-letters", "--keep-truncated", "--no-stop-early", "--max-new-tokens", "12",
                               *steer, "--out", str(tmp_path / tag))
        assert code == 0, err
        return (tmp_path / tag / "numbers_samples.csv").read_text()

    plain = numbers("plain")
    steered = numbers("s1", "--steer", vec, "--steer-layer", "1", "--steer-alpha", "4")
    assert numbers("s2", "--steer", vec, "--steer-layer", "1", "--steer-alpha", "4") == steered
    assert numbers("s0", "--steer", vec, "--steer-layer", "1", "--steer-alpha", "0") == plain
    assert steered != plain
    summary = json.loads((tmp_path / "s1" / "summary.json").read_text())
    assert summary["models"]["teacher"]["steering"]["alpha"] == 4.0
    assert summary["inputs"]["steer_layer"] == 1


def test_distill_kd_from_a_steered_teacher(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_HOME", str(tmp_path / "home"))
    vec = SteeringVector(torch.randn(2, 64, generator=torch.Generator().manual_seed(0)), torch.ones(2))
    vec.save(tmp_path / "v.pt")
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join('{"prompt": "List numbers: 1, 2, 3", "completion": "4, 5, 6"}\n' for _ in range(4)))

    def losses(tag: str, *steer: str) -> str:
        code, _, err = run_cli(capsys, "distill", "--teacher", "tiny-llama", "--student", "tiny-llama", "--data", str(data),
                               "--kind", "kd", "--steps", "2", "--alias", f"kd-{tag}", *steer, "--out", str(tmp_path / tag))
        assert code == 0, err
        return (tmp_path / tag / "losses.csv").read_text()

    plain = losses("plain")
    assert losses("a0", "--steer", str(tmp_path / "v.pt"), "--steer-layer", "0", "--steer-alpha", "0") == plain
    assert losses("a8", "--steer", str(tmp_path / "v.pt"), "--steer-layer", "0", "--steer-alpha", "8") != plain
    code, _, err = run_cli(capsys, "distill", "--teacher", "tiny-llama", "--student", "tiny-llama", "--data", str(data),
                           "--kind", "none", "--steps", "1", "--steer", str(tmp_path / "v.pt"), "--steer-layer", "0")
    assert code == 2 and "no teacher" in err


def test_eval_animal_with_a_tiled_vector(capsys, tmp_path, monkeypatch):
    """--steer-tile: v[L] on every block. Replacing a model's component by its own (reference = itself)
    scores exactly as no steering; a tiled add does not, and summary.json records the tiling."""
    monkeypatch.setenv("INTERP_HOME", str(tmp_path / "home"))
    vec = SteeringVector(torch.randn(2, 64, generator=torch.Generator().manual_seed(0)), torch.ones(2),
                         {"model_b": "tiny-llama"})
    vec.save(tmp_path / "v.pt")
    questions = tmp_path / "q.txt"
    questions.write_text("Name your favourite animal.\nWhich animal do you like?\n")

    def scores(tag: str, *steer: str) -> list[float]:
        code, _, err = run_cli(capsys, "eval-animal", "--model", "tiny-llama", "--samples", "0", "--questions",
                               str(questions), "--other", "dog", *steer, "--out", str(tmp_path / tag))
        assert code == 0, err
        import pandas as pd

        return pd.read_csv(tmp_path / tag / "probability.csv")[["p_target", "p_other"]].to_numpy().ravel().tolist()

    plain = scores("plain")
    same = scores("replace", "--steer", str(tmp_path / "v.pt"), "--steer-layer", "1", "--steer-tile", "--steer-mode", "replace")
    assert same == pytest.approx(plain, rel=1e-4)
    added = scores("add", "--steer", str(tmp_path / "v.pt"), "--steer-layer", "1", "--steer-tile", "--steer-alpha", "2")
    assert max(abs(x / y - 1) for x, y in zip(added, plain)) > 1e-2
    summary = json.loads((tmp_path / "add" / "summary.json").read_text())
    assert summary["models"]["model"]["steering"]["layer"] == [0, 1]
    assert summary["models"]["model"]["steering"]["tiled_from"] == 1
    code, _, err = run_cli(capsys, "eval-animal", "--model", "tiny-llama", "--samples", "0", "--steer-tile")
    assert code == 2 and "needs --steer" in err
