"""Matplotlib helpers shared by every module that draws (Agg backend, no display needed)."""

from __future__ import annotations

import io
from typing import Any


def figure_png(fig: Any, dpi: int | None = None) -> bytes:
    """Render `fig` to PNG bytes (tight layout, no timestamp metadata) and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()
