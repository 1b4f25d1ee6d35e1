"""Species decisions per box: SpeciesNet's ensemble, rollup and geofence rules with planted scores, and Stage 2
filling detections.parquet's species columns from a planted Stage 1 result."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import photofactory as pf
import pyarrow as pa
import pytest
from conftest import odin

from wildlife import fs, stage0, stage1, stages
from wildlife.classify import RULES_FILE, Label
from wildlife.classify.rollup import ANIMAL, BLANK, HUMAN, VEHICLE, Rules, decide

FOX = "a1;mammalia;carnivora;canidae;vulpes;vulpes;red fox"
ARCTIC = "a2;mammalia;carnivora;canidae;vulpes;lagopus;arctic fox"
VULPES = "a3;mammalia;carnivora;canidae;vulpes;;fox genus"
CANIDAE = "a4;mammalia;carnivora;canidae;;;canine family"
WOLF = "a5;mammalia;carnivora;canidae;canis;lupus;gray wolf"
BADGER = "a6;mammalia;carnivora;mustelidae;meles;meles;european badger"
CARNIVORA = "a7;mammalia;carnivora;;;;carnivorous mammal"
MAMMALIA = "a8;mammalia;;;;;mammal"
ROE = "a9;mammalia;cetartiodactyla;cervidae;capreolus;capreolus;western roe deer"
CERVIDAE = "b1;mammalia;cetartiodactyla;cervidae;;;deer family"
BEAR = "b2;mammalia;carnivora;ursidae;ursus;americanus;american black bear"
URSIDAE = "b3;mammalia;carnivora;ursidae;;;bear family"
LABELS = [FOX, ARCTIC, VULPES, CANIDAE, WOLF, BADGER, CARNIVORA, MAMMALIA, ROE, CERVIDAE, BEAR, URSIDAE,
          BLANK.text, HUMAN.text, VEHICLE.text, ANIMAL.text]
GEOFENCE = {
    "mammalia;carnivora;canidae;vulpes;lagopus": {"allow": {"NOR": [], "SWE": [], "CAN": []}},
    "mammalia;cetartiodactyla;cervidae;capreolus;capreolus": {"block": {"USA": []}},
    "mammalia;carnivora;ursidae;ursus;americanus": {"allow": {"USA": ["NJ", "NY"], "CAN": []}},
}
RULES = Rules.from_labels(LABELS, GEOFENCE)


def _decide(top, category="animal", conf=0.9, country="DNK", region=None, rules=RULES):
    return decide(top, category, conf, country, region, rules)


def _is(decision, label: str, source: str, score: float):
    assert (decision.label.text, decision.source) == (Label.parse(label).text, source)
    assert decision.score == pytest.approx(score)


def test_a_confident_species_is_kept():
    _is(_decide([(FOX, 0.9), (ARCTIC, 0.05)]), FOX, "classifier", 0.9)
    # 0.65..0.8 stands on an animal box above 0.2 (SpeciesNet threshold 4b), not on a faint box
    _is(_decide([(FOX, 0.7), (WOLF, 0.1)], conf=0.5), FOX, "classifier", 0.7)
    _is(_decide([(FOX, 0.7), (WOLF, 0.1)], conf=0.15), VULPES, "classifier+rollup_to_genus", 0.7)


def test_a_low_species_rolls_up_by_summed_score():
    _is(_decide([(FOX, 0.4), (ARCTIC, 0.3), (WOLF, 0.1)]), VULPES, "classifier+rollup_to_genus", 0.7)
    _is(_decide([(FOX, 0.35), (WOLF, 0.35), (BADGER, 0.1)]), CANIDAE, "classifier+rollup_to_family", 0.7)
    _is(_decide([(FOX, 0.35), (BADGER, 0.35), (ROE, 0.1)]), CARNIVORA, "classifier+rollup_to_order", 0.7)
    _is(_decide([(FOX, 0.35), (ROE, 0.35), (BLANK.text, 0.1)]), MAMMALIA, "classifier+rollup_to_class", 0.7)


def test_below_every_threshold_the_box_stays_the_detectors_animal_never_a_species():
    d = _decide([(FOX, 0.3), (ROE, 0.2), (BLANK.text, 0.3)], conf=0.4)
    _is(d, ANIMAL.text, "detector", 0.4)
    assert d.label.scientific_name is None and d.label.rank is None


def test_a_geofenced_species_becomes_its_nearest_allowed_ancestor():
    _is(_decide([(ARCTIC, 0.9), (FOX, 0.05)], country="NOR"), ARCTIC, "classifier", 0.9)
    # not allowed in Denmark: SpeciesNet's geofence rollup starts at family (geofence_utils.py line 253)
    _is(_decide([(ARCTIC, 0.9), (FOX, 0.05)], country="DNK"), CANIDAE, "classifier+geofence+rollup_to_family",
        0.95)
    # a block list: roe deer in the USA
    _is(_decide([(ROE, 0.95)], country="USA"), CERVIDAE, "classifier+geofence+rollup_to_family", 0.95)
    _is(_decide([(ROE, 0.95)], country="DNK"), ROE, "classifier", 0.95)


def test_no_country_means_no_geofence():
    _is(_decide([(ARCTIC, 0.9)], country=None), ARCTIC, "classifier", 0.9)


def test_the_us_state_rule_reads_iso_3166_2_regions():
    _is(_decide([(BEAR, 0.9)], country="USA", region="US-NJ"), BEAR, "classifier", 0.9)
    _is(_decide([(BEAR, 0.9)], country="USA", region="US-WY"), URSIDAE, "classifier+geofence+rollup_to_family",
        0.9)
    # the state unknown: only the country's rule applies (as SpeciesNet)
    _is(_decide([(BEAR, 0.9)], country="USA", region=None), BEAR, "classifier", 0.9)
    _is(_decide([(BEAR, 0.9)], country="DNK"), URSIDAE, "classifier+geofence+rollup_to_family", 0.9)


def test_a_rollup_skips_a_geofenced_taxon():
    # arctic fox plus red fox sum to genus Vulpes, but arctic alone (blocked) must not win a rollup level
    rules = Rules.from_labels(LABELS, {**GEOFENCE, "mammalia;carnivora;canidae;vulpes;": {"allow": {"NOR": []}}})
    _is(_decide([(ARCTIC, 0.5), (FOX, 0.3)], rules=rules), CANIDAE, "classifier+rollup_to_family", 0.8)


def test_blank_only_wins_over_a_faint_box_or_with_near_certainty():
    _is(_decide([(BLANK.text, 0.9), (FOX, 0.05)], conf=0.1), BLANK.text, "classifier", 0.9)
    _is(_decide([(BLANK.text, 0.9), (FOX, 0.05)], conf=0.8), ANIMAL.text, "detector", 0.8)
    _is(_decide([(BLANK.text, 0.995)], conf=0.8), BLANK.text, "classifier", 0.995)


def test_human_and_vehicle_labels_are_reconciled_with_the_box():
    _is(_decide([(FOX, 0.9)], category="person", conf=0.8), HUMAN.text, "detector", 0.8)
    _is(_decide([(HUMAN.text, 0.6)], category="person", conf=0.5), HUMAN.text, "classifier", 0.6)
    _is(_decide([(HUMAN.text, 0.6)], category="vehicle", conf=0.5), HUMAN.text, "classifier", 0.6)
    _is(_decide([(FOX, 0.5)], category="vehicle", conf=0.8), VEHICLE.text, "detector", 0.8)
    _is(_decide([(VEHICLE.text, 0.45)], category="vehicle", conf=0.5), VEHICLE.text, "classifier", 0.45)
    # a human label on an animal box: no species, and no rollup into primates (human's ancestors are not
    # made); SpeciesNet's class rollup says mammal
    _is(_decide([(HUMAN.text, 0.9)]), MAMMALIA, "classifier+rollup_to_class", 0.9)
    # a faint person box stays the detector's person
    _is(_decide([(FOX, 0.1)], category="person", conf=0.15), HUMAN.text, "detector", 0.15)


def test_special_labels_are_known_by_name_whatever_their_uuid():
    other_blank = "0000;;;;;;blank"
    _is(_decide([(other_blank, 0.995)]), other_blank, "classifier", 0.995)


def test_a_species_only_label_list_still_rolls_up_to_taxa_made_from_its_own_labels():
    rules = Rules.from_labels([FOX, ARCTIC, WOLF])
    d = _decide([(FOX, 0.4), (ARCTIC, 0.3)], rules=rules)
    assert (d.label.rank, d.label.scientific_name, d.source) == ("genus", "Vulpes", "classifier+rollup_to_genus")


def test_an_unclassified_box_gets_no_decision():
    assert _decide(None) is None and _decide([]) is None


# --- Stage 2 on a planted Stage 1 result ---------------------------------------------------------------

def _planted_run(tmp_path, classifications, *, country=None, deployments_csv=None, rules=True):
    out = tmp_path / "out"
    work = out / "_run"
    folder = work / "stage1"
    folder.mkdir(parents=True)
    when = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    media = pa.Table.from_pylist([
        {"photo_id": f"p{i}", "relpath": f"cph/p{i}.jpg", "uri": f"/x/cph/p{i}.jpg", "size": 1, "status": "ok",
         "deployment_id": "cph", "timestamp": when, "clock_flags": [], "gps_latitude": 55.6761,
         "gps_longitude": 12.5683} for i in range(len(classifications))], schema=stage0.MEDIA_SCHEMA)
    fs.write_table(media, str(work / "media.parquet"))
    results = pa.Table.from_pylist([
        {"photo_id": f"p{i}", "sequence_id": f"s{i}", "failure": None, "note": None, "assessed": True,
         "detections": [{"category": cat, "conf": conf, "bbox": [0.1, 0.1, 0.3, 0.3],
                         "classifications": None if top is None else [{"label": lab, "score": s} for lab, s in top]}
                        for cat, conf, top in boxes]}
        for i, boxes in enumerate(classifications)], schema=stage1.RESULT_SCHEMA)
    fs.write_table(results, str(folder / "shard-00000.parquet"))
    if rules:
        fs.write_json(str(folder / RULES_FILE), {"name": "planted", "version": "1", "labels": LABELS,
                                                   "geofence": GEOFENCE})
    params = {"output_uri": str(out), "conf_threshold": 0.2, "sequence_gap_s": 60.0, "country": country,
              "deployments_uri": deployments_csv}
    state = {"params": params, "Stage0Exif": {"media_uri": str(work / "media.parquet")},
             "Stage1Detect": {"results_uri": str(folder), "detector": {"name": "md", "version": "5a"}}}
    payload = stages.stage2_events(state, stages.Context())
    return fs.read_table(payload["detections_uri"]).to_pylist(), payload


def test_stage2_writes_each_boxs_species_two_species_in_one_photo(tmp_path):
    rows, payload = _planted_run(tmp_path, [
        [("animal", 0.9, [(FOX, 0.92), (ARCTIC, 0.03)]), ("animal", 0.8, [(BADGER, 0.4), (FOX, 0.1)])],
        [("animal", 0.9, [(ARCTIC, 0.9), (FOX, 0.05)]), ("person", 0.9, None)],
    ])
    got = {r["detection_id"]: (r["scientific_name"], r["common_name"], r["taxon_rank"], r["label_source"],
                               r["class_score"], r["label_score"], r["classifier"]) for r in rows}
    assert got["p0-0"] == ("Vulpes vulpes", "red fox", "species", "classifier", 0.92, 0.92, "planted 1")
    assert got["p0-1"] == (None, "animal", None, "detector", 0.4, 0.8, "planted 1")
    # Copenhagen's photos put the deployment in Denmark, where the arctic fox is geofenced away
    assert got["p1-0"][:4] == ("Canidae", "canine family", "family", "classifier+geofence+rollup_to_family")
    assert got["p1-1"] == (None,) * 7  # a box no classifier judged
    assert payload["species"]["places"] == {"cph": {"country": "DNK", "region": None, "source": "location"}}
    assert payload["species"]["label_sources"]["classifier"] == 1


def test_country_overrides_the_location_and_the_table_overrides_the_run(tmp_path):
    box = [[("animal", 0.9, [(ARCTIC, 0.9), (FOX, 0.05)])]]
    rows, payload = _planted_run(tmp_path / "run", box, country="NOR")
    assert rows[0]["scientific_name"] == "Vulpes lagopus"
    assert payload["species"]["places"]["cph"] == {"country": "NOR", "region": None, "source": "--country"}
    table = tmp_path / "deployments.csv"
    table.write_text("deploymentID,latitude,longitude,country\ncph,55.6761,12.5683,DNK\n")
    rows, payload = _planted_run(tmp_path / "table", box, country="NOR", deployments_csv=str(table))
    assert rows[0]["scientific_name"] == "Canidae"
    assert payload["species"]["places"]["cph"]["source"] == "deployments table"


def test_a_run_without_a_classifier_leaves_the_species_columns_null(tmp_path):
    rows, payload = _planted_run(tmp_path, [[("animal", 0.9, None)]], rules=False)
    assert rows[0]["label"] is None and rows[0]["category"] == "animal"
    assert payload["species"]["classifier"] is None and payload["species"]["places"] == {}


def test_a_box_with_unreadable_classifier_output_is_kept_with_the_reason(tmp_path):
    rows, payload = _planted_run(tmp_path, [[("animal", 0.9, [("not;a;label", 0.9)]), ("animal", 0.8, [(FOX, 0.9)])]])
    assert rows[0]["label"] is None and rows[0]["label_source"].startswith("unreadable classifier output: ")
    assert rows[0]["category"] == "animal" and rows[1]["scientific_name"] == "Vulpes vulpes"
    assert any("could not be read" in w for w in payload["warnings"])


def test_stage2_decides_again_with_another_country_without_the_model(tmp_path):
    """`scripts/run.py stage Stage2Events --country X` re-applies the geofence from Stage 1's hand-over."""
    photos, out = tmp_path / "photos", tmp_path / "out"
    bg = pf.scene(320, 240, seed=1)
    for i in range(3):
        pf.write_photo(photos / "cam" / f"IMG_{i}.JPG", pf.with_animal(bg, (0.1 + 0.2 * i, 0.3, 0.2, 0.3)),
                       when=datetime(2024, 7, 1, 6) + timedelta(seconds=i))
    result = odin("run", "--input", str(photos), "--output", str(out), "--budget", "25", "--detector", "motion",
                  "--weather-provider", "none", "--country", "NOR")
    assert result.returncode == 0, result.stderr
    folder = json.loads((out / "_run" / "state.json").read_text())["Stage1Detect"]["results_uri"]
    # plant what a classifier's Stage 1 hands over: every box an arctic fox, and the classifier's rules
    shard = fs.join(folder, "shard-00000.parquet")
    rows = fs.read_table(shard).to_pylist()
    for r in rows:
        for d in r["detections"] or []:
            d["classifications"] = [{"label": ARCTIC, "score": 0.9}, {"label": FOX, "score": 0.05}]
    assert any(r["detections"] for r in rows)
    fs.write_table(pa.Table.from_pylist(rows, schema=stage1.RESULT_SCHEMA), shard)
    fs.write_json(fs.join(folder, RULES_FILE), {"name": "planted", "version": "1", "labels": LABELS,
                                                "geofence": GEOFENCE})
    for country, name in (("NOR", "Vulpes lagopus"), ("DNK", "Canidae")):
        result = odin("stage", "Stage2Events", "--output", str(out), "--country", country)
        assert result.returncode == 0, result.stderr
        labels = {r["scientific_name"] for r in fs.read_table(str(out / "detections.parquet")).to_pylist()}
        assert labels == {name}
        report = json.loads((out / "run_report.json").read_text())
        assert report["stages"]["Stage2Events"]["species"]["places"]["cam"] == {
            "country": country, "region": None, "source": "--country"}


def test_a_deployment_in_no_country_is_named_and_its_boxes_are_not_geofenced(tmp_path):
    table = tmp_path / "deployments.csv"
    table.write_text("deploymentID,latitude,longitude\ncph,56.0,3.0\n")  # the North Sea
    rows, payload = _planted_run(tmp_path / "run", [[("animal", 0.9, [(ARCTIC, 0.9)])]], deployments_csv=str(table))
    assert rows[0]["scientific_name"] == "Vulpes lagopus"
    assert payload["species"]["places"]["cph"] == {"country": None, "region": None, "source": "none"}
    assert any("no country for deployment(s) cph" in w and "--country" in w for w in payload["warnings"])
