"""A large table as Python rows a slice at a time: the writers of megadetector.json and the Camtrap DP CSVs
turn ``ROWS`` rows into dicts at once, never a whole run's (a million photos as dicts are gigabytes)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

ROWS = 5_000  # rows per slice (a few tens of MB as dicts); read at call time, so a test can make slices tiny


def slices(table: pa.Table) -> Iterator[pa.Table]:
    """``table`` in slices of ``ROWS`` rows, in order (none for an empty table)."""
    size = max(ROWS, 1)
    for start in range(0, table.num_rows, size):
        yield table.slice(start, size)


def with_matches(table: pa.Table, others: pa.Table, key: str) -> Iterator[tuple[pa.Table, pa.Table]]:
    """``table`` in slices (as ``slices``), each with the rows of ``others`` whose ``key`` is one of the slice's,
    in ``others``' order; rows of ``others`` whose key is not in ``table`` are in no slice. ``table``'s keys are
    unique (a photo id)."""
    row = pc.index_in(others.column(key), value_set=table.column(key)).fill_null(-1)
    order = pc.sort_indices(row)  # stable: a photo's rows keep their order
    others, row = others.take(order), row.take(order).to_numpy()
    size = max(ROWS, 1)
    for start in range(0, table.num_rows, size):
        lo, hi = np.searchsorted(row, [start, start + size])
        yield table.slice(start, size), others.slice(int(lo), int(hi - lo))


def with_rows(others: pa.Table, table: pa.Table, key: str) -> Iterator[tuple[list[dict], dict]]:
    """``others`` in slices as dicts, each with the rows of ``table`` (unique ``key``) that the slice's keys name,
    as dicts by key."""
    at = pc.index_in(others.column(key), value_set=table.column(key))  # once: not per slice
    size = max(ROWS, 1)
    for start in range(0, others.num_rows, size):
        wanted = pc.unique(pc.drop_null(at.slice(start, size)))
        yield others.slice(start, size).to_pylist(), {r[key]: r for r in table.take(wanted).to_pylist()}


def lookup(table: pa.Table, key: str, values: pa.Array | pa.ChunkedArray) -> dict:
    """The rows of ``table`` (unique ``key``) whose key is among ``values``, as dicts by key."""
    wanted = pc.unique(pc.drop_null(pc.index_in(values, value_set=table.column(key))))
    return {r[key]: r for r in table.take(wanted).to_pylist()}


def counts(values: pa.Array | pa.ChunkedArray) -> dict[Any, int]:
    """How often each non-null value occurs, in order of first occurrence (as ``Counter``), without a Python
    object per row."""
    return {r["values"]: r["counts"] for r in pc.value_counts(values).to_pylist() if r["values"] is not None}
