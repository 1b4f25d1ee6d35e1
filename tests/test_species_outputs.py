"""Species downstream of the classifier, on planted detections: records and independence per taxon, events'
species and counts, Camtrap DP with species validating, megadetector.json classifications, report.html's
species. With the species columns null (no classifier ran) every output
counts per detector category as before, and names no species."""

from __future__ import annotations

import csv
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import photofactory as pf
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import odin
from tinymodels import save_classifier, save_planted_detector

from wildlife import camtrapdp, report_html, species, stage2
from wildlife.classify import Label
from wildlife.detect import mdjson
from wildlife.events import EventRules

ROOT = Path(__file__).resolve().parents[1]
JPEGS = sorted((ROOT / "data" / "sample" / "photos" / "62c200a9").glob("*.JPG"))
T0 = datetime(2021, 5, 31, 20, 0, tzinfo=UTC)
# planted label lines in the classifier's format (the uuids are made up for the test)
FOX = "00000000-0000-4000-8000-000000000f0c;mammalia;carnivora;canidae;vulpes;vulpes;red fox"
BADGER = "00000000-0000-4000-8000-0000000badce;mammalia;carnivora;mustelidae;meles;meles;european badger"
MARTEN = "00000000-0000-4000-8000-00000000a27e;mammalia;carnivora;mustelidae;martes;;martes species"
CLASSIFIER = "tiny-classifier 1.0"
RULES = EventRules(independence_s=1800)


def _images(specs: list[tuple[str, str, float]]) -> pa.Table:
    """Photo rows (photo id, deployment, seconds after T0) as images.parquet has them, on real sample JPEGs."""
    return pa.Table.from_pylist([{
        "photo_id": pid, "relpath": f"{dep}/{pid}.jpg", "uri": str(JPEGS[i % len(JPEGS)]), "deployment_id": dep,
        "status": "ok", "reason": None, "format": "jpeg", "timestamp": T0 + timedelta(seconds=s),
        "timestamp_local": (T0 + timedelta(seconds=s, hours=2)).replace(tzinfo=None), "utc_offset_min": 120,
        "clock_flags": [], "assessed": True, "sequence_id": None,
    } for i, (pid, dep, s) in enumerate(specs)])


def _detections(images: pa.Table, boxes: list[tuple[str, str | None, float]], classified: bool = True) -> pa.Table:
    """Boxes (photo id, label line or None, detector confidence); with ``classified`` the species columns are
    filled as Stage 2 fills them, else null (no classifier ran)."""
    photos = {r["photo_id"]: r for r in images.to_pylist()}
    rows = []
    for n, (pid, label, conf) in enumerate(boxes):
        p = photos[pid]
        row = {"detection_id": f"{pid}-{n}", "photo_id": pid, "relpath": p["relpath"],
               "deployment_id": p["deployment_id"], "sequence_id": None, "timestamp": p["timestamp"],
               "category": "animal", "conf": conf, "bbox_x": 0.1 + 0.3 * (n % 2), "bbox_y": 0.2, "bbox_w": 0.25,
               "bbox_h": 0.3, "suspected_static": False, "detector": "test-detector 5"}
        if classified and label:
            parsed = Label.parse(label)
            row.update(label=label, scientific_name=parsed.scientific_name, common_name=parsed.common_name,
                       taxon_rank=parsed.rank, class_score=0.8, label_score=0.85, label_source="classifier",
                       classifier=CLASSIFIER)
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=stage2.DETECTION_SCHEMA)


def _stage2(images: pa.Table, detections: pa.Table, rules: EventRules = RULES):
    """Stage 2 over planted tables as stages.stage2_events runs it: (images with event ids, detections with
    each box's event, clusters)."""
    best = stage2.per_photo(detections, 0.2)
    idx = {p: i for i, p in enumerate(best.column("photo_id").to_pylist())}
    photos = images.select(["photo_id", "deployment_id", "timestamp"])
    for name in ("top_category", "max_conf", "n_detections"):
        col = best.column(name).to_pylist()
        photos = photos.append_column(name, pa.array([col[idx[p]] if p in idx else None
                                                      for p in images.column("photo_id").to_pylist()],
                                                     best.schema.field(name).type))
    taxa = species.per_photo_taxa(detections, 0.2)
    event_ids, clusters, taxa_events = stage2.group_taxon_events(photos, rules, taxa)
    detections = stage2.box_events(detections, taxa, taxa_events, 0.2)
    return images.append_column("event_id", event_ids), detections, clusters


