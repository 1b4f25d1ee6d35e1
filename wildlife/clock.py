"""Turn a camera's local clock reading into UTC, and flag clocks that cannot be trusted.

Clock problems are flags on the photo, never errors: a photo with a doubtful time is still a photo.
Flags: ``no_exif_time`` (file time used), ``timezone_unknown`` (UTC assumed), ``no_deployment``,
``outside_deployment``, ``camera_reset`` (a date before 2005: the clock lost power), ``future_date``,
``time_backwards`` (earlier than the photo before it in the same burst).
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from wildlife.deployments import Deployment, parse_tz

RESET_BEFORE_YEAR = 2005


def parse_exif_time(text: str | None, subsec: str | None = None) -> datetime | None:
    """'2021:04:11 20:43:09' (+ SubSecTime '25') as a naive datetime; None when absent or invalid."""
    if not text:
        return None
    try:
        when = datetime.strptime(text.strip()[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    if subsec and subsec.strip().isdigit():
        digits = subsec.strip()[:6]
        when += timedelta(microseconds=int(digits.ljust(6, "0")))
    return when


def camera_time(row: dict[str, Any]) -> tuple[datetime | None, str]:
    """The camera's own (naive, local) time for a photo, and where it came from."""
    when = parse_exif_time(row.get("datetime_original"), row.get("subsec_time_original"))
    if when is not None:
        return when, "exif"
    when = parse_exif_time(row.get("maker_datetime"))
    if when is not None:
        return when, "makernote"
    return None, "file_mtime"


def to_utc(
    row: dict[str, Any], deployment: Deployment | None, now_utc: datetime
) -> tuple[datetime, str, str, list[str]]:
    """(UTC time, local ISO 8601 with offset, source, flags) for one photo's header row."""
    flags: list[str] = []
    local, source = camera_time(row)
    tz = None
    if local is None:
        flags.append("no_exif_time")
        utc = datetime.fromtimestamp(row["mtime"] or 0, tz=UTC)
        source = "file_mtime"
    else:
        if row.get("offset_time_original"):
            try:
                tz = parse_tz(row["offset_time_original"])
                source += "+exif_offset"
            except ValueError:
                tz = None
        if tz is None and deployment is not None:
            tz = deployment.tz()
            if tz is not None:
                source += "+deployment_timezone"
        if tz is None:
            flags.append("timezone_unknown")
            tz = UTC
            source += "+assumed_utc"
        utc = local.replace(tzinfo=tz).astimezone(UTC)
        if local.year < RESET_BEFORE_YEAR:
            flags.append("camera_reset")
    if deployment is not None and deployment.clock_offset_s:
        utc -= timedelta(seconds=deployment.clock_offset_s)
        source += "+clock_offset"
    if deployment is None:
        flags.append("no_deployment")
    elif not deployment.contains(utc):
        flags.append("outside_deployment")
    if utc > now_utc + timedelta(days=1):
        flags.append("future_date")
    display_tz = tz or (deployment.tz() if deployment else None) or UTC
    return utc, utc.astimezone(display_tz).isoformat(), source, flags


def flag_backwards(rows: list[dict[str, Any]]) -> None:
    """Flag photos whose time runs backwards within a burst.

    A burst is one maker-note event (Reconyx: same event number, ordered by "n of m"); without a maker
    note, the photos of one folder in file-name order (cameras number their files).
    """
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row.get("timestamp") is None:
            continue
        folder = row["relpath"].rsplit("/", 1)[0] if "/" in row["relpath"] else ""
        if row.get("maker_event_number") is not None:
            groups[(row.get("deployment_id"), folder, "event", row["maker_event_number"])].append(row)
        else:
            groups[(row.get("deployment_id"), folder, "folder", None)].append(row)
    for members in groups.values():
        members.sort(key=lambda r: (r.get("maker_sequence_index") or 0, r["relpath"]))
        for before, after in itertools.pairwise(members):
            if after["timestamp"] < before["timestamp"]:
                after["clock_flags"].append("time_backwards")
