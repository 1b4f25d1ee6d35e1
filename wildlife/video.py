"""Videos as media: container metadata (Stage 0), which frames to run (Stage 1), and decoding only those.

Camera traps record MP4/MOV (H.264, MPEG-4) or AVI (MJPEG). Stage 0 reads the container's header with PyAV
(FFmpeg's demuxers), never decoding a frame: creation time, duration, frame rate, frame count, pixel size,
codec and make/model where the container has them. The time is QuickTime/MP4 ``creation_time`` or AVI ``IDIT``
(FFmpeg reports both as ``creation_time``); a trail camera has no idea of time zones and writes its clock's
reading there, so Odin reads it as the camera's wall clock, exactly as a photo's DateTimeOriginal, and the
deployment's clock rule and clockOffset apply as for photos. Without one the file time is used, flagged
``no_exif_time``.

Stage 1 samples frames (``--video-sample``: every N seconds, ``1s`` by default, or every N frames, ``30f``)
and decodes only those: for each one it seeks to the keyframe at or before it and decodes forward to it, so a
sparse sample never decodes the whole video (MegaDetector's video script decodes every frame and keeps every
Nth). A video's frames are numbered from 0 at the first frame; a frame's time is ``frame_number / fps`` after
the video's start, assuming a constant frame rate (as MegaDetector's ``frame_rate`` does).
"""

from __future__ import annotations

import contextlib
import math
import re
import threading
from datetime import datetime
from typing import IO, Any

import numpy as np
import pyarrow as pa

from wildlife.errors import InputError
from wildlife.runinput import RunInput

VIDEO_MIME = {".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime", ".avi": "video/x-msvideo",
              ".3gp": "video/3gpp", ".mkv": "video/x-matroska", ".mts": "video/mp2t"}  # compared lower-case
VIDEO_EXTENSIONS = frozenset(VIDEO_MIME)
DEFAULT_SAMPLE = RunInput.default("video_sample")  # one frame a second
MAX_SAMPLED_FRAMES = 20_000  # per video: 5.5 h at one frame a second; later frames are not run (frames_sampled)

# images.parquet's video columns (null for photos); ``media_type`` is set for every file Odin reads
VIDEO_FIELDS = [
    ("media_type", pa.string()),  # image or video
    ("duration_s", pa.float64()), ("fps", pa.float64()), ("frame_count", pa.int64()), ("codec", pa.string()),
]


class BadVideo(Exception):
    """The video's bytes cannot be used; the message is the reason users see."""


def is_video(relpath: str) -> bool:
    return _ext(relpath) in VIDEO_EXTENSIONS


def media_type(relpath: str) -> str | None:
    """``video`` for a video file name, ``image`` for a photo's, None for other files."""
    from wildlife.stage0 import PHOTO_EXTENSIONS  # noqa: PLC0415 - stage0 imports this module

    ext = _ext(relpath)
    return "video" if ext in VIDEO_EXTENSIONS else "image" if ext in PHOTO_EXTENSIONS else None


def mime(relpath: str) -> str:
    return VIDEO_MIME.get(_ext(relpath), "video/mp4")


def _ext(relpath: str) -> str:
    dot = relpath.rfind(".")
    return relpath[dot:].lower() if dot > relpath.rfind("/") else ""


# --- sampling ---------------------------------------------------------------------------------------------

_SAMPLE = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*([sf])\s*$", re.IGNORECASE)


def parse_sample(spec: str | None) -> tuple[float, str]:
    """``--video-sample`` as (N, 's' or 'f'); ``InputError`` saying how to write it otherwise."""
    match = _SAMPLE.match(spec or "")
    value = float(match.group(1)) if match else 0.0
    unit = match.group(2).lower() if match else ""
    if not match or value <= 0 or (unit == "f" and value != int(value)):
        raise InputError(f"--video-sample {spec!r} is not a sampling interval",
                         hint="Write every N seconds as '1s' or '0.5s', or every N frames as '30f' (a whole "
                              "number of frames, at least 1).")
    return value, unit


def sample_frames(fps: float | None, frame_count: int | None, spec: str = DEFAULT_SAMPLE) -> list[int]:
    """The frame numbers Stage 1 runs: every N frames, or the frame at every N seconds (rounded to the
    nearest frame); at least the first frame of any video with a frame. Empty when the count is unknown."""
    value, unit = parse_sample(spec)
    if not frame_count or frame_count <= 0:
        return []
    if unit == "f":
        step = int(value)
        return list(range(0, frame_count, step))[:MAX_SAMPLED_FRAMES]
    if not fps or fps <= 0:
        return [0]
    out: list[int] = []
    k = 0
    while len(out) < MAX_SAMPLED_FRAMES:
        n = round(k * value * fps)
        if n >= frame_count:
            break
        if not out or n > out[-1]:
            out.append(n)
        k += 1
    return out


