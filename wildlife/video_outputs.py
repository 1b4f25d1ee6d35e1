"""Videos in the outputs users open: MegaDetector's video convention, Camtrap DP's spans, the report's frames.

MegaDetector (``megadetector/detection/video_utils.py``) runs a video as frames named
``<video>/frame000030.jpg`` and then ``frame_results_to_video_results`` maps them back to one entry per video
for Timelapse: ``file`` is the video, ``frame_rate`` its frame rate, and ``detections`` hold, per category, the
highest-confidence detection over all frames (its ``nth_highest_confidence`` default of 1), each carrying the
``frame_number`` it was found in. ``megadetector.json`` has exactly that for every video (Timelapse opens it
as it opens MegaDetector's own), and ``megadetector_frames.json`` the frame-level entries before that mapping
(one per sampled frame, ``frame_number`` on the entry and on each detection), written only when the run had
videos.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from wildlife import fs, stage0, video
from wildlife.detect import mdjson

FRAMES_JSON = "megadetector_frames.json"
REPORT_VIDEOS = 12  # videos shown with their best frame in report.html


def has_videos(images: pa.Table) -> bool:
    return "media_type" in images.column_names and bool(pc.any(pc.equal(images.column("media_type"), "video")).as_py())


def _videos(images: pa.Table) -> dict[str, dict[str, Any]]:
    if not has_videos(images):
        return {}
    rows = images.filter(pc.equal(images.column("media_type"), "video").fill_null(False)).to_pylist()
    return {r["photo_id"]: r for r in rows}


def _md_detection(d: dict[str, Any], class_ids: dict[str, str]) -> dict[str, Any]:
    return dict(mdjson.box(d, class_ids), frame_number=d["frame_number"])


def with_videos(md: dict[str, Any], images: pa.Table, detections: pa.Table) -> dict[str, Any]:
    """``mdjson.build``'s output with every ok video's entry in MegaDetector's video form: ``frame_rate`` and,
    per category, the best detection over its frames with its ``frame_number`` (suspected static boxes left
    out, as for photos). Failed and unassessed videos keep the entries ``mdjson.build`` gives every file.
    ``md["images"]`` stays an iterator: each entry is changed as it is written."""
    videos = _videos(images)
    if not videos:
        return md
    class_ids = mdjson.classification_ids(detections)  # the ids md's classification maps use
    best: dict[tuple[str, str], dict[str, Any]] = {}
    for d in frame_detections(detections).to_pylist():
        if d["photo_id"] in videos and not d["suspected_static"]:
            key = (d["photo_id"], d["category"])
            if key not in best or (d["conf"], -d["frame_number"]) > (best[key]["conf"], -best[key]["frame_number"]):
                best[key] = d
    by_file = {r["relpath"]: r for r in videos.values()}

    def entries(found: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for entry in found:
            row = by_file.get(entry["file"])
            if row is not None:
                if row.get("fps"):
                    entry["frame_rate"] = row["fps"]
                if entry.get("detections") is not None:
                    dets = [_md_detection(d, class_ids) for (pid, _), d in best.items() if pid == row["photo_id"]]
                    entry["detections"] = sorted(dets, key=lambda d: -d["conf"])
            yield entry

    return dict(md, images=entries(md["images"]))


def frame_detections(detections: pa.Table) -> pa.Table:
    """The detections of video frames (a photo's have no ``frame_number``)."""
    if "frame_number" not in detections.column_names:
        return detections.slice(0, 0)
    return detections.filter(pc.is_valid(detections.column("frame_number")))


def frames_json(md: dict[str, Any], images: pa.Table, results: pa.Table, detections: pa.Table) -> dict[str, Any] | None:
    """MegaDetector's frame-level results for the videos (``info`` and categories as ``md``): one entry per
    sampled frame, ``<video>/frame000030.jpg``; None when the run had no video frames."""
    videos = _videos(images)
    if not videos or "frame_number" not in results.column_names:
        return None
    frames = results.filter(pc.is_valid(results.column("frame_number")))
    class_ids = mdjson.classification_ids(detections)
    by_frame: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for d in frame_detections(detections).to_pylist():
        if not d["suspected_static"]:
            by_frame.setdefault((d["photo_id"], d["frame_number"]), []).append(_md_detection(d, class_ids))
    entries = []
    for f in sorted(frames.to_pylist(), key=lambda f: (videos.get(f["photo_id"], {}).get("relpath") or "",
                                                        f["frame_number"])):
        row = videos.get(f["photo_id"])
        if row is None:
            continue
        name = f"{row['relpath']}/frame{f['frame_number']:06d}.jpg"
        entry: dict[str, Any] = {"file": name, "frame_number": f["frame_number"]}
        if f["failure"]:
            entry.update(failure=f["failure"], detections=None)
        elif not f["assessed"]:
            entry.update(failure=f"not assessed: {f['note'] or 'the detector did not judge this frame'}",
                         detections=None)
        else:
            entry["detections"] = sorted(by_frame.get((f["photo_id"], f["frame_number"]), []), key=lambda d: -d["conf"])
        entries.append(entry)
    maps = {k: md[k] for k in ("classification_categories", "classification_category_descriptions") if k in md}
    return {"info": md["info"], "detection_categories": md["detection_categories"], **maps, "images": entries}


def write_frames(out_uri: str, md: dict[str, Any], images: pa.Table, results: pa.Table,
                 detections: pa.Table) -> str | None:
    """Write ``megadetector_frames.json`` when the run had videos; its URI, else None."""
    found = frames_json(md, images, results, detections)
    if found is None:
        return None
    uri = fs.join(out_uri, FRAMES_JSON)
    fs.write_json(uri, found)
    return uri


# --- Camtrap DP -------------------------------------------------------------------------------------------

def camtrap_detections(detections: list[dict[str, Any]], threshold: float) -> list[dict[str, Any]]:
    """The detection rows Camtrap DP's media observations come from: every photo's as they are; for a video
    one per category and species (its best detection, as MegaDetector's video entry), with ``frames_first`` and
    ``frames_last``, the times of the first and last frame with a positive detection of it, and ``count``, the
    most such detections in one frame."""
    out, spans = [], {}
    for d in detections:
        if d.get("frame_number") is None:
            out.append(d)
            continue
        if d["suspected_static"] or d["conf"] < threshold:
            continue
        key = (d["photo_id"], d["category"], d.get("scientific_name"))  # a species where a classifier named one
        span = spans.setdefault(key, {"best": d, "times": [], "per_frame": {}})
        if d["conf"] > span["best"]["conf"]:
            span["best"] = d
        span["times"].append(d["timestamp"])
        span["per_frame"][d["frame_number"]] = span["per_frame"].get(d["frame_number"], 0) + 1
    for span in spans.values():
        times = [t for t in span["times"] if t is not None]
        out.append(dict(span["best"], frames_first=min(times) if times else None,
                        frames_last=max(times) if times else None, count=max(span["per_frame"].values())))
    return out


def span(photo: dict[str, Any], local_start, detection: dict[str, Any] | None) -> tuple[Any, Any]:
    """A video observation's (eventStart, eventEnd) as local times: the frames of the detection's category, or
    the whole video ([start, start + duration]) for a blank or unclassified one."""
    if local_start is None:
        return None, None
    if detection is not None and detection.get("frames_first") is not None and photo.get("timestamp"):
        return (local_start + (detection["frames_first"] - photo["timestamp"]),
                local_start + (detection["frames_last"] - photo["timestamp"]))
    return local_start, local_start + timedelta(seconds=photo.get("duration_s") or 0)


# --- report.html ------------------------------------------------------------------------------------------

def best_frames(images: pa.Table, positives: list[dict[str, Any]],
                limit: int = REPORT_VIDEOS) -> list[tuple[dict[str, Any], np.ndarray | None, list[dict[str, Any]]]]:
    """For the videos with the best detections (at most ``limit``): (media row, the best frame's pixels or None
    when it cannot be decoded now, that frame's positive boxes)."""
    videos = _videos(images)
    boxes: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for d in positives:
        if d.get("frame_number") is not None:
            boxes.setdefault((d["photo_id"], d["frame_number"]), []).append(d)
    ranked = sorted((r for r in videos.values() if r.get("best_frame") is not None),
                    key=lambda r: (-(r.get("max_conf") or 0), r["relpath"]))[:limit]
    out = []
    for row in ranked:
        img = None
        try:
            with fs.open_read(stage0.openable(row)) as f:
                img = video.read_frame(f, row["best_frame"], row.get("fps"))
        except (video.BadVideo, OSError):
            pass
        out.append((row, img, boxes.get((row["photo_id"], row["best_frame"]), [])))
    return out