# --- records per deployment and taxon ---------------------------------------------------------------------


def test_a_fox_and_a_badger_five_minutes_apart_are_two_independent_records_two_foxes_are_one():
    images = _images([("f1", "D", 0), ("b1", "D", 300), ("f2", "D", 600)])
    detections = _detections(images, [("f1", FOX, 0.9), ("b1", BADGER, 0.9), ("f2", FOX, 0.9)])
    _, _, clusters = _stage2(images, detections)
    records = sorted((r["scientific_name"], r["independent"]) for r in clusters.to_pylist())
    assert records == [("Meles meles", True), ("Vulpes vulpes", False), ("Vulpes vulpes", True)]
    # the same boxes without a classifier: all three are "animal", and only the first is independent
    _, _, plain = _stage2(images, _detections(images, [("f1", FOX, 0.9), ("b1", BADGER, 0.9), ("f2", FOX, 0.9)],
                                              classified=False))
    assert sorted((r["taxon"], r["independent"]) for r in plain.to_pylist()) == [
        ("animal", False), ("animal", False), ("animal", True)]
    assert plain.column("scientific_name").null_count == plain.num_rows  # no species invented


@pytest.mark.parametrize("method", ["gap", "hdbscan"])
def test_two_species_in_one_photo_are_two_events_with_their_own_count_and_score(method):
    # one visit: a photo with two foxes and a badger, then a photo with one fox, then an empty photo
    images = _images([("p1", "D", 0), ("p2", "D", 30), ("p3", "D", 60)])
    detections = _detections(images, [("p1", FOX, 0.95), ("p1", FOX, 0.7), ("p1", BADGER, 0.6), ("p2", FOX, 0.8)])
    images, detections, clusters = _stage2(images, detections, EventRules(method=method))
    by_taxon = {r["taxon"]: r for r in clusters.to_pylist()}
    assert set(by_taxon) == {"Vulpes vulpes", "Meles meles"}
    fox, badger = by_taxon["Vulpes vulpes"], by_taxon["Meles meles"]
    assert (fox["count"], fox["common_name"], fox["taxon_rank"], fox["max_conf"]) == (2, "red fox", "species", 0.95)
    assert (badger["count"], badger["common_name"], badger["max_conf"]) == (1, "european badger", 0.6)
    assert fox["score"] == badger["score"] == 0.85
    assert fox["independent"] and badger["independent"]
    # each box names its own event; the photo names the event of its most confident box
    events_of = {(d["photo_id"], d["scientific_name"]): d["event_id"] for d in detections.to_pylist()}
    assert events_of[("p1", "Meles meles")] == badger["cluster_id"] != fox["cluster_id"]
    assert events_of[("p1", "Vulpes vulpes")] == events_of[("p2", "Vulpes vulpes")] == fox["cluster_id"]
    ids = images.column("event_id").to_pylist()
    assert ids[:2] == [fox["cluster_id"]] * 2
    if method == "gap":  # the sequence's empty photo belongs to it, under its most confident record
        assert ids[2] == fox["cluster_id"] and fox["photo_count"] == badger["photo_count"] == 3


def test_a_rolled_up_label_is_its_own_taxon_and_a_blank_decision_keeps_the_detectors_category():
    assert species.taxon_key("animal", "Martes", "martes species") == "Martes"
    assert species.taxon_key("animal", None, "vehicle") == "vehicle"  # a decision outside the taxonomy
    assert species.taxon_key("animal", None, "blank") == "animal"  # the box is something: never counted as nothing
    assert species.taxon_key("person") == "person"  # no classifier judged the box
    cases = [("animal", "Martes", "martes species"), ("animal", None, "vehicle"), ("animal", None, "blank"),
             ("animal", "", " Blank "), ("person", None, None)]
    table = pa.table({"category": [c[0] for c in cases], "scientific_name": pa.array([c[1] for c in cases],
                                                                                      pa.string()),
                      "common_name": pa.array([c[2] for c in cases], pa.string())})
    assert species.taxon_keys(table).to_pylist() == [species.taxon_key(*c) for c in cases]  # one rule, two forms


