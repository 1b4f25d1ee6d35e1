"""Events, independence, repeat-detection elimination, and `run.py events` on a plain table."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import photofactory as pf
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import odin

from wildlife import events, stage2, static
from wildlife.events import EventRules

T0 = datetime(2024, 6, 1, 4, 0, tzinfo=UTC)


EXAMPLE = Path(__file__).parent / "fixtures" / "camtrap-dp-example" / "media-events.csv"


def _photos(spec, usable=None):
    """spec: (deployment, seconds after T0, category or None, conf, count)."""
    table = pa.table({
        "photo_id": [f"p{i}" for i in range(len(spec))],
        "deployment_id": [s[0] for s in spec],
        "timestamp": pa.array([T0 + timedelta(seconds=s[1]) for s in spec], pa.timestamp("us", tz="UTC")),
        "top_category": pa.array([s[2] for s in spec], pa.string()),
        "max_conf": pa.array([s[3] for s in spec], pa.float64()),
        "n_detections": pa.array([s[4] for s in spec], pa.int32()),
    })
    return table if usable is None else table.append_column("usable_time", pa.array(usable, pa.bool_()))


def _members(ids) -> set[frozenset[int]]:
    """The partition of row numbers into events (event ids themselves are names, not facts)."""
    groups: dict[str, set[int]] = {}
    for i, e in enumerate(ids.to_pylist() if hasattr(ids, "to_pylist") else ids):
        if e:
            groups.setdefault(e, set()).add(i)
    return {frozenset(g) for g in groups.values()}


def test_bursts_stay_whole_and_hours_apart_never_share():
    burst = [("d", i, "animal", 0.9, 1) for i in range(10)]  # ten photos, one per second
    visit = [("d", 600 + 120 * i, "animal", 0.8, 1) for i in range(8)]  # a visit: a burst every 2 min
    later = [("d", 3 * 3600, "animal", 0.7, 1), ("d", 6 * 3600, "animal", 0.7, 1)]
    other = [("e", 5, "animal", 0.9, 1)]
    empty = [("d", 30, None, None, None), ("d", 9 * 3600, None, None, None)]
    for method in ("hdbscan", "gap"):
        ids, table = stage2.group_events(_photos(burst + visit + later + other + empty), EventRules(method=method))
        ids = ids.to_pylist()
        assert len(set(ids[:10])) == 1  # the burst is one event
        assert len(set(ids[10:18])) == 1  # a visit with 2 min between photos is one event
        assert len({ids[18], ids[19], ids[17]}) == 3  # hours apart: separate events
        assert ids[20] != ids[0]  # another deployment never shares
        assert ids[22] is None  # an empty photo alone: no event
        assert table.num_rows == len({i for i in ids if i})
        # an empty photo inside a positive sequence: part of its event by the gap rule (as Agouti does), not
        # clustered by HDBSCAN, which sees positive photos only
        assert ids[21] == (ids[0] if method == "gap" else None)


def test_default_events_reproduce_the_published_camtrap_dp_example():
    """The Camtrap DP example's eventIDs (Agouti's sequences) are exactly the default's events."""
    table = stage2.read_media_table(str(EXAMPLE))
    published = table.column("eventID").to_pylist()
    per_row, _ = stage2.events_from_table(table.drop_columns(["eventID"]), "mediaID", 0.2, EventRules())
    assert len(set(published)) == 34  # 31 with an event-level observation, 3 blank sequences without
    assert _members(per_row.column("eventID")) == _members(published)
    # HDBSCAN (the former default) joins visits 6 to 9 minutes apart that the published events keep apart
    hdb, _ = stage2.events_from_table(table.drop_columns(["eventID"]), "mediaID", 0.2, EventRules(method="hdbscan"))
    assert _members(hdb.column("eventID")) != _members(published)


def test_photos_added_far_away_do_not_change_existing_events():
    base = [("d", 0, "animal", 0.9, 1), ("d", 1, "animal", 0.9, 1), ("d", 600, "animal", 0.9, 1),
            ("d", 601, None, None, None), ("d", 1500, "animal", 0.9, 1)]
    far = [("d", 900 + 600 * i, "animal", 0.9, 1) for i in range(1, 6) if 900 + 600 * i != 1500]  # > 120 s away
    far += [("e", s, "animal", 0.9, 1) for s in (0, 300, 600)]  # another deployment
    before, _ = stage2.group_events(_photos(base), EventRules())
    after, _ = stage2.group_events(_photos(base + far), EventRules())
    n = len(base)
    assert _members(after.to_pylist()[:n]) == _members(before) == {frozenset({0, 1}), frozenset({2, 3}),
                                                                       frozenset({4})}


def test_hdbscan_reports_what_it_merged_relative_to_the_gap():
    spec = [("d", 240 * i + j, "animal", 0.9, 1) for i in range(6) for j in range(3)]  # a burst every 4 min
    comparison = stage2.compare_to_gap(_photos(spec), EventRules(method="hdbscan"))
    assert comparison["reference_events"] == 6
    assert comparison["merged"] == comparison["events"] >= 1 and comparison["split"] == 0
    assert stage2.compare_to_gap(_photos(spec), EventRules())["merged"] == 0


