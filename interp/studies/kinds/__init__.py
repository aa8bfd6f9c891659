"""One module per kind of study. Each defines:

    ROLES: tuple[str, ...]                  # the keys of the spec's `models:` it needs ("base", ...)
    ROLE_PATTERN: str                       # optional: a regex for any number of further roles
                                            # (e.g. student-<trait>-s<seed>)
    class Recipe(Strict): ...               # the spec's `recipe:` block (unknown keys refused)
    def build(study: Study, g: Graph) -> str
        # add the jobs (g.command / g.step, in dependency order); return the name of the report job
    def report(raw: Path, out: Path, recipe: Recipe) -> None
        # the report tables from the raw tables alone (what the report job calls, and what
        # `interp study report SPEC --raw DIR` calls on the committed raw tables)

Model names come only from `study.spec.models`; every command that loads a model gets
`study.loading()` (--device, --dtype); a job that makes a model passes `--alias SELF` and
`model="<role>"`, so its alias is <study>-<base>-<role>-<hash>.
"""
