"""Stage 1's interface and the motion baseline, on real JPEGs with a known moving object."""

from __future__ import annotations

from datetime import datetime, timedelta

import photofactory as pf
import pytest

from wildlife import detect
from wildlife.detect import Detection, DetectorUnavailable
from wildlife.detect.motion import MotionDetector


def _burst(tmp_path, boxes, seed=1, size=(800, 600)):
    bg = pf.scene(*size, seed=seed)
    photos = []
    for i, box in enumerate(boxes):
        pixels = pf.with_animal(bg, box) if box else bg
        path = pf.write_photo(tmp_path / f"b{seed}_{i}.jpg", pixels, when=datetime(2024, 1, 1) + timedelta(seconds=i))
        photos.append({"photo_id": f"{seed}-{i}", "uri": str(path), "sequence_id": f"seq{seed}"})
    return photos


def _iou(a, b):
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax2, bx2) - max(a[0], b[0]))
    ih = max(0.0, min(ay2, by2) - max(a[1], b[1]))
    inter = iw * ih
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def test_motion_finds_the_moving_object_with_normalised_top_left_boxes(tmp_path):
    boxes = [(0.1, 0.3, 0.12, 0.2), (0.4, 0.35, 0.12, 0.2), (0.7, 0.4, 0.12, 0.2), None, None]
    results = MotionDetector().detect(_burst(tmp_path, boxes))
    for box, res in zip(boxes, results, strict=True):
        assert res.failure is None
        if box is None:
            assert res.detections == []
        else:
            best = max(res.detections, key=lambda d: d.conf)
            assert best.category == "animal"
            assert _iou(best.bbox, box) > 0.7, (best.bbox, box)


def test_a_photo_alone_gets_no_detections_and_a_note(tmp_path):
    (res,) = MotionDetector().detect(_burst(tmp_path, [(0.2, 0.2, 0.2, 0.2)]))
    assert res.detections == [] and "alone" in res.note


def test_sequences_in_one_batch_are_compared_separately(tmp_path):
    a = _burst(tmp_path, [(0.1, 0.1, 0.1, 0.1), None, None], seed=1)
    b = _burst(tmp_path, [None, None, (0.6, 0.6, 0.1, 0.1)], seed=2)
    results = MotionDetector().detect(a + b)
    assert [len(r.detections) > 0 for r in results] == [True, False, False, False, False, True]


def test_undecodable_photo_is_a_failure_not_a_crash(tmp_path):
    photos = _burst(tmp_path, [None, None])
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff" + b"\x00" * 100)
    photos.append({"photo_id": "bad", "uri": str(bad), "sequence_id": "seq1"})
    results = MotionDetector().detect(photos)
    assert results[-1].failure == "corrupt JPEG: a segment of length 0 at byte 2"  # the header, read again
    assert all(r.failure is None for r in results[:-1])


def test_detection_categories_are_megadetectors():
    with pytest.raises(ValueError, match="unknown category"):
        Detection("bird", 0.5, (0, 0, 1, 1))


def test_detector_choice():
    assert detect.load("motion")[0].name == "odin-motion-baseline"
    det, warnings = detect.load("auto")
    assert det.name == "odin-motion-baseline" and "Fell back" in warnings[0]
    with pytest.raises(DetectorUnavailable, match="models fetch md-v5a"):
        detect.load("megadetector")
    with pytest.raises(DetectorUnavailable, match="unknown detector"):
        detect.load("yolo9000")
