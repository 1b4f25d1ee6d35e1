"""Which MegaDetector weights Odin knows, where they are cached and how a file is recognised.

Free of PyTorch, so an install with onnxruntime only (``pip install .[onnx]``) can still find, name and
check cached models.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

# Known weight files, pinned by the checksum their publisher gives: MegaDetector's own model table
# (megadetector/detection/run_detector.py, ``known_models``) lists an MD5 per release file and no SHA-256.
# ``models fetch`` checks a download against it (or against ``--sha256`` when given) and records the file's
# SHA-256 in the cache's known.json; a file with a listed hash is recognised by it in the outputs.
_RELEASE = "https://github.com/agentmorris/MegaDetector/releases/download/v5.0/"
KNOWN = {
    "md-v5a": {"file": "md_v5a.0.0.pt", "version": "v5a.0.0", "md5": "ec1d7603ec8cf642d6e0cd008ba2be8c",
               "url": _RELEASE + "md_v5a.0.0.pt"},
    "md-v5b": {"file": "md_v5b.0.0.pt", "version": "v5b.0.0", "md5": "bc235e73f53c5c95e66ea0d1b2cbf542",
               "url": _RELEASE + "md_v5b.0.0.pt"},
}


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
        if info["md5"] == md5 or confirmed.get(sha) == key:
            return f"megadetector-{key}", info["version"]
    return f"yolov5:{Path(path).name}", f"sha256:{sha[:12]}"
