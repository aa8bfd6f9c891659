"""Every committed study spec (studies/<kind>/<name>.yaml) plans, and its collect and report steps load
no model: they name models in tables (`Graph.label`), so a study folder carried to a new store never
rebuilds a finished model for a label (interp/studies/runner.py `gone_models`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from interp.cli.study_cmd import check_argv
from interp.errors import UserError
from interp.studies.runner import plan_study
from interp.studies.spec import load_study

REPO = Path(__file__).resolve().parents[1]
# these name the organism's students by their store aliases: they plan only where those exist
NEEDS_STORE = {"dissection/smollm2.yaml", "steering/smollm2-students.yaml", "steering/qwen2.5-coder-0.5b-students.yaml"}
SPECS = sorted(str(p.relative_to(REPO / "studies")) for p in (REPO / "studies").glob("*/*.yaml"))


@pytest.mark.parametrize("name", [s for s in SPECS if s not in NEEDS_STORE])
def test_collect_and_report_steps_load_no_model(name, tmp_home):
    jobs = plan_study(load_study(REPO / "studies" / name), check_argv).graph.plan()["jobs"]
    tables = {k: v["loads"] for k, v in jobs.items() if k.startswith(("collect", "report"))}
    assert tables, f"{name}: no collect or report step"
    assert all(loads == [] for loads in tables.values()), {k: v for k, v in tables.items() if v}
    # the models the other jobs load are all made by jobs of the plan
    assert {m for v in jobs.values() for m in v["loads"]} <= set(jobs)


@pytest.mark.parametrize("name", sorted(NEEDS_STORE))
def test_a_spec_that_names_store_models_is_refused_on_an_empty_store(name, tmp_home):
    with pytest.raises(UserError, match="unknown model"):
        plan_study(load_study(REPO / "studies" / name), check_argv)
