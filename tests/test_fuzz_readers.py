"""Property-based fuzzing of the header readers with thousands of mutated real headers.

Seeds are the headers of the real Reconyx photos in data/sample and photofactory files with every structure
the readers know (EXIF with GPS and maker notes, XMP, Canon CIFF, Olympus notes, TIFF, PNG). Hypothesis
overwrites bytes and words with values that break parsers (0, 0xFFFF, 0x7FFFFFFF, lengths, offsets), cuts,
deletes and duplicates; runs are derandomized, so every CI run tries the same inputs.

The properties: a reader returns fields the media table can hold (the schema, GPS on Earth, real dates) or
refuses the file with a reason of its own — never an exception the boundary had to catch; damage inside an
EXIF/XMP/CIFF payload never costs the photo; a small file is read in a handful of reads.
"""

from __future__ import annotations

import contextlib
import io
import math
import struct
import tempfile
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
import photofactory as pf
import pyarrow as pa
from conftest import SAMPLE
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from wildlife import ciff, clock, exif, ifd, olympus, reconyx, stage0, video, xmp
from wildlife.headerio import BadPhoto, Block


def fuzz(examples: int) -> settings:
    """Reproducible in CI: the same inputs every run (derandomized, no example database), no time limits."""
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


HEADER_SCHEMA = pa.schema(stage0.HEADER_FIELDS)
SOURCES = {"exif", "xmp", "makernote", "ciff"}
WHEN = datetime(2022, 6, 1, 5, 30, 12)


def _segments(data: bytes) -> list[tuple[int, int, int]]:
    """(marker, payload start, payload end) of a JPEG's segments up to the start of scan (seeds only)."""
    out, pos = [], 2
    while data[pos + 1] != 0xDA:
        (length,) = struct.unpack_from(">H", data, pos + 2)
        out.append((data[pos + 1], pos + 4, pos + 2 + length))
        pos += 2 + length
    return out


def _jpeg_seed(data: bytes) -> tuple[bytes, list[tuple[int, int]]]:
    """A JPEG's header (up to its image data) and end-of-image marker; regions: all, and each APP payload."""
    segments = _segments(data)
    header = data[:segments[-1][2] + 64] + b"\xff\xd9"
    apps = [(start, end) for marker, start, end in segments if 0xE0 <= marker <= 0xEF]
    return header, [(0, len(header)), *apps]


def _seeds() -> dict[str, tuple[bytes, list[tuple[int, int]], bool]]:
    """name -> (bytes, regions to mutate, whether in-place damage to its APP payloads must keep the photo)."""
    seeds = {}
    for path in sorted((SAMPLE / "photos").rglob("*.JPG"))[:3]:
        seeds[f"sample:{path.name}"] = (*_jpeg_seed(path.read_bytes()), True)
    pixels = pf.encode_jpeg(pf.scene(32, 24))
    note = pf.reconyx_note(WHEN, (2, 5), 77)
    made = {
        "reconyx+gps": pf.encode_jpeg(pf.scene(32, 24), pf.exif_block(
            when=WHEN, offset="+02:00", gps=(55.68, 12.57), maker_note=note, size=(32, 24))),
        "reconyx-only": pf.encode_jpeg(pf.scene(32, 24), pf.exif_block(maker_note=note)),
        "xmp-attributes": pf.insert_segments(pixels, [(0xE1, pf.xmp_packet(
            {"exif:DateTimeOriginal": "2022-06-01T05:30:12.5+02:00", "xmp:CreateDate": "2022-06-01T05:30:12"}))]),
        "xmp-elements": pf.insert_segments(pixels, [(0xE1, pf.xmp_packet(
            {"photoshop:DateCreated": "2022-06-01T05:30:12Z"}, elements=True))]),
        "ciff": pf.insert_segments(pixels, [(0xE0, pf.ciff_app0(WHEN))]),
        "olympus-ifd": pf.encode_jpeg(pf.scene(32, 24), pf.exif_block(maker_note=pf.olympus_note(WHEN))),
        "olympus-undef": pf.encode_jpeg(pf.scene(32, 24), pf.exif_block(
            maker_note=pf.olympus_note(WHEN, "OM SYSTEM", "undef"))),
    }
    for name, data in made.items():
        seeds[name] = (*_jpeg_seed(data), True)
    tiff = pf.tiff_header(640, 480, when=WHEN, gps=(-33.9, 151.2), maker_note=note)
    seeds["tiff"] = (tiff, [(0, len(tiff))], False)
    png = cv2.imencode(".png", np.zeros((24, 32, 3), np.uint8))[1].tobytes()
    seeds["png"] = (png, [(0, 64)], False)
    return seeds


