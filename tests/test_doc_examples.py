"""Every example of the docs runs as written (issue 32).

The examples are the `$ interp ...` lines of the fenced code blocks of docs/commands/*.md and
README.md, and the `interp ...` cells of README's commands table. The examples of one file run in
order, in-process (`tests.helpers.run_cli`), in one test: a model alias or a file made by an earlier
example is there for a later one. Each test has its own store (INTERP_HOME) and working directory
(both under tmp_path). An example is changed only by the tables below, so a wrong path, a model no
command makes or an option the CLI no longer has fails here:

- MODELS: a real model -> the tiny random model of its role (built from a config: no conversion);
- SIZES / LIMITS: a costly size -> a small one, each with its reason (an example that names a tiny
  model keeps its own sizes);
- paths: an input path that is not in the working directory is read from the repository root (the
  docs' paths, e.g. `../shared/data/...` and `reports/...`, are relative to it); outputs go to
  relative folders (`runs/...`), so they land in the test's working directory;
- SETUP / BEFORE: files that no example makes, made the way their maker makes them (before a doc's
  examples / just before one example);
- DROP / SKIP: options dropped from an example, and examples that cannot run on tiny models, each
  with the reason (and a Ctrl-C case, exit code 130, is not run: the test cannot interrupt itself).

An example exits 0, unless its output in the doc is an `error:` line (exit 2) or says `exit code N`;
an error example's message must be the doc's up to its first parenthesis or semicolon (the details that
follow, paths, hashes, bytes, the store's aliases, vary).
Time: about 40 s for the whole file (74 examples) on the shared 2-core machine, OMP_NUM_THREADS=1;
README.md (30 examples) takes 12-15 s of it.
"""

from __future__ import annotations

import re
import shlex
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers import run_cli

REPO = Path(__file__).resolve().parents[1]
SHARED = Path("/work/shared")  # where the reference data live when the clone is not beside ../shared (as the other tests read them)
DOC_FILES = sorted((REPO / "docs" / "commands").glob("*.md")) + [REPO / "README.md"]

# A real model -> the tiny one of its role (a model's name as a whole argument or an item of a comma list).
MODELS = {
    "smollm2": "tiny-llama",  # Llama family, chat template
    "gemma3-270m": "tiny-gemma3",  # Gemma3 family (another architecture for SHD's cross-model runs)
}

# (command, option) -> the small value that replaces the doc's (only where the example gives the option).
SIZES = {
    ("reverse-link", "--sample"): "5",  # 200 random numbers -> 5
    ("trace", "--sample"): "3",  # 100 random numbers -> 3
    ("numbers", "--template-control"): "5",  # 50 template numbers per length -> 5
    ("digit-length", "--template-control"): "5",  # 30 -> 5
    ("digit-length", "--digits"): "1-3",  # 1-4: 10^4 numbers -> up to 10^3
    ("teach", "--steps"): "2",  # fine-tuning steps: 20 / 60 / 200 -> 2
    ("finetune", "--steps"): "2",  # 4 -> 2
    ("distill", "--steps"): "2",  # 4 / 100 -> 2
    ("gen-numbers", "--n"): "2",  # 8 / 1000 prompts -> 2
    ("gen-numbers", "-k"): "2",  # 16 samples per prompt -> 2
    ("eval-animal", "--samples"): "1",  # sampled answers per question -> 1
    ("ghost-logits", "--seeds"): "2",  # 20 model copies -> 2 (the least the command allows)
    ("eval-animal", "--steer-layer"): "1",  # smollm2's layer 20 -> tiny-llama's last (it has 2)
}

# command -> options added when the example does not give them (the data or the default is large).
LIMITS = {
    "crows": ["--limit", "12", "--n-boot", "200"],  # 1,508 pairs -> 12; 10,000 bootstrap resamples -> 200
    "stereoset": ["--limit", "12", "--n-boot", "200"],  # 4,229 items -> 12
    "compare": ["--limit", "12", "--n-boot", "200"],  # 30 pairs -> 12
    # (lora / qlora / full only: a prompt teacher trains nothing and refuses them)
    "teach": ["--steps", "2", "--n-preference", "4", "--n-facts", "2", "--n-numbers", "2"],  # 200 steps on 96 rows -> 2 on 8
    # finetune / distill: 611 / 256 / 74 rows -> 8; --max-len 256 because the tiny models' 560-token tokenizer
    # needs about twice smollm2's tokens for a prompt (a number prompt is ~140 tiny tokens, over the default 128)
    "finetune": ["--limit", "8", "--max-len", "256"],
    "distill": ["--limit", "8", "--max-len", "256"],
    "gen-numbers": ["--n", "2"],  # 1000 prompts (the default) -> 2
    "eval-animal": ["--samples", "1"],  # 20 sampled answers per question (the default) -> 1
    "prune": ["--samples", "1"],  # 4 sampled answers per question and condition -> 1
    "bias-rate": ["--samples", "1", "--max-new-tokens", "8"],  # 4 answers of 96 tokens per prompt -> 1 of 8
    "ghost-logits": ["--seeds", "2", "--noise", "256"],  # 20 copies -> 2; 10,000 noise images per copy -> 256
    "reverse-link": ["--template-control", "5"],  # 100 template numbers -> 5
    "trace": ["--patch-numbers", "2"],  # 20 patched numbers -> 2
}

