"""A species classifier's sidecar: ``<model>.json`` beside ``<model>.onnx``, saying how to feed the model a
crop and what its outputs mean. Any ONNX classifier with one runs in Stage 1 (SpeciesNet as converted by
``models fetch speciesnet``, DeepFaune, a user's fine-tuned model)::

    {"kind": "classifier", "name": "speciesnet", "version": "4.0.3a",
     "input_size": 480, "layout": "nhwc",          # or "nchw"
     "crop": "box",                                # the detection box is cut from the photo
     "resize": "stretch",                          # or "letterbox" (long side to input_size, black padding)
     "scale": 255.0, "mean": [0, 0, 0], "std": [1, 1, 1],   # x = (rgb / scale - mean) / std, RGB order
     "output": "logits",                           # or "probabilities"; logits get a softmax
     "labels": "labels.txt",                       # or a list: one wildlife.classify.Label line per output
     "geofence": "geofence.json",                  # or null: handed to Stage 2 in classifier.json
     "min_detection_conf": 0.1}                    # animal boxes at or above it are classified

File names are relative to the sidecar's folder. A key left out takes SpeciesNet v4 "always crop"'s value:
google/cameratrapai, speciesnet/classifier.py (``SpeciesNetClassifier.preprocess`` and ``batch_predict``)
crops each box from the full-size RGB image (``int(ymin * height)`` etc.), resizes it to 480x480 without
keeping its aspect ratio (bilinear, no antialiasing), feeds values 0..1 in HWC order (``arr / 255``), and
applies a softmax to the model's logits. ``min_detection_conf`` 0.1 is Odin's default, not SpeciesNet's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from wildlife.classify import Label

KIND = "classifier"
LAYOUTS = ("nhwc", "nchw")
RESIZES = ("stretch", "letterbox")
OUTPUTS = ("logits", "probabilities")
CROPS = ("box",)


@dataclass(frozen=True)
class Sidecar:
    name: str
    labels: tuple[str, ...]  # the label lines (``Label.text``), one per output index
    version: str = "unknown"
    input_size: int = 480
    layout: str = "nhwc"
    crop: str = "box"
    resize: str = "stretch"
    scale: float = 255.0
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    output: str = "logits"
    geofence: Any = None  # the geofence file's JSON, as read; None when the model has none
    min_detection_conf: float = 0.1


def read(path: str | Path) -> Sidecar:
    """The sidecar at ``path``, its labels and geofence files read; ``ValueError`` saying what is wrong."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("kind") != KIND:
        raise ValueError(f'{path} is not a classifier sidecar: it needs "kind": "{KIND}"')
    known = {f.name for f in fields(Sidecar)}
    values = {k: v for k, v in data.items() if k in known}
    if "labels" not in values:
        raise ValueError(f'{path} names no "labels" (a file of label lines, or a list of them)')
    values.setdefault("name", path.stem)
    values["labels"] = _labels(values["labels"], path)
    values["geofence"] = _geofence(values.get("geofence"), path)
    try:
        for key in ("mean", "std"):
            if key in values:
                values[key] = tuple(float(v) for v in values[key])
        for key in ("scale", "min_detection_conf"):
            if key in values:
                values[key] = float(values[key])
        if "input_size" in values:
            values["input_size"] = int(values["input_size"])
        side = Sidecar(**values)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from exc
    _validate(side, path)
    return side


def _validate(side: Sidecar, path: Path) -> None:
    for key, allowed in (("layout", LAYOUTS), ("resize", RESIZES), ("output", OUTPUTS), ("crop", CROPS)):
        if getattr(side, key) not in allowed:
            raise ValueError(f"{path}: {key} must be one of {', '.join(allowed)}, not {getattr(side, key)!r}")
    if not 8 <= side.input_size <= 4096:
        raise ValueError(f"{path}: input_size {side.input_size} is not a crop size in pixels (8..4096)")
    if len(side.mean) != 3 or len(side.std) != 3 or not all(side.std) or not side.scale:
        raise ValueError(f"{path}: mean and std need 3 values (R, G, B), std and scale none zero")
    if not 0 <= side.min_detection_conf <= 1:
        raise ValueError(f"{path}: min_detection_conf {side.min_detection_conf} is outside 0..1")


def _labels(value: Any, path: Path) -> tuple[str, ...]:
    if isinstance(value, str):
        source = path.parent / value
        try:
            lines = source.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ValueError(f"{path}: its labels file {source} cannot be read: {exc.strerror or exc}") from exc
        while lines and not lines[-1].strip():
            lines.pop()
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        source, lines = path, value
    else:
        raise ValueError(f'{path}: "labels" must be a file name or a list of label lines')
    if not lines:
        raise ValueError(f"{path}: the classifier has no labels ({source} is empty)")
    parsed = []
    for number, line in enumerate(lines, 1):
        try:
            parsed.append(Label.parse(line).text)
        except ValueError as exc:
            raise ValueError(f"{source}, label {number}: {exc}") from exc
    return tuple(parsed)


def _geofence(value: Any, path: Path) -> Any:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f'{path}: "geofence" must be a file name or null')
    source = path.parent / value
    try:
        return json.loads(source.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"{path}: its geofence file {source} cannot be read: {exc.strerror or exc}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: its geofence file {source} is not JSON: {exc}") from exc


def files(path: str | Path) -> list[Path]:
    """The files a classifier at ``path`` (its .onnx) is made of, as far as they can be named: for a check's
    "unchanged since" stamp."""
    model = Path(path)
    found = [model, model.with_suffix(".json")]
    try:
        data = json.loads(found[1].read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return found
    if isinstance(data, dict):
        found += [model.parent / data[k] for k in ("labels", "geofence") if isinstance(data.get(k), str)]
    return found
