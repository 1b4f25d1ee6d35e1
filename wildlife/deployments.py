"""Deployments: where and when a camera stood, and which photos it took.

A deployments table has Camtrap DP's columns (deploymentID, latitude, longitude, deploymentStart,
deploymentEnd, cameraID, cameraModel) plus two of Odin's: ``timezone`` (an IANA name such as
``Europe/Copenhagen`` or a fixed offset such as ``+01:00``; derived from latitude/longitude when empty) and
``clockOffset`` (seconds the camera clock was ahead of true time; negative when behind).

Photos are assigned, in this order: a folder in the photo's path named like a deploymentID; the camera
(cameraID equal to the serial number or the user label in EXIF) with the photo inside the deployment window;
the one deployment whose window holds the photo. Without a table, each top-level folder is a deployment.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from wildlife import fs
from wildlife.errors import InputError

_OFFSET = re.compile(r"^(?:UTC|GMT)?\s*([+-])(\d{1,2})(?::?(\d{2}))?$")


class DeploymentError(InputError, ValueError):
    """The deployments table cannot be used; the message names the row and the fix."""


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

    def tz(self) -> tzinfo | None:
        if self.timezone:
            return parse_tz(self.timezone)
        if self.latitude is not None and self.longitude is not None:
            name = timezone_at(self.latitude, self.longitude)
            return ZoneInfo(name) if name else None
        return None

    def contains(self, when_utc: datetime) -> bool:
        return (self.start is None or when_utc >= self.start) and (self.end is None or when_utc <= self.end)


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
        raise DeploymentError(f"unknown timezone {text!r}: use an IANA name (Europe/Oslo) or +HH:MM") from exc


@lru_cache(maxsize=4096)
def timezone_at(lat: float, lon: float) -> str | None:
    from timezonefinder import TimezoneFinder  # noqa: PLC0415 - loads its polygon data; only when needed

    return _finder(TimezoneFinder).timezone_at(lat=lat, lng=lon)


@lru_cache(maxsize=1)
def _finder(cls):
    return cls()


def _float(row: dict, key: str, where: str) -> float | None:
    value = (row.get(key) or "").strip()
    if not value:
        return None
    try:
        return float(value)
    except ValueError as exc:
        raise DeploymentError(f"{where}: {key}={value!r} is not a number") from exc


def _when(row: dict, key: str, where: str) -> datetime | None:
    value = (row.get(key) or "").strip()
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise DeploymentError(f"{where}: {key}={value!r} is not an ISO 8601 timestamp") from exc
    if parsed.tzinfo is None:
        raise DeploymentError(f"{where}: {key}={value!r} needs a UTC offset, e.g. {value}+01:00")
    return parsed.astimezone(UTC)


def load(uri: str) -> dict[str, Deployment]:
    """Read a deployments CSV. Raises ``DeploymentError`` naming the row that is wrong."""
    text = fs.read_bytes(uri).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows or "deploymentID" not in rows[0]:
        raise DeploymentError(f"{uri}: a deployments table needs a header row with at least deploymentID")
    out: dict[str, Deployment] = {}
    for n, row in enumerate(rows, start=2):
        where = f"{uri} line {n}"
        dep_id = (row.get("deploymentID") or "").strip()
        if not dep_id:
            raise DeploymentError(f"{where}: empty deploymentID")
        dep = Deployment(
            id=dep_id,
            latitude=_float(row, "latitude", where),
            longitude=_float(row, "longitude", where),
            start=_when(row, "deploymentStart", where),
            end=_when(row, "deploymentEnd", where),
            camera_id=(row.get("cameraID") or "").strip() or None,
            camera_model=(row.get("cameraModel") or "").strip() or None,
            timezone=(row.get("timezone") or "").strip() or None,
            clock_offset_s=_float(row, "clockOffset", where) or 0.0,
        )
        if dep.timezone:
            try:
                parse_tz(dep.timezone)  # fail early on a typo
            except DeploymentError as exc:
                raise DeploymentError(f"{where}: {exc}") from exc
        out[dep_id] = dep
    return out


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


def coordinates(uri: str | None, media) -> dict[str, tuple[float, float]]:
    """Deployment -> (lat, lon): the deployments table first, else the median EXIF GPS of its photos."""
    table = load(uri) if uri else {}
    out = {d.id: (d.latitude, d.longitude) for d in table.values()
           if d.latitude is not None and d.longitude is not None}
    gps: dict[str, list[tuple[float, float]]] = {}
    for r in media.select(["deployment_id", "gps_latitude", "gps_longitude"]).to_pylist():
        if r["deployment_id"] and r["gps_latitude"] is not None and r["deployment_id"] not in out:
            gps.setdefault(r["deployment_id"], []).append((r["gps_latitude"], r["gps_longitude"]))
    for dep, points in gps.items():
        lats, lons = sorted(p[0] for p in points), sorted(p[1] for p in points)
        out[dep] = (lats[len(lats) // 2], lons[len(lons) // 2])
    return out
