"""SpeciesNet's official release, converted to ``speciesnet.onnx`` + sidecar without running anything from it.

What Google publishes (README "Species models" has the sources): a Kaggle model archive holding ``info.json``
(version, type, and the names of the files below), the classifier as a PyTorch file
(``always_crop_99710272_22x8_v12_epoch_00148.pt``), its label list (``...labels.txt``, one 7-field label a
line in output order), ``taxonomy_release.txt`` and ``geofence_release.json``.

The archive is unpacked with limits (regular files only, safe names, a size cap), ``info.json`` and the label
file are checked, the classifier is read as tensors into our EfficientNetV2-M (``safeload``: its pickled code
never runs), exported to ONNX, checked against the torch model, and cached with its sidecar, labels, geofence
and taxonomy. ``fetch`` downloads it first and holds it to a digest.
"""

from __future__ import annotations

import json
import shutil
import tarfile
import tempfile
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wildlife.classify import Label
from wildlife.classify.runtime import SPECIESNET
from wildlife.detect.catalog import cache_dir, digests, known_local, stream
from wildlife.errors import InputError

# The release Odin fetches: SpeciesNet's default model in speciesnet 5.0.6 (speciesnet/__init__.py,
# DEFAULT_MODEL = "kaggle:google/speciesnet/pyTorch/v4.0.3a/1"), at the direct download link the project's
# README gives. Kaggle publishes no checksum for it (neither the model page nor the README or model card list
# one), so ``fetch`` records the SHA-256 of the first download in known.json and holds later downloads to it;
# ``--sha256`` pins one explicitly.
RELEASE = {"key": "speciesnet-v4.0.3a", "version": "4.0.3a", "file": "speciesnet-v4.0.3a.tar.gz",
           "url": "https://www.kaggle.com/api/v1/models/google/speciesnet/pyTorch/v4.0.3a/1/download"}
INPUT_SIZE = 480  # speciesnet/classifier.py SpeciesNetClassifier.IMG_SIZE
# where Stage 1 looks for it (``runtime.speciesnet_path``): the ONNX model, its sidecar beside it, and the
# files the sidecar names
ONNX_FILE = f"{SPECIESNET}.onnx"
SIDECAR_FILE = f"{SPECIESNET}.json"
LABELS_FILE = f"{SPECIESNET}.labels.txt"
GEOFENCE_FILE = f"{SPECIESNET}.geofence.json"
TAXONOMY_FILE = f"{SPECIESNET}.taxonomy.txt"
# speciesnet/constants.py DEFAULT_DETECTION_THRESHOLD_FOR_CLASSIFICATION: boxes below it are not classified
MIN_DETECTION_CONF = 0.1
# What an archive may hold: the release is six files and about 250 MB; declared sizes are checked first.
MAX_MEMBERS = 64
MAX_UNPACKED_BYTES = 2 * 2**30
ONNX_TOLERANCE = 1e-3  # largest |ONNX - torch| logit difference accepted, relative to the largest logit


def sidecar(version: str, sha256: str | None, output: str = "logits") -> dict[str, Any]:
    """How to run ``speciesnet.onnx`` (the keys the classifier runtime reads), from SpeciesNet's classifier.py:
    crop the box, stretch it to 480x480 (no aspect kept, bilinear), RGB values / 255, NHWC float32; logits."""
    return {"kind": "classifier", "name": "speciesnet", "version": version, "input_size": INPUT_SIZE,
            "layout": "nhwc", "crop": "box", "resize": "stretch", "scale": 255.0, "mean": [0.0, 0.0, 0.0],
            "std": [1.0, 1.0, 1.0], "output": output, "labels": LABELS_FILE, "geofence": GEOFENCE_FILE,
            "taxonomy": TAXONOMY_FILE, "min_detection_conf": MIN_DETECTION_CONF, "source_sha256": sha256}


# ---------------------------------------------------------------- the release archive


def unpack(archive: Path, into: Path) -> Path:
    """The release's files from a .tar(.gz) or .zip archive (or a folder as it is), with nothing but regular
    files of safe relative names, and no more than the release can need: a bomb or a path trick is refused."""
    if archive.is_dir():
        return archive
    into.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
            _check_members(archive, [(i.filename, i.file_size) for i in infos])
            for i in infos:
                _copy(zf.open(i), into / i.filename, i.file_size)
        return into
    try:
        tf = tarfile.open(archive, "r:*")  # noqa: SIM115 (closed by the with below; open's error is ours)
    except tarfile.TarError as exc:
        raise InputError(f"{archive}: not a SpeciesNet release archive (.tar.gz or .zip): {exc}",
                         hint="Download the release again with `scripts/run.py models fetch speciesnet`.") from exc
    with tf:
        members = []
        for m in tf:
            if len(members) >= MAX_MEMBERS:
                break
            if m.isdir():
                continue
            if not m.isfile():
                raise InputError(f"{archive}: {m.name} is a link or a device, which a model release never holds",
                                 hint="This is not SpeciesNet's archive; do not use it.")
            members.append(m)
            _check_members(archive, [(x.name, x.size) for x in members])
        for m in members:
            _copy(tf.extractfile(m), into / m.name, m.size)
    return into


