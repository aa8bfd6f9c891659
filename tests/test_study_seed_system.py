"""The seeds' own systems as study specs (issue 33 item 7): seed 002 (Llama-3.2-1B-Instruct owl teacher ->
GPT-2-medium by SHD) and seed 000 (Mistral-7B QLoRA stereotype teachers -> Gemma-2B by SHD). Plans, a dry
run, the offline memory check from the transcribed configs, recipe validation and the report tables."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import yaml

from interp.cli.study_cmd import check_argv
from interp.errors import UserError
from interp.models.arch import LAYOUTS
from interp.studies.kinds import seed_system
from interp.studies.memory import architecture, memory_estimate
from interp.studies.runner import plan_study, run_study
from interp.studies.spec import load_study

ROOT = Path(__file__).resolve().parents[1]
SEED_002 = ROOT / "studies/seed_002/llama-3.2-1b-gpt2-medium.yaml"
SEED_000 = ROOT / "studies/seed_000/mistral-7b-gemma-2b.yaml"
CONFIGS = {  # config file -> (model_type, published parameter count)
    "seed_002/configs/llama-3.2-1b-instruct.json": ("llama", 1.24e9),
    "seed_002/configs/gpt2-medium.json": ("gpt2", 355e6),
    "seed_000/configs/mistral-7b.json": ("mistral", 7.24e9),
    "seed_000/configs/gemma-2b.json": ("gemma", 2.51e9),
}
LOADING = {"teach", "finetune", "distill", "gen-numbers", "eval-animal", "reverse-link", "trace", "crows", "stereoset"}


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_HOME", str(tmp_path / "home"))


def counts(planned) -> Counter:
    return Counter(j.argv[0] if j.argv else j.func.split(":")[1] for j in planned.graph.jobs.values())


def argv(planned, name: str) -> list[str]:
    job = planned.graph.jobs[name]
    return [planned.graph.resolved(a, job) for a in job.argv]


def test_seed_002_plans():
    p = plan_study(load_study(SEED_002), check_argv)
    assert next(iter(p.graph.jobs)) == "memory"
    # 9 models (base, student, 1 teacher, 3 SHD + 3 beta0 students) x eval-animal; probes on base + teacher
    assert counts(p) == {"memory_step": 1, "gen-numbers": 1, "teach": 1, "distill": 6, "eval-animal": 9,
                         "reverse-link": 2, "trace": 2, "collect": 1, "report_step": 1}
    teach = argv(p, "teacher-s200")
    assert teach[:9] == ["teach", "--base", "meta-llama/Llama-3.2-1B-Instruct", "--trait", "owl", "--method", "lora",
                         "--n-preference", "48"]
    shd = argv(p, "shd-t200-s1")
    assert shd[shd.index("--student") + 1] == "openai-community/gpt2-medium"
    assert shd[shd.index("--kind") + 1] == "shd" and shd[shd.index("--beta") + 1] == "10"
    assert shd[shd.index("--teacher") + 1] == p.graph.jobs["teacher-s200"].alias
    assert "--load-in-4bit" not in shd
    for job in p.graph.jobs.values():
        if job.argv and job.argv[0] in LOADING:
            a = argv(p, job.name)
            assert a[a.index("--device") + 1] == "cuda" and a[a.index("--dtype") + 1] == "bf16", job.name


def test_seed_000_plans():
    p = plan_study(load_study(SEED_000), check_argv)
    assert next(iter(p.graph.jobs)) == "memory"
    # 3 teachers (50 / 200 / 500 steps); 3 seeds x (3 SHD students + beta0); 17 models x 2 crows, 2 stereoset
    assert counts(p) == {"memory_step": 1, "social-data": 1, "draw_subset": 3, "finetune": 3, "distill": 12,
                         "crows": 34, "stereoset": 34, "collect": 1, "report_step": 1}
    teacher = argv(p, "teacher-s500")
    assert teacher[teacher.index("--model") + 1] == "mistralai/Mistral-7B-v0.1"
    assert "--load-in-4bit" in teacher and teacher[teacher.index("--data") + 1].endswith("stereo_broad.jsonl")
    shd = argv(p, "shd-t50-s2")
    assert shd[shd.index("--student") + 1] == "google/gemma-2b" and "--load-in-4bit" in shd
    assert shd[shd.index("--form") + 1] == "convex" and shd[shd.index("--beta") + 1] == "0.5"
    assert argv(p, "beta0-s0")[argv(p, "beta0-s0").index("--kind") + 1] == "none"


def test_seed_002_dry_run(tmp_path):
    res = run_study(plan_study(load_study(SEED_002), check_argv), cores=1, dry_run=True, study_dir=tmp_path / "s")
    assert res.returncode == 0 and res.jobs_to_run == 24


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_parameter_counts_match_published_sizes(config):
    model_type, published = CONFIGS[config]
    a = architecture(ROOT / "studies" / config)
    assert a.model_type == model_type and a.arch_layout and model_type in LAYOUTS
    assert abs(a.params - published) / published < 0.02, (config, a.params)


def test_fits_80_not_16():
    mistral = ROOT / "studies/seed_000/configs/mistral-7b.json"
    a = architecture(mistral)
    assert memory_estimate(mistral, "bf16", 80, "lora", arch=a).fits
    lora16 = memory_estimate(mistral, "bf16", 16, "lora", arch=a)
    assert not lora16.fits and lora16.weights_gb == pytest.approx(14.48, abs=0.01)  # 7.24e9 x 2 bytes
    assert memory_estimate(mistral, "bf16", 16, "qlora", arch=a).fits  # the seed's QLoRA is what fits 12-16 GB
    assert not memory_estimate(mistral, "bf16", 80, "full", arch=a).fits  # 7.24e9 x (2 + 2 + 8) bytes = 87 GB


def test_memory_step_table(tmp_path, capsys):
    study = load_study(SEED_000)
    cfg = {role: str(study.data(path)) for role, path in study.recipe.configs.items()}
    params = {"models": dict(study.spec.models), "dtype": "bf16", "device_gb": 16.0, "headroom": 0.8,
              "teacher_method": "lora", "student_method": "qlora", "lora_r": 8}
    seed_system.memory_step(tmp_path, params, **cfg)
    t = pd.read_csv(tmp_path / "memory.csv")
    assert list(t.fits) == [False, True, False, True]  # base LoRA bf16, student QLoRA, bf16 evals, 4-bit distill
    assert "fits" in capsys.readouterr().out


def spec_with(tmp_path: Path, src: Path, edit) -> Path:
    raw = yaml.safe_load(src.read_text())
    edit(raw)
    for role, p in raw["recipe"]["configs"].items():
        raw["recipe"]["configs"][role] = str(src.parent / p)
    for k, p in raw["recipe"].get("sources", {}).items():
        raw["recipe"]["sources"][k] = str((src.parent / p).resolve())
    out = tmp_path / "spec.yaml"
    out.write_text(yaml.safe_dump(raw))
    return out


@pytest.mark.parametrize("edit,key", [
    (lambda r: r["recipe"].update(gamma=1), "recipe.gamma"),
    (lambda r: r["recipe"]["distill"].update(alpha=0.5), "recipe.distill.alpha"),
])
def test_unknown_recipe_key_refused(tmp_path, edit, key):
    with pytest.raises(UserError, match=f"unknown key '{key}'"):
        load_study(spec_with(tmp_path, SEED_002, edit))


def test_inconsistent_recipe_refused(tmp_path):
    with pytest.raises(UserError, match="exactly one of numbers"):
        load_study(spec_with(tmp_path, SEED_002, lambda r: r["recipe"].update(neutral={"examples": 8})))
    with pytest.raises(UserError, match="needs an animal trait"):
        load_study(spec_with(tmp_path, SEED_000, lambda r: r["recipe"]["evals"].update(animal={})))


def test_changed_beta_rehashes_only_its_jobs(tmp_path):
    a = plan_study(load_study(SEED_002), check_argv).graph.jobs
    b = plan_study(load_study(spec_with(tmp_path, SEED_002, lambda r: r["recipe"]["distill"].update(beta=5))),
                   check_argv).graph.jobs
    changed = {n for n in a if a[n].hash != b[n].hash}
    shd = {f"shd-t200-s{s}" for s in range(3)}
    assert changed == shd | {f"eval-animal-{n}" for n in shd} | {"collect", "report"}


def test_report_tables(tmp_path):
    rows = []
    for model, role, seed, shift in [("student", "student", None, 0.0), ("shd-t200-s0", "distilled", 0, 0.1),
                                     ("shd-t200-s1", "distilled", 1, 0.3), ("beta0-s0", "distilled", 0, 0.0)]:
        kind = None if role == "student" else ("none" if model.startswith("beta0") else "shd")
        for q in range(4):
            rows.append({"model": model, "alias": model, "role": role, "seed": seed, "kind": kind,
                         "teacher_steps": 200 if kind == "shd" else None, "form": "sum" if kind == "shd" else None,
                         "beta": 10.0 if kind == "shd" else 0.0, "tau": 2.0 if kind == "shd" else None,
                         "metric": "p_trait", "item": f"q{q}", "value": 0.1 * q + shift})
    pd.DataFrame(rows).to_csv(tmp_path / "items.csv", index=False)
    seed_system.report(tmp_path, tmp_path / "out", load_study(SEED_002).recipe)
    s = pd.read_csv(tmp_path / "out/summary.csv")
    assert s.set_index("model").loc["shd-t200-s1", "mean"] == pytest.approx(0.45)
    t = pd.read_csv(tmp_path / "out/transfer.csv")
    shd = t[t.kind == "shd"].iloc[0]
    assert shd.n_seeds == 2 and shd["mean"] == pytest.approx(0.2) and shd.seeds == "0,1"
    assert t[t.kind == "none"].iloc[0]["mean"] == pytest.approx(0.0)
