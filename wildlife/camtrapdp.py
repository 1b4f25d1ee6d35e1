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
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from wildlife import clock, deployments, fs, privacy, publishing, rowbatches, species, video, video_outputs
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


def _csv(batches: Iterable[list[dict[str, Any]]], fields: list[str]) -> Iterator[str]:
    """The CSV text of the rows, for ``fs.write_text``: a batch of rows at a time, never the whole file."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for rows in batches:
        for row in rows:
            writer.writerow({k: ("true" if v is True else "false" if v is False else v) for k, v in row.items()})
        yield buf.getvalue()
        buf.seek(0)
        buf.truncate()
    yield buf.getvalue()


def _deployments(ok: pa.Table, table_rows: list[dict[str, str]], coords: dict[str, tuple[float, float]]):
    """Deployment rows for the photos' deployments (``ok``: photos with one), those left out (deployment ->
    photos) for lack of coordinates, and the first and last trusted photo time of those kept (None: none)."""
    fields = [f["name"] for f in _schema("deployments")["fields"]]
    by_id = {r["deploymentID"]: r for r in table_rows}
    rows, left_out, period = [], {}, None
    for dep_id, photos_of in deployments.by_deployment(ok.select(["deployment_id", "timestamp", "clock_flags"])):
        photos = photos_of.to_pylist()  # one deployment's photos as dicts at a time
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
        if trusted:
            first, last = min(trusted), max(trusted)
            period = (min(period[0], first), max(period[1], last)) if period else (first, last)
        rows.append(row)
    return rows, fields, left_out, period


# media columns no Camtrap DP field is made from: left out of the rows export holds (memory at a million photos)
UNREAD = ("uri", "uri_raw", "size", "mtime", "reason", "deployment_assigned_by", "timestamp_source",
          "timestamp_trusted", "width", "height", "user_label", "subsec_time_original", "offset_time_original",
          "maker_datetime", "gps_latitude", "gps_longitude", "gps_altitude", "maker_event_number", "exif_error",
          "detection_note", "sequence_id", "top_category", "max_conf", "n_detections")


def _photos(images: pa.Table) -> tuple[pa.Array, pa.Array]:
    """Masks over ``images``: the ok photos, and those of them with a deployment (not null, not empty)."""
    ok = pc.equal(images.column("status"), "ok").fill_null(False)
    dep = images.column("deployment_id").cast(pa.string())
    return ok, pc.and_(ok, pc.and_kleene(pc.is_valid(dep), pc.not_equal(dep, "")).fill_null(False))


def export(
    out_uri: str, images: pa.Table, detections: pa.Table, events: pa.Table, *, deployments_uri: str | None,
    coords: dict[str, tuple[float, float]], detector: str, threshold: float, session_id: str,
    humans: str | None = None, project: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``datapackage.json`` and the three tables under ``out_uri``; returns counts, completeness, warnings.

    The media and observation rows are made and written ``rowbatches.ROWS`` at a time (with ``--humans``
    applied to each batch), so a million photos are never all Python objects at once."""
    table_rows = deployments.read_rows(deployments_uri) if deployments_uri else []
    is_ok, with_dep = _photos(images)  # masks, counted: the one copy of the photos is made once kept is known
    n_ok, n_with_dep = pc.sum(is_ok).as_py() or 0, pc.sum(with_dep).as_py() or 0
    dep_rows, dep_fields, left_out, period = _deployments(
        images.select(["deployment_id", "timestamp", "clock_flags"]).filter(with_dep), table_rows, coords)
    kept = {r["deploymentID"] for r in dep_rows}
    in_kept = pc.is_in(images.column("deployment_id").cast(pa.string()), value_set=pa.array(sorted(kept), pa.string()))
    ok = images.drop_columns([c for c in UNREAD if c in images.column_names]).filter(
        pc.and_(with_dep, in_kept.fill_null(False)))
    people = privacy.people_photos(detections, threshold)
    counts = privacy.package({"media": [], "observations": []}, people, humans)  # --humans, checked first
    written = {"media": 0, "observations": 0}
    names: set[str] = set()  # the observations' scientificName, for ``taxonomic``

    def private(table: str, batches: Iterable[list[dict[str, Any]]]) -> Iterator[list[dict[str, Any]]]:
        for rows in batches:
            found = privacy.package({"media": [], "observations": [], table: rows}, people, humans)
            counts.update({k: counts[k] + v for k, v in found.items() if k != "humans"})
            written[table] += len(rows)
            names.update(r["scientificName"] for r in rows if r.get("scientificName"))
            yield rows

    classifier = ", ".join(species.classifiers(detections)) or None
    observations = _observations(ok, detections, events, kept, threshold, detector, _stamp(datetime.now(UTC)),
                                 classifier)
    publishing.round_coordinates(dep_rows, project)  # --project's coordinate precision
    fields = {"deployments": dep_fields,
              "media": [f["name"] for f in _schema("media")["fields"]],
              "observations": [f["name"] for f in _schema("observations")["fields"]]}
    for name, batches in (("deployments", [dep_rows]), ("media", private("media", _media_rows(ok))),
                          ("observations", private("observations", observations))):
        fs.write_text(fs.join(out_uri, f"{name}.csv"), _csv(batches, fields[name]))
    taxa = taxonomic([{"scientificName": n} for n in names], species.labels(detections, threshold))
    descriptor = _descriptor(dep_rows, period, session_id, detector, taxa, classifier)
    fs.write_json(fs.join(out_uri, "datapackage.json"), publishing.descriptor(descriptor, project))
    warnings = []
    no_deployment = n_ok - n_with_dep
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
    return {"uri": out_uri, "deployments": len(dep_rows), "media": written["media"],
            "observations": written["observations"], "complete": written["media"] == n_ok,
            "left_out": {"deployments": len(left_out), "media": n_ok - written["media"]},
            "warnings": warnings + _privacy_warnings(counts), "privacy": counts}


