from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa

from wildlife import sequences


def _media(rows):
    return pa.Table.from_pylist(rows, schema=pa.schema([
        ("relpath", pa.string()), ("status", pa.string()), ("deployment_id", pa.string()),
        ("timestamp", pa.timestamp("us", tz="UTC"))]))


def test_gap_rule_per_deployment():
    t = datetime(2024, 1, 1, tzinfo=UTC)
    rows = [
        {"relpath": "a/1", "status": "ok", "deployment_id": "a", "timestamp": t},
        {"relpath": "a/2", "status": "ok", "deployment_id": "a", "timestamp": t + timedelta(seconds=30)},
        {"relpath": "a/3", "status": "ok", "deployment_id": "a", "timestamp": t + timedelta(seconds=89)},
        {"relpath": "a/4", "status": "ok", "deployment_id": "a", "timestamp": t + timedelta(seconds=150)},
        {"relpath": "b/1", "status": "ok", "deployment_id": "b", "timestamp": t + timedelta(seconds=10)},
        {"relpath": "a/x", "status": "failed", "deployment_id": "a", "timestamp": None},
        {"relpath": "c/1", "status": "ok", "deployment_id": None, "timestamp": t},
    ]
    ids = sequences.assign(_media(rows), gap_s=60).to_pylist()
    assert ids == ["a:00001", "a:00001", "a:00001", "a:00002", "b:00001", None, "folder:c:00001"]


def test_order_in_the_table_does_not_matter():
    t = datetime(2024, 1, 1, tzinfo=UTC)
    rows = [{"relpath": f"a/{i}", "status": "ok", "deployment_id": "a", "timestamp": t + timedelta(minutes=m)}
            for i, m in enumerate([10, 0, 11, 1])]
    assert sequences.assign(_media(rows), gap_s=90).to_pylist() == ["a:00002", "a:00001", "a:00002", "a:00001"]
