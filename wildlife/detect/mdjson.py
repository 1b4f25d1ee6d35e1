"""MegaDetector's batch output format (the JSON Timelapse and AddaxAI open), written next to the Parquet.

``"detections": []`` means "processed, nothing found": Timelapse stores such an image as Empty (category "0")
and AddaxAI filters it out. A photo the detector did not judge (``assessed`` false: the motion baseline's
photo alone in its sequence) is therefore written as the format writes an image that was not processed: a
``failure`` string and ``"detections": null``, spelled out, never omitted (Timelapse's reader defaults a missing
``detections`` to an empty list, i.e. to Empty; it skips an image whose ``detections`` is null).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

import wildlife

FORMAT_VERSION = "1.6"
CATEGORY_IDS = {"animal": "1", "person": "2", "vehicle": "3"}


def build(images: pa.Table, detections: pa.Table, detector: dict[str, Any],
          thresholds: dict[str, float] | None = None) -> dict[str, Any]:
    """Every photo file once: ``detections`` (possibly empty) when judged, ``failure`` and null ``detections``
    when failed or not assessed (``assessed`` false, with the detector's note as the reason).

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
    cols = [c for c in ("photo_id", "relpath", "status", "reason", "assessed", "detection_note")
            if c in images.column_names]
    for r in images.select(cols).to_pylist():
        if r["status"] == "ok" and r.get("assessed") is False:
            why = r.get("detection_note") or "the detector did not judge this photo"
            entries.append({"file": r["relpath"], "failure": f"not assessed: {why}", "detections": None})
        elif r["status"] == "ok":
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
