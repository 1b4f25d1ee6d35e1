#!/usr/bin/env python3
"""Camtrap DP validation by the Frictionless validator (``wildlife.package_check``) over a generated package.

    python bench/package_check.py [--photos 20000]

A package of ``--photos`` photos over 20 deployments, one animal box on every second photo (so media and
observations rows both about ``--photos``), written by ``camtrapdp.export``. Timed: ``camtrapdp.validate``
(descriptor against the profile, every table against its schema, foreign keys). Reference, in the same run:
``camtrapdp.export`` writing the same package, and reading the three CSVs with Python's ``csv`` module (the
least any row-by-row check costs). WriteOutputs runs both on AWS Lambda (15 minutes at most): the rows per
second say how large a run's validation fits there.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from wildlife import camtrapdp, stage2


def tables(photos: int):
    t0 = datetime(2021, 4, 1, tzinfo=UTC)
    images = pa.Table.from_pylist([{
        "photo_id": f"p{i:07d}", "status": "ok", "deployment_id": f"D{i % 20:02d}",
        "relpath": f"D{i % 20:02d}/IMG_{i:07d}.JPG", "format": "jpeg", "timestamp": t0 + timedelta(seconds=37 * i),
        "timestamp_local": (t0 + timedelta(seconds=37 * i)).replace(tzinfo=None), "utc_offset_min": 0,
        "clock_flags": [], "assessed": True, "event_id": None} for i in range(photos)])
    detections = pa.Table.from_pylist([{
        "detection_id": f"p{i:07d}-0", "photo_id": f"p{i:07d}", "relpath": "x", "deployment_id": f"D{i % 20:02d}",
        "timestamp": t0, "category": "animal", "conf": 0.9, "bbox_x": 0.1, "bbox_y": 0.2, "bbox_w": 0.3,
        "bbox_h": 0.3, "suspected_static": False, "detector": "bench"} for i in range(0, photos, 2)],
        schema=stage2.DETECTION_SCHEMA)
    return images, detections


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", type=int, default=20000)
    args = ap.parse_args()
    images, detections = tables(args.photos)
    coords = {f"D{d:02d}": (55.0 + d / 100, 12.0) for d in range(20)}
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        payload = camtrapdp.export(tmp, images, detections, stage2.EVENT_SCHEMA.empty_table(), deployments_uri=None,
                                   coords=coords, detector="bench 1.0", threshold=0.2, session_id="bench")
        export_s = time.perf_counter() - t
        t = time.perf_counter()
        for name in camtrapdp.TABLES:
            with open(Path(tmp) / f"{name}.csv", newline="") as f:
                sum(1 for _ in csv.DictReader(f))
        read_s = time.perf_counter() - t
        t = time.perf_counter()
        errors = camtrapdp.validate(tmp)
        validate_s = time.perf_counter() - t
    rows = payload["deployments"] + payload["media"] + payload["observations"]
    print(f"package: {payload['media']} media, {payload['observations']} observations, {rows} rows; "
          f"errors: {len(errors)}")
    print(f"{'step':<44}{'seconds':>10}{'rows/s':>12}")
    for step, s in (("camtrapdp.export (reference)", export_s), ("csv.DictReader, the three tables (reference)",
                                                                  read_s), ("camtrapdp.validate (Frictionless)",
                                                                            validate_s)):
        print(f"{step:<44}{s:>10.2f}{rows / s:>12.0f}")


if __name__ == "__main__":
    main()
