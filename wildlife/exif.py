"""Read what Stage 0 needs from a photo's header without decoding a single pixel.

A camera-trap JPEG keeps everything of interest in its first few kilobytes: the APP1 EXIF block (a small
TIFF structure, ``wildlife/tiff.py``), sometimes an APP1 XMP packet or an APP0 Canon CIFF block, and the
SOF marker with the pixel size. We walk those segments once, front to back, and check the file's last bytes
for the end-of-image marker to catch truncated copies. This is what makes Stage 0 run at thousands of
photos per second (see ``bench/stage0.py``).

What one file can do to a run is bounded here:

- ``read_header`` raises ``BadPhoto`` (the row fails with that reason) or ``OSError`` (the file cannot be
  read), whatever the bytes are: any other exception from parsing is turned into ``BadPhoto`` naming it.
- Damage inside the EXIF, XMP or CIFF data costs that data, not the photo (its pixels still decode): the
  reason goes to ``exif_error``. So does every value dropped as impossible (GPS, dates, offsets).
- The segment walk gives up after ``MAX_SEGMENTS`` markers; each step is O(1), so time and bytes read per
  file are bounded whatever the file's size.

The capture time: ``datetime_original`` is the camera's own reading of when the photo was taken, from the
first place in the file that has one — EXIF DateTimeOriginal, XMP (``wildlife/xmp.py``), the maker note
(Reconyx's clock, Olympus's UTC clock) or Canon CIFF — and ``datetime_original_source`` says which
("exif", "xmp", "makernote", "ciff"); Stage 0 carries it into ``timestamp_source``. ``maker_datetime`` is
always the Reconyx maker note's own clock, whether or not it was needed.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import IO, Any

from wildlife import ciff, clock, tiff, xmp
from wildlife.headerio import BadPhoto, Block, Window, describe, guarded, note

HEAD_BYTES = 64 * 1024
DEFAULT_MAX_MEGAPIXELS = 250.0  # the largest camera-trap sensors are ~40 MP; more is a corrupt or hostile header
MAX_SEGMENTS = 4096  # real JPEGs have a few dozen segments before the image data; extended XMP a few hundred
MAX_PIXELS_SIDE = 2**31 - 1  # the media table's width and height are int32
YEARS = (1000, 9000)  # a clock reading outside these is no date (and would overflow time zone arithmetic)

_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_STANDALONE = {0x01, *range(0xD0, 0xD9)}  # TEM, RST0-7, SOI: markers without a length
_OFFSET = re.compile(r"[+-](\d\d):(\d\d)", re.ASCII)
_DIGITS = re.compile(r"\d{1,9}", re.ASCII)
_NONZERO_DIGIT = re.compile(r"[1-9]")


def read_header(f: IO[bytes], size: int, max_megapixels: float = DEFAULT_MAX_MEGAPIXELS) -> dict[str, Any]:
    """Parse a photo's header. Returns a flat dict of fields; raises ``BadPhoto`` with a reason (or OSError)."""
    if size == 0:
        raise BadPhoto("empty file (0 bytes)")
    head = f.read(HEAD_BYTES)
    if head[:3] == b"\xff\xd8\xff":
        kind, read = "JPEG", _read_jpeg
    elif head[:8] == b"\x89PNG\r\n\x1a\n":
        kind, read = "PNG", _read_png
    elif head[:4] in (b"II*\x00", b"MM\x00*"):
        kind, read = "TIFF", _read_tiff
    else:
        raise BadPhoto(_describe_unknown(head))
    try:
        out = read(f, head, size)
        _check_size(out, max_megapixels)
        _settle_time(out)
    except (BadPhoto, OSError):
        raise
    except Exception as exc:  # whatever the bytes do, it is this file's reason, not the run's
        raise BadPhoto(describe(f"{kind} header", exc)) from exc
    return out


def _describe_unknown(head: bytes) -> str:
    sample = head[:512]
    if sample and all(32 <= b < 127 or b in (9, 10, 13) for b in sample):
        return f"not an image: the file holds text ({sample[:24]!r}...)"
    return f"not an image: unknown file signature {head[:4].hex(' ')}"


