"""The detector interface of Stage 1.

A detector takes a batch of photos (media rows: ``uri``, ``photo_id``, ``width``, ``height``,
``sequence_id``) and returns, per photo and in the same order, a ``Result``: a list of detections, or a
failure reason. A detection is MegaDetector's: category animal/person/vehicle, confidence, and a box
normalised to the photo as [x, y, width, height] with the origin at the top left; and, where Stage 1's species
classifier looked at the box (``wildlife.classify.runtime``), its top labels.
"""

from __future__ import annotations

import importlib.util
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from wildlife.errors import InputError

CATEGORIES = ("animal", "person", "vehicle")  # MegaDetector's 1, 2, 3


@dataclass(frozen=True)
class Detection:
    category: str
    conf: float
    bbox: tuple[float, float, float, float]
    # the species classifier's top labels (``wildlife.classify``: label line, raw score), best first; None where
    # no classifier looked at the box
    classifications: tuple[tuple[str, float], ...] | None = None

    def __post_init__(self):
        if self.category not in CATEGORIES:
            raise ValueError(f"unknown category {self.category!r}")


@dataclass
class Result:
    detections: list[Detection] = field(default_factory=list)
    failure: str | None = None
    note: str | None = None  # something worth knowing that is not a failure
    # False: the detector did not judge the photo (the motion baseline's photo alone in its sequence): its empty
    # ``detections`` mean "not looked at", never "nothing there"
    assessed: bool = True


class Detector(Protocol):
    name: str
    version: str
    context: int  # neighbours of the same sequence a batch must bring on each side (the motion baseline's)
    # optional, False if absent: True where batches may run in forked worker processes (``stage1.detect``):
    # plain CPU work with nothing costly to copy (a model on a GPU or in its own threads is not)
    forks: bool

    def chunk_key(self, photo: dict[str, Any]) -> Any:
        """Photos with the same key must be in one batch."""

    def detect(self, batch: list[dict[str, Any]]) -> list[Result]: ...


def sequence_of(photo: dict[str, Any]) -> Any:
    """The sequence a photo belongs to: one of its own when it has none (no usable time)."""
    return photo.get("sequence_id") or photo["photo_id"]


class DetectorUnavailable(InputError):
    """The chosen detector cannot run here (exit 2, before any work); the message says how to make it so."""


class DetectorBug(RuntimeError):
    """Odin's own code failed on one photo: not the photo's fault, so the run stops, naming it."""


@contextmanager
def naming(photo: dict[str, Any]):
    """Turn an exception from Odin's own per-photo code into a ``DetectorBug`` that names the photo."""
    try:
        yield
    except Exception as exc:
        raise DetectorBug(f"{photo.get('uri')!r}: {type(exc).__name__}: {exc} (a bug in Odin, not a problem "
                          "with the photo: please report it with this file)") from exc


def load(spec: str) -> tuple[Detector, list[str]]:
    """A detector by name (``motion``, ``megadetector``, ``auto``, a key of ``catalog.KNOWN``) or weights path
    (``.pt`` YOLOv5/MegaDetector checkpoint, ``.onnx`` with its ``.json`` sidecar), and warnings.

    A model is opened and run once on a blank image before it is returned, so a file that cannot work
    raises ``DetectorUnavailable`` here, not a failure per photo later. ``auto`` falls back to the motion
    baseline, with a warning, when MegaDetector cannot run.
    """
    from wildlife.detect import catalog, motion  # noqa: PLC0415 - keep OpenCV and torch off the CLI's import path

    if spec == "motion":
        return motion.MotionDetector(), []
    if spec in ("megadetector", "auto") or spec in catalog.KNOWN or spec.startswith("md-"):
        try:
            return _megadetector("md-v5a" if spec in ("megadetector", "auto") else spec), []
        except DetectorUnavailable as exc:
            if spec == "auto":
                return motion.MotionDetector(), [f"MegaDetector unavailable: {exc} Fell back to the motion baseline."]
            raise
    if spec.endswith((".pt", ".onnx")):
        return _from_path(spec)
    raise DetectorUnavailable(f"unknown detector {spec!r}: choose motion, megadetector, auto, one of "
                              f"{', '.join(catalog.KNOWN)} or a model path (.pt or .onnx)")


def resolve(spec: str) -> str:
    """What ``load(spec)`` will run, in the price table's families: ``motion``, a catalogue model's ``family``,
    or ``megadetector`` (MDv5's, for a model path). ``auto`` is MegaDetector when its weights are cached, else
    motion, as ``load`` decides. Loads no model: for the estimate, before any work."""
    from wildlife.detect import catalog  # noqa: PLC0415

    if spec == "motion":
        return "motion"
    if spec == "auto":
        try:
            _megadetector_path("md-v5a")
        except DetectorUnavailable:
            return "motion"
    return catalog.KNOWN[spec]["family"] if spec in catalog.KNOWN else "megadetector"


def check(spec: str) -> None:
    """Raise ``DetectorUnavailable`` now, before any work, if ``load(spec)`` cannot give a working detector:
    the model file is opened, its size and format checked, and one tiny inference run. Files already checked
    in this process, unchanged since, are not loaded again (the CLI and GuardBudget both check)."""
    if spec == "motion":
        return
    stamp = (spec, *map(_file_stamp, _model_files(spec)))
    if stamp not in _CHECKED:
        load(spec)
        _CHECKED.add(stamp)


_CHECKED: set[tuple] = set()


def _model_files(spec: str) -> list[Path]:
    if spec.endswith((".pt", ".onnx")):
        return [Path(spec), Path(spec).with_suffix(".json")]
    from wildlife.detect import catalog  # noqa: PLC0415

    key = "md-v5a" if spec in ("megadetector", "auto") else spec
    folder = catalog.cache_dir()
    return [folder / catalog.KNOWN.get(key, {}).get("file", key), folder / f"{key}.onnx", folder / f"{key}.json"]


