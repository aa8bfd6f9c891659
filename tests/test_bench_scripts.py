"""The cost scripts of reports/scaling cover what they claim to (issue 35 items 2 and 4)."""

from __future__ import annotations

import typer.main

from tests.helpers import load_script


def load(name: str):
    return load_script(f"experiments/bench/{name}.py")


def test_every_command_covers_every_command_that_loads_a_model():
    """Each CLI command is either run by every_command.py (inference or training) or listed as loading no
    model: a new command cannot be left out of the 'every command on every real model' table."""
    from interp.cli import app, commands as _registered  # noqa: F401  (registers the commands)

    ec = load("every_command")
    commands = set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    covered = set(ec.INFERENCE) | set(ec.TRAINING) | set(ec.NO_MODEL)
    assert commands == covered, (commands - covered, covered - commands)
    assert not set(ec.INFERENCE) & set(ec.TRAINING)


def test_counted_counts_the_token_positions_of_a_forward(tmp_path):
    """counted.py's hook adds the ids entering a vocabulary-sized embedding, and nothing for a small one."""
    import torch

    counted = load("counted")
    big, small = torch.nn.Embedding(2000, 4), torch.nn.Embedding(50, 4)
    handle = torch.nn.modules.module.register_module_forward_hook(counted._hook)
    try:
        counted.count = 0
        big(torch.zeros(3, 7, dtype=torch.long))
        small(torch.zeros(5, 5, dtype=torch.long))
        big(torch.zeros(2, 1, dtype=torch.long))
    finally:
        handle.remove()
    assert counted.count == 3 * 7 + 2
