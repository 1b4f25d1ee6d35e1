"""The tags Stage 0 takes from a TIFF structure: the EXIF block of a JPEG, or a TIFF photo itself.

IFD0 leads to the Exif IFD (time, serial, maker note) and the GPS IFD; each of those is read under its own
guard, so a damaged GPS directory costs the GPS and nothing else, and the reason lands in ``exif_error``.

GPS that cannot be a place on Earth is dropped with a reason: a zero denominator (0/0 used to read as 0°),
NaN or infinity, latitude beyond ±90° or longitude beyond ±180°, or exactly (0, 0), which receivers write
when they have no fix.
"""

from __future__ import annotations

import math
import struct
from typing import Any

from wildlife import ifd, olympus, reconyx
from wildlife.headerio import Block, guarded, note

# IFD0 / IFD1 tags
_MAKE, _MODEL, _MODIFY_DATE = 0x010F, 0x0110, 0x0132
_WIDTH, _HEIGHT = 0x0100, 0x0101
_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825
# Exif IFD tags
_DATETIME_ORIGINAL, _OFFSET_TIME_ORIGINAL, _SUBSEC_ORIGINAL = 0x9003, 0x9011, 0x9291
_MAKER_NOTE, _BODY_SERIAL = 0x927C, 0xA431
_PIXEL_X, _PIXEL_Y = 0xA002, 0xA003

_IFD0_STRINGS = {_MAKE: "make", _MODEL: "model", _MODIFY_DATE: "modify_date"}
_EXIF_STRINGS = {
    _DATETIME_ORIGINAL: "datetime_original",
    _OFFSET_TIME_ORIGINAL: "offset_time_original",
    _SUBSEC_ORIGINAL: "subsec_time_original",
    _BODY_SERIAL: "serial_number",
}
_IFD0_TAGS = {*_IFD0_STRINGS, _WIDTH, _HEIGHT, _EXIF_IFD, _GPS_IFD}
_EXIF_TAGS = {*_EXIF_STRINGS, _MAKER_NOTE, _PIXEL_X, _PIXEL_Y}
_GPS_TAGS = {1, 2, 3, 4, 5, 6}


def read(block: Block, out: dict[str, Any], top_level: bool) -> None:
    """Fields from a TIFF structure into ``out``. IFD0 must be readable; the rest is read under guards.

    ``top_level``: the block is a TIFF photo, whose pixel size lives in IFD0.
    """
    e = ifd.byte_order(block.read(0, 2))
    (ifd0,) = struct.unpack(e + "I", block.read(4, 4))
    tags0 = ifd.read_ifd(block, e, ifd0, _IFD0_TAGS)
    ifd.copy_strings(out, tags0, _IFD0_STRINGS)
    if top_level:
        out["width"], out["height"] = ifd.first_int(tags0, _WIDTH), ifd.first_int(tags0, _HEIGHT)
    if _EXIF_IFD in tags0:
        guarded(out, "EXIF Exif IFD", lambda: _exif_ifd(block, e, ifd.pointer(tags0, _EXIF_IFD, "Exif IFD"), out))
    if _GPS_IFD in tags0:
        guarded(out, "EXIF GPS IFD", lambda: _gps_ifd(block, e, ifd.pointer(tags0, _GPS_IFD, "GPS IFD"), out))


def _exif_ifd(block: Block, e: str, offset: int, out: dict[str, Any]) -> None:
    where: dict[int, int] = {}
    exif = ifd.read_ifd(block, e, offset, _EXIF_TAGS, where)
    ifd.copy_strings(out, exif, _EXIF_STRINGS)
    width, height = ifd.first_int(exif, _PIXEL_X), ifd.first_int(exif, _PIXEL_Y)
    if width is not None and height is not None:
        out["exif_width"], out["exif_height"] = width, height
    if _MAKER_NOTE in exif:
        guarded(out, "maker note", lambda: _maker_note(exif[_MAKER_NOTE], e, block, where[_MAKER_NOTE], out))


def _maker_note(value: Any, e: str, block: Block, offset: int, out: dict[str, Any]) -> None:
    if not isinstance(value, bytes):
        return
    if reconyx.is_reconyx(value, e):
        out.update(reconyx.parse(value, e))
    elif olympus.is_olympus(value):
        out.update(olympus.parse(value, e, block, offset))


def _gps_ifd(block: Block, e: str, offset: int, out: dict[str, Any]) -> None:
    tags = ifd.read_ifd(block, e, offset, _GPS_TAGS)
    found: dict[str, float] = {}
    for ref_tag, val_tag, name, negative in ((1, 2, "latitude", b"S"), (3, 4, "longitude", b"W")):
        val = tags.get(val_tag)
        if isinstance(val, tuple) and len(val) == 3:
            deg = val[0] + val[1] / 60 + val[2] / 3600
            ref = tags.get(ref_tag, b"")
            found[name] = -deg if isinstance(ref, bytes) and ref[:1] == negative else deg
    lat, lon = found.get("latitude"), found.get("longitude")
    problem = gps_problem(lat, lon)
    if problem:
        note(out, f"GPS dropped: {problem}")
    elif lat is not None and lon is not None:
        out["gps_latitude"], out["gps_longitude"] = lat, lon
    alt = tags.get(6)
    if isinstance(alt, tuple) and alt:
        if not math.isfinite(alt[0]):
            note(out, f"GPS altitude dropped: {alt[0]}")
        else:
            below = tags.get(5, b"\x00")
            out["gps_altitude"] = -alt[0] if isinstance(below, bytes) and below[:1] == b"\x01" else alt[0]


def gps_problem(lat: float | None, lon: float | None) -> str | None:
    """Why a latitude/longitude pair cannot be a place on Earth, or None when it can (or is absent)."""
    if lat is None and lon is None:
        return None
    if lat is None or lon is None:
        return "latitude without longitude" if lon is None else "longitude without latitude"
    if not (math.isfinite(lat) and math.isfinite(lon)):
        return f"({lat}, {lon}) is not a number (a zero denominator?)"
    if abs(lat) > 90:
        return f"latitude {lat:g} out of range"
    if abs(lon) > 180:
        return f"longitude {lon:g} out of range"
    if lat == 0 and lon == 0:
        return "exactly (0, 0), what receivers write without a fix"
    return None
