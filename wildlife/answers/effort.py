"""Camera effort: when each deployment's camera was really operating, per day, and its trap-nights.

A deployment's window is its ``deploymentStart``..``deploymentEnd`` from the deployments table; without a
table (or without those columns) the first and last photo with a trusted time stand in. Inside the window
the camera counts as *not* operating:

* during a ``problem`` period of the deployments table (``Deployment.problems``: columns ``problem1_from``,
  ``problem1_to``, ``problem2_from``, ..., camtrapR's ``ProblemX_from``/``ProblemX_to``);
* after a camera reset (photos flagged ``camera_reset``: the clock lost power), from the last trusted photo
  before the reset photos (in file order: cameras number their files) to the first trusted photo after them,
  or the window's end; those photos cannot be placed in time, so their days give no usable effort;
* during a silence: no photo for more than ``SILENCE_DAYS`` days, from the last photo before it to the first
  photo after it (or the window's end); a window without any photo is silent throughout. The days between
  set-up and the first photo are not cut, however many: a camera that has fired has shown it works, one that
  has not yet fired has shown nothing either way, and the field counts the window. Odin's rule, not a
  field standard: a camera that stops firing for two weeks has far more often failed (battery, full card,
  knocked over) than seen nothing; each cut is listed in ``effort.csv`` so a user can judge it.

Per local day (the deployment's clock offset; ``wildlife.answers.tables.local_zone``) the value is the share of
the day the camera operated: camtrapR's camera-operation matrix (``cameraOperation``), whose legend is NA:
not set up, 0: not operational, 1: operational; since camtrapR 2.1 days with a known setup, retrieval or
problem time hold the fraction of the day (a setup at noon gives 0.5). Trap-nights are the sum over days, as
camtrapR's ``surveyReport`` counts them.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from wildlife import clock

SILENCE_DAYS = 14.0

Interval = tuple[datetime, datetime]


@dataclass
class Effort:
    """One deployment's effort: its window, the periods cut from it (with why) and what operated."""

    deployment_id: str
    zone: tzinfo
    window: Interval | None
    window_source: str
    cuts: list[tuple[datetime, datetime, str]] = field(default_factory=list)
    operating: list[Interval] = field(default_factory=list)
    days: dict[date, float] = field(default_factory=dict)  # local day -> share of it operating

    @property
    def trap_nights(self) -> float:
        return round(sum(self.days.values()), 4)

    def operating_at(self, when: datetime) -> bool:
        return any(a <= when <= b for a, b in self.operating)


def _window(dep: dict[str, Any]) -> tuple[Interval | None, str]:
    start, end = dep.get("deployment_start"), dep.get("deployment_end")
    first, last = dep.get("first_photo_time"), dep.get("last_photo_time")
    source = "deployments table"
    if start is None:
        start, source = first, "first photo"
    if end is None:
        end = last
        source = "first and last photo" if source == "first photo" else "deploymentStart and last photo"
    elif source == "first photo":
        source = "first photo and deploymentEnd"
    if start is None or end is None or end <= start:
        return None, "no deploymentStart/deploymentEnd and fewer than two photos with a trusted time"
    return (start, end), source


def _reset_cuts(photos: list[dict[str, Any]], window: Interval) -> list[tuple[datetime, datetime, str]]:
    """The periods after camera resets: photos in file order, each run of ``camera_reset`` photos cuts from the
    last trusted photo before it to the first trusted one after it (the window's edges where none)."""
    ordered = sorted(photos, key=lambda r: r["relpath"])
    cuts, i = [], 0
    while i < len(ordered):
        if "camera_reset" not in (ordered[i]["clock_flags"] or ()):
            i += 1
            continue
        j = i
        while j < len(ordered) and "camera_reset" in (ordered[j]["clock_flags"] or ()):
            j += 1
        before = [r["timestamp"] for r in ordered[:i] if clock.trusted(r["clock_flags"]) and r["timestamp"]]
        after = [r["timestamp"] for r in ordered[j:] if clock.trusted(r["clock_flags"]) and r["timestamp"]]
        start = before[-1] if before else window[0]
        end = after[0] if after else window[1]
        cuts.append((start, end, f"camera reset: {j - i} photo(s) with a lost clock, from "
                                 f"{ordered[i]['relpath']}"))
        i = j
    return cuts


def _silence_cuts(times: list[datetime], window: Interval, silence_days: float) -> list[tuple[datetime, datetime, str]]:
    inside = sorted(t for t in times if window[0] <= t <= window[1])
    if not inside:
        return [(window[0], window[1], "no photo with a trusted time in the window (camera failed, or its photos "
                                       "are not in this run's input)")]
    points = [*inside, window[1]]  # from the last photo before a silence: the days before the first photo count
    cuts = []
    for a, b in itertools.pairwise(points):
        days = (b - a).total_seconds() / 86400
        if days > silence_days:
            cuts.append((a, b, f"silence: no photo for {days:.1f} days (more than {silence_days:g})"))
    return cuts


