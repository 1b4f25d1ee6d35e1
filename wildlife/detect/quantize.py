"""The int8 fast mode: a detector quantized on the user's own photos, shipped only with its agreement report.

``quantize`` takes an fp32 ONNX detector and a list of photos. The first part of the photos calibrates the
activation ranges (onnxruntime static quantization: int8 weights per output channel, uint8 activations,
QDQ format, which runs as integer convolutions on CPUs with VNNI). The rest are held out: both models run
over them through the engine, and ``agreement`` counts how many of fp32's boxes the int8 model reproduces
(same category, IoU >= 0.9). The report goes into the int8 model's sidecar, so every run that uses it
carries what it was measured to give up, and a run warns when that is below ``TARGET``.

The model's last layers stay in float: every node from which no convolution follows (the detection
convolutions and the box decoding). Quantizing them would put pixel coordinates (0-1280) and confidences
(0-1) on one 8-bit grid.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from wildlife.detect import Detection, engine

TARGET = 0.99  # share of fp32 boxes an int8 model must reproduce to run without a warning
IOU = 0.9


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two [x, y, width, height] boxes."""
    iw = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def agreement(reference: list[list[Detection]], candidate: list[list[Detection]], min_conf: float) -> dict:
    """How many of the reference's boxes (conf >= ``min_conf``) the candidate reproduces, per photo in order:
    a box of the same category with IoU >= 0.9. Also the largest coordinate difference of matched boxes."""
    matched = total = 0
    worst = 0.0
    for ref, got in zip(reference, candidate, strict=True):
        for a in (d for d in ref if d.conf >= min_conf):
            total += 1
            same = [b for b in got if b.category == a.category]
            best = max(same, key=lambda b: iou(a.bbox, b.bbox), default=None)
            if best is not None and iou(a.bbox, best.bbox) >= IOU:
                matched += 1
                worst = max(worst, max(abs(u - v) for u, v in zip(a.bbox, best.bbox, strict=True)))
    return {"matched": matched, "boxes": total, "share": matched / total if total else 1.0,
            "min_conf": min_conf, "iou": IOU, "max_coordinate_difference": round(worst, 4)}


def float_tail(model) -> list[str]:
    """Names of the nodes from which no Conv follows, Conv nodes of that tail included: the head and decode."""
    producers = {out: n for n in model.graph.node for out in n.output}
    feeds_conv: set[str] = set()  # nodes that have a Conv somewhere downstream
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        stack = [producers[i] for i in node.input if i in producers]
        while stack:
            n = stack.pop()
            if n.name not in feeds_conv:
                feeds_conv.add(n.name)
                stack.extend(producers[i] for i in n.input if i in producers)
    return [n.name for n in model.graph.node if n.name not in feeds_conv]


def quantize(model_path: Path, photos: list[str], out: Path, calibration: int = 8,
             progress: Callable[[str], None] = lambda msg: None) -> dict[str, Any]:
    """Write ``out`` (int8 ONNX) and its sidecar; returns the agreement report. ``photos[:calibration]``
    calibrate, the rest are held out for the agreement check."""
    import onnx  # noqa: PLC0415
    from onnxruntime.quantization import (  # noqa: PLC0415
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process  # noqa: PLC0415

    side_path = model_path.with_suffix(".json")
    side = engine.Sidecar.read(side_path) if side_path.exists() else engine.Sidecar(name=model_path.name)
    if side.precision != "fp32":
        raise ValueError(f"{model_path} is already {side.precision}; quantize the fp32 model")
    calib, held_out = photos[:calibration], photos[calibration:]
    if not calib or not held_out:
        raise ValueError(f"need more than {calibration} photos: {calibration} to calibrate, the rest to check "
                         f"agreement; got {len(photos)}")

    class Photos(CalibrationDataReader):
        """One photo per ``set_range`` window: onnxruntime merges the ranges window by window, so memory holds
        one photo's activations, not all of them (measured: 12 GB peak for MDv5 at 1280 px, 2 or 4 photos)."""

        def __init__(self):
            self.window: list[str] = []

        def __len__(self):
            return len(calib)

        def set_range(self, start_index: int, end_index: int):
            self.window = calib[start_index:end_index]

        def get_next(self):
            while self.window:
                uri = self.window.pop(0)
                prepared = engine.prepare({"uri": uri}, side.input_size, side.stride, engine.RESIZE[side.layout])
                if not isinstance(prepared, str):  # a str is the reason it cannot be decoded
                    progress(f"calibrating on {Path(uri).name}")
                    return {input_name: engine.to_tensor([prepared[0]])}
            return None

    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(model_path), str(pre), skip_symbolic_shape=True)
        graph = onnx.load(str(pre))
        input_name = graph.graph.input[0].name
        quantize_static(str(pre), str(out), Photos(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        nodes_to_exclude=float_tail(graph), extra_options={"CalibStridedMinMax": 1})
    progress(f"checking agreement on {len(held_out)} held-out photos")
    batch = [{"photo_id": str(i), "uri": uri} for i, uri in enumerate(held_out)]

    def boxes(path: Path) -> list[list[Detection]]:
        return [r.detections for r in engine.Engine(engine.OnnxBackend(path), side).detect(batch)]

    fp32, int8 = boxes(model_path), boxes(out)
    report = {
        "photos": len(held_out), "calibration_photos": len(calib), "target": TARGET,
        **agreement(fp32, int8, side.thresholds.get("conservative", 0.05)),
        "typical": agreement(fp32, int8, side.thresholds.get("typical", 0.2)),
    }
    data = json.loads(side_path.read_text()) if side_path.exists() else {"name": side.name}
    data.update(precision="int8", version=f"{side.version}+int8", agreement=report,
                source_model=model_path.name)
    out.with_suffix(".json").write_text(json.dumps(data, indent=2))
    return report


def warning(side: engine.Sidecar, name: str) -> str | None:
    """What a run should say about a fast-mode model, or None when it met the target."""
    if side.precision == "fp32":
        return None
    a = side.agreement or {}
    if not a:
        return f"{name}: a {side.precision} model without an agreement report; make it with `models quantize`"
    if a.get("share", 0.0) < TARGET:
        return (f"{name}: {side.precision} reproduced {a.get('matched')}/{a.get('boxes')} fp32 boxes "
                f"({a.get('share', 0.0):.1%}) on {a.get('photos')} held-out photos, below the {TARGET:.0%} target")
    return None
