"""A video's results: its sampled frames as Stage 1 items, their rows folded back into one per video, the
per-frame detections of ``detections.parquet``, and the per-video columns of ``images.parquet``.

Stage 1 runs a video as its sampled frames (``wildlife.video.sample_frames``), each an item keyed
``<photo_id>/frame000030.jpg`` (MegaDetector's frame naming), batched with photos through the same detector.
A video's frames are one checkpoint group, so a run killed inside a video redoes at most that video. For the
motion baseline a video's frames are one sequence of their own (the fixed scene of one clip), never mixed
with photos of another size.

Per video (as MegaDetector's ``frame_results_to_video_results`` with its default, the highest-confidence
frame): the top category and confidence are the best detection over all frames; ``n_detections`` is the
largest count of that category in one frame (never a sum over frames of the same animals); the frames with
positive detections are listed, and ``best_frame`` is the frame of the top detection. Events treat a video as
one media item spanning [start, start + duration].
"""

from __future__ import annotations

import re
from datetime import timedelta
from itertools import groupby
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from wildlife import video

# Stage 1's result columns for videos (null for photos): the item's key, the frame and its offset
FRAME_FIELDS = [
    ("item_id", pa.string()),  # the checkpoint key: photo_id for a photo, video.frame_id(...) for a frame
    ("frame_number", pa.int64()),  # 0 = the video's first frame
    ("frame_time_s", pa.float64()),  # seconds after the video's start: frame_number / fps
]

# images.parquet's per-video result columns (null for photos)
RESULT_COLUMNS = [
    ("frames_sampled", pa.int32()),  # frames Stage 1 ran (under --video-sample)
    ("frames_failed", pa.int32()),  # of those, frames that could not be decoded or detected
    ("frames_with_detections", pa.list_(pa.int64())),  # frame numbers with a positive detection
    ("best_frame", pa.int64()),  # the frame of the video's top detection (report.html shows it)
]


def frame_items(items: list[dict[str, Any]], spec: str) -> list[dict[str, Any]]:
    """Stage 1's items: every photo as it is, every video as its sampled frames (one sequence of their own,
    ``<photo_id>:frames``). A video without a frame count is run as its first frame. A photo's item is the
    dict given, with its ``item_id`` set (not a copy: a million photos are not held twice)."""
    video.parse_sample(spec)
    out = []
    for item in items:
        if item.get("media_type") != "video":
            item["item_id"] = item["photo_id"]
            out.append(item)
            continue
        for n in video.sample_frames(item.get("fps"), item.get("frame_count"), spec) or [0]:
            out.append(dict(item, item_id=video.frame_id(item["photo_id"], n), frame_number=n,
                            frame_time_s=round(n / item["fps"], 6) if item.get("fps") else 0.0,
                            media_sequence_id=item["sequence_id"], sequence_id=f"{item['photo_id']}:frames"))
    return out


def with_frame_columns(results: pa.Table) -> pa.Table:
    """Stage 1 results written before videos were media (shards of an older run): photos only, so each row is
    its own item and no frame."""
    for name, kind in FRAME_FIELDS:
        if name not in results.column_names:
            column = results.column("photo_id") if name == "item_id" else pa.nulls(results.num_rows, kind)
            results = results.append_column(name, column)
    return results


def item_fields(item: dict[str, Any]) -> dict[str, Any]:
    """What a result row adds for its item: the key, and for a frame its number, offset and the video's own
    sequence (not the frames' detector grouping)."""
    out = {"item_id": item["item_id"], "frame_number": item.get("frame_number"),
           "frame_time_s": item.get("frame_time_s")}
    if item.get("frame_number") is not None:
        out["sequence_id"] = item.get("media_sequence_id")
    return out


