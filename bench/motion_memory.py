#!/usr/bin/env python3
"""Peak memory of the motion baseline on one long sequence: N photos with the same timestamp, as a camera
whose clock was reset, or a timelapse, produces. Target: under 1 GB for 9,000 photos.

    python bench/motion_memory.py [--photos 9000] [--size 2048x1536] [--workdir bench/_work]

Each style runs Stage 1 (``stage1.detect``, checkpoint parts included) in a fresh process and reports that
process's peak RSS and wall time:

- ``windowed``: what Stage 1 runs: blocks of 48 photos against the median of a window of at most 64,
  checkpoints every 500 photos inside the sequence.
- ``whole-sequence``: the previous behaviour, emulated with one block as long as the sequence and one chunk
  (every frame decoded and held, then stacked for one median).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

TARGET_BYTES = 1_000_000_000


def make_photos(folder: Path, n: int, width: int, height: int) -> list[dict]:
    import photofactory as pf  # noqa: PLC0415

    marker = folder / f".complete-{n}-{width}x{height}"
    if not marker.exists():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        print(f"generating {n} JPEGs ({width}x{height}, one timestamp) in {folder} ...", file=sys.stderr)
        bg = pf.scene(width, height, seed=1)
        when = datetime(2024, 1, 1, 12, 0, 0)
        still = pf.encode_jpeg(bg, pf.exif_block(when=when, size=(width, height)))
        for i in range(n):
            if i % 50 == 25:  # now and then an animal walks through
                pf.write_photo(folder / f"IMG{i:05d}.JPG", pf.with_animal(bg, (0.3, 0.4, 0.2, 0.3)), when=when)
            else:
                (folder / f"IMG{i:05d}.JPG").write_bytes(still)
        marker.touch()
    return [{"photo_id": p.stem, "uri": str(p), "sequence_id": "reset-clock", "width": width, "height": height,
             "sequence_index": i, "sequence_size": n} for i, p in enumerate(sorted(folder.glob("*.JPG")))]


def child(style: str, folder: str, n: int, width: int, height: int, parts: str) -> None:
    os.environ["ODIN_WORKERS"] = "1"  # one process: what this measures (held frames, RSS) is this process's
    from wildlife import stage1  # noqa: PLC0415
    from wildlife.detect.motion import MotionDetector  # noqa: PLC0415

    photos = make_photos(Path(folder), n, width, height)
    detector, every = (MotionDetector(), 500) if style == "windowed" else (MotionDetector(block=n), n)
    t0 = time.perf_counter()
    results, _ = stage1.detect(photos, detector, parts, every)
    seconds = time.perf_counter() - t0
    with_boxes = sum(1 for d in results.column("detections").to_pylist() if d)
    print(json.dumps({"style": style, "seconds": seconds, "max_held": detector.max_held, "with_boxes": with_boxes,
                      "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=9000)
    parser.add_argument("--size", default="2048x1536", help="photo size, WIDTHxHEIGHT")
    parser.add_argument("--workdir", default=str(ROOT / "bench" / "_work"))
    parser.add_argument("--styles", default="windowed,whole-sequence")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    folder = Path(args.workdir) / "motion_memory"
    if args.child:
        child(args.child, str(folder), args.photos, width, height, str(Path(args.workdir) / f"parts-{args.child}"))
        return
    make_photos(folder, args.photos, width, height)
    print(f"{args.photos} photos of {width}x{height}, one sequence; target peak RSS < {TARGET_BYTES / 1e9:.1f} GB")
    for style in args.styles.split(","):
        shutil.rmtree(Path(args.workdir) / f"parts-{style}", ignore_errors=True)
        out = subprocess.run([sys.executable, __file__, "--child", style, "--photos", str(args.photos), "--size",
                              args.size, "--workdir", args.workdir], capture_output=True, text=True)
        if out.returncode != 0:
            print(f"{style:>15}: failed ({out.returncode}): {out.stderr.strip().splitlines()[-1:]}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        verdict = "under" if r["peak_rss"] < TARGET_BYTES else "OVER"
        print(f"{style:>15}: peak RSS {r['peak_rss'] / 1e9:5.2f} GB ({verdict} target), {r['seconds']:6.1f} s, "
              f"{r['seconds'] / args.photos * 1000:5.1f} ms/photo, at most {r['max_held']} frames held, "
              f"{r['with_boxes']} photos with boxes")


if __name__ == "__main__":
    main()