def _check_members(archive: Path, members: list[tuple[str, int]]) -> None:
    if len(members) > MAX_MEMBERS:
        raise InputError(f"{archive}: over {MAX_MEMBERS} files; SpeciesNet's release has six",
                         hint="This is not SpeciesNet's archive; do not use it.")
    total = sum(size for _, size in members)
    if total > MAX_UNPACKED_BYTES:
        raise InputError(f"{archive}: would unpack to {total / 2**30:.1f} GiB, over the "
                         f"{MAX_UNPACKED_BYTES / 2**30:.0f} GiB SpeciesNet's release can need (a zip bomb?)",
                         hint="This is not SpeciesNet's archive; do not use it.")
    for name, _ in members:
        parts = Path(name).parts
        if Path(name).is_absolute() or ".." in parts or not parts:
            raise InputError(f"{archive}: member {name!r} would be written outside the model folder",
                             hint="This is not SpeciesNet's archive; do not use it.")


def _copy(src, dest: Path, size: int) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with src, open(dest, "wb") as out:
        left = size
        while left > 0 and (block := src.read(min(1 << 20, left))):
            out.write(block)
            left -= len(block)


@dataclass
class Release:
    folder: Path
    version: str
    classifier: Path
    labels: list[str]
    geofence: Path
    taxonomy: Path


def read_release(folder: Path) -> Release:
    """``info.json`` and the files it names, checked: an always-crop model, labels in the 7-field format."""
    infos = sorted(folder.rglob("info.json"), key=lambda p: len(p.parts))
    if not infos:
        raise InputError(f"{folder}: no info.json, so not a SpeciesNet model release",
                         hint="Give the archive from Kaggle (models fetch speciesnet downloads it).")
    base = infos[0].parent
    try:
        info = json.loads(infos[0].read_text())
        files = {k: base / Path(info[k]).name for k in ("classifier", "classifier_labels", "geofence", "taxonomy")}
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{infos[0]}: not SpeciesNet's info.json ({exc})",
                         hint="It names the classifier, classifier_labels, taxonomy and geofence files.") from exc
    if info.get("type") != "always_crop":
        raise InputError(f"{infos[0]}: a {info.get('type')!r} model; Odin classifies each detection's box and "
                         "needs the always-crop classifier (the 'a' variant, e.g. v4.0.3a)",
                         hint="Fetch the default: `scripts/run.py models fetch speciesnet`.")
    missing = [str(p.name) for p in files.values() if not p.is_file()]
    if missing:
        raise InputError(f"{base}: info.json names {', '.join(missing)}, which the release does not hold",
                         hint="Download the release again; the archive is incomplete.")
    labels = [line.strip() for line in files["classifier_labels"].read_text(encoding="utf-8").splitlines()
              if line.strip()]
    for line in labels:
        try:
            Label.parse(line)
        except ValueError as exc:
            raise InputError(f"{files['classifier_labels']}: {exc}", hint="This is not SpeciesNet's label file.") \
                from exc
    try:
        json.loads(files["geofence"].read_text(encoding="utf-8"))
    except ValueError as exc:
        raise InputError(f"{files['geofence']}: not JSON ({exc})", hint="Download the release again.") from exc
    return Release(base, str(info.get("version", "unknown")), files["classifier"], labels, files["geofence"],
                   files["taxonomy"])


# ---------------------------------------------------------------- ONNX export and the cache


def export_onnx(model, out: Path, size: int = INPUT_SIZE) -> Path:
    """``model`` (an ``EfficientNetV2``) as ONNX: input ``images`` (batch, size, size, 3) float32 in [0, 1],
    output ``logits``."""
    import torch  # noqa: PLC0415  (this module is importable without torch: names, sidecar, cache)

    from wildlife.classify import effnetv2  # noqa: PLC0415

    if size % effnetv2.SIZE_MULTIPLE:
        raise ValueError(f"input size {size} is not a multiple of {effnetv2.SIZE_MULTIPLE}")
    out.parent.mkdir(parents=True, exist_ok=True)
    dummy = torch.rand(1, size, size, 3)
    with warnings.catch_warnings(), torch.no_grad():  # the TorchScript exporter is deprecated but exact here
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", "Constant folding", UserWarning)  # the pads' Slice; onnxruntime folds it
        torch.onnx.export(model.eval(), (dummy,), str(out), dynamo=False, opset_version=17, input_names=["images"],
                          output_names=["logits"], dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}})
    return out


