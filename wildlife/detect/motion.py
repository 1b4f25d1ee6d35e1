"""The motion baseline: what changed between the photos of one sequence.

Camera traps fire in bursts at a fixed view, so the per-pixel median of a burst is the empty scene and
whatever differs from it moved. Every changed region becomes an ``animal`` detection (motion cannot tell
a deer from a person); its confidence grows with how strongly and how solidly the region changed. A
photo alone in its sequence has nothing to compare with and gets no detections and a note. Long sequences
are compared in windows of neighbours (see ``MotionDetector``), so memory does not grow with their length.

Photos are decoded at 1/4 size (JPEG's DCT scaling: cheap, and plenty for a motion mask).
"""

from __future__ import annotations

import multiprocessing
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import cv2
import numpy as np

from wildlife import parallel
from wildlife.detect import Detection, Result, decode, naming, sequence_of

INFO_BAR_FRACTION = 0.05  # camera-trap info bars (date, temperature) change between frames: ignore them
DIFF_THRESHOLD = 30
MIN_AREA_FRACTION = 0.002
MAX_BOXES = 5


class MotionDetector:
    """The motion baseline over sequences of any length, in bounded memory.

    A sequence is cut into blocks of at most ``block`` photos; each block is compared against the median
    of itself and up to ``margin`` neighbours on each side, so at most ``window`` decoded frames are held at
    once however long the sequence (9,000 photos at one timestamp from a timelapse or a reset clock). A
    sequence of up to ``block`` photos is one block: the median of the whole sequence. Blocks depend only on
    the photo's place in its sequence (``sequence_index`` of ``sequence_size``, set by Stage 1), so results
    do not depend on how the photos are chunked, as long as each chunk brings ``context`` neighbours.
    """

    name = "odin-motion-baseline"
    version = "1.0"
    forks = True  # plain CPU work on files: Stage 1 runs its batches in worker processes, one per core

    def __init__(self, block: int = 48, margin: int = 8):
        self.block, self.margin = block, margin
        self.context = margin  # neighbours of the same sequence a batch needs on each side of its photos
        self.window = block + 2 * margin
        self.max_held = 0  # the most decoded frames held at once so far (for tests and benchmarks)
        self._threads: ThreadPoolExecutor | None = None

    def __getstate__(self) -> dict[str, Any]:
        """What a worker process gets (``parallel.chunk_mapper``): the settings, not this process's threads."""
        return dict(self.__dict__, _threads=None)

    def chunk_key(self, photo: dict[str, Any]) -> Any:
        """Photos with the same key must be detected in one batch: a block of a sequence."""
        index, size = photo["sequence_index"], photo["sequence_size"]
        return sequence_of(photo), index * _blocks(size, self.block) // size

    def detect(self, batch: list[dict[str, Any]]) -> list[Result]:
        results: list[Result | None] = [None] * len(batch)
        by_sequence: dict[Any, dict[int, int]] = defaultdict(dict)  # sequence -> its index -> batch position
        for i, photo in enumerate(batch):
            members = by_sequence[sequence_of(photo)]
            members[photo.get("sequence_index", len(members))] = i
        for members in by_sequence.values():
            size = max(batch[i].get("sequence_size") or 0 for i in members.values()) or max(members) + 1
            self._sequence(batch, members, size, results)
        return [r if r is not None else Result(failure="not processed") for r in results]

    def _sequence(self, batch, members: dict[int, int], size: int, results: list) -> None:
        blocks = _blocks(size, self.block)
        frames: dict[int, np.ndarray] = {}  # batch position -> frame, only the current window's
        failed: set[int] = set()
        for b in sorted({k * blocks // size for k in members}):
            start, end = -(-b * size // blocks), -(-(b + 1) * size // blocks)
            lo, hi = max(0, start - self.margin), min(size, end + self.margin)
            window = [members[k] for k in range(lo, hi) if k in members]
            for i in set(frames) - set(window):
                del frames[i]
            todo = [i for i in window if i not in frames and i not in failed]
            for i, frame in zip(todo, self._decoder().map(_decode_or_failure, [batch[i] for i in todo]), strict=True):
                if isinstance(frame, decode.Undecodable):
                    failed.add(i)
                    results[i] = Result(failure=str(frame))
                else:
                    frames[i] = frame
            self.max_held = max(self.max_held, len(frames))
            targets = {members[k] for k in range(start, end) if k in members}
            with naming(batch[min(targets)]):
                compared = _compare(frames, targets)
            for i in targets - failed:
                results[i] = compared[i]


    def _decoder(self) -> ThreadPoolExecutor:
        """Threads that decode a window's photos on every core (OpenCV's decoder releases the GIL)."""
        if self._threads is None:
            # in a worker process (one per core already) two threads overlap reading with decoding; n workers of
            # n threads each would be n^2 threads on a many-core machine
            threads = 2 if multiprocessing.parent_process() is not None else parallel.workers()
            self._threads = ThreadPoolExecutor(threads, thread_name_prefix="motion-decode")
        return self._threads


def _decode_or_failure(photo: dict[str, Any]) -> np.ndarray | decode.Undecodable:
    try:
        return _decode(photo)
    except decode.Undecodable as exc:
        return exc


def _blocks(size: int, block: int) -> int:
    return max(1, -(-size // block))


def _decode(photo: dict[str, Any]) -> np.ndarray:
    img = decode.read_image(photo, cv2.IMREAD_REDUCED_GRAYSCALE_4)
    return cv2.GaussianBlur(img, (5, 5), 0)


def _compare(frames: dict[int, np.ndarray], targets: set[int]) -> dict[int, Result]:
    """Results for the ``targets`` among ``frames``, against the median of all ``frames``."""
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
        out.update(_compare({i: f for i, f in frames.items() if f.shape == common}, targets))
        return {i: r for i, r in out.items() if i in targets}
    stack = np.stack(list(frames.values()))
    background = np.median(stack, axis=0).astype(np.uint8)
    height, width = background.shape
    bar = int(height * INFO_BAR_FRACTION)
    kernel_open = np.ones((3, 3), np.uint8)
    kernel_close = np.ones((9, 9), np.uint8)
    out = {}
    for i, frame in frames.items():
        if i not in targets:
            continue
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
