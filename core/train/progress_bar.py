"""A rich progress bar with loss and tokens/s; silent when disabled (tests, other ranks)."""
from __future__ import annotations


class ProgressBar:
    """A rich progress bar with loss and tokens/s; silent when disabled."""

    def __init__(self, trainer, enabled: bool):
        self.trainer, self.enabled = trainer, enabled
        self._progress = None

    def __enter__(self):
        if self.enabled:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self._progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                                      TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[tps]} tok/s"),
                                      TimeElapsedColumn(), TimeRemainingColumn(), transient=True)
            self._progress.__enter__()
            self._task = self._progress.add_task("train", total=1000, loss="-", tps="-")
        return self

    def update(self, loss: float, tps: float) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=1000 * self.trainer.fraction_done(),
                                  loss=f"{loss:.3f}", tps=f"{tps:,.0f}")

    def __exit__(self, *exc):
        if self._progress is not None:
            self._progress.__exit__(*exc)
