"""Checkpointed loops: the time limit stops at a checkpoint, and a resumed loop does each item once."""

from __future__ import annotations

import time

import pyarrow as pa
import pytest

from wildlife.checkpoint import DeadlineReached, run_chunks

SCHEMA = pa.schema([("photo_id", pa.string()), ("value", pa.int64())])


def test_deadline_stops_at_a_checkpoint_and_resume_finishes(tmp_path):
    items = [{"photo_id": f"p{i:03d}", "seq": i // 4} for i in range(40)]
    calls: list[str] = []

    def work(chunk):
        calls.extend(it["photo_id"] for it in chunk)
        if len(calls) >= 20:
            time.sleep(1.0)  # the time limit falls due while this chunk runs
        return [{"photo_id": it["photo_id"], "value": int(it["photo_id"][1:])} for it in chunk]

    kwargs = dict(key="photo_id", work=work, parts_uri=str(tmp_path / "parts"), schema=SCHEMA, every=10,
                  label="test")
    with pytest.raises(DeadlineReached):
        run_chunks(items, deadline=time.monotonic() + 0.5, **kwargs)  # margin for a busy machine
    assert 10 <= len(calls) < 40
    done_before = len(calls)
    table, resumed = run_chunks(items, **kwargs)
    assert resumed == done_before
    assert sorted(calls) == sorted(it["photo_id"] for it in items)  # nothing done twice
    assert sorted(table.column("photo_id").to_pylist()) == [it["photo_id"] for it in items]


def test_groups_are_never_split_across_chunks(tmp_path):
    items = [{"photo_id": f"p{i:03d}", "seq": i // 7} for i in range(30)]
    chunks = []

    def work(chunk):
        chunks.append({it["seq"] for it in chunk})
        return [{"photo_id": it["photo_id"], "value": 0} for it in chunk]

    run_chunks(items, key="photo_id", work=work, parts_uri=str(tmp_path / "p"), schema=SCHEMA, every=5,
               label="test", group=lambda it: it["seq"])
    seen: list[int] = [s for c in chunks for s in c]
    assert len(seen) == len(set(seen))  # each sequence lives in exactly one chunk