def frames_of(row: dict[str, Any], spec: str = DEFAULT_SAMPLE) -> int:
    """How many items a media row is for the detector (cost, ``--max-images``): 1 for a photo, the sampled
    frames for a video (at least 1: a video whose frames cannot be counted still costs its attempt)."""
    if row.get("media_type") != "video" and not is_video(row.get("relpath") or ""):
        return 1
    return max(1, len(sample_frames(row.get("fps"), row.get("frame_count"), spec)))


# --- Stage 0: the container's header ----------------------------------------------------------------------

def read_metadata(f: IO[bytes] | str, relpath: str = "") -> dict[str, Any]:
    """The media-row fields of one video, from its container header (no frame decoded); ``BadVideo`` with
    the reason when FFmpeg cannot open it or it holds no video stream."""
    import av  # noqa: PLC0415 - FFmpeg's libraries load only for runs with videos

    try:
        with av.open(f, mode="r", metadata_errors="replace") as container:
            streams = container.streams.video
            if not streams:
                raise BadVideo("no video stream in the file")
            stream = streams[0]
            out = _stream_fields(container, stream)
            tags = {k.lower(): v for k, v in {**stream.metadata, **container.metadata}.items()}
    except BadVideo:
        raise
    except Exception as exc:  # whatever FFmpeg makes of the bytes is this file's reason
        raise BadVideo(f"cannot read the video container: {_short(exc)}") from exc
    out["format"] = _ext(relpath).lstrip(".") or container.format.name.split(",")[0]
    out["media_type"] = "video"
    out.update(_time_fields(tags))
    out["make"] = _tag(tags, "com.apple.quicktime.make", "make", "imake")
    out["model"] = _tag(tags, "com.apple.quicktime.model", "model", "imodel")
    if out["frame_count"] is None:
        raise BadVideo("the container declares neither a frame count nor a duration: cannot sample its frames")
    return out


def _stream_fields(container, stream) -> dict[str, Any]:
    ctx = stream.codec_context
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else None
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / 1_000_000
    else:
        duration = None
    count = int(stream.frames) if stream.frames else None
    if count is None and duration and fps:
        count = max(1, round(duration * fps))
    if duration is None and count and fps:
        duration = count / fps
    if fps is not None and not (0 < fps < 10_000):
        fps = None
    return {"width": ctx.width or None, "height": ctx.height or None, "fps": fps,
            "duration_s": round(duration, 6) if duration is not None and math.isfinite(duration) else None,
            "frame_count": count, "codec": ctx.name}


def _tag(tags: dict[str, str], *names: str) -> str | None:
    for name in names:
        value = (tags.get(name) or "").strip().strip("\x00")
        if value:
            return value[:200]
    return None


def _time_fields(tags: dict[str, str]) -> dict[str, Any]:
    """``datetime_original`` (EXIF spelling, the camera's wall clock) from ``creation_time`` (MP4/MOV, and
    AVI IDIT as FFmpeg reports it) or an AVI ``date`` (ICRD) that has a time of day; nothing when absent or
    unreadable (a date without a time would put the video at midnight)."""
    for key in ("creation_time", "date"):
        when = _parse_time(tags.get(key))
        if when is not None and when.year > 1904:  # 1904-01-01: QuickTime's zero, "not set"
            return {"datetime_original": when.strftime("%Y:%m:%d %H:%M:%S"),
                    "subsec_time_original": f"{when.microsecond:06d}".rstrip("0") or None}
    return {}


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    text = text.strip().rstrip("\x00").strip()
    for fmt in ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S",
                "%Y-%m-%d %H:%M:%S", "%Y:%m:%d %H:%M:%S", "%a %b %d %H:%M:%S %Y"):  # a date alone is no time
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    return None


def _short(exc: BaseException) -> str:
    text = (getattr(exc, "strerror", None) or str(exc)).strip().splitlines()  # FFmpeg's, without the file object
    return f"{type(exc).__name__}: {(text[-1] if text else '')[:200]}"


# --- Stage 1: decoding the sampled frames ------------------------------------------------------------------

def frame_id(photo_id: str, frame_number: int) -> str:
    """A frame's own key in Stage 1's results: MegaDetector's frame file naming under the video's id."""
    return f"{photo_id}/frame{frame_number:06d}.jpg"


def read_frame(f: IO[bytes] | str, frame_number: int, fps: float | None) -> np.ndarray:
    """One frame as BGR pixels: seek to the keyframe at or before it, decode forward to it. ``BadVideo``
    with the reason when the bytes cannot give it (a truncated file, a broken stream)."""
    import av  # noqa: PLC0415

    try:
        with av.open(f, mode="r", metadata_errors="replace") as container:
            return _decode_at(_Reader(container), frame_number, fps)
    except BadVideo:
        raise
    except Exception as exc:  # whatever FFmpeg makes of the bytes is this frame's reason
        raise BadVideo(f"cannot decode frame {frame_number}: {_short(exc)}") from exc


