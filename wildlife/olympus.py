"""Olympus (OM System) maker notes: the camera's own UTC clock, read when EXIF has no DateTimeOriginal.

Layout as exiftool reads it (Olympus.pm, MakerNotes.pm):

- ``OLYMPUS\\0`` + byte order (``II``/``MM``) + version: the main IFD at byte 12 of the note, its offsets
  relative to the note's start; ``OM SYSTEM\\0\\0\\0`` + byte order + version: the same at byte 16.
- ``OLYMP\\0`` + version (older cameras): the main IFD at byte 8, offsets relative to the EXIF block's
  TIFF header, in the EXIF byte order.
- Main tag 0x2020 CameraSettings: a sub-IFD, either as a pointer (type IFD or LONG) or as an UNDEFINED
  value that is the directory itself; its offsets share the main IFD's base.
- CameraSettings tag 0x0908 DateTimeUTC: ASCII ``YYYY:MM:DD HH:MM:SS``, the capture time in UTC.
"""

from __future__ import annotations

from typing import Any

from wildlife import ifd
from wildlife.headerio import Block

_NEW = ((b"OLYMPUS\x00", 8), (b"OM SYSTEM\x00\x00\x00", 12))  # signature, where the byte order is
_OLD = (b"OLYMP\x00", b"EPSON\x00")
_CAMERA_SETTINGS, _DATETIME_UTC = 0x2020, 0x0908


def is_olympus(note: bytes) -> bool:
    return note.startswith(_OLD) or any(note.startswith(sig) for sig, _ in _NEW)


def parse(note: bytes, e: str, exif_block: Block, note_offset: int) -> dict[str, Any]:
    """``{"olympus_utc": "YYYY:MM:DD HH:MM:SS"}`` when the note has DateTimeUTC, else {}.

    ``exif_block``/``note_offset``: the EXIF block the note lies in and where, for the old layout's offsets.
    """
    for sig, order_at in _NEW:
        if note.startswith(sig):
            block, e = Block(note), ifd.byte_order(note[order_at:order_at + 2])
            main_at = order_at + 4
            break
    else:
        block, main_at = exif_block, note_offset + 8
    where: dict[int, int] = {}
    main = ifd.read_ifd(block, e, main_at, {_CAMERA_SETTINGS}, where)
    settings = main.get(_CAMERA_SETTINGS)
    if settings is None:
        return {}
    at = where[_CAMERA_SETTINGS] if isinstance(settings, bytes) else ifd.pointer(main, _CAMERA_SETTINGS,
                                                                                   "Olympus CameraSettings")
    stamp = ifd.text(ifd.read_ifd(block, e, at, {_DATETIME_UTC}).get(_DATETIME_UTC))
    return {"olympus_utc": stamp} if stamp else {}