def subtract(window: Interval, cuts: list[Interval]) -> list[Interval]:
    """The parts of ``window`` outside every cut, in time order."""
    parts = [window]
    for c0, c1 in sorted(cuts):
        nxt = []
        for a, b in parts:
            if c1 <= a or c0 >= b:
                nxt.append((a, b))
                continue
            if a < c0:
                nxt.append((a, c0))
            if c1 < b:
                nxt.append((c1, b))
        parts = nxt
    return parts


def _day_bounds(day: date, zone: tzinfo) -> Interval:
    """A local day as UTC instants (in UTC, so differences are elapsed time: Python subtracts two times of one
    ``ZoneInfo`` as wall clocks, which makes a daylight-saving day 24 h long)."""
    return (datetime.combine(day, time(), zone).astimezone(UTC),
            datetime.combine(day + timedelta(days=1), time(), zone).astimezone(UTC))


def daily(window: Interval, operating: list[Interval], zone: tzinfo) -> dict[date, float]:
    """Local day -> the share of it inside an operating period, for every day the window touches."""
    out = {}
    day, last = window[0].astimezone(zone).date(), window[1].astimezone(zone).date()
    while day <= last:
        d0, d1 = _day_bounds(day, zone)
        length = (d1 - d0).total_seconds()
        covered = sum(max(0.0, (min(b, d1) - max(a, d0)).total_seconds()) for a, b in operating)
        out[day] = round(covered / length, 4)
        day += timedelta(days=1)
    return out


def deployment_effort(dep: dict[str, Any], photos: list[dict[str, Any]], zone: tzinfo,
                      problems: list[Interval] = (), silence_days: float = SILENCE_DAYS) -> Effort:
    """One deployment's effort from its ``deployments.parquet`` row, its media rows (``relpath``, ``status``,
    ``timestamp``, ``clock_flags``) and its problem periods."""
    window, source = _window(dep)
    effort = Effort(dep["deployment_id"], zone, window, source)
    if window is None:
        return effort
    ok = [r for r in photos if r["status"] == "ok"]
    cuts = [(a, b, f"problem period {a.isoformat()} to {b.isoformat()}") for a, b in problems]
    cuts += _reset_cuts(ok, window)
    trusted = [r["timestamp"] for r in ok if r["timestamp"] is not None and clock.trusted(r["clock_flags"])]
    explained = [(a, b) for a, b, _ in cuts]  # a silence inside a reset or problem period needs no cut of its own
    cuts += [c for c in _silence_cuts(trusted, window, silence_days) if subtract(c[:2], explained)]
    effort.cuts = sorted((max(a, window[0]), min(b, window[1]), why) for a, b, why in cuts if b > window[0]
                         and a < window[1])
    effort.operating = subtract(window, [(a, b) for a, b, _ in effort.cuts])
    effort.days = daily(window, effort.operating, zone)
    return effort


def operation_matrix(efforts: list[Effort]) -> tuple[list[str], list[date], list[list[float | None]]]:
    """camtrapR's layout: deployments (rows) x every day from the first to the last of any deployment
    (columns); a deployment's value is None (NA: not set up) outside its window."""
    days = [d for e in efforts for d in e.days]
    if not days:
        return [e.deployment_id for e in efforts], [], [[] for _ in efforts]
    first, last = min(days), max(days)
    columns = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    return ([e.deployment_id for e in efforts], columns, [[e.days.get(d) for d in columns] for e in efforts])


def effort_rows(efforts: list[Effort]) -> list[dict[str, Any]]:
    """``effort.csv``: one row per deployment."""
    rows = []
    for e in efforts:
        window_days = (e.window[1] - e.window[0]).total_seconds() / 86400 if e.window else None
        rows.append({
            "deployment_id": e.deployment_id,
            "window_start": e.window[0] if e.window else None, "window_end": e.window[1] if e.window else None,
            "window_source": e.window_source,
            "days_in_window": None if window_days is None else round(window_days, 4),
            "trap_nights": e.trap_nights if e.window else None,
            "days_not_operating": None if window_days is None else round(max(0.0, window_days - math.fsum(
                (b - a).total_seconds() / 86400 for a, b in e.operating)), 4),
            "operating_periods": len(e.operating),
            "cuts": "; ".join(f"{a.isoformat()} to {b.isoformat()}: {why}" for a, b, why in e.cuts) or None,
        })
    return rows
