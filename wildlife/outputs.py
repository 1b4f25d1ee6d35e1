"""The tables users get: images, detections and clusters as Parquet, and the run report.

Names follow the original design's output format: ``images.parquet`` (every input file exactly once),
``detections.parquet`` (one row per detection), ``clusters.parquet`` (one row per sequence/event) and
``run_report.json``.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

import wildlife
from wildlife import fs
from wildlife.detect import Result

DETECTION_TYPE = pa.struct([("category", pa.string()), ("conf", pa.float64()), ("bbox", pa.list_(pa.float64()))])
RESULT_SCHEMA = pa.schema([
    ("photo_id", pa.string()),
    ("detections", pa.list_(DETECTION_TYPE)),
    ("failure", pa.string()),
    ("note", pa.string()),
])
CLUSTER_SCHEMA = pa.schema([
    ("cluster_id", pa.string()), ("deployment_id", pa.string()),
    ("start", pa.timestamp("us", tz="UTC")), ("end", pa.timestamp("us", tz="UTC")),
    ("photo_count", pa.int32()), ("positive_photos", pa.int32()),
    ("top_category", pa.string()), ("max_conf", pa.float64()), ("max_count", pa.int32()),
])


def result_row(photo_id: str, result: Result) -> dict[str, Any]:
    return {"photo_id": photo_id, "failure": result.failure, "note": result.note,
            "detections": [{"category": d.category, "conf": d.conf, "bbox": list(d.bbox)}
                           for d in result.detections]}


def join_results(media: pa.Table, results: pa.Table) -> pa.Table:
    """Media rows with their Stage-1 result; a detection failure turns an ok photo into a failed one."""
    idx = pc.index_in(media.column("photo_id"), value_set=results.column("photo_id"))
    matched = results.take(idx)
    failure = matched.column("failure")
    status = pc.if_else(pc.is_valid(failure), "failed", media.column("status"))
    reason = pc.if_else(pc.is_valid(failure), pc.binary_join_element_wise("detection: ", failure, ""),
                        media.column("reason"))
    media = media.set_column(media.schema.get_field_index("status"), "status", status)
    media = media.set_column(media.schema.get_field_index("reason"), "reason", reason)
    return media.append_column("detections", matched.column("detections")) \
                .append_column("detection_note", matched.column("note"))


def _positives(dets: list[dict] | None, threshold: float) -> list[dict]:
    return [d for d in dets or [] if d["conf"] >= threshold]


def clusters(media: pa.Table, threshold: float) -> pa.Table:
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in media.select(["sequence_id", "deployment_id", "timestamp", "detections"]).to_pylist():
        if row["sequence_id"] is not None:
            groups[row["sequence_id"]].append(row)
    out = []
    for cid in sorted(groups):
        rows = groups[cid]
        best: dict | None = None
        positive_photos, max_count = 0, 0
        for r in rows:
            pos = _positives(r["detections"], threshold)
            if pos:
                positive_photos += 1
                max_count = max(max_count, len(pos))
                top = max(pos, key=lambda d: d["conf"])
                if best is None or top["conf"] > best["conf"]:
                    best = top
        times = [r["timestamp"] for r in rows]
        out.append({"cluster_id": cid, "deployment_id": rows[0]["deployment_id"], "start": min(times),
                    "end": max(times), "photo_count": len(rows), "positive_photos": positive_photos,
                    "top_category": best["category"] if best else None,
                    "max_conf": best["conf"] if best else None, "max_count": max_count})
    return pa.Table.from_pylist(out, schema=CLUSTER_SCHEMA)


def _images(media: pa.Table, threshold: float) -> pa.Table:
    dets = media.column("detections").to_pylist()
    pos = [_positives(d, threshold) for d in dets]
    media = media.append_column("n_detections", pa.array([len(p) for p in pos], pa.int32()))
    media = media.append_column("max_conf", pa.array([max((d["conf"] for d in p), default=None) for p in pos],
                                                     pa.float64()))
    media = media.append_column("top_category", pa.array(
        [max(p, key=lambda d: d["conf"])["category"] if p else None for p in pos], pa.string()))
    return media.drop_columns(["detections"])


def _detections(media: pa.Table, detector: str) -> pa.Table:
    rows = []
    for r in media.select(["photo_id", "relpath", "deployment_id", "sequence_id", "timestamp",
                           "detections"]).to_pylist():
        for n, d in enumerate(r["detections"] or []):
            x, y, w, h = d["bbox"]
            rows.append({"detection_id": f"{r['photo_id']}-{n}", "photo_id": r["photo_id"],
                         "relpath": r["relpath"], "deployment_id": r["deployment_id"],
                         "sequence_id": r["sequence_id"], "timestamp": r["timestamp"],
                         "category": d["category"], "conf": d["conf"],
                         "bbox_x": x, "bbox_y": y, "bbox_w": w, "bbox_h": h, "detector": detector})
    schema = pa.schema([
        ("detection_id", pa.string()), ("photo_id", pa.string()), ("relpath", pa.string()),
        ("deployment_id", pa.string()), ("sequence_id", pa.string()), ("timestamp", pa.timestamp("us", tz="UTC")),
        ("category", pa.string()), ("conf", pa.float64()), ("bbox_x", pa.float64()), ("bbox_y", pa.float64()),
        ("bbox_w", pa.float64()), ("bbox_h", pa.float64()), ("detector", pa.string()),
    ])
    return pa.Table.from_pylist(rows, schema=schema)


def write_all(state: dict[str, Any]) -> dict[str, Any]:
    t0 = time.monotonic()
    params = state["params"]
    out_uri = params["output_uri"]
    media = fs.read_table(state["Stage0Exif"]["media_uri"])
    media = join_results(media, fs.read_table(state["Stage1Detect"]["results_uri"]))
    seq = fs.read_table(state["Stage2Events"]["sequences_uri"])
    media = media.append_column("sequence_id", seq.take(pc.index_in(media.column("photo_id"),
                                                                      value_set=seq.column("photo_id")))
                                .column("sequence_id"))
    det = state["Stage1Detect"]["detector"]
    files = {
        "images.parquet": _images(media, params["conf_threshold"]),
        "detections.parquet": _detections(media, f"{det['name']} {det['version']}"),
        "clusters.parquet": fs.read_table(state["Stage2Events"]["clusters_uri"]),
    }
    for name, table in files.items():
        fs.write_table(table, fs.join(out_uri, name))
    report_uri = fs.join(out_uri, "run_report.json")
    created = [fs.join(out_uri, n) for n in files] + [report_uri]
    payload = {"parquet_uri": out_uri, "report_uri": report_uri,
               "weather_uri": state.get("WeatherEnrichment", {}).get("weather_uri"),
               "files_created": created}
    state = dict(state, WriteOutputs=dict(payload))
    state.setdefault("timings", {})["WriteOutputs"] = round(time.monotonic() - t0, 3)
    fs.write_json(report_uri, report(state, files["images.parquet"]))
    return payload


def report(state: dict[str, Any], images: pa.Table | None = None) -> dict[str, Any]:
    """The run report: also written for runs that stopped early (budget refused, failed)."""
    params = state["params"]
    timings = state.get("timings", {})
    stages = {}
    warnings = list(state.get("warnings", []))
    for name, payload in state.items():
        if isinstance(payload, dict) and name[0].isupper():
            summary = {k: v for k, v in payload.items() if k not in ("warnings",)}
            stages[name] = dict(summary, duration_s=timings.get(name))
            warnings += payload.get("warnings", [])
    est = (state.get("CostEstimation") or state.get("GuardBudget") or {}).get("estimate")
    out: dict[str, Any] = {
        "session_id": state["session_id"],
        "status": state.get("status", "succeeded"),
        "odin_version": wildlife.__version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "params": params,
        "final_results": state.get("WriteOutputs"),
        "detector": state.get("Stage1Detect", {}).get("detector"),
        "estimate": est,
        "measured": {"wall_time_s": round(sum(v for v in timings.values() if v), 2),
                     "cost_dkk": 0.0 if params["target"] == "local" else None},
        "stages": stages,
        "warnings": warnings,
    }
    if state.get("error"):
        out["error"] = state["error"]
    if images is not None:
        out["images"] = {"total": images.num_rows,
                         "by_status": dict(Counter(images.column("status").to_pylist())),
                         "reasons": dict(Counter(r for r in images.column("reason").to_pylist() if r))}
    return out
