"""Camtrap DP 1.0.2 export (``camtrap-dp/`` under the output) and its offline validation.

Media-level observations are the positive detections (boxes, machine classification, the detector's name
and version; where a classifier named a taxon, its ``scientificName``, score, name and version) plus, for each
photo without one, a ``blank`` observation when the detector judged it and an ``unclassified`` one when it did
not (``assessed`` false: the motion baseline's lone photos); event-level observations are the events of
Stage 2 (one per deployment, visit and taxon). ``taxonomic`` lists every ``scientificName`` of the observations.

Nothing is invented. Deployments without coordinates cannot be expressed in Camtrap DP: they and their photos
are left out, and so are photos without a deployment; the payload then says ``complete: false`` and a warning
names how many were left out and why (``valid`` only says that the files pass the profile). ``spatial`` comes
from the deployments' coordinates and ``temporal`` from trusted photo times only (``clock.trusted``); where there
are none they are left out (and the package is then not valid, which the report says). A deployment with photos
whose clock cannot be trusted gets ``timestampIssues: true``, and its dates come from its trusted photos.
"""

from __future__ import annotations

import csv
import io
import json
import os
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from wildlife import clock, deployments, fs, privacy, publishing, species
from wildlife.classify import RANKS

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
    """Deployment rows for the photos' deployments, and those left out (deployment -> photos) for lack of
    coordinates."""
    fields = [f["name"] for f in _schema("deployments")["fields"]]
    by_id = {r["deploymentID"]: r for r in table_rows}
    used: dict[str, list[dict]] = {}
    for r in images:
        used.setdefault(r["deployment_id"], []).append(r)
    rows, left_out = [], {}
    for dep_id, photos in sorted(used.items()):
        row = {k: v for k, v in by_id.get(dep_id, {}).items() if k in fields and v not in (None, "")}
        row["deploymentID"] = dep_id
        if "latitude" not in row and dep_id in coords:
            row["latitude"], row["longitude"] = (round(c, 6) for c in coords[dep_id])
        if "latitude" not in row:
            left_out[dep_id] = len(photos)
            continue
        trusted = [p["timestamp"] for p in photos if clock.trusted(p.get("clock_flags"))]
        times = trusted or [p["timestamp"] for p in photos]
        row.setdefault("deploymentStart", _stamp(min(times)))
        row.setdefault("deploymentEnd", _stamp(max(times)))
        if len(trusted) < len(photos):
            row["timestampIssues"] = True
        rows.append(row)
    return rows, fields, left_out


