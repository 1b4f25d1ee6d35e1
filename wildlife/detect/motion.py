"""The motion baseline: what changed between the photos of one sequence.

Camera traps fire in bursts at a fixed view, so the per-pixel median of a burst is the empty scene and
whatever differs from it moved. Every changed region becomes an ``animal`` detection (motion cannot tell
a deer from a person); its confidence grows with how strongly and how solidly the region changed. A
photo alone in its sequence has nothing to compare with and gets no detections and a note.

Photos are decoded at 1/4 size (JPEG's DCT scaling: cheap, and plenty for a motion mask).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import cv2
import numpy as np

from wildlife import fs
from wildlife.detect import Detection, Result

INFO_BAR_FRACTION = 0.05  # camera-trap info bars (date, temperature) change between frames: ignore them
DIFF_THRESHOLD = 30
MIN_AREA_FRACTION = 0.002
MAX_BOXES = 5


class MotionDetector:
    name = "odin-motion-baseline"
    version = "1.0"
    needs_whole_sequences = True

    def detect(self, batch: list[dict[str, Any]]) -> list[Result]:
        results: list[Result | None] = [None] * len(batch)
        by_sequence: dict[Any, list[int]] = defaultdict(list)
        for i, photo in enumerate(batch):
            by_sequence[photo.get("sequence_id") or photo["photo_id"]].append(i)
        for members in by_sequence.values():
            frames: dict[int, np.ndarray] = {}
            for i in members:
                frame = _decode(batch[i]["uri"])
                if frame is None:
                    results[i] = Result(failure="cannot decode image data")
                else:
                    frames[i] = frame
            for i, res in _compare(frames).items():
                results[i] = res
        return [r if r is not None else Result(failure="not processed") for r in results]


def _decode(uri: str) -> np.ndarray | None:
    try:
        data = np.frombuffer(fs.read_bytes(uri), dtype=np.uint8)
    except OSError:
        return None
    img = cv2.imdecode(data, cv2.IMREAD_REDUCED_GRAYSCALE_4)
    if img is None:
        return None
    return cv2.GaussianBlur(img, (5, 5), 0)


def _compare(frames: dict[int, np.ndarray]) -> dict[int, Result]:
    if not frames:
        return {}
    if len(frames) == 1:
        (i,) = frames
        return {i: Result(note="alone in its sequence: nothing to compare with", assessed=False)}
    shapes = {f.shape for f in frames.values()}
    if len(shapes) > 1:  # a mixed burst (resized copies?): compare only within the most common size
        common = max(shapes, key=lambda s: sum(f.shape == s for f in frames.values()))
        out = {i: Result(note="size differs from the rest of its sequence", assessed=False) for i, f in frames.items()
               if f.shape != common}
        out.update(_compare({i: f for i, f in frames.items() if f.shape == common}))
        return out
    stack = np.stack(list(frames.values()))
    background = np.median(stack, axis=0).astype(np.uint8)
    height, width = background.shape
    bar = int(height * INFO_BAR_FRACTION)
    kernel_open = np.ones((3, 3), np.uint8)
    kernel_close = np.ones((9, 9), np.uint8)
    out = {}
    for i, frame in frames.items():
        diff = cv2.absdiff(frame, background)
        diff[:bar] = 0
        diff[height - bar:] = 0
        mask = (diff > DIFF_THRESHOLD).astype(np.uint8)
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel_open)
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel_close)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        boxes = []
        for contour in contours:
            x, y, w, h = cv2.boundingRect(contour)
            if w * h < MIN_AREA_FRACTION * width * height:
                continue
            region = mask[y:y + h, x:x + w]
            solidity = float(region.mean())
            strength = min(1.0, float(diff[y:y + h, x:x + w][region > 0].mean()) / 100.0)
            conf = round(min(0.99, 0.25 + 0.4 * solidity + 0.35 * strength), 3)
            boxes.append(Detection("animal", conf, (
                round(x / width, 4), round(y / height, 4), round(w / width, 4), round(h / height, 4))))
        boxes.sort(key=lambda d: -d.conf)
        out[i] = Result(detections=boxes[:MAX_BOXES])
    return out
