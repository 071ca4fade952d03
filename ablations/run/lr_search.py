"""`--lr-search`, run: the search points trained (or found finished) in RUN_DIR/lr-search/,
each arm's rate chosen from their rows, and the plan made again with those rates."""
from __future__ import annotations

from collections.abc import Callable

from ablations.analysis.lr_grid import edge_advice, edge_side
from ablations.plan import Plan, make_plan
from ablations.plan.lr_search import choose_rates, search_options, search_spec, searched_arms
from ablations.plan.options import parse_grid
from ablations.rundir import SEARCH_DIR, read_results, results


def tune_rates(plan: Plan, run: Callable[[Plan], object], log: Callable[[str], None]) -> Plan:
    """`run` trains a plan's units (a Runner without side-by-side timing); the search's
    finished points are skipped on a re-run, so a resumed run chooses the same rates."""
    grid, fraction = parse_grid(plan.opts.lr_grid), plan.opts.lr_search_fraction
    bases = searched_arms(plan)
    if not bases:
        return plan
    out = plan.run_dir / SEARCH_DIR
    log(f"[bold]learning-rate search[/bold]: {len(bases)} arm(s) x rates {', '.join(f'{m:g}x' for m in grid)} "
        f"of each arm's own, on {fraction:.0%} of the budget, seed {plan.opts.seed_list[0]}; in {out}")
    run(make_plan(search_spec(plan, grid), search_options(plan, str(out), fraction)))
    chosen = choose_rates(results(read_results(out)), bases, grid)
    rates = {}
    for arm, r in chosen.items():
        losses = ", ".join(f"{lr:.3g}: {'–' if v is None else f'{v:.3f}'}" for lr, v in sorted(r.losses.items()))
        if r.chosen is None:
            log(f"  [red]{arm}[/red]: no search point finished ok ({losses}); it trains at its own rate")
            continue
        side = edge_side(r.chosen, r.losses)
        edge = f" [yellow]({edge_advice(side)})[/yellow]" if side else ""
        log(f"  {arm}: lr {r.chosen:.3g} (held-out MLM loss by rate: {losses}){edge}")
        rates[arm] = (r.chosen, r)
    tuned = make_plan(plan.spec, plan.opts, rates={a: (lr, _why(r, grid, fraction)) for a, (lr, r) in rates.items()})
    for u in tuned.units:
        if u.arm.name in rates:
            u.resolved.lr_search = rates[u.arm.name][1].to_json()
    return tuned


def _why(r, grid: tuple[float, ...], fraction: float) -> str:
    return (f"lr search: the lowest held-out MLM loss of {len(grid)} rates ({', '.join(f'{m:g}x' for m in grid)} "
            f"the arm's own) on {fraction:.0%} of the budget" + ("; at the grid's edge" if r.edge else ""))
