"""The CPU runtimes: OpenVINO gives onnxruntime's boxes, which runtime a model gets, and the bf16 mode."""

from __future__ import annotations

import json

import photofactory as pf
import pytest
from click.testing import CliRunner
from tinymodels import calibrated

from wildlife import detect
from wildlife.cli.main import cli
from wildlife.detect import DetectorUnavailable, backends, quantize, weights, yolo
from wildlife.detect.engine import Engine, Sidecar

TINY = dict(yolo.p5(3, 0.33, 0.125), names=["animal", "person", "vehicle"])  # ~0.5 M parameters
openvino = pytest.importorskip("openvino")


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    """A tiny YOLOv5 with objectness spread as a trained model's is (distinct scores, so NMS has no ties to
    break differently), exported to ONNX at 640 with its sidecar."""
    path = tmp_path_factory.mktemp("model") / "tiny.onnx"
    return weights.export_onnx(weights.Loaded(calibrated(TINY, size=640), "tiny", "1", ""), path, imgsz=640)


@pytest.fixture(scope="module")
def card(tmp_path_factory):
    """Generated camera-trap-like JPEGs of the kind ``calibrated`` was calibrated on: a handful of clear boxes."""
    folder = tmp_path_factory.mktemp("card")
    for i in range(4):
        img = pf.with_animal(pf.scene(1024, 768, seed=i), (0.2 + 0.1 * i, 0.4, 0.2, 0.25))
        pf.write_photo(folder / f"g{i}.jpg", img)
    return folder


def photos(card, n: int) -> list[dict]:
    return [{"photo_id": p.name, "uri": str(p)} for p in sorted(card.glob("*.jpg"))[:n]]


def test_openvino_gives_onnxruntime_boxes_on_a_tiny_yolo(tiny_onnx, card):
    side = Sidecar.read(tiny_onnx.with_suffix(".json"))
    batch = photos(card, 4)
    want = Engine(backends.OnnxBackend(tiny_onnx), side).detect(batch)
    got = Engine(backends.OpenVinoBackend(tiny_onnx), side).detect(batch)
    assert all(r.detections for r in want) and sum(len(r.detections) for r in want) >= 8
    for a, b in zip(want, got, strict=True):
        assert a.failure is None and b.failure is None
        assert [d.category for d in a.detections] == [d.category for d in b.detections]
        for da, db in zip(a.detections, b.detections, strict=True):
            assert da.conf == pytest.approx(db.conf, abs=2e-4)
            assert da.bbox == pytest.approx(db.bbox, abs=2e-4)  # a tenth of a pixel at 640 px


def test_openvino_fp32_is_not_left_to_its_default_precision(tiny_onnx):
    # on a CPU with bf16 instructions OpenVINO's default is bf16: fp32 boxes would silently change
    backend = backends.OpenVinoBackend(tiny_onnx)
    compiled = backend.compiled
    assert str(compiled.get_property("INFERENCE_PRECISION_HINT")) in ("<Type: 'float32'>", "f32")
    assert compiled.get_property("INFERENCE_NUM_THREADS") == backends.threads()
    assert backend.photos_at_once == len(backend.requests) >= 1


def test_photos_run_at_once_give_the_boxes_they_give_one_by_one(tiny_onnx, card):
    side = Sidecar.read(tiny_onnx.with_suffix(".json"))
    backend = backends.OpenVinoBackend(tiny_onnx)
    batch = photos(card, 3)  # a full batch of photos_at_once and a partial one
    one_by_one = Engine(backend, side, batch_size=1).detect(batch)
    together = Engine(backend, side).detect(batch)  # photos_at_once per inference call, one per stream
    assert [r.detections for r in one_by_one] == [r.detections for r in together]


@pytest.mark.parametrize(("precision", "openvino_installed", "cuda", "override", "want"), [
    ("fp32", True, False, None, "openvino"),       # the fast CPU path
    ("fp32", False, False, None, "onnxruntime"),   # a slim install
    ("fp32", True, True, None, "onnxruntime"),     # a GPU: onnxruntime's CUDA provider
    ("int8", True, False, None, "onnxruntime"),    # its agreement was measured there
    ("bf16", True, False, None, "openvino"),
    ("bf16", True, False, "onnxruntime", "openvino"),  # only OpenVINO runs bf16: the override cannot apply
    ("fp32", True, False, "onnxruntime", "onnxruntime"),
    ("int8", True, False, "openvino", "openvino"),
])
def test_which_runtime_a_model_gets(precision, openvino_installed, cuda, override, want):
    assert backends.runtime_for(precision, openvino_installed, cuda, override) == want


