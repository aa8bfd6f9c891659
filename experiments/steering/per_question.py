"""Write reports/steering/per_question.csv: every claim's per-question rows in one table with the columns
issue 36 names (`interp.studies.kinds.steering_report.per_question_union`). Run after a claim's report:

    python experiments/steering/per_question.py [reports/steering]
"""

from __future__ import annotations

import sys
from pathlib import Path

from interp.studies.kinds.steering_report import per_question_union


def main(root: Path) -> None:
    table = per_question_union(root)
    table.to_csv(root / "per_question.csv", index=False, float_format="%.6f")
    counts = table.groupby("claim").size().to_dict()
    print(f"wrote {root / 'per_question.csv'}: {len(table)} rows ({', '.join(f'claim {k}: {v}' for k, v in counts.items())})")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "reports/steering"))
