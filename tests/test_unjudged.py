"""Photos the detector never judged are "not assessed", never "blank": in images.parquet, megadetector.json
(where ``"detections": []`` means processed and empty, and Timelapse files such an image as Empty) and Camtrap DP
(``unclassified``, not ``blank``)."""

from __future__ import annotations

import csv
import json
from datetime import datetime, timedelta
from pathlib import Path

import photofactory as pf
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import odin
from test_engine import _check_md_format

from wildlife import camtrapdp, stage2
from wildlife.detect import Result, mdjson
from wildlife.stage1 import RESULT_SCHEMA, join_results, result_row


@pytest.fixture(scope="module")
def lone_photo_run(tmp_path_factory) -> Path:
    """A burst of three photos the motion baseline compares, one photo alone in its sequence, and one without a
    camera time (dated by the file's mtime, the copy date)."""
    root = tmp_path_factory.mktemp("unjudged")
    bg = pf.scene(160, 120)
    t0 = datetime(2024, 5, 1, 22, 0)
    for i in range(3):
        pf.write_photo(root / "in" / "siteA" / f"burst{i}.jpg", pf.with_animal(bg, (0.2 * i, 0.3, 0.2, 0.3)),
                       when=t0 + timedelta(seconds=i), gps=(62.1, 9.5))
    pf.write_photo(root / "in" / "siteA" / "lone.jpg", pf.with_animal(bg, (0.5, 0.3, 0.2, 0.3)),
                   when=t0 + timedelta(hours=3), gps=(62.1, 9.5))
    pf.write_photo(root / "in" / "siteA" / "notime.jpg", pf.with_animal(bg, (0.1, 0.3, 0.2, 0.3)), gps=(62.1, 9.5))
    out = root / "out"
    result = odin("run", "--input", str(root / "in"), "--output", str(out), "--budget", "1", "--detector", "motion")
    assert result.returncode == 0, result.stderr
    return out


def test_images_say_which_photos_were_assessed(lone_photo_run: Path):
    images = {r["relpath"]: r for r in pq.read_table(lone_photo_run / "images.parquet").to_pylist()}
    assert images["siteA/lone.jpg"]["assessed"] is False
    assert images["siteA/lone.jpg"]["status"] == "ok"  # a photo nobody looked at is not a broken photo
    assert all(images[f"siteA/burst{i}.jpg"]["assessed"] for i in range(3))
    report = json.loads((lone_photo_run / "run_report.json").read_text())
    assert report["stages"]["Stage2Events"]["unassessed"] == 2  # the lone photo, and the one dated by its mtime


def test_a_photo_without_a_camera_time_joins_no_event_and_marks_its_deployment(lone_photo_run: Path):
    images = {r["relpath"]: r for r in pq.read_table(lone_photo_run / "images.parquet").to_pylist()}
    assert "no_exif_time" in images["siteA/notime.jpg"]["clock_flags"]
    assert images["siteA/notime.jpg"]["event_id"] is None
    assert images["siteA/burst0.jpg"]["event_id"] is not None
    report = json.loads((lone_photo_run / "run_report.json").read_text())
    assert report["stages"]["Stage2Events"]["untrusted_time"] == 1
    package = lone_photo_run / "camtrap-dp"
    with (package / "deployments.csv").open() as f:
        (dep,) = csv.DictReader(f)
    # the lone photo's 01:00 in Oslo, not the copy date
    assert dep["timestampIssues"] == "true" and dep["deploymentEnd"] == "2024-05-01T23:00:00Z"
    descriptor = json.loads((package / "datapackage.json").read_text())
    assert descriptor["temporal"] == {"start": "2024-05-01", "end": "2024-05-01"}


def test_megadetector_json_does_not_call_an_unjudged_photo_empty(lone_photo_run: Path):
    doc = json.loads((lone_photo_run / "megadetector.json").read_text())
    _check_md_format(doc)
    entries = {im["file"]: im for im in doc["images"]}
    lone = entries["siteA/lone.jpg"]
    # the format's "not processed": a failure string and detections null, written out (Timelapse's reader turns
    # a missing "detections" into an empty list, i.e. Empty; it skips null)
    assert "detections" in lone and lone["detections"] is None
    assert lone["failure"].startswith("not assessed: alone in its sequence")
    assert all(isinstance(entries[f"siteA/burst{i}.jpg"]["detections"], list) for i in range(3))


def test_camtrap_dp_marks_an_unjudged_photo_unclassified(lone_photo_run: Path):
    package = lone_photo_run / "camtrap-dp"
    assert camtrapdp.validate(str(package)) == []
    with (package / "observations.csv").open() as f:
        obs = list(csv.DictReader(f))
    with (package / "media.csv").open() as f:
        lone_id = next(m["mediaID"] for m in csv.DictReader(f) if m["fileName"] == "lone.jpg")
    (lone,) = [o for o in obs if o["mediaID"] == lone_id]
    assert lone["observationType"] == "unclassified"
    assert not any(o["observationType"] == "blank" for o in obs)


def test_join_results_carries_assessed_and_a_failure_is_not_assessed():
    media = pa.table({"photo_id": ["a", "b", "c", "d"], "status": ["ok", "ok", "ok", "skipped"],
                      "reason": [None, None, None, "not a photo"]})
    results = pa.Table.from_pylist([
        result_row("a", Result()), result_row("b", Result(note="alone", assessed=False)),
        result_row("c", Result(failure="cannot decode image data"))], schema=RESULT_SCHEMA)
    joined = join_results(media, results)
    assert joined.column("assessed").to_pylist() == [True, False, False, False]
    entries = mdjson.build(joined.append_column("relpath", pa.array(["a.jpg", "b.jpg", "c.jpg", "d.txt"])),
                           stage2.DETECTION_SCHEMA.empty_table(), {"name": "odin-motion-baseline", "version": "1.0"})
    entries["images"] = list(entries["images"])  # made as they are written
    _check_md_format(entries)
    by_file = {e["file"]: e for e in entries["images"]}
    assert by_file["a.jpg"] == {"file": "a.jpg", "detections": []}  # judged, nothing found: empty
    assert by_file["b.jpg"]["detections"] is None and by_file["b.jpg"]["failure"] == "not assessed: alone"
    assert by_file["c.jpg"]["failure"] == "detection: cannot decode image data"
