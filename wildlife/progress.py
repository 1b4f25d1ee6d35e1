"""Progress bars for long loops, and the console every message goes through (stderr, so stdout stays data)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True, highlight=False, soft_wrap=True)


@contextmanager
def progress_bar(label: str, total: int, completed: int = 0) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)``. Silent when ODIN_NO_PROGRESS is set or stderr is not a terminal."""
    if os.environ.get("ODIN_NO_PROGRESS") or not console.is_terminal:
        yield lambda n: None
        return
    columns = (
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(label, total=total, completed=completed, rate="")

        def advance(n: int) -> None:
            progress.advance(task, n)
            t = progress.tasks[0]
            if t.speed:
                progress.update(task, rate=f"{t.speed:,.0f}/s")

        yield advance
