"""Deployments and the clock fix: the rules that decide a photo's place and UTC time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import photofactory as pf
import pytest

from wildlife import deployments, stage0
from wildlife.deployments import Deployment, DeploymentError

NOW = datetime(2026, 11, 22, tzinfo=UTC)


def _table(tmp_path: Path, rows: list[str]) -> dict[str, Deployment]:
    path = tmp_path / "deployments.csv"
    path.write_text("deploymentID,latitude,longitude,deploymentStart,deploymentEnd,cameraID,timezone,clockOffset\n"
                    + "\n".join(rows) + "\n")
    return deployments.load(str(path))


def _media(tmp_path: Path, photos: dict[str, dict], table: dict[str, Deployment]) -> dict[str, dict]:
    """Write photos (relpath -> exif kwargs), run Stage 0 on them, return relpath -> media row."""
    root = tmp_path / "photos"
    for rel, kwargs in photos.items():
        pf.write_photo(root / rel, pf.scene(64, 48), **kwargs)
    manifest = [r for r in stage0.scan(str(root), None).to_pylist() if r["status"] == "pending"]
    rows = stage0.finish(stage0.read_headers(manifest, table, 250.0, now_utc=NOW)).to_pylist()
    return {r["relpath"]: r for r in rows}


def test_timezone_from_coordinates_handles_daylight_saving(tmp_path):
    table = _table(tmp_path, ["copenhagen,55.68,12.57,2024-01-01T00:00:00Z,2024-12-31T00:00:00Z,,,"])
    media = _media(tmp_path, {
        "copenhagen/winter.jpg": {"when": datetime(2024, 1, 15, 12, 0)},
        "copenhagen/summer.jpg": {"when": datetime(2024, 7, 15, 12, 0)},
    }, table)
    assert media["copenhagen/winter.jpg"]["timestamp_local"] == "2024-01-15T12:00:00+01:00"
    assert media["copenhagen/summer.jpg"]["timestamp_local"] == "2024-07-15T12:00:00+02:00"
    assert media["copenhagen/summer.jpg"]["timestamp"] == datetime(2024, 7, 15, 10, 0, tzinfo=UTC)
    assert "deployment_timezone" in media["copenhagen/summer.jpg"]["timestamp_source"]


def test_exif_offset_wins_over_the_deployment_timezone(tmp_path):
    table = _table(tmp_path, ["d1,55.68,12.57,,,,,"])
    media = _media(tmp_path, {"d1/a.jpg": {"when": datetime(2024, 7, 15, 12, 0), "offset": "-05:00"}}, table)
    assert media["d1/a.jpg"]["timestamp"] == datetime(2024, 7, 15, 17, 0, tzinfo=UTC)
    assert "exif_offset" in media["d1/a.jpg"]["timestamp_source"]


def test_clock_offset_corrects_a_fast_camera(tmp_path):
    table = _table(tmp_path, ["fast,,,,,,+00:00,3600"])  # camera one hour ahead
    media = _media(tmp_path, {"fast/a.jpg": {"when": datetime(2024, 3, 1, 13, 0)}}, table)
    assert media["fast/a.jpg"]["timestamp"] == datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
    assert media["fast/a.jpg"]["timestamp_source"].endswith("+clock_offset")


def test_clock_problems_are_flags_not_failures(tmp_path):
    table = _table(tmp_path, ["d1,,,2024-05-01T00:00:00+00:00,2024-05-31T00:00:00+00:00,,UTC,"])
    t = datetime(2024, 5, 10, 8, 0, 0)
    note = lambda i, when: pf.reconyx_note(when, (i, 3), 42)  # noqa: E731
    media = _media(tmp_path, {
        "d1/inside.jpg": {"when": t},
        "d1/outside.jpg": {"when": datetime(2024, 8, 1)},
        "d1/reset.jpg": {"when": datetime(2000, 1, 1)},
        "d1/future.jpg": {"when": datetime(2031, 1, 1)},
        "d1/no_exif.jpg": {},
        # a burst whose third photo's clock jumped back
        "d1/burst_1.jpg": {"when": t, "maker_note": note(1, t)},
        "d1/burst_2.jpg": {"when": t + timedelta(seconds=1), "maker_note": note(2, t + timedelta(seconds=1))},
        "d1/burst_3.jpg": {"when": t - timedelta(minutes=5), "maker_note": note(3, t - timedelta(minutes=5))},
        "elsewhere/x.jpg": {"when": datetime(2023, 1, 1)},
    }, table)
    flags = {rel: row["clock_flags"] for rel, row in media.items()}
    assert all(row["status"] == "ok" for row in media.values())
    assert flags["d1/inside.jpg"] == []
    assert flags["d1/outside.jpg"] == ["outside_deployment"]
    assert "camera_reset" in flags["d1/reset.jpg"]
    assert "future_date" in flags["d1/future.jpg"]
    assert "no_exif_time" in flags["d1/no_exif.jpg"]
    assert media["d1/no_exif.jpg"]["timestamp_source"] == "file_mtime"
    assert "time_backwards" in flags["d1/burst_3.jpg"]
    assert "time_backwards" not in flags["d1/burst_2.jpg"]
    assert flags["elsewhere/x.jpg"] == ["timezone_unknown", "no_deployment"]


def test_photos_find_their_deployment_by_camera_and_time(tmp_path):
    table = _table(tmp_path, [
        "north,,,2024-01-01T00:00:00Z,2024-06-30T00:00:00Z,CAM-7,UTC,",
        "south,,,2024-01-01T00:00:00Z,2024-06-30T00:00:00Z,CAM-9,UTC,",
        "later,,,2024-07-01T00:00:00Z,2024-12-31T00:00:00Z,,UTC,",
    ])
    when = datetime(2024, 3, 1, 12)
    media = _media(tmp_path, {
        "card1/a.jpg": {"when": when, "maker_note": pf.reconyx_note(when, (1, 1), 1, serial="CAM-9")},
        "card2/b.jpg": {"when": datetime(2024, 9, 1)},
        "south/c.jpg": {"when": datetime(2024, 9, 1)},  # a folder name beats the time window
    }, table)
    assert (media["card1/a.jpg"]["deployment_id"], media["card1/a.jpg"]["deployment_assigned_by"]) == (
        "south", "camera and time window")
    assert (media["card2/b.jpg"]["deployment_id"], media["card2/b.jpg"]["deployment_assigned_by"]) == (
        "later", "time window")
    assert media["south/c.jpg"]["deployment_id"] == "south"


@pytest.mark.parametrize(("row", "message"), [
    ("d1,north,,,,,,", "latitude='north' is not a number"),
    ("d1,,,2024-01-01T00:00:00,,,,", "needs a UTC offset"),
    ("d1,,,,,,Mars/Olympus,", "unknown timezone"),
    (",,,,,,,", "empty deploymentID"),
])
def test_bad_deployment_tables_name_the_line(tmp_path, row, message):
    with pytest.raises(DeploymentError, match=message) as err:
        _table(tmp_path, [row])
    assert "line 2" in str(err.value)


def test_fixed_offset_timezones():
    assert deployments.parse_tz("+05:30").utcoffset(None) == timedelta(hours=5, minutes=30)
    assert deployments.parse_tz("UTC-3").utcoffset(None) == timedelta(hours=-3)
    assert deployments.parse_tz("UTC") is UTC
