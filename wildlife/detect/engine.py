"""The detection engine: decode in a thread pool while the model runs, letterbox, batch, NMS, map back.

Preprocessing follows MegaDetector: the long side scaled to the model's input size (1280 for MDv5), the
short side padded (grey 114) to a multiple of the stride, so a 4:3 photo becomes 1280x960, not 1280x1280.
Photos at least twice the input size are decoded at 1/2 or 1/4 size by the JPEG decoder itself (DCT
scaling), which is much cheaper and loses nothing the resize would keep. Boxes come back normalised to the
original photo, [x, y, width, height] from the top left, MegaDetector's categories 1/2/3.
"""

from __future__ import annotations

import json
import math
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from wildlife.detect import Detection, Result, decode, naming
from wildlife.detect.backends import OnnxBackend, TorchBackend  # noqa: F401 - their home before backends.py

MD_CLASSES = {"1": "animal", "2": "person", "3": "vehicle"}


@dataclass
class Sidecar:
    """How to run a YOLO-style ONNX model: ``<model>.json`` beside ``<model>.onnx``."""

    name: str = "yolo-onnx"
    version: str = "unknown"
    input_size: int = 1280
    stride: int = 64
    layout: str = "v5"  # v5: (batch, boxes, 5+nc) with objectness; v8: (batch, 4+nc, boxes) without
    classes: dict[str, str] = field(default_factory=lambda: dict(MD_CLASSES))
    thresholds: dict[str, float] = field(default_factory=lambda: {"typical": 0.2, "conservative": 0.05})
    precision: str = "fp32"  # "int8": a fast-mode model from ``models quantize``, with its agreement below
    agreement: dict[str, Any] | None = None  # what ``wildlife.detect.quantize`` measured against fp32

    @classmethod
    def read(cls, path: Path) -> Sidecar:
        data = json.loads(path.read_text())
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        side = cls(**known)
        if side.layout not in ("v5", "v8"):
            raise ValueError(f"{path}: layout must be 'v5' or 'v8', not {side.layout!r}")
        bad = {v for v in side.classes.values()} - {"animal", "person", "vehicle"}
        if bad:
            raise ValueError(f"{path}: classes must map to animal/person/vehicle; {sorted(bad)} are not")
        return side


def letterbox(img: np.ndarray, size: int, stride: int) -> tuple[np.ndarray, float, tuple[float, float]]:
    h, w = img.shape[:2]
    r = size / max(h, w)
    nh, nw = round(h * r), round(w * r)
    if (nh, nw) != (h, w):
        img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    ph, pw = math.ceil(nh / stride) * stride - nh, math.ceil(nw / stride) * stride - nw
    top, left = round(ph / 2 - 0.1), round(pw / 2 - 0.1)
    img = cv2.copyMakeBorder(img, top, ph - top, left, pw - left, cv2.BORDER_CONSTANT, value=(114, 114, 114))
    return img, r, (left, top)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float, max_keep: int = 300) -> list[int]:
    """Greedy non-maximum suppression over xyxy boxes; at most ``max_keep`` indices kept, best first."""
    order = scores.argsort()[::-1][:30_000]  # as YOLOv5: the best 30k candidates are plenty
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep = []
    while order.size and len(keep) < max_keep:
        i = order[0]
        keep.append(int(i))
        xx1 = np.maximum(boxes[i, 0], boxes[order[1:], 0])
        yy1 = np.maximum(boxes[i, 1], boxes[order[1:], 1])
        xx2 = np.minimum(boxes[i, 2], boxes[order[1:], 2])
        yy2 = np.minimum(boxes[i, 3], boxes[order[1:], 3])
        inter = np.clip(xx2 - xx1, 0, None) * np.clip(yy2 - yy1, 0, None)
        union = area[i] + area[order[1:]] - inter
        order = order[1:][inter / np.maximum(union, 1e-9) <= iou]
    return keep


def postprocess(pred: np.ndarray, layout: str, conf: float = 0.005, iou: float = 0.45,
                max_det: int = 300) -> np.ndarray:
    """One image's raw output to rows of (x1, y1, x2, y2, score, class index) in letterboxed pixels."""
    if layout == "v8":
        pred = pred.T
        cls_scores = pred[:, 4:]
    else:
        cls_scores = pred[:, 5:] * pred[:, 4:5]
    cls = cls_scores.argmax(1)
    score = cls_scores[np.arange(len(cls)), cls]
    keep = score >= conf
    pred, cls, score = pred[keep], cls[keep], score[keep]
    if not len(pred):
        return np.zeros((0, 6), np.float32)
    xy, wh = pred[:, :2], pred[:, 2:4]
    boxes = np.concatenate([xy - wh / 2, xy + wh / 2], 1)
    offset = cls[:, None].astype(np.float32) * 7680.0  # class-aware: boxes of other classes never overlap
    kept = nms(boxes + offset, score, iou, max_det)
    return np.concatenate([boxes[kept], score[kept, None], cls[kept, None]], 1).astype(np.float32)


def to_detections(rows: np.ndarray, ratio: float, pad: tuple[float, float], shape: tuple[int, int],
                  classes: dict[str, str]) -> list[Detection]:
    h, w = shape
    out = []
    for x1, y1, x2, y2, score, c in rows.tolist():
        x1, x2 = [min(max((v - pad[0]) / ratio, 0.0), w) for v in (x1, x2)]
        y1, y2 = [min(max((v - pad[1]) / ratio, 0.0), h) for v in (y1, y2)]
        if x2 <= x1 or y2 <= y1:
            continue
        category = classes.get(str(int(c) + 1))
        if category is None:
            continue  # classes outside the map are "no detection", as MegaDetector's format says
        out.append(Detection(category, round(float(score), 4),
                             (round(x1 / w, 4), round(y1 / h, 4), round((x2 - x1) / w, 4), round((y2 - y1) / h, 4))))
    return out


