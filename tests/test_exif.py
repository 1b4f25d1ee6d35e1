from __future__ import annotations

import io
import math
import struct
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import photofactory as pf
import pyarrow.parquet as pq
import pytest
from conftest import SAMPLE, odin

from wildlife import exif, stage0


def header(data: bytes, **kwargs) -> dict:
    return exif.read_header(io.BytesIO(data), len(data), **kwargs)


def test_reconyx_sample_photo_fields_match_exiftool():
    path = SAMPLE / "photos" / "62c200a9" / "20210531082538-RCNX0031.JPG"
    h = header(path.read_bytes())
    # the values exiftool 12.57 prints for this file
    assert (h["make"], h["model"]) == ("RECONYX", "HYPERFIRE 2 COVERT")
    assert h["datetime_original"] == "2021:04:11 20:43:09"
    assert (h["width"], h["height"]) == (2048, 1440)
    assert (h["maker_sequence_index"], h["maker_sequence_length"]) == (1, 10)
    assert h["maker_event_number"] == 4
    assert h["ambient_temperature_c"] == 2.0
    assert h["moon_phase"] == "New"
    assert h["serial_number"] == "H2RXEM06043616"
    assert h["user_label"] == "MICA 318"
    # the maker note's own clock agrees with EXIF once read as month, day (exiftool swaps them)
    assert h["maker_datetime"] == h["datetime_original"]


def test_all_sample_photos_are_one_burst_in_order():
    paths = sorted((SAMPLE / "photos").rglob("*.JPG"))
    seq = [header(p.read_bytes())["maker_sequence_index"] for p in paths]
    assert seq == list(range(1, 11))


def test_generated_photo_round_trip_with_gps_offset_and_maker_note():
    when = datetime(2024, 5, 6, 7, 8, 9)
    data = pf.encode_jpeg(pf.scene(320, 240), pf.exif_block(
        when=when, offset="-03:30", gps=(-33.5, 151.25), maker_note=pf.reconyx_note(when, (3, 5), 70000)))
    h = header(data)
    assert h["datetime_original"] == "2024:05:06 07:08:09"
    assert h["offset_time_original"] == "-03:30"
    assert h["gps_latitude"] == pytest.approx(-33.5, abs=1e-4)
    assert h["gps_longitude"] == pytest.approx(151.25, abs=1e-4)
    assert (h["maker_sequence_index"], h["maker_sequence_length"], h["maker_event_number"]) == (3, 5, 70000)
    assert (h["width"], h["height"]) == (320, 240)


def test_photo_without_exif_still_has_its_size():
    h = header(pf.encode_jpeg(pf.scene(200, 100)))
    assert (h["width"], h["height"]) == (200, 100)
    assert "datetime_original" not in h


@pytest.mark.parametrize(("data", "reason"), [
    (b"", "empty file"),
    (b"hello, I am a text file pretending to be a photo\n" * 3, "holds text"),
    (b"\x00\x01\x02\x03" * 10, "unknown file signature"),
])
def test_non_photos_are_refused_with_a_reason(data, reason):
    with pytest.raises(exif.BadPhoto, match=reason):
        header(data)


