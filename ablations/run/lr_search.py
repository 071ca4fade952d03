"""`--lr-search`, its own stage before the plan: the search points trained (or found
finished) in RUN_DIR/lr-search/, each arm's rate chosen from their rows and written to
RUN_DIR/rates.json, which the run's one `make_plan` reads."""
from __future__ import annotations

from ablations.analysis.lr_grid import edge_side
from ablations.config import parse_grid
from ablations.plan import RunConfig, make_plan
from ablations.plan.build import run_dir_of, settled
from ablations.plan.lr_search import choose_rates, search_config, search_spec, searched_arms
from ablations.run.runner import Runner, default_console
from ablations.rundir import RATES, SEARCH_DIR, claim_run_dir, read_results, results, update_json
from ablations.specs import AblationSpec
from ablations.words import edge_advice


def search_rates(spec: AblationSpec, asked: RunConfig, console=None) -> None:
    """Train the search points of the arms this process trains, choose each arm's rate and
    record it; the finished points are skipped on a re-run, so a resumed run chooses the
    same rates."""
    log = (console or default_console()).print
    config, _ = settled(spec, asked)
    grid, fraction = parse_grid(config.lr_grid), config.lr_search_fraction
    bases = searched_arms(spec, config)
    if not bases:
        return
    points = search_spec(spec, bases, grid)  # an arm the search cannot tune is refused before anything is written
    run_dir = run_dir_of(spec, config)
    claim_run_dir(run_dir, spec.name)  # a foreign or another ablation's directory is refused before the search
    out = run_dir / SEARCH_DIR
    log(f"[bold]learning-rate search[/bold]: {len(bases)} arm(s) x rates {', '.join(f'{m:g}x' for m in grid)} "
        f"of each arm's own, on {fraction:.0%} of the budget, seed {config.seed_list[0]}; in {out}")
    Runner(make_plan(points, search_config(config, str(out), fraction)), console,
           timing=False).run()
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
        rates[arm] = {"lr": r.chosen, "why": _why(r, grid, fraction), "search": r.to_json()}
    update_json(run_dir / RATES, rates)


def _why(r, grid: tuple[float, ...], fraction: float) -> str:
    return (f"lr search: the lowest held-out MLM loss of {len(grid)} rates ({', '.join(f'{m:g}x' for m in grid)} "
            f"the arm's own) on {fraction:.0%} of the budget" + ("; at the grid's edge" if r.edge else ""))

