"""Stage 1 and model files cannot crash, hang, exhaust memory or report success when nothing worked."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import cv2
import numpy as np
import photofactory as pf
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import ROOT, SAMPLE, odin
from tinymodels import save_checkpoint, save_onnx, save_zip_bomb

from wildlife import detect, errors, fs, stage1, stages
from wildlife.detect import decode, engine, weights, yolo
from wildlife.detect.engine import Engine, Sidecar
from wildlife.detect.motion import MotionDetector

TINY = dict(yolo.p5(3, 0.33, 0.125), names=["animal", "person", "vehicle"])


def _photos(tmp_path, n=3):
    folder = tmp_path / "photos" / "62c200a9"
    folder.mkdir(parents=True)
    for p in sorted((SAMPLE / "photos" / "62c200a9").glob("*.JPG"))[:n]:
        shutil.copy(p, folder / p.name)
    return tmp_path / "photos"


def _refused(spec) -> errors.InputError:
    with pytest.raises(detect.DetectorUnavailable) as info:
        detect.check(spec)
    assert isinstance(info.value, errors.InputError) and info.value.exit_code == 2
    return info.value


# --- model files: opened, size-checked and run once before any work --------------------------------------

def test_garbage_onnx_stops_the_cli_before_any_work_and_says_what_to_do(tmp_path):
    model = tmp_path / "model.onnx"
    model.write_bytes(os.urandom(4096))
    out = tmp_path / "out"
    result = odin("run", "--input", str(_photos(tmp_path, 1)), "--output", str(out), "--budget", "25",
                  "--detector", str(model))
    assert result.returncode == 2, result.stderr
    assert f"{model} is not a valid ONNX model (" in result.stderr  # (the reader's error: onnx's or onnxruntime's)
    assert "scripts/run.py models export" in result.stderr
    assert not out.exists()


def test_truncated_onnx_is_refused(tmp_path):
    checkpoint_path = tmp_path / "tiny.pt"
    save_checkpoint(TINY, checkpoint_path)
    model = weights.export_onnx(weights.load_yolov5(checkpoint_path), tmp_path / "tiny.onnx", 640)
    detect.check(str(model))  # whole: fine
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    assert "is not a valid ONNX model (" in str(_refused(str(model)))


def test_a_valid_onnx_with_the_wrong_output_shape_is_refused_in_guard_budget(tmp_path):
    model = save_onnx(tmp_path / "scores.onnx", "wrong-output")
    state = {"params": {"detector": str(model), "target": "local", "input_uri": str(tmp_path / "nowhere"),
                        "output_uri": str(tmp_path / "out")}}
    with pytest.raises(detect.DetectorUnavailable, match=r"output has shape \(1, 3\).*layout v5 needs"):
        stages.guard_budget(state, stages.Context())
    assert not (tmp_path / "out").exists()  # refused before the input was even listed


def test_a_corrupt_pt_is_refused_with_what_to_do(tmp_path):
    model = tmp_path / "md_v5a.0.0.pt"
    model.write_bytes(b"<html>504 Gateway Timeout</html>")  # what a failed download leaves
    refused = _refused(str(model))
    assert f"{model} is not a readable PyTorch checkpoint (BadZipFile" in str(refused)
    assert "models fetch md-v5a" in refused.hint


def test_a_pt_zip_bomb_is_refused_before_unpacking(tmp_path):
    bomb = save_zip_bomb(tmp_path / "bomb.pt", unpacked_gib=2.1)
    assert bomb.stat().st_size < 20 * 2**20
    assert "would unpack to 2.1 GiB, over the 2 GiB a YOLOv5 checkpoint can need (a zip bomb?)" in str(
        _refused(str(bomb)))


# --- a stage whose every photo failed fails the run --------------------------------------------------------

def test_a_detector_that_fails_on_every_photo_fails_the_run(tmp_path):
    model = save_onnx(tmp_path / "fixed.onnx", "fixed-size")  # works at 128x128 only, photos are 4:3
    out = tmp_path / "out"
    result = odin("run", "--input", str(_photos(tmp_path)), "--output", str(out), "--budget", "25",
                  "--detector", str(model), "--deployments", str(SAMPLE / "deployments.csv"))
    assert result.returncode == 1, result.stderr
    assert "Stage 1: all 3 photos failed; first reasons: inference failed: " in result.stderr
    assert "incompatible" in result.stderr or "InvalidArgument" in result.stderr  # the runtime's own reason
    report = json.loads((out / "run_report.json").read_text())
    assert report["status"] == "failed"
    assert not list((out / "_run" / "stage1").rglob("part-*"))  # --resume after the fix runs them again


# --- one boundary per file: whatever one photo's bytes do, it is that photo's failure ---------------------

def _detectors():
    return [MotionDetector(), Engine(_Blank(), Sidecar(input_size=64, stride=32))]


class _Blank:
    """A backend with no boxes, so these tests are about decoding only."""

    device = "cpu"

    def __call__(self, batch):
        return np.zeros((len(batch), 10, 8), np.float32)


def _burst(tmp_path, n=3):
    bg = pf.scene(320, 240, seed=3)
    return [{"photo_id": f"p{i}", "sequence_id": "s", "width": 320, "height": 240,
             "uri": str(pf.write_photo(tmp_path / f"p{i}.jpg", bg, when=datetime(2024, 1, 1)))} for i in range(n)]


def _bomb_header(width, height) -> bytes:
    data = bytearray(pf.encode_jpeg(np.zeros((8, 8, 3), np.uint8)))
    struct.pack_into(">HH", data, data.index(b"\xff\xc0") + 5, height, width)
    return bytes(data)


@pytest.mark.parametrize("detector", _detectors(), ids=["motion", "engine"])
def test_a_photo_emptied_or_replaced_after_stage0_fails_alone(tmp_path, detector):
    photos = _burst(tmp_path, 4)
    open(photos[0]["uri"], "wb").close()  # emptied
    os.remove(photos[1]["uri"])  # gone
    with open(photos[2]["uri"], "wb") as f:  # replaced by a decompression bomb
        f.write(_bomb_header(60000, 60000))
    results = detector.detect(photos)
    assert [r.failure for r in results[:3]] == [
        "empty file (0 bytes)", "cannot read file: No such file or directory",
        "declared size 60000x60000 px exceeds the 250 MP limit (a decompression bomb or a corrupt header)"]
    assert results[3].failure is None


@pytest.mark.parametrize("detector", _detectors(), ids=["motion", "engine"])
def test_a_file_grown_past_the_size_cap_is_refused_unread(tmp_path, detector):
    photos = _burst(tmp_path, 2)
    with open(photos[0]["uri"], "r+b") as f:  # sparse: 600 MiB to the file system, nothing on disk
        f.truncate(600 * 2**20)
    results = detector.detect(photos)
    assert results[0].failure == "file is 600 MiB, over the 512 MiB limit for decoding (changed since Stage 0?)"
    assert results[1].failure is None


def test_an_opencv_error_is_the_photos_failure(tmp_path):
    # within a generous --max-megapixels, but past OpenCV's own limit for a full decode: cv2.error
    path = tmp_path / "huge.jpg"
    path.write_bytes(_bomb_header(40000, 40000))
    photo = {"photo_id": "h", "uri": str(path), "width": 60, "height": 40, "max_megapixels": 5000}  # stale size
    (res,) = Engine(_Blank(), Sidecar(input_size=40000, stride=32)).detect([photo])  # a full-size decode
    assert res.failure.startswith("cannot decode image data: error: ")
    assert "CV_IO_MAX_IMAGE_PIXELS" in res.failure
    with pytest.raises(decode.Undecodable, match="CV_IO_MAX_IMAGE_PIXELS"):
        decode.read_image(photo, cv2.IMREAD_COLOR)


def test_the_engine_sizes_its_decode_from_the_file_as_it_is_now(tmp_path):
    path = pf.write_photo(tmp_path / "big.jpg", pf.scene(1024, 768), when=datetime(2024, 1, 1))
    photo = {"photo_id": "b", "uri": str(path), "width": 64, "height": 48}  # Stage 0 saw a small photo here
    assert engine.prepare(photo, 64, 32)[3] == (192, 256)  # decoded at 1/4 inside the JPEG decoder


def test_a_bug_in_odin_stops_the_run_naming_the_photo(tmp_path, monkeypatch):
    photos = _burst(tmp_path, 1)

    def broken(*args):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(engine, "letterbox", broken)
    with pytest.raises(detect.DetectorBug, match=rf"{photos[0]['uri']}.*ZeroDivisionError.*a bug in Odin"):
        Engine(_Blank(), Sidecar(input_size=64, stride=32)).detect(photos)


def test_a_photo_changed_after_stage0_is_failed_in_the_outputs_and_the_run_succeeds(tmp_path):
    photos = _photos(tmp_path)
    out = tmp_path / "out"
    args = ["run", "--input", str(photos), "--output", str(out), "--budget", "25", "--detector", "motion",
            "--deployments", str(SAMPLE / "deployments.csv"), "--weather-provider", "none"]
    assert odin(*args).returncode == 0
    # as if the run was killed after Stage 0 and a photo emptied before --resume
    state_path = out / "_run" / "state.json"
    state = json.loads(state_path.read_text())
    state["done"] = ["GuardBudget", "Stage0Exif", "CostEstimation"]
    state_path.write_text(json.dumps(state))
    shutil.rmtree(out / "_run" / "stage1")
    victim = sorted(photos.rglob("*.JPG"))[1]
    victim.write_bytes(b"")
    result = odin(*args, "--resume")
    assert result.returncode == 0, result.stderr
    images = {r["relpath"]: r for r in pq.read_table(out / "images.parquet").to_pylist()}
    row = images[str(victim.relative_to(photos))]
    assert (row["status"], row["reason"]) == ("failed", "detection: empty file (0 bytes)")
    assert sum(r["status"] == "ok" for r in images.values()) == 2


# --- bounded memory: a sequence of any length is compared in windows and checkpointed inside -------------

def _long_burst(tmp_path, n, moving=(2, 9, 15)):
    """``n`` photos at one timestamp (a reset clock), an animal in the photos listed in ``moving``."""
    bg = pf.scene(320, 240, seed=7)
    photos = []
    for i in range(n):
        pixels = pf.with_animal(bg, (0.05 * (i % 15) + 0.05, 0.4, 0.15, 0.25)) if i in moving else bg
        path = pf.write_photo(tmp_path / f"t{i:03d}.jpg", pixels, when=datetime(2024, 1, 1))
        photos.append({"photo_id": f"t{i:03d}", "uri": str(path), "sequence_id": "clock-reset", "width": 320,
                       "height": 240, "sequence_index": i, "sequence_size": n})
    return photos


def test_motion_holds_at_most_a_window_of_frames_and_still_finds_the_animal(tmp_path):
    photos = _long_burst(tmp_path, 20)
    detector = MotionDetector(block=4, margin=2)
    results = detector.detect(photos)
    assert 0 < detector.max_held <= detector.window == 8
    assert [i for i, r in enumerate(results) if r.detections] == [2, 9, 15]
    assert all(r.failure is None for r in results)


def test_checkpoints_fall_inside_a_sequence_and_give_the_same_results(tmp_path):
    photos = _long_burst(tmp_path, 20)
    whole, _ = stage1.detect(photos, MotionDetector(block=4, margin=2), str(tmp_path / "whole"), every=100)
    split, _ = stage1.detect(photos, MotionDetector(block=4, margin=2), str(tmp_path / "split"), every=5)
    parts = [n for n in fs.list_names(str(tmp_path / "split")) if n.startswith("part-")]
    assert len(parts) >= 3  # one sequence, several checkpoints
    assert split.sort_by("photo_id").to_pylist() == whole.sort_by("photo_id").to_pylist()
    # a run killed after the first checkpoint resumes inside the sequence with the same results
    for name in parts[1:]:
        os.remove(tmp_path / "split" / name)
    resumed, count = stage1.detect(photos, MotionDetector(block=4, margin=2), str(tmp_path / "split"), every=5)
    assert 0 < count < 20
    assert resumed.sort_by("photo_id").to_pylist() == whole.sort_by("photo_id").to_pylist()


def test_stage1_places_each_photo_in_its_sequence():
    base = datetime(2024, 1, 1, tzinfo=UTC)
    rows = [{"photo_id": f"x{i}", "relpath": f"c/x{i}.jpg", "uri": f"/p/c/x{i}.jpg", "uri_raw": None, "width": 1,
             "height": 1, "status": "ok", "deployment_id": "d",
             "timestamp": base + timedelta(seconds=i if i < 3 else 3600 + i)} for i in range(5)]
    photos = stage1.photos_to_detect(pa.Table.from_pylist(rows), 60)
    assert [(p["photo_id"], p["sequence_index"], p["sequence_size"]) for p in photos] == [
        ("x0", 0, 3), ("x1", 1, 3), ("x2", 2, 3), ("x3", 0, 2), ("x4", 1, 2)]


# --- an install without PyTorch (pip install .[onnx]) ----------------------------------------------------

_NO_TORCH = """
import json, sys
sys.modules["torch"] = None  # a real import failure: what an install without torch sees
from wildlife import detect
out = {}
try:
    detect.check(sys.argv[1])
    out["check"] = "ok"