def check_onnx(model, path: Path, crops=None, size: int = INPUT_SIZE, seed: int = 0) -> float:
    """Largest |ONNX - torch| logit difference on ``crops`` (NHWC float32 in [0, 1]; by default two smooth
    random images, photo-like rather than pixel noise), relative to the largest logit; raises over
    ``ONNX_TOLERANCE`` (a model that exported wrongly is never cached)."""
    import numpy as np  # noqa: PLC0415
    import onnxruntime as ort  # noqa: PLC0415
    import torch  # noqa: PLC0415

    if crops is None:
        coarse = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(seed))
        crops = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear").permute(0, 2, 3, 1)
    x = torch.as_tensor(np.ascontiguousarray(crops, dtype=np.float32))
    with torch.no_grad():
        want = model(x).numpy()
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"images": x.numpy()})[0]
    diff = float(np.abs(got - want).max() / max(float(np.abs(want).max()), 1e-6))
    if diff > ONNX_TOLERANCE:
        raise ValueError(f"{path}: ONNX logits differ from the torch model's by {diff:.2e} (relative), over "
                         f"{ONNX_TOLERANCE:.0e}; not cached")
    return diff


def convert(source: Path, folder: Path | None = None, sha256: str | None = None) -> Path:
    """A release archive (or unpacked folder) to ``speciesnet.onnx`` + sidecar + labels + geofence + taxonomy
    in ``folder`` (the model cache by default). Returns the ONNX path. Nothing is written unless all is well."""
    from wildlife.classify.safeload import load_classifier  # noqa: PLC0415

    folder = folder or cache_dir()
    with tempfile.TemporaryDirectory(prefix="speciesnet-") as tmp:
        release = read_release(unpack(Path(source), Path(tmp) / "release"))
        model = load_classifier(release.classifier, len(release.labels))
        staged = Path(tmp) / "out"
        onnx_path = export_onnx(model, staged / ONNX_FILE)
        check_onnx(model, onnx_path)
        (staged / LABELS_FILE).write_text("\n".join(release.labels) + "\n", encoding="utf-8")
        shutil.copyfile(release.geofence, staged / GEOFENCE_FILE)
        shutil.copyfile(release.taxonomy, staged / TAXONOMY_FILE)
        side = sidecar(release.version, sha256 or digests(release.classifier)[0])
        (staged / SIDECAR_FILE).write_text(json.dumps(side, indent=2))
        folder.mkdir(parents=True, exist_ok=True)
        for name in (LABELS_FILE, GEOFENCE_FILE, TAXONOMY_FILE, ONNX_FILE, SIDECAR_FILE):  # the sidecar last
            shutil.move(staged / name, folder / name)
    return folder / ONNX_FILE


def fetch(sha256: str | None = None, url: str | None = None, progress=None) -> Path:
    """Download SpeciesNet's release, hold it to its digest, convert it, cache it. Returns the ONNX path.

    The digest is ``sha256`` when given, else the one recorded at the first download (Kaggle publishes
    none); a download that does not match, or that does not convert, is deleted and nothing is recorded."""
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / RELEASE["file"]
    partial = target.with_name(target.name + ".part")
    stream(url or RELEASE["url"], partial, progress)
    sha = digests(partial)[0]
    recorded = sorted(s for s, key in known_local().items() if key == RELEASE["key"])
    expected, source = ((sha256.lower(), "the SHA-256 you gave") if sha256 else
                        (recorded[0], "the SHA-256 recorded at the first download (known.json)") if recorded else
                        (None, ""))
    if expected and sha != expected:
        partial.unlink()
        raise ValueError(f"SHA-256 mismatch for {RELEASE['file']}: expected {expected} ({source}), got {sha}; the "
                         "download was deleted. Check the address (--url) or the hash you gave (--sha256).")
    partial.replace(target)
    try:
        onnx_path = convert(target, folder, sha)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    known = known_local()
    known[sha] = RELEASE["key"]
    (folder / "known.json").write_text(json.dumps(known, indent=2))
    return onnx_path
