"""Rich progress bars driven by the ``progress(step, done, total)`` callbacks of long steps."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text


def make_console(*, stderr: bool = False) -> Console:
    """A console; when output is not a terminal (CI logs, pipes), wide enough for our tables."""
    console = Console(stderr=stderr, soft_wrap=stderr)
    if not console.is_terminal:
        console.width = max(console.width, 120)
    return console


class RowsPerSecond(ProgressColumn):
    """Rows so far and rows per second of a step (steps that report ``rows``)."""

    def render(self, task: Task) -> Text:
        rows = int(task.fields.get("rows", 0))
        elapsed = task.finished_time if task.finished else task.elapsed
        rate = f"{rows / elapsed:,.0f} rows/s" if elapsed else ""
        return Text(f"{rows:,} rows {rate}", style="progress.data.speed")


class ProgressBars:
    """One bar per step name, created the first time the step reports."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._tasks: dict[str, TaskID] = {}

    def __call__(self, step: str, done: int, total: int, rows: int = 0) -> None:
        task = self._tasks.get(step)
        if task is None:
            task = self._progress.add_task(step, total=max(total, 1), rows=0)
            self._tasks[step] = task
        self._progress.update(task, completed=done, total=max(total, 1), rows=rows)


@contextmanager
def progress_bars(
    console: Console, *, enabled: bool = True, rows: bool = False, label_width: int = 28
) -> Iterator[ProgressBars | None]:
    """A callback that draws bars on ``console``; None when disabled (e.g. ``--quiet``).

    With ``rows``, each bar also shows the rows done and rows per second.
    """
    if not enabled:
        yield None
        return
    progress = Progress(
        TextColumn(f"[bold]{{task.description:<{label_width}}}"),
        BarColumn(),
        MofNCompleteColumn(),
        *([RowsPerSecond()] if rows else []),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    with progress:
        yield ProgressBars(progress)
