"""Studies: a spec file (studies/<study>/*.yaml) plus a graph of jobs, run by Snakemake.

spec.py (the YAML, validated) -> kinds/<kind>.py (the job graph of one kind of study, and its report)
-> graph.py (jobs, references, recipe hashes, the plan) -> runner.py (checks, then Snakemake with the
packaged Snakefile) -> execute.py (one job: the command or step, then its manifest).
"""
