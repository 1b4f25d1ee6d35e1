"""People kept out (--humans blur|drop|keep): blurred pixels where a person box was in every image Odin writes
(report thumbnails, export annotated), and in the Camtrap DP package their files withheld (blur), left out
(drop) or listed (keep), the package valid each way."""

from __future__ import annotations

import base64
import csv
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pytest
from conftest import SAMPLE, odin

from wildlife import camtrapdp, privacy, report_html, stage2
from wildlife.errors import InputError

PHOTO = SAMPLE / "photos" / "62c200a9" / "20210531082538-RCNX0031.JPG"
PERSON = {"category": "person", "conf": 0.8, "bbox_x": 0.55, "bbox_y": 0.1, "bbox_w": 0.2, "bbox_h": 0.35}


def _region(img: np.ndarray, box: dict, margin: float = 0.0) -> tuple[slice, slice]:
    h, w = img.shape[:2]
    x0, y0 = (box["bbox_x"] - margin * box["bbox_w"]) * w, (box["bbox_y"] - margin * box["bbox_h"]) * h
    x1 = (box["bbox_x"] + (1 + margin) * box["bbox_w"]) * w
    y1 = (box["bbox_y"] + (1 + margin) * box["bbox_h"]) * h
    return slice(max(0, int(y0)), int(np.ceil(y1))), slice(max(0, int(x0)), int(np.ceil(x1)))


def _detail(img: np.ndarray) -> float:
    """Local detail: variance of the Laplacian (a blurred face has none left)."""
    return float(cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var())


def test_blur_removes_detail_inside_a_person_box_and_leaves_the_rest_unchanged():
    img = cv2.imread(str(PHOTO))
    out = privacy.blur(img, [PERSON])
    inside = _region(img, PERSON)
    assert _detail(out[inside]) < 0.1 * _detail(img[inside])
    assert float(out[inside].astype(float).var()) < float(img[inside].astype(float).var())
    mask = np.ones(img.shape[:2], bool)
    mask[_region(img, PERSON, privacy.MARGIN)] = False
    assert np.array_equal(out[mask], img[mask])  # not a pixel outside the box and its margin changed


def test_only_people_and_vehicles_at_the_threshold_are_blurred_and_none_with_keep():
    boxes = [dict(PERSON, photo_id="p1"), dict(PERSON, photo_id="p2", category="vehicle"),
             dict(PERSON, photo_id="p3", category="animal"),
             dict(PERSON, photo_id="p4", conf=0.1)]  # under the run's threshold: not a person Odin reports
    detections = pa.Table.from_pylist([dict(b, suspected_static=False) for b in boxes],
                                      schema=stage2.DETECTION_SCHEMA)
    assert sorted(privacy.to_blur(detections, 0.2, "blur")) == ["p1", "p2"]
    assert sorted(privacy.to_blur(detections, 0.2, "drop")) == ["p1", "p2"]
    assert privacy.to_blur(detections, 0.2, "keep") == {}
    assert privacy.people_photos(detections, 0.2) == {"p1", "p2"}
    with pytest.raises(InputError, match="--humans 'hide'"):
        privacy.to_blur(detections, 0.2, "hide")


