"""Turn a camera's local clock reading into UTC, and flag clocks that cannot be trusted.

Clock problems are flags on the photo, never errors: a photo with a doubtful time is still a photo.
Flags: ``no_exif_time`` (file time used), ``timezone_unknown`` (UTC assumed), ``no_deployment``,
``outside_deployment``, ``camera_reset`` (a date before 2005: the clock lost power), ``future_date``,
``time_backwards`` (earlier than the photo before it in the same burst).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

from wildlife.deployments import Deployment, parse_tz

RESET_BEFORE_YEAR = 2005
# Flags after which a photo's time cannot be used as a time of day or date: analyses (activity, events,
# effort), the report and Camtrap DP's timestampIssues leave such photos out or mark them. One definition.
# ``timezone_unknown`` is not among them: the camera's wall clock (time of day, gaps between photos) is still
# right; only the UTC instant is unsure, and that flag stays on the photo for whoever needs UTC.
UNTRUSTED_FLAGS = frozenset({"no_exif_time", "camera_reset", "future_date"})


def trusted(flags: list[str] | None) -> bool:
    """Whether a photo's time can be used (none of UNTRUSTED_FLAGS among its clock flags)."""
    return not any(f in UNTRUSTED_FLAGS for f in flags or ())


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


def to_utc(
    row: dict[str, Any], deployment: Deployment | None, now_utc: datetime,
    camera: tuple[datetime | None, str] | None = None,
) -> tuple[datetime, str, str, list[str]]:
    """(UTC time, local ISO 8601 with offset, source, flags) for one photo's header row.

    ``camera`` is ``camera_time(row)`` when the caller has it already (Stage 0's hot loop does).
    """
    flags: list[str] = []
    local, source = camera or camera_time(row)
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
