"""Stage 1's MegaDetector engine: safe strict loading, exact decoding, torch vs ONNX, end to end."""

from __future__ import annotations

import json
import os
import pickle
import sys
import zipfile

import cv2
import numpy as np
import pytest
import torch
from conftest import SAMPLE, odin
from tinymodels import save_checkpoint

from wildlife import detect
from wildlife.detect import Detection, engine, quantize, weights, yolo
from wildlife.detect.engine import Engine, Sidecar

TINY = dict(yolo.p5(3, 0.33, 0.125), names=["animal", "person", "vehicle"])  # ~0.5 M parameters


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "tiny_md_layout.pt"
    reference = save_checkpoint(TINY, path)
    return path, reference


def test_checkpoint_loads_strictly_and_exactly_without_yolov5(tiny_checkpoint):
    path, reference = tiny_checkpoint
    assert "models" not in sys.modules
    loaded = weights.load_yolov5(path)
    assert "models" not in sys.modules  # nothing from YOLOv5 was imported to load it
    assert loaded.model.names == ["animal", "person", "vehicle"]
    assert loaded.sha256 == weights.digests(path)[0] and loaded.version.startswith("sha256:")
    x = torch.rand(1, 3, 256, 320)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), reference(x))


def test_malicious_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pt"
    torch.save({"model": Evil()}, path)
    with pytest.raises(weights.RefusedPickle, match=r"refused to load (posix|os)\.system"):
        weights.read_checkpoint(path)
    assert not marker.exists()
    plain = tmp_path / "plain.pkl"  # not a torch archive at all
    plain.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises((ValueError, zipfile.BadZipFile)):
        weights.read_checkpoint(plain)


def test_mismatched_architecture_is_refused(tiny_checkpoint, tmp_path, monkeypatch):
    path, _ = tiny_checkpoint
    real = weights.YoloModel

    def wider(cfg):
        return real(dict(cfg, width_multiple=cfg["width_multiple"] * 2))

    monkeypatch.setattr(weights, "YoloModel", wider)
    with pytest.raises(ValueError, match="do not match"):
        weights.load_yolov5(path)


class Planted:
    """A backend that returns fixed raw predictions, to check decoding against hand-computed boxes."""

    device = "cpu"

    def __init__(self, rows, layout="v5"):
        self.rows, self.layout = np.array(rows, np.float32), layout

    def __call__(self, batch):
        out = self.rows if self.layout == "v5" else self.rows[:, [0, 1, 2, 3, 5, 6, 7]].T
        return np.stack([out] * len(batch))


@pytest.mark.parametrize("layout", ["v5", "v8"])
def test_decoding_nms_and_letterbox_undo_are_exact(tmp_path, layout):
    photo = tmp_path / "p.jpg"
    cv2.imwrite(str(photo), np.zeros((730, 1000, 3), np.uint8))
    # 1000x730 -> ratio 0.64 -> 640x467, padded to 640x480 (6 px on top). In letterboxed pixels:
    rows = [
        [320, 246, 64, 128, 0.9, 1.0, 0.0, 0.0],   # animal, 0.9
        [322, 247, 64, 128, 0.8, 1.0, 0.0, 0.0],   # same animal, weaker: suppressed
        [320, 246, 64, 128, 0.5, 0.0, 0.6, 0.0],   # a person on top of it: other class, kept (0.3)
        [100, 100, 10, 10, 0.001, 1.0, 0.0, 0.0],  # below the output threshold
    ]
    if layout == "v8":  # no objectness: class scores are the final scores
        for r in rows:
            r[5:] = [v * r[4] for v in r[5:]]
    det = Engine(Planted(rows, layout), Sidecar(input_size=640, stride=32, layout=layout))
    (res,) = det.detect([{"uri": str(photo), "photo_id": "p", "width": 1000, "height": 730}])
    assert res.failure is None
    best, person = res.detections
    assert (best.category, best.conf) == ("animal", 0.9)
    assert best.bbox == (0.45, round(275 / 730, 4), 0.1, round(200 / 730, 4))
    assert person.category == "person" and person.conf == pytest.approx(0.3, abs=1e-4)


def test_letterbox_is_rectangular_and_stride_aligned():
    img = np.zeros((1440, 2048, 3), np.uint8)
    padded, ratio, pad = engine.letterbox(img, 1280, 64)
    assert padded.shape[:2] == (960, 1280) and ratio == 0.625 and pad == (0, 30)


