"""Turn a camera's local clock reading into UTC, and flag clocks that cannot be trusted.

The clock rule (README "The clock rule"): a camera's clock is set once and keeps that UTC offset all season,
so a deployment's readings are read in one fixed offset: the one written in its ``deploymentStart``, else
the zone's offset at its first photo (flag ``offset_assumed``), unless the table says the clock follows
daylight saving time (``clockFollowsDST``). A photo's own EXIF OffsetTimeOriginal wins over all of these.

Clock problems are flags on the photo, never errors: a photo with a doubtful time is still a photo.
Flags: ``no_exif_time`` (file time used), ``timezone_unknown`` (UTC assumed), ``offset_assumed`` (the zone's
offset at the deployment's first photo), ``no_deployment``, ``outside_deployment``, ``camera_reset`` (a date
before 2005: the clock lost power), ``future_date``, ``time_out_of_range`` (no UTC time exists for the
reading, e.g. year 0001 with a positive offset), ``time_backwards`` (earlier than the photo before it in the
same burst).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from itertools import pairwise
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from wildlife.deployments import Deployment, Location, locations, parse_tz, zone_at

RESET_BEFORE_YEAR = 2005
# Flags after which a photo's time cannot be used as a time of day or date: analyses (activity, events,
# effort), the report and Camtrap DP's timestampIssues leave such photos out or mark them. One definition.
# ``timezone_unknown`` is not among them: the camera's wall clock (time of day, gaps between photos) is still
# right; only the UTC instant is unsure, and that flag stays on the photo for whoever needs UTC.
UNTRUSTED_FLAGS = frozenset({"no_exif_time", "camera_reset", "future_date", "time_out_of_range"})


def trusted(flags: list[str] | None) -> bool:
    """Whether a photo's time can be used (none of UNTRUSTED_FLAGS among its clock flags)."""
    return not any(f in UNTRUSTED_FLAGS for f in flags or ())


