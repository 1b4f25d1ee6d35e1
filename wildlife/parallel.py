"""Both cores for the per-photo loops: a chunk of photos split over worker processes, results in input order.

Header reading is Python code (the GIL lets one thread run at a time), so the workers are processes. Where
processes cannot start (AWS Lambda has no /dev/shm for their locks) the work runs in this process.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
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
def chunk_mapper(fn: Callable[[list[Any]], list[Any]], items: int, *, fresh: bool = False,
                 ) -> Iterator[Callable[[list[Any]], list[Any]]]:
    """Yield ``run(chunk)``: ``fn`` over the chunk, split into one contiguous slice per worker, results joined in
    order. One process (no pool) when there is one worker or fewer than ``MIN_ITEMS`` items in all.

    Workers are forks of this process, so ``fn`` may be a closure; a fork keeps every object this process holds
    at that moment alive in the worker for good, even those this process frees later. ``fresh``: workers start
    from a clean process instead (``forkserver``; ``fn`` and what it is given must pickle), for a stage that
    starts its workers while holding a million photos' rows (Stage 1 at 1M photos: 0.5-0.8 GB held twice)."""
    n = workers()
    pool = None
    if n > 1 and items >= MIN_ITEMS:
        try:
            pool = ProcessPoolExecutor(n, mp_context=get_context("forkserver" if fresh else "fork"))
        except (OSError, NotImplementedError, ValueError):
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

    gc.freeze()  # this process's objects as they are: a worker's garbage collector then never writes to them,
    try:  # so their pages stay shared with this process instead of being copied into every worker
        with pool:
            yield run
    finally:
        gc.unfreeze()


def own_rows(table: pa.Table) -> pa.Table:
    """The table's rows in buffers of their own: a slice of a larger table pickles (to a worker) all of it."""
    return pa.Table.from_arrays([pa.concat_arrays(column.chunks) if column.num_chunks else pa.array([], column.type)
                                 for column in table.columns], schema=table.schema)
