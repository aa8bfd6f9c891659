"""Known answers for the shared markdown tables of the reports."""

import numpy as np
import pandas as pd

from interp.report.tables import recovered_markdown, signed


def test_signed_formats_and_marks_missing():
    assert signed(0.12345) == "+0.123"
    assert signed(-2.0, 1) == "-2.0"
    assert signed(float("nan")) == "-"
    assert signed(None) == "-"


def test_recovered_markdown_one_row_per_site_and_direction_cells():
    rows = []
    for d, gap in (("S_into_C", 2.0), ("C_into_S", -2.0)):
        for site, rec in (("embed", 0.0), ("L0.resid", 0.5), ("L1.resid", 1.0)):
            rows.append({"direction": d, "site": site, "recovered": rec, "recovered_lo": rec - 0.1,
                         "recovered_hi": rec + 0.1, "delta": rec * gap, "m_source": gap, "m_target": 0.0})
    t = pd.DataFrame(rows)
    lines = recovered_markdown(t, ("C_into_S", "S_into_C"))
    assert lines[0] == "m(source) - m(target): C_into_S: -2.000, S_into_C: +2.000"
    assert lines[2] == "| site | C_into_S: recovered [95% CI] | delta | S_into_C: recovered [95% CI] | delta |"
    assert lines[3] == "|---|---|---|---|---|"
    assert len(lines) == 4 + 3
    assert lines[5] == "| L0.resid | +0.500 [+0.400, +0.600] | -1.000 | +0.500 [+0.400, +0.600] | +1.000 |"
    t.loc[0, "recovered_lo"] = np.nan
    assert recovered_markdown(t)[4].startswith("| embed | +0.000 [-, +0.100] | +0.000 |")
