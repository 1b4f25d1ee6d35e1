#!/usr/bin/env python3
"""Odin's species classifier path against a SpeciesNet-equivalent reference loop, same crops, same weights.

    python bench/classify.py [--crops 8] [--batch 8] [--weights SPECIESNET_RELEASE]

(a) reference: what SpeciesNet's classifier does per detection (speciesnet 5.0.6, classifier.py): PIL decode
    of the photo, the box cropped from the float image (pixel edges truncated), resized to 480x480 bilinear
    without antialiasing (torchvision ``F.resize(..., antialias=False)``, i.e. ``interpolate``), converted to
    uint8 and back to [0, 1], NHWC, eager torch fp32, batch 1, softmax, top-5;
(b) Odin: Stage 1's classifier runtime (``wildlife.classify.runtime.Classifier``) on the converted
    ``speciesnet.onnx`` with its sidecar: each photo decoded once by OpenCV, each box cropped and stretched by
    ``Classifier.crop`` as the sidecar says (crop box, resize stretch, scale 255, NHWC), the crops batched
    (8 by default) through onnxruntime, softmax, top labels.

Both use the same EfficientNetV2-M weights (``wildlife.classify.effnetv2``, 2,498 outputs like SpeciesNet
v4.0.x). No real weights can be downloaded here, so by default they are random, calibrated so that each
layer's output varies with the crop (``calibrated``): without that a deep random network gives every crop
the same top label and agreement would be trivially perfect. ``--weights`` takes SpeciesNet's release
(archive or unpacked folder) and converts it as ``models fetch speciesnet`` does.

Crops come from the bundled sample photos (data/sample), several fixed boxes per photo. Both paths start from
the JPEG files and end at top-1 labels; "model s" is the model call alone. The default run (8 crops) takes one
to two and a half minutes on 2 CPU cores shared with other work (the reference needs 3 to 15 s a crop there,
depending on the load); ``--crops 32 --batch 16`` is the fuller run for a quiet machine. Numbers from a busy
machine are indicative. On identical inputs the ONNX and torch logits agree to about 1e-6 (printed). Where
two of 2,498 labels nearly tie, the preprocessings' rare 1/255 rounding steps could flip the top one: a
disagreement is traced to that or to the model path (printed when there is one). With real weights, confirm
with ``--weights``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from PIL import Image, ImageOps  # noqa: E402

from wildlife.classify import effnetv2, runtime, safeload, sidecar, speciesnet  # noqa: E402

NUM_LABELS = 2498  # SpeciesNet v4.0.x model card: "Number of labels: 2498"
# (x, y, width, height), normalised like MegaDetector's boxes: small and large, wide and tall
BOXES = [(0.10, 0.30, 0.25, 0.35), (0.45, 0.20, 0.40, 0.55), (0.05, 0.05, 0.90, 0.80), (0.60, 0.55, 0.15, 0.30)]


def calibrated(model: effnetv2.EfficientNetV2, crops: np.ndarray) -> effnetv2.EfficientNetV2:
    """Random weights rescaled in one forward pass (data-dependent init) so that every convolution's output
    has zero mean and unit variance per channel on real crops, as batch norm would make it in training, each
    residual branch damped to 0.2 of that (as trained residual networks are: otherwise 57 random blocks make
    the net chaotic, and the 1/255 rounding steps between two preprocessings would flip labels that a trained
    network keeps), and the logits centred per label and spread over a few units, so that different crops get
    different top labels. Squeeze-and-excitation convolutions (1x1 outputs) are left as drawn."""
    damped = {id(block.layers[-1].conv) for block in model.blocks if block.residual}

    def normalise(conv, _inputs, out):
        if out.shape[-1] == 1:
            return None
        gain = 0.2 if id(conv) in damped else 1.0
        mean, std = out.mean((0, 2, 3)), (out.std((0, 2, 3)) + 1e-5) / gain
        conv.weight.div_(std.reshape(-1, 1, 1, 1))
        conv.bias.sub_(mean).div_(std)
        return (out - mean.reshape(1, -1, 1, 1)) / std.reshape(1, -1, 1, 1)

    hooks = [m.register_forward_hook(normalise) for _, m in effnetv2.convolutions(model)]
    with torch.no_grad():
        model(torch.from_numpy(crops[:, ::2, ::2]))  # half size keeps it quick; the statistics carry over
        for h in hooks:
            h.remove()
        logits = model(torch.from_numpy(crops[:, ::2, ::2]))
        model.fc.bias.sub_(logits.mean(0))  # no label wins every crop through its bias alone
        spread = 3.0 / float((logits - logits.mean(0)).std())
        model.fc.weight.mul_(spread)
        model.fc.bias.mul_(spread)
    return model.eval()


def jobs(n: int) -> list[tuple[Path, tuple[float, float, float, float]]]:
    photos = sorted((ROOT / "data" / "sample" / "photos").rglob("*.JPG"))
    pairs = [(p, b) for b in BOXES for p in photos]  # every photo before a second box of any
    return [pairs[i % len(pairs)] for i in range(n)]


def reference(model, work) -> tuple[float, float, list[int]]:
    """SpeciesNet's loop: per photo a PIL decode, per box its torch preprocessing and a batch-1 forward pass."""
    top1, model_s, start = [], 0.0, time.perf_counter()
    loaded: dict[Path, torch.Tensor] = {}
    for path, (x, y, w, h) in work:
        if path not in loaded:  # SpeciesNet decodes each image once and preprocesses each of its boxes
            img = ImageOps.exif_transpose(Image.open(path).convert("RGB"))
            loaded[path] = torch.from_numpy(np.array(img)).permute(2, 0, 1).float() / 255.0
        img = loaded[path]
        height, width = img.shape[1:]
        crop = img[:, int(y * height):int(y * height) + int(h * height), int(x * width):int(x * width) + int(w * width)]
        crop = torch.nn.functional.interpolate(crop[None], size=(480, 480), mode="bilinear", align_corners=False,
                                               antialias=False)[0]
        crop = (crop * (255 + 1 - 1e-3)).to(torch.uint8)  # torchvision's convert_image_dtype to uint8
        batch = (crop.permute(1, 2, 0).numpy() / 255).astype(np.float32)[None]
        t = time.perf_counter()
        with torch.no_grad():
            scores = torch.softmax(model(torch.from_numpy(batch)), -1)
        model_s += time.perf_counter() - t
        best = torch.topk(scores, 5, -1)
        top1.append((int(best.indices[0, 0]), float(best.values[0, 0])))
    return time.perf_counter() - start, model_s, top1