def trusted_rows(flags: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """``trusted`` of each row of a ``clock_flags`` column, in Arrow: no Python list per photo."""
    flags = flags.combine_chunks() if isinstance(flags, pa.ChunkedArray) else flags
    if not pa.types.is_list(flags.type):  # a table from elsewhere (`odin events --table`): text, or all empty
        return np.array([trusted(re.findall(r"[a-z_]+", f) if isinstance(f, str) else f) for f in flags.to_pylist()],
                        dtype=bool)
    untrusted = pc.is_in(pc.list_flatten(flags), value_set=pa.array(sorted(UNTRUSTED_FLAGS), pa.string()))
    out = np.ones(len(flags), dtype=bool)
    out[pc.list_parent_indices(flags).filter(untrusted).to_numpy()] = False
    return out


@dataclass(frozen=True)
class ClockRule:
    """How a deployment's camera readings become UTC: read in ``tz`` (a fixed offset, or an IANA zone for a
    clock that follows daylight saving time); ``flag`` marks readings whose offset was not given."""

    name: str  # deployment_start_offset, timezone_offset, follows_dst, zone_at_first_photo, utc_assumed
    tz: tzinfo
    flag: str | None = None
    zone: str | None = None  # the deployment's zone (IANA name, or the table's fixed offset), when known

    @property
    def offset_min(self) -> int | None:
        """The fixed offset in minutes east of UTC; None for a clock that follows daylight saving time."""
        return _minutes(self.tz.utcoffset(None)) if isinstance(self.tz, timezone) else None


UTC_ASSUMED = ClockRule("utc_assumed", UTC, "timezone_unknown")


@dataclass(frozen=True)
class DeploymentClock:
    """A deployment (None for photos without one), where it stood, and the clock rule its photos follow."""

    deployment: Deployment | None
    location: Location | None
    rule: ClockRule


NO_DEPLOYMENT = DeploymentClock(None, None, UTC_ASSUMED)


class Placed(NamedTuple):
    """A photo's place in time: UTC, the wall-clock time in its offset, that offset, source and flags."""

    utc: datetime | None
    local: datetime | None  # naive: what a clock at the site showed (after the deployment's clockOffset)
    offset_min: int | None
    source: str
    flags: list[str]


def _minutes(delta: timedelta | None) -> int:
    return round(delta.total_seconds() / 60) if delta is not None else 0


def rule_for(dep: Deployment | None, location: Location | None, first_local: datetime | None) -> ClockRule:
    """The clock rule of one deployment (``first_local``: the camera's reading on its first photo)."""
    if dep is None:
        return UTC_ASSUMED
    zone = parse_tz(dep.timezone) if dep.timezone else None
    point = location and (location.point or location.gps_point)
    if zone is None and point:
        zone = zone_at(*point)
    name = dep.timezone or getattr(zone, "key", None)
    if isinstance(zone, timezone):
        return ClockRule("timezone_offset", zone, None, name)
    if zone is not None and dep.clock_follows_dst:
        return ClockRule("follows_dst", zone, None, name)
    if dep.start_offset_min is not None:
        return ClockRule("deployment_start_offset", timezone(timedelta(minutes=dep.start_offset_min)), None, name)
    if zone is not None:
        at = first_local or (dep.start.replace(tzinfo=None) if dep.start else datetime(2000, 1, 1))
        return ClockRule("zone_at_first_photo", timezone(zone.utcoffset(at)), "offset_assumed", name)
    return UTC_ASSUMED


def deployment_clocks(rows: Iterable[dict[str, Any]], table: dict[str, Deployment]) -> dict[str, DeploymentClock]:
    """Every deployment's location and clock rule, from all of its photos (media rows) at once."""
    rows = [r for r in rows if r.get("deployment_id") is not None]
    first: dict[str, datetime] = {}
    for r in rows:
        dep_id = r["deployment_id"]
        local = camera_time(r)[0] if r.get("status") == "ok" else None
        if local is None or local.year < RESET_BEFORE_YEAR:
            continue
        if dep_id not in first or local < first[dep_id]:
            first[dep_id] = local
    out = {}
    for dep_id, loc in locations(table, rows).items():
        dep = table.get(dep_id) or Deployment(id=dep_id)  # a folder-named deployment without a table row
        out[dep_id] = DeploymentClock(dep, loc, rule_for(dep, loc, first.get(dep_id)))
    return out


def parse_exif_time(text: str | None, subsec: str | None = None) -> datetime | None:
    """'2021:04:11 20:43:09' (+ SubSecTime '25') as a naive datetime; None when absent or invalid."""
    if not text or len(text) < 19:
        return None
    try:  # slicing is ~10x faster than strptime, and Stage 0 does this for every photo
        when = datetime(int(text[0:4]), int(text[5:7]), int(text[8:10]),
                        int(text[11:13]), int(text[14:16]), int(text[17:19]))
    except ValueError:
        return None
    if subsec and subsec.strip().isdigit():
        digits = subsec.strip()[:6]
        when += timedelta(microseconds=int(digits.ljust(6, "0")))
    return when


def camera_time(row: dict[str, Any]) -> tuple[datetime | None, str]:
    """The camera's own (naive, local) time for a photo, and where it came from."""
    when = parse_exif_time(row.get("datetime_original"), row.get("subsec_time_original"))
    if when is not None:  # Stage 0's header reader says where in the file it found the time
        return when, row.get("datetime_original_source") or "exif"
    when = parse_exif_time(row.get("maker_datetime"))
    if when is not None:
        return when, "makernote"
    return None, "file_mtime"


def epoch_utc(value: float | datetime | None) -> datetime | None:
    """A file time (seconds since 1970, or a datetime already) as UTC; None when absent or impossible."""
    if value is None or isinstance(value, datetime):
        return value
    try:
        return datetime.fromtimestamp(value, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


@lru_cache(maxsize=256)
def _exif_offset(text: str | None) -> tzinfo | None:
    if not text:
        return None
    try:
        return parse_tz(text)
    except ValueError:
        return None


def to_utc(
    row: dict[str, Any], deployment: Deployment | None, now_utc: datetime,
    camera: tuple[datetime | None, str] | None = None, rule: ClockRule | None = None,
) -> Placed:
    """One photo's place in time from its header row and its deployment's clock rule.

    ``camera`` is ``camera_time(row)`` when the caller has it already; ``rule`` the deployment's clock rule
    (``deployment_clocks``), else the one its table row alone gives.
    """
    flags: list[str] = []
    local, source = camera or camera_time(row)
    if rule is None:
        rule = rule_for(deployment, Location(deployment.latitude, deployment.longitude, "deployments table")
                        if deployment else None, local)
    tz = rule.tz
    utc: datetime | None = None
    if local is None:
        flags.append("no_exif_time")
        source = "file_mtime"
        utc = epoch_utc(row.get("mtime"))
    else:
        exif_tz = _exif_offset(row.get("offset_time_original"))
        if exif_tz is not None:
            tz, source = exif_tz, source + "+exif_offset"
        else:
            source += "+" + rule.name
            if rule.flag:
                flags.append(rule.flag)
        if local.year < RESET_BEFORE_YEAR:
            flags.append("camera_reset")
        try:
            utc = (local - tz.utcoffset(local)).replace(tzinfo=UTC)
        except OverflowError:
            flags.append("time_out_of_range")
    if utc is not None and deployment is not None and deployment.clock_offset_s:
        source += "+clock_offset"
        try:
            utc -= timedelta(seconds=deployment.clock_offset_s)
        except OverflowError:
            utc = None
            flags.append("time_out_of_range")
    wall = offset_min = None
    if utc is not None:
        try:
            shown = utc.astimezone(tz)
            wall, offset_min = shown.replace(tzinfo=None), _minutes(shown.utcoffset())
        except OverflowError:
            utc = None
            flags.append("time_out_of_range")
    if deployment is None:
        flags.append("no_deployment")
    elif utc is not None and not deployment.contains(utc):
        flags.append("outside_deployment")
    if utc is not None and utc > now_utc + timedelta(days=1):
        flags.append("future_date")
    return Placed(utc, wall, offset_min, source, flags)


def local_time(row: dict[str, Any]) -> datetime | None:
    """A media row's wall-clock time with its UTC offset (``timestamp_local`` + ``utc_offset_min``)."""
    if row.get("timestamp_local") is None or row.get("utc_offset_min") is None:
        return None
    return row["timestamp_local"].replace(tzinfo=timezone(timedelta(minutes=row["utc_offset_min"])))


def flag_backwards(rows: list[dict[str, Any]], burst_s: float = 60.0) -> None:
    """Flag photos whose time runs backwards within a burst.

    A burst is one maker-note event (Reconyx: same event number, ordered by "n of m"). Without a maker note,
    consecutive files of one folder (cameras number their files) less than ``burst_s`` apart are a burst.
    """
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row.get("timestamp") is None:
            continue
        folder = row["relpath"].rsplit("/", 1)[0] if "/" in row["relpath"] else ""
        event = row.get("maker_event_number")
        groups[(row.get("deployment_id"), folder, event is not None, event)].append(row)
    for (_, _, by_event, _), members in groups.items():
        members.sort(key=lambda r: (r.get("maker_sequence_index") or 0, r["relpath"]))
        for before, after in pairwise(members):
            back = (before["timestamp"] - after["timestamp"]).total_seconds()
            if back > 0 and (by_event or back <= burst_s):
                after["clock_flags"].append("time_backwards")
