#!/usr/bin/env python3
"""Stage 1 engine against a MegaDetector-equivalent reference loop, same photos, same weights, per mode.

    python bench/detect.py [--photos 2] [--small-photos 6] [--rounds 3] [--models mdv5,small]
                           [--modes torch,onnxruntime,openvino,bf16,int8] [--weights md_v5a.0.0.pt]
    python bench/detect.py --models mdv6-mit-yolov9-c,mdv6-apa-rtdetr-c,mdv6-apa-rtdetr-e  # opt-in, 11 min (busy)

The quick default (2 MDv5 photos and 6 small-model photos, 3 rounds, every mode) should take about 5 minutes
on a quiet 2-core AVX-512 machine (estimated from its parts: building and exporting the random MDv5 ~1 min,
~3.5 s a photo for the reference, ~25 MDv5 inferences in all, int8 calibration ~1 min; the small model's
rows took 27 s). Keep ``--photos`` at 2 or more: the OpenVINO rows run one photo per stream, two at once.

(a) reference: what MegaDetector's run_detector_batch does per photo: PIL full decode, letterbox (rectangular,
    stride-aligned), torch eager fp32 NCHW with batch norm folded into the convolutions (its PTDetector loads
    ``checkpoint['model'].float().fuse().eval()``), batch 1, sequential, then NMS;
(b) Odin's engine, one row per mode: JPEG decode in a thread pool overlapping inference, the same letterbox,
    and as runtime channels-last torch fp32 (a .pt model), onnxruntime fp32, OpenVINO fp32 (what an fp32 .onnx
    gets when OpenVINO is installed, ``wildlife.detect.backends``), OpenVINO bf16 (``models quantize
    --precision bf16``; CPUs with bf16 instructions only) and onnxruntime int8 (``models quantize``, calibrated
    on other photos than those timed).

Rounds alternate: reference, then each mode, then the reference again..., so a machine that gets busier or
quieter during the run slows every row alike. Each cell is the median over rounds with the range [min-max]
beside it: on a shared machine the range is the honest error bar. Speed-up is per round (the reference's time
in that round over the mode's), so a noisy minute cancels out.

The models have MegaDetector v5's architecture (YOLOv5x6, 140 M parameters, at 1280) and YOLOv5s's (the
size of MDv1000-spruce, at 640), random weights with batch norm and objectness calibrated so that a photo has
a handful of confident boxes (``tinymodels.calibrated``); no real weights can be downloaded here. With
``--weights md_v5a.0.0.pt`` the MDv5 rows use real weights: their int8 and bf16 agreement is the figure that
matters. On random weights bf16 and int8 boxes mostly disagree (MDv5: 0 of 11 boxes in bf16), and that says
little about a trained model: a random network amplifies rounding noise layer by layer, and the calibration
multiplies the objectness convolution to spread its logits, rounding noise with it.
MegaDetector v6 (``--models`` mdv6-mit-yolov9-c, mdv6-apa-rtdetr-c, mdv6-apa-rtdetr-e; not in the default run):
random-weight stand-ins of their architectures (``tests/arch_yolov9.py``, ``tests/arch_rtdetr.py``: MIT YOLOv9-s,
RT-DETRv2 R18vd and R101vd as PytorchWildlife builds them, parameters and FLOPs as published), exported to ONNX
in the catalogue's layout and run by the engine with the catalogue's sidecar (letterboxed for YOLOv9, stretched
to 640x640 for RT-DETR), fp32 on onnxruntime and OpenVINO, ``--small-photos`` photos a round. Their authors' loop
is not MegaDetector's, so their reference is MDv5a's loop (``--photos`` photos, MDv5's architecture), timed in the
same rounds: speed-up then reads "times MegaDetector v5a's photos/s", and agreement compares OpenVINO's boxes with
onnxruntime's.
Box agreement (``wildlife.detect.quantize.agreement``): share of the reference's boxes (conf >= 0.05)
matched by a box of the same class with IoU >= 0.9, and the largest coordinate difference of matched boxes.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import photofactory as pf  # noqa: E402
import standins  # noqa: E402
from PIL import Image  # noqa: E402
from tinymodels import calibrated  # noqa: E402

from wildlife.detect import backends, engine, quantize, weights, yolo  # noqa: E402

MODES = ("torch", "onnxruntime", "openvino", "bf16", "int8")
LABELS = {"torch": "fp32 torch (channels-last)", "onnxruntime": "fp32 onnxruntime", "openvino": "fp32 openvino",
          "bf16": "bf16 openvino", "int8": "int8 onnxruntime"}
MODELS = {"mdv5": ("MDv5 (YOLOv5x6)", yolo.MDV5, 1280), "small": ("YOLOv5s @640", yolo.SMALL_P5, 640)}
STANDIN_MODES = ("onnxruntime", "openvino")  # fp32 ONNX: what a user's export of MDv6 runs on


def make_photos(folder: Path, n: int, first_seed: int = 0) -> list[Path]:
    paths = []
    for i in range(n):
        bg = pf.scene(2048, 1536, seed=first_seed + i)
        img = pf.with_animal(bg, (0.2 + 0.05 * i, 0.4, 0.2, 0.25))
        paths.append(pf.write_photo(folder / f"p{i:03d}.jpg", img))
    return paths


def reference(model, paths, size, stride):
    out, model_s = [], 0.0
    start = time.perf_counter()
    for p in paths:
        img = np.asarray(Image.open(p).convert("RGB"))[..., ::-1]
        padded, ratio, pad = engine.letterbox(img, size, stride)
        x = torch.from_numpy(np.ascontiguousarray(padded[..., ::-1].transpose(2, 0, 1))).float()[None] / 255.0
        t = time.perf_counter()
        with torch.no_grad():
            pred = model(x).numpy()[0]
        model_s += time.perf_counter() - t
        rows = engine.postprocess(pred, "v5")
        out.append(engine.to_detections(rows, ratio, pad, img.shape[:2], engine.MD_CLASSES))
    return time.perf_counter() - start, model_s, out


class Timed:
    def __init__(self, backend):
        self.backend, self.device, self.seconds = backend, backend.device, 0.0
        self.photos_at_once = getattr(backend, "photos_at_once", 1)

    def __call__(self, batch):
        t = time.perf_counter()
        out = self.backend(batch)
        self.seconds += time.perf_counter() - t
        return out


def ours(backend, paths, size, stride, sidecar=None):
    timed = Timed(backend)
    det = engine.Engine(timed, sidecar or engine.Sidecar(input_size=size, stride=stride))
    photos = [{"photo_id": str(i), "uri": str(p), "width": 2048, "height": 1536} for i, p in enumerate(paths)]
    start = time.perf_counter()
    results = det.detect(photos)
    return time.perf_counter() - start, timed.seconds, [r.detections for r in results]


def int8_model(onnx_path: Path, folder: Path, size: int) -> tuple[Path, float, float]:
    """``models quantize``'s int8 model, calibrated on 4 photos other than those timed, in a child process so
    that its peak memory can be read on its own: (path, peak RSS in GB, seconds)."""
    calibration = [str(p) for p in make_photos(folder / "calibration", 5, first_seed=1000)]
    out = folder / "model.int8.onnx"
    code = ("import json, sys, pathlib; from wildlife.detect import quantize; a = json.loads(sys.argv[1]); "
            "quantize.quantize(pathlib.Path(a[0]), a[1], pathlib.Path(a[2]), calibration=4)")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, json.dumps([str(onnx_path), calibration, str(out)])],
                          cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"int8 quantization failed:\n{done.stderr[-3000:]}")
    seconds = time.perf_counter() - start
    return out, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1e6, seconds  # Linux: KiB


def backends_for(name, model, size, modes, folder, notes) -> list[tuple[str, object]]:
    """The modes asked for that this machine can run, each with its backend; what cannot run goes to ``notes``."""
    out = []
    if "torch" in modes:
        out.append(("torch", backends.TorchBackend(copy.deepcopy(model))))
    onnx_modes = [m for m in modes if m != "torch"]
    if not onnx_modes:
        return out
    onnx_path = folder / "model.onnx"
    weights.export_onnx(weights.Loaded(copy.deepcopy(model), name, "bench", ""), onnx_path, size)
    if "onnxruntime" in modes:
        out.append(("onnxruntime", backends.OnnxBackend(onnx_path)))
    have_ov = importlib.util.find_spec("openvino") is not None
    for mode, precision in (("openvino", "fp32"), ("bf16", "bf16")):
        if mode not in modes:
            continue
        if not have_ov:
            notes.append(f"{name}: {LABELS[mode]} skipped: OpenVINO is not installed")
        elif precision == "bf16" and not backends.bf16_supported():
            notes.append(f"{name}: {LABELS[mode]} skipped: this CPU has no bf16 instructions")
        else:
            out.append((mode, backends.OpenVinoBackend(onnx_path, precision)))
    if "int8" in modes:
        path, peak, seconds = int8_model(onnx_path, folder, size)
        notes.append(f"{name}: int8 calibration (4 photos at {size} px, then the agreement check) took "
                     f"{seconds:.0f} s with a peak RSS of {peak:.1f} GB (target: < 8 GB)")
        out.append(("int8", backends.OnnxBackend(path)))
    return out


def run(key, model, n, folder, rounds, modes, notes) -> list[dict]:
    name, _, size = MODELS[key]
    folder = folder / key
    stride = int(model.stride.max())
    paths = make_photos(folder / "photos", n + 1)
    warm, timed = paths[:1], paths[1:]
    reference_model = copy.deepcopy(model).fuse().eval()
    runs = backends_for(name, model, size, modes, folder, notes)
    reference(reference_model, warm, size, stride)  # warm-ups: the first inference allocates and compiles
    for _, backend in runs:
        ours(backend, warm, size, stride)
    ref: list[tuple] = []
    got: dict[str, list[tuple]] = {mode: [] for mode, _ in runs}
    for _ in range(rounds):
        ref.append(reference(reference_model, timed, size, stride))
        for mode, backend in runs:
            got[mode].append(ours(backend, timed, size, stride))
    rows = [dict(model=name, mode="reference: MegaDetector's loop", runtime="torch eager fp32", photos=n,
                 per_s=[n / r[0] for r in ref], speedup=None, overhead=[(r[0] - r[1]) / r[1] for r in ref],
                 agreement="(the reference)", same_pixels="-")]
    # the engine's own fp32 boxes: the same pixels as every mode (the reference decodes a photo at least twice
    # the input size in full, the engine at 1/2 or 1/4 inside the JPEG decoder), so bf16 and int8 are judged
    # on their arithmetic alone
    fp32 = next((got[m][0][2] for m in ("openvino", "onnxruntime", "torch") if m in got), None)
    for mode, backend in runs:
        rows.append(dict(model=name, mode=LABELS[mode], runtime=backend.runtime, photos=n,
                         per_s=[n / g[0] for g in got[mode]],
                         speedup=[r[0] / g[0] for r, g in zip(ref, got[mode], strict=True)],
                         overhead=[(g[0] - g[1]) / g[1] for g in got[mode]],
                         agreement=agreed(ref[0][2], got[mode][0][2]),
                         same_pixels=agreed(fp32, got[mode][0][2]) if mode in ("bf16", "int8") else "-"))
    return rows


def run_standin(key, mdv5, n, n_ref, folder, rounds, modes, notes) -> list[dict]:
    """MDv6 stand-in ``key`` through the engine, fp32 ONNX per runtime, against MDv5a's loop in the same rounds."""
    folder = folder / key
    paths, ref_paths = make_photos(folder / "photos", n + 1), make_photos(folder / "mdv5-photos", n_ref, 100)
    onnx_path = standins.export(standins.build(key), folder / f"{key}.onnx", key)
    sidecar = engine.Sidecar.read(onnx_path.with_suffix(".json"))
    have_ov = importlib.util.find_spec("openvino") is not None
    runs = [(m, backends.OnnxBackend(onnx_path) if m == "onnxruntime" else backends.OpenVinoBackend(onnx_path))
            for m in STANDIN_MODES if m in modes and (m != "openvino" or have_ov)]
    if skipped := [LABELS[m] for m in modes if m not in [r[0] for r in runs]]:
        notes.append(f"{key}: {', '.join(skipped)} not run (stand-ins run fp32 ONNX; OpenVINO when installed)")
    size, stride = sidecar.input_size, sidecar.stride
    reference(mdv5, ref_paths[:1], 1280, 64)
    for _, backend in runs:
        ours(backend, paths[:1], size, stride, sidecar)
    ref: list[tuple] = []
    got: dict[str, list[tuple]] = {mode: [] for mode, _ in runs}
    for _ in range(rounds):
        ref.append(reference(mdv5, ref_paths, 1280, 64))
        for mode, backend in runs:
            got[mode].append(ours(backend, paths[1:], size, stride, sidecar))
    ref_rate = [n_ref / r[0] for r in ref]
    rows = [dict(model=key, mode="reference: MDv5a's loop", runtime="torch eager fp32", photos=n_ref,
                 per_s=ref_rate, speedup=None, overhead=[(r[0] - r[1]) / r[1] for r in ref],
                 agreement="(another model: MDv5)", same_pixels="-")]
    first = got[runs[0][0]][0][2] if runs else None
    for mode, backend in runs:
        rate = [n / g[0] for g in got[mode]]
        rows.append(dict(model=key, mode=LABELS[mode], runtime=backend.runtime, photos=n, per_s=rate,
                         speedup=[a / b for a, b in zip(rate, ref_rate, strict=True)],
                         overhead=[(g[0] - g[1]) / g[1] for g in got[mode]],
                         agreement="(the first runtime)" if mode == runs[0][0] else agreed(first, got[mode][0][2]),
                         same_pixels="-"))
    return rows