def fold(results: pa.Table) -> pa.Table:
    """Stage 1's results with one row per file: a video's frame rows become one row (no detections: those
    stay per frame in ``frame_detections``). It fails when every frame failed; a note counts the frames that
    failed; it is assessed when a frame was judged."""
    if "frame_number" not in results.column_names:
        return results
    is_frame = pc.is_valid(results.column("frame_number"))
    if not pc.any(is_frame).as_py():
        return results
    rows = []
    frames = results.filter(is_frame).sort_by([("photo_id", "ascending"), ("frame_number", "ascending")])
    for pid, group in groupby(frames.to_pylist(), key=lambda r: r["photo_id"]):
        group = list(group)
        failed = [r for r in group if r["failure"]]
        judged = [r for r in group if not r["failure"]]
        failure = note = None
        if not judged:
            failure = f"all {len(group)} sampled frames failed: {failed[0]['failure']}"
        elif failed:
            note = f"{len(failed)} of {len(group)} sampled frames failed: {failed[0]['failure']}"
        else:
            note = next((r["note"] for r in judged if r["note"]), None)
        rows.append({"photo_id": pid, "sequence_id": group[0]["sequence_id"], "detections": [], "failure": failure,
                     "note": note, "assessed": any(r["assessed"] for r in judged), "item_id": pid})
    folded = pa.Table.from_pylist(rows, schema=results.schema)
    return pa.concat_tables([results.filter(pc.invert(is_frame)), folded])


def frame_detections(media: pa.Table, results: pa.Table, detector: str, schema: pa.Schema) -> pa.Table:
    """``detections.parquet`` rows (``schema``) of the videos' frames: the frame's number, and its time (the
    video's start + the frame's offset); ``detection_id`` is ``<photo_id>-f<frame>-<n>``."""
    if "frame_number" not in results.column_names:
        return schema.empty_table()
    frames = results.filter(pc.is_valid(results.column("frame_number")))
    if frames.num_rows == 0:
        return schema.empty_table()
    cols = ["photo_id", "relpath", "deployment_id", "timestamp", "status"]
    videos = {r["photo_id"]: r for r in media.select(cols).to_pylist() if r["status"] == "ok"}
    rows = []
    for f in frames.to_pylist():
        v = videos.get(f["photo_id"])
        if v is None or not f["detections"]:
            continue
        when = v["timestamp"] + timedelta(seconds=f["frame_time_s"] or 0) if v["timestamp"] else None
        for n, d in enumerate(f["detections"]):
            x, y, w, h = d["bbox"]
            rows.append({"detection_id": f"{f['photo_id']}-f{f['frame_number']:06d}-{n}", "photo_id": f["photo_id"],
                         "relpath": v["relpath"], "deployment_id": v["deployment_id"], "sequence_id": f["sequence_id"],
                         "timestamp": when, "category": d["category"], "conf": d["conf"], "bbox_x": x, "bbox_y": y,
                         "bbox_w": w, "bbox_h": h, "suspected_static": False, "detector": detector,
                         "frame_number": f["frame_number"]})
    return pa.Table.from_pylist(rows, schema=schema)


def end_times(media: pa.Table) -> pa.Array:
    """Each media row's end: ``timestamp + duration_s`` for a video, ``timestamp`` for a photo."""
    stamp = media.column("timestamp")
    if "duration_s" not in media.column_names:
        return stamp
    micros = pc.multiply(media.column("duration_s").fill_null(0.0), 1e6).cast(pa.int64())
    return pc.add(stamp, micros.cast(pa.duration("us")))


