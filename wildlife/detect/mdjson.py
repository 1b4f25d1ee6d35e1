"""MegaDetector's batch output format (the JSON Timelapse and AddaxAI open), written next to the Parquet."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

import wildlife

FORMAT_VERSION = "1.6"
CATEGORY_IDS = {"animal": "1", "person": "2", "vehicle": "3"}


def build(images: pa.Table, detections: pa.Table, detector: dict[str, Any],
          thresholds: dict[str, float] | None = None) -> dict[str, Any]:
    """Every photo file once: ``detections`` (possibly empty) when processed, ``failure`` when not.

    Files that are not photos are not images in this format and are left out; suspected static boxes
    (repeat detections) are left out as MegaDetector's repeat-detection elimination would.
    """
    by_photo: dict[str, list[dict[str, Any]]] = {}
    for d in detections.to_pylist():
        if not d["suspected_static"]:
            by_photo.setdefault(d["photo_id"], []).append(
                {"category": CATEGORY_IDS[d["category"]], "conf": float(d["conf"]),
                 "bbox": [d["bbox_x"], d["bbox_y"], d["bbox_w"], d["bbox_h"]]})
    entries = []
    for r in images.select(["photo_id", "relpath", "status", "reason"]).to_pylist():
        if r["status"] == "ok":
            dets = sorted(by_photo.get(r["photo_id"], []), key=lambda d: -d["conf"])
            entries.append({"file": r["relpath"], "detections": dets})
        elif r["status"] == "failed":
            entries.append({"file": r["relpath"], "failure": r["reason"] or "failed", "detections": None})
    t = thresholds or {"typical": 0.2, "conservative": 0.05}
    return {
        "info": {
            "format_version": FORMAT_VERSION,
            "detector": detector.get("file") or detector["name"],
            "detection_completion_time": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            "detector_metadata": {"megadetector_version": detector.get("version"),
                                  "typical_detection_threshold": t["typical"],
                                  "conservative_detection_threshold": t["conservative"]},
            "odin_version": wildlife.__version__,
        },
        "detection_categories": {v: k for k, v in CATEGORY_IDS.items()},
        "images": entries,
    }