def test_torch_and_onnx_agree_on_a_960x1280_input(tiny_checkpoint, tmp_path):
    loaded = weights.load_yolov5(tiny_checkpoint[0])
    reference = weights.load_yolov5(tiny_checkpoint[0]).model
    onnx_path = weights.export_onnx(loaded, tmp_path / "tiny.onnx", imgsz=1280)
    side = Sidecar.read(onnx_path.with_suffix(".json"))
    assert (side.layout, side.classes["1"]) == ("v5", "animal")
    torch.manual_seed(0)
    x = torch.rand(1, 3, 960, 1280)
    with torch.no_grad():
        want = reference(x).numpy()
    got = engine.OnnxBackend(onnx_path)(x.numpy())
    assert got.shape == want.shape
    assert np.abs(got - want).max() < 1e-2  # pixels, on 1280-px boxes
    assert np.abs(got[..., 4:] - want[..., 4:]).max() < 1e-4  # objectness and class scores
    # the same candidates pass the threshold (a random model's scores are near-equal, so NMS's choice among
    # twins is arbitrary and is not compared; the planted-output test checks NMS)
    score_a, score_b = want[0, :, 4] * want[0, :, 5:].max(1), got[0, :, 4] * got[0, :, 5:].max(1)
    assert abs(int((score_a >= 0.25).sum()) - int((score_b >= 0.25).sum())) <= 0.001 * len(score_a)


def test_corrupt_photo_is_a_failure_row(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0garbage")
    det = Engine(Planted([[1, 1, 1, 1, 0, 0, 0, 0]]), Sidecar(input_size=64, stride=32))
    (res,) = det.detect([{"uri": str(bad), "photo_id": "b"}])
    assert res.failure == "truncated JPEG: the file ends inside its header"


def _check_md_format(doc: dict) -> None:
    """MegaDetector's published rules for batch output files."""
    assert {"info", "images", "detection_categories"} <= set(doc)
    assert float(doc["info"]["format_version"]) >= 1.3
    for k, v in doc["detection_categories"].items():
        assert isinstance(k, str) and int(k) >= 0 and isinstance(v, str)
    for im in doc["images"]:
        assert "file" in im
        if im.get("failure") is not None:
            assert isinstance(im["failure"], str) and im["detections"] is None
        else:
            assert isinstance(im["detections"], list)
            for d in im["detections"]:
                assert d["category"] in doc["detection_categories"] and isinstance(d["conf"], float)
                assert len(d["bbox"]) == 4 and all(0 <= v <= 1 for v in d["bbox"])


def test_run_with_a_user_supplied_onnx_model(tiny_checkpoint, tmp_path):
    onnx_path = tmp_path / "mine.onnx"
    result = odin("models", "export", str(tiny_checkpoint[0]), "--output", str(onnx_path), "--imgsz", "640")
    assert result.returncode == 0, result.stderr
    photos = tmp_path / "photos"
    (photos / "62c200a9").mkdir(parents=True)
    for p in sorted((SAMPLE / "photos" / "62c200a9").glob("*.JPG"))[:3]:
        (photos / "62c200a9" / p.name).write_bytes(p.read_bytes())
    (photos / "62c200a9" / "broken.JPG").write_bytes(b"\xff\xd8\xff")
    out = tmp_path / "out"
    result = odin("run", "--input", str(photos), "--output", str(out), "--budget", "25", "--detector", str(onnx_path),
                  "--deployments", str(SAMPLE / "deployments.csv"))
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "run_report.json").read_text())
    assert report["detector"]["name"].startswith("yolov5:tiny_md_layout.pt")
    doc = json.loads((out / "megadetector.json").read_text())
    _check_md_format(doc)
    assert len(doc["images"]) == 4 and sum(1 for im in doc["images"] if im.get("failure")) == 1


def test_missing_weights_say_how_to_get_them(tmp_path):
    result = odin("run", "--input", str(SAMPLE / "photos"), "--output", str(tmp_path / "o"), "--budget", "25",
                  "--detector", "megadetector")
    assert result.returncode == 2
    assert "models fetch md-v5a" in result.stderr and "--detector motion" in result.stderr
    assert not (tmp_path / "o").exists()  # refused before any work