def _thumb_pixels(src: str) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(base64.b64decode(src.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)


@pytest.mark.parametrize("humans", ["blur", "drop"])
def test_report_thumbnails_blur_people_unless_keep(humans):
    box = dict(PERSON, bbox_y=0.5, bbox_h=0.3, photo_id="p", suspected_static=True)  # static: blurred all the same
    detections = pa.Table.from_pylist([box], schema=stage2.DETECTION_SCHEMA)
    assert privacy.to_blur(detections, 0.2, "keep") == {}
    kept = _thumb_pixels(report_html._thumbnail(str(PHOTO), [box]))
    blurred = _thumb_pixels(report_html._thumbnail(str(PHOTO), [box], privacy.to_blur(detections, 0.2, humans)["p"]))
    inner = dict(box, bbox_x=box["bbox_x"] + 0.02, bbox_y=box["bbox_y"] + 0.03, bbox_w=box["bbox_w"] - 0.04,
                 bbox_h=box["bbox_h"] - 0.06)  # inside the drawn frame
    assert _detail(blurred[_region(blurred, inner)]) < 0.3 * _detail(kept[_region(kept, inner)])


# --- a run with a person on one photo: Camtrap DP and export annotated ---

T0 = datetime(2021, 4, 11, 19, 43, tzinfo=UTC)


def _run(tmp_path: Path, humans: str) -> tuple[Path, pa.Table, pa.Table]:
    """The sample's first three photos, a heron on p0 and p1, a person on p1 and p2."""
    photos = sorted((SAMPLE / "photos" / "62c200a9").glob("*.JPG"))[:3]
    images = pa.Table.from_pylist([{
        "photo_id": f"p{i}", "status": "ok", "deployment_id": "62c200a9", "relpath": f"62c200a9/{p.name}",
        "uri": str(p), "format": "jpeg", "timestamp": T0 + timedelta(seconds=i),
        "timestamp_local": (T0 + timedelta(seconds=i, hours=1)).replace(tzinfo=None), "utc_offset_min": 60,
        "clock_flags": [], "assessed": True, "event_id": None} for i, p in enumerate(photos)])
    boxes = [("p0", "animal"), ("p1", "animal"), ("p1", "person"), ("p2", "person")]
    detections = pa.Table.from_pylist([
        {"detection_id": f"{pid}-{k}", "photo_id": pid, "relpath": "x", "deployment_id": "62c200a9",
         "timestamp": T0, "category": cat, "conf": 0.9, "bbox_x": 0.1 if cat == "animal" else PERSON["bbox_x"],
         "bbox_y": 0.5 if cat == "animal" else PERSON["bbox_y"], "bbox_w": 0.2, "bbox_h": 0.35 if cat == "person"
         else 0.3, "suspected_static": False, "detector": "test"} for k, (pid, cat) in enumerate(boxes)],
        schema=stage2.DETECTION_SCHEMA)
    return tmp_path, images, detections


def _package(tmp_path: Path, humans: str) -> tuple[Path, dict]:
    _, images, detections = _run(tmp_path, humans)
    package = tmp_path / f"pkg-{humans}"
    payload = camtrapdp.export(str(package), images, detections, stage2.EVENT_SCHEMA.empty_table(),
                               deployments_uri=str(SAMPLE / "deployments.csv"), coords={}, detector="test 1.0",
                               threshold=0.2, session_id="s1", humans=humans)
    return package, payload


def _rows(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("humans", ["blur", "drop", "keep"])
def test_camtrap_dp_withholds_drops_or_keeps_media_of_people(tmp_path, humans):
    package, payload = _package(tmp_path, humans)
    assert camtrapdp.validate(str(package)) == []  # valid whichever way
    media = {m["mediaID"]: m for m in _rows(package / "media.csv")}
    obs = _rows(package / "observations.csv")
    assert payload["privacy"]["media_with_people"] == 2 and payload["privacy"]["humans"] == humans
    assert all(m["filePublic"] == "false" for m in media.values())  # Odin never publishes a file
    assert media["p0"]["filePath"] == "62c200a9/20210531082538-RCNX0031.JPG"  # no one on it
    if humans == "keep":
        assert media["p1"]["filePath"].startswith("62c200a9/") and media["p2"]["fileName"]
        assert {o["observationType"] for o in obs} >= {"human", "animal"}
    elif humans == "blur":
        for pid in ("p1", "p2"):
            assert media[pid]["filePath"] == privacy.WITHHELD and media[pid]["fileName"] == ""
            assert "person or vehicle" in media[pid]["mediaComments"]
        assert payload["privacy"]["files_withheld"] == 2
    else:
        assert set(media) == {"p0"}  # the photos with people are left out, with their observations
        assert {o["mediaID"] for o in obs} == {"p0"} and "human" not in {o["observationType"] for o in obs}
        assert payload["privacy"]["media_dropped"] == 2 and payload["privacy"]["observations_dropped"] == 3
        assert payload["complete"] is False
        assert any("2 photo(s) showing people or vehicles left out" in w for w in payload["warnings"])


def _finished_run(tmp_path: Path, humans: str) -> Path:
    _, images, detections = _run(tmp_path, humans)
    run = tmp_path / "run"
    run.mkdir()
    import pyarrow.parquet as pq  # noqa: PLC0415

    pq.write_table(images, run / "images.parquet")
    pq.write_table(detections, run / "detections.parquet")
    (run / "run_report.json").write_text(json.dumps({"params": {"conf_threshold": 0.2, "humans": humans}}))
    return run


def test_export_annotated_blurs_people_and_draws_boxes(tmp_path):
    run = _finished_run(tmp_path, "blur")
    out = tmp_path / "annotated"
    result = odin("export", "annotated", "--run", str(run), "--output", str(out))
    assert result.returncode == 0, result.stderr
    said = result.stdout + result.stderr  # the console writes to stderr
    assert "wrote 3 annotated photo(s)" in said and "2 with people or vehicles blurred" in said
    originals = sorted((SAMPLE / "photos" / "62c200a9").glob("*.JPG"))[:3]
    for i, original in enumerate(originals):
        before, after = cv2.imread(str(original)), cv2.imread(str(out / "62c200a9" / original.name))
        assert after.shape == before.shape
        inner = dict(PERSON, bbox_x=PERSON["bbox_x"] + 0.02, bbox_y=PERSON["bbox_y"] + 0.03,
                     bbox_w=PERSON["bbox_w"] - 0.04, bbox_h=PERSON["bbox_h"] - 0.06)
        ratio = _detail(after[_region(after, inner)]) / _detail(before[_region(before, inner)])
        assert (ratio < 0.2) == (i > 0), (original.name, ratio)  # p1 and p2 show a person: blurred
    heron = cv2.imread(str(out / "62c200a9" / originals[0].name))
    assert not np.array_equal(heron, cv2.imread(str(originals[0])))  # its box and label are drawn


def test_export_annotated_with_drop_writes_no_photo_of_people_and_says_so(tmp_path):
    run = _finished_run(tmp_path, "drop")
    out = tmp_path / "annotated"
    result = odin("export", "annotated", "--run", str(run), "--output", str(out))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (out / "62c200a9").iterdir()) == [
        sorted((SAMPLE / "photos" / "62c200a9").glob("*.JPG"))[0].name]
    assert "not written: 2 photo(s): people or vehicles (--humans drop)" in result.stdout + result.stderr


def test_export_annotated_refuses_a_folder_that_is_not_a_run(tmp_path):
    result = odin("export", "annotated", "--run", str(tmp_path), "--output", str(tmp_path / "out"))
    assert result.returncode == 2 and "images.parquet" in result.stderr
    assert not (tmp_path / "out").exists()
    shutil.rmtree(tmp_path, ignore_errors=True)
