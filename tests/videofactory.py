"""Camera-trap videos made by the tests: OpenCV's MPEG-4 and MJPEG writers, PyAV's H.264, with frame n painted
grey level 20 + 2n, so a decoded frame says which one it is; a cut copy stands for a card pulled mid-write."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest

W, H, FPS, N = 160, 120, 30, 90  # three seconds


def frame(n: int) -> np.ndarray:
    return np.full((H, W, 3), 20 + 2 * n, np.uint8)


def scene(n: int) -> np.ndarray:
    """A fixed scene with an "animal" in the middle second only (for the motion baseline)."""
    img = np.full((H, W, 3), 90, np.uint8)
    if 30 <= n < 60:
        cv2.rectangle(img, (60, 50), (110, 90), (250, 250, 250), -1)
    return img


def cv_video(path: Path, fourcc: str, n: int = N, paint=frame) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), FPS, (W, H))
    for i in range(n):
        writer.write(paint(i))
    writer.release()
    return path


def av_video(path: Path, when: str | None = "2024-05-01T06:30:00.000000Z", n: int = N, gop: int = 12,
             make: str | None = None, paint=frame) -> Path:
    try:
        av.codec.Codec("libx264", "w")
    except Exception:  # noqa: BLE001 - an FFmpeg build without libx264
        pytest.skip("PyAV's FFmpeg has no libx264 encoder")
    with av.open(str(path), "w") as container:
        if when:
            container.metadata["creation_time"] = when
        if make:
            container.metadata["make"] = make
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.codec_context.gop_size = gop
        for i in range(n):
            for packet in stream.encode(av.VideoFrame.from_ndarray(paint(i), format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def truncated(src: Path, dst: Path, keep: float = 0.5) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[:int(len(data) * keep)])
    return dst


def clips(folder: Path) -> dict[str, Path]:
    """One video of each kind the tests read, and two cut ones."""
    out = {"mp4v": cv_video(folder / "mp4v.mp4", "mp4v"), "mjpg": cv_video(folder / "mjpg.avi", "MJPG"),
           "h264": av_video(folder / "h264.mp4"), "mov": av_video(folder / "h264.mov", make="Browning")}
    out["cut_mp4"] = truncated(out["h264"], folder / "cut.mp4")
    out["cut_avi"] = truncated(out["mjpg"], folder / "cut.avi")
    return out