SEEDS = _seeds()
BYTES = st.sampled_from([0, 1, 0x7F, 0x80, 0xFE, 0xFF]) | st.integers(0, 255)
WORDS = st.sampled_from([0, 1, 2, 8, 12, 0x7FFF, 0x8000, 0xFFFF, 0xF101]) | st.integers(0, 0xFFFF)
DWORDS = st.sampled_from([0, 1, 8, 12, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0x7FC00000]) | st.integers(0, 2**32 - 1)


@st.composite
def mutations(draw, in_place_only: bool = False) -> tuple[str, bytes, bytes, bool]:
    """(seed name, seed bytes, mutated bytes, whether only one APP payload was changed, in place)."""
    name = draw(st.sampled_from(sorted(SEEDS)))
    seed, regions, keeps_photo = SEEDS[name]
    region = draw(st.sampled_from(regions[1:] if in_place_only and len(regions) > 1 else regions))
    buf = bytearray(seed)
    ops = ["byte", "word", "dword"] if in_place_only else ["byte", "word", "dword", "cut", "delete", "repeat"]
    for _ in range(draw(st.integers(1, 6))):
        lo, hi = region[0], min(region[1], len(buf))
        if hi <= lo:
            break
        op, pos = draw(st.sampled_from(ops)), draw(st.integers(lo, hi - 1))
        if op == "byte":
            buf[pos] = draw(BYTES)
        elif op in ("word", "dword"):
            fmt = draw(st.sampled_from(["<", ">"])) + ("H" if op == "word" else "I")
            value = struct.pack(fmt, draw(WORDS if op == "word" else DWORDS))[:hi - pos]
            buf[pos:pos + len(value)] = value  # in place: the length stays
        elif op == "cut":
            del buf[pos:]
        elif op == "delete":
            del buf[pos:pos + draw(st.integers(1, 16))]
        else:
            n = draw(st.integers(1, 64))
            buf[pos:pos] = buf[pos:pos + n] * draw(st.integers(1, 4))
    changed_app_only = in_place_only and keeps_photo and region != regions[0]
    return name, seed, bytes(buf), changed_app_only


class CountingFile(io.BytesIO):
    def __init__(self, data: bytes):
        super().__init__(data)
        self.reads = 0

    def read(self, n: int | None = -1) -> bytes:
        self.reads += 1
        return super().read(n)


def read(data: bytes) -> tuple[dict | None, str | None, int]:
    """(fields, None) or (None, reason) for a file's bytes, and how many reads it took."""
    f = CountingFile(data)
    try:
        return exif.read_header(f, len(data)), None, f.reads
    except BadPhoto as exc:
        return None, str(exc), f.reads


def assert_fields_are_honest(out: dict) -> None:
    """What the media table may hold: its schema, a place on Earth, real dates and offsets, a sane size."""
    pa.Table.from_pylist([out], schema=HEADER_SCHEMA)
    assert 0 < out["width"] * out["height"] <= exif.DEFAULT_MAX_MEGAPIXELS * 1e6
    lat, lon = out.get("gps_latitude"), out.get("gps_longitude")
    assert (lat is None) == (lon is None)
    if lat is not None:
        assert math.isfinite(lat) and math.isfinite(lon) and abs(lat) <= 90 and abs(lon) <= 180
        assert (lat, lon) != (0, 0)
    if out.get("gps_altitude") is not None:
        assert math.isfinite(out["gps_altitude"])
    for key in ("datetime_original", "maker_datetime"):
        if out.get(key):
            when = clock.parse_exif_time(out[key], out.get("subsec_time_original"))
            assert when is not None and exif.YEARS[0] <= when.year <= exif.YEARS[1], out[key]
    if out.get("datetime_original"):
        assert out["datetime_original_source"] in SOURCES
    if out.get("offset_time_original"):
        assert exif._OFFSET.fullmatch(out["offset_time_original"])
    for key, value in out.items():
        if isinstance(value, float):
            assert math.isfinite(value), key
    # every problem was recognised by a check of ours, not caught by the boundary as a stray exception
    assert "unreadable" not in (out.get("exif_error") or "")


