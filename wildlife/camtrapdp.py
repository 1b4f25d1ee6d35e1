"""Camtrap DP 1.0.2 export (``camtrap-dp/`` under the output) and its offline validation.

Media-level observations are the positive detections (boxes, machine classification, the detector's name
and version) plus a ``blank`` observation for each photo without one; event-level observations are the
events of Stage 2. Deployments without coordinates cannot be expressed in Camtrap DP: they are left out,
and the run report says so.
"""

from __future__ import annotations

import csv
import io
import json
import os
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from wildlife import clock, deployments, fs, tableschema

VERSION = "1.0.2"
BASE_URL = f"https://raw.githubusercontent.com/tdwg/camtrap-dp/{VERSION}"
SCHEMA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schemas")
TABLES = ("deployments", "media", "observations")
OBSERVATION_TYPE = {"animal": "animal", "person": "human", "vehicle": "vehicle"}
MEDIATYPE = {"jpeg": "image/jpeg", "png": "image/png", "tiff": "image/tiff"}


def _schema(name: str) -> dict[str, Any]:
    file = "camtrap-dp-profile.json" if name == "profile" else f"{name}-table-schema.json"
    with open(os.path.join(SCHEMA_DIR, f"camtrap-dp-{VERSION}", file)) as f:
        return json.load(f)


def _stamp(value: datetime | str | None) -> str | None:
    """ISO 8601 with a UTC offset and whole seconds, as the table schemas' datetime format wants."""
    if value is None:
        return None
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    text = when.replace(microsecond=0).isoformat()
    return text.replace("+00:00", "Z") if text.endswith("+00:00") else text


def _csv(rows: list[dict[str, Any]], fields: list[str]) -> bytes:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("true" if v is True else "false" if v is False else v) for k, v in row.items()})
    return buf.getvalue().encode()


def _deployments(images: list[dict], table_rows: list[dict[str, str]], coords: dict[str, tuple[float, float]]):
    fields = [f["name"] for f in _schema("deployments")["fields"]]
    by_id = {r["deploymentID"]: r for r in table_rows}
    used: dict[str, list[datetime]] = {}
    for r in images:
        used.setdefault(r["deployment_id"], []).append(r["timestamp"])
    rows, left_out = [], []
    for dep_id, times in sorted(used.items()):
        row = {k: v for k, v in by_id.get(dep_id, {}).items() if k in fields and v not in (None, "")}
        row["deploymentID"] = dep_id
        if "latitude" not in row and dep_id in coords:
            row["latitude"], row["longitude"] = (round(c, 6) for c in coords[dep_id])
        if "latitude" not in row:
            left_out.append(dep_id)
            continue
        row.setdefault("deploymentStart", _stamp(min(times)))
        row.setdefault("deploymentEnd", _stamp(max(times)))
        rows.append(row)
    return rows, fields, left_out


def export(
    out_uri: str, images: pa.Table, detections: pa.Table, events: pa.Table, *, deployments_uri: str | None,
    coords: dict[str, tuple[float, float]], detector: str, threshold: float, session_id: str,
) -> dict[str, Any]:
    """Write ``datapackage.json`` and the three tables under ``out_uri``; returns counts and warnings."""
    table_rows = deployments.read_rows(deployments_uri) if deployments_uri else []
    ok = [r for r in images.to_pylist() if r["status"] == "ok" and r["deployment_id"]]
    dep_rows, dep_fields, left_out = _deployments(ok, table_rows, coords)
    kept = {r["deploymentID"] for r in dep_rows}
    ok = [r for r in ok if r["deployment_id"] in kept]
    now = _stamp(datetime.now(UTC))
    media_rows = [{
        "mediaID": r["photo_id"], "deploymentID": r["deployment_id"],
        "captureMethod": "timeLapse" if r.get("trigger_mode") == "Time Lapse" else "activityDetection",
        "timestamp": _stamp(clock.local_time(r)), "filePath": r["relpath"], "filePublic": False,
        "fileName": r["relpath"].rsplit("/", 1)[-1], "fileMediatype": MEDIATYPE.get(r["format"], "image/jpeg"),
        "exifData": json.dumps({k: r[k] for k in ("make", "model", "serial_number", "datetime_original",
                                                  "maker_sequence_index", "maker_sequence_length",
                                                  "ambient_temperature_c", "moon_phase") if r.get(k) is not None}),
    } for r in ok]
    by_photo = {r["photo_id"]: r for r in ok}
    obs = []
    positive_photos = set()
    for d in detections.to_pylist():
        photo = by_photo.get(d["photo_id"])
        if photo is None or d["suspected_static"] or d["conf"] < threshold:
            continue
        positive_photos.add(d["photo_id"])
        obs.append({
            "observationID": d["detection_id"], "deploymentID": photo["deployment_id"], "mediaID": d["photo_id"],
            "eventID": photo.get("event_id"), "eventStart": _stamp(clock.local_time(photo)),
            "eventEnd": _stamp(clock.local_time(photo)), "observationLevel": "media",
            "observationType": OBSERVATION_TYPE[d["category"]], "count": 1,
            "bboxX": d["bbox_x"], "bboxY": d["bbox_y"], "bboxWidth": max(d["bbox_w"], 1e-6),
            "bboxHeight": max(d["bbox_h"], 1e-6), "classificationMethod": "machine", "classifiedBy": detector,
            "classificationTimestamp": now, "classificationProbability": round(d["conf"], 4),
        })
    for pid, photo in by_photo.items():
        if pid not in positive_photos:
            obs.append({"observationID": f"{pid}-blank", "deploymentID": photo["deployment_id"], "mediaID": pid,
                        "eventStart": _stamp(clock.local_time(photo)), "eventEnd": _stamp(clock.local_time(photo)),
                        "observationLevel": "media", "observationType": "blank", "classificationMethod": "machine",
                        "classifiedBy": detector, "classificationTimestamp": now})
    for e in events.to_pylist():
        if e["deployment_id"] in kept:
            obs.append({"observationID": f"event-{e['cluster_id']}", "deploymentID": e["deployment_id"],
                        "eventID": e["cluster_id"], "eventStart": _stamp(e["start"]), "eventEnd": _stamp(e["end"]),
                        "observationLevel": "event", "observationType": OBSERVATION_TYPE[e["top_category"]],
                        "count": e["count"] or 1, "classificationMethod": "machine", "classifiedBy": detector,
                        "classificationTimestamp": now, "classificationProbability": round(e["max_conf"], 4)})
    fields = {"deployments": dep_fields,
              "media": [f["name"] for f in _schema("media")["fields"]],
              "observations": [f["name"] for f in _schema("observations")["fields"]]}
    rows = {"deployments": dep_rows, "media": media_rows, "observations": obs}
    for name in TABLES:
        fs.write_bytes(fs.join(out_uri, f"{name}.csv"), _csv(rows[name], fields[name]))
    fs.write_json(fs.join(out_uri, "datapackage.json"), _descriptor(dep_rows, ok, session_id, detector))
    warnings = []
    if left_out:
        warnings.append(f"Camtrap DP: deployment(s) {left_out[:5]} left out: no coordinates "
                        "(give latitude/longitude in --deployments)")
    return {"uri": out_uri, "deployments": len(dep_rows), "media": len(media_rows), "observations": len(obs),
            "warnings": warnings}


