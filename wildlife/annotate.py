"""Annotated copies of a run's photos (``odin export annotated``): boxes and labels drawn, people blurred.

Each photo with a positive box (at or above the run's confidence threshold, not suspected static: what the
report and Camtrap DP count) is written as a JPEG under the output folder at its own relative path. The label
is the classifier's species where it named one (common name, else scientific name), else the detector's
category, with the box's confidence. People and vehicles are blurred first (``wildlife.privacy``) unless the
run said ``--humans keep``; with ``--humans drop`` their photos are not written. Every photo not written is
counted with its reason (a video, a file that cannot be decoded now, people under drop): nothing disappears.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import pyarrow as pa

from wildlife import fs, privacy, stage0
from wildlife.report_plots import color

JPEG_QUALITY = 90


@dataclass
class Exported:
    written: int = 0
    blurred: int = 0  # photos written with at least one box blurred
    not_written: Counter = field(default_factory=Counter)  # reason -> photos


def label(box: dict[str, Any]) -> str:
    name = box.get("common_name") or box.get("scientific_name") or box["category"]
    return f"{name} {box['conf']:.2f}"


def draw(img: np.ndarray, boxes: list[dict[str, Any]]) -> np.ndarray:
    """Boxes (normalised) and their labels on a copy of the image, line and text scaled to its size."""
    out = img.copy()
    h, w = out.shape[:2]
    thick = max(2, round(min(h, w) / 300))
    scale = max(0.5, min(h, w) / 900)
    for b in boxes:
        hexa = color(b["category"])
        bgr = tuple(int(hexa[i:i + 2], 16) for i in (5, 3, 1))
        p1 = (int(b["bbox_x"] * w), int(b["bbox_y"] * h))
        p2 = (int((b["bbox_x"] + b["bbox_w"]) * w), int((b["bbox_y"] + b["bbox_h"]) * h))
        cv2.rectangle(out, p1, p2, bgr, thick)
        text = label(b)
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        top = p1[1] - th - base - thick if p1[1] - th - base - thick >= 0 else p1[1] + thick
        cv2.rectangle(out, (p1[0], top), (p1[0] + tw + 2 * thick, top + th + base + thick), bgr, -1)
        cv2.putText(out, text, (p1[0] + thick, top + th + thick // 2), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (255, 255, 255), max(1, thick // 2), cv2.LINE_AA)
    return out


def export(images: pa.Table, detections: pa.Table, out_uri: str, threshold: float, humans: str | None,
           every_photo: bool = False) -> Exported:
    """Write the annotated copies under ``out_uri``; ``every_photo`` writes photos without a box too."""
    how = privacy.mode(humans)
    boxes: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for d in detections.to_pylist():
        if d["conf"] >= threshold:
            boxes[d["photo_id"]].append(d)
    result = Exported()
    cols = [c for c in ("photo_id", "relpath", "uri", "uri_raw", "status", "media_type") if c in images.column_names]
    for row in images.select(cols).to_pylist():
        mine = boxes.get(row["photo_id"], [])
        shown = [b for b in mine if not b["suspected_static"]]
        if row["status"] != "ok" or not (shown or every_photo):
            continue
        people = privacy.people_boxes(mine, threshold)
        if row.get("media_type") == "video":
            result.not_written["a video (its frames are not exported)"] += 1
            continue
        if people and how == "drop":
            result.not_written["people or vehicles (--humans drop)"] += 1
            continue
        try:
            img = cv2.imdecode(np.frombuffer(fs.read_bytes(stage0.openable(row)), np.uint8), cv2.IMREAD_COLOR)
        except OSError:
            img = None
        if img is None:
            result.not_written["cannot be read or decoded now"] += 1
            continue
        if people and how != "keep":
            img = privacy.blur(img, people)
            result.blurred += 1
        ok, buf = cv2.imencode(".jpg", draw(img, shown), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            result.not_written["cannot be encoded as JPEG"] += 1
            continue
        rel = row["relpath"] if row["relpath"].lower().endswith((".jpg", ".jpeg")) \
            else row["relpath"].rsplit(".", 1)[0] + ".jpg"
        fs.write_bytes(fs.join(out_uri, *rel.split("/")), buf.tobytes())
        result.written += 1
    return result
