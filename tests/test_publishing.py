"""Publishing: the project file feeds datapackage.json (title, contributors with roles, licences, rights holder,
citation, coordinate precision) with coordinates rounded, and the package is checked by the Frictionless
validator offline against the vendored Camtrap DP 1.0.2 profile: valid on a sample run, invalid on a planted
bad row, and never a network call."""

from __future__ import annotations

import csv
import json
import shutil
import socket
from pathlib import Path

import pytest
from conftest import SAMPLE, odin

from wildlife import camtrapdp, package_check, publishing
from wildlife.errors import InputError

PROJECT = """\
title: Herons of the Wad 2021
project_title: Flemish stream valleys camera survey
contributors:
  - {title: Jane Doe, email: jane@example.org, role: principalInvestigator, organization: INBO}
  - {title: Danny Van der beeck, role: contributor}
rights_holder: Research Institute for Nature and Forest (INBO)
licenses: {data: CC0-1.0, media: CC-BY-4.0}
citation: Doe J (2021) Herons of the Wad. Odin camera-trap package.
coordinate_precision: 0.01
sampling_design: targeted
keywords: [heron, camera trap]
"""


def _rows(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("published")
    (tmp / "project.yaml").write_text(PROJECT)
    out = tmp / "out"
    result = odin("run", "--input", str(SAMPLE / "photos"), "--deployments", str(SAMPLE / "deployments.csv"),
                  "--output", str(out), "--budget", "25", "--project", str(tmp / "project.yaml"))
    assert result.returncode == 0, result.stderr
    return out


def test_project_file_fills_the_package_descriptor(published):
    d = json.loads((published / "camtrap-dp" / "datapackage.json").read_text())
    assert d["title"] == "Herons of the Wad 2021"
    assert d["project"]["title"] == "Flemish stream valleys camera survey"
    assert d["project"]["samplingDesign"] == "targeted"
    assert d["contributors"] == [
        {"title": "Jane Doe", "email": "jane@example.org", "role": "principalInvestigator", "organization": "INBO"},
        {"title": "Danny Van der beeck", "role": "contributor"},
        {"title": "Research Institute for Nature and Forest (INBO)", "role": "rightsHolder"}]
    assert d["licenses"] == [{"scope": "data", "name": "CC0-1.0"}, {"scope": "media", "name": "CC-BY-4.0"}]
    assert d["bibliographicCitation"].startswith("Doe J (2021)")
    assert d["coordinatePrecision"] == 0.01 and d["keywords"] == ["heron", "camera trap"]
    report = json.loads((published / "run_report.json").read_text())
    assert report["camtrap_dp"]["valid"] is True, report["camtrap_dp"]["errors"]


def test_coordinates_are_rounded_to_the_precision_everywhere_in_the_package(published):
    deps = {r["deploymentID"]: r for r in _rows(published / "camtrap-dp" / "deployments.csv")}
    assert (deps["62c200a9"]["latitude"], deps["62c200a9"]["longitude"]) == ("50.7", "4.01")  # 50.699, 4.013
    assert int(deps["62c200a9"]["coordinateUncertainty"]) >= 787  # the rounding's own error, not the table's 187
    spatial = json.loads((published / "camtrap-dp" / "datapackage.json").read_text())["spatial"]
    corners = {tuple(p) for p in spatial["coordinates"][0]}
    assert all(round(x, 2) == x and round(y, 2) == y for x, y in corners)  # the extent shows no more than the rows


def test_without_a_project_file_the_descriptor_is_odins_own(sample_run):
    d = json.loads((sample_run / "camtrap-dp" / "datapackage.json").read_text())
    assert "coordinatePrecision" not in d and "licenses" not in d
    assert d["contributors"] == [{"title": "Odin camera-trap pipeline", "role": "contributor"}]


@pytest.mark.parametrize(("text", "says"), [
    ("contributors: [{title: A, role: contact}]\n", "title is required"),
    ("title: T\n", "contributors"),
    ("title: T\ncontributors: [{title: A, role: boss}]\n", "contributors[0].role='boss'"),
    ("title: T\ncontributors: [{title: A}]\ncoordinate_precision: 0.03\n", "coordinate_precision=0.03"),
    ("title: T\ncontributors: [{title: A}]\nlicenses: {data: CC0-1.0}\n", "both scopes"),
    ("title: T\ncontributors: [{title: A}]\nlicence: CC0-1.0\n", "unknown key(s) ['licence']"),
])
def test_a_bad_project_file_is_refused_naming_the_key(tmp_path, text, says):
    (tmp_path / "p.yaml").write_text(text)
    with pytest.raises(InputError, match="project file") as err:
        publishing.load(str(tmp_path / "p.yaml"))
    assert says in str(err.value)


def test_a_bad_project_file_stops_the_run_before_anything_is_written(tmp_path):
    (tmp_path / "p.yaml").write_text("title: T\ncontributors: [{title: A, role: boss}]\n")
    out = tmp_path / "out"
    result = odin("run", "--input", str(SAMPLE / "photos"), "--output", str(out), "--budget", "25",
                  "--project", str(tmp_path / "p.yaml"))
    assert result.returncode == 2 and "contributors[0].role" in result.stderr
    assert not out.exists()


def test_frictionless_finds_a_planted_bad_row(sample_run, tmp_path):
    package = tmp_path / "pkg"
    shutil.copytree(sample_run / "camtrap-dp", package)
    rows = _rows(package / "observations.csv")
    rows[2]["classificationProbability"] = "1.7"  # above the schema's maximum of 1
    with (package / "observations.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    errors = camtrapdp.validate(str(package))
    assert len(errors) == 1 and errors[0].startswith("observations row 4: classificationProbability:"), errors
    assert camtrapdp.validate(str(sample_run / "camtrap-dp")) == []


def test_validation_makes_no_network_call(sample_run, monkeypatch, tmp_path):
    def refuse(*args, **kwargs):
        raise AssertionError(f"a network connection was attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    assert camtrapdp.validate(str(sample_run / "camtrap-dp")) == []
    # a URL that is not vendored is refused by the validator's own transport, not fetched
    package = tmp_path / "pkg"
    shutil.copytree(sample_run / "camtrap-dp", package)
    d = json.loads((package / "datapackage.json").read_text())
    d["resources"][1]["schema"] = "https://example.org/media-table-schema.json"
    (package / "datapackage.json").write_text(json.dumps(d))
    errors = camtrapdp.validate(str(package))
    assert any("not vendored" in e for e in errors), errors


def test_every_vendored_url_is_a_file_here():
    for url, name in package_check.VENDORED.items():
        assert (Path(package_check.SCHEMA_DIR) / name).is_file(), url
