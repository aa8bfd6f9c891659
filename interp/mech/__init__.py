"""Mechanistic analysis: activation access (TransformerLens bridge / nnsight), the residual trace,
head and MLP attribution with direct logit attribution, and activation patching.

    from interp.mech.trace import trace, TraceConfig
    res = trace(lm, ["087", "747"], TraceConfig(bias="owl", control="dog"))
    res.layers, res.heads, res.dla, res.patching_summary, res.summary

Submodules: `activations` (hook names, `cache_last`, `run_cached`, through the model's engine:
bridge or nnsight, `interp.models.engine`), `attribution` (cosines, head outputs, frozen norms,
residual decomposition, DLA), `patching`, `trace`.
"""
