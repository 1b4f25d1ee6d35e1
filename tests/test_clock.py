"""Deployments and the clock fix: the rules that decide a photo's place and UTC time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import photofactory as pf
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wildlife import clock, deployments, stage0
from wildlife.deployments import Deployment, DeploymentError

NOW = datetime(2026, 11, 22, tzinfo=UTC)
SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"


def _table(tmp_path: Path, rows: list[str]) -> dict[str, Deployment]:
    path = tmp_path / "deployments.csv"
    path.write_text("deploymentID,latitude,longitude,deploymentStart,deploymentEnd,cameraID,timezone,clockOffset,"
                    "clockFollowsDST\n"
                    + "\n".join(rows) + "\n")
    return deployments.load(str(path))


def _media(tmp_path: Path, photos: dict[str, dict], table: dict[str, Deployment]) -> dict[str, dict]:
    """Write photos (relpath -> exif kwargs), run Stage 0 on them, return relpath -> media row."""
    root = tmp_path / "photos"
    for rel, kwargs in photos.items():
        pf.write_photo(root / rel, pf.scene(64, 48), **kwargs)
    manifest = [r for r in stage0.scan(str(root), None).to_pylist() if r["status"] == "pending"]
    rows = stage0.finish(stage0.read_headers(manifest, table, 250.0), table, now_utc=NOW).to_pylist()
    return {r["relpath"]: r for r in rows}


def test_a_camera_set_in_march_keeps_its_offset_in_april(tmp_path):
    """The clock rule: a camera set on CET (+01:00) still reads CET after the switch to summer time."""
    table = _table(tmp_path, ["brussels,50.85,4.35,2021-03-20T10:00:00+01:00,2021-05-01T00:00:00+02:00,,,,"])
    media = _media(tmp_path, {"brussels/april.jpg": {"when": datetime(2021, 4, 15, 12, 0)}}, table)
    photo = media["brussels/april.jpg"]
    assert photo["timestamp"] == datetime(2021, 4, 15, 11, 0, tzinfo=UTC)
    assert photo["timestamp_local"] == datetime(2021, 4, 15, 12, 0)
    assert photo["utc_offset_min"] == 60
    assert photo["timestamp_source"] == "exif+deployment_start_offset"
    assert photo["clock_flags"] == [] and photo["timestamp_trusted"]


def test_a_clock_that_follows_daylight_saving_gets_summer_time(tmp_path):
    table = _table(tmp_path, ["brussels,50.85,4.35,2021-03-20T10:00:00+01:00,2021-05-01T00:00:00+02:00,,,,true"])
    media = _media(tmp_path, {"brussels/april.jpg": {"when": datetime(2021, 4, 15, 12, 0)}}, table)
    photo = media["brussels/april.jpg"]
    assert photo["timestamp"] == datetime(2021, 4, 15, 10, 0, tzinfo=UTC)
    assert (photo["timestamp_local"], photo["utc_offset_min"]) == (datetime(2021, 4, 15, 12, 0), 120)
    assert photo["timestamp_source"] == "exif+follows_dst"


def test_without_a_stated_offset_the_zone_at_the_first_photo_is_assumed(tmp_path):
    """'Z' states the instant, not the camera's offset: the zone's offset at the deployment's first photo is
    used for all of its photos, and flagged, even when Stage 0 reads the first photo in a later chunk."""
    table = _table(tmp_path, ["copenhagen,55.68,12.57,2024-01-01T00:00:00Z,2024-12-31T00:00:00Z,,,,"])
    root = tmp_path / "photos"
    pf.write_photo(root / "copenhagen/a_summer.jpg", pf.scene(64, 48), when=datetime(2024, 7, 15, 12, 0))
    pf.write_photo(root / "copenhagen/b_winter.jpg", pf.scene(64, 48), when=datetime(2024, 1, 15, 12, 0))
    manifest = [r for r in stage0.scan(str(root), None).to_pylist() if r["status"] == "pending"]
    chunks = [stage0.read_headers([row], table, 250.0) for row in manifest]  # one chunk per photo
    media = {r["relpath"]: r for r in stage0.finish(chunks[0] + chunks[1], table, now_utc=NOW).to_pylist()}
    summer, winter = media["copenhagen/a_summer.jpg"], media["copenhagen/b_winter.jpg"]
    assert (winter["utc_offset_min"], summer["utc_offset_min"]) == (60, 60)
    assert summer["timestamp"] == datetime(2024, 7, 15, 11, 0, tzinfo=UTC)
    assert summer["timestamp_local"] == datetime(2024, 7, 15, 12, 0)
    assert summer["clock_flags"] == winter["clock_flags"] == ["offset_assumed"]
    assert summer["timestamp_source"] == "exif+zone_at_first_photo"
    assert summer["timestamp_trusted"]  # an assumed offset is a caveat, not an unusable time


def test_the_bundled_sample_gets_the_offset_its_camera_was_set_with():
    """data/sample: deployment 62c200a9 starts 2021-03-27T21:38:18+01:00, the day before summer time; its
    April photos are on that clock (+01:00), not Belgium's summer time."""
    table = deployments.load(str(SAMPLE / "deployments.csv"))
    assert table["62c200a9"].start_offset_min == 60
    manifest = stage0.scan(str(SAMPLE / "photos"), None).to_pylist()
    media = stage0.finish(stage0.read_headers(manifest, table, 250.0), table, now_utc=NOW).to_pylist()
    first = min(media, key=lambda r: r["relpath"])
    assert first["datetime_original"] == "2021:04:11 20:43:09"
    assert first["timestamp_local"] == datetime(2021, 4, 11, 20, 43, 9)
    assert first["utc_offset_min"] == 60
    assert first["timestamp"] == datetime(2021, 4, 11, 19, 43, 9, tzinfo=UTC)
    assert all(r["clock_flags"] == [] and r["utc_offset_min"] == 60 for r in media)


