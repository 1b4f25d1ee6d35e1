"""Bounded access to a photo's header bytes, and the one boundary between damaged bytes and the run.

Every header reader (JPEG segments, TIFF directories, maker notes, XMP, CIFF) reads through ``Window`` or
``Block``, so what one file can cost is bounded by construction: ``Window`` serves the JPEG segment walk from
one buffer that is replaced, never grown or concatenated; ``Block`` serves a TIFF structure's random access
inside a byte range and refuses offsets outside it.

Damage is reported, never raised past the file: ``BadPhoto`` is a reason the photo cannot be used (the row
fails); ``guarded`` runs one part of a header (the GPS directory, a maker note, an XMP packet) and turns any
exception from its bytes into a note in ``exif_error``, so the other parts and the pixels still count.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import IO, Any, TypeVar

READ_CHUNK = 4096  # bytes read at once when the segment walk leaves the bytes in hand
_NOTE_CHARS = 300

T = TypeVar("T")


class BadPhoto(Exception):
    """The file is not a usable photo; the message is the reason users see in ``images.parquet``."""


def describe(part: str, exc: Exception) -> str:
    """The reason for a failure inside ``part``: ours as written, anything else named by its type."""
    if isinstance(exc, BadPhoto):
        return str(exc)
    text = f"unreadable {part}: {type(exc).__name__} ({exc})"
    return text if len(text) <= _NOTE_CHARS else text[:_NOTE_CHARS - 3] + "..."


def note(out: dict[str, Any], text: str) -> None:
    """Add a reason to ``exif_error``: something in the header was damaged or dropped, the photo stays."""
    before = out.get("exif_error")
    out["exif_error"] = f"{before}; {text}" if before else text


def guarded(out: dict[str, Any], part: str, read: Callable[[], T]) -> T | None:
    """``read()``, or None with the reason noted when its bytes are damaged in any way.

    ``OSError`` is not damage in the bytes but a file that cannot be read: it goes on to the caller.
    """
    try:
        return read()
    except OSError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever these bytes do, they spoil only this part
        note(out, describe(part, exc))
        return None


class Window:
    """A file read front to back for the JPEG segment walk: bytes at absolute offsets, one buffer at a time.

    A request inside the buffer is a slice; anything else replaces the buffer with one read at that offset,
    so the walk reads each byte at most once and copies nothing it does not return.
    """

    def __init__(self, f: IO[bytes], head: bytes):
        self.f, self.buf, self.start = f, head, 0

    def get(self, pos: int, length: int) -> bytes:
        """Up to ``length`` bytes at ``pos`` (fewer at the end of the file)."""
        offset = pos - self.start
        if offset >= 0 and offset + length <= len(self.buf):
            return self.buf[offset:offset + length]
        self.f.seek(pos)
        self.buf, self.start = self.f.read(max(length, READ_CHUNK)), pos
        return self.buf[:length]


class Block:
    """Random access to a byte range of the file (a TIFF structure), from bytes in hand when they cover it.

    ``head`` holds the range's first bytes (``base`` is their offset in the file); offsets are relative to
    ``base`` and must stay below ``limit``. Without a file, the range is ``head`` alone.
    """

    def __init__(self, head: bytes, f: IO[bytes] | None = None, base: int = 0, limit: int | None = None):
        self.head, self.f, self.base = head, f, base
        self.limit = len(head) if f is None and limit is None else limit

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0 or (self.limit is not None and offset + length > self.limit):
            raise BadPhoto("corrupt EXIF: a directory points outside its block")
        if offset + length <= len(self.head):
            return self.head[offset:offset + length]
        if self.f is None:  # unreachable: a block without a file has limit = len(head)
            raise BadPhoto("corrupt EXIF: a directory points past the end of its block")
        self.f.seek(self.base + offset)
        data = self.f.read(length)
        if len(data) != length:
            raise BadPhoto("corrupt EXIF: a directory points past the end of the file")
        return data