def agreed(reference_boxes, boxes) -> str:
    a = quantize.agreement(reference_boxes, boxes, min_conf=0.05)
    return f"{a['matched']}/{a['boxes']} ({a['share']:.1%}) max diff {a['max_coordinate_difference']:.4f}"


def spread(values: list[float], fmt: str) -> str:
    return f"{format(statistics.median(values), fmt)} [{format(min(values), fmt)}-{format(max(values), fmt)}]"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=2, help="MDv5 photos timed per round")
    parser.add_argument("--small-photos", type=int, default=6, help="small-model photos timed per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", default="mdv5,small",
                        help=f"comma-separated: {', '.join([*MODELS, *standins.ARCHITECTURES])}")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated: {', '.join(MODES)}")
    parser.add_argument("--weights", type=Path, help="real MegaDetector v5 weights (.pt) instead of random ones")
    args = parser.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    keys = [k for k in args.models.split(",") if k]
    if bad := (set(modes) - set(MODES)) | (set(keys) - set(MODELS) - set(standins.ARCHITECTURES)):
        parser.error(f"unknown mode or model: {sorted(bad)}")
    started = time.perf_counter()
    rows: list[dict] = []
    notes: list[str] = []
    mdv5 = None  # MDv5a's reference model, shared by the stand-ins' rows
    with tempfile.TemporaryDirectory() as tmp:
        for key in keys:
            if key in standins.ARCHITECTURES:
                if mdv5 is None:
                    mdv5 = (weights.load_yolov5(args.weights).model if args.weights
                            else calibrated(yolo.MDV5, size=1280)).fuse().eval()
                rows += run_standin(key, mdv5, args.small_photos, args.photos, Path(tmp), args.rounds, modes, notes)
                continue
            _, cfg, size = MODELS[key]
            model = (weights.load_yolov5(args.weights).model if args.weights and key == "mdv5"
                     else calibrated(cfg, size=size))
            n = args.photos if key == "mdv5" else args.small_photos
            rows += run(key, model, n, Path(tmp), args.rounds, modes, notes)
    mdv5_loop = next((statistics.median(r["per_s"]) for r in rows if r["model"] == MODELS["mdv5"][0]), None)
    flags = sorted(backends.cpu_flags() & {"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16"})
    print(f"\nStage 1 on {backends.threads()} CPU cores ({', '.join(flags)}), torch {torch.__version__}; "
          f"2048x1536 JPEGs; {args.rounds} alternating rounds, median [min-max]\n")
    print(f"{'model':<17} {'mode':<31} {'runtime':<16} {'n':>3} {'photo/s':>21} {'speed-up':>19} "
          f"{'vs MDv5 loop':>12} {'overhead':>19}  {'boxes agreeing with the reference':<37} with engine fp32")
    for r in rows:
        speed = spread(r["speedup"], ".2f") if r["speedup"] else "-"
        if r["model"] in standins.ARCHITECTURES:  # against the MDv5a loop of its own rounds
            vs = f"{statistics.median(r['speedup']):.1f}x" if r["speedup"] else "-"
        else:
            vs = f"{statistics.median(r['per_s']) / mdv5_loop:.1f}x" if mdv5_loop and "MDv5" not in r["model"] else "-"
        overhead = spread([100 * o for o in r["overhead"]], ".0f")
        print(f"{r['model']:<17} {r['mode']:<31} {r['runtime']:<16} {r['photos']:>3} {spread(r['per_s'], '.3f'):>21} "
              f"{speed:>19} {vs:>12} {overhead:>17} %  {r['agreement']:<37} {r['same_pixels']}")
    for note in notes:
        print(f"note: {note}")
    took = time.perf_counter() - started
    print(f"\nweights: {args.weights or 'random (calibrated), see the docstring'}; the bench took {took:.0f} s")
    print("speed-up: the reference's time over the mode's in the same round (target: fp32 >= 1.5x with every box\n"
          "  matched); vs MDv5 loop: photos/s over the MDv5 reference's (fast preset target: >= 20x,\n"
          "  decode included); overhead: end-to-end time over pure model time (target <= 10%); agreement: boxes\n"
          "  (conf >= 0.05) matched at IoU >= 0.9, same class (target: all in fp32, >= 99% in bf16/int8 with real\n"
          "  weights); with engine fp32: the same against the engine's fp32 boxes, same decoded pixels (the engine\n"
          "  decodes a photo >= 2x the input size at 1/2 or 1/4 size in the JPEG decoder, the reference in full,\n"
          "  which a random network amplifies into other boxes). On a shared machine numbers are indicative:\n"
          "  compare rows of one run, not runs.")


if __name__ == "__main__":
    main()
