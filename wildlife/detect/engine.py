"""The detection engine: decode in a thread pool while the model runs, letterbox, batch, NMS, map back.

Preprocessing follows MegaDetector: the long side scaled to the model's input size (1280 for MDv5), the
short side padded (grey 114) to a multiple of the stride, so a 4:3 photo becomes 1280x960, not 1280x1280.
RT-DETR models (layout ``rtdetr``) are instead stretched to a square of the input size, as their authors'
inference does (PytorchWildlife's RT-DETR Apache detector: ``Resize((640, 640))``, no padding).
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

from wildlife.classify import runtime
from wildlife.detect import Detection, Result, decode, naming

MD_CLASSES = {"1": "animal", "2": "person", "3": "vehicle"}
# What a model's one output holds, per photo (``postprocess`` decodes each, ``check_output`` checks the shape):
#   v5:     (batch, boxes, 5 + classes): cx, cy, w, h in input pixels, objectness, class scores (YOLOv5, MDv5)
#   v8:     (batch, 4 + classes, boxes): cx, cy, w, h in input pixels, class scores (YOLOv8/v9/v11 heads)
#   e2e:    (batch, boxes, 6): x1, y1, x2, y2 in input pixels, score, class index: already final, no NMS
#           (YOLOv10's end-to-end head; any export with NMS inside)
#   rtdetr: (batch, queries, 4 + classes): cx, cy, w, h normalised to 0..1 of the input, class probabilities;
#           no NMS (a DETR predicts a set); the input is stretched, not letterboxed (RESIZE)
LAYOUTS = ("v5", "v8", "e2e", "rtdetr")
RESIZE = {"v5": "letterbox", "v8": "letterbox", "e2e": "letterbox", "rtdetr": "stretch"}


@dataclass
class Sidecar:
    """How to run a YOLO-style ONNX model: ``<model>.json`` beside ``<model>.onnx``."""

    name: str = "yolo-onnx"
    version: str = "unknown"
    input_size: int = 1280
    stride: int = 64
    layout: str = "v5"  # one of LAYOUTS
    classes: dict[str, str] = field(default_factory=lambda: dict(MD_CLASSES))
    thresholds: dict[str, float] = field(default_factory=lambda: {"typical": 0.2, "conservative": 0.05})
    precision: str = "fp32"  # "int8": a fast-mode model from ``models quantize``, with its agreement below
    agreement: dict[str, Any] | None = None  # what ``wildlife.detect.quantize`` measured against fp32

    @classmethod
    def read(cls, path: Path) -> Sidecar:
        data = json.loads(path.read_text())
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        side = cls(**known)
        if side.layout not in LAYOUTS:
            raise ValueError(f"{path}: layout must be one of {', '.join(LAYOUTS)}, not {side.layout!r}")
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


def stretch(img: np.ndarray, size: int) -> tuple[np.ndarray, tuple[float, float], tuple[float, float]]:
    """Resize to size x size whatever the aspect ratio (RT-DETR's input); the ratio is per axis (x, y)."""
    h, w = img.shape[:2]
    out = cv2.resize(img, (size, size), interpolation=cv2.INTER_LINEAR) if (h, w) != (size, size) else img
    return out, (size / w, size / h), (0.0, 0.0)


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
                max_det: int = 300, input_hw: tuple[int, int] | None = None) -> np.ndarray:
    """One image's raw output to rows of (x1, y1, x2, y2, score, class index) in the input's pixels
    (letterboxed or stretched); ``input_hw``: the input's (height, width), which the ``rtdetr`` layout's
    normalised boxes need."""
    if layout == "e2e":
        rows = pred[pred[:, 4] >= conf]
        return rows[np.argsort(-rows[:, 4], kind="stable")][:max_det].astype(np.float32)
    if layout == "rtdetr":
        h, w = input_hw
        cls = pred[:, 4:].argmax(1)
        score = pred[np.arange(len(cls)), 4 + cls]
        keep = np.flatnonzero(score >= conf)
        keep = keep[np.argsort(-score[keep], kind="stable")][:max_det]
        xy, wh = pred[keep, :2] * (w, h), pred[keep, 2:4] * (w, h)
        boxes = np.concatenate([xy - wh / 2, xy + wh / 2], 1)
        return np.concatenate([boxes, score[keep, None], cls[keep, None]], 1).astype(np.float32)
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


