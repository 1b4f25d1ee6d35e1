"""Read what Stage 0 needs from a photo's header without decoding a single pixel.

A camera-trap JPEG keeps everything of interest in its first few kilobytes: the APP1 EXIF block (a small
TIFF structure) and the SOF marker with the pixel size. We read those bytes, walk the TIFF directories for
the tags below, and check the file's last bytes for the end-of-image marker to catch truncated copies.
This is what makes Stage 0 run at thousands of photos per second (see ``bench/stage0.py``).
"""

from __future__ import annotations

import struct
from typing import IO, Any

from wildlife import reconyx

HEAD_BYTES = 64 * 1024
DEFAULT_MAX_MEGAPIXELS = 250.0  # the largest camera-trap sensors are ~40 MP; more is a corrupt or hostile header


class BadPhoto(Exception):
    """The file is not a usable photo; the message is the reason users see in ``images.parquet``."""


# IFD0 / IFD1 tags
_MAKE, _MODEL, _MODIFY_DATE = 0x010F, 0x0110, 0x0132
_WIDTH, _HEIGHT = 0x0100, 0x0101
_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825
# Exif IFD tags
_DATETIME_ORIGINAL, _OFFSET_TIME_ORIGINAL, _SUBSEC_ORIGINAL = 0x9003, 0x9011, 0x9291
_MAKER_NOTE, _BODY_SERIAL = 0x927C, 0xA431
_PIXEL_X, _PIXEL_Y = 0xA002, 0xA003

_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8}
_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def read_header(f: IO[bytes], size: int, max_megapixels: float = DEFAULT_MAX_MEGAPIXELS) -> dict[str, Any]:
    """Parse a photo's header. Returns a flat dict of fields; raises ``BadPhoto`` with a reason."""
    if size == 0:
        raise BadPhoto("empty file (0 bytes)")
    head = f.read(HEAD_BYTES)
    if head[:3] == b"\xff\xd8\xff":
        out = _read_jpeg(f, head, size)
    elif head[:8] == b"\x89PNG\r\n\x1a\n":
        out = _read_png(head)
    elif head[:4] in (b"II*\x00", b"MM\x00*"):
        out = {"format": "tiff"}
        out.update(_read_tiff(_Block(head, f, 0), top_level=True))
    else:
        raise BadPhoto(_describe_unknown(head))
    width, height = out.get("width"), out.get("height")
    if width and height and width * height > max_megapixels * 1e6:
        raise BadPhoto(
            f"declared size {width}x{height} px exceeds the {max_megapixels:g} MP limit "
            "(a decompression bomb or a corrupt header)"
        )
    return out


def _describe_unknown(head: bytes) -> str:
    sample = head[:512]
    if sample and all(32 <= b < 127 or b in (9, 10, 13) for b in sample):
        return f"not an image: the file holds text ({sample[:24]!r}...)"
    return f"not an image: unknown file signature {head[:4].hex(' ')}"


class _Block:
    """Random access over a byte range of the file, served from the bytes already read when possible."""

    def __init__(self, head: bytes, f: IO[bytes], base: int, limit: int | None = None):
        self.head, self.f, self.base, self.limit = head, f, base, limit

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0 or (self.limit is not None and offset + length > self.limit):
            raise BadPhoto("corrupt EXIF: a directory points outside its block")
        start = self.base + offset
        if start + length <= len(self.head):
            return self.head[start:start + length]
        self.f.seek(start)
        data = self.f.read(length)
        if len(data) != length:
            raise BadPhoto("corrupt EXIF: a directory points past the end of the file")
        return data


