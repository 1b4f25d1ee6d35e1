"""People kept out (``--humans blur|drop|keep``, default ``blur``).

A photo shows people when it has a ``person`` or ``vehicle`` box at or above the run's confidence threshold,
suspected-static boxes included (a person standing still is still a person; blurring a post costs nothing).

* ``blur``: every image Odin writes (report thumbnails, ``odin export annotated``) has those boxes blurred; in
  the Camtrap DP package their media are not public (``filePublic: false``, which Camtrap DP 1.0.2 defines as
  "not publicly accessible (e.g. to protect the privacy of people)") and carry no file path: ``filePath`` (a
  required field) says ``withheld``, ``fileName`` is empty and ``mediaComments`` says why.
* ``drop``: as ``blur``, and those media are left out of the shared package with every observation of them,
  as are event-level observations of people and vehicles; ``odin export annotated`` leaves the photos out.
  Counted in the payload and the report, never silently.
* ``keep``: nothing changes (the package's media are still ``filePublic: false``: Odin never publishes files).

Wildlife Insights removes humans; AddaxAI blurs them: the default here blurs.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from wildlife.errors import InputError
from wildlife.runinput import HUMANS, RunInput

MODES = HUMANS  # the run input's choices
CATEGORIES = ("person", "vehicle")
WITHHELD = "withheld"  # media.filePath of a photo whose file is withheld
MARGIN = 0.1  # each blurred box grows by this share of its size on every side: limbs and edges stay covered
BLOCKS = 6  # a blurred box is a mosaic of at most this many blocks across its shorter side, then smoothed


def mode(humans: str | None) -> str:
    value = humans or RunInput.default("humans")
    if value not in MODES:
        raise InputError(f"--humans {value!r} is not one of {', '.join(MODES)}",
                         hint="blur (default) blurs people and vehicles, drop leaves them out of the shared "
                              "package, keep leaves them as they are.")
    return value


def people_photos(detections: pa.Table, threshold: float) -> set[str]:
    """Photo ids with a person or vehicle box at or above the threshold."""
    if detections.num_rows == 0:
        return set()
    hit = pc.and_(pc.is_in(detections.column("category"), pa.array(CATEGORIES)),
                  pc.greater_equal(detections.column("conf"), threshold))
    return set(detections.filter(hit).column("photo_id").to_pylist())


def people_boxes(boxes: list[dict[str, Any]], threshold: float) -> list[dict[str, Any]]:
    return [b for b in boxes if b["category"] in CATEGORIES and b["conf"] >= threshold]


def to_blur(detections: pa.Table, threshold: float, humans: str | None) -> dict[str, list[dict[str, Any]]]:
    """Photo id -> the boxes to blur in any image of it Odin writes (none with ``keep``)."""
    if mode(humans) == "keep" or detections.num_rows == 0:
        return {}
    out: dict[str, list[dict[str, Any]]] = {}
    cols = ["photo_id", "category", "conf", "bbox_x", "bbox_y", "bbox_w", "bbox_h"]
    for b in people_boxes(detections.select(cols).to_pylist(), threshold):
        out.setdefault(b["photo_id"], []).append(b)
    return out


def blur(img: np.ndarray | None, boxes: list[dict[str, Any]]) -> np.ndarray | None:
    """The image with each box (normalised bbox_x/y/w/h) blurred beyond recognition: a coarse mosaic, smoothed.
    Pixels outside the boxes (and their margin) are not touched. No image (one that did not decode) stays None."""
    if img is None or not boxes:
        return img
    out = img.copy()
    h, w = img.shape[:2]
    for b in boxes:
        x0 = int(max(0.0, b["bbox_x"] - MARGIN * b["bbox_w"]) * w)
        y0 = int(max(0.0, b["bbox_y"] - MARGIN * b["bbox_h"]) * h)
        x1 = int(np.ceil(min(1.0, b["bbox_x"] + (1 + MARGIN) * b["bbox_w"]) * w))
        y1 = int(np.ceil(min(1.0, b["bbox_y"] + (1 + MARGIN) * b["bbox_h"]) * h))
        if x1 - x0 < 2 or y1 - y0 < 2:
            continue
        region = out[y0:y1, x0:x1]
        step = max(1, min(x1 - x0, y1 - y0) // BLOCKS)
        small = cv2.resize(region, (max(1, (x1 - x0) // step), max(1, (y1 - y0) // step)),
                           interpolation=cv2.INTER_AREA)
        mosaic = cv2.resize(small, (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST)
        k = max(3, (step // 2) * 2 + 1)
        out[y0:y1, x0:x1] = cv2.GaussianBlur(mosaic, (k, k), 0)
    return out


def package(rows: dict[str, list[dict[str, Any]]], people: set[str], humans: str | None) -> dict[str, Any]:
    """Apply the mode to a Camtrap DP package's rows (``deployments``, ``media``, ``observations``) in place;
    returns the counts the run report and report.html show."""
    how = mode(humans)
    media = rows["media"]
    shown = [m for m in media if m["mediaID"] in people]
    counts = {"humans": how, "media_with_people": len(shown), "files_withheld": 0, "media_dropped": 0,
              "observations_dropped": 0}
    if how == "keep":
        return counts
    if how == "blur":
        for m in shown:
            m.update(filePath=WITHHELD, filePublic=False, fileName=None,
                     mediaComments="file withheld: a person or vehicle was detected (odin --humans blur)")
        counts["files_withheld"] = len(shown)
        return counts
    from wildlife.camtrapdp import OBSERVATION_TYPE  # noqa: PLC0415 - camtrapdp imports this module

    people_types = {OBSERVATION_TYPE[c] for c in CATEGORIES}
    # in place: the caller's lists are the package's (its counts and taxonomic coverage read them)
    media[:] = [m for m in media if m["mediaID"] not in people]
    obs = rows["observations"]
    before = len(obs)
    obs[:] = [o for o in obs if o.get("mediaID") not in people
              and not (o.get("observationLevel") == "event" and o.get("observationType") in people_types)]
    counts.update(media_dropped=len(shown), observations_dropped=before - len(obs))
    return counts