def _descriptor(dep_rows: list[dict], media: list[dict], session_id: str, detector: str) -> dict[str, Any]:
    lats = [float(r["latitude"]) for r in dep_rows] or [0.0]
    lons = [float(r["longitude"]) for r in dep_rows] or [0.0]
    times = [r["timestamp"] for r in media] or [datetime.now(UTC)]
    ring = [[min(lons), min(lats)], [max(lons), min(lats)], [max(lons), max(lats)], [min(lons), max(lats)],
            [min(lons), min(lats)]]
    return {
        "profile": f"{BASE_URL}/camtrap-dp-profile.json",
        "name": f"odin-{session_id}",
        "id": session_id,
        "created": _stamp(datetime.now(UTC)),
        "title": f"Camera-trap detections, Odin run {session_id}",
        "contributors": [{"title": "Odin camera-trap pipeline", "role": "contributor"}],
        "description": f"Media and machine observations produced by {detector}. Species are not identified: "
                       "observations are animal/human/vehicle or blank.",
        "version": "1.0",
        # no "licenses": Camtrap DP then needs one for the data and one for the media, and only the owner of
        # the photos can say what the media license is
        "resources": [{"name": name, "path": f"{name}.csv", "profile": "tabular-data-resource", "format": "csv",
                       "mediatype": "text/csv", "encoding": "utf-8",
                       "schema": f"{BASE_URL}/{name}-table-schema.json"} for name in TABLES],
        "project": {"title": "Camera-trap survey processed with Odin", "samplingDesign": "opportunistic",
                    "captureMethod": ["activityDetection"], "individualAnimals": False,
                    "observationLevel": ["media", "event"]},
        "spatial": {"type": "Polygon", "coordinates": [ring]},
        "temporal": {"start": min(times).date().isoformat(), "end": max(times).date().isoformat()},
        "taxonomic": [],
    }


def validate(package_uri: str) -> list[str]:
    """Errors of a package against the Camtrap DP profile and table schemas (empty when valid), offline."""
    import jsonschema  # noqa: PLC0415
    from referencing import Registry, Resource  # noqa: PLC0415

    def local(name: str) -> Resource:
        with open(os.path.join(SCHEMA_DIR, "offline", name)) as f:
            return Resource.from_contents(json.load(f), default_specification=_draft4())

    registry = Registry().with_resources([
        ("https://specs.frictionlessdata.io/schemas/data-package.json", local("data-package.json")),
        ("http://json.schemastore.org/geojson.json", local("geojson.json")),
    ])
    descriptor = fs.read_json(fs.join(package_uri, "datapackage.json"))
    validator = jsonschema.Draft4Validator(_schema("profile"), registry=registry,
                                           format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)
    errors = [f"datapackage.json: {'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(descriptor)]
    tables, schemas = {}, {}
    for resource in descriptor.get("resources", []):
        if resource.get("name") not in TABLES:
            continue
        schemas[resource["name"]] = _schema(resource["name"])
        tables[resource["name"]] = tableschema.read_csv(fs.read_bytes(fs.join(package_uri, resource["path"])).decode())
        errors += tableschema.validate_rows(tables[resource["name"]], schemas[resource["name"]], resource["name"])
    errors += tableschema.validate_foreign_keys(tables, schemas)
    return errors


def _draft4():
    from referencing.jsonschema import DRAFT4  # noqa: PLC0415

    return DRAFT4