def test_truncated_jpeg_is_refused():
    data = pf.encode_jpeg(pf.scene(), pf.exif_block(when=datetime(2024, 1, 1)))
    with pytest.raises(exif.BadPhoto, match="truncated JPEG"):
        header(data[: len(data) // 2])
    with pytest.raises(exif.BadPhoto, match="truncated JPEG"):
        header(data[:200])  # cut inside the header


def test_decompression_bomb_header_is_refused_without_decoding():
    data = bytearray(pf.encode_jpeg(np.zeros((8, 8, 3), np.uint8)))
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, 60000, 60000)
    with pytest.raises(exif.BadPhoto, match="decompression bomb"):
        header(bytes(data))


def test_png_size_is_read():
    _ok, buf = cv2.imencode(".png", np.zeros((30, 40, 3), np.uint8))
    h = header(buf.tobytes())
    assert (h["format"], h["width"], h["height"]) == ("png", 40, 30)


def test_corrupt_exif_keeps_the_photo_and_says_why():
    block = bytearray(pf.exif_block(when=datetime(2024, 1, 1)))
    struct.pack_into("<I", block, 6 + 4, 0xFFFFFF00)  # IFD0 offset far outside the block
    h = header(pf.encode_jpeg(pf.scene(64, 48), bytes(block)))
    assert "corrupt EXIF" in h["exif_error"]
    assert (h["width"], h["height"]) == (64, 48)  # the pixels are still usable


# --- one boundary per file: nothing in a photo's bytes stops Stage 0 ------------------------------------

WHEN = datetime(2021, 4, 11, 20, 43, 9)
NOW = datetime(2026, 11, 24, tzinfo=UTC)


def stage0_rows(tmp_path: Path, files: dict[str, bytes], table: dict | None = None) -> dict[str, dict]:
    """Stage 0 (listing, headers, deployments, clock) on files written under tmp_path: relpath -> media row."""
    root = tmp_path / "photos"
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    manifest = [r for r in stage0.scan(str(root), None).to_pylist() if r["status"] == "pending"]
    rows = stage0.finish(stage0.read_headers(manifest, table or {}, 250.0), table or {}, now_utc=NOW).to_pylist()
    assert sorted(r["relpath"] for r in rows) == sorted(files)
    return {r["relpath"]: r for r in rows}


def jpeg(**exif_kwargs) -> bytes:
    return pf.encode_jpeg(pf.scene(64, 48), pf.exif_block(**exif_kwargs))


def gps_ifd(lat: list, lon: list, kind=pf.raw_rationals) -> list:
    return [pf.ascii_entry(1, "N"), kind(2, lat), pf.ascii_entry(3, "E"), kind(4, lon)]


PNG = cv2.imencode(".png", np.zeros((30, 40, 3), np.uint8))[1].tobytes()
CRASHERS = {  # relpath -> (bytes, status, what the row says); each one stopped Stage 0 before
    "cam/gps_pointer_count0.jpg": (jpeg(when=WHEN, ifd0_extra=[(0x8825, 4, 0, b"")]), "ok",
                                   "GPS IFD pointer has no value"),
    "cam/exif_pointer_count0.jpg": (jpeg(ifd0_extra=[(0x8769, 4, 0, b"")]), "ok", "Exif IFD pointer has no value"),
    "cam/pixel_x_count0.jpg": (jpeg(when=WHEN, exif_extra=[(0xA002, 4, 0, b""), (0xA003, 4, 1, b"\x30\0\0\0")]),
                               "ok", None),
    "cam/gps_nan.jpg": (jpeg(when=WHEN, gps_entries=gps_ifd([math.nan, 0, 0], [12.5, 0, 0], pf.doubles)), "ok",
                        "GPS dropped: (nan, 12.5) is not a number"),
    "cam/gps_inf.jpg": (jpeg(when=WHEN, gps_entries=gps_ifd([55.0, 0, 0], [math.inf, 0, 0], pf.doubles)), "ok",
                        "GPS dropped: (55.0, inf) is not a number"),
    "cam/gps_lat150.jpg": (jpeg(when=WHEN, gps=(150.0, 10.0)), "ok", "GPS dropped: latitude 150 out of range"),
    "cam/gps_lon200.jpg": (jpeg(when=WHEN, gps=(10.0, 200.0)), "ok", "GPS dropped: longitude 200 out of range"),
    "cam/subsec_superscript.jpg": (jpeg(when=WHEN, exif_extra=[pf.ascii_entry(0x9291, "²")]), "ok",
                                   "SubSecTimeOriginal '²' dropped"),
    "cam/year9999.jpg": (jpeg(when=datetime(9999, 12, 31, 23, 0), offset="-05:00"), "ok",
                         "DateTimeOriginal '9999:12:31 23:00:00' dropped"),
    "cam/tiff_width_count0.tif": (pf.tiff_header(640, 480, ifd0_extra=[(0x0100, 4, 0, b"")]), "failed",
                                  "corrupt TIFF header: no usable pixel size"),
    "cam/tiff_width_nan.tif": (pf.tiff_header(640, 480, ifd0_extra=[pf.doubles(0x0100, [math.nan])]), "failed",
                               "corrupt TIFF header: no usable pixel size"),
    **{f"cam/png_cut_at_{n}.png": (PNG[:n], "failed", f"truncated PNG: {n} bytes") for n in (16, 20, 23)},
}


@pytest.mark.parametrize("rel", sorted(CRASHERS))
def test_a_file_that_stopped_stage0_is_one_row_with_the_reason(tmp_path, rel):
    data, status, says = CRASHERS[rel]
    row = stage0_rows(tmp_path, {rel: data})[rel]
    assert row["status"] == status
    if status == "failed":
        assert says in row["reason"]
    else:  # damage in the EXIF block costs that part of it, not the photo
        assert row["reason"] is None and (row["width"], row["height"]) == (64, 48)
        assert (says is None and row["exif_error"] is None) or says in row["exif_error"]
        assert row["gps_latitude"] is None and row["gps_longitude"] is None


@pytest.mark.parametrize(("lat", "lon", "why"), [
    ([(0, 0)] * 3, [(0, 0)] * 3, "is not a number (a zero denominator?)"),
    ([(55, 1), (40, 0), (0, 1)], [(12, 1), (30, 1), (0, 1)], "is not a number"),
    ([(0, 1)] * 3, [(0, 1)] * 3, "exactly (0, 0)"),
])
def test_impossible_gps_is_dropped_and_does_not_drive_the_time_zone(tmp_path, lat, lon, why):
    rows = stage0_rows(tmp_path, {"cam/a.jpg": jpeg(when=WHEN, gps_entries=gps_ifd(lat, lon))})
    row = rows["cam/a.jpg"]
    assert row["status"] == "ok"
    assert (row["gps_latitude"], row["gps_longitude"]) == (None, None)
    assert row["exif_error"].startswith("GPS dropped: ") and why in row["exif_error"]
    # 0/0 used to read as (0, 0): a time zone for the Gulf of Guinea instead of "unknown"
    assert row["timestamp_source"] == "exif+utc_assumed"


def test_real_gps_still_sets_the_time_zone(tmp_path):
    row = stage0_rows(tmp_path, {"cam/a.jpg": jpeg(when=WHEN, gps=(55.68, 12.57))})["cam/a.jpg"]
    assert row["gps_latitude"] == pytest.approx(55.68, abs=1e-4) and row["exif_error"] is None
    # the zone of the photo's GPS at the deployment's first photo (summer time in April): +02:00
    assert (row["timestamp_local"].isoformat(), row["utc_offset_min"]) == ("2021-04-11T20:43:09", 120)


def test_a_bug_in_odin_stops_the_run_and_names_the_file(tmp_path, monkeypatch):
    # an exception outside the byte readers is a bug in Odin, not something a photo did: it must not become
    # a failed row (that would hide the bug) but stop the run and name the file
    def broken(row):
        raise KeyError("bug")

    monkeypatch.setattr(stage0.clock, "camera_time", broken)
    with pytest.raises(RuntimeError, match=r"Stage 0 stopped at cam/a\.jpg: KeyError"):
        stage0_rows(tmp_path, {"cam/a.jpg": jpeg(when=WHEN)})


class CountingFile(io.BytesIO):
    """A file that counts what is read from it."""

    def __init__(self, data: bytes):
        super().__init__(data)
        self.reads = self.bytes_read = 0

    def read(self, n: int | None = -1) -> bytes:
        data = super().read(n)
        self.reads += 1
        self.bytes_read += len(data)
        return data


def test_a_header_of_32_mb_of_empty_comments_is_refused_after_a_bounded_read():
    photo = pf.encode_jpeg(pf.scene(64, 48))
    data = photo[:2] + b"\xff\xfe\x00\x02" * (8 << 20) + photo[2:]  # 8 Mi empty COM segments (32 MiB)
    f = CountingFile(data)
    with pytest.raises(exif.BadPhoto, match=f"more than {exif.MAX_SEGMENTS} segments"):
        exif.read_header(f, len(data))
    # the walk stops after MAX_SEGMENTS steps of O(1): a few reads, never the 32 MiB
    assert f.reads <= 2 and f.bytes_read <= exif.HEAD_BYTES


def test_many_large_segments_under_the_cap_cost_one_read_each():
    photo = pf.encode_jpeg(pf.scene(64, 48), pf.exif_block(when=WHEN))
    comment = b"\xff\xfe" + struct.pack(">H", 60002) + b"x" * 60000
    data = photo[:2] + comment * 1000 + photo[2:]  # 60 MB of comments, then EXIF and the frame header
    f = CountingFile(data)
    h = exif.read_header(f, len(data))
    assert h["datetime_original"] == "2021:04:11 20:43:09" and (h["width"], h["height"]) == (64, 48)
    assert f.reads <= 1000 + 10 and f.bytes_read <= 1000 * 4096 + exif.HEAD_BYTES + 64 * 1024


def test_the_cli_run_survives_every_crasher_and_lists_each_file_once(tmp_path):
    photos = tmp_path / "photos"
    files = {"cam/good.jpg": jpeg(when=WHEN), **{rel: data for rel, (data, _, _) in CRASHERS.items()}}
    for rel, data in files.items():
        (photos / rel).parent.mkdir(parents=True, exist_ok=True)
        (photos / rel).write_bytes(data)
    result = odin("run", "--input", str(photos), "--output", str(tmp_path / "out"), "--budget", "25",
                  "--detector", "motion")
    assert result.returncode == 0, result.stderr
    images = {r["relpath"]: r for r in pq.read_table(tmp_path / "out" / "images.parquet").to_pylist()}
    assert sorted(images) == sorted(files)  # each file exactly once
    assert images["cam/good.jpg"]["status"] == "ok"
    for n in (16, 20, 23):
        png = images[f"cam/png_cut_at_{n}.png"]
        assert png["status"] == "failed" and png["reason"] == f"truncated PNG: {n} bytes, its header alone needs 24"
    assert "GPS dropped: latitude 150 out of range" in images["cam/gps_lat150.jpg"]["exif_error"]


# --- dates that exist are found: XMP, maker notes, Canon CIFF ---------------------------------------------

PIXELS = pf.encode_jpeg(pf.scene(64, 48))


def with_xmp(props: dict[str, str], **kwargs) -> bytes:
    return pf.insert_segments(PIXELS, [(0xE1, pf.xmp_packet(props, **kwargs))])


@pytest.mark.parametrize(("data", "stamp", "subsec", "offset"), [
    # the XMP date form (ISO 8601): fraction and offset become SubSecTime and OffsetTime, as exiftool shows them
    (with_xmp({"exif:DateTimeOriginal": "2021-04-11T20:43:09.25+02:00"}), "2021:04:11 20:43:09", "25", "+02:00"),
    (with_xmp({"exif:DateTimeOriginal": "2021-04-11T20:43:09Z"}, elements=True), "2021:04:11 20:43:09", None,
     "+00:00"),
    (with_xmp({"photoshop:DateCreated": "2021-04-11T20:43"}), "2021:04:11 20:43:00", None, None),
    (with_xmp({"xmp:CreateDate": "2021-04-11T20:43:09"}), "2021:04:11 20:43:09", None, None),
    # the prefix is whatever the packet binds to the namespace
    (with_xmp({"ex:DateTimeOriginal": "2021-04-11T20:43:09"}, namespaces={"ex": "http://ns.adobe.com/exif/1.0/"}),
     "2021:04:11 20:43:09", None, None),
    # exif:DateTimeOriginal before photoshop:DateCreated before xmp:CreateDate; a date alone has no hour
    (with_xmp({"xmp:CreateDate": "2021-04-11T21:00:00", "exif:DateTimeOriginal": "2021-04-11T20:43:09"}),
     "2021:04:11 20:43:09", None, None),
    (with_xmp({"photoshop:DateCreated": "2021-04-11", "xmp:CreateDate": "2021-04-11T20:43:09"}),
     "2021:04:11 20:43:09", None, None),
])
def test_xmp_capture_time_is_found_when_exif_has_none(data, stamp, subsec, offset):
    h = header(data)
    assert (h["datetime_original"], h["datetime_original_source"]) == (stamp, "xmp")
    assert (h.get("subsec_time_original"), h.get("offset_time_original")) == (subsec, offset)


def test_exif_time_wins_over_xmp():
    data = pf.insert_segments(jpeg(when=WHEN), [(0xE1, pf.xmp_packet({"exif:DateTimeOriginal": "1999-01-01T00:00"}))])
    h = header(data)
    assert (h["datetime_original"], h["datetime_original_source"]) == ("2021:04:11 20:43:09", "exif")


def test_reconyx_maker_note_time_fills_datetime_original_and_names_its_source(tmp_path):
    note = pf.reconyx_note(WHEN, (2, 3), 41)
    row = stage0_rows(tmp_path, {"cam/a.jpg": jpeg(maker_note=note)})["cam/a.jpg"]
    assert row["datetime_original"] == row["maker_datetime"] == "2021:04:11 20:43:09"
    assert row["timestamp_source"] == "makernote+utc_assumed"
    assert row["timestamp"] == datetime(2021, 4, 11, 20, 43, 9, tzinfo=UTC)


def test_xmp_time_reaches_the_timestamp_with_its_offset(tmp_path):
    data = with_xmp({"exif:DateTimeOriginal": "2021-04-11T20:43:09.25+02:00"})
    row = stage0_rows(tmp_path, {"cam/a.jpg": data})["cam/a.jpg"]
    assert row["timestamp"] == datetime(2021, 4, 11, 18, 43, 9, 250000, tzinfo=UTC)
    assert row["timestamp_source"].startswith("xmp+") and "no_exif_time" not in row["clock_flags"]


def olympus_jpeg(layout: str, settings_as: str, **exif_kwargs) -> bytes:
    utc = datetime(2021, 4, 11, 18, 43, 9)
    if layout == "OLYMP":  # offsets count from the TIFF header: place the note, then point at where it lies
        at = pf.exif_block(maker_note=pf.olympus_note(utc, layout, settings_as), **exif_kwargs).index(b"OLYMP\0") - 6
        note = pf.olympus_note(utc, layout, settings_as, at=at)
    else:
        note = pf.olympus_note(utc, layout, settings_as)
    return jpeg(maker_note=note, **exif_kwargs)


@pytest.mark.parametrize("layout", ["OLYMPUS", "OM SYSTEM", "OLYMP"])
@pytest.mark.parametrize("settings_as", ["ifd", "undef"])
def test_olympus_utc_clock_is_the_capture_time_in_utc(layout, settings_as):
    h = header(olympus_jpeg(layout, settings_as))
    assert (h["datetime_original"], h["offset_time_original"]) == ("2021:04:11 18:43:09", "+00:00")
    assert h["datetime_original_source"] == "makernote"


def test_olympus_utc_clock_is_shown_in_the_exif_offset_when_there_is_one(tmp_path):
    row = stage0_rows(tmp_path, {"cam/a.jpg": olympus_jpeg("OLYMPUS", "ifd", offset="+02:00")})["cam/a.jpg"]
    assert (row["datetime_original"], row["offset_time_original"]) == ("2021:04:11 20:43:09", "+02:00")
    assert row["timestamp"] == datetime(2021, 4, 11, 18, 43, 9, tzinfo=UTC)


def test_canon_ciff_time_make_and_model_are_found(tmp_path):
    data = pf.insert_segments(PIXELS, [(0xE0, pf.ciff_app0(WHEN))])
    row = stage0_rows(tmp_path, {"cam/a.jpg": data})["cam/a.jpg"]
    assert (row["make"], row["model"]) == ("Canon", "Canon PowerShot Pro70")
    assert row["datetime_original"] == "2021:04:11 20:43:09"
    assert row["timestamp_source"] == "ciff+utc_assumed"
