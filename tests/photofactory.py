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
    ifd0_extra: list[tuple[int, int, int, bytes]] | None = None,
    exif_extra: list[tuple[int, int, int, bytes]] | None = None,
    gps_entries: list[tuple[int, int, int, bytes]] | None = None,
) -> bytes:
    """An APP1 EXIF payload. ``*_extra`` entries (tag, type, count, value) replace or add tags of IFD0 or the
    Exif IFD; ``gps_entries`` is the GPS IFD as given (for values no receiver writes: 0/0, NaN, 150°)."""
    exif_entries = []
    if when is not None:
        exif_entries.append(_ascii(0x9003, when.strftime("%Y:%m:%d %H:%M:%S")))
    if offset is not None:
        exif_entries.append(_ascii(0x9011, offset))
    if maker_note is not None:
        exif_entries.append((0x927C, 7, len(maker_note), maker_note))
    if size is not None:
        exif_entries += [(0xA002, 4, 1, struct.pack("<I", size[0])), (0xA003, 4, 1, struct.pack("<I", size[1]))]
    exif_entries = _replace(exif_entries, exif_extra)
    if gps is not None and gps_entries is None:
        lat, lon = gps
        gps_entries = [
            _ascii(1, "N" if lat >= 0 else "S"), _rationals(2, _dms(abs(lat))),
            _ascii(3, "E" if lon >= 0 else "W"), _rationals(4, _dms(abs(lon))),
        ]

    def ifd0_entries(exif_at: int, gps_at: int) -> list[tuple[int, int, int, bytes]]:
        entries = [_ascii(0x010F, make), _ascii(0x0110, model), (0x8769, 4, 1, struct.pack("<I", exif_at))]
        if gps_entries is not None:
            entries.append((0x8825, 4, 1, struct.pack("<I", gps_at)))
        return _replace(entries, ifd0_extra)

    # two passes: sizes first, then the real pointers
    exif_at = 8 + len(_ifd(ifd0_entries(0, 0), 8))
    exif = _ifd(exif_entries, exif_at)
    gps_at = exif_at + len(exif)
    blocks = [exif]
    if gps_entries is not None:
        blocks.append(_ifd(gps_entries, gps_at))
    ifd0 = _ifd(ifd0_entries(exif_at, gps_at), 8)
    return b"Exif\x00\x00" + b"II*\x00" + struct.pack("<I", 8) + ifd0 + b"".join(blocks)


def _replace(entries: list[tuple[int, int, int, bytes]],
             extra: list[tuple[int, int, int, bytes]] | None) -> list[tuple[int, int, int, bytes]]:
    if not extra:
        return entries
    tags = {e[0] for e in extra}
    return [e for e in entries if e[0] not in tags] + list(extra)


def raw_rationals(tag: int, pairs: list[tuple[int, int]]) -> tuple[int, int, int, bytes]:
    """A RATIONAL entry with the numerators and denominators as given (0/0 included)."""
    return (tag, 5, len(pairs), b"".join(struct.pack("<II", n, d) for n, d in pairs))


def doubles(tag: int, values: list[float]) -> tuple[int, int, int, bytes]:
    """A DOUBLE entry (TIFF type 12), which can hold NaN and infinity."""
    return (tag, 12, len(values), struct.pack(f"<{len(values)}d", *values))


def ascii_entry(tag: int, text: str) -> tuple[int, int, int, bytes]:
    return _ascii(tag, text)


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


def insert_segments(jpeg: bytes, segments: list[tuple[int, bytes]]) -> bytes:
    """The JPEG with segments (marker, payload) inserted right after its start-of-image marker, in order."""
    raw = b"".join(bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload
                   for marker, payload in segments)
    return jpeg[:2] + raw + jpeg[2:]


XMP_NAMESPACES = {"exif": "http://ns.adobe.com/exif/1.0/", "photoshop": "http://ns.adobe.com/photoshop/1.0/",
                  "xmp": "http://ns.adobe.com/xap/1.0/"}