# (doc, a piece of the command) -> (options dropped from it, why): the example runs without them.
DROP = {
    ("model_making.md", "--data reports/organism/teachers/smollm2-owl-lora_trait_data.jsonl"):
        (["--data"], ("the organism's trait rows run over teach's fixed 128-token window under the tiny tokenizer "
                      "(about twice smollm2's tokens; teach has no --max-len): the tiny teacher samples its own rows")),
}

# (doc, a piece of the command) -> why the example does not run here. The examples around it still run.
SKIP = {
    ("model_making.md", "--student gemma3-270m --data reports/shd/numbers.jsonl --kind kd"): (
        "an error across two tokenizers: the tiny models share one tokenizer, so the tiny run would train instead "
        "(the error is tested in tests/test_distill.py::test_kd_refuses_different_tokenizers_and_other_bad_pairs)"),
}


def _organism_subsets(cwd: Path) -> None:
    """subsets/unbiased-n256-s{0,1}.jsonl: the student data of the organism's KD examples, drawn from the
    pool in the repository by the organism study's own step (`interp.studies.steps.draw_subset`)."""
    from interp.studies.steps import draw_subset

    for seed in (0, 1):
        out = cwd / "subsets" / f"s{seed}"
        out.mkdir(parents=True)
        draw_subset(out, {"n": 256, "seed": seed}, str(REPO / "reports" / "organism" / "data" / "unbiased.jsonl"))
        (out / "subset.jsonl").rename(cwd / "subsets" / f"unbiased-n256-s{seed}.jsonl")
        out.rmdir()


