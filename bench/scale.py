#!/usr/bin/env python3
"""One machine at scale: the whole pipeline (`run --target local --detector motion`) on 10k and 100k generated
photos (1M with ``--sizes``), with wall time, peak memory and CPU use per stage, next to MegaDetector v5's time
for the same photos at this machine's measured rate.

    python bench/scale.py [--sizes 10000,100000] [--distinct 200] [--workdir bench/_work/scale]

Photos: 640x480 JPEGs with EXIF (tests/photofactory.py). A few hundred are encoded once; every file is a copy
of one of them with its own DateTimeOriginal patched into the bytes, so 1M files take minutes, not hours. They
are written once under ``--workdir`` (``pool``; about 30 KB each) and hard-linked into one input folder per
size. Deployments of 1,000 photos (one folder each), bursts of 5 photos 2 s apart, one burst per 5 minutes;
the third photo of each burst has an animal, so the motion baseline finds boxes.

Each size runs the CLI in a child process, as a user runs it (no weather, progress off). Per stage: wall time
(run_report.json), peak memory (PSS) of the run's process tree (its worker processes included), sampled every 50 ms,
and CPU use as cores busy (CPU seconds of the tree / wall seconds; 2.0 = both cores of this machine; the first
stage's figure includes the CLI's start), with the CPU seconds and the share of them spent in the run's own
process, threads included ("in parent"): work its worker processes cannot share, whose figure, unlike cores busy,
holds on a machine busy with other work. The
reference column is MegaDetector v5 at the local rate of wildlife/prices.yaml (``local.ms_per_photo``), so
"Stage 0 + Stage 2 + outputs <= 10% of MDv5 detection" is read off the last lines. The numbers are indicative
on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import photofactory as pf  # noqa: E402

from wildlife import budget  # noqa: E402
from wildlife.graph import GRAPH  # noqa: E402

PER_DEPLOYMENT = 1000
BURST, BURST_GAP_S, BURST_EVERY_S = 5, 2, 300
T0 = datetime(2024, 5, 1, 6, 0, 0)
STAMP = "%Y:%m:%d %H:%M:%S"
TICK = os.sysconf("SC_CLK_TCK")


def photo_time(i: int) -> datetime:
    k, j = divmod(i % PER_DEPLOYMENT, BURST)
    return T0 + timedelta(seconds=k * BURST_EVERY_S + j * BURST_GAP_S)


def relpath(i: int) -> str:
    return f"dep{i // PER_DEPLOYMENT:04d}/IMG_{i % PER_DEPLOYMENT:05d}.JPG"


def make_pool(pool: Path, n: int, distinct: int) -> None:
    """``n`` photos under ``pool`` (kept between runs; only the missing ones are written)."""
    marker = pool / f".complete-{n}"
    if marker.exists() or (any(pool.glob(".complete-*")) and max(
            int(p.name.split("-")[1]) for p in pool.glob(".complete-*")) >= n):
        return
    pool.mkdir(parents=True, exist_ok=True)
    when = T0.strftime(STAMP).encode()
    templates = []
    for s in range(max(distinct // 2, 1)):
        bg = pf.scene(640, 480, seed=s)
        for pixels in (bg, pf.with_animal(bg, (0.3, 0.4, 0.2, 0.3))):
            jpeg = pf.encode_jpeg(pixels, pf.exif_block(when=T0, size=(640, 480), gps=(55.7, 12.5)))
            assert jpeg.count(when) == 1, "the template's time must appear once to be patched"
            templates.append(jpeg.split(when))
    print(f"writing {n} photos under {pool} ...", file=sys.stderr)
    start = time.monotonic()
    for i in range(n):
        path = pool / relpath(i)
        if path.exists():
            continue
        path.parent.mkdir(exist_ok=True)
        j = i % PER_DEPLOYMENT % BURST
        head, tail = templates[2 * ((i // BURST) % (len(templates) // 2)) + (j == 2)]
        path.write_bytes(head + photo_time(i).strftime(STAMP).encode() + tail)
        if i and i % 100_000 == 0:
            print(f"  {i} written, {time.monotonic() - start:.0f} s", file=sys.stderr)
    marker.touch()


def input_folder(workdir: Path, n: int) -> Path:
    """The first ``n`` photos of the pool, hard-linked into a folder of their own."""
    folder = workdir / f"in-{n}"
    marker = workdir / f".in-{n}.complete"
    if marker.exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    for i in range(n):
        target = folder / relpath(i)
        if i % PER_DEPLOYMENT == 0:
            target.parent.mkdir(parents=True)
        os.link(workdir / "pool" / relpath(i), target)
    marker.touch()
    return folder


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            continue
    return pids


def _rss(pids: list[int]) -> int:
    """Memory of the processes, each shared page counted once (PSS: forked workers share the parent's pages)."""
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                total += next(int(line.split()[1]) * 1024 for line in f if line.startswith("Pss:"))
        except (OSError, StopIteration):
            pass
    return total


def _cpu(pids: list[int], own: bool = False) -> float:
    """CPU seconds of the processes, their reaped children included (a finished worker pool's); ``own``: of the
    processes alone (the run's parent process, all its threads, without its worker processes)."""
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += sum(int(v) for v in fields[11:13 if own else 15])  # utime stime (cutime cstime)
        except OSError:
            pass
    return total / TICK


def run_size(workdir: Path, n: int, checkout: Path = ROOT) -> dict:
    folder = input_folder(workdir, n)
    out = workdir / f"out-{n}"
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ, ODIN_NO_PROGRESS="1", PYTHONPATH=str(checkout))
    cmd = [sys.executable, str(checkout / "scripts" / "run.py"), "run", "--input", str(folder), "--output", str(out),
           "--budget", "1000000", "--target", "local", "--detector", "motion", "--weather-provider", "none"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    names = [s.name for s in GRAPH]
    stages: dict[str, dict] = {}
    peak = {"now": 0, "all": 0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.05):
            rss = _rss(_tree(proc.pid))
            peak["now"], peak["all"] = max(peak["now"], rss), max(peak["all"], rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    cpu0, own0, t0, tail = 0.0, 0.0, time.monotonic(), []
    for line in proc.stderr:
        tail = [*tail[-20:], line]
        name = next((s for s in names if line.startswith(f"✓ {s} ")), None)
        if name:
            tree = _tree(proc.pid)
            cpu, own = _cpu(tree), _cpu([proc.pid], own=True)
            stages[name] = {"rss": max(peak["now"], _rss(tree)), "cpu": cpu - cpu0, "own": own - own0,
                            "seen": time.monotonic() - t0}
            cpu0, own0, t0, peak["now"] = cpu, own, time.monotonic(), _rss(tree)
    proc.wait()
    stop.set()
    sampler.join()
    if proc.returncode != 0:
        sys.exit(f"run of {n} photos failed ({proc.returncode}):\n{''.join(tail)}")
    report = json.loads((out / "run_report.json").read_text())
    for name, info in stages.items():
        info["wall"] = report["stages"].get(name, {}).get("duration_s") or info["seen"]
    return {"photos": n, "stages": stages, "peak": peak["all"], "wall": report["measured"]["wall_time_s"]}


def print_table(result: dict, mdv5_ms: float, who: str) -> None:
    n = result["photos"]
    print(f"\n{who}: {n:,} photos (640x480): whole run {result['wall']:.1f} s, "
          f"peak memory {result['peak'] / 2**30:.2f} GiB")
    print(f"{'stage':<18} {'seconds':>9} {'ms/photo':>9} {'peak MiB':>13} {'cores busy':>11} {'CPU s':>7} "
          f"{'in parent':>10}")
    for name, s in result["stages"].items():
        print(f"{name:<18} {s['wall']:>9.2f} {s['wall'] / n * 1000:>9.3f} {s['rss'] / 2**20:>13.0f} "
              f"{s['cpu'] / max(s['seen'], 1e-9):>11.2f} {s['cpu']:>7.2f} {s['own'] / max(s['cpu'], 1e-9):>10.0%}")
    light = sum(result["stages"].get(k, {}).get("wall", 0) for k in ("Stage0Exif", "Stage2Events", "WriteOutputs"))
    mdv5 = n * mdv5_ms / 1000
    print(f"{'MDv5 (reference)':<18} {mdv5:>9.0f} {mdv5_ms:>9.0f}   (wildlife/prices.yaml local rate, not run)")
    print(f"Stage 0 + Stage 2 + outputs: {light:.1f} s = {light / mdv5:.4%} of MDv5 detection (target <= 10%)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000", help="photo counts, comma-separated (1000000: opt-in)")
    parser.add_argument("--distinct", type=int, default=200, help="distinct encoded photos behind the copies")
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench" / "_work" / "scale")
    parser.add_argument("--reference", type=Path, help="another checkout (the code before a change) to run the same "
                                                         "sizes with, for its rows measured in this run")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    make_pool(args.workdir / "pool", sizes[-1], args.distinct)
    mdv5_ms = budget.load_prices()["local"]["ms_per_photo"]["megadetector"]
    print(f"{os.cpu_count()} cores; indicative numbers (a shared machine)")
    for n in sizes:
        print_table(run_size(args.workdir, n), mdv5_ms, "this checkout")
        if args.reference:
            print_table(run_size(args.workdir, n, args.reference), mdv5_ms, f"reference {args.reference}")


if __name__ == "__main__":
    main()
