"""Relative abundance: independent records per 100 trap-nights, per deployment and taxon.

A record is an independent event of ``clusters.parquet`` (``independent``: camtrapR's ``minDeltaTime`` rule,
``wildlife.events``); its taxon is ``record_key``. The index is the usual camera-trap RAI (e.g. O'Brien et al.
2003, Anim. Conserv. 6:131): ``100 * records / trap_nights``, over the records that fell while the camera was
operating (``effort``). Records at other times (inside a problem period, outside the deployment window) are
counted in ``records_outside_effort`` and left out of the index, never dropped silently.
"""

from __future__ import annotations

from typing import Any

from wildlife.answers import record_key
from wildlife.answers.effort import Effort


def records(clusters: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The independent records (cluster rows) with their taxon key in ``taxon``."""
    out = []
    for r in clusters:
        taxon = r.get("taxon") or record_key(r.get("scientific_name"), r.get("top_category"))  # Stage 2's key
        if r.get("independent") and taxon is not None and r.get("start_time") is not None:
            out.append(dict(r, taxon=taxon))
    return out


def rai_rows(efforts: list[Effort], recs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rai.csv``: one row per deployment and taxon (every taxon seen anywhere, zeros included, so means over
    deployments are right); ``rai`` is empty where the deployment has no trap-nights."""
    taxa = sorted({r["taxon"] for r in recs})
    by = {e.deployment_id: e for e in efforts}
    counts: dict[tuple[str, str], list[int]] = {}
    for r in recs:
        effort = by.get(r["deployment_id"])
        if effort is None:
            continue
        inside = effort.operating_at(r["start_time"])
        c = counts.setdefault((r["deployment_id"], r["taxon"]), [0, 0])
        c[0 if inside else 1] += 1
    rows = []
    for e in efforts:
        nights = e.trap_nights if e.window else 0.0
        for taxon in taxa:
            inside, outside = counts.get((e.deployment_id, taxon), [0, 0])
            rows.append({"deployment_id": e.deployment_id, "taxon": taxon, "records": inside,
                         "records_outside_effort": outside, "trap_nights": nights,
                         "rai": round(100.0 * inside / nights, 4) if nights > 0 else None})
    return rows
