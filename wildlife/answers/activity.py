"""Activity: each independent record's clock and sun time, per-taxon density curves, overlap between taxa.

Curves are drawn for a taxon with at least ``MIN_CURVE_RECORDS`` records, and the overlap coefficient is given
for pairs where both taxa have at least ``MIN_OVERLAP_RECORDS``: Odin's thresholds. Ridout & Linkie (2009)
studied samples from 25 records up, and the bandwidth estimate is unstable on a handful of points; below the
thresholds the tables say so (``activity_overlap.csv`` lists every pair, with ``note``) instead of drawing a
curve from noise. Both are computed on clock time and on sun time (``time_basis``).
"""

from __future__ import annotations

import itertools
import math
from datetime import tzinfo
from typing import Any

import numpy as np

from wildlife.answers import circular, suntime

MIN_CURVE_RECORDS = 10
MIN_OVERLAP_RECORDS = 20
CURVE_STEP_H = 0.25  # curve points every quarter hour, 0..24 inclusive
BASES = ("clock", "sun")


def record_times(recs: list[dict[str, Any]], zones: dict[str, tzinfo],
                 points: dict[str, tuple[float, float]]) -> list[dict[str, Any]]:
    """``activity.csv``: one row per independent record with its clock hour and sun hour."""
    rows = []
    for r in recs:
        zone = zones.get(r["deployment_id"])
        if zone is None:
            continue
        when = r["start_time"]
        point = points.get(r["deployment_id"])
        sun, note = (None, "the deployment has no location") if point is None else suntime.sun_hour(when, *point,
                                                                                                     zone)
        local = when.astimezone(zone)
        rows.append({"cluster_id": r["cluster_id"], "deployment_id": r["deployment_id"], "taxon": r["taxon"],
                     "start_time": when, "local_time": local.replace(tzinfo=None).isoformat(timespec="seconds"),
                     "utc_offset_min": round(local.utcoffset().total_seconds() / 60),
                     "clock_hour": round(suntime.clock_hour(when, zone), 5),
                     "sun_hour": None if sun is None else round(sun, 5), "sun_note": note})
    return rows


def _radians(hours: list[float]) -> np.ndarray:
    return np.asarray(hours, dtype=float) * 2 * math.pi / 24


def _samples(times: list[dict[str, Any]], basis: str) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for r in times:
        if r[f"{basis}_hour"] is not None:
            out.setdefault(r["taxon"], []).append(r[f"{basis}_hour"])
    return out


Fits = dict[tuple[str, str], "circular.Fit | None"]


def fits(times: list[dict[str, Any]]) -> Fits:
    """(time basis, taxon) -> its kernel fit, for taxa with at least ``MIN_CURVE_RECORDS`` records: fitted once
    for the curves and for every pair it takes part in."""
    return {(basis, taxon): circular.fit(_radians(sample)) for basis in BASES
            for taxon, sample in _samples(times, basis).items() if len(sample) >= MIN_CURVE_RECORDS}


def curves(times: list[dict[str, Any]], fitted: Fits | None = None) -> list[dict[str, Any]]:
    """``activity_density.csv``: per taxon and time basis, the von Mises kernel density (per hour: integrates
    to 1 over 24 h) every ``CURVE_STEP_H`` hours, for taxa with at least ``MIN_CURVE_RECORDS`` records."""
    fitted = fits(times) if fitted is None else fitted
    hours = np.arange(0, 24 + CURVE_STEP_H / 2, CURVE_STEP_H)
    rows = []
    for (basis, taxon), fit in sorted(fitted.items(), key=lambda kv: (BASES.index(kv[0][0]), kv[0][1])):
        if fit is None:
            continue
        dens = circular.density(fit.x, _radians(list(hours)), fit.bandwidth) * 2 * math.pi / 24
        rows += [{"taxon": taxon, "time_basis": basis, "hour": float(h), "density": round(float(d), 6),
                  "records": fit.x.size, "kernel_concentration": round(fit.bandwidth, 4)}
                 for h, d in zip(hours, dens, strict=True)]
    return rows


def overlaps(times: list[dict[str, Any]], fitted: Fits | None = None) -> list[dict[str, Any]]:
    """``activity_overlap.csv``: every pair of taxa and time basis; the coefficient where both have enough
    records (``note`` says why not elsewhere)."""
    fitted = fits(times) if fitted is None else fitted
    rows = []
    for basis in BASES:
        samples = _samples(times, basis)
        for a, b in itertools.combinations(sorted(samples), 2):
            na, nb = len(samples[a]), len(samples[b])
            row = {"taxon_a": a, "taxon_b": b, "time_basis": basis, "records_a": na, "records_b": nb,
                   "dhat1": None, "dhat4": None, "estimator": None, "overlap": None, "note": None}
            if min(na, nb) < MIN_OVERLAP_RECORDS:
                row["note"] = f"fewer than {MIN_OVERLAP_RECORDS} records of one taxon"
            else:
                row.update(circular.overlap(fitted[(basis, a)], fitted[(basis, b)]))
                if row["overlap"] is None:
                    row["note"] = "no bandwidth: the records of one taxon all fall at one time"
            rows.append(row)
    return rows
