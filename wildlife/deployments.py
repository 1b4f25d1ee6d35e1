"""Deployments: where and when a camera stood, and which photos it took.

A deployments table has Camtrap DP's columns (deploymentID, latitude, longitude, deploymentStart,
deploymentEnd, cameraID, cameraModel) plus three of Odin's: ``timezone`` (an IANA name such as
``Europe/Copenhagen`` or a fixed offset such as ``+01:00``; derived from the location when empty),
``clockOffset`` (seconds the camera clock was ahead of true time; negative when behind) and
``clockFollowsDST`` (true for cameras whose clock changes with daylight saving time, such as cellular or
GPS-synced ones; empty or false for the usual camera whose clock is set once); and ``country`` (ISO 3166-1
alpha-3 such as ``DNK``, or a first-level region such as ``US-WY``: the species geofence's place, overriding
the one found from the location; see ``wildlife.geo``). Comma, semicolon and tab
separated files are read; in a semicolon file a decimal comma (``51,496``) is read as a decimal point.

Photos are assigned, in this order: a folder in the photo's path named like a deploymentID; the camera
(cameraID equal to the serial number or the user label in EXIF) with the photo inside the deployment window;
the one deployment whose window holds the photo. Without a table, each top-level folder is a deployment.

A deployment's location is a point where a photo was taken, never an average: the table's coordinates, else
the most common GPS point of its photos, else none (no GPS, or photos more than ``GPS_AGREE_M`` apart).
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pyarrow as pa
import pyarrow.compute as pc

from wildlife import fs, geo
from wildlife.errors import InputError

# the spellings of a boolean in a deployments table (Table Schema's defaults: trueValues / falseValues)
TRUE = {"true", "True", "TRUE", "1"}
FALSE = {"false", "False", "FALSE", "0"}

_OFFSET = re.compile(r"^(?:UTC|GMT)?\s*([+-])(\d{1,2})(?::?(\d{2}))?$")
_DECIMAL_COMMA = re.compile(r"^[+-]?\d+,\d+$")
_PROBLEM = re.compile(r"^problem(\d+)_(from|to)$", re.IGNORECASE)  # camtrapR's ProblemX_from / ProblemX_to
GPS_AGREE_M = 500.0  # photos of one deployment whose GPS points are further apart give it no location
COLUMNS_HINT = ("Columns: deploymentID (required), latitude, longitude, deploymentStart, deploymentEnd, cameraID, "
                "cameraModel, timezone, clockOffset, clockFollowsDST, country, problem1_from/problem1_to...; "
                "see README 'Deployments and clocks'.")


class DeploymentError(InputError, ValueError):
    """The deployments table cannot be used (exit 2); the message names the line and column, the hint the fix."""


@dataclass(frozen=True)
class Deployment:
    id: str
    latitude: float | None = None
    longitude: float | None = None
    start: datetime | None = None
    end: datetime | None = None
    camera_id: str | None = None
    camera_model: str | None = None
    timezone: str | None = None
    clock_offset_s: float = 0.0
    start_offset_min: int | None = None  # the UTC offset written in deploymentStart (None for none or "Z")
    clock_follows_dst: bool = False
    country: str | None = None  # ISO 3166-1 alpha-3 or ISO 3166-2 (geo.place_code), for the species geofence
    problems: tuple[tuple[datetime, datetime], ...] = ()  # problemN_from..problemN_to: the camera did not work

    def contains(self, when_utc: datetime) -> bool:
        return (self.start is None or when_utc >= self.start) and (self.end is None or when_utc <= self.end)


@dataclass(frozen=True)
class Location:
    """Where a deployment stood and where that came from (``source``); ``note`` says why there is none."""

    latitude: float | None
    longitude: float | None
    source: str  # "deployments table", "photo GPS", or "none"
    note: str | None = None
    gps_point: tuple[float, float] | None = None  # the photos' most common point, even when they disagree

    @property
    def point(self) -> tuple[float, float] | None:
        return None if self.latitude is None or self.longitude is None else (self.latitude, self.longitude)


def parse_tz(text: str) -> tzinfo:
    m = _OFFSET.match(text.strip())
    if m:
        sign = -1 if m.group(1) == "-" else 1
        return timezone(sign * timedelta(hours=int(m.group(2)), minutes=int(m.group(3) or 0)))
    if text.strip().upper() in ("UTC", "Z", "GMT"):
        return UTC
    try:
        return ZoneInfo(text.strip())
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise DeploymentError(f"unknown timezone {text!r}",
                              "Use an IANA name (Europe/Oslo) or a fixed offset (+01:00).") from exc


@lru_cache(maxsize=4096)
def timezone_at(lat: float, lon: float) -> str | None:
    from timezonefinder import TimezoneFinder  # noqa: PLC0415 - loads its polygon data; only when needed

    return _finder(TimezoneFinder).timezone_at(lat=lat, lng=lon)


@lru_cache(maxsize=4096)
def zone_at(lat: float, lon: float) -> tzinfo | None:
    """The IANA zone at a point (None at sea far from any coast, or for a point that is not on Earth)."""
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    name = timezone_at(lat, lon)
    return ZoneInfo(name) if name else None


@lru_cache(maxsize=1)
def _finder(cls):
    return cls()


def _number(row: dict, key: str, where: str) -> float | None:
    value = (row.get(key) or "").strip()
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise DeploymentError(f"{where}: {key}={value!r} is not a number",
                              "Write it as a plain decimal number, e.g. 51.496.")
    return number


def _when(row: dict, key: str, where: str) -> tuple[datetime | None, int | None]:
    """(UTC time, the UTC offset written, in minutes) of a timestamp column. ``Z`` and ``-00:00`` give the
    instant but no offset (RFC 9557: UTC is known, the local offset is not)."""
    value = (row.get(key) or "").strip()
    if not value:
        return None, None
    try:
        parsed = datetime.fromisoformat(value[:-1] + "+00:00" if value[-1:] in "Zz" else value)
    except ValueError as exc:
        raise DeploymentError(f"{where}: {key}={value!r} is not an ISO 8601 timestamp",
                              "Write it as 2021-03-20T10:00:00+01:00 (the camera's time and its UTC offset).") from exc
    if parsed.tzinfo is None:
        raise DeploymentError(f"{where}: {key}={value!r} needs a UTC offset, e.g. {value}+01:00",
                              "Give the offset the camera's clock was set to (+01:00 for CET, +02:00 for CEST).")
    stated = value[-1:] not in "Zz" and not value.endswith("-00:00")
    offset = parsed.utcoffset()
    return parsed.astimezone(UTC), (round(offset.total_seconds() / 60) if stated and offset is not None else None)


def _flag(row: dict, key: str, where: str) -> bool:
    value = (row.get(key) or "").strip()
    if not value or value in FALSE:
        return False
    if value in TRUE:
        return True
    raise DeploymentError(f"{where}: {key}={value!r} is not true or false",
                          "Write true for a camera whose clock follows daylight saving time, else false or nothing.")


def _delimiter(text: str) -> str:
    """The separator of the header row: the one of , ; and tab it holds most often (Excel writes ; in locales
    whose decimal mark is a comma)."""
    header = text.split("\n", 1)[0]
    return max((",", ";", "\t"), key=header.count)


def read_rows(uri: str) -> list[dict[str, str]]:
    """The rows of a deployments CSV as text, whatever its separator; decimal commas of a semicolon file
    (``51,496``) become decimal points."""
    try:
        text = fs.read_bytes(uri).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DeploymentError(f"{uri}: not UTF-8 text ({exc.reason} at byte {exc.start})",
                              "Save the table as CSV UTF-8.") from exc
    delimiter = _delimiter(text)
    rows = list(csv.DictReader(io.StringIO(text), delimiter=delimiter))
    if delimiter == ";":
        rows = [{k: v.replace(",", ".") if isinstance(v, str) and _DECIMAL_COMMA.match(v.strip()) else v
                 for k, v in row.items()} for row in rows]
    return rows


def load(uri: str) -> dict[str, Deployment]:
    """Read a deployments CSV. Raises ``DeploymentError`` naming the line, the column and the fix."""
    rows = read_rows(uri)
    if not rows:
        raise DeploymentError(f"{uri}: no deployments in the table", COLUMNS_HINT)
    if "deploymentID" not in rows[0]:
        raise DeploymentError(f"{uri}: no deploymentID column among {list(rows[0])}", COLUMNS_HINT)
    out: dict[str, Deployment] = {}
    lines: dict[str, int] = {}
    for n, row in enumerate(rows, start=2):
        where = f"{uri} line {n}"
        dep = _deployment(row, where)
        if dep.id in out:
            raise DeploymentError(f"{where}: deploymentID {dep.id!r} is already on line {lines[dep.id]}",
                                  "Each deployment is one row: give a second deployment of a camera its own ID.")
        out[dep.id], lines[dep.id] = dep, n
    return out


def _problems(row: dict, where: str) -> tuple[tuple[datetime, datetime], ...]:
    """The periods of columns ``problem1_from``/``problem1_to``, ``problem2_from``... (any case)."""
    names = {(int(m.group(1)), m.group(2).lower()): k for k in row if k and (m := _PROBLEM.match(k.strip()))}
    out = []
    for i in sorted({n for n, _ in names}):
        start, _ = _when(row, names.get((i, "from"), ""), where)
        end, _ = _when(row, names.get((i, "to"), ""), where)
        if start is None and end is None:
            continue
        if start is None or end is None or start > end:
            raise DeploymentError(f"{where}: problem{i}_from/problem{i}_to need both times, the first before the "
                                  "second", "Give the period the camera did not work as two ISO 8601 times, e.g. "
                                  "2021-04-02T00:00:00+01:00 and 2021-04-05T12:00:00+01:00.")
        out.append((start, end))
    return tuple(out)


def _deployment(row: dict, where: str) -> Deployment:
    dep_id = (row.get("deploymentID") or "").strip()
    if not dep_id:
        raise DeploymentError(f"{where}: empty deploymentID", "Every row needs a deploymentID.")
    lat = _number(row, "latitude", where)
    lon = _number(row, "longitude", where)
    if (lat is None) != (lon is None):
        raise DeploymentError(f"{where}: {'latitude' if lat is not None else 'longitude'} given without the other",
                              "Give both latitude and longitude, or neither.")
    for key, value, limit in (("latitude", lat, 90), ("longitude", lon, 180)):
        if value is not None and abs(value) > limit:
            raise DeploymentError(f"{where}: {key}={value} is outside -{limit}..{limit}",
                                  "Coordinates are decimal degrees (WGS84); are latitude and longitude swapped?")
    start, start_offset = _when(row, "deploymentStart", where)
    end, _ = _when(row, "deploymentEnd", where)
    if start is not None and end is not None and start > end:
        raise DeploymentError(f"{where}: deploymentStart {row['deploymentStart'].strip()} is after deploymentEnd "
                              f"{row['deploymentEnd'].strip()}", "Swap them, or correct the date.")
    zone = (row.get("timezone") or "").strip() or None
    if zone:
        try:
            fixed = isinstance(parse_tz(zone), timezone)  # fail early on a typo
        except DeploymentError as exc:
            raise DeploymentError(f"{where}: timezone: {exc.args[0]}", exc.hint) from exc
    follows = _flag(row, "clockFollowsDST", where)
    if follows and zone and fixed:
        raise DeploymentError(f"{where}: clockFollowsDST=true but timezone={zone!r} is a fixed offset",
                              "Give the IANA zone the clock follows (e.g. Europe/Brussels), or leave timezone empty.")
    return Deployment(
        id=dep_id, latitude=lat, longitude=lon, start=start, end=end,
        camera_id=(row.get("cameraID") or "").strip() or None,
        camera_model=(row.get("cameraModel") or "").strip() or None,
        timezone=zone, clock_offset_s=_number(row, "clockOffset", where) or 0.0,
        start_offset_min=start_offset, clock_follows_dst=follows, country=_country(row, where),
        problems=_problems(row, where),
    )


def _country(row: dict, where: str) -> str | None:
    value = (row.get("country") or "").strip()
    if not value:
        return None
    try:
        alpha3, region = geo.place_code(value, f"{where}: country")
    except InputError as exc:
        raise DeploymentError(exc.args[0], exc.hint) from exc
    return region or alpha3


def assign(
    relpath: str,
    camera_ids: tuple[str | None, ...],
    approx_utc: datetime | None,
    deployments: dict[str, Deployment],
) -> tuple[str | None, str]:
    """(deploymentID or None, how it was found) for one photo."""
    folders = relpath.replace("\\", "/").split("/")[:-1]
    if not deployments:
        return (folders[0], "folder") if folders else (None, "no deployments table and no folder")
    for folder in folders:
        if folder in deployments:
            return folder, "folder"
    ids = {c for c in camera_ids if c}
    if approx_utc is not None:
        by_camera = [d for d in deployments.values() if d.camera_id in ids and d.contains(approx_utc)]
        if len(by_camera) == 1:
            return by_camera[0].id, "camera and time window"
        by_time = [d for d in deployments.values() if d.contains(approx_utc)]
        if len(by_time) == 1:
            return by_time[0].id, "time window"
    return None, "no deployment matches its folder, camera or time"


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance in metres between two (lat, lon) points."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6_371_008.8 * math.asin(min(1.0, math.sqrt(h)))


def locate(dep: Deployment | None, points: Iterable[tuple[float, float]]) -> Location:
    """A deployment's location: the table's coordinates, else its photos' most common GPS point, provided
    every photo lies within ``GPS_AGREE_M`` of it, else none (with the reason in ``note``)."""
    if dep is not None and dep.latitude is not None and dep.longitude is not None:
        return Location(dep.latitude, dep.longitude, "deployments table")
    counts = Counter(points)
    if not counts:
        return Location(None, None, "none", "no coordinates in the deployments table and no GPS in its photos")
    mode = min(counts, key=lambda p: (-counts[p], p))
    spread = max(distance_m(mode, p) for p in counts)
    if spread > GPS_AGREE_M:
        return Location(None, None, "none", f"its photos' GPS points lie up to {spread / 1000:.1f} km apart (more "
                        f"than {GPS_AGREE_M:.0f} m): give latitude/longitude in --deployments", mode)
    return Location(mode[0], mode[1], "photo GPS", None, mode)


def locations(table: dict[str, Deployment], rows: Iterable[dict]) -> dict[str, Location]:
    """Location of every deployment in the table or named by a row (``deployment_id``, ``gps_latitude``,
    ``gps_longitude``)."""
    points: dict[str, list[tuple[float, float]]] = {dep_id: [] for dep_id in table}
    for r in rows:
        dep_id = r.get("deployment_id")
        if dep_id is None:
            continue
        found = points.setdefault(dep_id, [])
        if r.get("gps_latitude") is not None and r.get("gps_longitude") is not None:
            found.append((r["gps_latitude"], r["gps_longitude"]))
    return {dep_id: locate(table.get(dep_id), found) for dep_id, found in points.items()}


def coordinates(uri: str | None, media) -> dict[str, tuple[float, float]]:
    """Deployment -> (lat, lon) for every deployment that has a location (see ``locate``)."""
    table = load(uri) if uri else {}
    found = locations(table, [])
    for dep_id, rows in by_deployment(media.select(["deployment_id", "gps_latitude", "gps_longitude"])):
        if dep_id is not None:  # one deployment's rows as dicts at a time
            found.update(locations({dep_id: table[dep_id]} if dep_id in table else {}, rows.to_pylist()))
    return {dep_id: loc.point for dep_id, loc in found.items() if loc.point is not None}


def group_order(dep_id: str | None) -> tuple[bool, str]:
    """The sort key of ``by_deployment``'s order: by id, no deployment (None) last."""
    return dep_id is None, dep_id or ""


