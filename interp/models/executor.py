"""Where nnsight traces run: in this process, or on a remote server (NDIF or a self-hosted one).

One trace code path, several executors. Every nnsight trace of the nnsight engine
(`interp.models.nnsight_engine`) is written once and handed `Executor.trace_kwargs()`:

| executor                     | `model.trace(..., **kwargs)`  | weights                       |
|------------------------------|-------------------------------|-------------------------------|
| `Executor("local")`          | `{}`                          | this process                  |
| `Executor("simulate")`       | `{"remote": "local"}`         | this process; the request is serialised and deserialised exactly as for a server, with non-installed modules hidden (nnsight's LocalSimulationBackend) |
| `Executor("ndif")`           | `{"remote": True}`            | NDIF (`NDIF_API_KEY`)         |
| `Executor("serve", url)`     | `{"remote": url}`             | a self-hosted nnsight server  |

    lm = load_remote("meta-llama/Llama-3.1-70B", Executor("ndif"))   # interp.models.remote: meta weights here
    lm = attach(load_model("tiny-llama"), Executor("simulate"))      # the remote code path, run locally

`attach` and `load_remote` (`interp.models.remote`, above the nnsight engine) give the model an `NnsightEngine` (its `lm.engine`), chosen once; scoring,
the trie and activation caching then run through it without asking. Keys come from the environment
only: `NDIF_API_KEY` (NDIF), `HF_TOKEN` (gated configs / tokenizers on the hub).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Literal

from interp.errors import UserError

Kind = Literal["local", "simulate", "ndif", "serve"]
KINDS = ("local", "simulate", "ndif", "serve")
NDIF_HOST = "https://api.ndif.us"
STATUS_TIMEOUT = 10.0  # seconds for the hosted-model check


@dataclass(frozen=True)
class Executor:
    kind: Kind = "local"
    url: str | None = None  # the server of kind "serve"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown executor {self.kind!r}; choose from {KINDS}")
        if self.kind == "serve" and not (self.url or "").startswith(("http://", "https://")):
            raise UserError(f"--serve needs a server URL starting with http:// or https://, got {self.url!r}")

    @property
    def is_remote(self) -> bool:
        """Whether the weights live on a server (inputs travel on the CPU, results come back on it)."""
        return self.kind in ("ndif", "serve")

    @property
    def host(self) -> str:
        if self.kind == "serve":
            return str(self.url).rstrip("/")
        return os.environ.get("NDIF_HOST", NDIF_HOST).rstrip("/")

    def trace_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of nnsight's `model.trace` that pick this executor."""
        kwargs: dict[str, dict[str, Any]] = {"local": {}, "simulate": {"remote": "local"}, "ndif": {"remote": True},
                                             "serve": {"remote": self.url}}
        return kwargs[self.kind]

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "host": self.host if self.is_remote else None}


def executor_from_flags(remote: bool, serve: str | None) -> Executor | None:
    """`--remote` / `--serve URL` -> an executor (None when neither is given)."""
    if remote and serve:
        raise UserError("give only one of --remote (NDIF) and --serve URL (a self-hosted server)")
    if serve:
        return Executor("serve", serve)
    return Executor("ndif") if remote else None


def require_keys(executor: Executor) -> None:
    """NDIF needs NDIF_API_KEY; a self-hosted server takes it when set."""
    if executor.kind == "ndif" and not os.environ.get("NDIF_API_KEY"):
        raise UserError("--remote needs NDIF_API_KEY in the environment (an NDIF API key, from https://login.ndif.us)")





def hub_error(name: str, e: BaseException) -> str:
    first = (str(e).strip().splitlines() or [type(e).__name__])[0]
    kind = type(e).__name__
    if "Gated" in kind or "401" in first or "403" in first:
        return (f"'{name}' is gated on the Hugging Face hub: set HF_TOKEN to a token with access "
                f"(the config and tokenizer are read locally): {first}")
    if "RepositoryNotFound" in kind or "404" in first:
        return f"'{name}' is not a model on the Hugging Face hub: {first}"
    return (f"could not read the config and tokenizer of '{name}' from the Hugging Face hub "
            f"(network unreachable or offline?): {first}")


def check_reachable(executor: Executor, timeout: float = 5.0) -> None:
    """UserError unless a TCP connection to the server opens within `timeout` seconds (fails fast
    where there is no network, instead of after the hub client's retries)."""
    import socket
    from urllib.parse import urlparse

    url = urlparse(executor.host)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname or "", port), timeout=timeout).close()
    except OSError as e:
        raise UserError(f"could not reach {executor.host} (network unreachable, or the server is down): {e}") from None


def check_hosted(repo_id: str, executor: Executor) -> None:
    """UserError unless `repo_id` is RUNNING on the server (its /status lists deployments)."""
    import httpx

    url = f"{executor.host}/status"
    try:
        resp = httpx.get(url, timeout=STATUS_TIMEOUT)
        resp.raise_for_status()
        deployments = resp.json().get("deployments", {})
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UserError(f"could not reach {executor.host} (network unreachable or the service is down): {first}") from e
    running = sorted({d.get("repo_id", k) for k, d in deployments.items() if d.get("application_state") == "RUNNING"})
    if repo_id not in running:
        shown = ", ".join(running[:8]) + (", ..." if len(running) > 8 else "")
        raise UserError(f"'{repo_id}' is not hosted on {executor.host} right now; running: {shown or 'none'}")


@contextmanager
def remote_errors(executor: Executor | None) -> Iterator[None]:
    """Turn a failed remote request (network, server-side error) into one UserError line."""
    if executor is None or not executor.is_remote:
        yield
        return
    try:
        yield
    except UserError:
        raise
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        kinds = {c.__name__ for c in type(e).__mro__}
        if "RemoteError" in kinds:
            raise UserError(f"the job failed on {executor.host}: {first}") from e
        # httpx's transport / status errors, websocket-client's errors (a refused key answers the
        # subscription with a bad status), sockets
        if kinds & {"HTTPError", "WebSocketException", "OSError", "ConnectionError", "TimeoutError"}:
            raise UserError(f"could not reach {executor.host} (network unreachable, or the key was refused?): "
                            f"{first}") from e
        raise


__all__ = ["Executor", "executor_from_flags", "check_reachable", "check_hosted", "hub_error", "remote_errors",
           "require_keys"]