@pytest.fixture
def release_server(tmp_path):
    """A loopback stand-in for the release address: serves files from a folder, counts requests."""
    from functools import partial  # noqa: PLC0415
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer  # noqa: PLC0415
    from threading import Thread  # noqa: PLC0415

    root = tmp_path / "release"
    root.mkdir()
    handler = partial(SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    Thread(target=httpd.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_models_fetch_checks_the_pinned_hash_and_deletes_a_mismatch(release_server, tmp_path, monkeypatch):
    root, base = release_server
    monkeypatch.setenv("ODIN_MODELS", str(tmp_path / "cache"))
    (root / "md_v5a.0.0.pt").write_bytes(b"not the released weights")
    with pytest.raises(ValueError, match=r"MD5 mismatch.*expected ec1d7603ec8cf642d6e0cd008ba2be8c"):
        weights.fetch("md-v5a", url=f"{base}/md_v5a.0.0.pt")
    assert list((tmp_path / "cache").iterdir()) == []  # nothing half-downloaded or unverified is kept


def test_models_fetch_with_a_given_sha256_caches_recognises_and_exports(release_server, tiny_checkpoint, tmp_path,
                                                                        monkeypatch):
    root, base = release_server
    cache = tmp_path / "cache"
    monkeypatch.setenv("ODIN_MODELS", str(cache))
    (root / "mirror.pt").write_bytes(tiny_checkpoint[0].read_bytes())
    sha, _ = weights.digests(tiny_checkpoint[0])
    with pytest.raises(ValueError, match="SHA-256 mismatch"):
        weights.fetch("md-v5b", sha256="0" * 64, url=f"{base}/mirror.pt")
    path = weights.fetch("md-v5b", sha256=sha.upper(), url=f"{base}/mirror.pt")
    assert path == cache / "md_v5b.0.0.pt" and json.loads((cache / "known.json").read_text()) == {sha: "md-v5b"}
    loaded = weights.load_yolov5(path)  # recognised by the hash recorded at download time
    assert (loaded.name, loaded.version) == ("megadetector-md-v5b", "v5b.0.0")
    side = json.loads((cache / "md-v5b.onnx").with_suffix(".json").read_text())
    assert side["source_sha256"] == sha and side["version"] == "v5b.0.0"


def test_weights_are_recognised_by_the_publishers_md5(tiny_checkpoint, monkeypatch):
    _, md5 = weights.digests(tiny_checkpoint[0])
    monkeypatch.setitem(weights.KNOWN, "md-v5a", dict(weights.KNOWN["md-v5a"], md5=md5))
    loaded = weights.load_yolov5(tiny_checkpoint[0])
    assert (loaded.name, loaded.version) == ("megadetector-md-v5a", "v5a.0.0")


def _det(category, conf, box):
    return Detection(category, conf, box)


def test_agreement_counts_boxes_of_the_same_category_at_iou_0_9():
    ref = [[_det("animal", 0.9, (0.1, 0.1, 0.2, 0.2)), _det("person", 0.5, (0.5, 0.5, 0.1, 0.1)),
            _det("animal", 0.01, (0.0, 0.0, 0.1, 0.1))],  # below min_conf: not counted
           [_det("vehicle", 0.3, (0.2, 0.2, 0.4, 0.4))]]
    got = [[_det("animal", 0.8, (0.1, 0.1, 0.2, 0.21)),  # IoU 0.952: matched
            _det("animal", 0.5, (0.5, 0.5, 0.1, 0.1))],  # right box, wrong category
           [_det("vehicle", 0.3, (0.2, 0.2, 0.4, 0.46))]]  # IoU 0.87: not matched
    report = quantize.agreement(ref, got, min_conf=0.05)
    assert (report["matched"], report["boxes"]) == (1, 3)
    assert report["share"] == pytest.approx(1 / 3) and report["max_coordinate_difference"] == pytest.approx(0.01)


def test_quantize_makes_an_int8_model_that_carries_its_agreement_report(tiny_checkpoint, tmp_path):
    import onnx  # noqa: PLC0415

    fp32 = tmp_path / "mine.onnx"
    weights.export_onnx(weights.load_yolov5(tiny_checkpoint[0]), fp32, 640)
    photos = sorted((SAMPLE / "photos").rglob("*.JPG"))
    folder = tmp_path / "card"
    folder.mkdir()
    for p in photos[:: len(photos) // 6][:6]:
        (folder / p.name).write_bytes(p.read_bytes())
    result = odin("models", "quantize", str(fp32), "--photos", str(folder), "--calibration", "3", "--check", "3")
    assert result.returncode == 0, result.stderr
    int8 = tmp_path / "mine.int8.onnx"
    side = json.loads(int8.with_suffix(".json").read_text())
    report = side["agreement"]
    assert side["precision"] == "int8" and side["version"].endswith("+int8") and side["source_model"] == "mine.onnx"
    assert report["photos"] == 3 and report["calibration_photos"] == 3 and 0 <= report["matched"] <= report["boxes"]
    assert f"{report['matched']}/{report['boxes']}" in result.stderr
    graph = onnx.load(str(int8)).graph
    producers = {o: n for n in graph.node for o in n.output}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    int8_convs = [n for n in convs if getattr(producers.get(n.input[1]), "op_type", "") == "DequantizeLinear"]
    tail = set(quantize.float_tail(onnx.load(str(fp32))))
    assert len(convs) - len(int8_convs) == 3  # the three detection convolutions stay in float
    assert not any(n.name in tail for n in int8_convs) and not any(n.op_type == "QuantizeLinear" and n.name in tail
                                                                   for n in graph.node)
    detector, warnings = detect.load(str(int8))
    assert detector.sidecar.precision == "int8" and detector.version.endswith("+int8")
    assert bool(warnings) == (report["share"] < quantize.TARGET)
    results = detector.detect([{"photo_id": "a", "uri": str(next(folder.iterdir()))}])
    assert results[0].failure is None
    with pytest.raises(ValueError, match="already int8"):
        quantize.quantize(int8, [str(p) for p in folder.iterdir()], tmp_path / "again.onnx", 3)


def test_a_fast_mode_model_below_target_or_without_a_report_is_named_in_the_run():
    low = Sidecar(precision="int8", agreement={"matched": 90, "boxes": 100, "share": 0.9, "photos": 8})
    assert "90/100 fp32 boxes (90.0%) on 8 held-out photos, below the 99% target" in quantize.warning(low, "m")
    assert "without an agreement report" in quantize.warning(Sidecar(precision="int8"), "m")
    assert quantize.warning(Sidecar(precision="int8", agreement={"share": 0.995}), "m") is None
    assert quantize.warning(Sidecar(), "m") is None