def _check_size(out: dict[str, Any], max_megapixels: float) -> None:
    width, height = out.get("width"), out.get("height")
    if width is None or height is None:
        raise BadPhoto(f"corrupt {out['format'].upper()} header: no usable pixel size (width {width}, "
                       f"height {height})")
    if not (0 < width <= MAX_PIXELS_SIDE and 0 < height <= MAX_PIXELS_SIDE):
        raise BadPhoto(f"corrupt {out['format'].upper()} header: declared size {width}x{height} px")
    if width * height > max_megapixels * 1e6:
        raise BadPhoto(
            f"declared size {width}x{height} px exceeds the {max_megapixels:g} MP limit "
            "(a decompression bomb or a corrupt header)"
        )


# --- JPEG -----------------------------------------------------------------------------------------------

def _read_jpeg(f: IO[bytes], head: bytes, size: int) -> dict[str, Any]:
    out: dict[str, Any] = {"format": "jpeg"}
    window = Window(f, head)
    seen: set[str] = set()
    pos = 2
    for _ in range(MAX_SEGMENTS):
        mark = window.get(pos, 4)
        if len(mark) < 2:
            raise BadPhoto("truncated JPEG: the file ends inside its header")
        if mark[0] != 0xFF:
            raise BadPhoto(f"corrupt JPEG: expected a marker at byte {pos}")
        marker = mark[1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xDA, 0xD9):  # start of scan / end of image: the header is over
            break
        if marker in _STANDALONE:
            pos += 2
            continue
        if len(mark) < 4:
            raise BadPhoto("truncated JPEG: the file ends inside its header")
        length = int.from_bytes(mark[2:4], "big")
        if length < 2:
            raise BadPhoto(f"corrupt JPEG: a segment of length {length} at byte {pos}")
        end = pos + 2 + length
        if end >= size:
            raise BadPhoto("truncated JPEG: the file ends inside its header")
        if marker in _SOF_MARKERS:
            sof = window.get(pos + 4, 5)
            if len(sof) < 5:
                raise BadPhoto("truncated JPEG: the file ends inside its header")
            out["height"], out["width"] = struct.unpack_from(">HH", sof, 1)
            break
        if marker in (0xE0, 0xE1):
            _app_segment(out, seen, window, pos + 4, length - 2, marker)
        pos = end
    else:
        raise BadPhoto(f"corrupt JPEG: more than {MAX_SEGMENTS} segments before the image data (gave up)")
    if "width" not in out:
        raise BadPhoto("corrupt JPEG: no frame header (SOF) before the image data")
    f.seek(max(0, size - 2))
    if f.read(2) != b"\xff\xd9":
        f.seek(max(0, size - 4096))  # some cameras pad after the end-of-image marker
        if b"\xff\xd9" not in f.read(4096):
            raise BadPhoto("truncated JPEG: no end-of-image marker (an incomplete copy?)")
    return out


# the APP segments read, each the first of its kind only: (marker, name, signature test, reader)
_APPS: tuple[tuple[int, str, Callable[[bytes], bool], Callable[[bytes, dict[str, Any]], None]], ...] = (
    (0xE1, "EXIF", lambda s: s.startswith(b"Exif\x00\x00"),
     lambda data, out: tiff.read(Block(data[6:]), out, top_level=False)),
    (0xE1, "XMP", lambda s: s.startswith(xmp.SIGNATURE),
     lambda data, out: out.update(xmp.capture_time(data[len(xmp.SIGNATURE):]))),
    (0xE0, "CIFF", ciff.is_ciff, lambda data, out: out.update(ciff.parse(data))),
)


def _app_segment(out: dict[str, Any], seen: set[str], window: Window, at: int, length: int, marker: int) -> None:
    start = window.get(at, 32)
    for app_marker, name, matches, read in _APPS:
        if marker == app_marker and name not in seen and matches(start):
            seen.add(name)
            data = window.get(at, length)
            if len(data) < length:
                raise BadPhoto("truncated JPEG: the file ends inside its header")
            guarded(out, name, lambda data=data, read=read: read(data, out))
            return


# --- PNG and TIFF ---------------------------------------------------------------------------------------

