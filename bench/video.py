#!/usr/bin/env python3
"""Sampled video frames per second: Odin's Stage 1 next to a MegaDetector-equivalent loop, same videos, same
detector.

    python bench/video.py [--seconds 20] [--videos 2] [--sample 1s] [--repeats 2]

(a) reference: what MegaDetector's video script does (``video_utils.video_to_frames`` with
    ``every_n_frames``): OpenCV's ``VideoCapture.read()`` decodes every frame, every Nth is kept and run through
    the detector;
(b) Odin: ``stage1.detect`` over the videos' sampled frames (``video_results.frame_items``): each sampled frame
    is decoded by seeking to the keyframe before it and decoding forward (``video.read_frame``), in the
    engine's decode thread pool, batched and checkpointed as in a run.

Both run the same detector: the engine over a tiny random-weight YOLOv5 (width 0.125, 192 px input), so the
model costs a few milliseconds a frame (printed) and the ratio measures decoding, which is what sampling changes. The
videos are generated: 30 fps, 1280x720, a textured scene with a moving blob, MPEG-4 Part 2 written by OpenCV
(``mp4v``, a keyframe every 12 frames, OpenCV's default) and H.264 written by PyAV with a keyframe every
second (typical of trail cameras) and every 250 frames (x264's default, the hardest case for seeking).
Rows: frames/s of each (best of ``--repeats`` alternating runs) and the speed-up, with the detector, and
decoding only (decode + letterbox, no model: the part sampling changes). Numbers on a shared machine are
indicative only.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import av
import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from wildlife import stage1, video, video_results  # noqa: E402
from wildlife.detect import engine, yolo  # noqa: E402

SIZE, FPS = (1280, 720), 30  # 720p: the smaller of trail cameras' video sizes
INPUT = 192  # the tiny detector's input: a few ms a frame, as MegaDetector on a GPU, so decoding shows


def paint(i: int, background: np.ndarray) -> np.ndarray:
    img = background.copy()
    x = (i * 7) % (SIZE[0] - 200)
    cv2.ellipse(img, (x + 100, 300), (90, 50), 0, 0, 360, (30, 35, 40), -1)
    return img


def background() -> np.ndarray:
    rng = np.random.default_rng(3)
    small = rng.integers(40, 200, (SIZE[1] // 8, SIZE[0] // 8, 3), dtype=np.uint8)
    return cv2.GaussianBlur(cv2.resize(small, SIZE, interpolation=cv2.INTER_CUBIC), (5, 5), 0)


def write_cv(path: Path, frames: int) -> None:
    bg = background()
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, SIZE)
    for i in range(frames):
        writer.write(paint(i, bg))
    writer.release()


def write_h264(path: Path, frames: int, gop: int) -> None:
    bg = background()
    with av.open(str(path), "w") as container:
        container.metadata["creation_time"] = "2024-05-01T06:30:00.000000Z"
        stream = container.add_stream("libx264", rate=FPS, options={"preset": "veryfast", "crf": "28"})
        stream.width, stream.height, stream.pix_fmt = *SIZE, "yuv420p"
        stream.codec_context.gop_size = gop
        for i in range(frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(paint(i, bg), format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def detector() -> engine.Engine:
    import torch  # noqa: PLC0415

    torch.manual_seed(0)
    torch.set_num_threads(1)  # both loops alike; on a shared machine more threads only add noise
    model = yolo.YoloModel(dict(yolo.p5(3, 0.33, 0.125), names=["animal", "person", "vehicle"]))
    side = engine.Sidecar(name="tiny-yolo", version="random", input_size=INPUT, stride=32)
    return engine.Engine(engine.TorchBackend(model), side)


class NullBackend:
    """No model: an empty output per image, so the rows "decoding only" time decode, letterbox and the rest."""

    device = "cpu"

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return np.zeros((len(batch), 1, 8), np.float32)


def decode_only(det: engine.Engine) -> engine.Engine:
    return engine.Engine(NullBackend(), det.sidecar)


def reference(paths: list[Path], every_n: int, det: engine.Engine) -> int:
    """MegaDetector's loop: decode every frame with OpenCV, keep every Nth, run the detector on it."""
    frames = 0
    size, stride = det.sidecar.input_size, det.sidecar.stride
    for path in paths:
        cap = cv2.VideoCapture(str(path))
        n = 0
        while True:
            ok, img = cap.read()
            if not ok:
                break
            if n % every_n == 0:
                padded, ratio, pad = engine.letterbox(img, size, stride)
                out = det.backend(engine.to_tensor([padded]))
                engine.to_detections(engine.postprocess(out[0], det.sidecar.layout), ratio, pad, img.shape[:2],
                                     det.sidecar.classes)
                frames += 1
            n += 1
        cap.release()
    return frames


