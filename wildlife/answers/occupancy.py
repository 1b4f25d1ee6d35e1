"""Detection histories for occupancy models: per taxon, deployments x occasions of ``occasion_days`` days.

Occasions follow camtrapR's ``detectionHistory`` with ``day1 = "station"``: each deployment's occasions start
on the first day of its window, ``occasion_days`` local days each (the last one may be shorter). An occasion's
effort is the sum of its days' operation values (``effort.daily``); following camtrapR's
``calculateTrappingEffort`` (``includeEffort = TRUE``), an occasion with no fully operational day (every day
NA, 0 or a fraction) is NA, in the history and in the effort. Otherwise the history holds 1 when an independent
record of the taxon started on one of its days, else 0.
"""

from __future__ import annotations

import math
from datetime import date, timedelta
from typing import Any

from wildlife.answers.effort import Effort


def occasions(effort: Effort, occasion_days: int) -> list[list[date]]:
    """The deployment's occasions, each the list of its local days."""
    if not effort.days:
        return []
    first, last = min(effort.days), max(effort.days)
    n = (last - first).days + 1
    return [[first + timedelta(days=i) for i in range(k, min(k + occasion_days, n))]
            for k in range(0, n, occasion_days)]


def occasion_effort(effort: Effort, occasion_days: int) -> list[float | None]:
    """Operating days per occasion; None (NA) for an occasion without one fully operational day."""
    out = []
    for days in occasions(effort, occasion_days):
        values = [effort.days.get(d) for d in days]
        out.append(round(math.fsum(v or 0.0 for v in values), 4) if any(v == 1 for v in values) else None)
    return out


def detection_histories(efforts: list[Effort], recs: list[dict[str, Any]], taxa: list[str],
                        occasion_days: int) -> dict[str, list[list[int | None]]]:
    """Taxon -> rows (one per effort, in order) of 1/0/None per occasion, all as long as the longest
    deployment's."""
    plan = [list(zip(occasions(e, occasion_days), occasion_effort(e, occasion_days), strict=True)) for e in efforts]
    width = max((len(p) for p in plan), default=0)
    zones = {e.deployment_id: e.zone for e in efforts}
    seen: dict[tuple[str, str], set[date]] = {}
    for r in recs:
        if r["deployment_id"] in zones:
            day = r["start_time"].astimezone(zones[r["deployment_id"]]).date()
            seen.setdefault((r["taxon"], r["deployment_id"]), set()).add(day)
    out = {}
    for taxon in taxa:
        rows = []
        for e, occ in zip(efforts, plan, strict=True):
            days_seen = seen.get((taxon, e.deployment_id), set())
            row = [None if eff is None else int(any(d in days_seen for d in days)) for days, eff in occ]
            rows.append(row + [None] * (width - len(row)))
        out[taxon] = rows
    return out


def detection_history(efforts: list[Effort], recs: list[dict[str, Any]], taxon: str,
                      occasion_days: int) -> tuple[list[str], list[list[int | None]]]:
    """(deployment ids, rows of 1/0/None per occasion) of one taxon."""
    return [e.deployment_id for e in efforts], detection_histories(efforts, recs, [taxon], occasion_days)[taxon]


def effort_matrix(efforts: list[Effort], occasion_days: int) -> list[list[float | None]]:
    """Operating days per deployment and occasion, as wide as the histories (an ``obsCovs`` for unmarked)."""
    width = max((len(occasions(e, occasion_days)) for e in efforts), default=0)
    rows = [occasion_effort(e, occasion_days) for e in efforts]
    return [r + [None] * (width - len(r)) for r in rows]
