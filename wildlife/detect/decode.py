"""Reading one photo's pixels for Stage 1: the boundary between a photo's bytes and the detectors.

Stage 0 read each header, but the file may have changed since (emptied, replaced, grown to gigabytes), so
the bytes are checked again here before any pixel is decoded: the file's size against a cap, and the
header's pixel size against the run's megapixel limit (the same rule as Stage 0's, ``exif.read_header``).
Whatever goes wrong while reading and decoding one file's bytes becomes that photo's failure, with the
cause in its reason; it never stops the run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from wildlife import exif, fs, video

MAX_FILE_BYTES = 512 * 2**20  # camera-trap JPEGs are under 20 MB; a file this big is not a photo to decode


class Undecodable(Exception):
    """The photo's bytes cannot be decoded; the message is the failure reason users see."""


def read_image(photo: dict[str, Any], flag: int | Callable[[int, int], int]) -> np.ndarray:
    """The photo's pixels decoded with the OpenCV ``flag``, or ``Undecodable`` with the reason.

    ``flag`` may be a function of the pixel size (width, height) the file's header declares now, which
    may differ from what Stage 0 read.
    """
    if photo.get("frame_number") is not None:  # a video's sampled frame (``wildlife.video``)
        return _video_frame(photo, flag)
    limit = photo.get("max_megapixels") or exif.DEFAULT_MAX_MEGAPIXELS
    try:
        with fs.open_read(photo["uri"]) as f:
            size = f.seek(0, 2)
            if size > MAX_FILE_BYTES:
                raise Undecodable(f"file is {size / 2**20:.0f} MiB, over the {MAX_FILE_BYTES / 2**20:.0f} MiB "
                                  "limit for decoding (changed since Stage 0?)")
            f.seek(0)
            header = exif.read_header(f, size, limit)
            f.seek(0)
            data = f.read()
        if callable(flag):
            flag = flag(*(header.get(k) or photo.get(k) or 0 for k in ("width", "height")))
        img = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    except Undecodable:
        raise
    except exif.BadPhoto as exc:
        raise Undecodable(str(exc)) from exc
    except OSError as exc:
        raise Undecodable(f"cannot read file: {exc.strerror or exc}") from exc
    except (cv2.error, MemoryError, ValueError) as exc:
        raise Undecodable(f"cannot decode image data: {type(exc).__name__}: {_first_line(exc)}") from exc
    if img is None:
        raise Undecodable("cannot decode image data")
    return img


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[-1] if text else "")[:200]


_REDUCED = {cv2.IMREAD_REDUCED_GRAYSCALE_2: 2, cv2.IMREAD_REDUCED_COLOR_2: 2, cv2.IMREAD_REDUCED_GRAYSCALE_4: 4,
            cv2.IMREAD_REDUCED_COLOR_4: 4, cv2.IMREAD_REDUCED_GRAYSCALE_8: 8, cv2.IMREAD_REDUCED_COLOR_8: 8}
_GRAY = {cv2.IMREAD_GRAYSCALE, cv2.IMREAD_REDUCED_GRAYSCALE_2, cv2.IMREAD_REDUCED_GRAYSCALE_4,
         cv2.IMREAD_REDUCED_GRAYSCALE_8}


def _video_frame(photo: dict[str, Any], flag: int | Callable[[int, int], int]) -> np.ndarray:
    """A video frame's pixels as the OpenCV ``flag`` would give a photo's (grey, reduced), or ``Undecodable``."""
    try:
        img = video.read_frame_at(photo["uri"], photo["frame_number"], photo.get("fps"))
    except video.BadVideo as exc:
        raise Undecodable(str(exc)) from exc
    except OSError as exc:
        raise Undecodable(f"cannot read file: {exc.strerror or exc}") from exc
    if callable(flag):
        flag = flag(img.shape[1], img.shape[0])
    if flag in _GRAY:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    factor = _REDUCED.get(flag, 1)
    if factor > 1:
        img = cv2.resize(img, (max(1, img.shape[1] // factor), max(1, img.shape[0] // factor)),
                         interpolation=cv2.INTER_AREA)
    return img
