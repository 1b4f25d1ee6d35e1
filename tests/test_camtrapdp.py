"""The Camtrap DP export validates offline against the official 1.0.2 profile and table schemas."""

from __future__ import annotations

import csv
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import photofactory as pf
import pyarrow as pa
from conftest import odin

from wildlife import camtrapdp, stage2


def _rows(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_sample_package_is_valid_camtrap_dp(sample_run: Path):
    package = sample_run / "camtrap-dp"
    assert camtrapdp.validate(str(package)) == []
    descriptor = json.loads((package / "datapackage.json").read_text())
    assert descriptor["profile"].endswith("/1.0.2/camtrap-dp-profile.json")
    assert [r["name"] for r in descriptor["resources"]] == ["deployments", "media", "observations"]
    media = _rows(package / "media.csv")
    assert len(media) == 10 and media[0]["timestamp"] == "2021-04-11T20:43:09+01:00"
    obs = _rows(package / "observations.csv")
    events = [o for o in obs if o["observationLevel"] == "event"]
    assert len(events) == 1 and events[0]["observationType"] == "animal"
    media_level = [o for o in obs if o["observationLevel"] == "media"]
    assert {o["eventID"] for o in media_level if o["observationType"] != "blank"} == {events[0]["eventID"]}
    assert all(o["classificationMethod"] == "machine" and o["classifiedBy"].startswith("odin-motion-baseline")
               for o in obs)
    report = json.loads((sample_run / "run_report.json").read_text())
    assert report["camtrap_dp"]["valid"] is True and report["camtrap_dp"]["complete"] is True


def test_validation_catches_broken_packages(sample_run: Path, tmp_path):
    package = tmp_path / "pkg"
    shutil.copytree(sample_run / "camtrap-dp", package)
    media = (package / "media.csv").read_text().splitlines()
    media[1] = media[1].replace("+01:00", "", 1)  # a timestamp without its offset
    (package / "media.csv").write_text("\n".join(media) + "\n")
    obs = (package / "observations.csv").read_text().replace("62c200a9,", "nowhere,", 1)
    (package / "observations.csv").write_text(obs)
    descriptor = json.loads((package / "datapackage.json").read_text())
    del descriptor["project"]
    (package / "datapackage.json").write_text(json.dumps(descriptor))
    errors = camtrapdp.validate(str(package))
    # the Frictionless validator's findings: a descriptor error does not hide the tables' errors
    assert any(e.startswith("media row 2: timestamp: type is") for e in errors), errors
    assert any(e.startswith("observations row 2:") and '"nowhere" not found' in e and "deployments" in e
               for e in errors), errors
    assert "datapackage.json: 'project' is a required property" in errors


def test_coordinates_from_exif_gps_when_there_is_no_table(tmp_path):
    bg = pf.scene(160, 120)
    t0 = datetime(2024, 5, 1, 22, 0)
    for i in range(3):
        pf.write_photo(tmp_path / "in" / "siteA" / f"{i}.jpg", pf.with_animal(bg, (0.2 * i, 0.3, 0.2, 0.3)),
                       when=t0 + timedelta(seconds=i), gps=(62.1, 9.5))
    pf.write_photo(tmp_path / "in" / "nogps" / "x.jpg", bg, when=t0)
    out = tmp_path / "out"
    result = odin("run", "--input", str(tmp_path / "in"), "--output", str(out), "--budget", "1",
                  "--detector", "motion")
    assert result.returncode == 0, result.stderr
    assert camtrapdp.validate(str(out / "camtrap-dp")) == []
    (dep,) = _rows(out / "camtrap-dp" / "deployments.csv")
    assert (dep["deploymentID"], float(dep["latitude"]), float(dep["longitude"])) == ("siteA", 62.1, 9.5)
    report = json.loads((out / "run_report.json").read_text())
    assert any("['nogps'] left out" in w and "1 photo(s) not in the package" in w for w in report["warnings"])
    assert report["camtrap_dp"]["complete"] is False
    assert report["camtrap_dp"]["left_out"] == {"deployments": 1, "media": 1}


def _export(tmp_path, photos, coords):
    """camtrapdp.export over media rows (deployment, UTC time, clock flags), without detections or events."""
    images = pa.Table.from_pylist([{
        "photo_id": f"p{i}", "status": "ok", "deployment_id": dep, "relpath": f"{dep}/p{i}.jpg", "format": "jpeg",
        "timestamp": when, "timestamp_local": when.replace(tzinfo=None), "utc_offset_min": 0, "clock_flags": flags,
        "assessed": True, "event_id": None} for i, (dep, when, flags) in enumerate(photos)])
    package = tmp_path / "pkg"
    payload = camtrapdp.export(str(package), images, stage2.DETECTION_SCHEMA.empty_table(),
                               stage2.EVENT_SCHEMA.empty_table(),
                               deployments_uri=None, coords=coords, detector="test 1.0", threshold=0.2,
                               session_id="s1")
    return package, payload, json.loads((package / "datapackage.json").read_text())


def test_a_package_without_deployments_invents_no_extent_and_says_it_is_incomplete(tmp_path):
    when = datetime(2021, 4, 11, 18, 43, tzinfo=UTC)
    _, payload, descriptor = _export(tmp_path, [("nocoords", when, []), ("nocoords", when, [])], coords={})
    assert "spatial" not in descriptor and "temporal" not in descriptor  # not 0,0 and not today
    assert (payload["deployments"], payload["media"]) == (0, 0)
    assert payload["complete"] is False and payload["left_out"] == {"deployments": 1, "media": 2}
    assert any("2 photo(s) not in the package" in w and "no coordinates" in w for w in payload["warnings"])
    assert any("temporal left out" in w for w in payload["warnings"])


def test_untrusted_clocks_mark_the_deployment_and_stay_out_of_its_dates(tmp_path):
    trusted = datetime(2021, 4, 11, 18, 43, tzinfo=UTC)
    copied = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)  # no EXIF time: the file's mtime, i.e. the copy date
    photos = [("a", trusted, []), ("a", copied, ["no_exif_time"]), ("b", trusted, [])]
    package, payload, descriptor = _export(tmp_path, photos, coords={"a": (62.1, 9.5), "b": (62.2, 9.6)})
    assert camtrapdp.validate(str(package)) == []
    assert payload["complete"] is True
    assert descriptor["temporal"] == {"start": "2021-04-11", "end": "2021-04-11"}
    deps = {d["deploymentID"]: d for d in _rows(package / "deployments.csv")}
    assert deps["a"]["timestampIssues"] == "true" and deps["b"]["timestampIssues"] == ""
    assert deps["a"]["deploymentEnd"] == "2021-04-11T18:43:00Z"
    obs = {o["mediaID"]: o for o in _rows(package / "observations.csv")}
    assert obs["p1"]["observationComments"] == "timestamp untrusted: no_exif_time"
