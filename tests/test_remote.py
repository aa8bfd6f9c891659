"""Remote execution through nnsight: the trace code used for --remote / --serve, run locally.

Three executors of the same nnsight code (interp.mech.nnsight_run):
- Executor("simulate"): nnsight's LocalSimulationBackend serialises each request exactly as for a
  server (hiding every non-installed module, so `interp` itself must not be needed server-side).
- a meta-weight client (what --remote builds: no weights here) whose requests a stand-in server
  deserialises against its own live modules and runs (`ServerBackend` below).
- NDIF itself, only where NDIF_API_KEY and a network exist (skipped otherwise, with the reason).
"""

from __future__ import annotations

import json
import os
import socket

import numpy as np
import pandas as pd
import pytest
import torch

from interp.cli import main
from interp.errors import UserError
from interp.mech.trace import TraceConfig, trace
from interp.models import executor as X
from interp.models import remote as R
from interp.models import load_model
from interp.models.executor import Executor, executor_from_flags, remote_errors
from interp.models.remote import attach, hosted_model
from interp.probes.numbers import number_logprobs
from interp.probes.reverse_link import ReverseLinkConfig, reverse_link

FAMILIES = ["llama", "gemma3", "gpt2"]
NUMBERS = ["087", "12", "5"]
PROMPT = "My favorite number is "


def local_vs(executor_lm, family: str, **cfg):
    """The default local engine (bridge + plain HF forwards) on a fresh copy of the same tiny model."""
    ref = load_model(f"tiny-{family}")
    return ref, trace(ref, NUMBERS, TraceConfig(dla=False, attention_heads=0, **cfg))


def assert_same_trace(a, b, atol=1e-6):
    for col in ("cos_bias", "cos_control", "sim_diff"):
        np.testing.assert_allclose(b.layers[col], a.layers[col], atol=atol)
    assert list(b.layers.layer) == list(a.layers.layer) and list(b.layers.number) == list(a.layers.number)
    for col in ("sim_diff_out", "sim_diff_z", "cos_bias_out"):
        np.testing.assert_allclose(b.heads[col], a.heads[col], atol=atol)
    assert b.summary["spike_layer_mean"] == a.summary["spike_layer_mean"] and b.summary["top_head"] == a.summary["top_head"]


@pytest.mark.parametrize("family", FAMILIES)
def test_remote_trace_code_run_locally_gives_the_local_engines_per_layer_values(family):
    lm = attach(load_model(f"tiny-{family}"), Executor("simulate"))
    ref, want = local_vs(lm, family)
    got = trace(lm, NUMBERS, TraceConfig())  # DLA etc. asked for, skipped: they need local weights
    assert_same_trace(want, got)
    assert got.summary["backend"] == "nnsight" and got.summary["executor"]["kind"] == "simulate"
    assert got.summary["skipped"]["what"] == ["dla", "patching", "attention"] and got.dla is None
    cfg = ReverseLinkConfig(template_control=2, n_boot=50)
    pd.testing.assert_frame_equal(reverse_link(lm, NUMBERS, config=cfg).table,
                                  reverse_link(load_model(f"tiny-{family}"), NUMBERS, config=cfg).table, atol=1e-6)
    for method, digits in (("ar", 2), ("vocab", 1)):
        try:
            nums, lp = number_logprobs(lm, PROMPT, method, digits)
        except UserError:  # a tiny tokenizer without single-digit tokens
            continue
        nums_ref, lp_ref = number_logprobs(ref, PROMPT, method, digits)
        assert nums == nums_ref
        np.testing.assert_allclose(lp, lp_ref, atol=1e-5)  # one tree forward vs the cached trie: fp32 rounding


class ServerBackend:
    """Stands in for a server: deserialise the request against `server`'s live modules, run it there,
    push the saved values back into the caller's frame (what nnsight's RemoteBackend does)."""

    def __init__(self, server):
        self.server, self.calls = server, 0

    def __call__(self, tracer):
        from nnsight.schema.request import RequestModel
        from nnsight.tracing.util import push

        self.calls += 1
        blob = RequestModel.serialize(tracer, compress=False)
        restored = RequestModel.deserialize(blob, self.server._remoteable_persistent_objects(), compress=False)
        before = {k: id(v) for k, v in restored.info.frame.f_locals.items()}
        restored.execute(restored.info.code)
        after = restored.info.frame.f_locals
        push(tracer.info.frame, {k: v for k, v in after.items() if before.get(k) != id(v)})