def test_a_runtime_that_cannot_be_had_is_refused_with_what_to_do():
    with pytest.raises(DetectorUnavailable, match="OpenVINO is not installed") as info:
        backends.runtime_for("fp32", False, False, "openvino")
    assert "unset ODIN_ONNX_RUNTIME" in info.value.hint
    with pytest.raises(DetectorUnavailable, match="choose onnxruntime or openvino"):
        backends.runtime_for("fp32", True, False, "tensorrt")
    with pytest.raises(DetectorUnavailable, match="unknown model precision 'fp8'"):
        backends.runtime_for("fp8", True, False)


def test_an_fp32_onnx_model_runs_on_openvino_unless_told_otherwise(tiny_onnx, monkeypatch):
    detector, _ = detect.load(str(tiny_onnx))
    assert detector.backend.runtime == "openvino"
    monkeypatch.setenv("ODIN_ONNX_RUNTIME", "onnxruntime")
    detector, _ = detect.load(str(tiny_onnx))
    assert detector.backend.runtime == "onnxruntime"


def test_bf16_is_refused_clearly_on_a_cpu_without_it(tiny_onnx, card, tmp_path, monkeypatch):
    monkeypatch.setattr(backends, "bf16_supported", lambda: False)
    out = tmp_path / "tiny.bf16.onnx"
    result = CliRunner().invoke(cli, ["models", "quantize", str(tiny_onnx), "--photos", str(card),
                                      "--precision", "bf16", "--output", str(out)])
    assert result.exit_code == 2
    assert "bf16 mode needs a CPU with bf16 instructions" in result.output and "fp32 model" in result.output
    assert not out.exists()
    # a bf16 model made elsewhere is refused before any work, not run in slow emulation
    out.write_bytes(tiny_onnx.read_bytes())
    side = json.loads(tiny_onnx.with_suffix(".json").read_text())
    out.with_suffix(".json").write_text(json.dumps(dict(side, precision="bf16")))
    with pytest.raises(DetectorUnavailable, match="bf16 instructions"):
        detect.load(str(out))


@pytest.mark.skipif(not backends.bf16_supported(), reason="this CPU has no bf16 instructions")
def test_bf16_mode_carries_its_measured_agreement(tiny_onnx, card, tmp_path):
    out = tmp_path / "tiny.bf16.onnx"
    result = CliRunner().invoke(cli, ["models", "quantize", str(tiny_onnx), "--photos", str(card), "--check", "3",
                                      "--precision", "bf16", "--output", str(out)])
    assert result.exit_code == 0, result.output
    side = json.loads(out.with_suffix(".json").read_text())
    report = side["agreement"]
    assert f"bf16 agreement {report['matched']}/{report['boxes']} fp32 boxes" in " ".join(result.output.split())
    assert side["precision"] == "bf16" and side["version"] == "1+bf16" and side["source_model"] == "tiny.onnx"
    assert report["photos"] == 3 and report["calibration_photos"] == 0
    assert report["boxes"] > 0 and 0 <= report["matched"] <= report["boxes"]
    detector, warnings = detect.load(str(out))
    assert (detector.backend.runtime, detector.backend.precision) == ("openvino", "bf16")
    assert detector.version == "1+bf16" and bool(warnings) == (report["share"] < quantize.TARGET)
    assert all(r.failure is None for r in detector.detect(photos(card, 2)))


def test_megadetector_runs_its_onnx_export_where_openvino_is(tmp_path, monkeypatch):
    from wildlife.detect import catalog  # noqa: PLC0415

    monkeypatch.setenv("ODIN_MODELS", str(tmp_path))
    (tmp_path / catalog.KNOWN["md-v5a"]["file"]).write_bytes(b"pt")  # both, as `models fetch` leaves them
    (tmp_path / "md-v5a.onnx").write_bytes(b"onnx")
    assert detect._megadetector_path("md-v5a") == tmp_path / "md-v5a.onnx"
    real = detect._has
    monkeypatch.setattr(detect, "_has", lambda module: module != "openvino" and real(module))
    assert detect._megadetector_path("md-v5a") == tmp_path / catalog.KNOWN["md-v5a"]["file"]  # without: as before