def _read_png(f: IO[bytes], head: bytes, size: int) -> dict[str, Any]:
    if len(head) < 24:
        raise BadPhoto(f"truncated PNG: {len(head)} bytes, its header alone needs 24")
    if head[12:16] != b"IHDR":
        raise BadPhoto("corrupt PNG: no IHDR chunk")
    width, height = struct.unpack_from(">II", head, 16)
    return {"format": "png", "width": width, "height": height}


def _read_tiff(f: IO[bytes], head: bytes, size: int) -> dict[str, Any]:
    out: dict[str, Any] = {"format": "tiff"}
    tiff.read(Block(head, f, 0, limit=size), out, top_level=True)
    return out


# --- the capture time -----------------------------------------------------------------------------------

def _settle_time(out: dict[str, Any]) -> None:
    """Keep only times and offsets that are real, then take the capture time from the first place that has it.

    Found along the way (and removed here): ``xmp_*`` from XMP, ``olympus_utc``, ``ciff_*``.
    """
    found = {k: out.pop(k) for k in list(out) if k.startswith(("xmp_", "olympus_", "ciff_"))}
    if found.get("ciff_make") and not out.get("make"):
        out["make"], out["model"] = found["ciff_make"], found.get("ciff_model")
    for key, name in (("datetime_original", "DateTimeOriginal"), ("maker_datetime", "maker note time")):
        if out.get(key) and not _NONZERO_DIGIT.search(out[key]):
            del out[key]  # EXIF's way to say "unknown": blanks or zeros
        elif out.get(key) and _reading(out[key]) is None:
            note(out, f"{name} {out.pop(key)!r} dropped: not a date between the years {YEARS[0]} and {YEARS[1]}")
    if out.get("subsec_time_original") and not _DIGITS.fullmatch(out["subsec_time_original"]):
        note(out, f"SubSecTimeOriginal {out.pop('subsec_time_original')!r} dropped: not digits")
    if out.get("offset_time_original") and not _offset(out["offset_time_original"]):
        note(out, f"OffsetTimeOriginal {out.pop('offset_time_original')!r} dropped: not a UTC offset ±HH:MM")
    if out.get("datetime_original"):
        out["datetime_original_source"] = "exif"
        return
    exif_offset = out.get("offset_time_original")
    olympus = _reading(found.get("olympus_utc"))
    # (source, camera time, its fraction of a second, its own UTC offset): XMP dates carry theirs; a maker
    # note's or CIFF's clock is in the zone EXIF's OffsetTimeOriginal names, if any; Olympus's is UTC
    for source, stamp, subsec, offset in (
        ("xmp", found.get("xmp_datetime"), found.get("xmp_subsec"), found.get("xmp_offset")),
        ("makernote", out.get("maker_datetime"), None, None),
        ("makernote", olympus and _from_utc(olympus, exif_offset), None, None if exif_offset else "+00:00"),
        ("ciff", found.get("ciff_datetime"), None, None),
    ):
        if stamp and _reading(stamp) is not None:
            out["datetime_original"], out["datetime_original_source"] = stamp, source
            out.pop("subsec_time_original", None)  # EXIF's fraction belongs to EXIF's own (absent) time
            if subsec:
                out["subsec_time_original"] = subsec
            if offset and _offset(offset):
                out["offset_time_original"] = offset
            return
        if stamp:
            note(out, f"{source} time {stamp!r} dropped: not a date between the years {YEARS[0]} and {YEARS[1]}")


def _reading(text: str | None) -> datetime | None:
    when = clock.parse_exif_time(text)
    return when if when is not None and YEARS[0] <= when.year <= YEARS[1] else None


def _offset(text: str) -> bool:
    m = _OFFSET.fullmatch(text)
    return bool(m) and int(m.group(1)) <= 14 and int(m.group(2)) <= 59


def _from_utc(utc: datetime, offset: str | None) -> str:
    """A UTC reading as the wall time of ``offset`` (EXIF's, when it has one; else it stays UTC, +00:00)."""
    if offset and _offset(offset):
        sign = -1 if offset[0] == "-" else 1
        utc += sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6]))
    return utc.strftime("%Y:%m:%d %H:%M:%S")
