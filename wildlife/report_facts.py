"""What ``report.html`` says, as plain data: which times can be used, activity from independent records,
effort and outcome per deployment, failed and skipped files, clock flags.

Photo times come from ``images``: the UTC ``timestamp`` places a photo on the timeline, the camera's wall clock
(``timestamp_local``) gives its hour of day. A photo whose clock flags make its time unusable
(``clock.trusted``) is left out of every time-based fact here and counted, never silently dropped. An event is
placed at its first photo with a trusted time; an event without one is left out and counted.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa

from wildlife import rowbatches
from wildlife.clock import UNTRUSTED_FLAGS, trusted
from wildlife.deployments import Deployment

NO_DEPLOYMENT = "(none)"  # as Stage 2 names the deployment of events whose photos have none
PHOTO_COLUMNS = ("photo_id", "relpath", "deployment_id", "status", "reason", "timestamp", "timestamp_local",
                 "clock_flags", "event_id", "assessed")


class PhotoRows:
    """The columns the report reads, as rows (columns a table lacks are left out of its rows), made again a
    slice at a time on each pass (``rowbatches``): a million photos are never all dicts at once."""

    def __init__(self, images: pa.Table):
        self.table = images.select([c for c in PHOTO_COLUMNS if c in images.column_names])

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for part in rowbatches.slices(self.table):
            yield from part.to_pylist()

    def __len__(self) -> int:
        return self.table.num_rows

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.table.slice(i, 1).to_pylist()[0]


def wall_clock(value: datetime | str | None) -> datetime | None:
    """The camera's wall-clock time from ``timestamp_local``: a naive timestamp as it is, or ISO 8601 text
    read as written (its offset dropped, not applied). None when absent or unreadable."""
    if value is None or isinstance(value, datetime):  # the same object where it has no zone: one per photo
        return value if value is None or value.tzinfo is None else value.replace(tzinfo=None)
    try:
        return datetime.fromisoformat(value).replace(tzinfo=None)
    except ValueError:
        return None


@dataclass
class Times:
    """Trusted photo times, and what was left out because its time cannot be trusted."""

    utc: dict[str, datetime] = field(default_factory=dict)
    local: dict[str, datetime] = field(default_factory=dict)
    left_out: int = 0  # photos (status ok) with an untrusted or missing time
    left_out_by_flag: Counter = field(default_factory=Counter)


def trusted_times(rows: list[dict[str, Any]]) -> Times:
    out = Times()
    for r in rows:
        if r["status"] != "ok":
            continue
        local = wall_clock(r.get("timestamp_local"))
        flags = r.get("clock_flags") or []
        if trusted(flags) and r.get("timestamp") is not None and local is not None:
            out.utc[r["photo_id"]] = r["timestamp"]
            out.local[r["photo_id"]] = local
        else:
            out.left_out += 1
            out.left_out_by_flag.update([f for f in flags if f in UNTRUSTED_FLAGS] or ["no readable time"])
    return out


@dataclass
class PlacedEvents:
    events: list[dict[str, Any]]  # clusters rows with ``when_utc`` and ``when_local``: the first trusted photo
    left_out: int  # events none of whose photos has a trusted time


def place_events(clusters: pa.Table, rows: list[dict[str, Any]], times: Times) -> PlacedEvents:
    first: dict[str, str] = {}
    for r in rows:
        pid, event = r["photo_id"], r.get("event_id")
        if event is not None and pid in times.utc and (event not in first or times.utc[pid] < times.utc[first[event]]):
            first[event] = pid
    placed, left_out = [], 0
    for e in clusters.to_pylist():
        pid = first.get(e["cluster_id"])
        if pid is None:
            left_out += 1
        else:
            placed.append(dict(e, when_utc=times.utc[pid], when_local=times.local[pid]))
    return PlacedEvents(placed, left_out)


def activity(events: list[dict[str, Any]]) -> dict[str, list[int]]:
    """Independent records per category by the camera's local hour of day."""
    out: dict[str, list[int]] = defaultdict(lambda: [0] * 24)
    for e in events:
        if e["independent"]:
            out[e["top_category"]][e["when_local"].hour] += 1
    return dict(sorted(out.items()))