def test_photos_with_untrusted_clocks_take_part_in_no_event():
    spec = [("d", 0, "animal", 0.9, 1), ("d", 100, "animal", 0.9, 1), ("d", 200, "animal", 0.9, 1)]
    ids, table = stage2.group_events(_photos(spec, usable=[True, False, True]), EventRules())
    ids = ids.to_pylist()
    assert ids[1] is None  # a time read from the file (the copy date) says nothing about the visit
    assert ids[0] != ids[2] and table.num_rows == 2  # and does not chain photos 200 s apart


def test_fallback_without_hdbscan(monkeypatch):
    monkeypatch.setattr(events, "_hdbscan", lambda: None)
    rules = EventRules(method="hdbscan")
    assert "hdbscan missing" in rules.describe()
    ids, _ = stage2.group_events(_photos([("d", 0, "animal", 0.9, 1), ("d", 100, "animal", 0.9, 1),
                                          ("d", 7200, "animal", 0.9, 1)]), rules)
    assert ids.to_pylist()[0] == ids.to_pylist()[1] != ids.to_pylist()[2]


def test_event_confidence_is_the_most_confident_and_count_the_largest_per_category():
    """Without a classifier a visit's records are per category: an animal and a person in one sequence are two
    events, each with its own confidence and count, both spanning the sequence."""
    spec = [("d", 0, "animal", 0.6, 1), ("d", 2, "animal", 0.9, 2), ("d", 4, "person", 0.5, 3)]
    ids, table = stage2.group_events(_photos(spec), EventRules())
    rows = {r["top_category"]: r for r in table.to_pylist()}
    assert (rows["animal"]["max_conf"], rows["animal"]["count"], rows["animal"]["photo_count"]) == (0.9, 2, 3)
    assert (rows["person"]["max_conf"], rows["person"]["count"], rows["person"]["photo_count"]) == (0.5, 3, 3)
    assert rows["animal"]["taxon"] == "animal" and rows["animal"]["scientific_name"] is None
    assert ids.to_pylist() == [rows["animal"]["cluster_id"]] * 2 + [rows["person"]["cluster_id"]]


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


@pytest.mark.parametrize("flags", [("", ""), ("", "camera_reset")])
def test_events_command_reads_clock_flags_written_as_text(tmp_path, flags):
    """Regression: a CSV's clock_flags column (text, or empty in every row) crashed `odin events` with Arrow's
    'no kernel matching input types' once the flags were read as lists only; a camera_reset photo takes part in
    no event, as in a run."""
    table = tmp_path / "media.csv"
    with table.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["mediaID", "deploymentID", "timestamp", "category", "conf", "clock_flags"])
        w.writerow(["m1", "d1", "2024-06-01T06:00:00+02:00", "animal", "0.9", flags[0]])
        w.writerow(["m2", "d1", "2024-06-01T09:00:00+02:00", "animal", "0.9", flags[1]])
    result = odin("events", "--table", str(table), "--output", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    with (tmp_path / "out" / "media_events.csv").open() as f:
        ev = {r["mediaID"]: r["eventID"] for r in csv.DictReader(f)}
    assert ev["m1"] and bool(ev["m2"]) == (flags[1] == "")


def test_events_command_explains_a_bad_table(tmp_path):
    table = tmp_path / "media.csv"
    table.write_text("id,when\n1,2024-01-01\n")
    result = odin("events", "--table", str(table), "--output", str(tmp_path / "o"))
    assert result.returncode == 2
    assert "lacks column(s)" in result.stderr


def test_events_command_reads_a_runs_own_images_table(sample_run, tmp_path):
    result = odin("events", "--table", str(sample_run / "images.parquet"), "--output", str(tmp_path / "o"))
    assert result.returncode == 0, result.stderr
    with (tmp_path / "o" / "media_events.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 10 and len({r["eventID"] for r in rows}) == 1  # the heron's burst, re-cut


def test_a_run_with_hdbscan_reports_the_events_it_merged(tmp_path):
    bg = pf.scene(160, 120)
    t0 = datetime(2024, 5, 1, 22, 0)
    for b in range(3):  # three bursts of a moving animal, 4 minutes apart
        for i in range(3):
            pf.write_photo(tmp_path / "in" / "siteA" / f"b{b}-{i}.jpg", pf.with_animal(bg, (0.2 * i, 0.3, 0.2, 0.3)),
                           when=t0 + timedelta(minutes=4 * b, seconds=i), gps=(62.1, 9.5))
    runs = {}
    for method in ("gap", "hdbscan"):
        out = tmp_path / method
        result = odin("run", "--input", str(tmp_path / "in"), "--output", str(out), "--budget", "1",
                      "--detector", "motion", "--weather-provider", "none", "--events", method)
        assert result.returncode == 0, result.stderr
        runs[method] = json.loads((out / "run_report.json").read_text())["stages"]["Stage2Events"]
    assert runs["gap"]["events"] == 3 and "compared_to_gap" not in runs["gap"]
    assert runs["hdbscan"]["events"] == 1
    assert runs["hdbscan"]["compared_to_gap"] == {"reference_events": 3, "events": 1, "merged": 1, "split": 0}