def rough_crop(img: np.ndarray, box, size: int, scale: float) -> np.ndarray:
    """One box of a decoded RGB photo, stretched and scaled, float32 HWC: for calibrating the random weights
    and for the same-input check (the timed path crops with the runtime's own ``Classifier.crop``)."""
    x, y, w, h = box
    height, width = img.shape[:2]
    crop = img[int(y * height):int(y * height) + int(h * height), int(x * width):int(x * width) + int(w * width)]
    crop = cv2.resize(crop.astype(np.float32), (size, size), interpolation=cv2.INTER_LINEAR)
    return (np.floor(crop * ((255 + 1 - 1e-3) / 255)) / scale).astype(np.float32)


def odin_classify(classifier, work, batch: int) -> tuple[float, float, list[tuple[int, float]]]:
    """Odin's path through Stage 1's classifier runtime (``wildlife.classify.runtime.Classifier``): each photo
    decoded once, each box cropped and sized as the sidecar says, the crops batched, softmax and top labels."""
    index = {line: i for i, line in enumerate(classifier.sidecar.labels)}
    top1, model_s, start, pending = [], 0.0, time.perf_counter(), []
    decoded: dict[Path, np.ndarray] = {}

    def flush():
        nonlocal model_s
        t = time.perf_counter()
        tops = classifier.classify(pending)
        model_s += time.perf_counter() - t
        top1.extend((index[top[0][0]], top[0][1]) for top in tops)
        pending.clear()

    for path, box in work:
        if path not in decoded:
            decoded[path] = cv2.imread(str(path))  # BGR, as Stage 1's decoder gives the runtime
        pending.append(classifier.crop(decoded[path], box))
        if len(pending) == batch:
            flush()
    if pending:
        flush()
    return time.perf_counter() - start, model_s, top1


