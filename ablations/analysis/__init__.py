"""The analysis stage: claims from rows (`ablations.rows.Row`), as pure functions (no torch,
matplotlib or rich) that return numbers and enums; the report words them.

    costs.py          what an arm cost (FLOPs, seconds, memory, parameters) and its loss curve
    verdicts.py       means over seeds, paired differences and their noise, expected directions
    pareto.py         noise-aware Pareto fronts of loss against cost
    equal_compute.py  arm against reference at equal FLOPs (or seconds, tokens)
    crossover.py      where two fitted loss curves cross, with a seed bootstrap
    worth.py          the three compute answers together (the report's opening section)
    downstream.py     fine-tuned scores: at chance, and differences beyond noise
    lr_grid.py        whether --lr-search's chosen rate lies at its grid's edge
"""