@fuzz(2000)
@given(mutations())
def test_mutated_headers_give_honest_fields_or_a_reason(case):
    name, _seed, data, _ = case
    out, reason, reads = read(data)
    event(f"{name.split(':')[0]}: {(reason or (out or {}).get('exif_error') or 'ok').split(':')[0]}")
    if out is None:
        assert reason and not reason.startswith("unreadable")
    else:
        assert_fields_are_honest(out)
    assert reads <= 4  # a small file: its head, the end-of-image check, nothing more


@fuzz(1500)
@given(mutations(in_place_only=True))
def test_damage_inside_an_app_payload_never_costs_the_photo(case):
    name, seed, data, app_only = case
    out, reason, _ = read(data)
    event(f"{name.split(':')[0]}: {(reason or (out or {}).get('exif_error') or 'ok')[:40]}")
    if app_only:
        before, _, _ = read(seed)
        assert reason is None, f"{name}: {reason}"
        assert (out["width"], out["height"]) == (before["width"], before["height"])
    if out is not None:
        assert_fields_are_honest(out)


def _note_seeds() -> list[tuple[str, bytes]]:
    notes = [("hyperfire2", pf.reconyx_note(WHEN, (3, 10), 70000))]
    for path in sorted((SAMPLE / "photos").rglob("*.JPG"))[:2]:
        data = path.read_bytes()
        tiff = Block(data[12:])  # after the APP1 marker, its length and "Exif\0\0"
        e = ifd.byte_order(tiff.read(0, 2))
        ifd0 = struct.unpack(e + "I", tiff.read(4, 4))[0]
        exif_ifd = ifd.read_ifd(tiff, e, ifd0, {0x8769})[0x8769][0]
        notes.append((path.name, ifd.read_ifd(tiff, e, exif_ifd, {0x927C})[0x927C]))
    ultrafire = bytearray(notes[0][1])
    ultrafire[:10] = b"RECONYXUF\x00"
    hyperfire = bytearray(notes[0][1])
    hyperfire[:2] = struct.pack("<H", 0xF101)
    return [*notes, ("ultrafire", bytes(ultrafire)), ("hyperfire", bytes(hyperfire))]


NOTES = _note_seeds()


@fuzz(800)
@given(st.sampled_from(NOTES), st.lists(st.tuples(st.integers(0, 0x130), BYTES), max_size=8),
       st.integers(0, 0x140))
def test_reconyx_notes_give_schema_fields_or_a_reason(seed, edits, cut):
    _name, note = seed
    buf = bytearray(note)
    for pos, value in edits:
        if pos < len(buf):
            buf[pos] = value
    buf = bytes(buf[:cut]) if cut < len(buf) and edits else bytes(buf)
    if not reconyx.is_reconyx(buf, "<"):
        return
    try:
        fields = reconyx.parse(buf, "<")
    except BadPhoto as exc:
        assert "corrupt maker note" in str(exc)
        return
    pa.Table.from_pylist([fields], schema=HEADER_SCHEMA)


SUB_READERS = {  # name -> (seed payload, the reader on mutated bytes)
    "xmp": (pf.xmp_packet({"exif:DateTimeOriginal": "2022-06-01T05:30:12.5+02:00"})[len(xmp.SIGNATURE):],
            xmp.capture_time),
    "ciff": (pf.ciff_app0(WHEN), ciff.parse),
    "olympus": (pf.olympus_note(WHEN), lambda note: olympus.parse(note, "<", Block(note), 0)),
    "olympus-undef": (pf.olympus_note(WHEN, settings_as="undef"),
                      lambda note: olympus.parse(note, "<", Block(note), 0)),
}


@fuzz(1000)
@given(st.sampled_from(sorted(SUB_READERS)), st.data())
def test_xmp_ciff_and_olympus_readers_raise_only_their_own_reasons(name, data):
    seed, reader = SUB_READERS[name]
    buf = bytearray(seed)
    for _ in range(data.draw(st.integers(1, 6))):
        pos = data.draw(st.integers(0, len(buf) - 1))
        value = struct.pack("<I", data.draw(DWORDS)) if data.draw(st.booleans()) else bytes([data.draw(BYTES)])
        buf[pos:pos + len(value)] = value[:len(buf) - pos]
    if data.draw(st.booleans()):
        del buf[data.draw(st.integers(0, len(buf) - 1)):]
    with contextlib.suppress(BadPhoto):  # a reason of its own; anything else fails the test
        reader(bytes(buf))


