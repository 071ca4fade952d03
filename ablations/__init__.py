"""Ablations: named comparisons of BERT-family ideas, run and reported (`python -m ablations`).

A run flows one way through sub-packages named for its stages:

    specs/     what an ablation is (schema, the named catalogue, TOML)
    plan/      the run options, resolved against a spec into each arm's configs
    run/       training the arms (one row per arm and seed), side-by-side timing, kept weights
    rundir.py  the run directory's files and the one rule for which rows are results
    analysis/  verdicts, Pareto fronts, equal-compute differences, crossovers: pure functions of rows
    report/    markdown, CSV and plots, rendered from the run directory alone

This module imports nothing, so `python -m ablations list` starts without torch.
"""
