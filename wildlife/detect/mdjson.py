"""MegaDetector's batch output format (the JSON Timelapse and AddaxAI open), written next to the Parquet.

``"detections": []`` means "processed, nothing found": Timelapse stores such an image as Empty (category "0")
and AddaxAI filters it out. A photo the detector did not judge (``assessed`` false: the motion baseline's
photo alone in its sequence) is therefore written as the format writes an image that was not processed: a
``failure`` string and ``"detections": null``, spelled out, never omitted (Timelapse's reader defaults a missing
``detections`` to an empty list, i.e. to Empty; it skips an image whose ``detections`` is null).

Species (format 1.6, as MegaDetector's SpeciesNet runs write it and Timelapse reads it): where a classifier
decided boxes, ``classification_categories`` maps an id to the label's common name and
``classification_category_descriptions`` the same id to the full taxonomy line (``uuid;class;order;family;
genus;species;common name``); each decided box carries ``classifications`` ``[[id, score]]``: the decision and
its score after the geofence and rollup (``label_score``). Without a classifier neither key is written.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

import wildlife
from wildlife import rowbatches, species
from wildlife.classify import Label

FORMAT_VERSION = "1.6"
CATEGORY_IDS = {"animal": "1", "person": "2", "vehicle": "3"}


def build(images: pa.Table, detections: pa.Table, detector: dict[str, Any],
          thresholds: dict[str, float] | None = None) -> dict[str, Any]:
    """Every photo file once: ``detections`` (possibly empty) when judged, ``failure`` and null ``detections``
    when failed or not assessed (``assessed`` false, with the detector's note as the reason).

    Files that are not photos are not images in this format and are left out; suspected static boxes
    (repeat detections) are left out as MegaDetector's repeat-detection elimination would.
    """
    class_ids = classification_ids(detections)
    cols = [c for c in ("photo_id", "relpath", "status", "reason", "assessed", "detection_note")
            if c in images.column_names]
    t = thresholds or {"typical": 0.2, "conservative": 0.05}
    out = {
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
        "images": _entries(images.select(cols), detections, class_ids),  # written as it is made (fs.write_json)
    }
    if class_ids:  # only when a classifier decided a box: detections-only output stays as it was
        out["info"]["classifier"] = ", ".join(species.classifiers(detections))
        out["classification_categories"] = {i: _name(line) for line, i in class_ids.items()}
        out["classification_category_descriptions"] = {i: line for line, i in class_ids.items()}
    return out


def _entries(images: pa.Table, detections: pa.Table, class_ids: dict[str, str]) -> Iterator[dict[str, Any]]:
    """The ``images`` entries in ``images``' order, ``rowbatches.ROWS`` photos' rows as objects at a time."""
    for part, dets in rowbatches.with_matches(images, detections, "photo_id"):
        by_photo: dict[str, list[dict[str, Any]]] = {}
        for d in dets.to_pylist():
            if not d["suspected_static"]:
                by_photo.setdefault(d["photo_id"], []).append(box(d, class_ids))
        for r in part.to_pylist():
            if r["status"] == "ok" and r.get("assessed") is False:
                why = r.get("detection_note") or "the detector did not judge this photo"
                yield {"file": r["relpath"], "failure": f"not assessed: {why}", "detections": None}
            elif r["status"] == "ok":
                dets_of = sorted(by_photo.get(r["photo_id"], []), key=lambda d: -d["conf"])
                yield {"file": r["relpath"], "detections": dets_of}
            elif r["status"] == "failed":
                yield {"file": r["relpath"], "failure": r["reason"] or "failed", "detections": None}


def box(d: dict[str, Any], class_ids: dict[str, str]) -> dict[str, Any]:
    """One detections.parquet row as the format's detection, with its ``classifications`` where decided."""
    entry = {"category": CATEGORY_IDS[d["category"]], "conf": float(d["conf"]),
             "bbox": [d["bbox_x"], d["bbox_y"], d["bbox_w"], d["bbox_h"]]}
    score = d.get("label_score") if d.get("label_score") is not None else d.get("class_score")
    if d.get("label") in class_ids and score is not None:
        entry["classifications"] = [[class_ids[d["label"]], round(float(score), 4)]]
    return entry


def classification_ids(detections: pa.Table) -> dict[str, str]:
    """Label line -> classification category id ("1", "2", ... in label order) for every label a box carries."""
    if "label" not in detections.column_names:
        return {}
    lines = sorted({v for v in detections.column("label").to_pylist() if v})
    return {line: str(i) for i, line in enumerate(lines, 1)}


def _name(line: str) -> str:
    """The category name Timelapse shows: the label's common name, else its scientific name, else the line."""
    try:
        label = Label.parse(line)
    except ValueError:
        return line
    return label.common_name or label.scientific_name or line
