"""The output tables as an analyst opens them: in SQL (DuckDB), with the types and names the README promises."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from conftest import ROOT

SQL_TABLES = ("images", "detections", "clusters", "deployments")


@pytest.fixture
def sql(sample_run: Path):
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for name in SQL_TABLES:
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{sample_run / name}.parquet')")
    yield con
    con.close()


def test_timestamp_local_gives_the_cameras_hour_in_sql(sql):
    # the sample's first photo: the camera showed 2021-04-11 20:43:09, on a clock set to +01:00
    hour, minute, offset, utc_hour, kind, mtime_kind = sql.execute(
        "SELECT hour(timestamp_local), minute(timestamp_local), utc_offset_min, hour(timestamp), "
        "typeof(timestamp_local), typeof(mtime) FROM images ORDER BY relpath LIMIT 1").fetchone()
    assert (hour, minute, offset, utc_hour) == (20, 43, 60, 19)
    assert (kind, mtime_kind) == ("TIMESTAMP", "TIMESTAMP WITH TIME ZONE")
    mismatched = sql.execute(
        "SELECT count(*) FROM images WHERE timestamp_local "
        "<> CAST(timestamp AS TIMESTAMP) + to_minutes(utc_offset_min)").fetchone()[0]
    assert mismatched == 0


def test_the_deployments_table_says_where_each_camera_stood_and_how_its_clock_was_read(sql):
    assert sql.execute("SELECT count(*) FROM deployments").fetchone()[0] == 4  # the sample's table has four
    row = sql.execute(
        "SELECT latitude, longitude, location_source, clock_rule, utc_offset_min, timezone, photos, photos_ok, "
        "photos_time_trusted, hour(first_photo_local), timestamp_issues FROM deployments "
        "WHERE deployment_id = '62c200a9'").fetchone()
    assert row == (50.699, 4.013, "deployments table", "deployment_start_offset", 60, "Europe/Brussels", 10, 10,
                   10, 20, False)
    photos = sql.execute("SELECT sum(photos) FROM deployments").fetchone()[0]
    assert photos == sql.execute("SELECT count(*) FROM images WHERE deployment_id IS NOT NULL").fetchone()[0]


def test_every_column_can_be_named_in_sql_without_quotes(sql, sample_run):
    reserved = {k for (k,) in sql.execute(
        "SELECT keyword_name FROM duckdb_keywords() WHERE keyword_category = 'reserved'").fetchall()}
    for name in SQL_TABLES:
        columns = pq.read_schema(sample_run / f"{name}.parquet").names
        assert not set(columns) & reserved, name
        sql.execute(f"SELECT count(*) FROM (SELECT {', '.join(columns)} FROM {name})").fetchone()


def _documented(table: str) -> set[str]:
    """Column names in the README's Data dictionary table for ``table`` (`a`, `b` rows name several)."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split(f"### {table}.parquet", 1)[1].split("\n#", 1)[0]
    return {name for line in section.splitlines() if line.startswith("| `")
            for name in re.findall(r"`([^`]+)`", line.split("|")[1])}


@pytest.mark.parametrize("table", ["images", "detections", "clusters", "deployments"])
def test_the_data_dictionary_documents_every_column(sample_run, table):
    columns = set(pq.read_schema(sample_run / f"{table}.parquet").names)
    assert columns - _documented(table) == set()