def video_columns(media: pa.Table, results: pa.Table, detections: pa.Table, threshold: float) -> dict[str, pa.Array]:
    """``RESULT_COLUMNS`` per media row: frames run and failed, the frames with a positive detection (at or
    above ``threshold``, not suspected static) and the frame of the top one. Null for photos."""
    stats: dict[str, list[int]] = {}
    if "frame_number" in results.column_names:
        frames = results.filter(pc.is_valid(results.column("frame_number")))
        for pid, failure in zip(frames.column("photo_id").to_pylist(), frames.column("failure").to_pylist(),
                                strict=True):
            stats.setdefault(pid, [0, 0])
            stats[pid][0] += 1
            stats[pid][1] += failure is not None
    positive: dict[str, set[int]] = {}
    best: dict[str, tuple[float, int]] = {}
    if "frame_number" in detections.column_names and detections.num_rows:
        keep = pc.and_(pc.and_(pc.is_valid(detections.column("frame_number")),
                               pc.greater_equal(detections.column("conf"), threshold)),
                       pc.invert(detections.column("suspected_static")))
        for pid, frame, conf in zip(*(detections.filter(keep).column(c).to_pylist()
                                      for c in ("photo_id", "frame_number", "conf")), strict=True):
            positive.setdefault(pid, set()).add(frame)
            if pid not in best or (conf, -frame) > (best[pid][0], -best[pid][1]):
                best[pid] = (conf, frame)
    if not stats and not best:  # no video frames: null for every row, without a Python list per photo
        n = media.num_rows
        return {"frames_sampled": pa.nulls(n, pa.int32()), "frames_failed": pa.nulls(n, pa.int32()),
                "frames_with_detections": pa.nulls(n, pa.list_(pa.int64())), "best_frame": pa.nulls(n, pa.int64())}
    ids = media.column("photo_id").to_pylist()
    return {
        "frames_sampled": pa.array([stats[i][0] if i in stats else None for i in ids], pa.int32()),
        "frames_failed": pa.array([stats[i][1] if i in stats else None for i in ids], pa.int32()),
        "frames_with_detections": pa.array([sorted(positive.get(i, ())) if i in stats else None for i in ids],
                                           pa.list_(pa.int64())),
        "best_frame": pa.array([best[i][1] if i in best else None for i in ids], pa.int64()),
    }


def items_to_run(table: pa.Table, spec: str | None) -> int:
    """What the estimate and the budget count for a manifest (pending rows) or media table (ok rows): one per
    photo, the sampled frames per video (a manifest's video headers are read here: no frame is decoded)."""
    from wildlife import stage0  # noqa: PLC0415 - stage0 imports this module's sibling

    spec = spec or video.DEFAULT_SAMPLE
    cols = [c for c in ("relpath", "uri", "uri_raw", "status", "media_type", "fps", "frame_count")
            if c in table.column_names]
    rows = table.filter(pc.is_in(table.column("status"), value_set=pa.array(["ok", "pending"])))
    # a photo is one item, counted in Arrow; only the rows that may be videos become dicts (a million photo
    # dicts here were the estimate's peak memory)
    ends = "(" + "|".join(re.escape(e) for e in sorted(video.VIDEO_EXTENSIONS)) + ")$"
    maybe = pc.match_substring_regex(pc.utf8_lower(rows.column("relpath")), ends).fill_null(False)
    if "media_type" in rows.column_names:
        maybe = pc.or_(maybe, pc.equal(rows.column("media_type"), "video").fill_null(False))
    total = rows.num_rows - (pc.sum(maybe).as_py() or 0)
    for row in rows.filter(maybe).select(cols).to_pylist():
        if row["status"] == "ok" or (row["status"] == "pending" and not video.is_video(row["relpath"])):
            total += video.frames_of(row, spec)
        elif row["status"] == "pending":
            total += video.sampled_count(stage0.openable(row), spec)
    return total


def with_frame_boxes(media: pa.Table, results: pa.Table) -> pa.Table:
    """``media`` (joined with Stage 1's results) and, for each video frame with boxes, a row of the video with
    ``photo_id`` ``<photo_id>-f<frame>`` and that frame's boxes: what the species decisions read, so that
    ``<photo_id>-f<frame>-<n>`` (``frame_detections``' ids) finds its box's classifications."""
    if "frame_number" not in results.column_names:
        return media
    frames = results.filter(pc.and_(pc.is_valid(results.column("frame_number")),
                                    pc.greater(pc.list_value_length(results.column("detections")), 0)))
    if frames.num_rows == 0:
        return media
    videos = {r["photo_id"]: r for r in media.filter(pc.is_in(media.column("photo_id"),
                                                             value_set=frames.column("photo_id"))).to_pylist()}
    rows = [dict(videos[f["photo_id"]], photo_id=f"{f['photo_id']}-f{f['frame_number']:06d}",
                 detections=f["detections"])
            for f in frames.select(["photo_id", "frame_number", "detections"]).to_pylist() if f["photo_id"] in videos]
    return pa.concat_tables([media, pa.Table.from_pylist(rows, schema=media.schema)])
