"""Shared fixtures: tiny random models of each family (no download) and the embedded models."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

FAMILIES = ["llama", "gemma3", "gpt2"]


@pytest.fixture(scope="session", params=FAMILIES)
def tiny(request):
    from interp.models import load_model

    return load_model(f"tiny-{request.param}")


@pytest.fixture(scope="session")
def tiny_llama():
    from interp.models import load_model

    return load_model("tiny-llama")


@pytest.fixture(scope="session")
def smollm2():
    from interp.models import load_model

    return load_model("smollm2")


@pytest.fixture(scope="session")
def gemma3():
    from interp.models import load_model

    return load_model("gemma3-270m")


@pytest.fixture
def tmp_home(tmp_path, monkeypatch):
    """An empty INTERP_HOME store for tests that write models."""
    monkeypatch.setenv("INTERP_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def pytest_terminal_summary(terminalreporter, config):
    """Say how the order was shuffled, so a failure that depends on order can be replayed (-q hides
    pytest-randomly's own header line)."""
    seed = getattr(config.option, "randomly_seed", None)
    if config.pluginmanager.hasplugin("randomly") and isinstance(seed, int):
        terminalreporter.write_line(f"test order shuffled by pytest-randomly; replay it with -p randomly --randomly-seed={seed}"
                                    " (reverse order: -p no:randomly --reverse)")
