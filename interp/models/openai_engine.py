"""Sampling through an OpenAI-compatible server (vLLM, SGLang, llama.cpp's server): the engine of a
model whose samples come from `POST {server}/v1/completions` while its scoring forwards stay here.

    lm = serve_samples(load_model("smollm2"), OpenAIServer("http://127.0.0.1:8000"))
    interp.sampling.sample(lm, ids, ...)      # the same Sample objects, drawn by the server

One request per prompt: `prompt` = the prompt's token ids (so the server sees exactly the tokens the
local engine would), `n` = samples of that prompt, `seed` = the sampler's per-prompt seed,
`logprobs` = 0 and `return_tokens_as_token_ids` (vLLM, SGLang) so each choice gives its token ids and
their log-probabilities, `stop_token_ids` = the model's EOS ids, `skip_special_tokens` false. Several
requests are in flight at once (the server batches them). A temperature below 1e-5 is greedy decoding
(the server gets 0; the local sampler's inverse CDF is then the argmax too); one in [1e-5, 0.01) is
refused, since vLLM would silently raise it to 0.01. Token probabilities are what the server
reports: the model's at T = 1; at another temperature vLLM reports q = softmax(logits / T) only when
started with `--logprobs-mode processed_logprobs` (the docs' command does).

The server must serve the same weights as the local model (its name is recorded, the weights cannot be
checked from here). Failures are one `UserError` line: the server unreachable or answering an HTTP
error (its message), or a reply that is not a completion with token ids and log-probabilities.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Sequence

from interp.errors import UserError
from interp.models.hf_engine import HFEngine
from interp.models.loaded import LoadedModel

GREEDY_BELOW = 1e-5  # a temperature below this is greedy decoding: the server gets temperature 0
SERVER_MIN_TEMPERATURE = 1e-2  # vLLM raises 0 < T < 0.01 to 0.01 (SamplingParams' _MAX_TEMP), silently for the client
TOKEN_PREFIX = "token_id:"  # vLLM / SGLang spell a token as "token_id:<id>" with return_tokens_as_token_ids


@dataclass(frozen=True)
class Completion:
    """One sampled choice: token ids (EOS included when it ended the choice), their log-probabilities,
    and whether it ended at a stop token (else at max_tokens)."""

    token_ids: list[int]
    logprobs: list[float]
    finished: bool


class OpenAIServer:
    """A client of one OpenAI-compatible completions server (module docstring)."""

    def __init__(self, url: str, model: str | None = None, timeout: float = 600.0, concurrency: int = 16) -> None:
        if not url.startswith(("http://", "https://")):
            raise UserError(f"--server must be an http(s) URL, got {url!r}")
        self.url, self.timeout, self.concurrency = url.rstrip("/").removesuffix("/v1"), timeout, max(1, concurrency)
        self.model = model or self.served_models()[0]

    def _call(self, path: str, body: dict[str, Any] | None = None) -> Any:
        req = urllib.request.Request(self.url + path, data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="GET" if body is None else "POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                raw = r.read()
        except urllib.error.HTTPError as e:
            detail = e.read().decode(errors="replace").strip().replace("\n", " ")[:300]
            raise UserError(f"the server at {self.url} answered HTTP {e.code} to {path}: {detail}") from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise UserError(f"the server at {self.url} is not reachable ({reason}); is it running?") from None
        try:
            return json.loads(raw)
        except ValueError:
            raise UserError(f"the server at {self.url} answered {path} with something that is not JSON: "
                            f"{raw[:80]!r}") from None

    def served_models(self) -> list[str]:
        """The ids of `GET /v1/models`."""
        got = self._call("/v1/models")
        try:
            ids = [str(m["id"]) for m in got["data"]]
        except (KeyError, TypeError):
            raise UserError(f"the server at {self.url} answered /v1/models without a list of models") from None
        if not ids:
            raise UserError(f"the server at {self.url} serves no model")
        return ids

    def complete(self, prompt_ids: Sequence[int], n: int, max_tokens: int, temperature: float, seed: int,
                 stop_token_ids: Sequence[int]) -> list[Completion]:
        """`n` sampled completions of one tokenised prompt (module docstring)."""
        body = {"model": self.model, "prompt": [int(t) for t in prompt_ids], "n": n, "max_tokens": max_tokens,
                "temperature": server_temperature(temperature), "seed": seed, "logprobs": 0, "return_tokens_as_token_ids": True,
                "stop_token_ids": sorted(int(t) for t in stop_token_ids), "skip_special_tokens": False}
        got = self._call("/v1/completions", body)
        try:
            choices = sorted(got["choices"], key=lambda c: c["index"])
            out = [_completion(c) for c in choices]
        except (KeyError, TypeError, ValueError, AttributeError):
            raise UserError(f"the server at {self.url} answered /v1/completions without token ids and log-probabilities "
                            "for every choice (it must support logprobs and return_tokens_as_token_ids, as vLLM and "
                            "SGLang do)") from None
        if len(out) != n:
            raise UserError(f"the server at {self.url} returned {len(out)} choices for n = {n}")
        return out

    def complete_all(self, requests: Sequence[tuple[Sequence[int], int, int]], max_tokens: int, temperature: float,
                     stop_token_ids: Sequence[int]) -> list[list[Completion]]:
        """`complete` for every (prompt ids, n, seed), up to `concurrency` requests in flight; in order."""
        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(lambda r: self.complete(r[0], r[1], max_tokens, temperature, r[2], stop_token_ids),
                                 requests))


def server_temperature(temperature: float) -> float:
    """What the server is asked for: 0 (greedy) below `GREEDY_BELOW`, where the local sampler's inverse CDF
    is the argmax too; a temperature the server would silently raise (below `SERVER_MIN_TEMPERATURE`) is
    refused."""
    if temperature < GREEDY_BELOW:
        return 0.0
    if temperature < SERVER_MIN_TEMPERATURE:
        raise UserError(f"temperature {temperature:g}: an OpenAI-compatible server (vLLM) raises temperatures below "
                        f"{SERVER_MIN_TEMPERATURE:g} to {SERVER_MIN_TEMPERATURE:g}; use >= {SERVER_MIN_TEMPERATURE:g}, "
                        f"or < {GREEDY_BELOW:g} for greedy decoding")
    return float(temperature)


def _completion(choice: dict[str, Any]) -> Completion:
    lp = choice["logprobs"]
    tokens, values = lp["tokens"], lp["token_logprobs"]
    if len(tokens) != len(values) or any(not str(t).startswith(TOKEN_PREFIX) for t in tokens):
        raise ValueError("tokens are not token ids")
    return Completion([int(str(t)[len(TOKEN_PREFIX):]) for t in tokens], [float(v) for v in values],
                      choice.get("finish_reason") == "stop")


class OpenAIEngine(HFEngine):
    """Forwards here (as `HFEngine`), samples from `server`."""

    def __init__(self, lm: LoadedModel, server: OpenAIServer) -> None:
        super().__init__(lm)
        self.server = server

    def sampler(self) -> dict[str, Any] | None:
        return {"engine": "openai", "server": self.server.url, "served_model": self.server.model}


def serve_samples(lm: LoadedModel, server: OpenAIServer) -> LoadedModel:
    """Draw `lm`'s samples from `server` from now on; its other forwards stay local (returns `lm`)."""
    lm.engine = OpenAIEngine(lm, server)
    return lm


__all__ = ["Completion", "OpenAIServer", "OpenAIEngine", "serve_samples"]
