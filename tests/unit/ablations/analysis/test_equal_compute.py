"""Equal-compute differences on hand-made curves: interpolation and noise computed by hand."""
import math

import pytest

from ablations.analysis.costs import curve, example_sums
from ablations.analysis.equal_compute import (
    at_budget,
    bracket,
    common_budget,
    equal_compute_all,
    equal_compute_difference,
)
from ablations.analysis.verdicts import collect as collect_rows
from ablations.report.worth import equal_compute_words, mismatch_words
from ablations.rows import EvalPoint, Row
from core.stats import paired_eval_se

COUNTS = [1, 2, 3]


def point(flops, sums, **extra):
    """A curve point whose loss is its per-example sums over the 6 tokens."""
    return {"step": 1, "tokens": flops // 10, "seconds": flops / 1000, "flops": flops, "curve": True,
            "eval_mlm_loss": sum(sums) / sum(COUNTS), "mlm_example_losses": sums, **extra}


def row(arm, seed, points, compare_to=None):
    return {"arm": arm, "seed": seed, "status": "ok", "compare_to": compare_to, "eval_mlm_loss": 0.0,
            "eval_mlm_example_tokens": COUNTS + [4, 5], "evals": points + [{"step": 9, "tokens": 1, "seconds": 1}]}


REF = {0: [point(100, [6.0, 12.0, 18.0]), point(1000, [4.0, 9.0, 12.0]), point(10000, [3.0, 6.0, 9.0])],
       1: [point(100, [6.6, 12.0, 18.0]), point(1000, [4.2, 9.0, 12.6]), point(10000, [3.0, 6.6, 9.0])]}
ARM = {0: [point(200, [5.0, 10.0, 15.0]), point(5000, [3.0, 5.0, 8.0])],
       1: [point(200, [5.0, 10.6, 15.0]), point(6000, [2.4, 6.0, 8.4])]}
ROWS = [row("ref", s, REF[s]) for s in (0, 1)] + [row("arm", s, ARM[s], "ref") for s in (0, 1)]


def collect(rows):
    """The rows above are written as JSON objects, as results.jsonl holds them."""
    return collect_rows([Row.from_json(r) for r in rows])


def test_bracket_is_linear_in_log_c():
    assert bracket([100.0, 1000.0], 100.0) == (0, 0.0)
    i, w = bracket([100.0, 1000.0], 316.22776601683796)
    assert i == 0 and w == pytest.approx(0.5)
    assert bracket([100.0, 1000.0], 1000.0) == (1, 0.0)
    assert bracket([100.0, 1000.0], 99.0) is None and bracket([100.0, 1000.0], 1001.0) is None


def test_the_common_budget_is_the_smallest_last_point():
    assert common_budget(collect(ROWS), "flops") == 5000


def test_interpolated_difference_by_hand():
    arms = collect(ROWS)
    w = math.log(5) / math.log(10)  # 5000 between 1000 and 10000, in log C
    ref0 = [(1 - w) * a + w * b for a, b in zip([4.0, 9.0, 12.0], [3.0, 6.0, 9.0])]
    ref1 = [(1 - w) * a + w * b for a, b in zip([4.2, 9.0, 12.6], [3.0, 6.6, 9.0])]
    v = math.log(5000 / 200) / math.log(6000 / 200)  # arm seed 1: 5000 between 200 and 6000
    arm0 = [3.0, 5.0, 8.0]
    arm1 = [(1 - v) * a + v * b for a, b in zip([5.0, 10.6, 15.0], [2.4, 6.0, 8.4])]
    d0, d1 = (sum(arm0) - sum(ref0)) / 6, (sum(arm1) - sum(ref1)) / 6
    d = equal_compute_difference(arms["arm"], arms["ref"], "flops", 5000)
    assert d.diff == pytest.approx((d0 + d1) / 2) and d.seed_se == pytest.approx(abs(d0 - d1) / 2)
    e0, e1 = paired_eval_se(arm0, ref0, COUNTS), paired_eval_se(arm1, ref1, COUNTS)
    assert d.paired_eval and d.eval_se == pytest.approx(math.hypot(e0, e1) / 2) and d.seeds == 2
    got = equal_compute_all(arms, "flops")
    assert list(got) == ["arm"] and got["arm"].budget == 5000 and got["arm"].difference.diff == pytest.approx(d.diff)
    assert equal_compute_words(got["arm"]).startswith("MLM loss ")