def to_detections(rows: np.ndarray, ratio: float | tuple[float, float], pad: tuple[float, float],
                  shape: tuple[int, int], classes: dict[str, str]) -> list[Detection]:
    """Rows in input pixels back to the photo; ``ratio``: the scale of ``letterbox``, or (x, y) of ``stretch``."""
    h, w = shape
    rx, ry = ratio if isinstance(ratio, tuple) else (ratio, ratio)
    out = []
    for x1, y1, x2, y2, score, c in rows.tolist():
        x1, x2 = [min(max((v - pad[0]) / rx, 0.0), w) for v in (x1, x2)]
        y1, y2 = [min(max((v - pad[1]) / ry, 0.0), h) for v in (y1, y2)]
        if x2 <= x1 or y2 <= y1:
            continue
        category = classes.get(str(int(c) + 1))
        if category is None:
            continue  # classes outside the map are "no detection", as MegaDetector's format says
        out.append(Detection(category, round(float(score), 4),
                             (round(x1 / w, 4), round(y1 / h, 4), round((x2 - x1) / w, 4), round((y2 - y1) / h, 4))))
    return out


def prepare(photo: dict[str, Any], size: int, stride: int, resize: str = "letterbox", keep: bool = False):
    """Decode and letterbox (or stretch) one photo: (BGR input image, ratio, pad, original shape, the decoded
    image when ``keep`` else None), or the failure reason."""
    try:
        img = decode.read_image(photo, lambda width, height: decode_flag(max(width, height), size))
    except decode.Undecodable as exc:
        return str(exc)
    with naming(photo):
        padded, ratio, pad = stretch(img, size) if resize == "stretch" else letterbox(img, size, stride)
    return padded, ratio, pad, img.shape[:2], img if keep else None


def decode_flag(long_side: int, size: int) -> int:
    """Decode at 1/4 or 1/2 size inside the JPEG decoder when the photo is that much larger than needed."""
    if long_side >= 4 * size:
        return cv2.IMREAD_REDUCED_COLOR_4
    if long_side >= 2 * size:
        return cv2.IMREAD_REDUCED_COLOR_2
    return cv2.IMREAD_COLOR


_NEED = {"v5": ("(batch, boxes, 5 + classes)", 2, 6), "v8": ("(batch, 4 + classes, boxes)", 1, 5),
         "e2e": ("(batch, boxes, 6)", 2, 6), "rtdetr": ("(batch, queries, 4 + classes)", 2, 5)}


def check_output(out: Any, batch: int, layout: str) -> None:
    """Raise ValueError unless ``out`` is what ``postprocess`` decodes for ``layout`` (see ``LAYOUTS``)."""
    shape = tuple(getattr(out, "shape", ()))
    need, axis, least = _NEED[layout]
    width = shape[axis] if len(shape) == 3 else 0
    if len(shape) != 3 or shape[0] != batch or width < least or (layout == "e2e" and width != 6):
        raise ValueError(f"the model's output has shape {shape} for {batch} photo(s); layout {layout} "
                         f"needs {need}")


def to_tensor(images: list[np.ndarray]) -> np.ndarray:
    """Letterboxed BGR images as the model's input: RGB, CHW, float 0..1."""
    batch = np.stack(images)[..., ::-1].transpose(0, 3, 1, 2)
    return np.ascontiguousarray(batch, dtype=np.float32) / 255.0


def onnx_session(path: Path):
    """An onnxruntime session on CUDA where present, else the CPU with every core; and its device name.
    The one place Stage 1's ONNX models (the detector, the species classifier) get their providers."""
    import onnxruntime as ort  # noqa: PLC0415

    providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
    options = ort.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 1
    session = ort.InferenceSession(str(path), options, providers=providers)
    return session, "cuda" if providers[0].startswith("CUDA") else "cpu"


