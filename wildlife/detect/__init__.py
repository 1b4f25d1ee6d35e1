"""The detector interface of Stage 1.

A detector takes a batch of photos (media rows: ``uri``, ``photo_id``, ``width``, ``height``,
``sequence_id``) and returns, per photo and in the same order, a ``Result``: a list of detections, or a
failure reason. A detection is MegaDetector's: category animal/person/vehicle, confidence, and a box
normalised to the photo as [x, y, width, height] with the origin at the top left.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

CATEGORIES = ("animal", "person", "vehicle")  # MegaDetector's 1, 2, 3


@dataclass(frozen=True)
class Detection:
    category: str
    conf: float
    bbox: tuple[float, float, float, float]

    def __post_init__(self):
        if self.category not in CATEGORIES:
            raise ValueError(f"unknown category {self.category!r}")


@dataclass
class Result:
    detections: list[Detection] = field(default_factory=list)
    failure: str | None = None
    note: str | None = None  # something worth knowing that is not a failure


class Detector(Protocol):
    name: str
    version: str
    needs_whole_sequences: bool  # True when the batch must hold whole sequences (the motion baseline)

    def detect(self, batch: list[dict[str, Any]]) -> list[Result]: ...


class DetectorUnavailable(Exception):
    """The chosen detector cannot run here; the message says how to make it available."""


def load(spec: str) -> tuple[Detector, list[str]]:
    """A detector by name (``motion``, ``megadetector``, ``md-v5a``, ``md-v5b``, ``auto``) or weights path
    (``.pt`` YOLOv5/MegaDetector checkpoint, ``.onnx`` with its ``.json`` sidecar), and warnings."""
    from wildlife.detect import motion  # noqa: PLC0415 - keep OpenCV and torch off the CLI's import path

    if spec == "motion":
        return motion.MotionDetector(), []
    if spec in ("megadetector", "auto") or spec.startswith("md-"):
        try:
            return _megadetector("md-v5a" if spec in ("megadetector", "auto") else spec), []
        except DetectorUnavailable as exc:
            if spec == "auto":
                return motion.MotionDetector(), [f"MegaDetector unavailable: {exc} Fell back to the motion baseline."]
            raise
    if spec.endswith((".pt", ".onnx")):
        return _from_path(spec)
    raise DetectorUnavailable(f"unknown detector {spec!r}: choose motion, megadetector, md-v5a, md-v5b, auto "
                              "or a model path (.pt or .onnx)")


def resolve(spec: str) -> str:
    """What ``load(spec)`` will run, in the price table's families: ``motion`` or ``megadetector`` (any YOLO
    model: MegaDetector or a model path). ``auto`` is MegaDetector when its weights are cached, else motion,
    as ``load`` decides. Loads no model: for the estimate, before any work."""
    if spec == "motion":
        return "motion"
    if spec == "auto":
        try:
            _megadetector_path("md-v5a")
        except DetectorUnavailable:
            return "motion"
    return "megadetector"


def check(spec: str) -> None:
    """Raise DetectorUnavailable now, before any work, if ``load(spec)`` cannot succeed; loads nothing."""
    from pathlib import Path  # noqa: PLC0415

    if spec in ("motion", "auto"):
        return
    if spec == "megadetector" or spec.startswith("md-"):
        _megadetector_path("md-v5a" if spec == "megadetector" else spec)
    elif spec.endswith((".pt", ".onnx")):
        if not Path(spec).is_file():
            raise DetectorUnavailable(f"--detector {spec}: no such file")
    else:
        load(spec)  # raises the unknown-detector message


def _megadetector(key: str) -> Detector:
    return _from_path(str(_megadetector_path(key)))[0]


def _megadetector_path(key: str):
    from wildlife.detect import weights  # noqa: PLC0415

    if key not in weights.KNOWN:
        raise DetectorUnavailable(f"unknown MegaDetector {key!r}; known: {sorted(weights.KNOWN)}")
    folder = weights.cache_dir()
    for candidate in (folder / weights.KNOWN[key]["file"], folder / f"{key}.onnx"):
        if candidate.exists():
            return candidate
    raise DetectorUnavailable(
        f"MegaDetector weights ({key}) are not in {folder}. On a machine with internet run "
        f"`scripts/run.py models fetch {key}`, or point at a weights file you have: "
        f"--detector /path/to/{weights.KNOWN[key]['file']} (or an exported .onnx with its .json sidecar). "
        "Offline, --detector motion runs the motion baseline."
    )


def _from_path(path: str) -> tuple[Detector, list[str]]:
    from pathlib import Path  # noqa: PLC0415

    from wildlife.detect import engine, weights  # noqa: PLC0415

    p = Path(path)
    if not p.is_file():
        raise DetectorUnavailable(f"--detector {path}: no such file")
    try:
        if p.suffix == ".pt":
            loaded = weights.load_yolov5(p)
            stride = int(loaded.model.stride.max())
            side = engine.Sidecar(name=loaded.name, version=loaded.version, stride=stride,
                                  input_size=1280 if stride >= 64 else 640,
                                  classes={str(i + 1): n for i, n in enumerate(loaded.model.names)})
            return engine.Engine(engine.TorchBackend(loaded.model), side), []
        from wildlife.detect import quantize  # noqa: PLC0415

        sidecar_path = p.with_suffix(".json")
        warnings = []
        if sidecar_path.exists():
            side = engine.Sidecar.read(sidecar_path)
            if note := quantize.warning(side, p.name):
                warnings.append(note)
        else:
            side = engine.Sidecar(name=p.name)
            warnings.append(f"{p.name}: no sidecar {sidecar_path.name}; assumed MegaDetector v5 settings "
                            "(1280 px, stride 64, v5 layout, classes animal/person/vehicle)")
        return engine.Engine(engine.OnnxBackend(p), side), warnings
    except (ValueError, OSError, weights.RefusedPickle) as exc:
        raise DetectorUnavailable(f"--detector {path}: {exc}") from exc
