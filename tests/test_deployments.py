"""The deployments table: input checks that name the line, column and fix; locations that are real points."""

from __future__ import annotations

import csv
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import SAMPLE, odin

from wildlife import deployments
from wildlife.deployments import DeploymentError
from wildlife.errors import InputError

HEADER = "deploymentID,latitude,longitude,deploymentStart,deploymentEnd"


def _load(tmp_path: Path, text: str) -> dict[str, deployments.Deployment]:
    path = tmp_path / "deployments.csv"
    path.write_text(text)
    return deployments.load(str(path))


@pytest.mark.parametrize(("rows", "message", "hint"), [
    (["d1,55.6,12.5,2024-06-01T00:00:00+02:00,2024-05-01T00:00:00+02:00"],
     "line 2: deploymentStart 2024-06-01T00:00:00+02:00 is after deploymentEnd", "Swap them"),
    (["d1,55.6,12.5,,", "d2,55.6,12.5,,", "d1,56.0,12.0,,"],
     "line 4: deploymentID 'd1' is already on line 2", "its own ID"),
    (["d1,150,12.5,,"], "line 2: latitude=150.0 is outside -90..90", "swapped"),
    (["d1,55.6,,,"], "line 2: latitude given without the other", "both latitude and longitude"),
    (["d1,nan,12.5,,"], "line 2: latitude='nan' is not a number", "decimal number"),
])
def test_impossible_tables_are_input_errors_naming_line_column_and_fix(tmp_path, rows, message, hint):
    with pytest.raises(DeploymentError, match=re.escape(message)) as err:
        _load(tmp_path, HEADER + "\n" + "\n".join(rows) + "\n")
    assert isinstance(err.value, InputError) and err.value.exit_code == 2
    assert hint in err.value.hint


def test_semicolon_tables_from_excel_are_read_with_their_decimal_commas(tmp_path):
    table = _load(tmp_path, "deploymentID;latitude;longitude;deploymentStart;clockFollowsDST\n"
                            "d1;51,496;4,774;2020-05-30T04:57:37+02:00;false\n")
    assert (table["d1"].latitude, table["d1"].longitude) == (51.496, 4.774)
    assert table["d1"].start == datetime(2020, 5, 30, 2, 57, 37, tzinfo=UTC)
    assert table["d1"].start_offset_min == 120 and not table["d1"].clock_follows_dst


def test_a_table_without_deployment_ids_shows_its_header(tmp_path):
    with pytest.raises(DeploymentError, match=re.escape("no deploymentID column among ['id', 'lat', 'lon']")):
        _load(tmp_path, "id,lat,lon\nd1,55,12\n")


def test_clock_follows_dst_needs_a_zone_that_has_daylight_saving(tmp_path):
    with pytest.raises(DeploymentError, match="line 2: clockFollowsDST=true but timezone='\\+01:00'"):
        _load(tmp_path, "deploymentID,timezone,clockFollowsDST\nd1,+01:00,true\n")
    with pytest.raises(DeploymentError, match="line 2: clockFollowsDST='sometimes' is not true or false"):
        _load(tmp_path, "deploymentID,clockFollowsDST\nd1,sometimes\n")


def test_z_gives_the_instant_but_not_the_cameras_offset(tmp_path):
    table = _load(tmp_path, HEADER + "\nz,,,2024-01-01T00:00:00Z,\nplus,,,2024-01-01T00:00:00+00:00,\n")
    assert table["z"].start_offset_min is None
    assert table["plus"].start_offset_min == 0


def test_a_bad_table_exits_2_and_names_the_line(tmp_path):
    bad = tmp_path / "deployments.csv"
    bad.write_text(HEADER + "\n62c200a9,150,4.013,,\n")
    result = odin("run", "--input", str(SAMPLE / "photos"), "--deployments", str(bad),
                  "--output", str(tmp_path / "out"), "--budget", "25", "--detector", "motion")
    assert result.returncode == 2, result.stderr
    assert "line 2: latitude=150.0 is outside -90..90" in result.stderr


def _media(points: list[tuple[str, float | None, float | None]]) -> pa.Table:
    return pa.table({"deployment_id": [p[0] for p in points], "gps_latitude": [p[1] for p in points],
                     "gps_longitude": [p[2] for p in points]})


def test_a_deployment_without_table_coordinates_stands_where_its_photos_were_taken():
    # per axis, the median of these is (55.001, 12.002): a point where no photo was taken
    media = _media([("cam", 55.0, 12.002), ("cam", 55.0, 12.002), ("cam", 55.001, 12.0), ("cam", 55.002, 12.001)])
    assert deployments.coordinates(None, media) == {"cam": (55.0, 12.002)}
    located = deployments.locations({}, media.to_pylist())["cam"]
    assert (located.source, located.note) == ("photo GPS", None)


def test_photos_that_disagree_give_no_location_and_say_why(tmp_path):
    media = _media([("cam", 55.0, 12.0), ("cam", 55.0, 12.0), ("cam", 55.1, 12.0), ("table", 56.0, 10.0)])
    table = _load(tmp_path, HEADER + "\ntable,55.5,11.5,,\n")
    assert deployments.coordinates(str(tmp_path / "deployments.csv"), media) == {"table": (55.5, 11.5)}
    located = deployments.locations(table, media.to_pylist())
    assert located["cam"].point is None and located["cam"].source == "none"
    assert "11.1 km apart (more than 500 m)" in located["cam"].note
    assert located["table"].source == "deployments table"


def test_a_semicolon_table_runs_end_to_end(tmp_path):
    """Excel in a decimal-comma locale: the run, its clock rule and the Camtrap DP package all read it."""
    with open(SAMPLE / "deployments.csv", newline="") as f:
        rows = list(csv.reader(f))
    with open(tmp_path / "deployments.csv", "w", newline="") as f:
        csv.writer(f, delimiter=";").writerows([[re.sub(r"^(-?\d+)\.(\d+)$", r"\1,\2", v) for v in r] for r in rows])
    assert "50,699" in (tmp_path / "deployments.csv").read_text()
    out = tmp_path / "out"
    result = odin("run", "--input", str(SAMPLE / "photos"), "--deployments", str(tmp_path / "deployments.csv"),
                  "--output", str(out), "--budget", "25", "--detector", "motion")
    assert result.returncode == 0, result.stderr
    assert set(pq.read_table(out / "images.parquet").column("utc_offset_min").to_pylist()) == {60}
    with open(out / "camtrap-dp" / "deployments.csv", newline="") as f:
        (dep,) = csv.DictReader(f)
    assert (dep["deploymentID"], dep["latitude"], dep["cameraHeight"]) == ("62c200a9", "50.699", "1.00")
    assert json.loads((out / "run_report.json").read_text())["camtrap_dp"]["valid"] is True


def test_photos_of_gives_each_asked_deployment_its_rows_in_order():
    media = pa.table({"deployment_id": ["B", None, "A", "C", "B"], "n": [0, 1, 2, 3, 4]})
    got = [(d, rows and rows.column("n").to_pylist()) for d, rows in deployments.photos_of(media, ["A", "B", "B",
                                                                                                  "Z", None])]
    # C is not asked for; Z has no rows; a repeated id gets its rows again; None: the rows without a deployment
    assert got == [("A", [2]), ("B", [0, 4]), ("B", [0, 4]), ("Z", None), (None, [1])]