def _media_rows(ok: pa.Table) -> Iterator[list[dict[str, Any]]]:
    for part in rowbatches.slices(ok):
        yield [{
            "mediaID": r["photo_id"], "deploymentID": r["deployment_id"],
            "captureMethod": "timeLapse" if r.get("trigger_mode") == "Time Lapse" else "activityDetection",
            "timestamp": _stamp(clock.local_time(r)), "filePath": r["relpath"], "filePublic": False,
            "fileName": r["relpath"].rsplit("/", 1)[-1],
            "fileMediatype": video.mime(r["relpath"]) if r.get("media_type") == "video"
            else MEDIATYPE.get(r["format"], "image/jpeg"),
            "exifData": json.dumps({k: r[k] for k in ("make", "model", "serial_number", "datetime_original",
                                                      "maker_sequence_index", "maker_sequence_length",
                                                      "ambient_temperature_c", "moon_phase") if r.get(k) is not None}),
        } for r in part.to_pylist()]


def _media_level(photo: dict[str, Any], detection: dict[str, Any] | None, detector: str, now: str) -> dict[str, Any]:
    flags = [f for f in photo.get("clock_flags") or () if f in clock.UNTRUSTED_FLAGS]
    start = end = clock.local_time(photo)
    if photo.get("media_type") == "video":  # observations span the frames (wildlife.video_outputs)
        start, end = video_outputs.span(photo, start, detection)
    return {"deploymentID": photo["deployment_id"], "mediaID": photo["photo_id"], "eventID": photo.get("event_id"),
            "eventStart": _stamp(start), "eventEnd": _stamp(end),
            "observationLevel": "media", "classificationMethod": "machine", "classifiedBy": detector,
            "classificationTimestamp": now,
            "observationComments": f"timestamp untrusted: {', '.join(flags)}" if flags else None}


def _observations(ok: pa.Table, detections: pa.Table, events: pa.Table, kept: set[str], threshold: float,
                  detector: str, now: str, classifier: str | None) -> Iterator[list[dict[str, Any]]]:
    """Observation rows in batches: the positive detections' (photos' in detection order, then one per video,
    category and species), a ``blank`` or ``unclassified`` one per photo without one, then the events'."""
    frames = video_outputs.frame_detections(detections)
    photo_dets = detections if frames.num_rows == 0 else detections.filter(
        pc.is_null(detections.column("frame_number")))

    def positive(dets: list[dict[str, Any]], photos: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for d in dets:
            photo = photos.get(d["photo_id"])
            if photo is None or d["suspected_static"] or d["conf"] < threshold:
                continue
            out.append(dict(
                _media_level(photo, d, detector, now), observationID=d["detection_id"],
                observationType=OBSERVATION_TYPE[d["category"]], count=d.get("count") or 1, bboxX=d["bbox_x"],
                bboxY=d["bbox_y"], bboxWidth=max(d["bbox_w"], 1e-6), bboxHeight=max(d["bbox_h"], 1e-6),
                classificationProbability=round(d["conf"], 4))
                | _species(d.get("scientific_name"), d.get("label_score"),
                           None if (d.get("label_source") or "").startswith("detector") else d.get("classifier"))
                | ({"eventID": d["event_id"]} if d.get("event_id") else {}))
        return out

    for dets, photos in rowbatches.with_rows(photo_dets, ok, "photo_id"):
        yield positive(dets, photos)
    # a video: one per category and species, over its frames
    yield positive(video_outputs.camtrap_detections(frames.to_pylist(), threshold),
                   rowbatches.lookup(ok, "photo_id", frames.column("photo_id")))
    hit = detections.filter(pc.and_(pc.invert(detections.column("suspected_static").fill_null(False)),
                                    pc.greater_equal(detections.column("conf"), threshold)))
    has_positive = pc.is_in(ok.column("photo_id"), value_set=pc.unique(hit.column("photo_id")))
    for part in rowbatches.slices(ok.append_column("_positive", has_positive)):
        rows = []
        for photo in part.to_pylist():
            if not photo["_positive"]:
                kind = "blank" if photo.get("assessed", True) else "unclassified"  # not judged is not empty
                rows.append(dict(_media_level(photo, None, detector, now), observationID=f"{photo['photo_id']}-{kind}",
                                 observationType=kind))
        yield rows
    for part in rowbatches.slices(events):
        yield [{"observationID": f"event-{e['cluster_id']}", "deploymentID": e["deployment_id"],
                "eventID": e["cluster_id"], "eventStart": _stamp(e["start_time"]), "eventEnd": _stamp(e["end_time"]),
                "observationLevel": "event", "observationType": OBSERVATION_TYPE[e["top_category"]],
                "count": e["count"] or 1, "classificationMethod": "machine", "classifiedBy": detector,
                "classificationTimestamp": now, "classificationProbability": round(e["max_conf"], 4)}
               | _species(e.get("scientific_name"), e.get("score"), classifier)
               for e in part.to_pylist() if e["deployment_id"] in kept]


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


def _descriptor(dep_rows: list[dict], period: tuple[datetime, datetime] | None, session_id: str, detector: str,
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
    if period:  # the first and last trusted photo time
        out["temporal"] = {"start": period[0].date().isoformat(), "end": period[1].date().isoformat()}
    return out


def validate(package_uri: str) -> list[str]:
    """Errors of a package against the Camtrap DP profile and table schemas (empty when valid), offline, by the
    Frictionless validator (``wildlife.package_check``)."""
    from wildlife import package_check  # noqa: PLC0415 - it imports this module's constants

    return package_check.validate(package_uri)