class OnnxBackend:
    def __init__(self, path: Path):
        self.session, self.device = onnx_session(path)
        inputs = self.session.get_inputs()
        shape = inputs[0].shape if len(inputs) == 1 else []
        if len(shape) != 4 or (isinstance(shape[1], int) and shape[1] != 3):
            raise ValueError(f"the model takes {[(i.name, i.shape) for i in inputs]}; the engine feeds one "
                             "input of (batch, 3, height, width)")
        self.input = inputs[0].name
        fixed = shape[2:]  # a model exported with a fixed size takes only that size
        self.fixed_size = tuple(fixed) if all(isinstance(d, int) and d > 0 for d in fixed) else None

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input: batch})[0]


class TorchBackend:
    def __init__(self, model, half: bool | None = None):
        import torch  # noqa: PLC0415

        self.torch = torch
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.half = self.device == "cuda" if half is None else half
        self.model = model.fuse().eval().to(self.device)
        if self.half:
            self.model = self.model.half()
        elif self.device == "cpu":  # measured: channels-last convolutions are ~1.5x faster on CPU
            self.model = self.model.to(memory_format=torch.channels_last)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        torch = self.torch
        with torch.inference_mode():
            x = torch.from_numpy(batch).to(self.device)
            x = x.half() if self.half else x.contiguous(memory_format=torch.channels_last)
            return self.model(x).float().cpu().numpy()


class Engine:
    """A Detector (see ``wildlife.detect``) over a backend and a sidecar.

    With a species ``classifier`` (``wildlife.classify.runtime``), each photo's decoded image is kept until
    its boxes are known, its animal boxes are cut from it, and the crops are classified in batches across
    photos: no photo is decoded twice.
    """

    context = 0  # each photo on its own
    classifier = None  # set by Stage 1 (``stage1.run_shard``) when a species classifier runs

    def chunk_key(self, photo: dict[str, Any]) -> Any:
        return photo["photo_id"]

    def __init__(self, backend, sidecar: Sidecar, batch_size: int | None = None, workers: int | None = None):
        self.backend, self.sidecar = backend, sidecar
        self.name, self.version = sidecar.name, sidecar.version
        self.batch_size = batch_size or (8 if backend.device == "cuda" else 1)
        self.workers = workers or min(4, os.cpu_count() or 1)

    def probe(self) -> None:
        """One inference on a small blank image; raises unless the output is what ``postprocess`` decodes."""
        side = 2 * self.sidecar.stride
        height, width = getattr(self.backend, "fixed_size", None) or (side, side)
        if RESIZE[self.sidecar.layout] == "stretch" and not getattr(self.backend, "fixed_size", None):
            height = width = self.sidecar.input_size
        out = self.backend(np.zeros((1, 3, height, width), np.float32))
        check_output(out, 1, self.sidecar.layout)
        postprocess(out[0], self.sidecar.layout, input_hw=(height, width))

    def detect(self, batch: list[dict[str, Any]]) -> list[Result]:
        results: list[Result | None] = [None] * len(batch)
        pending: list[tuple[int, tuple]] = []
        self._crops: list[tuple[int, int, np.ndarray]] = []  # (photo, detection, crop) waiting for the classifier
        keep = self.classifier is not None
        with ThreadPoolExecutor(self.workers) as pool:
            window: deque = deque()
            items = iter(enumerate(batch))
            for i, photo in items:  # keep a bounded number of decodes ahead of inference
                window.append((i, pool.submit(prepare, photo, self.sidecar.input_size, self.sidecar.stride,
                                              RESIZE[self.sidecar.layout], keep)))
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
                    tensor = to_tensor([p[0] for _, p in chunk])
                    out = self.backend(tensor)
                    check_output(out, len(chunk), self.sidecar.layout)
                except Exception as exc:  # noqa: BLE001 - a failing batch fails its photos, not the run
                    for i, _ in chunk:
                        results[i] = Result(failure=f"inference failed: {type(exc).__name__}: {exc}"[:300])
                    continue
                for (i, (_, ratio, pad, shape, image)), pred in zip(chunk, out, strict=True):
                    rows = postprocess(pred, self.sidecar.layout, input_hw=tensor.shape[2:])
                    results[i] = Result(detections=to_detections(rows, ratio, pad, shape, self.sidecar.classes))
                    if self.classifier is not None:
                        self._crops += [(i, j, c) for j, c in runtime.crops(self.classifier, image, results[i])]
            pending.extend(group)
        if self.classifier is not None:
            runtime.classify_queue(self.classifier, self._crops, results, force)
