"""Resumable loops over photos: results are written as numbered Parquet parts every N items.

A part is written whole or not at all (``fs.write_bytes`` renames a finished temporary file), so a run
killed at any moment loses at most the chunk it was working on, and a resumed run skips every item already
in a part. Each part holds exactly one row per input item, keyed by ``key``; reading them back keeps one
row per key, so no item can appear twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from wildlife import fs
from wildlife.errors import OdinError
from wildlife.progress import progress_bar

DEFAULT_EVERY = 500  # photos per checkpoint in the looping stages (--checkpoint-every)

class DeadlineReached(OdinError):
    """``--max-job-duration`` ran out; everything finished so far is checkpointed."""

    hint = "Finished work is checkpointed: re-run with --resume (and a larger --max-job-duration) to continue."


def read_parts(parts_uri: str, schema: pa.Schema) -> pa.Table:
    names = [n for n in fs.list_names(parts_uri) if n.startswith("part-") and n.endswith(".parquet")]
    tables = [fs.read_table(fs.join(parts_uri, n)).select(schema.names).cast(schema) for n in names]
    if not tables:
        return schema.empty_table()
    return pa.concat_tables(tables)


def run_chunks(
    items: Sequence[dict[str, Any]] | pa.Table,
    *,
    key: str,
    work: Callable[[list[dict[str, Any]]], list[dict[str, Any]]],
    parts_uri: str,
    schema: pa.Schema,
    every: int,
    label: str,
    deadline: float | None = None,
    group: Callable[[dict[str, Any]], Any] | None = None,
    prefix: str = "part-",
) -> tuple[pa.Table, int]:
    """Run ``work`` over the items not yet in a part; return (the results of all the items, how many were resumed).

    ``items`` may be a table (no ``group`` then): its rows become dicts one chunk at a time.

    ``group`` keeps items with the same group value in one chunk (for the motion baseline, a block of a
    sequence: a chunk may end inside a sequence, between blocks). ``prefix``
    names this writer's parts (``part-s00003-`` for a shard), so writers in parallel never collide; every
    ``part-*`` is read back, whoever wrote it.
    """
    done_table = read_parts(parts_uri, schema)
    if isinstance(items, pa.Table):  # rows become dicts a chunk at a time: a million items stay in Arrow
        todo_rows = items.filter(pc.invert(pc.is_in(items.column(key), value_set=done_table.column(key))))
        todo: Sequence[dict[str, Any]] | pa.Table = todo_rows
        chunks = (todo_rows.slice(i, every).to_pylist() for i in range(0, todo_rows.num_rows, every))
        total = items.num_rows
    else:
        done = set(done_table.column(key).to_pylist())
        todo = [it for it in items if it[key] not in done]
        chunks = _chunks(todo, every, group)
        total = len(items)
    resumed = total - len(todo)
    done_count = resumed
    next_part = sum(1 for n in fs.list_names(parts_uri) if n.startswith(prefix))
    # each part is written by a thread while the next chunk runs (at most one part in flight): the workers of a
    # ``parallel.chunk_mapper`` do not wait for this process to write; every part under way is finished before
    # this returns or raises, so a chunk that ran is never lost
    with progress_bar(label, total=total, completed=resumed) as advance, \
            ThreadPoolExecutor(1, thread_name_prefix="checkpoint") as writer:
        writing = None
        for chunk in chunks:
            if deadline is not None and time.monotonic() > deadline:
                raise DeadlineReached(f"{label}: stopped at the time limit after {done_count} of {total}")
            rows = work(chunk)
            if writing is not None:
                writing.result()  # the part before: its error stops the loop here
            writing = writer.submit(_write_part, rows, schema, fs.join(parts_uri, f"{prefix}{next_part:06d}.parquet"))
            next_part += 1
            done_count += len(chunk)
            advance(len(chunk))
        if writing is not None:
            writing.result()
    return _only(_unique(read_parts(parts_uri, schema), key), key, items), resumed


def _write_part(rows: list[dict[str, Any]], schema: pa.Schema, uri: str) -> None:
    fs.write_table(pa.Table.from_pylist(rows, schema=schema), uri)


def _only(table: pa.Table, key: str, items: Sequence[dict[str, Any]] | pa.Table) -> pa.Table:
    """The rows of these items: a part may hold items a resumed run no longer has (a file that vanished)."""
    if isinstance(items, pa.Table):
        wanted = items.column(key).cast(table.schema.field(key).type)
    else:
        wanted = pa.array([it[key] for it in items], type=table.schema.field(key).type)
    keep = pc.is_in(table.column(key), value_set=wanted)
    return table if pc.sum(keep).as_py() == table.num_rows else table.filter(keep)  # no copy when all are


def _chunks(todo: list[dict[str, Any]], every: int, group: Callable | None):
    chunk: list[dict[str, Any]] = []
    for i, item in enumerate(todo):
        chunk.append(item)
        if len(chunk) >= every:
            if group is not None and i + 1 < len(todo) and group(todo[i + 1]) == group(item):
                continue  # finish the burst first
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _unique(table: pa.Table, key: str) -> pa.Table:
    if table.num_rows == 0:
        return table
    keys = table.column(key)
    if pc.count_distinct(keys).as_py() == table.num_rows:
        return table
    # keep the last row written for each key (a part rewritten after a crash supersedes the earlier one)
    last = {k: i for i, k in enumerate(keys.to_pylist())}
    return table.take(sorted(last.values()))
