"""The tables users get: images, detections, clusters and deployments as Parquet, and the run report.

Names follow the original design's output format: ``images.parquet`` (every input file exactly once),
``detections.parquet`` (one row per detection), ``clusters.parquet`` (one row per sequence/event),
``deployments.parquet`` (one row per deployment: where it stood, its clock rule, its photos) and
``run_report.json``. README "Data dictionary" describes every column.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

import wildlife
from wildlife import camtrapdp, clock, deployments, fs, publishing, report_html, rowbatches, stage1, video_outputs
from wildlife.answers import tables as answer_tables
from wildlife.detect import mdjson
from wildlife.graph import table_uri
from wildlife.progress import progress_bar

DEPLOYMENTS_SCHEMA = pa.schema([
    ("deployment_id", pa.string()),
    ("in_table", pa.bool_()),  # a row of --deployments (else a folder name)
    ("latitude", pa.float64()), ("longitude", pa.float64()),
    ("location_source", pa.string()), ("location_note", pa.string()),
    ("deployment_start", pa.timestamp("us", tz="UTC")), ("deployment_end", pa.timestamp("us", tz="UTC")),
    ("clock_rule", pa.string()), ("utc_offset_min", pa.int32()), ("timezone", pa.string()),
    ("clock_offset_s", pa.float64()),
    ("photos", pa.int64()), ("photos_ok", pa.int64()), ("photos_time_trusted", pa.int64()),
    ("first_photo_time", pa.timestamp("us", tz="UTC")), ("last_photo_time", pa.timestamp("us", tz="UTC")),
    ("first_photo_local", pa.timestamp("us")), ("last_photo_local", pa.timestamp("us")),
    ("timestamp_issues", pa.bool_()), ("clock_flags", pa.list_(pa.string())),
])


def deployments_summary(deployments_uri: str | None, media: pa.Table) -> tuple[pa.Table, list[str]]:
    """``deployments.parquet``: one row per deployment of the table or of a photo, and warnings for the
    deployments whose photos' GPS disagree. First/last photo times are over photos with a trusted time."""
    table = deployments.load(deployments_uri) if deployments_uri else {}
    cols = ["deployment_id", "status", "gps_latitude", "gps_longitude", "datetime_original", "subsec_time_original",
            "maker_datetime", "timestamp", "timestamp_local", "timestamp_trusted", "clock_flags"]
    ids = sorted(table.keys() | set(pc.unique(media.column("deployment_id")).drop_null().to_pylist()))
    out, warnings = [], []
    for dep_id, rows in deployments.photos_of(media.select(cols), ids):  # one deployment's rows as dicts at a time
        photos = rows.to_pylist() if rows is not None else []
        found = clock.deployment_clocks(photos, {dep_id: table[dep_id]} if dep_id in table else {})[dep_id]
        dep, loc, rule = found.deployment, found.location, found.rule
        ok = [r for r in photos if r["status"] == "ok"]
        good = sorted((r for r in ok if r["timestamp_trusted"]), key=lambda r: r["timestamp"])
        if loc.point is None and loc.gps_point is not None:
            warnings.append(f"deployment {dep_id}: no location: {loc.note}")
        out.append({
            "deployment_id": dep_id, "in_table": dep_id in table, "latitude": loc.latitude,
            "longitude": loc.longitude, "location_source": loc.source, "location_note": loc.note,
            "deployment_start": dep.start, "deployment_end": dep.end, "clock_rule": rule.name,
            "utc_offset_min": rule.offset_min, "timezone": rule.zone,
            "clock_offset_s": dep.clock_offset_s, "photos": len(photos), "photos_ok": len(ok),
            "photos_time_trusted": len(good),
            "first_photo_time": good[0]["timestamp"] if good else None,
            "last_photo_time": good[-1]["timestamp"] if good else None,
            "first_photo_local": good[0]["timestamp_local"] if good else None,
            "last_photo_local": good[-1]["timestamp_local"] if good else None,
            "timestamp_issues": len(good) < len(ok),
            "clock_flags": sorted({f for r in ok for f in r["clock_flags"] or ()}),
        })
    return pa.Table.from_pylist(out, schema=DEPLOYMENTS_SCHEMA), warnings


WRITE_STEPS = 7  # the steps write_all reports progress on


def write_all(state: dict[str, Any]) -> dict[str, Any]:
    with progress_bar("WriteOutputs", total=WRITE_STEPS, unit="steps") as step:
        return _write_all(state, step)


