#!/usr/bin/env python3
"""The local estimate next to the time it estimates: Stage 0 + Stage 1 wall time, measured.

    python bench/estimate.py [--photos 1000] [--detector auto] [--workdir bench/_work]

Inputs: the bundled sample (10 real camera photos: too few to calibrate, so the price table's rates), the
sample copied into 10 folders (100 real photos, calibrated) and ``--photos`` generated 2048x1440 JPEGs in
bursts of 10 with an animal crossing (calibrated). Each is run as the runner does: GuardBudget (listing,
calibration, estimate), Stage 0, CostEstimation, Stage 1; the measured time is Stage 0 + Stage 1. Target:
estimate / measured within 0.7..1.3.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("ODIN_NO_PROGRESS", "1")

import photofactory as pf  # noqa: E402

from wildlife import stages  # noqa: E402

SAMPLE = ROOT / "data" / "sample" / "photos"


def make_bursts(folder: Path, n: int) -> Path:
    """``n`` camera-sized JPEGs: bursts of 10 one second apart, an animal crossing each burst."""
    marker = folder.parent / f"{folder.name}.complete-{n}"
    if not marker.exists():
        shutil.rmtree(folder, ignore_errors=True)
        print(f"generating {n} JPEGs (2048x1440, bursts of 10) in {folder} ...", file=sys.stderr)
        backgrounds = [pf.scene(2048, 1440, seed=s) for s in range(4)]
        t0 = datetime(2024, 5, 1, 6, 0, 0)
        for i in range(n):
            burst, frame = divmod(i, 10)
            when = t0 + timedelta(minutes=10 * burst, seconds=frame)
            pixels = pf.with_animal(backgrounds[burst % 4], (0.05 + 0.08 * frame, 0.4, 0.12, 0.2))
            pf.write_photo(folder / f"dep{burst % 4}" / f"IMG{i:05d}.JPG", pixels, when=when, gps=(55.7, 12.5))
        marker.touch()
    return folder


def copies_of_sample(folder: Path, times: int) -> Path:
    if not folder.exists():
        for k in range(times):
            shutil.copytree(SAMPLE, folder / f"copy{k:02d}")
    return folder


def measure(folder: Path, out: Path, detector: str) -> dict:
    """Estimate, then Stage 0 + Stage 1 as the runner calls them."""
    shutil.rmtree(out, ignore_errors=True)
    state = {"params": {"input_uri": str(folder), "output_uri": str(out), "budget_dkk": 1.0, "use_spot": True,
                        "target": "local", "detector": detector, "max_images": None, "sequence_gap_s": 60.0}}
    ctx = stages.Context(checkpoint_every=500)
    t0 = time.perf_counter()
    state["GuardBudget"] = stages.guard_budget(state, ctx)
    guard_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    state["Stage0Exif"] = stages.stage0_exif(state, ctx)
    stage0_s = time.perf_counter() - t0
    state["CostEstimation"] = stages.cost_estimation(state, ctx)
    t0 = time.perf_counter()
    state["Stage1Detect"] = stages.stage1_detect(state, ctx)
    stage1_s = time.perf_counter() - t0
    est = state["GuardBudget"]["estimate"]
    return {"photos": est["photos"], "detector": est["detector"], "rates": est["rates"], "guard_s": guard_s,
            "estimate_s": est["wall_time_s"], "measured_s": stage0_s + stage1_s, "stage0_s": stage0_s,
            "stage1_s": stage1_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=1000)
    parser.add_argument("--detector", default="auto")
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench" / "_work")
    args = parser.parse_args()
    inputs = [("sample (real, 10)", SAMPLE),
              ("sample x10 (real, 100)", copies_of_sample(args.workdir / "sample-x10", 10)),
              (f"generated ({args.photos})", make_bursts(args.workdir / "bursts", args.photos))]
    rows = [(name, measure(folder, args.workdir / "estimate-out", args.detector)) for name, folder in inputs]
    print(f"\nLocal estimate vs measured Stage 0 + Stage 1, --detector {args.detector}, {os.cpu_count()} cores\n")
    print(f"{'input':<24} {'photos':>6} {'detector':<13} {'rate source':<28} {'det ms':>7} {'calib s':>7} "
          f"{'estimate s':>10} {'measured s':>10} {'ratio':>6}")
    for name, r in rows:
        det = r["rates"]["detector"]
        source = det["source"].split(";")[0] + (f", {det['photos_timed']} timed" if det["photos_timed"] else "")
        print(f"{name:<24} {r['photos']:>6} {r['detector']:<13} {source[:28]:<28} {det['ms_per_photo']:>7.1f} "
              f"{r['guard_s']:>7.2f} {r['estimate_s']:>10.2f} {r['measured_s']:>10.2f} "
              f"{r['estimate_s'] / r['measured_s']:>6.2f}")
    print("\nratio = estimate / measured; target 0.7..1.3. calib s: GuardBudget (listing + calibration).")


if __name__ == "__main__":
    main()
