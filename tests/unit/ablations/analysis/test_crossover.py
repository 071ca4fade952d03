"""Crossovers of fitted power laws on synthetic curves with a known answer."""
import numpy as np
import pytest

from ablations.analysis.costs import loss_points
from ablations.analysis.crossover import PowerLaw, crossing, find_crossover, fit_power_law, widen
from ablations.report.worth import crossover_text
from ablations.rows import Row

CS = np.geomspace(1e13, 1e15, 8)
CHEAP = PowerLaw(E=2.0, A=0.5, alpha=0.5, scale=1e15)   # better early, higher floor
REF = PowerLaw(E=1.5, A=0.3, alpha=0.8, scale=1e15)     # worse early, lower floor


def seeds_of(law, rng, n=3, offset=0.01, noise=0.003):
    """n seeds: each a whole-curve offset (seed noise) plus small per-point noise."""
    return {s: [(float(c), float(law(c)) + o + rng.normal(0, noise)) for c in CS]
            for s, o in enumerate(rng.normal(0, offset, n))}


def test_the_fit_recovers_the_parameters_of_a_clean_curve():
    fit = fit_power_law(CS, CHEAP(CS))
    assert (fit.E, fit.A, fit.alpha) == pytest.approx((2.0, 0.5, 0.5), rel=1e-4)
    assert fit_power_law(CS[:3], CHEAP(CS[:3])) is None  # three budgets cannot fix three parameters


def test_a_known_crossover_lies_in_its_interval():
    true = crossing(CHEAP, REF, 1e13, 1e17)
    assert 1e13 < true < 1e15  # the curves cross inside the measured range (about 8e13)
    rng = np.random.default_rng(0)
    got = find_crossover(seeds_of(CHEAP, rng), seeds_of(REF, rng), ("cheap", "ref"))
    assert got.kind == "crosses" and got.lo <= true <= got.hi
    assert got.at == pytest.approx(true, rel=0.1) and not got.extrapolation
    assert "cheap lower below it, ref above" in crossover_text(got)


def test_curves_that_never_meet_have_no_crossover():
    lower = PowerLaw(E=1.5, A=0.3, alpha=0.5, scale=1e15)  # below CHEAP everywhere
    rng = np.random.default_rng(1)
    got = find_crossover(seeds_of(CHEAP, rng), seeds_of(lower, rng), ("cheap", "ref"))
    assert got.kind == "none" and crossover_text(got).startswith("no crossover within [1e+13, 1e+17] FLOPs")
    assert "ref lower throughout" in crossover_text(got)


def test_a_crossing_far_beyond_the_budget_is_an_extrapolation():
    late = PowerLaw(E=1.9, A=1.05, alpha=0.5, scale=1e15)  # meets CHEAP at C/1e15 = (0.55 / 0.1)**2 = 30.25
    true = crossing(CHEAP, late, 1e13, 1e17)
    assert true == pytest.approx(30.25e15)
    rng = np.random.default_rng(2)
    got = find_crossover(seeds_of(CHEAP, rng, noise=1e-5, offset=1e-5), seeds_of(late, rng, noise=1e-5, offset=1e-5))
    assert got.at == pytest.approx(true, rel=0.05) and got.extrapolation


def test_one_seed_or_too_few_points_claim_nothing():
    rng = np.random.default_rng(3)
    one = find_crossover(seeds_of(CHEAP, rng, n=1), seeds_of(REF, rng, n=1))
    assert one.kind == "inconclusive" and "one seed gives no interval" in crossover_text(one)
    few = {0: [(1e13, 3.0), (1e14, 2.5), (1e15, 2.2)]}
    assert find_crossover(few, few).kind == "fit failed"


def test_ladder_rungs_are_the_points_when_there_are_two_or_more():
    rows = [Row.from_json({"arm": "a", "seed": 0, "status": "ok", "rung": k, "train_flops": c,
                           "eval_mlm_loss": float(CHEAP(c)), "evals": [{"curve": True, "flops": c / 2,
                                                                        "eval_mlm_loss": 9.0}]})
            for k, c in enumerate(CS[:4])]
    pts, source = loss_points(rows, "a")
    assert source == "ladder" and pts[0] == [(float(c), float(CHEAP(c))) for c in CS[:4]]
    pts, source = loss_points(rows[-1:], "a")  # a single rung: its curve points instead
    assert source == "curve" and pts[0] == [(CS[3] / 2, 9.0)]


def test_the_bootstrap_interval_widens_for_few_seeds():
    k = 4.303 / 1.959963984540054 * (3 / 2) ** 0.5  # t with 2 dof over z, and the bootstrap's sqrt(n / (n - 1))
    assert widen(10.0, 5.0, 20.0, 3) == pytest.approx((10 * 0.5**k, 10 * 2**k))
    assert widen(10.0, 12.0, 20.0, 3)[0] == 10.0  # the interval always holds the fits' crossing
