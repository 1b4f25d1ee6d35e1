"""TIFF directories (IFDs), the structure of an EXIF block, a TIFF photo and many maker notes.

A directory is a count and 12-byte entries (tag, type, count, value or a pointer to it). Only the tags
asked for are decoded; a value that lies outside its block is skipped, not fatal.
"""

from __future__ import annotations

import math
import struct
from typing import Any

from wildlife.headerio import BadPhoto, Block

# bytes per value of each TIFF type; 13 is an IFD pointer (a LONG)
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}
_MAX_ENTRIES = 1000
_MAX_VALUE_BYTES = 1 << 20


def byte_order(mark: bytes) -> str:
    if mark == b"II":
        return "<"
    if mark == b"MM":
        return ">"
    raise BadPhoto("corrupt EXIF: bad byte-order mark")


def read_ifd(block: Block, e: str, offset: int, wanted: set[int],
             where: dict[int, int] | None = None) -> dict[int, Any]:
    """The ``wanted`` tags of one directory: tuples of numbers, ``bytes`` for ASCII/UNDEFINED values.

    ``where``, when given, receives each value's offset in the block (for values that hold a directory).
    """
    (count,) = struct.unpack(e + "H", block.read(offset, 2))
    if count > _MAX_ENTRIES:
        raise BadPhoto(f"corrupt EXIF: a directory of {count} entries")
    raw = block.read(offset + 2, count * 12)
    tags: dict[int, Any] = {}
    for i in range(count):
        tag, typ, n = struct.unpack_from(e + "HHI", raw, i * 12)
        size = _TYPE_SIZES.get(typ)
        if tag not in wanted or size is None:
            continue
        nbytes = size * n
        if nbytes <= 4:
            at = offset + 2 + i * 12 + 8
            data = raw[i * 12 + 8:i * 12 + 8 + nbytes]
        elif nbytes > _MAX_VALUE_BYTES:
            continue
        else:
            (at,) = struct.unpack_from(e + "I", raw, i * 12 + 8)
            try:
                data = block.read(at, nbytes)
            except BadPhoto:
                continue  # one broken tag value does not spoil the others
        tags[tag] = _decode(typ, n, data, e)
        if where is not None:
            where[tag] = at
    return tags


def _decode(typ: int, n: int, data: bytes, e: str) -> Any:
    if typ in (1, 2, 6, 7):
        return data
    if typ in (5, 10):
        fmt = "i" if typ == 10 else "I"
        vals = struct.unpack(f"{e}{2 * n}{fmt}", data)
        # a zero denominator is no number at all: NaN, never the 0.0 that put photos at latitude 0
        return tuple(vals[i] / vals[i + 1] if vals[i + 1] else math.nan for i in range(0, 2 * n, 2))
    fmt = {3: "H", 4: "I", 8: "h", 9: "i", 11: "f", 12: "d", 13: "I"}[typ]
    return struct.unpack(f"{e}{n}{fmt}", data)


def first_int(tags: dict[int, Any], tag: int) -> int | None:
    """A tag's first value as a whole number, or None when it has none (count 0, text, NaN, infinity)."""
    value = tags.get(tag)
    if not isinstance(value, tuple) or not value:
        return None
    first = value[0]
    if isinstance(first, float):
        if not math.isfinite(first) or first != int(first):
            return None
        return int(first)
    return first


def pointer(tags: dict[int, Any], tag: int, name: str) -> int:
    offset = first_int(tags, tag)
    if offset is None:
        raise BadPhoto(f"corrupt EXIF: the {name} pointer has no value")
    return offset


def text(value: Any) -> str | None:
    if not isinstance(value, bytes):
        return None
    decoded = value.split(b"\x00", 1)[0].decode("utf-8", "replace").strip()
    return decoded or None


def copy_strings(out: dict[str, Any], tags: dict[int, Any], names: dict[int, str]) -> None:
    for tag, name in names.items():
        value = text(tags.get(tag))
        if value:
            out[name] = value