class _Reader:
    """An open container and where its decoder stands: the last frame decoded (``cursor``), the frames still
    to come from it (``frames``), and ``run``, the most frames a seek has had to decode to reach its target
    (about the keyframe interval, learnt as it goes)."""

    def __init__(self, container, uri: str | bytes | None = None, file: IO[bytes] | None = None):
        self.container, self.uri, self.file = container, uri, file
        self.cursor: int | None = None
        self.frames = None
        self.run = 0

    def close(self) -> None:
        for closable in (self.container, self.file):
            with contextlib.suppress(Exception):  # closing a broken reader: nothing left to save
                if closable is not None:
                    closable.close()


_held = threading.local()  # per decoding thread: the video it read last, still open


def read_frame_at(uri: str | bytes, frame_number: int, fps: float | None) -> np.ndarray:
    """``read_frame`` of the video at ``uri``, kept open in this thread for its next frame: opening an H.264
    file costs FFmpeg more than seeking in it (it decodes a frame to learn the stream), and a video's sampled
    frames come one after another. A frame less than a keyframe interval ahead of the last one is reached by
    decoding on rather than seeking back to its keyframe (what matters for long keyframe intervals). The
    file is closed when the thread reads another video, or by ``release``."""
    import av  # noqa: PLC0415

    from wildlife import fs  # noqa: PLC0415

    reader = getattr(_held, "reader", None)
    if reader is None or reader.uri != uri:
        release()
        f = fs.open_read(uri)  # OSError: the caller's "cannot read file"
        try:
            reader = _Reader(av.open(f, mode="r", metadata_errors="replace"), uri, f)
        except Exception as exc:  # whatever FFmpeg makes of the bytes is this frame's reason
            f.close()
            raise BadVideo(f"cannot decode frame {frame_number}: {_short(exc)}") from exc
        _held.reader = reader
    try:
        return _decode_at(reader, frame_number, fps)
    except Exception as exc:
        release()  # a reader left in an unknown state is not reused
        if isinstance(exc, BadVideo):
            raise
        raise BadVideo(f"cannot decode frame {frame_number}: {_short(exc)}") from exc


def release() -> None:
    """Close the video this thread holds open (``read_frame_at``), if any."""
    reader = getattr(_held, "reader", None)
    _held.reader = None
    if reader is not None:
        reader.close()


def _decode_at(reader: _Reader, frame_number: int, fps: float | None) -> np.ndarray:
    container = reader.container
    stream = container.streams.video[0]
    tb = stream.time_base
    start = stream.start_time or 0
    timed = bool(fps and tb)
    ahead = reader.cursor is not None and 0 < frame_number - reader.cursor <= reader.run
    if reader.frames is None or (not ahead and (frame_number > 0 or reader.cursor is not None)):
        if reader.frames is None:
            stream.thread_type = "SLICE"  # frame threading would hold back each frame after a seek
        if timed and (frame_number > 0 or reader.cursor is not None):
            container.seek(start + int(frame_number / fps / tb), stream=stream, backward=True)
        elif reader.cursor is not None:
            raise BadVideo(f"cannot find frame {frame_number}: the frames carry no timestamps")
        reader.frames, reader.cursor, first = container.decode(stream), None, True
    else:
        first = False
    for n, frame in enumerate(reader.frames):
        if frame.pts is not None and timed:
            index = round(float((frame.pts - start) * tb) * fps)
        elif frame_number == 0 or (reader.cursor is None and not timed):
            index = n
        else:
            raise BadVideo(f"cannot find frame {frame_number}: the frames carry no timestamps")
        if first:
            reader.run, first = max(reader.run, frame_number - index), False  # the keyframe we landed on
        reader.cursor = index
        if index >= frame_number:
            return frame.to_ndarray(format="bgr24")
    reader.frames = None
    raise BadVideo(f"frame {frame_number} is past the video's last decodable frame (truncated file?)")


def sampled_count(uri: str | bytes, spec: str | None) -> int:
    """``frames_of`` for a video file not read yet (``--max-images`` at listing time): its header is read;
    a file that cannot be read counts as 1 (Stage 0 then fails it with the reason)."""
    from wildlife import fs  # noqa: PLC0415

    try:
        with fs.open_read(uri) as f:
            found = read_metadata(f, uri if isinstance(uri, str) else "")
    except (BadVideo, OSError):
        return 1
    return frames_of(found, spec or DEFAULT_SAMPLE)