def independent_per_deployment(events: list[dict[str, Any]]) -> dict[str, Counter]:
    out: dict[str, Counter] = defaultdict(Counter)
    for e in events:
        if e["independent"]:
            out[e["deployment_id"] or NO_DEPLOYMENT][e["top_category"]] += 1
    return dict(out)


def camera_days(dep: Deployment | None, local_times: list[datetime]) -> tuple[float | int | None, str]:
    """(days, where from): the deployment ``window`` when both ends are known, else the calendar days (camera's
    clock) from the first to the last trusted ``photos``, both counted."""
    if dep is not None and dep.start is not None and dep.end is not None:
        return round((dep.end - dep.start).total_seconds() / 86400, 1), "window"
    if local_times:
        return (max(local_times).date() - min(local_times).date()).days + 1, "photos"
    return None, "no trusted photo"


def deployment_summary(rows: list[dict[str, Any]], clusters: pa.Table, times: Times,
                       deployments: dict[str, Deployment]) -> list[dict[str, Any]]:
    """One row per deployment: photos, camera-days, events, independent events, failed files."""
    photos, untrusted, failed = Counter(), Counter(), Counter()
    local: dict[str, list[datetime]] = defaultdict(list)
    for r in rows:
        dep = r.get("deployment_id") or NO_DEPLOYMENT
        if r["status"] == "ok":
            photos[dep] += 1
            if r["photo_id"] in times.local:
                local[dep].append(times.local[r["photo_id"]])
            else:
                untrusted[dep] += 1
        elif r["status"] == "failed":
            failed[dep] += 1
    events, independent = Counter(), Counter()
    for dep, ind in zip(clusters.column("deployment_id").to_pylist(), clusters.column("independent").to_pylist(),
                        strict=True):
        events[dep or NO_DEPLOYMENT] += 1
        independent[dep or NO_DEPLOYMENT] += bool(ind)
    out = []
    for dep in sorted(set(photos) | set(failed) | set(events) | set(deployments)):
        days, source = camera_days(deployments.get(dep), local[dep])
        out.append({"deployment": dep, "photos": photos[dep], "untrusted_times": untrusted[dep],
                    "camera_days": days, "camera_days_from": source, "events": events[dep],
                    "independent_events": independent[dep], "failed": failed[dep]})
    return out


@dataclass
class Failures:
    by_reason: list[tuple[str, str, int]]  # (status, reason, files), most files first
    listed: list[dict[str, Any]]  # the first ``limit`` failed or skipped files, by path
    more: int  # failed or skipped files not listed


def failures(rows: list[dict[str, Any]], limit: int = 200) -> Failures:
    bad = sorted((r for r in rows if r["status"] in ("failed", "skipped")), key=lambda r: r["relpath"])
    groups = Counter((r["status"], r.get("reason") or "(no reason given)") for r in bad)
    return Failures([(s, reason, n) for (s, reason), n in sorted(groups.items(), key=lambda kv: (-kv[1], kv[0]))],
                    bad[:limit], max(0, len(bad) - limit))


def clock_flags(rows: list[dict[str, Any]], examples: int = 3) -> list[dict[str, Any]]:
    """Per clock flag: photos with it, whether it makes their time unusable, and example paths."""
    count: Counter = Counter()
    paths: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        for f in r.get("clock_flags") or []:
            count[f] += 1
            if len(paths[f]) < examples:
                paths[f].append(r["relpath"])
    return [{"flag": f, "photos": n, "untrusted": f in UNTRUSTED_FLAGS, "examples": paths[f]}
            for f, n in sorted(count.items(), key=lambda kv: (-kv[1], kv[0]))]


def unassessed(report: dict[str, Any], rows: list[dict[str, Any]]) -> int | None:
    """Photos the detector did not assess: Stage 1's or Stage 2's ``unassessed`` count, else the images
    table's ``assessed`` column; None where neither says."""
    for stage in ("Stage1Detect", "Stage2Events"):
        value = (report.get("stages") or {}).get(stage, {}).get("unassessed")
        if isinstance(value, dict):
            value = sum(v for v in value.values() if isinstance(v, int))
        if isinstance(value, list):
            value = len(value)
        if isinstance(value, int):
            return value
    if rows and "assessed" in rows[0]:
        return sum(1 for r in rows if r["status"] == "ok" and r["assessed"] is False)
    return None
