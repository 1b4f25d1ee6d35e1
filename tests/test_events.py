"""Events, independence, repeat-detection elimination, and `run.py events` on a plain table."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import odin

from wildlife import events, stage2, static
from wildlife.events import EventRules

T0 = datetime(2024, 6, 1, 4, 0, tzinfo=UTC)


def _photos(spec):
    """spec: (deployment, seconds after T0, category or None, conf, count)."""
    return pa.table({
        "photo_id": [f"p{i}" for i in range(len(spec))],
        "deployment_id": [s[0] for s in spec],
        "timestamp": pa.array([T0 + timedelta(seconds=s[1]) for s in spec], pa.timestamp("us", tz="UTC")),
        "top_category": pa.array([s[2] for s in spec], pa.string()),
        "max_conf": pa.array([s[3] for s in spec], pa.float64()),
        "n_detections": pa.array([s[4] for s in spec], pa.int32()),
    })


@pytest.mark.parametrize("method", ["hdbscan", "gap"])
def test_bursts_stay_whole_and_hours_apart_never_share(method):
    burst = [("d", i, "animal", 0.9, 1) for i in range(10)]  # ten photos, one per second
    visit = [("d", 600 + 120 * i, "animal", 0.8, 1) for i in range(8)]  # a visit: a burst every 2 min
    later = [("d", 3 * 3600, "animal", 0.7, 1), ("d", 6 * 3600, "animal", 0.7, 1)]
    other = [("e", 5, "animal", 0.9, 1)]
    empty = [("d", 30, None, None, None)]
    ids, table = stage2.group_events(_photos(burst + visit + later + other + empty), EventRules(method=method))
    ids = ids.to_pylist()
    assert len(set(ids[:10])) == 1  # the burst is one event
    assert len(set(ids[10:18])) == 1  # a busy visit is one event
    assert len({ids[18], ids[19], ids[17]}) == 3  # hours apart: separate events
    assert ids[20] != ids[0]  # another deployment never shares
    assert ids[21] is None  # not positive: no event
    assert table.num_rows == len({i for i in ids if i})


def test_fallback_without_hdbscan(monkeypatch):
    monkeypatch.setattr(events, "_hdbscan", lambda: None)
    rules = EventRules()
    assert "hdbscan missing" in rules.describe()
    ids, _ = stage2.group_events(_photos([("d", 0, "animal", 0.9, 1), ("d", 100, "animal", 0.9, 1),
                                          ("d", 7200, "animal", 0.9, 1)]), rules)
    assert ids.to_pylist()[0] == ids.to_pylist()[1] != ids.to_pylist()[2]


def test_event_category_is_the_most_confident_and_count_the_largest():
    spec = [("d", 0, "animal", 0.6, 1), ("d", 2, "animal", 0.9, 2), ("d", 4, "person", 0.5, 3)]
    _, table = stage2.group_events(_photos(spec), EventRules())
    (row,) = table.to_pylist()
    assert (row["top_category"], row["max_conf"], row["count"], row["photo_count"]) == ("animal", 0.9, 2, 3)


def test_independence_per_deployment_and_category():
    rules = EventRules(independence_s=3600, max_gap_s=600)
    spec = [("d", 0, "animal", 0.9, 1), ("d", 2400, "animal", 0.9, 1), ("d", 4000, "animal", 0.9, 1),
            ("d", 6000, "person", 0.9, 1), ("e", 100, "animal", 0.9, 1)]
    _, table = stage2.group_events(_photos(spec), rules)
    rows = sorted(table.to_pylist(), key=lambda r: (r["deployment_id"], r["start_time"]))
    assert [(r["deployment_id"], r["top_category"], r["independent"]) for r in rows] == [
        ("d", "animal", True), ("d", "animal", False), ("d", "animal", True), ("d", "person", True),
        ("e", "animal", True)]


def test_static_boxes_are_flagged_and_moving_ones_are_not():
    rng = np.random.default_rng(1)
    rows = []
    for i in range(12):  # a branch at the same place in 12 photos over 5.5 hours
        jitter = rng.uniform(-0.002, 0.002, 4)
        rows.append(("d", "animal", f"s{i}", i * 1800.0, np.array([0.5, 0.5, 0.2, 0.3]) + jitter))
    for i in range(12):  # an animal walking through
        rows.append(("d", "animal", f"m{i}", i * 1800.0, np.array([0.05 * i, 0.2, 0.1, 0.1])))
    for i in range(12):  # a deer standing still for 20 minutes is not a rock
        rows.append(("d", "animal", f"r{i}", 100000 + i * 100.0, np.array([0.1, 0.7, 0.1, 0.1])))
    flags = static.flag([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
                        np.array([r[3] for r in rows]), np.stack([r[4] for r in rows]))
    assert flags[:12].all() and not flags[12:].any()


def test_events_command_keeps_identifiers(tmp_path):
    table = tmp_path / "media.csv"
    with table.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["mediaID", "deploymentID", "timestamp", "category", "conf"])
        w.writerow(["m1", "d1", "2024-06-01T06:00:00+02:00", "animal", "0.9"])
        w.writerow(["m1", "d1", "2024-06-01T06:00:00+02:00", "animal", "0.8"])  # second detection, same photo
        w.writerow(["m2", "d1", "2024-06-01T06:00:05+02:00", "animal", "0.7"])
        w.writerow(["m3", "d1", "2024-06-01T09:00:00+02:00", "animal", "0.1"])  # below threshold
        w.writerow(["m4", "d1", "2024-06-01T11:00:00+02:00", "", ""])  # empty photo
        w.writerow(["m5", "d1", "2024-06-01T12:00:00Z", "person", "0.95"])
    out = tmp_path / "out"
    result = odin("events", "--table", str(table), "--output", str(out))
    assert result.returncode == 0, result.stderr
    with (out / "media_events.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["mediaID"] for r in rows] == ["m1", "m1", "m2", "m3", "m4", "m5"]
    ev = {r["mediaID"]: r["eventID"] for r in rows}
    assert ev["m1"] == ev["m2"] and ev["m1"] and ev["m5"] and ev["m5"] != ev["m1"]
    assert ev["m3"] == "" and ev["m4"] == ""
    clusters = {r["cluster_id"]: r for r in pq.read_table(out / "clusters.parquet").to_pylist()}
    assert clusters[ev["m1"]]["count"] == 2 and clusters[ev["m1"]]["photo_count"] == 2
    assert clusters[ev["m5"]]["top_category"] == "person"


def test_events_command_explains_a_bad_table(tmp_path):
    table = tmp_path / "media.csv"
    table.write_text("id,when\n1,2024-01-01\n")
    result = odin("events", "--table", str(table), "--output", str(tmp_path / "o"))
    assert result.returncode == 2
    assert "lacks column(s)" in result.stderr


def test_events_command_reads_a_runs_own_images_table(sample_run, tmp_path):
    result = odin("events", "--table", str(sample_run / "images.parquet"), "--output", str(tmp_path / "o"),
                  "--method", "gap")
    assert result.returncode == 0, result.stderr
    with (tmp_path / "o" / "media_events.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 10 and len({r["eventID"] for r in rows}) == 1  # the heron's burst, re-cut
