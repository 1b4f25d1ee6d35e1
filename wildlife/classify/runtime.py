"""Stage 1's species classifier: chosen by ``--classifier``, checked before any work, run on the crops of the
animal boxes in the same pass as detection.

``--classifier`` is ``none``; ``speciesnet`` (``speciesnet.onnx`` with ``speciesnet.json`` in the model cache,
``wildlife.detect.catalog.cache_dir()``, put there by ``models fetch speciesnet``); ``auto`` (SpeciesNet when
it is cached, else no classifier and a warning); or ``PATH.onnx`` with its sidecar ``PATH.json``
(``wildlife.classify.sidecar``). The detection engine (``wildlife.detect.engine.Engine``) keeps each decoded
photo until its boxes are known, cuts the animal boxes (``crops``) and classifies them in batches across
photos (``classify_queue``); a detection it classified carries ``classifications``: the top ``TOP_K`` label
lines and their raw scores, best first.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from wildlife.classify import TOP_K, sidecar
from wildlife.detect import DetectorUnavailable, Result

SPECIESNET = "speciesnet"  # its files in the model cache: speciesnet.onnx and speciesnet.json
NO_MODEL = "no species model ran: "  # how the run's warning starts when Stage 1 classified nothing


class ClassifierUnavailable(DetectorUnavailable):
    """The chosen classifier cannot run here (exit 2, before any work); the message says how to make it so."""


def speciesnet_path() -> Path:
    from wildlife.detect import catalog  # noqa: PLC0415

    return catalog.cache_dir() / f"{SPECIESNET}.onnx"


class Classifier:
    """An ONNX classifier and its sidecar: crops in, the top labels out."""

    def __init__(self, path: Path, side: sidecar.Sidecar):
        from wildlife.detect.engine import onnx_session  # noqa: PLC0415 - onnxruntime only when a model runs

        self.path, self.sidecar = path, side
        self.name, self.version = side.name, side.version
        self.session, self.device = onnx_session(path)
        inputs = self.session.get_inputs()
        shape = inputs[0].shape if len(inputs) == 1 else []
        want = (["batch", 3, side.input_size, side.input_size] if side.layout == "nchw"
                else ["batch", side.input_size, side.input_size, 3])
        if len(shape) != 4 or any(isinstance(d, int) and isinstance(w, int) and d != w
                                  for d, w in zip(shape[1:], want[1:], strict=True)):
            raise ValueError(f"the model takes {[(i.name, i.shape) for i in inputs]}; its sidecar (layout "
                             f"{side.layout}, input_size {side.input_size}) says one input of {want}")
        self.input = inputs[0].name
        # a model exported for one batch size gets batches of that size (the last one padded)
        self.fixed_batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
        self.batch_size = self.fixed_batch or (32 if self.device == "cuda" else 8)

    def probe(self) -> None:
        """One inference on a blank crop; raises unless it gives one score per label."""
        size = self.sidecar.input_size
        self.classify([np.zeros((size, size, 3), np.uint8)])

    def crop(self, image: np.ndarray, bbox: tuple[float, float, float, float]) -> np.ndarray:
        """The box cut from a decoded (BGR) photo and sized for the model: RGB, input_size square, uint8.

        As SpeciesNet (google/cameratrapai, speciesnet/classifier.py ``preprocess``): pixel edges truncated
        (``int(x * width)``, the size ``int(w * width)``), values 0..1, resized in float without keeping the
        aspect ratio (``stretch``; bilinear, half-pixel centres, no antialiasing: torchvision's ``F.resize`` with
        ``antialias=False``), back to uint8 by truncation as torchvision's ``convert_image_dtype`` does
        (``x * 255.999``). At least one pixel is kept of a sliver of a box. Measured against those torch
        operations on a sample photo: all but about 1 value in 10,000 equal, none off by more than 1.
        """
        import cv2  # noqa: PLC0415 - OpenCV off the import path of the stages that never crop (the Lambdas)

        h, w = image.shape[:2]
        x, y, bw, bh = bbox
        x0, y0 = min(max(int(x * w), 0), w - 1), min(max(int(y * h), 0), h - 1)
        x1, y1 = min(x0 + max(int(bw * w), 1), w), min(y0 + max(int(bh * h), 1), h)
        part = image[y0:y1, x0:x1].astype(np.float32) / np.float32(255)
        size = self.sidecar.input_size
        if self.sidecar.resize == "stretch":
            out = cv2.resize(part, (size, size), interpolation=cv2.INTER_LINEAR)
        else:  # letterbox: the long side to input_size, centred on black
            r = size / max(part.shape[:2])
            nh, nw = max(1, round(part.shape[0] * r)), max(1, round(part.shape[1] * r))
            out = np.zeros((size, size, 3), np.float32)
            top, left = (size - nh) // 2, (size - nw) // 2
            out[top:top + nh, left:left + nw] = cv2.resize(part, (nw, nh), interpolation=cv2.INTER_LINEAR)
        out = (out.reshape(size, size, 3) * np.float32(255.999)).astype(np.uint8)
        return np.ascontiguousarray(out[..., ::-1])

    def tensor(self, crops: list[np.ndarray]) -> np.ndarray:
        """Crops (``crop``'s) as the model's input: (rgb / scale - mean) / std, in its layout."""
        side = self.sidecar
        x = np.stack(crops).astype(np.float32) / np.float32(side.scale)
        x = (x - np.array(side.mean, np.float32)) / np.array(side.std, np.float32)
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2) if side.layout == "nchw" else x)

    def classify(self, crops: list[np.ndarray]) -> list[tuple[tuple[str, float], ...]]:
        """Each crop's top ``TOP_K`` (label line, score), best first; raises if the model misbehaves."""
        pad = (self.fixed_batch or len(crops)) - len(crops)
        out = self.session.run(None, {self.input: self.tensor(crops + [crops[0]] * pad)})[0]
        out = out[:len(crops)] if pad > 0 and getattr(out, "ndim", 0) == 2 else out
        labels = self.sidecar.labels
        if getattr(out, "ndim", 0) != 2 or out.shape != (len(crops), len(labels)):
            raise ValueError(f"the model gave {getattr(out, 'shape', type(out).__name__)} for {len(crops)} "
                             f"crop(s); its sidecar lists {len(labels)} labels, so ({len(crops)}, {len(labels)}) "
                             "was expected")
        scores = out.astype(np.float64)
        if not np.isfinite(scores).all():
            raise ValueError("the model gave scores that are not finite numbers")
        if self.sidecar.output == "logits":
            scores = np.exp(scores - scores.max(1, keepdims=True))
            scores /= scores.sum(1, keepdims=True)
        top = np.argsort(-scores, axis=1, kind="stable")[:, :TOP_K]
        return [tuple((labels[k], float(row[k])) for k in idx) for row, idx in zip(scores, top, strict=True)]


def load(spec: str) -> tuple[Classifier | None, list[str]]:
    """The classifier ``--classifier spec`` names, opened and run once, and warnings; None (with the warning
    why) where no classifier will run. Raises ``ClassifierUnavailable`` for a model that was asked for by
    name or path and cannot work."""
    if spec == "none":
        return None, [NO_MODEL + "--classifier none (detections only)"]
    if spec == "auto":
        path = speciesnet_path()
        if not path.exists():
            return None, [NO_MODEL + f"SpeciesNet is not in the model cache ({path.parent}); on a machine with "
                          f"internet run `scripts/run.py models fetch {SPECIESNET}`, or choose --classifier "
                          "PATH.onnx. Detections only."]
        try:
            return _open(path, spec), []
        except ClassifierUnavailable as exc:
            return None, [NO_MODEL + f"{exc} Detections only."]
    if spec == SPECIESNET:
        path = speciesnet_path()
        if not path.exists():
            raise ClassifierUnavailable(
                f"SpeciesNet is not in the model cache ({path.parent}).",
                hint=f"On a machine with internet run `scripts/run.py models fetch {SPECIESNET}` (or `odin models "
                     f"fetch {SPECIESNET}`), or choose --classifier PATH.onnx, or --classifier none for "
                     "detections only.")
        return _open(path, spec), []
    if spec.endswith(".onnx"):
        if not Path(spec).is_file():
            raise ClassifierUnavailable(f"--classifier {spec}: no such file")
        return _open(Path(spec), spec), []
    raise ClassifierUnavailable(f"unknown classifier {spec!r}: choose auto, {SPECIESNET}, none or a model path "
                                "(PATH.onnx with its PATH.json sidecar)")


def _open(path: Path, spec: str) -> Classifier:
    from wildlife.detect import _has  # noqa: PLC0415

    hint = ("A classifier is an ONNX model with a sidecar PATH.json (kind, labels, input_size, layout...; see "
            "the README's species section)" + (f"; `scripts/run.py models fetch {SPECIESNET}` fetches SpeciesNet "
                                               "again" if spec in ("auto", SPECIESNET) else "") + ".")
    if not _has("onnxruntime"):
        raise ClassifierUnavailable(f"{path} is an ONNX model, and onnxruntime is not installed here: pip install "
                                    "'.[onnx]'. --classifier none runs detections only.")
    side_path = path.with_suffix(".json")
    if not side_path.is_file():
        raise ClassifierUnavailable(f"--classifier {path}: its sidecar {side_path.name} is missing", hint=hint)
    try:
        side = sidecar.read(side_path)
    except ValueError as exc:
        raise ClassifierUnavailable(f"--classifier {path}: its sidecar is unusable: {exc}", hint=hint) from exc
    try:
        classifier = Classifier(path, side)
    except ValueError as exc:  # a valid model of the wrong shape
        raise ClassifierUnavailable(f"{path} does not work as a classifier: {exc}", hint=hint) from exc
    except Exception as exc:  # onnxruntime's InvalidProtobuf, Fail, InvalidGraph...
        raise ClassifierUnavailable(f"{path} is not a valid ONNX model ({type(exc).__name__}: {str(exc)[:200]})",
                                    hint=hint) from exc
    try:
        classifier.probe()
    except Exception as exc:  # whatever the model does wrong, the user must hear it now
        raise ClassifierUnavailable(f"{path} does not work as a classifier: {type(exc).__name__}: {exc}",
                                    hint=hint) from exc
    return classifier


def check(spec: str) -> None:
    """Raise ``ClassifierUnavailable`` now, before any work, if ``load(spec)`` cannot give what was asked
    for. Files already checked in this process, unchanged since, are not loaded again (the CLI and
    GuardBudget both check)."""
    from wildlife.detect import _file_stamp  # noqa: PLC0415

    if spec == "none":
        return
    path = Path(spec) if spec.endswith(".onnx") else speciesnet_path()
    stamp = (spec, *map(_file_stamp, sidecar.files(path)))
    if stamp not in _CHECKED:
        load(spec)
        _CHECKED.add(stamp)


_CHECKED: set[tuple] = set()


def rules(classifier: Classifier) -> dict[str, Any]:
    """What Stage 2 needs of the classifier without the model (``wildlife.classify.RULES_FILE``)."""
    side = classifier.sidecar
    return {"name": side.name, "version": side.version, "labels": list(side.labels), "geofence": side.geofence}


def crops(classifier: Classifier, image: np.ndarray, result: Result) -> list[tuple[int, np.ndarray]]:
    """(index in ``result.detections``, crop) of each animal box at or above the sidecar's
    ``min_detection_conf``; a box that cannot be cut is left unclassified with a note."""
    out = []
    for j, d in enumerate(result.detections):
        if d.category != "animal" or d.conf < classifier.sidecar.min_detection_conf:
            continue
        try:
            out.append((j, classifier.crop(image, d.bbox)))
        except Exception as exc:  # noqa: BLE001 - one box's failure is a note, never the photo's failure
            _add_note(result, f"species classifier could not cut a box: {type(exc).__name__}: {exc}"[:300])
    return out


def classify_queue(classifier: Classifier, queue: list[tuple[int, int, np.ndarray]], results: list[Result | None],
                   force: bool) -> None:
    """Classify queued crops (photo index in ``results``, detection index, crop) in full batches (the rest
    too with ``force``), giving each detection its ``classifications``. A batch that fails is tried crop by
    crop; a crop that fails leaves its detection unclassified, with a note on the photo."""
    size = classifier.batch_size
    while len(queue) >= size or (force and queue):
        chunk, queue[:] = queue[:size], queue[size:]
        try:
            tops: list[Any] = classifier.classify([c for _, _, c in chunk])
        except Exception:  # noqa: BLE001 - find the crop(s) at fault
            tops = [_alone(classifier, c) for _, _, c in chunk]
        for (i, j, _), top in zip(chunk, tops, strict=True):
            result = results[i]
            if isinstance(top, str):
                _add_note(result, top)
            else:
                result.detections[j] = dataclasses.replace(result.detections[j], classifications=top)


def _alone(classifier: Classifier, crop: np.ndarray) -> tuple[tuple[str, float], ...] | str:
    try:
        return classifier.classify([crop])[0]
    except Exception as exc:  # noqa: BLE001 - one crop's failure is a note, never the photo's failure
        return f"species classifier failed on a box: {type(exc).__name__}: {exc}"[:300]


def _add_note(result: Result, note: str) -> None:
    if note not in (result.note or ""):
        result.note = f"{result.note}; {note}" if result.note else note
