from __future__ import annotations

import io
import struct
from datetime import datetime

import cv2
import numpy as np
import photofactory as pf
import pytest
from conftest import SAMPLE

from wildlife import exif


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
