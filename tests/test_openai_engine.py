"""The OpenAI-compatible sampling engine against a stub server (the protocol and every failure), and
the CLI's --engine openai. The real server (vLLM) is tests/test_vllm_server.py."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from interp.errors import UserError
from interp.models.openai_engine import OpenAIServer, serve_samples
from interp.sampling import Sample, sample, sample_seed, stop_ids
from tests.helpers import run_cli


class Stub:
    """A completions server on 127.0.0.1 that answers every choice with `tokens` (log-prob -0.5 each)
    and records the requests; `mode` "json" answers garbage, "http" answers 500, "no-ids" plain tokens."""

    def __init__(self, tokens: list[int], finish: str = "stop", mode: str = "ok") -> None:
        self.tokens, self.finish, self.mode, self.requests = tokens, finish, mode, []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def _send(self, code: int, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                self._send(200, json.dumps({"data": [{"id": "stub-model"}]}).encode())

            def do_POST(self):
                req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.requests.append(req)
                if stub.mode == "json":
                    return self._send(200, b"<html>not json")
                if stub.mode == "http":
                    return self._send(500, b'{"error": "model crashed"}')
                spelled = [str(t) if stub.mode == "no-ids" else f"token_id:{t}" for t in stub.tokens]
                choices = [{"index": k, "text": "", "finish_reason": stub.finish,
                            "logprobs": {"tokens": spelled, "token_logprobs": [-0.5] * len(spelled)}}
                           for k in range(req["n"])]
                self._send(200, json.dumps({"choices": choices}).encode())

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def stub(tiny_llama):
    s = Stub([11, 12, tiny_llama.tokenizer.eos_token_id])
    yield s
    s.close()


def test_samples_come_from_the_server_with_their_probabilities(tiny_llama, stub):
    """Sample objects as the local sampler makes them: token ids (EOS kept), q = exp(logprob), the text
    without EOS, finished; one request per prompt with n = k, the per-prompt seed, the prompt's ids and
    the model's stop ids."""
    from interp.models.loading import load_model

    lm = serve_samples(load_model("tiny-llama"), OpenAIServer(stub.url))
    prompts = [[1, 5, 6], [1, 7]]
    got = sample(lm, prompts, max_new_tokens=9, temperature=0.7, seed=3, n_per_prompt=2, first_index=4)
    assert [(s.prompt_index, s.sample_index) for s in got] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    eos = tiny_llama.tokenizer.eos_token_id
    for s in got:
        assert isinstance(s, Sample) and s.token_ids == [11, 12, eos] and s.finished
        np.testing.assert_allclose(s.token_probs, np.exp(-0.5))
        assert s.text == tiny_llama.tokenizer.decode([11, 12], skip_special_tokens=True)
    reqs = sorted(stub.requests, key=lambda r: r["prompt"])
    assert [r["prompt"] for r in reqs] == [[1, 5, 6], [1, 7]]
    assert [r["seed"] for r in reqs] == [sample_seed(3, 4), sample_seed(3, 5)]
    assert all(r["n"] == 2 and r["max_tokens"] == 9 and r["temperature"] == 0.7 and r["return_tokens_as_token_ids"]
               and r["stop_token_ids"] == sorted(stop_ids(lm)) and r["model"] == "stub-model" for r in reqs)
    assert lm.identity()["sampler"] == {"engine": "openai", "server": stub.url, "served_model": "stub-model"}


@pytest.mark.parametrize("mode, words", [("json", "not JSON"), ("http", "HTTP 500"), ("no-ids", "token ids")])
def test_a_bad_answer_is_one_line(tiny_llama, mode, words):
    s = Stub([11], mode=mode)
    try:
        server = OpenAIServer(s.url)
        with pytest.raises(UserError, match=words) as e:
            server.complete([1, 2], 1, 4, 1.0, 0, [2])
        assert "\n" not in str(e.value)
    finally:
        s.close()


def test_a_server_that_is_down_is_one_line():
    import socket

    with socket.socket() as sock:  # a free port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(UserError, match="not reachable"):
        OpenAIServer(f"http://127.0.0.1:{port}")
    with pytest.raises(UserError, match="http"):
        OpenAIServer("127.0.0.1:8000")


def test_gen_numbers_through_a_server_writes_the_same_kind_of_data(capsys, tmp_path, stub, tiny_llama):
    """The number filter reads the server's samples: '11 12' decoded is the stub's answer every time,
    so kept + rejected = all samples, and summary.json records the sampler."""
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, "gen-numbers", "--model", "tiny-llama", "--n", "3", "--engine", "openai",
                           "--server", stub.url, "--max-new-tokens", "5", "--out", str(out))
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["models"]["teacher"]["sampler"]["server"] == stub.url
    assert len(stub.requests) == 3
    assert sum(1 for _ in (out / "numbers_samples.csv").open()) == 1 + 3


@pytest.mark.parametrize("args, words", [(["--engine", "openai"], "needs --server"),
                                         (["--server", "http://127.0.0.1:1"], "--engine openai only"),
                                         (["--engine", "openai", "--server", "127.0.0.1:8000"], "http(s) URL")])
def test_inconsistent_engine_options_are_refused_before_any_load(capsys, tmp_path, args, words):
    code, _, err = run_cli(capsys, "gen-numbers", "--model", "tiny-llama", "--n", "2", *args, "--out", str(tmp_path / "r"))
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_a_down_server_leaves_no_data(capsys, tmp_path):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code, _, err = run_cli(capsys, "gen-numbers", "--model", "tiny-llama", "--n", "2", "--engine", "openai",
                           "--server", f"http://127.0.0.1:{port}", "--out", str(tmp_path / "r"))
    assert code == 2 and "not reachable" in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_a_server_failing_mid_run_publishes_nothing(capsys, tmp_path, tiny_llama, monkeypatch):
    """The teacher's samples come back, the control's server answers garbage: no numbers.jsonl."""
    s = Stub([11, 12, tiny_llama.tokenizer.eos_token_id])
    real = OpenAIServer.complete

    def flaky(self, *a, **k):
        if len(s.requests) >= 2:
            s.mode = "json"
        return real(self, *a, **k)
    monkeypatch.setattr(OpenAIServer, "complete", flaky)
    try:
        code, _, err = run_cli(capsys, "gen-numbers", "--model", "tiny-llama", "--control", "tiny-llama", "--n", "2",
                               "--engine", "openai", "--server", s.url, "--out", str(tmp_path / "r"))
    finally:
        s.close()
    errors = [line for line in err.splitlines() if not line.startswith("sampling ")]  # progress lines aside
    assert code == 2 and "not JSON" in err and len(errors) == 1 and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_temperatures_the_server_cannot_honour():
    """Below 1e-5: greedy (0 to the server); [1e-5, 0.01): vLLM would raise it to 0.01, so refused."""
    from interp.models.openai_engine import server_temperature

    assert server_temperature(1e-6) == 0.0 and server_temperature(0.7) == 0.7 and server_temperature(0.01) == 0.01
    with pytest.raises(UserError, match="raises temperatures below 0.01"):
        server_temperature(1e-3)