def _file_stamp(path: Path) -> tuple | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return str(path), st.st_mtime_ns, st.st_size


def _megadetector(key: str) -> Detector:
    return _from_path(str(_megadetector_path(key)))[0]


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _megadetector_path(key: str) -> Path:
    from wildlife.detect import catalog  # noqa: PLC0415

    if key not in catalog.KNOWN:
        raise DetectorUnavailable(f"unknown model {key!r}; known: {sorted(catalog.KNOWN)}")
    folder = catalog.cache_dir()
    pt, onnx = folder / catalog.KNOWN[key]["file"], folder / f"{key}.onnx"
    usable = ([pt] if _has("torch") else []) + ([onnx] if _has("onnxruntime") else [])
    if _has("openvino"):  # the ONNX export runs faster on OpenVINO than the .pt on torch (backends.py)
        usable.sort(key=lambda path: path != onnx)
    for candidate in usable:
        if candidate.exists():
            return candidate
    if pt.exists() or onnx.exists():
        raise DetectorUnavailable(_missing_runtime(pt if pt.exists() else onnx))
    raise DetectorUnavailable(
        f"MegaDetector weights ({key}) are not in {folder}. To get them: {catalog.fetch_hint(key)}; or point at "
        f"a weights file you have: --detector /path/to/{catalog.KNOWN[key]['file']} (or an exported .onnx with "
        "its .json sidecar). Offline, --detector motion runs the motion baseline."
    )


def _missing_runtime(path: Path) -> str:
    if path.suffix == ".pt":
        return (f"{path} is a PyTorch checkpoint, and PyTorch is not installed here. Install Odin with it "
                "(pip install '.[detector]'), or export the model to ONNX where PyTorch is "
                f"(`scripts/run.py models export {path.name} --output {path.stem}.onnx`) and use the .onnx "
                "with its .json. --detector motion runs the motion baseline.")
    return (f"{path} is an ONNX model, and onnxruntime is not installed here: pip install '.[onnx]'. "
            "--detector motion runs the motion baseline.")


def _from_path(path: str) -> tuple[Detector, list[str]]:
    p = Path(path)
    if not p.is_file():
        raise DetectorUnavailable(f"--detector {path}: no such file")
    if not _has("torch" if p.suffix == ".pt" else "onnxruntime"):
        raise DetectorUnavailable(_missing_runtime(p))
    detector, warnings = _open_pt(p) if p.suffix == ".pt" else _open_onnx(p)
    try:
        detector.probe()
    except Exception as exc:  # whatever the model does wrong, the user must hear it now
        raise DetectorUnavailable(
            f"{path} does not work as a YOLO detector: {type(exc).__name__}: {exc}",
            hint="Check the model and its .json sidecar (layout, stride, input_size), or export it again "
                 "with `scripts/run.py models export`.") from exc
    return detector, warnings


def _open_pt(p: Path):
    from wildlife.detect import engine, weights  # noqa: PLC0415

    try:
        loaded = weights.load_yolov5(p)
    except (ValueError, weights.RefusedPickle) as exc:  # our own checks: their message says what is wrong
        message = str(exc) if str(p) in str(exc) else f"{p}: {exc}"
        raise DetectorUnavailable(message, hint="Use the checkpoint as published (`scripts/run.py models fetch "
                                                "md-v5a` for MegaDetector) or point --detector at another "
                                                "file.") from exc
    except Exception as exc:  # zipfile, pickle and torch errors from a damaged file
        raise DetectorUnavailable(
            f"{p} is not a readable PyTorch checkpoint ({type(exc).__name__}: {str(exc)[:200]})",
            hint="Re-download it (`scripts/run.py models fetch md-v5a` for MegaDetector) or point --detector "
                 "at another file.") from exc
    stride = int(loaded.model.stride.max())
    side = engine.Sidecar(name=loaded.name, version=loaded.version, stride=stride,
                          input_size=1280 if stride >= 64 else 640,
                          classes={str(i + 1): n for i, n in enumerate(loaded.model.names)})
    return engine.Engine(engine.TorchBackend(loaded.model), side), []


def _open_onnx(p: Path):
    from wildlife.detect import backends, engine, quantize  # noqa: PLC0415

    sidecar_path = p.with_suffix(".json")
    warnings = []
    if sidecar_path.exists():
        try:
            side = engine.Sidecar.read(sidecar_path)
        except (ValueError, TypeError, OSError) as exc:
            raise DetectorUnavailable(f"--detector {p}: its sidecar {sidecar_path.name} is unusable: {exc}") from exc
        if note := quantize.warning(side, p.name):
            warnings.append(note)
    else:
        side = engine.Sidecar(name=p.name)
        warnings.append(f"{p.name}: no sidecar {sidecar_path.name}; assumed MegaDetector v5 settings "
                        "(1280 px, stride 64, v5 layout, classes animal/person/vehicle)")
    try:
        backend = backends.open_onnx(p, side.precision)
    except DetectorUnavailable:  # the runtime or the CPU cannot run this model: its message says why
        raise
    except ValueError as exc:  # a valid model of the wrong kind
        raise DetectorUnavailable(f"{p} does not work as a YOLO detector: {exc}",
                                  hint="Export it again with `scripts/run.py models export`.") from exc
    except Exception as exc:  # onnxruntime's InvalidProtobuf, Fail, InvalidGraph...
        raise DetectorUnavailable(
            f"{p} is not a valid ONNX model ({type(exc).__name__})",
            hint="Re-download it or export it again with `scripts/run.py models export`.") from exc
    return engine.Engine(backend, side), warnings