def odin_classifier(folder: Path, weights: str | None = None):
    """(torch model, its ONNX file, Stage 1's ``runtime.Classifier`` on it) in ``folder``: SpeciesNet's release
    converted as ``models fetch speciesnet`` does (``weights``), or random calibrated EfficientNetV2-M weights
    with placeholder labels. ``bench/species_e2e.py`` uses it too."""
    if weights:
        release = speciesnet.read_release(speciesnet.unpack(Path(weights), folder / "release"))
        model = safeload.load_classifier(release.classifier, len(release.labels))
        labels = release.labels
    else:
        torch.manual_seed(0)
        sample = np.stack([rough_crop(cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB), box, 480, 255.0)
                           for p, box in jobs(16 * 9)[::9]])  # 16 crops, every box kind
        model = calibrated(effnetv2.EfficientNetV2(NUM_LABELS).eval(), sample)
        labels = [f"{i:08d}-0000-0000-0000-000000000000;;;;;;label {i}" for i in range(NUM_LABELS)]
    onnx_path = speciesnet.export_onnx(model, folder / speciesnet.ONNX_FILE)
    (folder / speciesnet.LABELS_FILE).write_text("\n".join(labels) + "\n")
    (folder / speciesnet.GEOFENCE_FILE).write_text("{}")
    side_path = folder / speciesnet.SIDECAR_FILE
    side_path.write_text(json.dumps(speciesnet.sidecar("bench", None)))
    return model, onnx_path, runtime.Classifier(onnx_path, sidecar.read(side_path))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--crops", type=int, default=8)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--weights", help="SpeciesNet's release (the Kaggle archive or its unpacked folder)")
    args = ap.parse_args()

    import onnxruntime as ort  # noqa: PLC0415

    torch.set_num_threads(os.cpu_count() or 1)
    work = jobs(args.crops)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        model, onnx_path, classifier = odin_classifier(Path(tmp), args.weights)
        prepared = time.perf_counter() - t0
        first = np.stack([rough_crop(cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB), box, 480, 255.0)
                          for p, box in work[:2]])
        same_input = speciesnet.check_onnx(model, onnx_path, first)  # the conversion alone, on identical crops
        # warm-up both (first calls allocate), then time each once on the same crops
        reference(model, work[:1])
        odin_classify(classifier, work[:1], 1)
        ref_s, ref_model_s, ref_top1 = reference(model, work)
        odin_s, odin_model_s, odin_top1 = odin_classify(classifier, work, args.batch)
        # where the two disagree, the reference model on Odin's own crop tells the preprocessings' rounding
        # (then it agrees with Odin) from the model path (then it does not)
        differ = [i for i, (a, b) in enumerate(zip(ref_top1, odin_top1, strict=True)) if a[0] != b[0]]
        model_path = 0
        for i in differ:
            path, box = work[i]
            crop = classifier.crop(cv2.imread(str(path)), box).astype(np.float32)[None] / 255
            with torch.no_grad():
                model_path += int(model(torch.from_numpy(crop)).argmax()) != odin_top1[i][0]

    n = len(work)
    agree = sum(a[0] == b[0] for a, b in zip(ref_top1, odin_top1, strict=True))
    score_diff = max(abs(a[1] - b[1]) for a, b in zip(ref_top1, odin_top1, strict=True))
    print(f"\nSpecies classifier on {os.cpu_count()} CPU cores, torch {torch.__version__}, onnxruntime "
          f"{ort.__version__}; EfficientNetV2-M, {len(classifier.sidecar.labels)} labels, "
          f"480x480 crops from {len({p for p, _ in work})} sample photos\n")
    print(f"{'run':<52} {'crops':>5} {'s':>7} {'crop/s':>7} {'model s':>8} {'speed-up':>8}")
    print(f"{'reference: SpeciesNet loop, torch eager fp32, batch 1':<52} {n:>5} {ref_s:>7.1f} {n / ref_s:>7.2f} "
          f"{ref_model_s:>8.1f} {1.0:>7.2f}x")
    print(f"{f'Odin: Stage 1 runtime, ONNX Runtime fp32, batch {args.batch}':<52} {n:>5} {odin_s:>7.1f} "
          f"{n / odin_s:>7.2f} {odin_model_s:>8.1f} {ref_s / odin_s:>7.2f}x")
    print(f"\ntop-1 agreement: {agree}/{n} crops ({agree / n:.0%}), top-1 scores within {score_diff:.1e}; "
          f"{len({a[0] for a in ref_top1})} distinct top-1 labels among the reference's {n}")
    if differ:
        print(f"of the {len(differ)} disagreements, {len(differ) - model_path} go when the reference model is given "
              f"Odin's crop (the preprocessings' rounding), {model_path} remain (the model path)")
    print(f"same input through both models: largest logit difference {same_input:.1e} of the largest logit; "
          "score differences above that come from the 1/255 steps where OpenCV's and PIL+torch's preprocessing "
          "round differently, which a random network amplifies")
    print(f"weights: {args.weights or 'random, calibrated (see the docstring)'}; model built, converted and "
          f"loaded in {prepared:.0f} s (not timed above). Target: >= 1.5x with identical top-1.")


if __name__ == "__main__":
    main()