def _read_jpeg(f: IO[bytes], head: bytes, size: int) -> dict[str, Any]:
    out: dict[str, Any] = {"format": "jpeg"}
    pos = 2
    buf = head
    while True:
        if pos + 4 > len(buf):
            f.seek(pos)
            buf = b"\x00" * pos + f.read(4096)  # keep absolute offsets valid
            if pos + 4 > len(buf):
                raise BadPhoto("truncated JPEG: the file ends inside its header")
        if buf[pos] != 0xFF:
            raise BadPhoto(f"corrupt JPEG: expected a marker at byte {pos}")
        marker = buf[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xDA or marker == 0xD9:  # start of scan / end of image: the header is over
            break
        (length,) = struct.unpack_from(">H", buf, pos + 2)
        seg_start = pos + 4
        if marker == 0xE1 and "exif_seen" not in out:
            segment = _Block(buf, f, seg_start).read(0, length - 2)
            if segment[:6] == b"Exif\x00\x00":
                out["exif_seen"] = True
                tiff = segment[6:]
                try:
                    out.update(_read_tiff(_Block(tiff, f, 0, limit=len(tiff)), top_level=False))
                except (BadPhoto, struct.error) as exc:  # the pixels may still be fine: keep the photo
                    out["exif_error"] = str(exc) if isinstance(exc, BadPhoto) else "corrupt EXIF"
        elif marker in _SOF_MARKERS:
            sof = _Block(buf, f, seg_start).read(0, 5)
            height, width = struct.unpack_from(">HH", sof, 1)
            out["height"], out["width"] = height, width
            break
        pos = seg_start + length - 2
        if pos >= size:
            raise BadPhoto("truncated JPEG: the file ends inside its header")
    out.pop("exif_seen", None)
    if "width" not in out:
        raise BadPhoto("corrupt JPEG: no frame header (SOF) before the image data")
    f.seek(max(0, size - 2))
    if f.read(2) != b"\xff\xd9":
        f.seek(max(0, size - 4096))  # some cameras pad after the end-of-image marker
        if b"\xff\xd9" not in f.read(4096):
            raise BadPhoto("truncated JPEG: no end-of-image marker (an incomplete copy?)")
    return out


def _read_png(head: bytes) -> dict[str, Any]:
    if head[12:16] != b"IHDR":
        raise BadPhoto("corrupt PNG: no IHDR chunk")
    width, height = struct.unpack_from(">II", head, 16)
    return {"format": "png", "width": width, "height": height}


def _read_tiff(block: _Block, top_level: bool) -> dict[str, Any]:
    order = block.read(0, 2)
    if order == b"II":
        e = "<"
    elif order == b"MM":
        e = ">"
    else:
        raise BadPhoto("corrupt EXIF: bad byte-order mark")
    (ifd0,) = struct.unpack(e + "I", block.read(4, 4))
    out: dict[str, Any] = {}
    tags0 = _read_ifd(block, e, ifd0)
    _copy_strings(out, tags0, {_MAKE: "make", _MODEL: "model", _MODIFY_DATE: "modify_date"})
    if top_level and _WIDTH in tags0 and _HEIGHT in tags0:  # a TIFF photo: its own size lives in IFD0
        out["width"], out["height"] = int(tags0[_WIDTH][0]), int(tags0[_HEIGHT][0])
    if _EXIF_IFD in tags0:
        exif = _read_ifd(block, e, int(tags0[_EXIF_IFD][0]))
        _copy_strings(out, exif, {
            _DATETIME_ORIGINAL: "datetime_original",
            _OFFSET_TIME_ORIGINAL: "offset_time_original",
            _SUBSEC_ORIGINAL: "subsec_time_original",
            _BODY_SERIAL: "serial_number",
        })
        if _PIXEL_X in exif and _PIXEL_Y in exif:
            out["exif_width"], out["exif_height"] = int(exif[_PIXEL_X][0]), int(exif[_PIXEL_Y][0])
        if _MAKER_NOTE in exif:
            out.update(reconyx.parse(exif[_MAKER_NOTE], e))
    if _GPS_IFD in tags0:
        out.update(_gps(_read_ifd(block, e, int(tags0[_GPS_IFD][0]))))
    return out


def _read_ifd(block: _Block, e: str, offset: int) -> dict[int, Any]:
    """Tags of one directory; values are tuples of numbers, ``bytes`` for ASCII/UNDEFINED."""
    (count,) = struct.unpack(e + "H", block.read(offset, 2))
    if count > 1000:
        raise BadPhoto("corrupt EXIF: implausible directory size")
    raw = block.read(offset + 2, count * 12)
    tags: dict[int, Any] = {}
    for i in range(count):
        tag, typ, n = struct.unpack_from(e + "HHI", raw, i * 12)
        size = _TYPE_SIZES.get(typ)
        if size is None:
            continue
        nbytes = size * n
        if nbytes <= 4:
            data = raw[i * 12 + 8:i * 12 + 8 + nbytes]
        elif nbytes > 1 << 20:
            continue
        else:
            (ptr,) = struct.unpack_from(e + "I", raw, i * 12 + 8)
            try:
                data = block.read(ptr, nbytes)
            except BadPhoto:
                continue  # one broken tag value does not spoil the others
        tags[tag] = _decode(typ, n, data, e)
    return tags


def _decode(typ: int, n: int, data: bytes, e: str) -> Any:
    if typ in (1, 2, 6, 7):
        return data
    if typ in (5, 10):
        fmt = "i" if typ == 10 else "I"
        vals = struct.unpack(f"{e}{2 * n}{fmt}", data)
        return tuple(vals[i] / vals[i + 1] if vals[i + 1] else 0.0 for i in range(0, 2 * n, 2))
    fmt = {3: "H", 4: "I", 8: "h", 9: "i", 11: "f", 12: "d"}[typ]
    return struct.unpack(f"{e}{n}{fmt}", data)


def _text(value: Any) -> str | None:
    if not isinstance(value, bytes):
        return None
    text = value.split(b"\x00", 1)[0].decode("utf-8", "replace").strip()
    return text or None


def _copy_strings(out: dict[str, Any], tags: dict[int, Any], names: dict[int, str]) -> None:
    for tag, name in names.items():
        if tag in tags:
            text = _text(tags[tag])
            if text:
                out[name] = text


def _gps(tags: dict[int, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for ref_tag, val_tag, name, negative in ((1, 2, "gps_latitude", b"S"), (3, 4, "gps_longitude", b"W")):
        val = tags.get(val_tag)
        if isinstance(val, tuple) and len(val) == 3:
            deg = val[0] + val[1] / 60 + val[2] / 3600
            ref = tags.get(ref_tag, b"")
            out[name] = -deg if isinstance(ref, bytes) and ref[:1] == negative else deg
    alt = tags.get(6)
    if isinstance(alt, tuple) and alt:
        below = tags.get(5, b"\x00")
        out["gps_altitude"] = -alt[0] if isinstance(below, bytes) and below[:1] == b"\x01" else alt[0]
    return out
