#!/usr/bin/env python3
"""How close MegaDetector v5 already runs to this CPU's arithmetic ceiling, per runtime and precision.

    python bench/ceiling.py [--rounds 3]

Issue #17 asks for fp32 MDv5 at >= 1.5x MegaDetector's own loop. MDv5 (YOLOv5x6 at 1280x960) is almost all
convolution, which oneDNN and OpenVINO run as matrix products; no runtime multiplies fp32 faster than this
CPU's best matrix product. So the question "how much faster can fp32 go?" has a measured answer: the model's
arithmetic (counted with torch's FlopCounterMode, a multiply-add = 2 FLOPs) over each runtime's seconds a
photo, next to the ceiling that a large matrix product (4096x4096, torch, every core) reaches in the same run.

Rounds alternate (ceiling, then each runtime, then the ceiling again), so a busier minute slows every row alike;
each cell is the median over rounds with [min-max]. The model's seconds are per photo on every core: batch 1
on both threads for torch and onnxruntime, two photos at once (one per core) for OpenVINO, as the engine runs it.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench"), str(ROOT / "tests")]

from detect import backends_for, spread  # noqa: E402
from tinymodels import calibrated  # noqa: E402

from wildlife.detect import backends, yolo  # noqa: E402

HEIGHT, WIDTH = 960, 1280  # a 4:3 photo letterboxed for MDv5
GEMM = 4096
FP32_FLOP_PER_CYCLE = 32  # a core with two 256-bit FMA pipes: 2 x 8 lanes x 2 FLOP (Zen 4; Intel with one
# 512-bit FMA port too)


def gemm_flops_per_s(dtype: torch.dtype, repeats: int = 4) -> float:
    a, b = torch.rand(GEMM, GEMM).to(dtype), torch.rand(GEMM, GEMM).to(dtype)
    torch.mm(a, b)  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        torch.mm(a, b)
    return repeats * 2 * GEMM**3 / (time.perf_counter() - start)


def seconds_per_photo(backend, photos: np.ndarray) -> float:
    start = time.perf_counter()
    backend(photos)
    return (time.perf_counter() - start) / len(photos)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(backends.threads())
    model = calibrated(yolo.MDV5, size=WIDTH)
    reference = copy.deepcopy(model).fuse().eval()
    x = torch.rand(1, 3, HEIGHT, WIDTH)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        reference(x)
    flops = counter.get_total_flops()
    bf16 = backends.bf16_supported()
    runs: list[tuple[str, object, np.ndarray]] = []
    with tempfile.TemporaryDirectory() as tmp:
        notes: list[str] = []
        modes = ["onnxruntime", "openvino", *(["bf16"] if bf16 else [])]
        for mode, backend in backends_for("MDv5", model, WIDTH, modes, Path(tmp), notes):
            photos = np.random.default_rng(0).random((getattr(backend, "photos_at_once", 1), 3, HEIGHT, WIDTH),
                                                     dtype=np.float32)
            runs.append((mode, backend, photos))
        with torch.no_grad():

            def eager(batch):
                return reference(torch.from_numpy(batch)).numpy()

            eager.device = "cpu"
            runs.insert(0, ("reference", eager, x.numpy()))
            for _, backend, photos in runs:  # warm-up: first inferences allocate and compile
                backend(photos)
            ceiling: dict[str, list[float]] = {"fp32": [], "bf16": []}
            got: dict[str, list[float]] = {name: [] for name, _, _ in runs}
            for _ in range(args.rounds):
                ceiling["fp32"].append(gemm_flops_per_s(torch.float32))
                if bf16:
                    ceiling["bf16"].append(gemm_flops_per_s(torch.bfloat16))
                for name, backend, photos in runs:
                    got[name].append(seconds_per_photo(backend, photos))
        for note in notes:
            print(f"note: {note}")
    g = 1e9
    print(f"\nMDv5 (YOLOv5x6) at {WIDTH}x{HEIGHT}: {flops / g:.0f} GFLOP a photo; {backends.threads()} cores; "
          f"{args.rounds} alternating rounds, median [min-max]\n")
    print(f"{'what':<44} {'s/photo':>20} {'GFLOP/s':>20} {'of fp32 ceiling':>16}")
    top = statistics.median(ceiling["fp32"])
    print(f"{'fp32 ceiling: torch sgemm 4096^2':<44} {'-':>20} {spread([c / g for c in ceiling['fp32']], '.0f'):>20} "
          f"{'100%':>16}")
    if ceiling["bf16"]:
        print(f"{'bf16 ceiling: torch bf16 gemm 4096^2':<44} {'-':>20} "
              f"{spread([c / g for c in ceiling['bf16']], '.0f'):>20} "
              f"{statistics.median(ceiling['bf16']) / top:>16.0%}")
    labels = {"reference": "MegaDetector's loop (torch eager fp32)", "onnxruntime": "engine: onnxruntime fp32",
              "openvino": "engine: OpenVINO fp32, 2 streams", "bf16": "engine: OpenVINO bf16, 2 streams"}
    for name, seconds in got.items():
        rate = [flops / s / g for s in seconds]
        print(f"{labels[name]:<44} {spread(seconds, '.2f'):>20} {spread(rate, '.0f'):>20} "
              f"{statistics.median(rate) * g / top:>16.0%}")
    need = 1.5 * flops / statistics.median(got["reference"])
    best = max(top, *(flops / statistics.median(got[m]) for m in ("onnxruntime", "openvino") if m in got))
    cores = backends.threads()
    print(f"\n1.5x MegaDetector's loop in fp32 needs {need / g:.0f} GFLOP/s: {need / best:.0%} of the fastest fp32 "
          f"rate measured in this run ({best / g:.0f} GFLOP/s); at {FP32_FLOP_PER_CYCLE} fp32 FLOP a cycle a core "
          f"(two 256-bit FMA pipes, AVX-512 on Zen 4) every core would have to run FMAs only, at "
          f"{need / cores / FP32_FLOP_PER_CYCLE / g:.1f} GHz.")

if __name__ == "__main__":
    main()
