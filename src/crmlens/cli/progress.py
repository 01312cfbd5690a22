"""Rich progress bars driven by the ``progress(step, done, total)`` callbacks of long steps."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)


def make_console(*, stderr: bool = False) -> Console:
    """A console; when output is not a terminal (CI logs, pipes), wide enough for our tables."""
    console = Console(stderr=stderr, soft_wrap=stderr)
    if not console.is_terminal:
        console.width = max(console.width, 120)
    return console


class ProgressBars:
    """One bar per step name, created the first time the step reports."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._tasks: dict[str, TaskID] = {}

    def __call__(self, step: str, done: int, total: int) -> None:
        task = self._tasks.get(step)
        if task is None:
            task = self._progress.add_task(step, total=max(total, 1))
            self._tasks[step] = task
        self._progress.update(task, completed=done, total=max(total, 1))


@contextmanager
def progress_bars(console: Console, *, enabled: bool = True) -> Iterator[ProgressBars | None]:
    """A callback that draws bars on ``console``; None when disabled (e.g. ``--quiet``)."""
    if not enabled:
        yield None
        return
    progress = Progress(
        TextColumn("[bold]{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    with progress:
        yield ProgressBars(progress)
