"""Stage 2's species step: each deployment's place, and each detection's label from its classifier scores.

Stage 1 hands over ``classifications`` per detection and ``classifier.json`` in its folder (see
``wildlife.classify``); this module reads both, finds the country and region each deployment's geofence uses,
and fills ``detections.parquet``'s species columns with ``rollup.decide``. It needs no model, so a run's
Stage 2 can be repeated with another ``--country``.

A deployment's place, first found wins:

1. the ``country`` column of the deployments table (``DNK``, or a region such as ``US-WY``): "deployments table";
2. the run's ``--country``: "--country";
3. its location (the table's coordinates, else its photos' GPS; ``deployments.locate``) through
   ``geo.locate``: "location";
4. none: "none"; the geofence then takes nothing away there (as SpeciesNet without a country).

A region comes with the code where the user wrote one, else from the location when the location lies in the
same country.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

import pyarrow as pa

from wildlife import deployments as deps
from wildlife import fs, geo
from wildlife.classify import RULES_FILE
from wildlife.classify.rollup import Rules, decide

UNREADABLE = "unreadable classifier output"  # label_source of a box whose scores could not be read
SPECIES_COLUMNS = ("label", "scientific_name", "common_name", "taxon_rank", "class_score", "label_score",
                   "label_source", "classifier")


@dataclass(frozen=True)
class Place:
    country: str | None  # ISO 3166-1 alpha-3
    region: str | None  # ISO 3166-2
    source: str  # "deployments table", "--country", "location" or "none"


def read_rules(stage1_folder: str | None) -> tuple[Rules, str] | None:
    """The classifier's rules and "name version" from Stage 1's ``classifier.json``; None where no
    classifier ran (no file: ``--classifier none``, no weights, or a run from before species)."""
    if not stage1_folder:
        return None
    uri = fs.join(stage1_folder, RULES_FILE)
    if not fs.exists(uri):
        return None
    info = fs.read_json(uri)
    name = " ".join(str(info[k]) for k in ("name", "version") if info.get(k))
    return Rules.from_labels(info.get("labels") or [], info.get("geofence")), name


def places(media: pa.Table, deployments_uri: str | None, run_country: str | None) -> dict[str, Place]:
    """Every deployment's place for the geofence (see the module's order)."""
    table = deps.load(deployments_uri) if deployments_uri else {}
    cols = [c for c in ("deployment_id", "gps_latitude", "gps_longitude") if c in media.column_names]
    located = deps.locations(table, media.select(cols).to_pylist())
    run = geo.place_code(run_country) if run_country else None
    out = {}
    for dep_id, loc in located.items():
        found = geo.locate(*loc.point) if loc.point else (None, None)
        given = table[dep_id].country if dep_id in table else None
        if given:
            code, source = geo.place_code(given, f"deployment {dep_id}: country"), "deployments table"
        elif run:
            code, source = run, "--country"
        else:
            out[dep_id] = Place(*found, "location" if found[0] else "none")
            continue
        region = code[1] or (found[1] if found[0] == code[0] else None)
        out[dep_id] = Place(code[0], region, source)
    return out


def classifications_by_detection(media: pa.Table) -> dict[str, list[dict]]:
    """detection_id (as ``stage2.explode`` numbers them) -> that box's classifier top-k, where it has one."""
    out: dict[str, list[dict]] = {}
    for r in media.select(["photo_id", "detections"]).to_pylist():
        for n, d in enumerate(r["detections"] or []):
            if d.get("classifications"):
                out[f"{r['photo_id']}-{n}"] = d["classifications"]
    return out


def fill(detections: pa.Table, media: pa.Table, rules: tuple[Rules, str] | None,
         where: dict[str, Place]) -> pa.Table:
    """``detections`` with the species columns filled: null for a box no classifier judged."""
    if rules is None or detections.num_rows == 0:
        return detections
    taxa, name = rules
    scores = classifications_by_detection(media)
    values: dict[str, list] = {c: [] for c in SPECIES_COLUMNS}
    for det_id, dep_id, category, conf in zip(*(detections.column(c).to_pylist() for c in (
            "detection_id", "deployment_id", "category", "conf")), strict=True):
        top = [(c["label"], c["score"]) for c in scores.get(det_id) or []]
        place = where.get(dep_id) or Place(None, None, "none")
        row = dict.fromkeys(SPECIES_COLUMNS)
        try:
            decision = decide(top, category, conf, place.country, place.region, taxa)
        except (ValueError, TypeError) as exc:  # a label line the classifier should never have written
            decision = None
            row.update(label_source=f"{UNREADABLE}: {exc}"[:300], classifier=name)
        if decision is not None:
            row.update(label=decision.label.text, scientific_name=decision.label.scientific_name,
                       common_name=decision.label.common_name or None, taxon_rank=decision.label.rank,
                       class_score=top[0][1], label_score=decision.score, label_source=decision.source,
                       classifier=name)
        for c in SPECIES_COLUMNS:
            values[c].append(row[c])
    for c in SPECIES_COLUMNS:
        f = detections.schema.field(c)
        detections = detections.set_column(detections.schema.get_field_index(c), f, pa.array(values[c], f.type))
    return detections


def summary(detections: pa.Table, rules: tuple[Rules, str] | None, where: dict[str, Place]) -> dict[str, Any]:
    """What the run state and report record: the classifier, each deployment's place and where it came from,
    and how the labels were reached."""
    sources = Counter(s.split(":")[0] for s in detections.column("label_source").to_pylist() if s)
    out = {"classifier": rules[1] if rules else None,
           "places": {dep: asdict(p) for dep, p in sorted(where.items())},
           "label_sources": dict(sources), "warnings": []}
    if sources.get(UNREADABLE):
        out["warnings"].append(f"{sources[UNREADABLE]} box(es) with classifier output that could not be read: "
                               "no species for them (label_source says why)")
    if rules is not None and any(p.country is None for p in where.values()):
        missing = sorted(d for d, p in where.items() if p.country is None)
        out["warnings"].append(f"no country for deployment(s) {', '.join(missing)} (no location, or one in no "
                               "country): the species geofence took nothing away there; give --country or a "
                               "country column in --deployments")
    return out


def apply(detections: pa.Table, media: pa.Table, stage1_folder: str | None,
          params: dict[str, Any]) -> tuple[pa.Table, dict[str, Any]]:
    """Stage 2's hook: the detections with their species columns, and the summary for the stage's payload."""
    rules = read_rules(stage1_folder)
    where = places(media, params.get("deployments_uri"), params.get("country")) if rules else {}
    detections = fill(detections, media, rules, where)
    return detections, summary(detections, rules, where)