def export(
    out_uri: str, images: pa.Table, detections: pa.Table, events: pa.Table, *, deployments_uri: str | None,
    coords: dict[str, tuple[float, float]], detector: str, threshold: float, session_id: str,
    humans: str | None = None, project: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``datapackage.json`` and the three tables under ``out_uri``; returns counts, completeness, warnings."""
    table_rows = deployments.read_rows(deployments_uri) if deployments_uri else []
    all_ok = [r for r in images.to_pylist() if r["status"] == "ok"]
    ok = [r for r in all_ok if r["deployment_id"]]
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

    def media_level(photo: dict[str, Any]) -> dict[str, Any]:
        flags = [f for f in photo.get("clock_flags") or () if f in clock.UNTRUSTED_FLAGS]
        return {"deploymentID": photo["deployment_id"], "mediaID": photo["photo_id"], "eventID": photo.get("event_id"),
                "eventStart": _stamp(clock.local_time(photo)), "eventEnd": _stamp(clock.local_time(photo)),
                "observationLevel": "media", "classificationMethod": "machine", "classifiedBy": detector,
                "classificationTimestamp": now,
                "observationComments": f"timestamp untrusted: {', '.join(flags)}" if flags else None}

    for d in detections.to_pylist():
        photo = by_photo.get(d["photo_id"])
        if photo is None or d["suspected_static"] or d["conf"] < threshold:
            continue
        positive_photos.add(d["photo_id"])
        obs.append(dict(
            media_level(photo), observationID=d["detection_id"], observationType=OBSERVATION_TYPE[d["category"]],
            count=1, bboxX=d["bbox_x"], bboxY=d["bbox_y"], bboxWidth=max(d["bbox_w"], 1e-6),
            bboxHeight=max(d["bbox_h"], 1e-6), classificationProbability=round(d["conf"], 4))
            | _species(d.get("scientific_name"), d.get("label_score"),
                       None if (d.get("label_source") or "").startswith("detector") else d.get("classifier"))
            | ({"eventID": d["event_id"]} if d.get("event_id") else {}))
    for pid, photo in by_photo.items():
        if pid not in positive_photos:
            kind = "blank" if photo.get("assessed", True) else "unclassified"  # not judged is not empty
            obs.append(dict(media_level(photo), observationID=f"{pid}-{kind}", observationType=kind))
    classifier = ", ".join(species.classifiers(detections)) or None
    for e in events.to_pylist():
        if e["deployment_id"] in kept:
            obs.append({"observationID": f"event-{e['cluster_id']}", "deploymentID": e["deployment_id"],
                        "eventID": e["cluster_id"], "eventStart": _stamp(e["start_time"]),
                        "eventEnd": _stamp(e["end_time"]),
                        "observationLevel": "event", "observationType": OBSERVATION_TYPE[e["top_category"]],
                        "count": e["count"] or 1, "classificationMethod": "machine", "classifiedBy": detector,
                        "classificationTimestamp": now, "classificationProbability": round(e["max_conf"], 4)}
                       | _species(e.get("scientific_name"), e.get("score"), classifier))
    fields = {"deployments": dep_fields,
              "media": [f["name"] for f in _schema("media")["fields"]],
              "observations": [f["name"] for f in _schema("observations")["fields"]]}
    rows = {"deployments": dep_rows, "media": media_rows, "observations": obs}
    people = privacy.package(rows, privacy.people_photos(detections, threshold), humans)  # --humans
    publishing.round_coordinates(dep_rows, project)  # --project's coordinate precision
    for name in TABLES:
        fs.write_bytes(fs.join(out_uri, f"{name}.csv"), _csv(rows[name], fields[name]))
    descriptor = _descriptor(dep_rows, ok, session_id, detector,
                             taxonomic(obs, species.labels(detections, threshold)), classifier)
    fs.write_json(fs.join(out_uri, "datapackage.json"), publishing.descriptor(descriptor, project))
    warnings = []
    no_deployment = len(all_ok) - len([r for r in all_ok if r["deployment_id"]])
    if left_out:
        warnings.append(f"Camtrap DP: deployment(s) {sorted(left_out)[:5]} left out: no coordinates "
                        f"({len(left_out)} deployment(s), {sum(left_out.values())} photo(s) not in the package; "
                        "Camtrap DP requires latitude/longitude: give them in --deployments)")
    if no_deployment:
        warnings.append(f"Camtrap DP: {no_deployment} photo(s) without a deployment left out "
                        "(give --deployments, or put each camera's photos in a folder of their own)")
    for extent, why in (("spatial", "no deployment with coordinates"), ("temporal", "no photo with a trusted time")):
        if extent not in descriptor:
            warnings.append(f"Camtrap DP: {extent} left out ({why}); the package is not valid without it")
    return {"uri": out_uri, "deployments": len(dep_rows), "media": len(media_rows), "observations": len(obs),
            "complete": len(media_rows) == len(all_ok),
            "left_out": {"deployments": len(left_out), "media": len(all_ok) - len(media_rows)},
            "warnings": warnings + _privacy_warnings(people), "privacy": people}


def _privacy_warnings(people: dict[str, Any]) -> list[str]:
    if not people["media_dropped"]:
        return []
    return [f"Camtrap DP: {people['media_dropped']} photo(s) showing people or vehicles left out, with "
            f"{people['observations_dropped']} observation(s) (--humans drop)"]


def _species(scientific_name: str | None, score: float | None, classifier: str | None) -> dict[str, Any]:
    """An observation's species fields where a decision named a taxon: ``scientificName``, and the decision's
    score (after rollup) and the classifier's name (None: the detector's box decided it, e.g. a person box is
    human, and the detector stays ``classifiedBy``) as the most recent classification."""
    if not scientific_name:
        return {}
    out: dict[str, Any] = {"scientificName": scientific_name}
    if classifier:
        out["classifiedBy"] = classifier
    if score is not None:
        out["classificationProbability"] = round(min(max(float(score), 0.0), 1.0), 4)
    return out


def taxonomic(observations: list[dict[str, Any]], labels: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """``datapackage.json`` ``taxonomic``: one entry per ``scientificName`` in the observations, with what the
    classifier's label line says of it: ``taxonID`` (the classifier's own label id, e.g. SpeciesNet's taxonomy
    uuid; not a GBIF or Catalogue of Life id), rank, higher ranks and the English common name."""
    by_name = {}
    for entry in labels.values():
        label = entry["label"]
        if label.scientific_name:
            by_name.setdefault(label.scientific_name, label)
    out = []
    for name in sorted({o["scientificName"] for o in observations if o.get("scientificName")}):
        item: dict[str, Any] = {"scientificName": name}
        label = by_name.get(name)
        if label is not None:
            if label.uuid:
                item["taxonID"] = label.uuid
            item["taxonRank"] = label.rank
            for rank, value in zip(RANKS, label.taxonomy[:-1], strict=False):  # the ranks above it
                item[rank] = value.capitalize()
            if label.common_name:
                item["vernacularNames"] = {"eng": label.common_name}
        out.append(item)
    return out


def _descriptor(dep_rows: list[dict], media: list[dict], session_id: str, detector: str,
                taxa: list[dict[str, Any]] | None = None, classifier: str | None = None) -> dict[str, Any]:
    """The package descriptor; ``spatial`` and ``temporal`` only where real data give them."""
    out: dict[str, Any] = {
        "profile": f"{BASE_URL}/camtrap-dp-profile.json",
        "name": f"odin-{session_id}",
        "id": session_id,
        "created": _stamp(datetime.now(UTC)),
        "title": f"Camera-trap detections, Odin run {session_id}",
        "contributors": [{"title": "Odin camera-trap pipeline", "role": "contributor"}],
        "description": (f"Media and machine observations produced by {detector}, species by {classifier} "
                        "(scientificName where it named a taxon; animal/human/vehicle otherwise)."
                        if classifier and taxa else
                        f"Media and machine observations produced by {detector}. Species are not identified: "
                        "observations are animal/human/vehicle, blank, or unclassified (not judged)."),
        "version": "1.0",
        # no "licenses": Camtrap DP then needs one for the data and one for the media, and only the owner of
        # the photos can say what the media license is
        "resources": [{"name": name, "path": f"{name}.csv", "profile": "tabular-data-resource", "format": "csv",
                       "mediatype": "text/csv", "encoding": "utf-8",
                       "schema": f"{BASE_URL}/{name}-table-schema.json"} for name in TABLES],
        "project": {"title": "Camera-trap survey processed with Odin", "samplingDesign": "opportunistic",
                    "captureMethod": ["activityDetection"], "individualAnimals": False,
                    "observationLevel": ["media", "event"]},
        "taxonomic": taxa or [],
    }
    if dep_rows:
        lats = [float(r["latitude"]) for r in dep_rows]
        lons = [float(r["longitude"]) for r in dep_rows]
        ring = [[min(lons), min(lats)], [max(lons), min(lats)], [max(lons), max(lats)], [min(lons), max(lats)],
                [min(lons), min(lats)]]
        out["spatial"] = {"type": "Polygon", "coordinates": [ring]}
    times = [r["timestamp"] for r in media if clock.trusted(r.get("clock_flags"))]
    if times:
        out["temporal"] = {"start": min(times).date().isoformat(), "end": max(times).date().isoformat()}
    return out


def validate(package_uri: str) -> list[str]:
    """Errors of a package against the Camtrap DP profile and table schemas (empty when valid), offline, by the
    Frictionless validator (``wildlife.package_check``)."""
    from wildlife import package_check  # noqa: PLC0415 - it imports this module's constants

    return package_check.validate(package_uri)