def test_dates_out_of_range_are_a_flag_not_a_crash(tmp_path):
    row = {"datetime_original": "0001:01:01 00:00:00", "offset_time_original": "+01:00", "mtime": None}
    placed = clock.to_utc(row, None, NOW)
    assert placed.utc is None and placed.local is None
    assert "time_out_of_range" in placed.flags and "camera_reset" in placed.flags
    assert not clock.trusted(placed.flags)
    table = _table(tmp_path, ["d1,,,,,,UTC,,"])
    media = _media(tmp_path, {"d1/late.jpg": {"when": datetime(9999, 12, 31, 23, 30), "offset": "-05:00"}}, table)
    photo = media["d1/late.jpg"]
    # the header reader already refuses year 9999 (exif_error says why), so the photo falls back to its
    # file time: still a photo, and its time is not trusted
    assert photo["status"] == "ok" and "9999" in (photo["exif_error"] or "")
    assert "no_exif_time" in photo["clock_flags"] and photo["timestamp_trusted"] is False


def test_file_times_are_timestamps_and_untrusted_times_are_marked(tmp_path):
    table = _table(tmp_path, ["d1,,,,,,UTC,,"])
    media = _media(tmp_path, {"d1/exif.jpg": {"when": datetime(2024, 5, 1, 8)}, "d1/no_exif.jpg": {}}, table)
    no_exif = media["d1/no_exif.jpg"]
    assert isinstance(no_exif["mtime"], datetime) and no_exif["mtime"].utcoffset() == timedelta(0)
    assert no_exif["timestamp"] == no_exif["mtime"]  # the copy date, used but marked
    assert no_exif["timestamp_trusted"] is False and media["d1/exif.jpg"]["timestamp_trusted"] is True


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


@given(when=st.datetimes(), minutes=st.integers(-14 * 60, 14 * 60), ahead_s=st.integers(-10**6, 10**6))
@settings(max_examples=300, deadline=None)
def test_any_reading_gets_a_time_or_a_flag_and_local_is_utc_plus_offset(when, minutes, ahead_s):
    sign = "-" if minutes < 0 else "+"
    offset = f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    row = {"datetime_original": when.strftime("%Y:%m:%d %H:%M:%S").zfill(19), "offset_time_original": offset}
    placed = clock.to_utc(row, Deployment(id="d", clock_offset_s=ahead_s), NOW)
    if placed.utc is None:
        assert "time_out_of_range" in placed.flags and not clock.trusted(placed.flags)
    else:
        assert placed.offset_min == minutes
        assert placed.local == placed.utc.replace(tzinfo=None) + timedelta(minutes=minutes)


def test_trusted_rows_is_trusted_of_each_row():
    import pyarrow as pa  # noqa: PLC0415

    flags = [None, [], ["assumed_utc"], [sorted(clock.UNTRUSTED_FLAGS)[0]], [None, "x"],
             ["x", sorted(clock.UNTRUSTED_FLAGS)[-1]]]
    column = pa.chunked_array([flags[:2], flags[2:]], pa.list_(pa.string()))
    assert clock.trusted_rows(column).tolist() == [clock.trusted(f) for f in flags]
    assert not all(clock.trusted(f) for f in flags)  # the case is there