def odin(paths: list[Path], spec: str, det: engine.Engine, parts: Path) -> int:
    """Stage 1 as in a run: the videos' sampled frames, decoded by seeking, through the engine, checkpointed."""
    items = []
    for i, path in enumerate(paths):
        meta = video.read_metadata(str(path), path.name)
        items.append(dict(meta, photo_id=f"v{i}", uri=str(path), sequence_id=f"s{i}", status="ok"))
    items = video_results.frame_items(items, spec)
    results, _ = stage1.detect(items, det, str(parts), every=500)
    failed = [f for f in results.column("failure").to_pylist() if f]
    if failed:
        raise SystemExit(f"Odin failed on {len(failed)} frames: {failed[:2]}")
    return results.num_rows


def model_cost(det: engine.Engine) -> float:
    """The detector's own time per frame (letterboxed 720p frame, batch 1), after a warm-up: ms."""
    x = engine.to_tensor([engine.letterbox(np.zeros((SIZE[1], SIZE[0], 3), np.uint8), INPUT, 32)[0]])
    det.backend(x)
    t0 = time.perf_counter()
    for _ in range(20):
        det.backend(x)
    return (time.perf_counter() - t0) / 20 * 1000


def timed(fn, *args) -> tuple[int, float]:
    t0 = time.perf_counter()
    n = fn(*args)
    return n, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=20, help="length of each generated video")
    parser.add_argument("--videos", type=int, default=2, help="videos per codec")
    parser.add_argument("--sample", default="1s", help="Odin's --video-sample (the reference keeps every N frames)")
    parser.add_argument("--repeats", type=int, default=2, help="timings per loop and row; the best is shown")
    args = parser.parse_args()
    value, unit = video.parse_sample(args.sample)
    every_n = round(value * FPS) if unit == "s" else int(value)
    det = detector()
    rows = []
    with tempfile.TemporaryDirectory(prefix="odin-bench-video-") as tmp:
        folder = Path(tmp)
        kinds = {"mpeg4 (mp4v), keyframe every 12": (lambda p: write_cv(p, args.seconds * FPS), 12),
                 "h264, keyframe every 30 (1 s)": (lambda p: write_h264(p, args.seconds * FPS, 30), 30),
                 "h264, keyframe every 250": (lambda p: write_h264(p, args.seconds * FPS, 250), 250)}
        model_ms = model_cost(det)
        for k, (label, (write, gop)) in enumerate(kinds.items()):
            paths = [folder / f"{k}-{i}.mp4" for i in range(args.videos)]
            for p in paths:
                write(p)
            odin(paths[:1], args.sample, det, folder / f"warm{k}")  # first calls: lazy set-up
            for what, model in (("with the detector", det), ("decoding only", decode_only(det))):
                ref_s = odin_s = float("inf")
                for r in range(args.repeats):  # alternating, best of each: the least disturbed by other load
                    ref_n, took = timed(reference, paths, every_n, model)
                    ref_s = min(ref_s, took)
                    odin_n, took = timed(odin, paths, args.sample, model, folder / f"parts{k}-{what}-{r}")
                    odin_s = min(odin_s, took)
                assert odin_n == ref_n, (odin_n, ref_n)
                rows.append((label, what, ref_n, ref_n / ref_s, odin_n / odin_s, ref_s / odin_s, gop))
    print(f"\nSampled frames/s, {args.videos} x {args.seconds} s videos per row, 30 fps {SIZE[0]}x{SIZE[1]}, "
          f"--video-sample {args.sample} (reference: every {every_n}th frame). Busy shared machine: indicative.\n")
    print(f"{'video':<34} {'':<18} {'frames':>6} {'MD-equivalent f/s':>18} {'Odin f/s':>9} {'speed-up':>9}")
    for label, what, n, ref, odn, speed, _ in rows:
        print(f"{label:<34} {what:<18} {n:>6} {ref:>18.1f} {odn:>9.1f} {speed:>8.2f}x")
    print(f"\nThe detector alone: {model_ms:.1f} ms a frame (same run). MD-equivalent decodes {every_n} frames per "
          "sampled frame; Odin decodes from the keyframe before it (or on from the previous sample when that is "
          "nearer): about 1 + (n mod keyframe interval).")


if __name__ == "__main__":
    main()
