"""Out-of-memory back-off: a fake function that fails above a batch size, then the real scoring loops."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import interp.mech.activations as A
import interp.scoring as S
from interp.batching import chunks, is_oom, run_with_backoff
from interp.errors import UserError
from interp.models import load_model
from interp.scoring import continuation_logprobs, next_token_logprobs, trie_logprobs
from tests.helpers import assert_close_reordered

OOM = torch.OutOfMemoryError  # what CUDA raises (a RuntimeError subclass)


def flaky(limit: int, seen: list[list[int]], done: list[int], error=lambda: OOM("CUDA out of memory. Tried to allocate 2.00 GiB")):
    """run(batch): raises an out-of-memory error above `limit` items, else records the batch."""
    def run(batch: list[int]) -> None:
        seen.append(list(batch))
        if len(batch) > limit:
            raise error()
        done.extend(batch)
    return run


def test_backoff_halves_until_it_fits_and_covers_every_item_once():
    seen, done = [], []
    with pytest.warns(RuntimeWarning, match="out of memory at a batch of 16; retrying with batches of 8"):
        size = run_with_backoff(list(range(37)), 16, flaky(3, seen, done))
    assert size == 2  # 16 -> 8 -> 4 -> 2: the first size <= 3
    assert sorted(done) == list(range(37)) and len(done) == 37  # nothing lost, nothing twice
    assert [len(b) for b in seen[:4]] == [16, 8, 4, 2]
    assert all(len(b) <= 2 for b in seen[4:])  # the smaller size sticks for the rest


def test_backoff_keeps_the_planner_and_its_order():
    seen, done = [], []
    order = [5, 3, 9, 1, 7, 0]
    run_with_backoff(order, 4, flaky(1, seen, done), plan=chunks)
    assert done == order


def test_cpu_allocator_failures_count_as_out_of_memory():
    cpu = RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough memory: "
                       "you tried to allocate 8589934592 bytes.")
    assert is_oom(cpu) and is_oom(OOM("CUDA out of memory")) and is_oom(MemoryError())
    assert not is_oom(RuntimeError("shape mismatch")) and not is_oom(ValueError("out of memory"))
    seen, done = [], []
    with pytest.warns(RuntimeWarning):
        run_with_backoff(list(range(6)), 6, flaky(2, seen, done, error=lambda: cpu))
    assert sorted(done) == list(range(6))


def test_single_item_that_does_not_fit_is_one_user_error():
    with pytest.warns(RuntimeWarning), pytest.raises(UserError, match=r"out of memory on a single item \(scoring\).*--dtype bf16"):
        run_with_backoff(list(range(4)), 4, flaky(0, [], []), what="scoring")


def test_other_errors_are_not_swallowed():
    def boom(batch):
        raise RuntimeError("shape mismatch")
    with pytest.raises(RuntimeError, match="shape mismatch"):
        run_with_backoff([1, 2, 3], 2, boom)


@pytest.fixture
def oom_above(monkeypatch):
    """Make a scoring/caching function raise OOM whenever a batch is larger than `limit`."""
    def install(module, name, limit, size_of):
        real = getattr(module, name)
        calls: list[int] = []

        def wrapped(*args, **kwargs):
            n = size_of(*args, **kwargs)
            calls.append(n)
            if n > limit:
                raise OOM("CUDA out of memory (test)")
            return real(*args, **kwargs)
        monkeypatch.setattr(module, name, wrapped)
        return calls
    return install


PROMPTS = [[5, 6, 7], [8, 9], [10, 11, 12, 13], [14], [15, 16, 17], [18, 19, 20], [21, 22], [23, 24, 25, 26, 27]]


def test_scoring_loops_back_off_with_identical_results(tiny_llama, oom_above):
    want_next = next_token_logprobs(tiny_llama, PROMPTS, batch_size=8)
    pairs = [(p, [30, 31]) for p in PROMPTS]
    want_cont = continuation_logprobs(tiny_llama, pairs, batch_size=8)
    calls = oom_above(S, "_last_logprobs", 2, lambda lm, batch, *a, **k: batch["input_ids"].shape[0])
    with pytest.warns(RuntimeWarning, match="out of memory"):
        got_next = next_token_logprobs(tiny_llama, PROMPTS, batch_size=8)
    assert calls[0] == 8 and max(calls[-3:]) <= 2
    # other batch compositions pad differently: fp32 agreement to 1e-5, as the scoring module promises
    torch.testing.assert_close(got_next, want_next, atol=1e-5, rtol=0)
    with pytest.warns(RuntimeWarning):
        got_cont = continuation_logprobs(tiny_llama, pairs, batch_size=8)
    for g, w in zip(got_cont, want_cont):
        np.testing.assert_allclose(g, w, atol=1e-5)


def test_trie_backs_off_and_crops_what_a_failed_chunk_appended(tiny_llama, monkeypatch):
    """The failing forward runs for real first (so it appends to the KV cache), then raises."""
    conts = [[40 + i, 50 + j] for i in range(4) for j in range(3)]
    want = trie_logprobs(tiny_llama, [5, 6, 7], conts, max_nodes=64)
    import interp.models.hf_engine as E

    real = E.tree_forward

    def after_append(model, cache, tokens, *args, **kwargs):
        out = real(model, cache, tokens, *args, **kwargs)
        if len(tokens) > 2:
            raise OOM("CUDA out of memory (test)")
        return out
    monkeypatch.setattr(E, "tree_forward", after_append)
    with pytest.warns(RuntimeWarning):
        got = trie_logprobs(tiny_llama, [5, 6, 7], conts, max_nodes=64)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_activation_cache_backs_off(oom_above):
    lm = load_model("tiny-llama")
    names = [A.hook.resid_post(1), A.hook.z(0)]
    ids = [[5, 6, 7]] * 6 + [[8, 9]] * 3
    want_logits, want = A.cache_last(lm, ids, names, backend="nnsight")
    oom_above(A, "run_cached", 2, lambda lm, tokens, *a, **k: tokens.shape[0])
    with pytest.warns(RuntimeWarning):
        logits, got = A.cache_last(lm, ids, names, backend="nnsight")
    # batches of 2 instead of one of 6: the same values up to fp32 summation order (seen: 1.26e-5)
    assert_close_reordered(logits, want_logits)
    for n in names:
        assert_close_reordered(got[n], want[n])
