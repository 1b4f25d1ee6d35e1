"""Both cores for the per-photo loops: a chunk of photos split over worker processes, results in input order.

Header reading is Python code (the GIL lets one thread run at a time), so the workers are processes. Where
processes cannot start (AWS Lambda has no /dev/shm for their locks) the work runs in this process.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from multiprocessing import get_context
from typing import Any

import pyarrow as pa

WORKERS_ENV = "ODIN_WORKERS"  # processes for the per-photo loops; default: the cores this process may use
MIN_ITEMS = 2000  # fewer items than this run in this process: starting workers costs more than it saves


def workers() -> int:
    try:
        wanted = int(os.environ.get(WORKERS_ENV) or 0)
    except ValueError:
        wanted = 0
    return wanted if wanted > 0 else len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)


@contextmanager
def chunk_mapper(fn: Callable[[list[Any]], list[Any]], items: int) -> Iterator[Callable[[list[Any]], list[Any]]]:
    """Yield ``run(chunk)``: ``fn`` over the chunk, split into one contiguous slice per worker, results joined in
    order. One process (no pool) when there is one worker or fewer than ``MIN_ITEMS`` items in all.

    Workers start from a clean process (``forkserver``), so ``fn`` and its chunks must pickle (a module-level
    function, or a ``partial`` of one). Not forks of this process: a fork keeps alive for good every object this
    process holds when the pool starts, even those it frees later. At 1M photos that was Stage 1's two workers
    holding 1.7 GB of the parent's pages each, 0.5-0.8 GB of them freed by the parent already, and the run's
    peak past 2 GB."""
    n = workers()
    pool = None
    if n > 1 and items >= MIN_ITEMS:
        try:
            pool = ProcessPoolExecutor(n, mp_context=get_context("forkserver"), initializer=_take_environment,
                                       initargs=(dict(os.environ),))
            pool.submit(os.getpid).result()  # the server and the workers start now: where they cannot, one process
        except (OSError, NotImplementedError, ValueError, BrokenProcessPool):
            if pool is not None:
                pool.shutdown(cancel_futures=True)
            pool = None
    if pool is None:
        yield fn
        return

    def run(chunk: list[Any]) -> list[Any]:
        size = -(-len(chunk) // n)
        out: list[Any] = []
        for part in pool.map(fn, [chunk[i:i + size] for i in range(0, len(chunk), size)]):
            out.extend(part)
        return out

    with pool:
        yield run


def _take_environment(environ: dict[str, str]) -> None:
    """A worker takes this process's environment as it is now: the fork server keeps the one it started with,
    which is the first run's in a process that runs several (a notebook that points AWS_ENDPOINT_URL elsewhere)."""
    os.environ.clear()
    os.environ.update(environ)


def own_rows(table: pa.Table) -> pa.Table:
    """The table's rows in buffers of their own: a slice of a larger table pickles (to a worker) all of it."""
    return pa.Table.from_arrays([pa.concat_arrays(column.chunks) if column.num_chunks else pa.array([], column.type)
                                 for column in table.columns], schema=table.schema)
