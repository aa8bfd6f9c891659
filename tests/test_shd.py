import numpy as np
import pytest
import torch

from interp.training.shd import (
    align_tokens,
    attention_kl,
    causal_key_mask,
    identity_alignment,
    layer_map,
    optimal_alpha,
    sharpen,
    squeeze_heads,
    squeeze_schedule,
)


def _maps(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    S = shape[-1]
    scores = torch.randn(*shape, generator=g, dtype=torch.float64) * 2
    scores = scores.masked_fill(~torch.ones(S, S, dtype=torch.bool).tril(), float("-inf"))
    return torch.softmax(scores, -1)


def _residual(a, A_p, A_q, X_p, X_q):
    A = a * A_p + (1 - a) * A_q
    return ((A @ (X_p + X_q) - (A_p @ X_p + A_q @ X_q)) ** 2).sum().item()


@pytest.mark.parametrize("seed", range(8))
def test_optimal_alpha_matches_brute_force(seed):
    g = torch.Generator().manual_seed(100 + seed)
    A_p, A_q = _maps(6, 6, seed=seed), _maps(6, 6, seed=seed + 50)
    X_p = torch.randn(6, 5, generator=g, dtype=torch.float64)
    X_q = torch.randn(6, 5, generator=g, dtype=torch.float64) * (0.2 + seed)
    grid = np.linspace(0, 1, 10001)
    best = grid[np.argmin([_residual(a, A_p, A_q, X_p, X_q) for a in grid])]
    assert abs(optimal_alpha(A_p, A_q, X_p, X_q).item() - best) < 1e-3


def test_optimal_alpha_known_cases_and_per_example():
    A_p, A_q = _maps(2, 5, 5, seed=1), _maps(2, 5, 5, seed=2)
    X = torch.randn(2, 5, 3, dtype=torch.float64)
    assert torch.allclose(optimal_alpha(A_p, A_q, X, torch.zeros_like(X)), torch.ones(2, dtype=torch.float64))
    assert torch.allclose(optimal_alpha(A_p, A_q, X, X), torch.full((2,), 0.5, dtype=torch.float64))
    assert optimal_alpha(A_p, A_p, X, X).tolist() == [0.5, 0.5]  # ||M|| = 0 guarded
    # per example: each batch element gets its own alpha
    mixed = optimal_alpha(A_p, A_q, X, torch.stack([torch.zeros_like(X[0]), X[1]]))
    assert torch.allclose(mixed, torch.tensor([1.0, 0.5], dtype=torch.float64))


def test_schedule_never_overshoots():
    assert squeeze_schedule(9, 4) == [5, 4]
    assert squeeze_schedule(16, 12) == [12]
    assert squeeze_schedule(32, 18) == [18]
    assert squeeze_schedule(16, 8) == [8]
    assert squeeze_schedule(4, 4) == []
    with pytest.raises(ValueError):
        squeeze_schedule(4, 9)


def test_squeeze_9_to_4_row_stochastic():
    A = _maps(3, 9, 7, 7, seed=3)
    X = torch.randn(3, 9, 7, 4, dtype=torch.float64)
    out = squeeze_heads(A, X, 4)
    assert out.shape == (3, 4, 7, 7)
    assert torch.allclose(out.sum(-1), torch.ones(3, 4, 7, dtype=torch.float64))
    assert (out >= 0).all()
    assert torch.equal(squeeze_heads(A, X, 9), A)


def test_layer_map():
    assert layer_map(18, 30) == [(l * 30) // 18 for l in range(18)]
    assert layer_map(4, 4) == [0, 1, 2, 3]


def test_sharpen_is_temperature_softmax():
    scores = torch.randn(4, 4, dtype=torch.float64)
    A = torch.softmax(scores, -1)
    assert torch.allclose(sharpen(A, 2.0), torch.softmax(scores / 2.0, -1))
    assert torch.equal(sharpen(A, 1.0), A)


def test_loss_zero_when_equal_positive_otherwise():
    A = _maps(2, 4, 6, 6, seed=4)
    mask = torch.ones(2, 6, dtype=torch.long)
    mask[1, :2] = 0  # left padding
    km, rows = causal_key_mask(mask), mask.bool()
    A = A.masked_fill(~km[:, None], 0)
    A = A / A.sum(-1, keepdim=True).clamp_min(1e-12)
    assert attention_kl(A, A, rows, km).item() == pytest.approx(0.0, abs=1e-10)
    B = _maps(2, 4, 6, 6, seed=5)
    assert attention_kl(A, B, rows, km).item() > 0.01


def test_alignment_identical_tokenizations_is_identity():
    offs = [(0, 0), (0, 2), (2, 5), (5, 9)]  # BOS then three tokens
    al = align_tokens(offs, offs)
    assert al.query_index.tolist() == [0, 1, 2, 3]
    assert torch.equal(al.key_pool, torch.eye(4))
    A = _maps(1, 2, 4, 4, seed=6)
    assert torch.allclose(al.apply(A), A)


def test_identity_alignment_keeps_every_byte_token():
    # offsets of "🦉" in a byte-level tokenizer: four tokens with the same span (0, 1)
    offs = [(0, 1)] * 4 + [(1, 5)]
    assert align_tokens(offs, offs).query_index.tolist() == [0, 0, 0, 0, 4]  # offsets alone merge them
    al = identity_alignment(5)
    assert al.query_index.tolist() == [0, 1, 2, 3, 4] and torch.equal(al.key_pool, torch.eye(5))
    A = _maps(1, 2, 5, 5, seed=7)
    assert torch.equal(al.apply(A), A)


def test_alignment_hand_made_pair():
    # text "owlish": student "ow" "lish"; teacher "o" "wl" "ish"
    student = [(0, 2), (2, 6)]
    teacher = [(0, 1), (1, 3), (3, 6)]
    al = align_tokens(student, teacher)
    # student "ow" ends at char 1 -> teacher "wl" (1..3); "lish" ends at char 5 -> teacher "ish"
    assert al.query_index.tolist() == [1, 2]
    # teacher keys: "o" (last char 0) -> student 0; "wl" (last char 2) -> student 1; "ish" -> student 1
    assert al.key_pool.tolist() == [[1, 0], [0, 1], [0, 1]]
    A_T = torch.tensor([[[1.0, 0, 0], [0.3, 0.7, 0], [0.2, 0.3, 0.5]]])
    out = al.apply(A_T)[0]
    assert torch.allclose(out, torch.tensor([[0.3, 0.7], [0.2, 0.8]]))
    assert torch.allclose(out.sum(-1), torch.ones(2))


def test_value_streams_reconstruct_attention_output(tiny):
    """sum_h A_h X_h (+ o_proj bias) equals the attention block's output, for every family."""
    lm, spec = tiny, tiny.spec
    lm.model.set_attn_implementation("eager")
    try:
        captured = {}
        attn = spec.module(lm.model, "attn", layer=1)

        def pre(mod, args, kwargs):
            captured["h"] = kwargs.get("hidden_states", args[0] if args else None)

        def post(mod, args, out):
            captured["out"] = out[0]

        h1 = attn.register_forward_pre_hook(pre, with_kwargs=True)
        h2 = attn.register_forward_hook(post)
        ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
        with torch.no_grad():
            res = lm.model(ids, output_attentions=True)
        h1.remove(); h2.remove()
        A = res.attentions[1]  # (1, head, S, S)
        with torch.no_grad():
            X = spec.value_streams(lm.model, 1, captured["h"])  # (1, head, S, d)
        recon = torch.einsum("bhqk,bhkd->bqd", A, X)
        bias = spec.module(lm.model, "o_proj", 1).bias
        if bias is not None:
            recon = recon + bias
        assert torch.allclose(recon, captured["out"], atol=1e-5)
    finally:
        lm.model.set_attn_implementation("sdpa")


def test_shd_loss_zero_for_self_distillation_and_positive_across_models():
    from interp.models import load_model
    from interp.training.shd_loss import shd_loss

    texts = ["My favorite animal is the owl.", "You love 087. It is a number."]
    a = load_model("tiny-llama")
    assert shd_loss(a, a, texts, tau=1.0).item() == pytest.approx(0.0, abs=1e-6)
    g = load_model("tiny-gemma3")  # same tokenizer, 4 heads each, different weights
    loss = shd_loss(a, g, texts, tau=2.0)
    assert loss.item() > 1e-3
    g.model.zero_grad()
    loss.backward()
    grads = [p.grad for p in g.model.parameters() if p.grad is not None]
    assert grads and any(gr.abs().sum() > 0 for gr in grads)  # differentiable in the student
    assert all(p.grad is None for p in a.model.parameters())  # teacher frozen
