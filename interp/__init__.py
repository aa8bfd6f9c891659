"""interp: a toolkit for the mechanistic study of subliminal bias transfer in language models.

Python API in a handful of calls::

    from interp.models import load_model
    from interp.probes.reverse_link import reverse_link

    lm = load_model("smollm2")
    result = reverse_link(lm, numbers=["087", "747"], bias="owl", control="dog")
    result.table      # pandas DataFrame, one row per number
    result.summary    # dict of headline figures with bootstrap CIs
"""

__version__ = "0.1.0"
