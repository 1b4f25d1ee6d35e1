#!/usr/bin/env python3
"""Stage 2 events at scale: 1,000,000 photos over 1,000 deployments (target: <= 20 s on 2 cores).

    python bench/events.py [--photos 1000000] [--deployments 1000]

Photos come in bursts of 5 (1 s apart) at random times over a year; 60 % of bursts are positive. The table is
run through ``stage2.events_from_table`` (what ``run.py events --table`` does: parse, aggregate, cluster,
independence) with HDBSCAN, next to the same with the plain gap rule as the reference.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from wildlife import stage2
from wildlife.events import EventRules


def make_table(photos: int, deployments: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    bursts = photos // 5
    dep = rng.integers(0, deployments, bursts)
    start = rng.uniform(0, 365 * 86400, bursts).astype(np.int64) + 1_700_000_000
    positive = rng.random(bursts) < 0.6
    conf = rng.uniform(0.2, 0.99, bursts)
    seconds = (start[:, None] + np.arange(5)[None, :]).ravel()
    dep_names = np.array([f"dep{d:04d}" for d in range(deployments)], dtype=object)
    return pa.table({
        "mediaID": pa.array([f"m{i:07d}" for i in range(bursts * 5)]),
        "deploymentID": pa.array(dep_names[np.repeat(dep, 5)].tolist()),
        "timestamp": pa.array(seconds * 1_000_000, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        "category": pa.array(np.where(np.repeat(positive, 5), "animal", None).tolist(), pa.string()),
        "conf": pa.array(np.repeat(conf, 5)),
    })


def run(table: pa.Table, method: str) -> tuple[float, int, int]:
    start = time.perf_counter()
    per_row, events = stage2.events_from_table(table, "mediaID", 0.2, EventRules(method=method))
    elapsed = time.perf_counter() - start
    assert per_row.num_rows == table.num_rows
    return elapsed, events.num_rows, sum(events.column("independent").to_pylist())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=1_000_000)
    parser.add_argument("--deployments", type=int, default=1000)
    args = parser.parse_args()
    table = make_table(args.photos, args.deployments)
    print(f"\nStage 2 events: {table.num_rows:,} photos, {args.deployments:,} deployments\n")
    print(f"{'method':<22} {'seconds':>8} {'photos/s':>11} {'events':>9} {'independent':>12}")
    for method in ("gap", "hdbscan"):
        secs, n_events, independent = run(table, method)
        print(f"{method:<22} {secs:>8.2f} {table.num_rows / secs:>11,.0f} {n_events:>9,} {independent:>12,}")
    print("\ntarget: hdbscan <= 20 s for 1M photos over 1,000 deployments")


if __name__ == "__main__":
    main()