@pytest.fixture
def meta_client(tmp_path, monkeypatch):
    """What --serve builds (a meta-weight nnsight model and its LoadedModel), served by a separate
    in-process model that holds the weights."""
    from nnsight.modeling.transformers import TransformersModel

    ref = load_model("tiny-llama")
    ref.model.save_pretrained(tmp_path / "m")
    server = TransformersModel(load_model("tiny-llama").model, tokenizer=ref.tokenizer, task="text-generation")
    client = TransformersModel(str(tmp_path / "m"), task="text-generation", dtype=torch.float32, tokenizer=ref.tokenizer)
    backend = ServerBackend(server)
    monkeypatch.setattr(Executor, "trace_kwargs", lambda self: {"backend": backend})
    lm = hosted_model(client, "org/tiny-llama", Executor("serve", "http://127.0.0.1:1"), "remote:org/tiny-llama@main")
    return lm, client, backend


def test_meta_weight_client_runs_everything_on_the_server(meta_client):
    lm, client, backend = meta_client
    assert next(lm.model.parameters()).device.type == "meta"
    ref, want = local_vs(lm, "llama")
    assert_same_trace(want, trace(lm, NUMBERS, TraceConfig(dla=False, attention_heads=0)))
    cfg = ReverseLinkConfig(template_control=2, n_boot=50)
    pd.testing.assert_frame_equal(reverse_link(lm, NUMBERS, config=cfg).table,
                                  reverse_link(load_model("tiny-llama"), NUMBERS, config=cfg).table, atol=1e-6)
    np.testing.assert_allclose(number_logprobs(lm, PROMPT, "ar", 2)[1], number_logprobs(ref, PROMPT, "ar", 2)[1], atol=1e-5)
    assert not client.dispatched and next(lm.model.parameters()).device.type == "meta"  # never loaded here
    assert backend.calls > 0
    ident = lm.identity()
    assert ident["executor"] == {"kind": "serve", "host": "http://127.0.0.1:1"} and ident["sha256"].startswith("remote:")


def test_cli_trace_and_reverse_link_with_serve(meta_client, monkeypatch, tmp_path, capsys):
    lm = meta_client[0]
    monkeypatch.setattr(R, "load_remote", lambda name, executor: lm)
    with pytest.raises(SystemExit) as e:
        main(["trace", "--serve", "http://127.0.0.1:1", "--model", "org/tiny-llama", "--number", "087",
              "--out", str(tmp_path / "t")])
    out, err = capsys.readouterr()
    assert e.value.code == 0, err
    assert "dla, patching, attention skipped" in out
    s = json.loads((tmp_path / "t" / "summary.json").read_text())
    assert s["model"]["executor"]["kind"] == "serve" and s["figures"]["backend"] == "nnsight"
    assert len(pd.read_csv(tmp_path / "t" / "trace.csv")) == lm.spec.n_layers
    with pytest.raises(SystemExit) as e:
        main(["reverse-link", "--serve", "http://127.0.0.1:1", "--model", "org/tiny-llama", "--numbers", "087",
              "--template-control", "2", "--out", str(tmp_path / "r")])
    assert e.value.code == 0, capsys.readouterr().err
    assert (tmp_path / "r" / "reverse_link.csv").is_file()


