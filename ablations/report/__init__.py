"""The report stage: markdown, CSV and plots rendered from a run directory alone.

    render.py     render_report: report.md, the CSVs and the plots of a run directory
    training.py   the training report (results, comparisons, verdicts, expected directions)
    verdicts.py   the verdicts and expected directions in words (the analysis gives numbers and enums)
    worth.py      its opening section: is an idea worth its compute? (and its words)
    downstream.py its fine-tuned scores (and their words)
    bench.py      the bench report (memory and speed against length)
    plots.py, tables.py, results_csv.py, console.py   pictures, formats, CSV, the terminal
"""
from ablations.report.render import render_report

__all__ = ["render_report"]
