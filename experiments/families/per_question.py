"""Write reports/families/per_question.csv: the per-question rows of issue 37's studies in one table with the
columns the issue names (family, alias, teacher, channel, beta, seed, question, logp_owl, logp_other), plus
what else tells two rows apart (study, arm, objective, examples). family is the evaluated model's config
model_type (llama, qwen2, gemma3_text, ...), as the organism's collect step records it. Each study's report folder holds its own
per_question.csv (`interp study run`); run this after any of them:

    python experiments/families/per_question.py [reports/families] [study report folders ...]

(default: every reports/families/*/per_question.csv). The rows of one study are its report's rows; a report
collected before the raw tables recorded family and objective is refused (rebuild its collect step).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

COLUMNS = ["study", "family", "alias", "teacher", "channel", "arm", "objective", "beta", "seed", "examples", "question",
           "logp_owl", "logp_other"]


def union(folders: list[Path]) -> pd.DataFrame:
    frames = []
    for folder in folders:
        t = pd.read_csv(folder / "per_question.csv")
        missing = [c for c in COLUMNS if c != "study" and c not in t]
        if missing:
            raise SystemExit(f"{folder / 'per_question.csv'} has no column {', '.join(missing)} (collected before "
                             "the raw tables recorded them: rerun the study's collect and report)")
        frames.append(t.assign(study=folder.name)[COLUMNS])
        if (folder / "interim.json").exists():
            print(f"{folder}: an interim report (interim.json): its rows are those of the jobs done so far")
    if not frames:
        raise SystemExit("no report folder with a per_question.csv")
    return pd.concat(frames, ignore_index=True)


def main(root: Path, folders: list[Path]) -> None:
    folders = folders or sorted(p.parent for p in root.glob("*/per_question.csv"))
    table = union(folders)
    table.to_csv(root / "per_question.csv", index=False, float_format="%.6f")
    counts = table.groupby("study").size().to_dict()
    print(f"wrote {root / 'per_question.csv'}: {len(table)} rows ({', '.join(f'{k}: {v}' for k, v in counts.items())})")


if __name__ == "__main__":
    args = [Path(a) for a in sys.argv[1:]]
    main(args[0] if args else Path("reports/families"), args[1:])
