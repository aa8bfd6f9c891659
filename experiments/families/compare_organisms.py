"""Set the organism of two model families side by side, arm by arm (issue 37: a second family beside the first).

Reads each organism report's arms.csv (crossover interaction per recipe: mean, t-CI over seeds, seed-level p,
MDE) and teachers.csv (each teacher's margin shift against its base), and writes

    <out>/organism_compare.csv   one row per recipe (arm, channel, examples, epochs) of either report, the two
                                 families' columns suffixed _<name>; a recipe one family lacks is empty there
    <out>/teachers_compare.csv   one row per teacher build (prompt / lora) and trait, the same way

and prints both as markdown. Each report is named by its organism spec (its `report:` folder, labelled
by its base model):

    python experiments/families/compare_organisms.py studies/organism/smollm2.yaml \
        studies/organism/qwen2.5-coder-0.5b.yaml [--out reports/families]

(or NAME=FOLDER for a report folder without a spec, e.g. in tests).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

RECIPE = ["arm", "channel", "examples", "epochs"]
STATS = ["n_seeds", "mean", "lo", "hi", "p", "mde_80"]


def teacher_key(teacher: str, traits: tuple[str, ...] = ("owl", "dog")) -> tuple[str, str]:
    """(trait, build) of a teacher alias: '<...>-owl-lora-<hash>' -> ('owl', 'lora'), '<...>-dog' -> ('dog', 'prompt')."""
    parts = teacher.split("-")
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] in traits:
            return parts[i], "lora" if "lora" in parts[i + 1:] else "prompt"
    raise SystemExit(f"teacher '{teacher}' names none of the traits {traits}")


def side_by_side(tables: dict[str, pd.DataFrame], keys: list[str], columns: list[str]) -> pd.DataFrame:
    """Outer join of each table's `columns` on `keys`, suffixed with the table's name."""
    out: pd.DataFrame | None = None
    for name, t in tables.items():
        t = t[keys + columns].rename(columns={c: f"{c}_{name}" for c in columns})
        out = t if out is None else out.merge(t, on=keys, how="outer")
    assert out is not None
    return out.sort_values(keys, kind="stable").reset_index(drop=True)


def compare(reports: dict[str, Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    arms = {n: pd.read_csv(p / "arms.csv") for n, p in reports.items()}
    teachers = {}
    for n, p in reports.items():
        t = pd.read_csv(p / "teachers.csv")
        keys = [teacher_key(a) for a in t.teacher]
        teachers[n] = t.assign(trait=[k[0] for k in keys], build=[k[1] for k in keys])
    return (side_by_side(arms, RECIPE, STATS),
            side_by_side(teachers, ["build", "trait"], ["margin_shift", "lo", "hi", "p"]))


def markdown(t: pd.DataFrame, keys: list[str], names: list[str], value: str) -> str:
    what = "interaction [95% t-CI], seed p, MDE 80%" if value == "mean" else f"{value} [95% CI], p"
    head = "| " + " | ".join(keys) + " | " + " | ".join(f"{n}: {what}" for n in names) + " |"
    lines = [head, "|" + "---|" * (len(keys) + len(names))]
    for r in t.to_dict("records"):
        cells = []
        for n in names:
            v = r[f"{value}_{n}"]
            mde = r.get(f"mde_80_{n}")
            cells.append("-" if pd.isna(v) else f"{v:+.3f} [{r[f'lo_{n}']:+.3f}, {r[f'hi_{n}']:+.3f}], p {r[f'p_{n}']:.3g}"
                         + ("" if mde is None or pd.isna(mde) else f", MDE {mde:.2f}"))
        lines.append("| " + " | ".join(str(r[k]) for k in keys) + " | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def interim_note(name: str, folder: Path) -> str:
    """A line naming an interim report (`interp study interim`: its interim.json), else ''."""
    mark = folder / "interim.json"
    if not mark.exists():
        return ""
    import json

    left = json.loads(mark.read_text())["jobs_not_done"]
    return f"{name}: interim report ({mark}): {len(left)} jobs not done yet\n\n"


def named(arg: str) -> tuple[str, str]:
    """(label, report folder) of a spec path (its base model, its `report:`) or of NAME=FOLDER."""
    if "=" in arg:
        name, folder = arg.split("=", 1)
        return name, folder
    from interp.studies.spec import load_study

    study = load_study(Path(arg))
    if study.report_dir is None:
        raise SystemExit(f"{arg}: the spec names no report folder")
    return study.model("base"), str(study.report_dir)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("reports", nargs="+", help="organism specs (or NAME=report folder), two or more")
    ap.add_argument("--out", type=Path, default=Path("reports/families"))
    a = ap.parse_args()
    reports = dict(named(r) for r in a.reports)
    missing = [f"{p}/{f}" for p in reports.values() for f in ("arms.csv", "teachers.csv") if not (Path(p) / f).exists()]
    if len(reports) < 2 or missing:
        raise SystemExit("need two or more differently named reports with arms.csv and teachers.csv"
                         + (f"; missing: {', '.join(missing)}" if missing else f"; got {', '.join(reports) or 'none'}"))
    arms, teachers = compare({n: Path(p) for n, p in reports.items()})
    a.out.mkdir(parents=True, exist_ok=True)
    arms.to_csv(a.out / "organism_compare.csv", index=False, float_format="%.5g")
    teachers.to_csv(a.out / "teachers_compare.csv", index=False, float_format="%.5g")
    names = list(reports)
    for n, p in reports.items():
        print(interim_note(n, Path(p)), end="")
    print(markdown(teachers, ["build", "trait"], names, "margin_shift"), end="\n\n")
    print(markdown(arms, RECIPE, names, "mean"))


if __name__ == "__main__":
    main()
