"""Noise-aware Pareto fronts on hand-made rows: every front below is worked out by hand."""
import pytest

from ablations.analysis.costs import row_cost
from ablations.analysis.pareto import ArmPoint, compare_cost, compare_loss, dominates, pareto_fronts
from ablations.analysis.verdicts import collect
from ablations.rows import Row
from ablations.rundir import result_rows

BASE = [2.0, 2.2, 1.8, 2.0]  # per-example loss sums, one predicted token each: the mean is the loss


def row(arm, offsets, flops, seconds, memory, params, seed=0, **extra):
    sums = [b + o for b, o in zip(BASE, offsets)]
    return Row.from_json({"arm": arm, "seed": seed, "status": "ok", "eval_mlm_loss": sum(sums) / len(sums),
                          "eval_mlm_example_loss": sums, "eval_mlm_example_tokens": [1, 1, 1, 1], "train_flops": flops,
                          "wall_s": seconds, "peak_mem_bytes": memory, "params_unique": params, **extra})


# loss against ref: paired per-example differences, noise = 1.96 * sqrt(4) * sd(d) / 4
ROWS = [
    row("ref", [0, 0, 0, 0], 100, 10, 1000, 50),
    row("big", [-0.5, -0.6, -0.4, -0.5], 200, 20, 2000, 100),       # -0.5, noise 0.08: lower beyond noise
    row("cheap_tie", [0.1, -0.1, 0.05, -0.05], 50, 10, 1000, 50),    # +0.0, noise 0.09: a tie
    row("rounding", [-0.05, 0.05, -0.1, 0.1], 101, 10, 1000, 50),   # a tie; FLOPs within 2% of ref's
    row("cheap_worse", [0.5, 0.5, 0.4, 0.6], 25, 5, 500, 25),        # +0.5: higher beyond noise, cheapest
]


def test_loss_order_is_noise_aware():
    arms = collect(ROWS)
    assert compare_loss(arms["big"], arms["ref"]) == -1
    assert compare_loss(arms["ref"], arms["big"]) == 1
    assert compare_loss(arms["cheap_tie"], arms["ref"]) == 0
    assert compare_loss(arms["rounding"], arms["cheap_tie"]) == 0
    assert compare_loss(arms["cheap_worse"], arms["ref"]) == 1


def test_fronts_by_hand():
    f = pareto_fronts(collect(ROWS))
    # FLOPs: cheap_tie ties ref and rounding on loss at half their FLOPs, so it dominates both;
    # big has the lowest loss, cheap_worse the lowest FLOPs
    assert f.per_axis["flops"] == ["big", "cheap_tie", "cheap_worse"]
    # parameters: ref, cheap_tie and rounding tie on loss and on parameters (50 each): none dominates
    assert f.per_axis["params"] == ["ref", "big", "cheap_tie", "rounding", "cheap_worse"]
    # all axes: cheap_tie is no dearer anywhere than ref or rounding and strictly cheaper in FLOPs
    assert f.axes == ("flops", "seconds", "memory", "params")
    assert f.all_axes == ["big", "cheap_tie", "cheap_worse"]


def test_a_tie_on_loss_and_cost_is_no_dominance_either_way():
    arms = collect(ROWS)
    f = pareto_fronts({k: arms[k] for k in ("ref", "rounding")})
    assert f.per_axis["flops"] == ["ref", "rounding"] and f.all_axes == ["ref", "rounding"]


def test_dominance_rule():
    a = ArmPoint("a", 2.0, None, {"flops": 50.0, "params": 10.0})
    b = ArmPoint("b", 2.0, None, {"flops": 100.0, "params": 10.0})
    assert dominates(a, b, 0, ("flops",)) and dominates(a, b, 0, ("flops", "params"))  # tie + strictly cheaper
    assert not dominates(a, b, 0, ("params",))        # tie + equal cost
    assert dominates(a, b, -1, ("params",))           # equal cost, lower loss beyond noise
    assert not dominates(a, b, 1, ("flops",))         # cheaper but higher loss beyond noise
    assert not dominates(a, b, None, ("flops",))      # noise unknown: nothing claimed
    assert not dominates(b, a, -1, ("flops",))        # lower loss but dearer
    assert not dominates(a, b, -1, ("memory",))       # no figure on the axis
    assert compare_cost(100, 101.9) == 0 and compare_cost(100, 102.1) == -1 and compare_cost(3, 1) == 1


def test_seed_noise_can_make_a_tie():
    """Two seeds whose differences disagree: -0.5 and +0.1; seed margin 12.706 x 0.3 >> 0.2."""
    rows = [row("ref", [0] * 4, 100, 1, 1, 1, seed=0), row("ref", [0] * 4, 100, 1, 1, 1, seed=1),
            row("arm", [-0.5] * 4, 50, 1, 1, 1, seed=0), row("arm", [0.1] * 4, 50, 1, 1, 1, seed=1)]
    arms = collect(rows)
    assert compare_loss(arms["arm"], arms["ref"]) == 0
    f = pareto_fronts(arms)
    assert f.all_axes == ["arm"]  # a tie, strictly cheaper in FLOPs
    assert f.points["arm"].loss == pytest.approx(2.0 - 0.2) and f.points["arm"].loss_se == pytest.approx(0.3)


def test_unknown_noise_claims_nothing_and_costs_fall_back():
    old = Row.from_json({"arm": "old", "seed": 0, "status": "ok", "eval_mlm_loss": 9.0, "tokens_seen": 10,
                         "flops_per_token": 30.0, "wall_s": 99, "peak_mem_bytes": 9999, "params_unique": 999})
    rows = ROWS[:1] + [old]
    assert row_cost(old, "flops") == 300.0  # tokens x analytic FLOPs per token
    f = pareto_fronts(collect(rows))
    assert f.all_axes == ["ref", "old"]  # far worse and dearer, but with no noise estimate: not dominated


def test_a_ladder_counts_its_largest_rung_only():
    rungs = [row("ref", [0.3] * 4, 10, 1, 1000, 50, rung=0), row("ref", [0] * 4, 100, 10, 1000, 50, rung=1)]
    assert result_rows(rungs + ROWS[1:2]) == [rungs[1], ROWS[1]]
    f = pareto_fronts(collect(result_rows(rungs + ROWS[1:3])))
    assert f.points["ref"].costs["flops"] == 100 and f.per_axis["flops"] == ["big", "cheap_tie"]
