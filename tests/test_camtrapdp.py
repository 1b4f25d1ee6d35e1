"""The Camtrap DP export validates offline against the official 1.0.2 profile and table schemas."""

from __future__ import annotations

import csv
import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import photofactory as pf
from conftest import odin

from wildlife import camtrapdp


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
    assert report["camtrap_dp"]["valid"] is True


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
    assert any("media row 2: timestamp" in e for e in errors)
    assert any("'nowhere' has no match in deployments" in e for e in errors)
    assert any("'project' is a required property" in e for e in errors)


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
    assert any("['nogps'] left out" in w for w in report["warnings"])