@fuzz(120)
@given(st.lists(mutations(), min_size=1, max_size=4))
def test_stage0_keeps_every_mutated_file_as_one_row(cases):
    """The whole of Stage 0 per file (header, deployment, GPS time zone, clock) never stops on bytes."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for i, (name, _seed, data, _) in enumerate(cases):
            suffix = {"tiff": ".tif", "png": ".png"}.get(name, ".jpg")
            (root / "cam").mkdir(exist_ok=True)
            (root / "cam" / f"{i}{suffix}").write_bytes(data)
        manifest = [r for r in stage0.scan(str(root), None).to_pylist() if r["status"] == "pending"]
        media = stage0.finish(stage0.read_headers(manifest, {}, 250.0)).to_pylist()
    assert len(media) == len(cases)
    for row in media:
        assert row["status"] in ("ok", "failed") and (row["status"] == "ok") == (row["reason"] is None)
        assert row["timestamp"] is not None


def _video_seeds() -> dict[str, bytes]:
    """Small real videos of the containers and codecs cameras write: MP4 (MPEG-4 Part 2) and AVI (MJPEG) by
    OpenCV, MP4 (H.264, with creation_time) by PyAV where its FFmpeg has libx264."""
    import av  # noqa: PLC0415

    seeds = {}
    with tempfile.TemporaryDirectory() as tmp:
        frames = [np.full((48, 64, 3), 30 + 20 * i, np.uint8) for i in range(8)]
        for name, fourcc in (("mp4v.mp4", "mp4v"), ("mjpg.avi", "MJPG")):
            writer = cv2.VideoWriter(str(Path(tmp) / name), cv2.VideoWriter_fourcc(*fourcc), 4, (64, 48))
            for f in frames:
                writer.write(f)
            writer.release()
            seeds[name] = (Path(tmp) / name).read_bytes()
        with contextlib.suppress(Exception), av.open(str(Path(tmp) / "h264.mp4"), "w") as out:
            out.metadata["creation_time"] = "2022-06-01T05:30:12.000000Z"
            stream = out.add_stream("libx264", rate=4)
            stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
            for f in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="bgr24")):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
        if (Path(tmp) / "h264.mp4").exists():
            seeds["h264.mp4"] = (Path(tmp) / "h264.mp4").read_bytes()
    return seeds


VIDEO_SEEDS = _video_seeds()
VIDEO_SCHEMA = pa.schema([f for f in stage0.MEDIA_SCHEMA if f.name in (
    "format", "width", "height", "make", "model", "datetime_original", "subsec_time_original", "media_type",
    "duration_s", "fps", "frame_count", "codec")])


@fuzz(300)
@given(st.sampled_from(sorted(VIDEO_SEEDS)), st.data())
def test_mutated_videos_give_schema_fields_or_a_reason(name, data):
    """Container header and frames of damaged videos: fields the media table holds, pixels, or ``BadVideo`` with
    a reason of its own; never another exception, never a hang."""
    buf = bytearray(VIDEO_SEEDS[name])
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(buf) - 1))
        value = struct.pack(data.draw(st.sampled_from(["<I", ">I"])), data.draw(DWORDS)) \
            if data.draw(st.booleans()) else bytes([data.draw(BYTES)])
        buf[pos:pos + len(value)] = value[:len(buf) - pos]
    if data.draw(st.booleans()):
        del buf[data.draw(st.integers(0, len(buf) - 1)):]
    try:
        found = video.read_metadata(io.BytesIO(bytes(buf)), name)
    except video.BadVideo as exc:
        assert str(exc)
        return
    pa.Table.from_pylist([{k: found.get(k) for k in VIDEO_SCHEMA.names}], schema=VIDEO_SCHEMA)
    assert found["frame_count"] >= 1 and (found["fps"] is None or 0 < found["fps"] < 10_000)
    for n in video.sample_frames(found["fps"], found["frame_count"], "1f")[:3]:
        with contextlib.suppress(video.BadVideo):
            img = video.read_frame(io.BytesIO(bytes(buf)), n, found["fps"])
            assert img.ndim == 3 and img.shape[2] == 3
