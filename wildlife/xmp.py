"""XMP packets (a JPEG APP1 segment that starts ``http://ns.adobe.com/xap/1.0/\\0``): the capture time.

Read when EXIF has no DateTimeOriginal, in this order: ``exif:DateTimeOriginal``
(namespace http://ns.adobe.com/exif/1.0/), ``photoshop:DateCreated`` (http://ns.adobe.com/photoshop/1.0/,
the IPTC date created), ``xmp:CreateDate`` (http://ns.adobe.com/xap/1.0/). The prefix is whatever the
packet binds to the namespace; a property is an attribute (``exif:DateTimeOriginal="..."``) or an element
(``<exif:DateTimeOriginal>...</exif:DateTimeOriginal>``). Values are XMP dates, ISO 8601's
``YYYY-MM-DDThh:mm[:ss[.s]][TZD]``; a date without a time of day says nothing about the hour and is not used.

No XML parser reads the packet: bounded regular expressions find the few properties, so no entity or
nesting trick in a hostile packet can make it expand or recurse.
"""

from __future__ import annotations

import re

SIGNATURE = b"http://ns.adobe.com/xap/1.0/\x00"
PROPERTIES = (
    ("http://ns.adobe.com/exif/1.0/", "DateTimeOriginal"),
    ("http://ns.adobe.com/photoshop/1.0/", "DateCreated"),
    ("http://ns.adobe.com/xap/1.0/", "CreateDate"),
)
_NAMESPACE = re.compile(r"""xmlns:([A-Za-z_][\w.-]{0,64})\s*=\s*(["'])([^"'<>]{0,256})\2""")
_DATE = re.compile(
    r"(\d{4})[-:](\d\d)[-:](\d\d)[T ](\d\d):(\d\d)(?::(\d\d)(?:[.,](\d{1,9}))?)?\s*(Z|[+-]\d\d:?\d\d)?$", re.ASCII)


def capture_time(packet: bytes) -> dict[str, str | None]:
    """``{"xmp_datetime": "YYYY:MM:DD HH:MM:SS", "xmp_subsec", "xmp_offset", "xmp_property"}``, or {}."""
    text = packet.decode("utf-8", "replace")
    prefixes: dict[str, list[str]] = {}
    for m in _NAMESPACE.finditer(text):
        prefixes.setdefault(m.group(3), []).append(m.group(1))
    for uri, name in PROPERTIES:
        for prefix in prefixes.get(uri, ()):
            found = _when(_value(text, f"{prefix}:{name}"))
            if found:
                return {**found, "xmp_property": f"{prefix}:{name}"}
    return {}


def _value(text: str, qname: str) -> str | None:
    name = re.escape(qname)
    m = (re.search(rf"""(?<![\w:.-]){name}\s*=\s*(["'])([^"'<>]{{0,64}})\1""", text)
         or re.search(rf"<{name}(?:\s[^<>]{{0,256}})?>\s*([^<>]{{0,64}}?)\s*</{name}>", text))
    return m.group(m.lastindex).strip() if m else None


def _when(value: str | None) -> dict[str, str | None] | None:
    m = _DATE.match(value or "")
    if not m:
        return None
    year, month, day, hour, minute, second, fraction, zone = m.groups()
    offset = None
    if zone == "Z":
        offset = "+00:00"
    elif zone:
        digits = zone[1:].replace(":", "")
        offset = f"{zone[0]}{digits[:2]}:{digits[2:]}"
    return {"xmp_datetime": f"{year}:{month}:{day} {hour}:{minute}:{second or '00'}",
            "xmp_subsec": fraction, "xmp_offset": offset}
