"""Progress for long loops, and the console every message goes through (stderr, so stdout stays data).

On a terminal a loop shows a live bar. When stderr is not a terminal (a nohup'd run, a Batch job, CI) the same
loop prints a plain line every ``ODIN_PROGRESS_INTERVAL_S`` seconds (30 by default) and one when it ends:
what it is doing, done/total, the rate and the time left, so a log shows a run is alive and when it will end.
``ODIN_NO_PROGRESS`` silences both.
"""

from __future__ import annotations

import os
import threading
import time
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

INTERVAL_ENV = "ODIN_PROGRESS_INTERVAL_S"
DEFAULT_INTERVAL_S = 30.0
_last_line = [0.0]  # time.monotonic() of the last progress line printed, for ``heartbeat``


def interval_s() -> float:
    """Seconds between two progress lines in a log (``ODIN_PROGRESS_INTERVAL_S``, else 30)."""
    try:
        return max(float(os.environ.get(INTERVAL_ENV) or DEFAULT_INTERVAL_S), 0.01)
    except ValueError:
        return DEFAULT_INTERVAL_S


def _duration(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f} s"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


@contextmanager
def progress_bar(label: str, total: int, completed: int = 0,
                 unit: str = "photos") -> Iterator[Callable[..., None]]:
    """Yield ``advance(n, doing=None)`` (``doing``: what comes next, shown next to the count).

    A bar on a terminal; log lines otherwise (module docstring); nothing when ODIN_NO_PROGRESS is set.
    """
    if os.environ.get("ODIN_NO_PROGRESS"):
        yield lambda n, doing=None: None
    elif console.is_terminal:
        with _bar(label, total, completed) as advance:
            yield advance
    else:
        with _log_lines(label, total, completed, unit) as advance:
            yield advance


@contextmanager
def _bar(label: str, total: int, completed: int) -> Iterator[Callable[..., None]]:
    columns = (
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(label, total=total, completed=completed, rate="")

        def advance(n: int, doing: str | None = None) -> None:
            progress.advance(task, n)
            if doing:
                progress.update(task, description=f"{label}: {doing}")
            t = progress.tasks[0]
            if t.speed:
                progress.update(task, rate=f"{t.speed:,.0f}/s")

        yield advance


@contextmanager
def _log_lines(label: str, total: int, completed: int, unit: str) -> Iterator[Callable[..., None]]:
    """A line every ``interval_s()`` from a timer thread (a slow chunk still gets its lines), and one at the end.

    The rate and time left count only this run's work: items a resumed run skipped are not in the rate.
    """
    start, every = time.monotonic(), interval_s()
    state = {"done": completed, "doing": None}
    lock, stop = threading.Lock(), threading.Event()

    def line(final: bool) -> str:
        with lock:
            done, doing = state["done"], state["doing"]
        elapsed = time.monotonic() - start
        rate = (done - completed) / elapsed if elapsed > 0 else 0.0
        share = f" ({done / total:.0%})" if total else ""
        text = f"{label}: {done:,}/{total:,} {unit}{share}"
        if final:
            return f"{text}, done in {_duration(elapsed)}" + (f" ({rate:,.1f} {unit}/s)" if rate else "")
        text += f", {rate:,.1f} {unit}/s" if rate else ", starting"
        if rate and total > done:
            text += f", about {_duration((total - done) / rate)} left"
        return text + (f" · {doing}" if doing else "")

    def tick() -> None:
        while not stop.wait(every):
            _print(line(final=False))

    timer = threading.Thread(target=tick, name=f"progress {label}", daemon=True)
    timer.start()

    def advance(n: int, doing: str | None = None) -> None:
        with lock:
            state["done"] += n
            state["doing"] = doing

    ok = False
    try:
        yield advance
        ok = True
    finally:
        stop.set()
        timer.join()
        if ok:
            _print(line(final=True))


def _print(text: str) -> None:
    _last_line[0] = time.monotonic()
    console.print(text, markup=False)


@contextmanager
def heartbeat(label: str) -> Iterator[None]:
    """In a log (not a terminal), a line every ``interval_s()`` while a step runs that prints no progress of its
    own (no ``progress_bar`` line within the interval): a log never goes quiet for long."""
    if os.environ.get("ODIN_NO_PROGRESS") or console.is_terminal:
        yield
        return
    start, every, stop = time.monotonic(), interval_s(), threading.Event()

    def tick() -> None:
        while not stop.wait(every):
            if time.monotonic() - _last_line[0] >= every:
                _print(f"{label}: running for {_duration(time.monotonic() - start)}")

    timer = threading.Thread(target=tick, name=f"heartbeat {label}", daemon=True)
    timer.start()
    try:
        yield
    finally:
        stop.set()
        timer.join()
