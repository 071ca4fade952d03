"""Ablations: named comparisons of BERT-family ideas, run and reported (`python -m ablations`).

A run flows one way through sub-packages named for its stages:

    cli/       one module per command, its parser generated from the run configuration
    config.py  RunConfig: one run's settings from the flag to the row
    specs/     what an ablation is (schema, the named catalogue, TOML)
    plan/      the config settled against a spec and resolved into each arm's configs, once
    run/       training the arms (one row per arm and seed), side-by-side timing, kept weights
    rows.py    the typed Row schema, with its version: what every results row holds
    rundir.py  the run directory's files and the one rule for which rows are results
    analysis/  verdicts, Pareto fronts, equal-compute differences, crossovers: numbers and enums of rows
    words.py   the one sentence the runner and the report both print (a grid edge's advice)
    report/    markdown, CSV and plots, rendered from the run directory alone, in words

This module imports nothing, so `python -m ablations list` starts without torch.
"""