def xmp_packet(props: dict[str, str], elements: bool = False, namespaces: dict[str, str] | None = None) -> bytes:
    """An APP1 XMP payload (signature + packet) with ``props`` (prefix:Name -> value) on one rdf:Description,
    as attributes (what cameras and Lightroom write) or as elements."""
    ns = XMP_NAMESPACES if namespaces is None else namespaces
    decls = " ".join(f'xmlns:{prefix}="{uri}"' for prefix, uri in ns.items())
    if elements:
        body = "".join(f"<{k}>{v}</{k}>" for k, v in props.items())
        desc = f'<rdf:Description rdf:about="" {decls}>{body}</rdf:Description>'
    else:
        attrs = " ".join(f'{k}="{v}"' for k, v in props.items())
        desc = f'<rdf:Description rdf:about="" {decls} {attrs}/>'
    packet = ('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
              '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
              f'{desc}</rdf:RDF></x:xmpmeta><?xpacket end="w"?>')
    return b"http://ns.adobe.com/xap/1.0/\x00" + packet.encode()


def ciff_app0(when: datetime, make: str = "Canon", model: str = "Canon PowerShot Pro70") -> bytes:
    """An APP0 payload of Canon CIFF, as early PowerShots wrote it (exiftool CanonRaw.pm): header
    ``II`` + length 26 + ``HEAPJPGM`` + version; a root heap holding the ImageProps heap (0x300a) with the
    TimeStamp (0x180e: seconds since 1970 of the camera's local clock, time zone code, info) and MakeModel
    (0x080a). Each heap ends with its directory's offset; entries are (tag, size, offset within the heap)."""
    seconds = int((when - datetime(1970, 1, 1)).total_seconds())
    stamp = struct.pack("<IiI", seconds, 0, 0)
    names = make.encode() + b"\x00" + model.encode() + b"\x00"
    inner = stamp + names
    inner += struct.pack("<H", 2) + struct.pack("<HII", 0x180E, len(stamp), 0) \
        + struct.pack("<HII", 0x080A, len(names), len(stamp)) + b"\x00\x00\x00\x00"
    inner += struct.pack("<I", len(stamp) + len(names))
    root = inner + struct.pack("<H", 1) + struct.pack("<HII", 0x300A, len(inner), 0) + b"\x00\x00\x00\x00"
    root += struct.pack("<I", len(inner))
    header = b"II" + struct.pack("<I", 26) + b"HEAPJPGM" + struct.pack("<I", 0x00010002) + b"\x00" * 8
    return header + root


def olympus_note(utc: datetime, layout: str = "OLYMPUS", settings_as: str = "ifd", at: int = 0) -> bytes:
    """An Olympus maker note whose CameraSettings (0x2020) hold DateTimeUTC (0x0908), laid out as exiftool
    reads it: ``OLYMPUS\\0II\\3\\0`` (IFD at 12) or ``OM SYSTEM\\0\\0\\0II\\3\\0`` (IFD at 16), offsets from the
    note's start; ``OLYMP\\0\\1\\0`` (IFD at 8), offsets from the TIFF header, where the note lies at ``at``.
    ``settings_as``: "ifd" (a pointer of type IFD) or "undef" (the directory inside an UNDEFINED value)."""
    header = {"OLYMPUS": b"OLYMPUS\x00II\x03\x00", "OM SYSTEM": b"OM SYSTEM\x00\x00\x00II\x03\x00",
              "OLYMP": b"OLYMP\x00\x01\x00"}[layout]
    base = at if layout == "OLYMP" else 0
    main_at = base + len(header)
    stamp = _ascii(0x0908, utc.strftime("%Y:%m:%d %H:%M:%S"))
    if settings_as == "undef":
        settings = _ifd([stamp], main_at + 2 + 12 + 4)
        main = _ifd([(0x2020, 7, len(settings), settings)], main_at)
        return header + main
    settings_at = main_at + len(_ifd([(0x2020, 13, 1, b"\x00" * 4)], main_at))
    main = _ifd([(0x2020, 13, 1, struct.pack("<I", settings_at))], main_at)
    return header + main + _ifd([stamp], settings_at)


def tiff_header(width: int, height: int, **exif_kwargs) -> bytes:
    """The header of a little-endian TIFF photo: IFD0 with its size (and the EXIF of ``exif_block``)."""
    size = [(0x0100, 4, 1, struct.pack("<I", width)), (0x0101, 4, 1, struct.pack("<I", height))]
    extra = exif_kwargs.pop("ifd0_extra", None) or []
    size = [entry for entry in size if entry[0] not in {e[0] for e in extra}]
    return exif_block(ifd0_extra=size + extra, **exif_kwargs)[6:]