def prepare(photo: dict[str, Any], size: int, stride: int):
    """Decode and letterbox one photo: (padded BGR image, ratio, pad, original shape), or the failure reason."""
    try:
        img = decode.read_image(photo, lambda width, height: decode_flag(max(width, height), size))
    except decode.Undecodable as exc:
        return str(exc)
    with naming(photo):
        padded, ratio, pad = letterbox(img, size, stride)
    return padded, ratio, pad, img.shape[:2]


def decode_flag(long_side: int, size: int) -> int:
    """Decode at 1/4 or 1/2 size inside the JPEG decoder when the photo is that much larger than needed."""
    if long_side >= 4 * size:
        return cv2.IMREAD_REDUCED_COLOR_4
    if long_side >= 2 * size:
        return cv2.IMREAD_REDUCED_COLOR_2
    return cv2.IMREAD_COLOR


def check_output(out: Any, batch: int, layout: str) -> None:
    """Raise ValueError unless ``out`` is what ``postprocess`` decodes: per photo, boxes of 4 coordinates
    (+ objectness for v5) + at least one class score."""
    shape = tuple(getattr(out, "shape", ()))
    need = "(batch, boxes, 5 + classes)" if layout == "v5" else "(batch, 4 + classes, boxes)"
    width = (shape[2] if layout == "v5" else shape[1]) if len(shape) == 3 else 0
    if len(shape) != 3 or shape[0] != batch or width < (6 if layout == "v5" else 5):
        raise ValueError(f"the model's output has shape {shape} for {batch} photo(s); layout {layout} "
                         f"needs {need}")


def to_tensor(images: list[np.ndarray]) -> np.ndarray:
    """Letterboxed BGR images as the model's input: RGB, CHW, float 0..1."""
    batch = np.stack(images)[..., ::-1].transpose(0, 3, 1, 2)
    return np.ascontiguousarray(batch, dtype=np.float32) / 255.0


class Engine:
    """A Detector (see ``wildlife.detect``) over a backend and a sidecar."""

    context = 0  # each photo on its own

    def chunk_key(self, photo: dict[str, Any]) -> Any:
        return photo["photo_id"]

    def __init__(self, backend, sidecar: Sidecar, batch_size: int | None = None, workers: int | None = None):
        self.backend, self.sidecar = backend, sidecar
        self.name, self.version = sidecar.name, sidecar.version
        self.batch_size = batch_size or (8 if backend.device == "cuda" else getattr(backend, "photos_at_once", 1))
        self.workers = workers or min(4, os.cpu_count() or 1)

    def probe(self) -> None:
        """One inference on a small blank image; raises unless the output is what ``postprocess`` decodes."""
        side = 2 * self.sidecar.stride
        height, width = getattr(self.backend, "fixed_size", None) or (side, side)
        out = self.backend(np.zeros((1, 3, height, width), np.float32))
        check_output(out, 1, self.sidecar.layout)
        postprocess(out[0], self.sidecar.layout)

    def detect(self, batch: list[dict[str, Any]]) -> list[Result]:
        results: list[Result | None] = [None] * len(batch)
        pending: list[tuple[int, tuple]] = []
        with ThreadPoolExecutor(self.workers) as pool:
            window: deque = deque()
            items = iter(enumerate(batch))
            for i, photo in items:  # keep a bounded number of decodes ahead of inference
                window.append((i, pool.submit(prepare, photo, self.sidecar.input_size, self.sidecar.stride)))
                if len(window) >= self.workers * 2 + self.batch_size:
                    self._drain(window.popleft(), pending, results)
            while window:
                self._drain(window.popleft(), pending, results)
        self._flush(pending, results, force=True)
        return [r if r is not None else Result(failure="not processed") for r in results]

    def _drain(self, item, pending, results) -> None:
        i, future = item
        prepared = future.result()
        if isinstance(prepared, str):
            results[i] = Result(failure=prepared)
            return
        pending.append((i, prepared))
        self._flush(pending, results, force=False)

    def _flush(self, pending: list, results: list, force: bool) -> None:
        by_shape: dict[tuple, list] = {}
        for item in pending:
            by_shape.setdefault(item[1][0].shape, []).append(item)
        pending.clear()
        for group in by_shape.values():
            while len(group) >= self.batch_size or (force and group):
                chunk, group[:] = group[: self.batch_size], group[self.batch_size:]
                try:
                    out = self.backend(to_tensor([p[0] for _, p in chunk]))
                    check_output(out, len(chunk), self.sidecar.layout)
                except Exception as exc:  # noqa: BLE001 - a failing batch fails its photos, not the run
                    for i, _ in chunk:
                        results[i] = Result(failure=f"inference failed: {type(exc).__name__}: {exc}"[:300])
                    continue
                for (i, (_, ratio, pad, shape)), pred in zip(chunk, out, strict=True):
                    rows = postprocess(pred, self.sidecar.layout)
                    results[i] = Result(detections=to_detections(rows, ratio, pad, shape, self.sidecar.classes))
            pending.extend(group)
