"""Country and region of a deployment, offline, and the country a user names (--country, deployments.csv)."""

from __future__ import annotations

import pyarrow as pa
import pytest
from conftest import SAMPLE, odin

from wildlife import deployments, geo, stage0
from wildlife.classify import decisions
from wildlife.deployments import DeploymentError
from wildlife.errors import InputError


@pytest.mark.parametrize(("point", "country"), [
    ((55.6761, 12.5683), "DNK"),  # Copenhagen city hall: ~150 m outside Natural Earth's generalised coast
    ((56.2, 9.5), "DNK"),
    ((48.85, 2.35), "FRA"),  # Natural Earth writes -99 in ISO_A3 for France
    ((60.0, 10.0), "NOR"),  # ... and for Norway
    ((-33.87, 151.21), "AUS"),
])
def test_known_places_get_their_country(point, country):
    assert geo.locate(*point)[0] == country


@pytest.mark.parametrize(("point", "place"), [
    ((48.85, 2.35), ("FRA", "FR-IDF")),
    ((39.74, -104.99), ("USA", "US-CO")),
    ((37.77, -122.42), ("USA", "US-CA")),
    ((-33.87, 151.21), ("AUS", "AU-NSW")),
])
def test_known_places_get_their_first_level_region(point, place):
    assert geo.locate(*point) == place


def test_a_region_odin_is_unsure_of_is_none_not_a_guess():
    # Yellowstone Lake is in Wyoming; the nearest towns are in Montana
    assert geo.locate(44.45, -110.35) == ("USA", None)
    # Copenhagen: GeoNames calls the region "Capital Region", ISO "Hovedstaden": no code is written
    assert geo.locate(55.6761, 12.5683)[1] in (None, "DK-84")


def test_a_point_at_sea_or_nowhere_has_no_country():
    assert geo.locate(56.0, 3.0) == (None, None)  # North Sea
    assert geo.locate(0.0, -140.0) == (None, None)  # Pacific
    assert geo.locate(None, None) == (None, None)
    assert geo.locate(95.0, 10.0) == (None, None)


def test_an_area_without_an_iso_code_gets_no_country_rather_than_a_made_up_code():
    assert geo.locate(42.66, 21.16) == (None, None)  # Pristina: Natural Earth's KOS is no ISO 3166-1 code


@pytest.mark.parametrize(("point", "country"), [
    ((54.83, 9.43), "DNK"), ((54.78, 9.43), "DEU"),  # Padborg / Flensburg, ~5 km apart across the border
    ((47.56, 7.59), "CHE"), ((47.59, 7.57), "FRA"),  # Basel / Saint-Louis
])
def test_points_near_a_border_fall_on_their_side(point, country):
    assert geo.locate(*point)[0] == country


def test_a_users_country_is_alpha3_or_a_first_level_region():
    assert geo.place_code("dnk") == ("DNK", None)
    assert geo.place_code(" US-WY ") == ("USA", "US-WY")
    with pytest.raises(InputError, match="'DK' is not an ISO 3166-1 alpha-3") as err:
        geo.place_code("DK")
    assert "DNK" in err.value.hint
    with pytest.raises(InputError, match="not an ISO 3166-1"):
        geo.place_code("Denmark")


def test_the_deployments_table_country_column_is_checked_with_its_line(tmp_path):
    path = tmp_path / "deployments.csv"
    path.write_text("deploymentID,latitude,longitude,country\nd1,55.6,12.5,dnk\nd2,44.4,-110.5,US-WY\nd3,,,\n")
    table = deployments.load(str(path))
    assert (table["d1"].country, table["d2"].country, table["d3"].country) == ("DNK", "US-WY", None)
    path.write_text("deploymentID,latitude,longitude,country\nd1,55.6,12.5,DK\n")
    with pytest.raises(DeploymentError, match="line 2: country: 'DK'") as err:
        deployments.load(str(path))
    assert "DNK" in err.value.hint


def _media(rows):
    return pa.Table.from_pylist([{"photo_id": f"p{i}", "deployment_id": d, "gps_latitude": lat,
                                  "gps_longitude": lon, "status": "ok"} for i, (d, lat, lon) in enumerate(rows)],
                                schema=stage0.MEDIA_SCHEMA)


def test_each_deployment_gets_a_place_and_where_it_came_from(tmp_path):
    path = tmp_path / "deployments.csv"
    path.write_text("deploymentID,latitude,longitude,country\n"
                    "paris,48.85,2.35,\n"  # from its location
                    "table,48.85,2.35,DEU\n"  # the table overrides: the location's region is France's, dropped
                    "state,44.45,-110.35,US-WY\n"  # a region the user knows
                    "sea,56.0,3.0,\n")  # no country anywhere
    media = _media([("paris", None, None), ("gps", 39.74, -104.99), ("nogps", None, None)])
    got = decisions.places(media, str(path), None)
    assert got["paris"] == decisions.Place("FRA", "FR-IDF", "location")
    assert got["table"] == decisions.Place("DEU", None, "deployments table")
    assert got["state"] == decisions.Place("USA", "US-WY", "deployments table")
    assert got["gps"] == decisions.Place("USA", "US-CO", "location")  # its photos' GPS
    assert got["sea"] == got["nogps"] == decisions.Place(None, None, "none")
    # --country: for every deployment the table does not name; a location in that country keeps its region
    got = decisions.places(media, str(path), "USA")
    assert got["gps"] == decisions.Place("USA", "US-CO", "--country")
    assert got["paris"] == decisions.Place("USA", None, "--country")
    assert got["table"].source == got["state"].source == "deployments table"
    with pytest.raises(InputError, match="'DK'"):
        decisions.places(media, None, "DK")


def test_run_refuses_a_two_letter_country_before_any_work(tmp_path):
    result = odin("run", "--input", str(SAMPLE / "photos"), "--output", str(tmp_path / "out"), "--budget", "1",
                  "--detector", "motion", "--weather-provider", "none", "--country", "DK")
    assert result.returncode == 2, result.stderr
    assert "DNK" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()  # exit 2 means nothing started: a re-run with DNK needs no clean-up
