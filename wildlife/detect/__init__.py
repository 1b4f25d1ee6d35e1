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
    """A detector by name (``motion``, ``megadetector``, ``auto``) and the warnings its choice raised."""
    from wildlife.detect import motion  # noqa: PLC0415 - keep OpenCV off the import path of the CLI

    if spec == "motion":
        return motion.MotionDetector(), []
    if spec in ("megadetector", "auto") or spec.endswith((".onnx", ".pt")):
        reason = (
            "no MegaDetector engine in this version of Odin yet (it arrives with the detection-engine "
            "issue); use --detector motion"
        )
        if spec == "auto":
            return motion.MotionDetector(), [f"MegaDetector unavailable: {reason}. Fell back to the motion baseline."]
        raise DetectorUnavailable(f"--detector {spec}: {reason}")
    raise DetectorUnavailable(f"unknown detector {spec!r}: choose motion, megadetector, auto or a model path")