def test_no_value_outside_a_curve_and_no_eval_noise_without_per_example_losses():
    r = row("x", 0, [point(100, [6.0, 12.0, 18.0]), point(1000, [4.0, 9.0, 12.0])])
    assert at_budget(Row.from_json(r), "flops", 50) is None and at_budget(Row.from_json(r), "flops", 2000) is None
    for e in r["evals"]:
        e.pop("mlm_example_losses", None)
    got = at_budget(Row.from_json(r), "flops", 1000)
    assert got.loss == pytest.approx(25 / 6) and got.sums is None


def test_example_means_are_turned_into_sums_and_flops_derive_from_tokens():
    e = {"curve": True, "tokens": 10, "eval_mlm_loss": 36 / 6, "mlm_example_losses": [6.0, 6.0, 6.0]}
    counted = Row.from_json({"eval_mlm_example_tokens": COUNTS})
    assert example_sums(EvalPoint.from_json(e), counted) == ([6.0, 12.0, 18.0], COUNTS)
    e2 = {**e, "eval_mlm_loss": 3.0, "mlm_example_tokens": COUNTS}  # sums: 18 / 6 = 3
    assert example_sums(EvalPoint.from_json(e2), Row()) == ([6.0, 6.0, 6.0], COUNTS)
    old = Row.from_json({"flops_per_token": 7.0, "evals": [e, {**e, "tokens": 20}]})
    assert [x for x, _ in curve(old, "flops")] == [70.0, 140.0]
    assert curve(Row.from_json({"evals": [e]}), "flops") == []  # no FLOPs figure at all


def test_curves_of_different_sizes_pair_on_their_shared_examples():
    """An arm whose curve points cover 4 examples (another curve size) pairs with a
    3-example reference on the first 3: the same held-out examples, the same masks."""
    longer = [{**point(200, [5.0, 10.0, 15.0]), "mlm_example_losses": [5.0, 10.0, 15.0, 8.0], "eval_mlm_loss": 3.8},
              {**point(5000, [3.0, 5.0, 8.0]), "mlm_example_losses": [3.0, 5.0, 8.0, 6.0], "eval_mlm_loss": 2.2}]
    arms = collect([row("ref", 0, REF[0]), row("arm", 0, longer, "ref")])
    w = math.log(5) / math.log(10)
    ref0 = [(1 - w) * a + w * b for a, b in zip([4.0, 9.0, 12.0], [3.0, 6.0, 9.0])]
    d = equal_compute_difference(arms["arm"], arms["ref"], "flops", 5000)
    assert d.paired_eval and d.eval_se == pytest.approx(paired_eval_se([3.0, 5.0, 8.0], ref0, COUNTS))
    # examples whose token counts disagree are not the same examples: no pairing
    other = [dict(e, mlm_example_tokens=[2, 1, 3, 4]) for e in longer]
    arms = collect([row("ref", 0, REF[0]), row("arm", 0, other, "ref")])
    assert not equal_compute_difference(arms["arm"], arms["ref"], "flops", 5000).paired_eval


def test_curves_at_different_points_of_their_schedules_are_not_judged():
    """REF's runs end at 10,000, ARM's at 5,000-6,000: at C = 5,000 the arm has finished its
    learning-rate decay and the reference is half-way through it, so the difference is given
    but not judged. Equal budgets, or both in a wsd stable phase, are judged."""
    from ablations.analysis.equal_compute import schedule_mismatch

    arms = collect(ROWS)
    got = equal_compute_all(arms, "flops")["arm"]
    assert got.mismatch and "50%" in mismatch_words(got.mismatch) and "--flops N" in mismatch_words(got.mismatch)
    assert "not judged" in equal_compute_words(got) and "beyond" not in equal_compute_words(got)
    same_end = collect([row("ref", 0, REF[0]), row("arm", 0, [point(200, [5.0, 10.0, 15.0]),
                                                                point(10000, [3.0, 5.0, 8.0])], "ref")])
    assert schedule_mismatch(same_end["arm"], same_end["ref"], "flops", 5000) is None
    # a budget stops an arm within one step of it: with 10 steps a run, 50% vs 100% is still a mismatch,
    # with 2 steps (one step = half the run) it is not
    assert schedule_mismatch(*[collect([dict(r, steps=10) for r in ROWS])[a] for a in ("arm", "ref")], "flops", 5000)
    assert not schedule_mismatch(*[collect([dict(r, steps=2) for r in ROWS])[a] for a in ("arm", "ref")], "flops", 5000)
    stable = [dict(r, config={"train.schedule": "wsd", "train.decay": 0.2}) for r in ROWS]
    wsd = collect(stable)
    assert schedule_mismatch(wsd["arm"], wsd["ref"], "flops", 4000) is None   # 67-80% and 40%: both stable
    assert schedule_mismatch(wsd["arm"], wsd["ref"], "flops", 5000) is not None  # the arm is cooling down
