#!/usr/bin/env python3
"""Stage 0 throughput next to exiftool, on the same generated JPEGs with EXIF and Reconyx maker notes.

    python bench/stage0.py [--photos 2000] [--size 1024x768] [--workdir bench/_work]

``--size`` only changes the pixels behind each header (Stage 0 reads headers, never pixels): a small size makes
a 100,000-photo card affordable on disk. The table also gives each reader's peak memory (its own process).

Both read the same warm files. exiftool runs once over the whole folder (its fastest mode: one process,
``-fast2``, only the tags Stage 0 uses); Odin runs Stage 0 as the runner does: list, read headers, assign
deployments, fix clocks, write checkpoint parts and the media table. Prints photos/s for each and the ratio.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import photofactory as pf  # noqa: E402

from wildlife import fs, stages  # noqa: E402

EXIFTOOL_TAGS = ["-DateTimeOriginal", "-SubSecTimeOriginal", "-OffsetTimeOriginal", "-Make", "-Model",
                 "-SerialNumber", "-GPSLatitude", "-GPSLongitude", "-ImageWidth", "-ImageHeight", "-Sequence",
                 "-EventNumber", "-AmbientTemperature", "-MoonPhase", "-UserLabel"]


def make_photos(folder: Path, n: int, size: tuple[int, int]) -> None:
    marker = folder.parent / f"{folder.name}.complete-{n}-{size[0]}x{size[1]}"
    if marker.exists():
        return
    shutil.rmtree(folder, ignore_errors=True)
    t0 = datetime(2024, 5, 1, 6, 0, 0)
    backgrounds = [pf.scene(*size, seed=s) for s in range(8)]
    print(f"generating {n} JPEGs ({size[0]}x{size[1]}, EXIF + Reconyx maker note) in {folder} ...", file=sys.stderr)
    for i in range(n):
        when = t0 + timedelta(seconds=37 * i)
        note = pf.reconyx_note(when, (i % 10 + 1, 10), i // 10)
        pf.write_photo(folder / f"dep{i % 4}" / f"RCNX{i:05d}.JPG", backgrounds[i % 8],
                       when=when, gps=(55.7, 12.5), maker_note=note)
    marker.touch()


def ensure_exiftool() -> str | None:
    if shutil.which("exiftool"):
        return "exiftool"
    print("exiftool missing: installing Debian's libimage-exiftool-perl ...", file=sys.stderr)
    subprocess.run(["apt-get", "install", "-y", "-qq", "libimage-exiftool-perl"], check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return shutil.which("exiftool")


def time_odin(folder: Path, out: Path) -> tuple[float, int]:
    """GuardBudget's listing and Stage 0 exactly as the runner calls them, checkpoint parts included."""
    shutil.rmtree(out, ignore_errors=True)
    state = {"params": {"input_uri": str(folder), "output_uri": str(out), "budget_dkk": 1.0, "use_spot": True,
                        "target": "local", "detector": "motion", "max_images": None}}
    ctx = stages.Context(checkpoint_every=500)
    start = time.perf_counter()
    state["GuardBudget"] = stages.guard_budget(state, ctx)
    payload = stages.stage0_exif(state, ctx)
    elapsed = time.perf_counter() - start
    assert payload["photos_ok"] == fs.read_table(payload["media_uri"]).num_rows
    return elapsed, payload["photos_ok"]


def _measured(fn, *args) -> tuple[float, int, float]:
    secs, n = fn(*args)
    peak_kb = max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return secs, n, peak_kb / 1e6


def in_child(fn, *args) -> tuple[float, int, float]:
    """``fn(*args)`` (seconds, photos) in a fresh child process, with its peak RSS in GB (exiftool's own for
    exiftool; for Odin the child's, which starts as a copy of this small process)."""
    with multiprocessing.get_context("fork").Pool(1, maxtasksperchild=1) as pool:
        return pool.apply(_measured, (fn, *args))


def time_exiftool(exiftool: str, folder: Path) -> tuple[float, int]:
    start = time.perf_counter()
    out = subprocess.run([exiftool, "-j", "-fast2", "-r", "-ext", "JPG", *EXIFTOOL_TAGS, str(folder)],
                         capture_output=True, check=True)
    elapsed = time.perf_counter() - start
    return elapsed, out.stdout.count(b'"SourceFile"')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=2000)
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench" / "_work")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--size", default="1024x768", help="pixels behind each header, WxH")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    folder = args.workdir / "stage0"
    make_photos(folder, args.photos, size)
    exiftool = ensure_exiftool()
    out = args.workdir / "stage0-out"
    time_odin(folder, out)  # warm the page cache for both
    odin = min(in_child(time_odin, folder, out) for _ in range(args.repeat))
    rows = [("odin stage 0", *odin)]
    if exiftool:
        best = min(in_child(time_exiftool, exiftool, folder) for _ in range(args.repeat))
        rows.append(("exiftool -fast2 (one process)", *best))
    print(f"\nStage 0 on {args.photos} JPEGs, {os.cpu_count()} cores, best of {args.repeat}\n")
    print(f"{'reader':<32} {'photos':>7} {'seconds':>9} {'photos/s':>10} {'peak GB':>8}")
    for name, secs, n, peak in rows:
        print(f"{name:<32} {n:>7} {secs:>9.3f} {n / secs:>10.0f} {peak:>8.2f}")
    if exiftool:
        print(f"\nratio odin / exiftool: {rows[1][1] / rows[0][1]:.1f}x  (target >= 20x; >= 2000 photos/s)")
    else:
        print("\nexiftool could not be installed: no reference in this run")


if __name__ == "__main__":
    main()