def _write_all(state: dict[str, Any], step: Callable[..., None]) -> dict[str, Any]:
    t0 = time.monotonic()
    params = state["params"]
    out_uri = params["output_uri"]
    media = fs.read_table(table_uri(state, "images"))  # media, Stage 1's results, sequences and events
    clusters = fs.read_table(table_uri(state, "events"))
    weather_uri = table_uri(state, "weather")
    if weather_uri:
        weather = stage1.take_by_key(clusters.column("cluster_id"), fs.read_table(weather_uri), "cluster_id")
        for name in weather.column_names:
            if name != "cluster_id":
                clusters = clusters.append_column(name, weather.column(name))
    step(0, doing="deployments")
    deployments_table, deployment_warnings = deployments_summary(params.get("deployments_uri"), media)
    files = {
        "images.parquet": media,
        "detections.parquet": fs.read_table(table_uri(state, "detections")),  # Stage 2 wrote it there
        "clusters.parquet": clusters,
        "deployments.parquet": deployments_table,
    }
    step(1, doing="Parquet tables")
    for name, table in files.items():
        if name != "detections.parquet":
            fs.write_table(table, fs.join(out_uri, name))
    det = state["Stage1Detect"]["detector"]
    md_uri = fs.join(out_uri, "megadetector.json")
    md = video_outputs.with_videos(mdjson.build(media, files["detections.parquet"], det), media,
                                   files["detections.parquet"])  # MegaDetector's video convention
    fs.write_json(md_uri, md)  # its images are made as they are written, a slice of photos at a time
    results = stage1.read_results(table_uri(state, "results")) if video_outputs.has_videos(media) else None
    frames_uri = (video_outputs.write_frames(out_uri, md, media, results, files["detections.parquet"])
                  if results is not None else None)
    del results  # only the videos' frames are read from it
    step(1, doing="Camtrap DP")
    package_uri = fs.join(out_uri, "camtrap-dp")
    package = camtrapdp.export(
        package_uri, media, files["detections.parquet"], clusters, deployments_uri=params.get("deployments_uri"),
        coords=deployments.coordinates(params.get("deployments_uri"), media),
        detector=f"{det['name']} {det['version']}", threshold=params["conf_threshold"],
        session_id=state["session_id"], humans=params.get("humans"), project=publishing.load(params.get("project_uri")))
    step(1, doing="Camtrap DP validation")
    errors = camtrapdp.validate(package_uri)
    package.update(valid=not errors, errors=errors[:20], error_count=len(errors))  # the report lists them
    if errors:
        package["warnings"].append(f"Camtrap DP: {len(errors)} validation error(s), first: {errors[:3]}")
    state = dict(state, camtrap_dp=package)
    report_uri = fs.join(out_uri, "run_report.json")
    html_uri = fs.join(out_uri, "report.html")
    step(1, doing="answers")
    answers = answer_tables.write(out_uri, media, clusters, deployments_table, params)  # effort, RAI, occupancy...
    created = [fs.join(out_uri, n) for n in files] + [md_uri, *([frames_uri] if frames_uri else []),
                                                      fs.join(package_uri, "datapackage.json"),
                                                      *answers["main_files"], html_uri, report_uri]
    payload = {"parquet_uri": out_uri, "report_uri": report_uri, "weather_uri": weather_uri,
               "files_created": created, "warnings": deployment_warnings + answers.pop("warnings"),
               "answers": answers}
    state = dict(state, WriteOutputs=dict(payload))
    state.setdefault("timings", {})["WriteOutputs"] = round(time.monotonic() - t0, 3)
    step(1, doing="report.html")
    run_report = report(state, media)
    page = report_html.render(run_report, media, files["detections.parquet"], clusters, params["conf_threshold"],
                              deployments.load(params["deployments_uri"]) if params.get("deployments_uri") else {})
    # the measured time includes the rendering: measure after it, then put the figure in both files
    state["timings"]["WriteOutputs"] = round(time.monotonic() - t0, 3)
    final = report(state, media)
    page = page.replace(report_html.estimate_vs_measured(run_report), report_html.estimate_vs_measured(final), 1)
    step(1, doing="run_report.json")
    fs.write_bytes(html_uri, page.encode())
    fs.write_json(report_uri, final)
    step(1)
    return payload


def warnings(state: dict[str, Any]) -> list[str]:
    """The run's warnings: the one list that run_report.json, report.html and the terminal show.

    The run's own, then each stage's in the order they ran, then Camtrap DP's; each message once.
    """
    found = list(state.get("warnings", []))
    for name, payload in state.items():
        if isinstance(payload, dict) and (name[0].isupper() or name == "camtrap_dp"):
            found += payload.get("warnings", [])
    return list(dict.fromkeys(found))


def report(state: dict[str, Any], images: pa.Table | None = None) -> dict[str, Any]:
    """The run report: also written for runs that stopped early (budget refused, failed)."""
    params = state["params"]
    timings = state.get("timings", {})
    stages = {name: dict({k: v for k, v in payload.items() if k != "warnings"}, duration_s=timings.get(name))
              for name, payload in state.items() if isinstance(payload, dict) and name[0].isupper()}
    est = (state.get("CostEstimation") or state.get("GuardBudget") or {}).get("estimate")
    # WriteOutputs is the last stage: once it writes this report, every stage has succeeded
    status = "succeeded" if state.get("WriteOutputs") and not state.get("error") else state.get("status", "running")
    out: dict[str, Any] = {
        "session_id": state["session_id"],
        "status": status,
        "odin_version": wildlife.__version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "params": params,
        "emulated": params.get("emulated"),  # set on an emulator: what did not really run where it says
        "final_results": state.get("WriteOutputs"),
        "detector": state.get("Stage1Detect", {}).get("detector"),
        "estimate": est,
        "measured": {"wall_time_s": round(sum(v for v in timings.values() if v), 2),
                     "cost_dkk": 0.0 if params["target"] == "local" else None},
        "stages": stages,
        "camtrap_dp": {k: v for k, v in state.get("camtrap_dp", {}).items() if k != "warnings"} or None,
        "warnings": warnings(state),
    }
    if state.get("error"):
        out["error"] = state["error"]
    if images is not None:
        out["images"] = {"total": images.num_rows,
                         "by_status": rowbatches.counts(images.column("status")),
                         "reasons": {k: n for k, n in rowbatches.counts(images.column("reason")).items() if k}}
    return out
