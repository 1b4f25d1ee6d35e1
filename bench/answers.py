#!/usr/bin/env python3
"""The answer tables (effort, RAI, detection histories, activity) over a generated survey, against a reference.

    python bench/answers.py [--deployments 100] [--taxa 50] [--photos 500]

A survey of ``--deployments`` cameras, 60 days each, ``--photos`` photos per camera and an independent record
for every second photo, spread over ``--taxa`` taxa. Timed: ``wildlife.answers.tables.compute`` (effort,
records, clock and sun times) and ``files`` (every CSV, the activity curves and all pairwise overlaps).
Reference, in the same run: the overlap of each pair computed as a call of R's ``overlap::overlapEst`` per
pair does it (both samples' bandwidths estimated again for every pair: ``circular.overlap`` on raw angles),
timed over the first 40 pairs and scaled to all of them; next to it the same pairs with each taxon fitted
once (``circular.fit``), as ``files`` does.
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from wildlife.answers import activity, circular, tables
from wildlife.outputs import DEPLOYMENTS_SCHEMA


def survey(deployments: int, taxa: int, photos: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    t0 = datetime(2021, 4, 1, tzinfo=UTC)
    deps, media, clusters = [], [], []
    for d in range(deployments):
        dep_id = f"D{d:03d}"
        start = t0 + timedelta(days=int(rng.integers(0, 30)), hours=12)
        times = sorted(start + timedelta(seconds=float(s)) for s in rng.uniform(0, 60 * 86400, photos))
        deps.append({"deployment_id": dep_id, "deployment_start": start, "deployment_end": start + timedelta(days=60),
                     "utc_offset_min": 60, "latitude": 55 + rng.uniform(-1, 1), "longitude": 12 + rng.uniform(-1, 1),
                     "first_photo_time": times[0], "last_photo_time": times[-1]})
        media += [{"deployment_id": dep_id, "relpath": f"{dep_id}/IMG_{i:05d}.JPG", "status": "ok", "timestamp": t,
                   "clock_flags": []} for i, t in enumerate(times)]
        clusters += [{"cluster_id": f"{dep_id}:e{i:06d}", "deployment_id": dep_id, "start_time": t,
                      "top_category": "animal", "scientific_name": f"Species {int(rng.integers(0, taxa))}",
                      "independent": True} for i, t in enumerate(times[::2])]
    return (pa.Table.from_pylist(media), pa.Table.from_pylist(clusters),
            pa.Table.from_pylist(deps, schema=DEPLOYMENTS_SCHEMA))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deployments", type=int, default=100)
    parser.add_argument("--taxa", type=int, default=50)
    parser.add_argument("--photos", type=int, default=500)
    args = parser.parse_args()
    media, clusters, deps = survey(args.deployments, args.taxa, args.photos)

    t = time.perf_counter()
    answers = tables.compute(media, clusters, deps, None, occasion_days=7)
    t_compute = time.perf_counter() - t
    t = time.perf_counter()
    written = tables.files(answers)
    t_files = time.perf_counter() - t

    samples = {}
    for r in answers.activity:
        samples.setdefault(r["taxon"], []).append(r["clock_hour"] * math.pi / 12)
    pairs = list(itertools.combinations(sorted(samples), 2))
    timed = pairs[:40]
    t = time.perf_counter()
    reference = [circular.overlap(np.array(samples[a]), np.array(samples[b])) for a, b in timed]
    t_reference = (time.perf_counter() - t) * len(pairs) / len(timed)
    t = time.perf_counter()
    fits = {taxon: circular.fit(np.array(x)) for taxon, x in samples.items()}
    once = [circular.overlap(fits[a], fits[b]) for a, b in pairs]
    t_once = time.perf_counter() - t
    agree = max(abs(r["overlap"] - o["overlap"]) for r, o in zip(reference, once, strict=False))

    print(f"{args.deployments} deployments x 60 days, {media.num_rows} photos, {len(answers.records)} records, "
          f"{len(answers.taxa)} taxa ({len(pairs)} pairs per time basis; curves need {activity.MIN_CURVE_RECORDS}, "
          f"overlap {activity.MIN_OVERLAP_RECORDS} records)")
    print(f"{'what':58s} {'seconds':>8s}")
    print(f"{'answers: compute (effort, records, clock + sun time)':58s} {t_compute:8.2f}")
    print(f"{'answers: files (' + str(len(written)) + ' CSVs, curves, overlaps on 2 time bases)':58s} {t_files:8.2f}")
    print(f"{'reference: overlap per pair, bandwidths refit (overlapEst)':58s} {t_reference:8.2f}")
    print(f"{'Odin: overlap per pair, each taxon fitted once':58s} {t_once:8.2f}")
    print(f"largest difference between the two overlap estimates: {agree:.1e}")


if __name__ == "__main__":
    main()
