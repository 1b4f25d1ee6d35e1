"""Real JPEGs with real EXIF, made on the spot for tests and benchmarks.

Pixels are encoded by OpenCV; the EXIF block (IFD0, Exif IFD, GPS IFD and optionally a Reconyx HyperFire 2
maker note) is assembled here byte by byte and inserted as an APP1 segment, as a camera writes it.
"""

from __future__ import annotations

import struct
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np


def _ifd(entries: list[tuple[int, int, int, bytes]], start: int, next_ifd: int = 0) -> bytes:
    """A little-endian TIFF directory at offset ``start``; values over 4 bytes follow the directory."""
    entries = sorted(entries)
    data_at = start + 2 + 12 * len(entries) + 4
    head, tail = struct.pack("<H", len(entries)), b""
    for tag, typ, count, value in entries:
        if len(value) <= 4:
            head += struct.pack("<HHI", tag, typ, count) + value.ljust(4, b"\x00")
        else:
            head += struct.pack("<HHII", tag, typ, count, data_at + len(tail))
            tail += value + (b"\x00" if len(value) % 2 else b"")
    return head + struct.pack("<I", next_ifd) + tail


def _ascii(tag: int, text: str) -> tuple[int, int, int, bytes]:
    raw = text.encode() + b"\x00"
    return (tag, 2, len(raw), raw)


def _rationals(tag: int, values: list[float]) -> tuple[int, int, int, bytes]:
    raw = b"".join(struct.pack("<II", round(v * 10000), 10000) for v in values)
    return (tag, 5, len(values), raw)


def reconyx_note(when: datetime, seq: tuple[int, int], event: int, temp_c: int = 12, moon: int = 4,
                 serial: str = "H2RXTEST000001", label: str = "TEST CAM") -> bytes:
    note = bytearray(0x7E + 32)
    note[:10] = b"RECONYXH2\x00"
    note[0x34:0x36] = b"M\x00"
    struct.pack_into("<2H", note, 0x36, *seq)
    struct.pack_into("<2H", note, 0x3A, event >> 16, event & 0xFFFF)
    struct.pack_into("<6H", note, 0x3E, when.second, when.minute, when.hour, when.month, when.day, when.year)
    struct.pack_into("<H", note, 0x4C, moon)
    struct.pack_into("<h", note, 0x4E, round(temp_c * 9 / 5 + 32))
    struct.pack_into("<h", note, 0x50, temp_c)
    note[0x68:0x68 + len(label)] = label.encode()
    raw_serial = serial.encode("utf-16-le")
    note[0x7E:0x7E + len(raw_serial)] = raw_serial
    return bytes(note)


def exif_block(
    when: datetime | None = None,
    offset: str | None = None,
    make: str = "ODINTEST",
    model: str = "SYNTHETIC 1",
    gps: tuple[float, float] | None = None,
    maker_note: bytes | None = None,
    size: tuple[int, int] | None = None,
) -> bytes:
    exif_entries = []
    if when is not None:
        exif_entries.append(_ascii(0x9003, when.strftime("%Y:%m:%d %H:%M:%S")))
    if offset is not None:
        exif_entries.append(_ascii(0x9011, offset))
    if maker_note is not None:
        exif_entries.append((0x927C, 7, len(maker_note), maker_note))
    if size is not None:
        exif_entries += [(0xA002, 4, 1, struct.pack("<I", size[0])), (0xA003, 4, 1, struct.pack("<I", size[1]))]
    ifd0_entries = [_ascii(0x010F, make), _ascii(0x0110, model), (0x8769, 4, 1, b"\x00" * 4)]
    if gps is not None:
        ifd0_entries.append((0x8825, 4, 1, b"\x00" * 4))
    # two passes: sizes first, then the real pointers
    ifd0 = _ifd(ifd0_entries, 8)
    exif_at = 8 + len(ifd0)
    exif = _ifd(exif_entries, exif_at)
    gps_at = exif_at + len(exif)
    ifd0_entries = [e for e in ifd0_entries if e[0] not in (0x8769, 0x8825)]
    ifd0_entries.append((0x8769, 4, 1, struct.pack("<I", exif_at)))
    blocks = [exif]
    if gps is not None:
        lat, lon = gps
        gps_entries = [
            _ascii(1, "N" if lat >= 0 else "S"), _rationals(2, _dms(abs(lat))),
            _ascii(3, "E" if lon >= 0 else "W"), _rationals(4, _dms(abs(lon))),
        ]
        ifd0_entries.append((0x8825, 4, 1, struct.pack("<I", gps_at)))
        blocks.append(_ifd(gps_entries, gps_at))
    ifd0 = _ifd(ifd0_entries, 8)
    return b"Exif\x00\x00" + b"II*\x00" + struct.pack("<I", 8) + ifd0 + b"".join(blocks)


def _dms(value: float) -> list[float]:
    deg = int(value)
    minutes = int((value - deg) * 60)
    return [deg, minutes, round((value - deg - minutes / 60) * 3600, 4)]


def encode_jpeg(pixels: np.ndarray, exif: bytes | None = None, quality: int = 85) -> bytes:
    ok, buf = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    data = buf.tobytes()
    if exif is None:
        return data
    app1 = b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif
    return data[:2] + app1 + data[2:]


def scene(width: int = 640, height: int = 480, seed: int = 0) -> np.ndarray:
    """A textured static background, the same for a given seed."""
    rng = np.random.default_rng(seed)
    small = rng.integers(40, 200, size=(height // 16 + 1, width // 16 + 1), dtype=np.uint8)
    img = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)


def with_animal(background: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """The background with a bright blob in the normalised box [x, y, w, h]."""
    img = background.copy()
    h, w = img.shape[:2]
    x0, y0 = int(box[0] * w), int(box[1] * h)
    x1, y1 = int((box[0] + box[2]) * w), int((box[1] + box[3]) * h)
    img[y0:y1, x0:x1] = 245
    return img


def write_photo(path: Path, pixels: np.ndarray, **exif_kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = pixels.shape[:2]
    path.write_bytes(encode_jpeg(pixels, exif_block(size=(w, h), **exif_kwargs)))
    return path