def by_deployment(media: pa.Table) -> Iterator[tuple[str | None, pa.Table]]:
    """The rows of each deployment of a media table (a ``deployment_id`` column), by deployment id, rows without
    one last: a caller turns one deployment's rows into Python objects at a time, never the whole run's."""
    order = pc.sort_indices(media, [("deployment_id", "ascending")])  # null ids sort to the end
    counts = {r["values"]: r["counts"] for r in pc.value_counts(media.column("deployment_id")).to_pylist()}
    offset = 0
    for dep_id in sorted(counts, key=group_order):
        yield dep_id, media.take(order.slice(offset, counts[dep_id]))  # a copy of one deployment, not of all
        offset += counts[dep_id]


def photos_of(media: pa.Table, ids: list[str | None]) -> Iterator[tuple[str | None, pa.Table | None]]:
    """Each of ``ids`` with its rows of ``media`` (as ``by_deployment``; None: no rows), one deployment's copy at
    a time, never a dict of them all. ``ids`` are in ``by_deployment``'s order (``group_order``; an id may
    repeat); the deployments of ``media`` not among them are passed over."""
    groups = by_deployment(media)
    group = next(groups, None)
    for dep_id in ids:
        while group is not None and group_order(group[0]) < group_order(dep_id):
            group = next(groups, None)
        yield dep_id, group[1] if group is not None and group[0] == dep_id else None