def test_events_command_counts_records_per_scientific_name(tmp_path):
    table = pa.table({"mediaID": ["m1", "m1", "m2"], "deploymentID": ["d"] * 3,
                      "timestamp": ["2024-06-01T06:00:00+02:00", "2024-06-01T06:00:00+02:00",
                                    "2024-06-01T06:05:00+02:00"],
                      "category": ["animal"] * 3, "conf": [0.9, 0.8, 0.9],
                      "scientificName": ["Vulpes vulpes", "Meles meles", "Vulpes vulpes"]})
    _, clusters = stage2.events_from_table(table, "mediaID", 0.2, RULES)
    assert sorted((r["taxon"], r["independent"]) for r in clusters.to_pylist()) == [
        ("Meles meles", True), ("Vulpes vulpes", False), ("Vulpes vulpes", True)]


# --- Camtrap DP -------------------------------------------------------------------------------------------


def _rows(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


def _package(tmp_path, classified: bool):
    images = _images([("p1", "D", 0), ("p2", "D", 30), ("p3", "D", 4000), ("p4", "D", 8000)])
    detections = _detections(images, [("p1", FOX, 0.95), ("p1", BADGER, 0.6), ("p2", FOX, 0.8),
                                      ("p3", MARTEN, 0.7)], classified=classified)
    images, detections, clusters = _stage2(images, detections)
    package = tmp_path / "pkg"
    payload = camtrapdp.export(str(package), images, detections, clusters, deployments_uri=None,
                               coords={"D": (55.7, 12.5)}, detector="test-detector 5", threshold=0.2,
                               session_id="s1")
    return package, payload, json.loads((package / "datapackage.json").read_text())


def test_camtrap_dp_with_species_validates_and_lists_the_taxa(tmp_path):
    package, _, descriptor = _package(tmp_path, classified=True)
    assert camtrapdp.validate(str(package)) == []
    obs = _rows(package / "observations.csv")
    media_level = [o for o in obs if o["observationLevel"] == "media" and o["observationType"] == "animal"]
    assert sorted(o["scientificName"] for o in media_level) == ["Martes", "Meles meles", "Vulpes vulpes",
                                                               "Vulpes vulpes"]
    assert all(o["classifiedBy"] == CLASSIFIER and o["classificationMethod"] == "machine"
               and o["classificationProbability"] == "0.85" for o in media_level)
    events = [o for o in obs if o["observationLevel"] == "event"]
    assert sorted((o["scientificName"], o["count"]) for o in events) == [
        ("Martes", "1"), ("Meles meles", "1"), ("Vulpes vulpes", "1")]
    # a media-level observation links to its own taxon's event
    event_of = {o["eventID"]: o["scientificName"] for o in events}
    assert all(event_of[o["eventID"]] == o["scientificName"] for o in media_level)
    taxa = {t["scientificName"]: t for t in descriptor["taxonomic"]}
    assert taxa["Vulpes vulpes"] == {"scientificName": "Vulpes vulpes", "taxonID": FOX[:36],
                                     "taxonRank": "species", "class": "Mammalia", "order": "Carnivora",
                                     "family": "Canidae", "genus": "Vulpes", "vernacularNames": {"eng": "red fox"}}
    assert taxa["Martes"]["taxonRank"] == "genus" and "genus" not in taxa["Martes"]
    assert CLASSIFIER in descriptor["description"]


def test_camtrap_dp_without_a_classifier_names_no_species(tmp_path):
    package, _, descriptor = _package(tmp_path, classified=False)
    assert camtrapdp.validate(str(package)) == []
    assert descriptor["taxonomic"] == [] and "Species are not identified" in descriptor["description"]
    assert all(not o["scientificName"] for o in _rows(package / "observations.csv"))


# --- megadetector.json ------------------------------------------------------------------------------------


def test_megadetector_json_carries_classifications_as_timelapse_reads_them():
    images = _images([("p1", "D", 0), ("p2", "D", 30)])
    detections = _detections(images, [("p1", FOX, 0.95), ("p1", BADGER, 0.6), ("p2", None, 0.5)])
    out = mdjson.build(images, detections, {"name": "test-detector", "version": "5"})
    out = json.loads(json.dumps(dict(out, images=list(out["images"]))))  # images: made as they are written
    assert out["info"]["format_version"] == "1.6" and out["info"]["classifier"] == CLASSIFIER
    names = out["classification_categories"]
    assert sorted(names.values()) == ["european badger", "red fox"]
    assert {out["classification_category_descriptions"][i] for i in names} == {FOX, BADGER}
    by_file = {e["file"]: e["detections"] for e in out["images"]}
    fox_box, badger_box = by_file["D/p1.jpg"]
    assert names[fox_box["classifications"][0][0]] == "red fox" and fox_box["classifications"][0][1] == 0.85
    assert names[badger_box["classifications"][0][0]] == "european badger"
    assert "classifications" not in by_file["D/p2.jpg"][0]  # no decision, no classification
    plain = mdjson.build(images, _detections(images, [("p1", FOX, 0.9)], classified=False),
                         {"name": "test-detector", "version": "5"})
    assert "classification_categories" not in plain
    assert "classifications" not in next(plain["images"])["detections"][0]


# --- report.html ------------------------------------------------------------------------------------------


def test_report_shows_species_per_deployment_and_on_the_thumbnails():
    images = _images([("p1", "D", 0), ("p2", "D", 30), ("p3", "E", 0)])
    detections = _detections(images, [("p1", FOX, 0.95), ("p1", BADGER, 0.6), ("p2", FOX, 0.8), ("p3", FOX, 0.9)])
    images, detections, clusters = _stage2(images, detections)
    report = {"session_id": "t", "warnings": [], "stages": {"Stage1Detect": {"classifier": {
        "name": "tiny-classifier", "version": "1.0"}}}}
    page = report_html.render(report, images, detections, clusters, 0.2)
    table = re.search(r'<table id="species-per-deployment">.*?</table>', page, re.S).group(0)
    rows = [re.findall(r"<td[^>]*>([^<]*)</td>", r) for r in re.findall(r"<tr>(.*?)</tr>", table)][1:]
    assert [r[:5] for r in rows] == [["D", "european badger (Meles meles)", "species", "1", "1"],
                                     ["D", "red fox (Vulpes vulpes)", "species", "1", "1"],
                                     ["E", "red fox (Vulpes vulpes)", "species", "1", "1"]]
    assert "Species by tiny-classifier 1.0" in page and "no-species-model" not in page
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", page)
    assert any("european badger (Meles meles) 0.85" in c for c in captions)  # the second taxon has its thumbnail
    assert len(captions) == 3
    # with room for two thumbnails, the less confident badger still gets one before a second fox
    two = re.findall(r"<figcaption>(.*?)</figcaption>", report_html.render(report, images, detections, clusters,
                                                                           0.2, top_events=2))
    assert [("badger" in c, "fox" in c) for c in two] == [(False, True), (True, False)]


def test_report_says_plainly_when_no_species_model_ran():
    images = _images([("p1", "D", 0)])
    detections = _detections(images, [("p1", FOX, 0.9)], classified=False)
    images, detections, clusters = _stage2(images, detections)
    why = ("no species model ran: SpeciesNet is not in the model cache; on a machine with internet run "
           "`scripts/run.py models fetch speciesnet`. Detections only.")
    report = {"session_id": "t", "warnings": [why], "stages": {"Stage1Detect": {"classifier": None}}}
    page = report_html.render(report, images, detections, clusters, 0.2)
    line = re.search(r'<p id="no-species-model"[^>]*>(.*?)</p>', page, re.S).group(1)
    assert "No species model ran" in line and "models fetch speciesnet" in line
    assert "Vulpes" not in page and "red fox" not in page


# --- a run: Stage 1's hand-over planted, Stage 2 (species rules) and the outputs as the pipeline runs them --


def test_a_run_with_a_classifier_carries_species_to_every_output(tmp_path):
    from wildlife import fs, outputs, stage0, stage1, stages  # noqa: PLC0415
    from wildlife.classify import RULES_FILE  # noqa: PLC0415
    from wildlife.classify.rollup import ANIMAL, BLANK, HUMAN, VEHICLE  # noqa: PLC0415

    out, work = tmp_path / "out", tmp_path / "out" / "_run"
    folder = work / "stage1"
    folder.mkdir(parents=True)
    # a fox and a badger in one photo, the fox again 30 s later, and 10 minutes later a fox with a person (a
    # sure person box the classifier called a fox: the species rules make it human from the detector's box)
    seconds = [0, 30, 600]
    boxes = [[("animal", 0.9, [(FOX, 0.95), (BADGER, 0.02)]), ("animal", 0.8, [(BADGER, 0.9), (FOX, 0.05)])],
             [("animal", 0.85, [(FOX, 0.92)])], [("animal", 0.7, [(FOX, 0.9)]), ("person", 0.9, [(FOX, 0.3)])]]
    media = pa.Table.from_pylist([
        {"photo_id": f"p{i}", "relpath": f"cph/p{i}.jpg", "uri": str(JPEGS[i]), "size": 1, "status": "ok",
         "format": "jpeg", "deployment_id": "cph", "timestamp": T0 + timedelta(seconds=s),
         "timestamp_local": (T0 + timedelta(seconds=s, hours=2)).replace(tzinfo=None), "timestamp_trusted": True,
         "utc_offset_min": 120, "clock_flags": [], "gps_latitude": 55.6761, "gps_longitude": 12.5683}
        for i, s in enumerate(seconds)], schema=stage0.MEDIA_SCHEMA)
    fs.write_table(media, str(work / "media.parquet"))
    results = pa.Table.from_pylist([
        {"photo_id": f"p{i}", "sequence_id": f"s{i}", "failure": None, "note": None, "assessed": True,
         "detections": [{"category": cat, "conf": conf, "bbox": [0.1 + 0.4 * k, 0.1, 0.3, 0.3],
                         "classifications": top and [{"label": lab, "score": sc} for lab, sc in top]}
                        for k, (cat, conf, top) in enumerate(photo)]}
        for i, photo in enumerate(boxes)], schema=stage1.RESULT_SCHEMA)
    fs.write_table(results, str(folder / "shard-00000.parquet"))
    labels = [FOX, BADGER, BLANK.text, ANIMAL.text, HUMAN.text, VEHICLE.text]
    fs.write_json(str(folder / RULES_FILE), {"name": "planted", "version": "1", "labels": labels, "geofence": None})
    params = {"output_uri": str(out), "conf_threshold": 0.2, "sequence_gap_s": 60.0, "country": None,
              "deployments_uri": None, "target": "local", "independence_s": 1800.0}
    state = {"session_id": "s1", "params": params, "Stage0Exif": {"media_uri": str(work / "media.parquet")},
             "Stage1Detect": {"results_uri": str(folder), "detector": {"name": "md", "version": "5a"},
                              "classifier": {"name": "planted", "version": "1"}}}
    state["Stage2Events"] = stages.stage2_events(state, stages.Context())
    outputs.write_all(state)

    clusters = fs.read_table(str(out / "clusters.parquet")).to_pylist()
    assert sorted((c["taxon"], c["top_category"], c["count"], c["independent"]) for c in clusters) == [
        ("Homo sapiens", "person", 1, True), ("Meles meles", "animal", 1, True),
        ("Vulpes vulpes", "animal", 1, False), ("Vulpes vulpes", "animal", 1, True)]
    assert camtrapdp.validate(str(out / "camtrap-dp")) == []
    descriptor = json.loads((out / "camtrap-dp" / "datapackage.json").read_text())
    assert [t["scientificName"] for t in descriptor["taxonomic"]] == ["Homo sapiens", "Meles meles", "Vulpes vulpes"]
    obs = [o for o in _rows(out / "camtrap-dp" / "observations.csv") if o["observationLevel"] == "media"]
    assert {(o["scientificName"], o["observationType"], o["classifiedBy"]) for o in obs if o["scientificName"]} == {
        ("Vulpes vulpes", "animal", "planted 1"), ("Meles meles", "animal", "planted 1"),
        ("Homo sapiens", "human", "md 5a")}  # the person box was decided by the detector, not the classifier
    md = json.loads((out / "megadetector.json").read_text())
    assert sorted(md["classification_categories"].values()) == ["european badger", "human", "red fox"]
    page = (out / "report.html").read_text()
    assert "red fox (Vulpes vulpes)" in page and "european badger (Meles meles)" in page
    assert 'id="no-species-model"' not in page


def _coloured_photos(folder: Path) -> Path:
    """Photos whose middle (where the planted detector's box falls) is red, green or red: the colour classifier
    (tinymodels.save_classifier) calls them red fox, european badger, red fox; the last one 10 minutes on."""
    for n, (colour, seconds) in enumerate([((0, 0, 255), 0), ((0, 255, 0), 20), ((0, 0, 255), 600)]):
        pixels = np.full((900, 1280, 3), 90, np.uint8)
        pixels[330:600, 430:850] = colour  # BGR
        pf.write_photo(folder / "siteA" / f"IMG_{n:04d}.JPG", pixels,
                       when=datetime(2024, 5, 1, 22, 0) + timedelta(seconds=seconds), gps=(55.7, 12.5))
    return folder


def test_run_with_a_user_onnx_classifier_names_species_everywhere_and_without_one_says_so(tmp_path):
    det = save_planted_detector(tmp_path / "planted.onnx", [[320, 256, 200, 150, 0.9, 1, 0, 0]])
    clf = save_classifier(tmp_path / "models")
    photos = _coloured_photos(tmp_path / "in")
    out = tmp_path / "out"
    result = odin("run", "--input", str(photos), "--output", str(out), "--budget", "25", "--detector", str(det),
                  "--classifier", str(clf))
    assert result.returncode == 0, result.stderr
    clusters = pq.read_table(out / "clusters.parquet").to_pylist()
    assert sorted((c["scientific_name"], c["independent"]) for c in clusters) == [
        ("Meles meles", True), ("Vulpes vulpes", False), ("Vulpes vulpes", True)]
    named = {c["scientific_name"] for c in clusters}
    assert camtrapdp.validate(str(out / "camtrap-dp")) == []
    descriptor = json.loads((out / "camtrap-dp" / "datapackage.json").read_text())
    obs = _rows(out / "camtrap-dp" / "observations.csv")
    assert {t["scientificName"] for t in descriptor["taxonomic"]} == {o["scientificName"] for o in obs} - {""}
    assert named <= {t["scientificName"] for t in descriptor["taxonomic"]}
    md = json.loads((out / "megadetector.json").read_text())
    assert md["classification_categories"] and any(d.get("classifications") for i in md["images"]
                                                   for d in i["detections"] or [])
    page = (out / "report.html").read_text()
    assert "red fox (Vulpes vulpes)" in page and "Species by colours test-1" in page

    none = tmp_path / "none"
    result = odin("run", "--input", str(photos), "--output", str(none), "--budget", "25", "--detector", str(det),
                  "--classifier", "none")
    assert result.returncode == 0, result.stderr
    page = (none / "report.html").read_text()
    line = re.search(r'<p id="no-species-model"[^>]*>(.*?)</p>', page, re.S).group(1)
    assert "No species model ran" in line and "--classifier none" in line
    assert pq.read_table(none / "clusters.parquet").column("scientific_name").null_count == len(
        pq.read_table(none / "clusters.parquet"))
    assert "classification_categories" not in json.loads((none / "megadetector.json").read_text())
