"""Which detection models Odin knows, where they are cached and how a file is recognised.

Free of PyTorch, so an install with onnxruntime only (``pip install .[onnx]``) can still find, name and
check cached models.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

# Known models. Sources (read 2026-11-24):
#   [MD]   agentmorris/MegaDetector, megadetector/detection/run_detector.py ``known_models``: URL and MD5 of each
#          release file (the publisher gives no SHA-256); ``normalized_typical_inference_speed`` (MDv5a = 1)
#   [MDv1000] agentmorris/MegaDetector docs/release-notes/mdv1000-release.md, its model table: architecture,
#          input size, "normalized animal AP.5:.95" (MDv5a = 1.000 by definition), licence of the inference code
#   [PW]   microsoft/CameraTraps (PytorchWildlife) docs/model_zoo/megadetector.md: MDv6 licence, parameters,
#          animal mAR (MDv5a 81.7) and mAP50; checkpoints on Zenodo record 15398270, as .pth/.ckpt only
# MDv6 is published as PyTorch checkpoints, not ONNX, and with no hash Odin could pin: ``models fetch`` takes an
# ONNX export of it with --url and --sha256 (the hash of the file you exported or trust), and writes the sidecar
# below. ``accuracy``: relative to MDv5a, with the metric and its source; the metrics differ between [MDv1000]
# and [PW], so compare within a source. ``family``: the speed class the price table rates (``budget``).
# ``layout`` and ``architecture`` of MDv6 as PytorchWildlife runs it: MDV6-mit-yolov9-c is built from MIT YOLO's
# ``config_v9s.yaml`` (``yolo_mit_base.py``; its 9.7 M parameters are v9-s's with the training-only auxiliary
# branch), decoded per anchor with NMS outside the network (``PostProcess``): ``v8``, not ``e2e``; RT-DETRv2 R18vd
# / R101vd from ``rtdetrv2_r18vd_120e_megadetector.yml`` / ``rtdetrv2_r101vd_6x_megadetector.yml``: ``rtdetr``.
# ``models fetch`` checks a download against ``md5`` (or against ``--sha256`` when given) and records the file's
# SHA-256 in the cache's known.json; a file with a listed hash is recognised by it in the outputs.
_RELEASE = "https://github.com/agentmorris/MegaDetector/releases/download/v5.0/"
_RELEASE_1000 = "https://github.com/agentmorris/MegaDetector/releases/download/v1000.0/"
_ZENODO = "https://zenodo.org/records/15398270/files/"
_AP = "normalized animal AP.5:.95 [MDv1000]"
_MAR = "animal mAR / MDv5a's 81.7 [PW]"
KNOWN = {
    "md-v5a": {"file": "md_v5a.0.0.pt", "version": "v5a.0.0", "md5": "ec1d7603ec8cf642d6e0cd008ba2be8c",
               "url": _RELEASE + "md_v5a.0.0.pt", "format": "yolov5", "architecture": "YOLOv5x6",
               "input_size": 1280, "licence": "GPL-3.0 [MDv1000]; AGPL-3.0 [PW]",
               "accuracy": (1.0, "reference [MDv1000]"), "family": "megadetector"},
    "md-v5b": {"file": "md_v5b.0.0.pt", "version": "v5b.0.0", "md5": "bc235e73f53c5c95e66ea0d1b2cbf542",
               "url": _RELEASE + "md_v5b.0.0.pt", "format": "yolov5", "architecture": "YOLOv5x6",
               "input_size": 1280, "licence": "GPL-3.0 [MDv1000]; AGPL-3.0 [PW]",
               "accuracy": (0.986, _AP), "family": "megadetector"},
    "mdv1000-redwood": {"file": "md_v1000.0.0-redwood.pt", "version": "v1000.0.0-redwood",
                        "md5": "74474b3aec9cf1a990da38b37ddf9197", "url": _RELEASE_1000 + "md_v1000.0.0-redwood.pt",
                        "format": "yolov5", "architecture": "YOLOv5x6", "input_size": 1280,
                        "licence": "GPL-3.0 [MDv1000]", "accuracy": (1.009, _AP),
                        "family": "megadetector", "thresholds": {"typical": 0.3}},  # [MD] known_models
    "mdv1000-spruce": {"file": "md_v1000.0.0-spruce.pt", "version": "v1000.0.0-spruce",
                       "md5": "1c9d1d2b3ba54931881471fdd508e6f2", "url": _RELEASE_1000 + "md_v1000.0.0-spruce.pt",
                       "format": "yolov5", "architecture": "YOLOv5s", "input_size": 640,
                       "licence": "GPL-3.0 [MDv1000]", "accuracy": (0.864, _AP),
                       "family": "yolov5s-640", "thresholds": {"typical": 0.3}},  # [MDv1000]: 0.3 for the new models
    "mdv6-apa-rtdetr-c": {"file": "mdv6-apa-rtdetr-c.onnx", "version": "MDV6-apa-rtdetr-c", "md5": None,
                          "url": None, "source": _ZENODO + "MDV6-apa-rtdetr-c.pth", "format": "onnx",
                          "layout": "rtdetr", "architecture": "RT-DETRv2 (ResNet-18)", "input_size": 640,
                          "licence": "Apache-2.0 [PW]", "accuracy": (round(81.1 / 81.7, 3), _MAR),
                          "family": "rtdetr-r18-640"},
    "mdv6-apa-rtdetr-e": {"file": "mdv6-apa-rtdetr-e.onnx", "version": "MDV6-apa-rtdetr-e", "md5": None,
                          "url": None, "source": _ZENODO + "MDV6-apa-rtdetr-e.pth", "format": "onnx",
                          "layout": "rtdetr", "architecture": "RT-DETRv2 (ResNet-101)", "input_size": 640,
                          "licence": "Apache-2.0 [PW]", "accuracy": (round(82.9 / 81.7, 3), _MAR),
                          "family": "rtdetr-r101-640"},
    "mdv6-mit-yolov9-c": {"file": "mdv6-mit-yolov9-c.onnx", "version": "MDV6-mit-yolov9-c", "md5": None,
                          "url": None, "source": _ZENODO + "MDV6-mit-yolov9-c.ckpt", "format": "onnx",
                          "layout": "v8", "architecture": "YOLOv9-s (MIT implementation)", "input_size": 640,
                          "licence": "MIT [PW]", "accuracy": (round(74.8 / 81.7, 3), _MAR), "family": "yolov9s-640"},
}


def fetch_hint(key: str) -> str:
    """How to get a known model into the cache."""
    info = KNOWN[key]
    if info["url"]:
        return f"`scripts/run.py models fetch {key}` on a machine with internet"
    return (f"export {info['source']} to ONNX ({info['layout']} layout, see README 'Detection models') and "
            f"`scripts/run.py models fetch {key} --url file:///path/to/export.onnx --sha256 HASH`")


# The detector the stock AWS images bake in (images/detector*/Dockerfile ``ARG MODEL``; a test holds them
# together): a preset naming another model runs on AWS only from an image built with ``MODEL=<its key>``.
STOCK_IMAGE_MODEL = "md-v5a"


def cache_dir() -> Path:
    if os.environ.get("ODIN_MODELS"):
        return Path(os.environ["ODIN_MODELS"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "odin" / "models"


def known_local() -> dict[str, str]:
    """SHA-256 -> model key of the files ``models fetch`` checked at download time."""
    path = cache_dir() / "known.json"
    return json.loads(path.read_text()) if path.exists() else {}


def digests(path: str | Path) -> tuple[str, str]:
    """(SHA-256, MD5) of a file, read once."""
    sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
            md5.update(block)
    return sha.hexdigest(), md5.hexdigest()


def identify(sha: str, md5: str, path: str | Path) -> tuple[str, str]:
    confirmed = known_local()
    for key, info in KNOWN.items():
        if (info["md5"] and info["md5"] == md5) or confirmed.get(sha) == key:
            return f"megadetector-{key}", info["version"]
    return f"yolov5:{Path(path).name}", f"sha256:{sha[:12]}"


def stream(url: str, target: Path, progress=None) -> None:
    """``url`` (https://, or file:// for a copy on disk) to ``target``, in 1 MiB blocks; an interrupted
    download leaves nothing behind."""
    import urllib.request  # noqa: PLC0415

    request = urllib.request.Request(url, headers={"User-Agent": "odin-wildlife"})
    try:
        with urllib.request.urlopen(request, timeout=60) as resp, open(target, "wb") as f:
            total = int(resp.headers.get("Content-Length") or 0)
            while block := resp.read(1 << 20):
                f.write(block)
                if progress:
                    progress(len(block), total)
    except BaseException:
        Path(target).unlink(missing_ok=True)
        raise


def download(key: str, sha256: str | None = None, url: str | None = None, progress=None) -> Path:
    """Download a known model into the cache, checked against its pinned MD5 or ``sha256`` (required where the
    catalogue pins none); a file that does not match is deleted. Records its SHA-256 in known.json, and writes
    an ONNX model's sidecar (a YOLOv5 checkpoint gets its ONNX and sidecar from ``weights.fetch``)."""
    info = KNOWN[key]
    if not (url or info["url"]) or not (sha256 or info["md5"]):
        raise ValueError(f"{key} is published as a PyTorch checkpoint only, with no hash Odin can pin. To use it: "
                         f"{fetch_hint(key)}")
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / info["file"]
    partial = target.with_suffix(".part")
    stream(url or info["url"], partial, progress)
    sha, md5 = digests(partial)
    kind, expected, got = ("SHA-256", sha256.lower(), sha) if sha256 else ("MD5", info["md5"], md5)
    if got != expected:
        partial.unlink()
        raise ValueError(f"{kind} mismatch for {info['file']}: expected {expected}, got {got}; the download was "
                         "deleted. Check the address (--url) or the hash you gave (--sha256).")
    partial.replace(target)
    known = known_local()
    known[sha] = key
    (folder / "known.json").write_text(json.dumps(known, indent=2))
    if info["format"] == "onnx":
        write_sidecar(key, target)
    return target


def write_sidecar(key: str, path: Path) -> Path:
    """The ``engine.Sidecar`` JSON of a catalogue ONNX model, beside it: its layout, size, name and licence."""
    info = KNOWN[key]
    sha, _ = digests(path)
    side = {"name": f"megadetector-{key}", "version": info["version"], "input_size": info["input_size"],
            "stride": 32, "layout": info["layout"], "source_sha256": sha, "licence": info["licence"]}
    if "thresholds" in info:
        side["thresholds"] = info["thresholds"]
    out = path.with_suffix(".json")
    out.write_text(json.dumps(side, indent=2))
    return out