except detect.DetectorUnavailable as exc:
    out["check"] = str(exc)
det, warnings = detect.load("auto")
out["auto"], out["warnings"] = det.name, warnings
print(json.dumps(out))
"""


def _without_torch(spec, models_dir):
    env = dict(os.environ, ODIN_MODELS=str(models_dir), PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-c", _NO_TORCH, spec], capture_output=True, text=True, env=env,
                            cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_without_torch_check_says_what_is_missing_and_auto_falls_back(tmp_path):
    (tmp_path / "md_v5a.0.0.pt").write_bytes(b"weights")
    out = _without_torch("megadetector", tmp_path)
    assert "md_v5a.0.0.pt is a PyTorch checkpoint, and PyTorch is not installed here" in out["check"]
    assert "pip install '.[detector]'" in out["check"] and "models export" in out["check"]
    assert out["auto"] == "odin-motion-baseline"
    assert "PyTorch is not installed" in out["warnings"][0] and "Fell back to the motion baseline" in out["warnings"][0]


def test_without_torch_an_onnx_model_runs(tmp_path):
    checkpoint_path = tmp_path / "tiny.pt"
    save_checkpoint(TINY, checkpoint_path)
    model = weights.export_onnx(weights.load_yolov5(checkpoint_path), tmp_path / "models" / "md-v5a.onnx", 640)
    (tmp_path / "models" / "md_v5a.0.0.pt").write_bytes(checkpoint_path.read_bytes())
    assert _without_torch(str(model), tmp_path / "models")["check"] == "ok"
    out = _without_torch("megadetector", tmp_path / "models")  # the cached .onnx, not the .pt beside it
    assert out["check"] == "ok" and out["auto"].startswith("yolov5:tiny.pt") and out["warnings"] == []


def test_without_torch_and_without_weights_check_says_how_to_get_them(tmp_path):
    out = _without_torch("megadetector", tmp_path)
    assert "`scripts/run.py models fetch md-v5a`" in out["check"]
    assert out["auto"] == "odin-motion-baseline"