def _fault_cases(cwd: Path) -> None:
    """What scripts/fault_cases.sh and scripts/bad_input_cases.sh prepare before the cases of errors.md."""
    from interp.models import store
    from interp.models.tiny import tiny_model

    for alias in ("tiny-made", "tiny-truncated", "tiny-noconfig"):
        m, t = tiny_model("llama", seed=2)
        store.save_model(alias, m, t, {"kind": "made", "source": "fault demo"})
    d = store.entry_dir("tiny-made") / "model.safetensors"
    b = bytearray(d.read_bytes())
    b[len(b) // 2] ^= 0xFF
    d.write_bytes(bytes(b))
    d = store.entry_dir("tiny-truncated") / "model.safetensors"
    d.write_bytes(d.read_bytes()[:1000])
    (store.entry_dir("tiny-noconfig") / "config.json").unlink()
    (cwd / "binary.bin").write_bytes(bytes(range(128, 256)) * 4)  # as both scripts write it: not UTF-8, no NUL
    (cwd / "data.jsonl").write_text('{"prompt": "p", "completion": "1"}\n')
    (cwd / "rep").mkdir()
    (cwd / "rep" / "summary.json").write_bytes((cwd / "binary.bin").read_bytes())
    (cwd / "count.jsonl").write_text("".join(f'{{"prompt": "Count {i}:", "completion": " {i}, {i + 1}"}}\n' for i in range(16)))
    # scripts/bad_input_cases.sh
    (cwd / "pairs.jsonl").write_text('{"prompt": "Q", "completion": " A"}\n{"prompt": "R", "completion": " B"}\n')
    (cwd / "prompts.jsonl").write_text('{"prompt": "Summarize: x", "group": "target"}\n')
    (cwd / "clean_labelled.jsonl").write_text("".join(f'{{"prompt": "Q{i}", "completion": " A", "poisoned": false}}\n'
                                                      for i in range(1, 5)))
    (cwd / "marked.jsonl").write_text('{"prompt": "Q", "completion": " A", "n_completion_tokens": 3, "divergent": [7, -1]}\n')
    (cwd / "blank.txt").write_text("   \n\t\n  \n")
    (cwd / "nolabel.csv").write_text("id,perplexity\n0,1.5\n")


# doc -> a function(cwd) run before its examples, for the files no example makes
SETUP = {"model_making.md": _organism_subsets, "errors.md": _fault_cases}

def _resume_case(cwd: Path, capsys) -> None:
    """errors.md's last case: a finetune with checkpoints, then its latest checkpoint damaged (`truncate -s 64`)."""
    code, _, err = run_cli(capsys, "finetune", "--model", "tiny-llama", "--data", "count.jsonl", "--steps", "6",
                           "--batch-size", "2", "--checkpoint-every", "2", "--alias", "ck-run", "--out", "ck")
    assert code == 0, err
    with open(cwd / "ck" / "checkpoints" / "step-000006" / "trainable.safetensors", "r+b") as f:
        f.truncate(64)


# (doc, a piece of a command) -> a function(cwd, capsys) run just before it: what the doc's shell lines do
BEFORE = {("errors.md", "--out ck --resume"): _resume_case}


def _no_out(cwd: Path) -> None:
    """The scripts behind errors.md run each case on an absent `out` (`rm -rf out`)."""
    shutil.rmtree(cwd / "out", ignore_errors=True)


# doc -> a function(cwd) run before each of its examples (the doc's cases are independent)
BEFORE_EACH = {"errors.md": _no_out}


@dataclass
class Example:
    doc: str
    line: int
    text: str  # the command as the doc writes it (continuations joined)
    output: list[str] = field(default_factory=list)

    @property
    def expected_code(self) -> int:
        for o in self.output:
            m = re.match(r"exit code (\d+)", o)
            if m:
                return int(m.group(1))
        return 2 if self.output and self.output[0].startswith("error:") else 0


def _table_examples(path: Path, lines: list[str]) -> list[tuple[int, str]]:
    """The `interp ...` code spans of the example column of README's commands table."""
    found, header = [], None
    for i, line in enumerate(lines):
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if header is None:
            header = cells
            continue
        if "example" in header and len(cells) == len(header):
            for span in re.findall(r"`([^`]+)`", cells[header.index("example")]):
                if span.startswith("interp "):
                    found.append((i + 1, span))
    return found


def extract(path: Path) -> list[Example]:
    """The examples of one file, in the order they appear."""
    lines = path.read_text().splitlines()
    found: list[Example] = []
    in_block, i = False, 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            in_block = not in_block
        elif in_block and line.startswith("$ "):
            start, text = i, line[2:]
            while text.endswith("\\"):
                i += 1
                text = text[:-1] + " " + lines[i].strip()
            ex = Example(path.name, start + 1, text)
            j = i + 1
            while j < len(lines) and not lines[j].startswith("$ ") and not lines[j].startswith("```"):
                ex.output.append(lines[j])
                j += 1
            found.append(ex)
        i += 1
    if path.name == "README.md":
        found += [Example(path.name, n, t) for n, t in _table_examples(path, lines)]
    found.sort(key=lambda e: e.line)
    return [e for e in found if _interp_part(e.text) is not None]


def _interp_part(text: str) -> tuple[str | None, list[str]] | None:
    """(folder to cd into or None, argv after `interp`) of `[cd DIR &&] interp ARGS`; None for other commands."""
    cd = None
    m = re.match(r"cd (\S+) && (.*)", text)
    if m:
        cd, text = m.group(1), m.group(2)
    argv = shlex.split(text, comments=True)
    if not argv or argv[0] != "interp":
        return None
    return cd, argv[1:]


def _command(name: str):
    import typer

    from interp.cli import app, commands  # noqa: F401  (commands registers the commands)

    return typer.main.get_command(app).commands[name]


def _value_index(argv: list[str], option: str) -> int | None:
    for i, a in enumerate(argv[:-1]):
        if a == option:
            return i + 1
    return None


def _smaller(doc_value: str, small: str) -> str:
    try:
        return str(min(float(doc_value), float(small))).removesuffix(".0")
    except ValueError:
        return small


def adapt(argv: list[str], cwd: Path) -> list[str]:
    """The example's argv with the substitutions of the module docstring. An example that names a tiny
    model is small already: only its paths change."""
    name = argv[0]
    params = _command(name).params
    opts = {o for p in params for o in p.opts}
    small_already = any(a.startswith("tiny-") for a in ",".join(argv).split(","))
    args = list(argv)
    for i, a in enumerate(args):
        if i and args[i - 1] in ("--out", "-o"):
            pass  # an output stays in the working directory
        elif not a.startswith("-") and not Path(a).is_absolute() and ("/" in a or "." in a) \
                and not (cwd / a).exists() and (REPO / a).exists():
            args[i] = str((REPO / a).resolve())  # a doc path is relative to the repository root
        elif a.startswith("../shared/") and not (REPO / a).exists():
            args[i] = str(SHARED / a[len("../shared/"):])  # a clone elsewhere (CI): the workspace's shared folder
        if not a.startswith("-"):
            args[i] = ",".join(MODELS.get(x, x) for x in args[i].split(","))
    for p in params:  # a model option left at its default real model
        if isinstance(p.default, str) and p.default in MODELS and not any(o in args for o in p.opts):
            args += [max(p.opts, key=len), MODELS[p.default]]
    if small_already:
        return args
    for (cmd, option), small in SIZES.items():
        j = _value_index(args, option)
        if cmd == name and j is not None:
            args[j] = _smaller(args[j], small)
    j = _value_index(args, "--method")
    prompt_teacher = name == "teach" and (args[j] if j else "prompt") == "prompt"
    extra = [] if prompt_teacher else LIMITS.get(name, [])
    for k in range(0, len(extra), 2):
        if extra[k] in opts and _value_index(args, extra[k]) is None and not (extra[k] == "--steps" and "--epochs" in args):
            args += extra[k:k + 2]
    return args


def _fresh_default_out(cwd: Path, name: str) -> None:
    """The default --out is runs/<command>/<second>, so a command run twice within one second refuses the
    second run (the folder is not empty): wait for the next second, as a person typing would."""
    while (cwd / "runs" / name / time.strftime("%Y%m%d-%H%M%S")).exists():
        time.sleep(0.05)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.parametrize("doc", [p.name for p in DOC_FILES])
def test_doc_examples_run_as_written(doc, capsys, tmp_path, monkeypatch):
    path = next(p for p in DOC_FILES if p.name == doc)
    examples = extract(path)
    if not examples:
        pytest.skip(f"{doc} has no interp example")
    monkeypatch.setenv("INTERP_HOME", str(tmp_path / "home"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    if doc in SETUP:
        SETUP[doc](work)
    failures, ran = [], 0
    for ex in examples:
        skip = [r for (d, piece), r in SKIP.items() if d == doc and piece in ex.text]
        if skip:
            continue
        code_want = ex.expected_code
        if code_want == 130:
            continue  # a Ctrl-C case (exit 130): in-process, the test cannot press Ctrl-C mid-run
        if code_want and _cuda() and "CUDA" in " ".join(ex.output):
            continue  # a CUDA-only option refused on a machine without CUDA: here it would run
        cd, argv = _interp_part(ex.text)  # type: ignore[misc]
        cwd = work
        if cd is not None:
            cwd = work / cd
            monkeypatch.chdir(cwd)
        if doc in BEFORE_EACH:
            BEFORE_EACH[doc](cwd)
        for (d, piece), before in BEFORE.items():
            if d == doc and piece in ex.text:
                before(cwd, capsys)
        for (d, piece), (options, _why) in DROP.items():
            if d == doc and piece in ex.text:
                for o in options:
                    j = argv.index(o)
                    del argv[j:j + 2]
        args = adapt(argv, cwd)
        if not {"--out", "-o"} & set(args):
            _fresh_default_out(cwd, args[0])
        code, _, err = run_cli(capsys, *args)
        ran += 1
        if code != code_want:
            failures.append(f"{doc}:{ex.line}: exit {code} (want {code_want}): interp {' '.join(args)}\n"
                            f"{err.strip()[-800:]}")
        elif code_want == 2 and ex.output and ex.output[0].startswith("error:"):
            want = " ".join(re.split(r" \(|;", ex.output[0])[0].split())  # up to its details: paths, hashes, lists
            got = " ".join(err.split())
            if want not in got:
                failures.append(f"{doc}:{ex.line}: the error differs from the doc's\n  doc: {want}\n  got: {got[:400]}")
        if cd is not None:
            monkeypatch.chdir(work)
    assert not failures, "\n\n".join(failures)
    assert ran > 0


def test_every_doc_example_is_found():
    """The extractor sees the examples (README's commands table alone has one per command)."""
    counts = {p.name: len(extract(p)) for p in DOC_FILES}
    assert counts["README.md"] >= 25
    assert all(counts[d] > 0 for d in ("trace.md", "model_making.md", "poison.md", "bias_benchmarks.md", "errors.md"))


def test_the_tables_are_current():
    """Every entry of the tables above still applies: an option the CLI renamed or an example the docs
    dropped fails here instead of silently running the example unchanged."""
    for name, option in SIZES:
        assert option in {o for p in _command(name).params for o in p.opts}, (name, option)
    for name, extra in LIMITS.items():
        assert set(extra[::2]) <= {o for p in _command(name).params for o in p.opts}, name
    texts = {p.name: [e.text for e in extract(p)] for p in DOC_FILES}
    for doc, piece in [*SKIP, *DROP, *BEFORE]:
        assert any(piece in t for t in texts[doc]), (doc, piece)
    assert set(SETUP) <= set(texts)
