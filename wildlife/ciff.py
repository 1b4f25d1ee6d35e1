"""Canon CIFF: the camera file format of early Canon PowerShots, found in their JPEGs' APP0 segment.

Layout as exiftool reads it (CanonRaw.pm; JPEG APP0 ``CIFF`` when the segment matches ``(II|MM).{4}HEAPJPGM``):

- header: byte order (``II``/``MM``), int32u header length, ``HEAPJPGM`` (``HEAPCCDR`` in a CRW file); the
  root heap runs from the header length to the end of the data.
- heap: its last 4 bytes give its directory's offset within the heap; a directory is an int16u count and
  10-byte entries (int16u tag, int32u size, int32u offset within the heap).
- tag bits: 0x4000 value stored in the entry itself (8 bytes), ``(tag >> 8) & 0x38`` the data type (0x28 and
  0x30 are sub-heaps, read recursively), ``tag & 0x3fff`` the id. 0x8000 set: a bad entry, stop.
- 0x180e TimeStamp (int32u[3]): DateTimeOriginal as seconds since 1970 of the camera's own clock (local
  time, read as UTC, as ``ConvertUnixTime`` does), TimeZoneCode, TimeZoneInfo. 0x080a MakeModel: two
  NUL-ended strings, make then model.
"""

from __future__ import annotations

import struct
from datetime import datetime, timedelta
from typing import Any

from wildlife import ifd
from wildlife.headerio import BadPhoto

_SIGNATURES = (b"HEAPJPGM", b"HEAPCCDR")
_TIMESTAMP, _MAKE_MODEL = 0x180E, 0x080A
_MAX_DEPTH, _MAX_ENTRIES = 8, 4000  # entries in all heaps together; cameras write a few hundred
_EPOCH = datetime(1970, 1, 1)


def is_ciff(data: bytes) -> bool:
    return data[:2] in (b"II", b"MM") and data[6:14] in _SIGNATURES


def parse(data: bytes) -> dict[str, Any]:
    """``{"ciff_datetime": "YYYY:MM:DD HH:MM:SS", "ciff_make", "ciff_model"}`` as far as the data has them."""
    if not is_ciff(data):
        raise BadPhoto("corrupt CIFF: no CIFF header")
    walk = _Walk(data, ifd.byte_order(data[:2]))
    (start,) = struct.unpack_from(walk.e + "I", data, 2)
    walk.heap(start, len(data), 0)
    out: dict[str, Any] = {}
    stamp = walk.found.get(_TIMESTAMP)
    if stamp is not None and len(stamp) >= 4:
        (seconds,) = struct.unpack_from(walk.e + "I", stamp, 0)
        out["ciff_datetime"] = (_EPOCH + timedelta(seconds=seconds)).strftime("%Y:%m:%d %H:%M:%S")
    names = walk.found.get(_MAKE_MODEL, b"").split(b"\x00")
    for key, raw in zip(("ciff_make", "ciff_model"), names, strict=False):
        value = raw.decode("latin-1").strip()
        if value:
            out[key] = value
    return out


class _Walk:
    """One pass over a CIFF's heaps: each directory once, at most ``_MAX_ENTRIES`` entries in all."""

    def __init__(self, data: bytes, e: str):
        self.data, self.e = data, e
        self.found: dict[int, bytes] = {}
        self.seen: set[int] = set()
        self.entries = 0

    def heap(self, start: int, end: int, depth: int) -> None:
        data, e = self.data, self.e
        if depth > _MAX_DEPTH:
            raise BadPhoto("corrupt CIFF: heaps nested too deep")
        if not 0 <= start <= end - 4 or end > len(data):
            raise BadPhoto("corrupt CIFF: a heap outside the data")
        (dir_at,) = struct.unpack_from(e + "I", data, end - 4)
        dir_at += start
        if dir_at in self.seen:
            raise BadPhoto("corrupt CIFF: a heap refers back to itself")
        self.seen.add(dir_at)
        if dir_at + 2 > end:
            raise BadPhoto("corrupt CIFF: a directory outside its heap")
        (count,) = struct.unpack_from(e + "H", data, dir_at)
        self.entries += count
        if dir_at + 2 + 10 * count > end:
            raise BadPhoto(f"corrupt CIFF: a directory of {count} entries does not fit its heap")
        if self.entries > _MAX_ENTRIES:
            raise BadPhoto(f"corrupt CIFF: more than {_MAX_ENTRIES} entries (gave up)")
        for i in range(count):
            at = dir_at + 2 + 10 * i
            tag, size, offset = struct.unpack_from(e + "HII", data, at)
            if tag & 0x8000:
                return
            tag_id, kind, in_entry = tag & 0x3FFF, (tag >> 8) & 0x38, tag & 0x4000
            if in_entry:
                value = data[at + 2:at + 10]
            elif start + offset + size > end:
                continue  # one entry past its heap does not spoil the others
            elif kind in (0x28, 0x30):
                self.heap(start + offset, start + offset + size, depth + 1)
                continue
            else:
                value = data[start + offset:start + offset + size]
            if tag_id in (_TIMESTAMP, _MAKE_MODEL):
                self.found.setdefault(tag_id, value)
