"""Reconyx maker notes: burst position ("3 of 10"), event number, ambient temperature, moon phase, serial.

Offsets follow exiftool's Reconyx tables (HyperFire, UltraFire and HyperFire 2 layouts), read here as
fixed binary records. One correction: for the HyperFire 2 the clock fields are stored
second, minute, hour, month, day, year (the sample photos' EXIF DateTimeOriginal proves the order).
"""

from __future__ import annotations

import struct
from typing import Any

from wildlife.headerio import BadPhoto

MOON_PHASES = (
    "New", "New Crescent", "First Quarter", "Waxing Gibbous",
    "Full", "Waning Gibbous", "Last Quarter", "Old Crescent",
)
_TRIGGERS = {"M": "Motion Detection", "T": "Time Lapse", "P": "Point and Shoot", "E": "External Sensor"}
_H2, _UF = b"RECONYXH2\x00", b"RECONYXUF\x00"
_MIN_BYTES = {"HyperFire 2": 0x52, "UltraFire": 0x48, "HyperFire": 88}


def is_reconyx(note: bytes, e: str) -> bool:
    """Whether a MakerNote is one of Reconyx's (``e``: the EXIF block's byte order)."""
    return note.startswith((_H2, _UF)) or (len(note) >= 2 and struct.unpack_from(e + "H", note, 0)[0] == 0xF101)


def parse(note: bytes, e: str) -> dict[str, Any]:
    """Fields from a Reconyx MakerNote. Raises on a damaged note; the caller keeps the photo and says why."""
    if note.startswith(_H2):
        layout, read = "HyperFire 2", lambda: _hyperfire2(note, "<")
    elif note.startswith(_UF):
        layout, read = "UltraFire", lambda: _ultrafire(note)
    else:
        layout, read = "HyperFire", lambda: _hyperfire(note, e)
    if len(note) < _MIN_BYTES[layout]:
        raise BadPhoto(f"corrupt maker note: a Reconyx {layout} note of {len(note)} bytes "
                       f"(its fields need {_MIN_BYTES[layout]})")
    return read()


def _stamp(year: int, month: int, day: int, hour: int, minute: int, second: int) -> str | None:
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 61):
        return None
    return f"{year:04d}:{month:02d}:{day:02d} {hour:02d}:{minute:02d}:{second:02d}"


def _string(raw: bytes) -> str | None:
    text = raw.split(b"\x00", 1)[0].decode("latin-1").strip()
    return text or None


def _common(seq: tuple[int, int], event: int, stamp: str | None, moon: int, temp_c: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "maker_sequence_index": seq[0],
        "maker_sequence_length": seq[1],
        "maker_event_number": event,
        "ambient_temperature_c": float(temp_c),
    }
    if stamp:
        out["maker_datetime"] = stamp
    if 0 <= moon < len(MOON_PHASES):
        out["moon_phase"] = MOON_PHASES[moon]
    return out


def _hyperfire2(note: bytes, e: str) -> dict[str, Any]:
    seq = struct.unpack_from(e + "2H", note, 0x36)
    hi, lo = struct.unpack_from(e + "2H", note, 0x3A)
    sec, minute, hour, month, day, year = struct.unpack_from(e + "6H", note, 0x3E)
    (moon,) = struct.unpack_from(e + "H", note, 0x4C)
    (temp_c,) = struct.unpack_from(e + "h", note, 0x50)
    out = _common(seq, (hi << 16) + lo, _stamp(year, month, day, hour, minute, sec), moon, temp_c)
    out["trigger_mode"] = _TRIGGERS.get(note[0x34:0x35].decode("latin-1"))
    out["user_label"] = _string(note[0x68:0x68 + 22])
    if len(note) >= 0x7E + 30:
        serial = note[0x7E:0x7E + 30].decode("utf-16-le", "replace").split("\x00", 1)[0].strip()
        out["serial_number"] = serial or None
    return out


def _hyperfire(note: bytes, e: str) -> dict[str, Any]:
    words = struct.unpack_from(e + "44H", note, 0)
    sec, minute, hour, month, day, year = words[0x0B:0x11]
    temp_c = struct.unpack_from(e + "h", note, 0x14 * 2)[0]
    out = _common((words[7], words[8]), (words[9] << 16) + words[10],
                  _stamp(year, month, day, hour, minute, sec), words[0x12], temp_c)
    out["trigger_mode"] = _TRIGGERS.get(note[12:13].decode("latin-1"))
    serial = note[0x15 * 2:0x15 * 2 + 30].decode("utf-16-le", "replace").split("\x00", 1)[0].strip()
    out["serial_number"] = serial or None
    if len(note) >= 0x2B * 2 + 22:
        out["user_label"] = _string(note[0x2B * 2:0x2B * 2 + 22])
    return out


def _ultrafire(note: bytes) -> dict[str, Any]:
    seq = (note[0x35], note[0x36])
    (event,) = struct.unpack_from("<I", note, 0x37)
    sec, minute, hour, day, month, ylo, yhi = note[0x3B:0x42]
    (temp_c,) = struct.unpack_from("<h", note, 0x46)
    out = _common(seq, event, _stamp(ylo + 256 * yhi, month, day, hour, minute, sec), note[0x43], temp_c)
    out["trigger_mode"] = _TRIGGERS.get(note[0x34:0x35].decode("latin-1"))
    out["serial_number"] = _string(note[0x4B:0x4B + 15])
    out["user_label"] = _string(note[0x5A:0x5A + 21])
    return out