@pytest.mark.parametrize("argv, message", [
    (["--remote"], "--remote needs NDIF_API_KEY in the environment"),
    (["--remote", "--serve", "http://x"], "give only one of --remote"),
    (["--serve", "ftp://x"], "--serve needs a server URL starting with http"),
    (["--serve", "http://127.0.0.1:1", "--device-map", "auto"], "the server places them"),
])
def test_remote_flag_errors_are_one_line(argv, message, monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("NDIF_API_KEY", raising=False)
    with pytest.raises(SystemExit) as e:
        main(["trace", "--model", "org/model", "--number", "087", "--out", str(tmp_path / "o"), *argv])
    err = capsys.readouterr().err
    assert e.value.code == 2 and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_remote_load_errors(monkeypatch):
    monkeypatch.setenv("NDIF_API_KEY", "test-key-not-real")
    with pytest.raises(UserError, match="by Hugging Face id"):
        R.load_remote("smollm2", Executor("ndif"))
    with pytest.raises(UserError, match=r"could not reach http://127.0.0.1:1 \(network unreachable"):
        R.load_remote("org/model", Executor("serve", "http://127.0.0.1:1"))  # nothing listens on port 1
    monkeypatch.setattr(R, "check_reachable", lambda ex: None)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # what a machine without network sees from the hub
    with pytest.raises(UserError, match="could not read the config and tokenizer of 'org/model'"):
        R.load_remote("org/model", Executor("ndif"))


def test_not_hosted_and_unreachable_status(monkeypatch):
    import httpx

    class Resp:
        def raise_for_status(self):
            pass

        def json(self):
            return {"deployments": {"a": {"repo_id": "meta-llama/Llama-3.1-8B", "application_state": "RUNNING"},
                                    "b": {"repo_id": "org/cold", "application_state": "DEPLOYING"}}}

    monkeypatch.setattr(httpx, "get", lambda url, timeout: Resp())
    X.check_hosted("meta-llama/Llama-3.1-8B", Executor("ndif"))
    with pytest.raises(UserError, match="'org/cold' is not hosted on https://api.ndif.us right now; running: meta-llama/Llama-3.1-8B"):
        X.check_hosted("org/cold", Executor("ndif"))

    def down(url, timeout):
        raise httpx.ConnectError("[Errno -2] Name or service not known")
    monkeypatch.setattr(httpx, "get", down)
    with pytest.raises(UserError, match="could not reach https://api.ndif.us"):
        X.check_hosted("org/any", Executor("ndif"))


def test_remote_errors_become_one_line():
    import httpx
    from nnsight.intervention.backends.remote import RemoteError

    ex = Executor("ndif")
    with pytest.raises(UserError, match="the job failed on https://api.ndif.us: CUDA out of memory"):
        with remote_errors(ex):
            raise RemoteError("CUDA out of memory\nTraceback ...")
    with pytest.raises(UserError, match="could not reach"):
        with remote_errors(ex):
            raise httpx.ConnectError("connection refused")
    with pytest.raises(KeyError):  # bugs stay bugs
        with remote_errors(ex):
            raise KeyError("x")
    assert executor_from_flags(False, None) is None and executor_from_flags(True, None).kind == "ndif"


def _ndif_reachable() -> bool:
    try:
        socket.create_connection(("api.ndif.us", 443), timeout=3).close()
        return True
    except OSError:
        return False


REMOTE_MODEL = os.environ.get("INTERP_REMOTE_TEST_MODEL", "openai-community/gpt2")


@pytest.mark.skipif(not os.environ.get("NDIF_API_KEY"), reason="NDIF_API_KEY is not set: the real NDIF call needs an API key")
@pytest.mark.skipif(not _ndif_reachable(), reason="api.ndif.us:443 is unreachable: no network to NDIF on this machine")
def test_real_ndif_trace_matches_local(monkeypatch):
    """On NDIF: the hosted model's per-layer trace equals the same checkpoint run locally."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    lm = R.load_remote(REMOTE_MODEL, Executor("ndif"))
    local = load_model(REMOTE_MODEL)
    cfg = TraceConfig(dla=False, attention_heads=0)
    a, b = trace(local, ["087"], cfg), trace(lm, ["087"], cfg)
    np.testing.assert_allclose(b.layers.sim_diff, a.layers.sim_diff, atol=1e-2)  # the server's dtype may be bf16


@pytest.mark.embedded
def test_smollm2_remote_trace_code_matches_the_bridge():
    ref = load_model("smollm2")
    lm = attach(load_model("smollm2"), Executor("simulate"))
    cfg = TraceConfig(dla=False, attention_heads=0)
    assert_same_trace(trace(ref, ["087"], cfg), trace(lm, ["087"], cfg), atol=1e-5)
