"""Stage 1's species classifier: the sidecar, the crops, batching across photos, the choice of model, the
checks before any work, and the Stage 1 shard end to end through the CLI."""

from __future__ import annotations

import json
import os
import shutil

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import SAMPLE, odin
from tinymodels import COLOUR_LABELS, save_classifier, save_planted_detector

from wildlife import detect, stage1
from wildlife.classify import RULES_FILE, Label, sidecar
from wildlife.classify import runtime as classifiers
from wildlife.detect import decode
from wildlife.detect.motion import MotionDetector

FOX, BADGER, DEER, ANIMAL = COLOUR_LABELS
RED, GREEN, BLUE = (0, 0, 220), (0, 200, 0), (230, 0, 0)  # BGR, as OpenCV writes them
# a fox (red) on the left and a badger (green) on the right of an 800x600 photo: 640x480 letterboxed (ratio
# 0.8), padded to 640x512 (16 px on top), so the planted boxes are the regions' pixels times 0.8, 16 px lower
LEFT, RIGHT = (50, 100, 350, 500), (450, 100, 750, 500)  # x0, y0, x1, y1 in photo pixels
BOXES = [[160, 256, 240, 320, 0.9, 1, 0, 0], [480, 256, 240, 320, 0.8, 1, 0, 0]]


def _photo(path, left=RED, right=GREEN, scale=1):
    img = np.full((600, 800, 3), 128, np.uint8)
    for (x0, y0, x1, y1), colour in ((LEFT, left), (RIGHT, right)):
        img[y0:y1, x0:x1] = colour
    if scale != 1:
        img = cv2.resize(img, (800 * scale, 600 * scale), interpolation=cv2.INTER_NEAREST)
    cv2.imwrite(str(path), img)
    return {"uri": str(path), "photo_id": path.stem}


@pytest.fixture
def detector(tmp_path):
    return save_planted_detector(tmp_path / "planted.onnx", BOXES)


def _engine(detector_path, classifier_path):
    engine, _ = detect.load(str(detector_path))
    engine.classifier, _ = classifiers.load(str(classifier_path))
    return engine


def _top(result):
    return [d.classifications[0][0] if d.classifications else None for d in result.detections]


@pytest.mark.parametrize("layout,mean,std,output,resize", [
    ("nhwc", (0, 0, 0), (1, 1, 1), "logits", "stretch"),                  # SpeciesNet's
    ("nchw", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "probabilities", "letterbox"),
    ("nchw", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "logits", "stretch"),  # ImageNet's (DeepFaune)
])
def test_a_fox_and_a_badger_in_one_photo_get_both(tmp_path, detector, layout, mean, std, output, resize):
    """Each box is cut from the photo: two regions of other colours give two labels. A photo large enough to be
    decoded at 1/2 size inside the JPEG decoder gives the same: its boxes are normalised."""
    clf = save_classifier(tmp_path / "clf", layout, mean=mean, std=std, output=output, extra={"resize": resize})
    engine = _engine(detector, clf)
    small, large = _photo(tmp_path / "small.jpg"), _photo(tmp_path / "large.jpg", scale=2)
    assert engine.detect([small])[0].detections[0].bbox == (0.0625, round(100 / 600, 4), 0.375, round(400 / 600, 4))
    for result in engine.detect([small, large]):
        assert result.failure is None and result.note is None
        assert _top(result) == [FOX, BADGER]
        for d in result.detections:
            assert len(d.classifications) == 4  # TOP_K (5) of a 4-label model
            scores = [s for _, s in d.classifications]
            assert scores == sorted(scores, reverse=True) and sum(scores) == pytest.approx(1, abs=1e-5)
            assert d.classifications[0][1] > (0.5 if resize == "letterbox" else 0.95)  # letterbox: 1/4 black


def test_crops_are_batched_across_photos_with_the_labels_of_batch_1(tmp_path, detector, monkeypatch):
    clf = save_classifier(tmp_path / "clf")
    colours = [(RED, GREEN), (GREEN, BLUE), (BLUE, RED), ((128, 128, 128), RED), (GREEN, GREEN)]
    photos = [_photo(tmp_path / f"p{i}.jpg", a, b) for i, (a, b) in enumerate(colours)]
    engine = _engine(detector, clf)
    decoded = []
    read_image = decode.read_image
    monkeypatch.setattr(decode, "read_image", lambda p, flag: decoded.append(p["uri"]) or read_image(p, flag))
    calls = []
    real = engine.classifier.classify
    engine.classifier.classify = lambda crops: calls.append(len(crops)) or real(crops)
    engine.classifier.batch_size = 1
    one = engine.detect(photos)
    assert calls == [1] * 10
    calls.clear()
    engine.classifier.batch_size = 4
    batched = engine.detect(photos)
    assert calls == [4, 4, 2]  # crops of several photos in one batch; the rest at the end
    assert sorted(decoded) == sorted([p["uri"] for p in photos] * 2)  # each photo decoded once per pass, not per box
    assert [_top(r) for r in batched] == [_top(r) for r in one] == [
        [FOX, BADGER], [BADGER, DEER], [DEER, FOX], [ANIMAL, FOX], [BADGER, BADGER]]
    for a, b in zip(batched, one, strict=True):
        for da, db in zip(a.detections, b.detections, strict=True):
            assert [s for _, s in da.classifications] == pytest.approx([s for _, s in db.classifications], abs=1e-5)


def test_a_model_exported_for_one_batch_size_gets_batches_of_that_size(tmp_path, detector):
    engine = _engine(detector, save_classifier(tmp_path / "clf", "nchw", batch=3))
    assert engine.classifier.batch_size == 3
    photos = [_photo(tmp_path / f"p{i}.jpg", a, b) for i, (a, b) in enumerate([(RED, GREEN), (BLUE, RED)])]
    assert [_top(r) for r in engine.detect(photos)] == [[FOX, BADGER], [DEER, FOX]]  # 3 crops, then 1 padded to 3


def test_only_animal_boxes_at_or_above_the_sidecars_threshold_are_classified(tmp_path):
    rows = [[160, 256, 240, 320, 0.9, 1, 0, 0],       # animal 0.9
            [480, 256, 240, 320, 0.05, 1, 0, 0],      # animal 0.05: below min_detection_conf 0.1
            [480, 100, 100, 100, 0.9, 0, 1, 0]]       # person 0.9
    det = save_planted_detector(tmp_path / "three.onnx", rows)
    engine = _engine(det, save_classifier(tmp_path / "clf"))
    (result,) = engine.detect([_photo(tmp_path / "p.jpg")])
    by_category = {(d.category, d.conf): d.classifications for d in result.detections}
    assert by_category[("animal", 0.9)][0][0] == FOX
    assert by_category[("animal", 0.05)] is None and by_category[("person", 0.9)] is None


def test_a_failing_crop_leaves_its_box_unclassified_with_a_note_never_fails_the_photo(tmp_path, detector):
    engine = _engine(detector, save_classifier(tmp_path / "clf"))
    real = engine.classifier.classify

    def refuses_green(crops):
        if any(c[..., 1].mean() > 150 for c in crops):
            raise RuntimeError("planted failure")
        return real(crops)

    engine.classifier.classify = refuses_green
    engine.classifier.batch_size = 4
    results = engine.detect([_photo(tmp_path / "a.jpg"), _photo(tmp_path / "b.jpg", BLUE, RED)])
    assert [_top(r) for r in results] == [[FOX, None], [DEER, FOX]]
    assert results[0].failure is None and len(results[0].detections) == 2
    assert results[0].note == "species classifier failed on a box: RuntimeError: planted failure"
    assert results[1].note is None


def test_sidecar_defaults_are_speciesnets_and_labels_parse(tmp_path):
    clf = save_classifier(tmp_path / "clf", labels_in_file=False)
    data = json.loads(clf.with_suffix(".json").read_text())
    for key in ("input_size", "layout", "resize", "scale", "mean", "std", "output", "crop"):
        del data[key]
    clf.with_suffix(".json").write_text(json.dumps(data))
    side = sidecar.read(clf.with_suffix(".json"))
    assert (side.input_size, side.layout, side.resize, side.scale, side.output) == (480, "nhwc", "stretch", 255.0,
                                                                                    "logits")
    assert side.labels[0] == FOX and Label.parse(side.labels[0]).scientific_name == "Vulpes vulpes"


@pytest.mark.parametrize("change,message", [
    ({"kind": "detector"}, 'needs "kind": "classifier"'),
    ({"layout": "hwc"}, "layout must be one of nhwc, nchw"),
    ({"labels": "missing.txt"}, "labels file"),
    ({"labels": ["just a name"]}, "label 1: a label has 7 fields"),
    ({"geofence": "nowhere.json"}, "geofence file"),
    ({"std": [1, 0, 1]}, "std and scale none zero"),
    ({"input_size": 64}, r"its sidecar \(layout nhwc, input_size 64\)"),
])
def test_a_bad_sidecar_is_refused_with_what_is_wrong(tmp_path, change, message):
    clf = save_classifier(tmp_path / "clf")
    side = clf.with_suffix(".json")
    side.write_text(json.dumps(dict(json.loads(side.read_text()), **change)))
    with pytest.raises(classifiers.ClassifierUnavailable, match=message):
        classifiers.load(str(clf))


def test_wrong_label_count_and_broken_model_are_refused(tmp_path):
    clf = save_classifier(tmp_path / "clf", n_labels=5)
    with pytest.raises(classifiers.ClassifierUnavailable, match=r"sidecar lists 5 labels, so \(1, 5\) was expected"):
        classifiers.load(str(clf))
    broken = tmp_path / "broken" / "colours.onnx"
    shutil.copytree(tmp_path / "clf", broken.parent)
    broken.write_bytes(b"\x08\x07garbage")
    with pytest.raises(classifiers.ClassifierUnavailable, match="not a valid ONNX model"):
        classifiers.load(str(broken))
    broken.with_suffix(".json").unlink()
    with pytest.raises(classifiers.ClassifierUnavailable, match=r"sidecar colours\.json is missing"):
        classifiers.load(str(broken))


def test_choice_of_classifier(tmp_path, monkeypatch):
    monkeypatch.setenv("ODIN_MODELS", str(tmp_path / "cache"))
    assert classifiers.load("none") == (None, ["no species model ran: --classifier none (detections only)"])
    clf, warnings = classifiers.load("auto")
    assert clf is None and warnings[0].startswith("no species model ran: SpeciesNet is not in the model cache")
    assert "models fetch speciesnet" in warnings[0]
    with pytest.raises(classifiers.ClassifierUnavailable, match="SpeciesNet is not in the model cache") as exc:
        classifiers.load("speciesnet")
    assert "models fetch speciesnet" in exc.value.hint
    with pytest.raises(classifiers.ClassifierUnavailable, match="unknown classifier 'speciesnet-v5'"):
        classifiers.load("speciesnet-v5")
    save_classifier(tmp_path / "cache", name="speciesnet", n_labels=5)  # a damaged cache: auto says so and goes on
    clf, warnings = classifiers.load("auto")
    assert clf is None and warnings[0].startswith("no species model ran: ") and "sidecar lists 5 labels" in warnings[0]
    with pytest.raises(classifiers.ClassifierUnavailable, match="sidecar lists 5 labels"):
        classifiers.load("speciesnet")
    save_classifier(tmp_path / "cache", name="speciesnet")  # as `models fetch speciesnet` caches it
    for spec in ("auto", "speciesnet"):
        clf, warnings = classifiers.load(spec)
        assert (clf.name, clf.version, warnings) == ("speciesnet", "test-1", [])


def test_check_refuses_a_bad_file_once_and_notices_a_fix(tmp_path):
    clf = save_classifier(tmp_path / "clf", n_labels=5)
    with pytest.raises(classifiers.ClassifierUnavailable):
        classifiers.check(str(clf))
    save_classifier(tmp_path / "clf")  # fixed: the sidecar changed, so it is checked again
    classifiers.check(str(clf))
    classifiers.check("none")


def test_motion_baseline_runs_no_classifier_and_says_so(tmp_path):
    warnings = []
    assert stage1._attach_classifier(MotionDetector(), str(save_classifier(tmp_path / "clf")), warnings) is None
    assert warnings == ["no species model ran: the odin-motion-baseline detector's boxes are not classified "
                        "(--detector megadetector gives animal boxes a species model can name)"]


def test_shards_written_before_classification_still_read(tmp_path):
    old_type = pa.struct([("category", pa.string()), ("conf", pa.float64()), ("bbox", pa.list_(pa.float64()))])
    old = pa.table({"photo_id": ["a"], "sequence_id": ["s"],
                    "detections": pa.array([[{"category": "animal", "conf": 0.9, "bbox": [0, 0, 1, 1]}]],
                                           pa.list_(old_type)),
                    "failure": pa.array([None], pa.string()), "note": pa.array([None], pa.string()),
                    "assessed": [True]})
    pq.write_table(old, tmp_path / "shard-00000.parquet")
    (tmp_path / "shard-00000.json").write_text(json.dumps({"shard": 0, "of": 1, "resumed": 0, "warnings": [],
                                                           "detector": {"name": "md", "version": "v5a"}}))
    (det,) = stage1.read_results(str(tmp_path)).column("detections").to_pylist()[0]
    assert det["classifications"] is None
    summary = stage1.collect(str(tmp_path), "auto")
    assert summary["classifier"] is None
    assert "no species model ran: Stage 1 ran without a species classifier" in summary["warnings"]


def _sample(tmp_path, n=4):
    photos = tmp_path / "photos" / "62c200a9"
    photos.mkdir(parents=True)
    for p in sorted((SAMPLE / "photos" / "62c200a9").glob("*.JPG"))[:n]:
        (photos / p.name).write_bytes(p.read_bytes())
    return photos.parent


def _shard(out):
    stage1_folder = out / "_run" / "stage1"
    return stage1_folder, pq.read_table(stage1_folder / "shard-00000.parquet").to_pylist()


def test_run_with_a_user_supplied_onnx_classifier_end_to_end(tmp_path):
    # a 2048x1440 sample photo: 640x450 letterboxed, padded to 640x512 (31 px on top); one animal box
    det = save_planted_detector(tmp_path / "planted.onnx", [[320, 256, 200, 150, 0.9, 1, 0, 0],
                                                            [100, 100, 50, 50, 0.8, 0, 1, 0]])
    clf = save_classifier(tmp_path / "models", "nchw", mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    out = tmp_path / "out"
    result = odin("run", "--input", str(_sample(tmp_path)), "--output", str(out), "--budget", "25",
                  "--detector", str(det), "--classifier", str(clf), "--deployments", str(SAMPLE / "deployments.csv"))
    assert result.returncode == 0, result.stderr
    folder, rows = _shard(out)
    assert len(rows) == 4
    for row in rows:
        animal, person = row["detections"]
        assert animal["category"] == "animal" and person["classifications"] is None
        labels = [c["label"] for c in animal["classifications"]]
        assert sorted(labels) == sorted(COLOUR_LABELS)  # every label of the 4-label model, best first
        scores = [c["score"] for c in animal["classifications"]]
        assert scores == sorted(scores, reverse=True)
    assert json.loads((folder / RULES_FILE).read_text()) == stage1.read_rules(str(folder)) == {
        "name": "colours", "version": "test-1", "labels": COLOUR_LABELS, "geofence": None}
    assert json.loads((folder / "shard-00000.json").read_text())["classifier"] == {"name": "colours",
                                                                                  "version": "test-1"}
    report = json.loads((out / "run_report.json").read_text())
    assert not any("no species model ran" in w for w in report["warnings"])
    assert report["stages"]["Stage1Detect"]["classifier"] == {"name": "colours", "version": "test-1"}

    none = tmp_path / "none"
    result = odin("run", "--input", str(_sample(tmp_path / "again")), "--output", str(none), "--budget", "25",
                  "--detector", str(det), "--classifier", "none")
    assert result.returncode == 0, result.stderr
    folder, rows = _shard(none)
    assert all(d["classifications"] is None for r in rows for d in r["detections"])
    assert not (folder / RULES_FILE).exists() and stage1.read_rules(str(folder)) is None
    report = json.loads((none / "run_report.json").read_text())
    assert "no species model ran: --classifier none (detections only)" in report["warnings"]


def test_run_without_a_species_model_completes_and_says_so(tmp_path):
    det = save_planted_detector(tmp_path / "planted.onnx", [[320, 256, 200, 150, 0.9, 1, 0, 0]])
    out = tmp_path / "out"
    result = odin("run", "--input", str(_sample(tmp_path, 2)), "--output", str(out), "--budget", "25",
                  "--detector", str(det))  # --classifier auto, and the test's model cache is empty
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "run_report.json").read_text())
    (line,) = [w for w in report["warnings"] if w.startswith("no species model ran")]
    assert "SpeciesNet is not in the model cache" in line and "no species model ran" in result.stdout + result.stderr
    assert report["stages"]["Stage1Detect"]["classifier"] is None


@pytest.mark.parametrize("broken", ["garbage", "labels"])
def test_a_broken_classifier_is_exit_2_before_any_work(tmp_path, broken):
    clf = save_classifier(tmp_path / "clf", n_labels=5 if broken == "labels" else None)
    if broken == "garbage":
        clf.write_bytes(b"not a model")
    out = tmp_path / "out"
    result = odin("run", "--input", str(SAMPLE / "photos"), "--output", str(out), "--budget", "25",
                  "--detector", "motion", "--classifier", str(clf))
    assert result.returncode == 2, result.stderr
    assert ("not a valid ONNX model" if broken == "garbage" else "sidecar lists 5 labels") in result.stderr
    assert not out.exists()


def test_the_batch_container_takes_the_classifier(tmp_path, detector, capsys):
    from runtimes import batch  # noqa: PLC0415

    clf = save_classifier(tmp_path / "clf", n_labels=5)
    code = batch.main(["--input", str(tmp_path / "media.parquet"), "--output", str(tmp_path / "stage1"),
                       "--detector", str(detector), "--classifier", str(clf)])
    assert code == 2 and "sidecar lists 5 labels" in capsys.readouterr().err


def test_guard_budget_refuses_a_broken_classifier_before_listing_the_input(tmp_path):
    from wildlife import stages  # noqa: PLC0415

    clf = save_classifier(tmp_path / "clf", n_labels=3)
    state = {"params": {"detector": "motion", "classifier": str(clf), "target": "local",
                        "input_uri": str(tmp_path / "nowhere"), "output_uri": str(tmp_path / "out")}}
    with pytest.raises(classifiers.ClassifierUnavailable, match="sidecar lists 3 labels"):
        stages.guard_budget(state, stages.Context())
    assert not (tmp_path / "out").exists()


def _speciesnet_crop(rgb: np.ndarray, bbox, size: int = 480) -> np.ndarray:
    """SpeciesNet's published preprocessing (google/cameratrapai, speciesnet/classifier.py ``preprocess``) in
    the torch operations torchvision runs for it: ``pil_to_tensor`` + ``convert_image_dtype`` (/255), ``F.crop``
    at truncated pixel edges, ``F.resize`` to 480x480 with ``antialias=False`` (bilinear, half-pixel centres),
    ``convert_image_dtype`` back to uint8 (x * 255.999, truncated)."""
    import torch  # noqa: PLC0415

    h, w = rgb.shape[:2]
    x, y, bw, bh = bbox
    t = torch.from_numpy(rgb).permute(2, 0, 1).float() / 255
    t = t[:, int(y * h):int(y * h) + int(bh * h), int(x * w):int(x * w) + int(bw * w)]
    t = torch.nn.functional.interpolate(t[None], size=[size, size], mode="bilinear", align_corners=False,
                                        antialias=False)[0]
    return (t * (255 + 1 - 1e-3)).to(torch.uint8).permute(1, 2, 0).numpy()


def test_crops_match_speciesnets_preprocessing(tmp_path):
    clf, _ = classifiers.load(str(save_classifier(tmp_path / "clf", size=480)))
    bgr = cv2.imread(str(sorted((SAMPLE / "photos" / "62c200a9").glob("*.JPG"))[0]))
    for bbox in [(0.1, 0.2, 0.3, 0.4), (0.5, 0.5, 0.05, 0.08), (0.0, 0.0, 1.0, 1.0), (0.33, 0.12, 0.6, 0.21)]:
        ours = clf.crop(bgr, bbox).astype(int)  # RGB
        reference = _speciesnet_crop(np.ascontiguousarray(bgr[..., ::-1]), bbox).astype(int)
        assert ours.shape == reference.shape == (480, 480, 3)
        assert np.abs(ours - reference).max() <= 1 and (ours == reference).mean() >= 0.999, bbox


def test_the_geofence_is_handed_to_stage_2_as_read(tmp_path):
    fence = {"vulpes;vulpes": {"allow": {"DNK": []}}}
    (tmp_path / "clf").mkdir()
    (tmp_path / "clf" / "fence.json").write_text(json.dumps(fence))
    clf, _ = classifiers.load(str(save_classifier(tmp_path / "clf", extra={"geofence": "fence.json"})))
    stage1.write_rules(str(tmp_path / "stage1"), clf)
    assert stage1.read_rules(str(tmp_path / "stage1")) == {"name": "colours", "version": "test-1",
                                                           "labels": COLOUR_LABELS, "geofence": fence}
    stage1.write_rules(str(tmp_path / "stage1"), None)  # a later run without a classifier leaves none behind
    assert stage1.read_rules(str(tmp_path / "stage1")) is None


def test_a_classifier_file_on_this_machine_is_refused_for_aws_before_anything_is_uploaded(tmp_path):
    """Regression: a local ``--classifier PATH.onnx`` went to the AWS execution input, where the detector image
    cannot see the file; Stage 1 would fail there after the upload and the wait for a GPU."""
    model = tmp_path / "mine.onnx"
    model.write_bytes(b"not read: refused before")
    result = odin("run", "--target", "aws", "--input", str(SAMPLE / "photos"), "--output", "s3://nowhere/out",
                  "--budget", "5", "--classifier", str(model))
    assert result.returncode == 2, result.stderr
    assert "cannot run on aws" in result.stderr and "--classifier auto or speciesnet" in result.stderr


@pytest.mark.parametrize("detector", ["motion", "auto"])
def test_a_classifier_asked_for_with_the_motion_baseline_is_refused_before_any_work(tmp_path, detector):
    """Regression: `--classifier mine.onnx` without MegaDetector weights ran the motion baseline, classified
    nothing and said so only among the warnings at the end: the species columns of the whole run were empty."""
    clf = save_classifier(tmp_path / "clf")
    out = tmp_path / "out"
    result = odin("run", "--input", str(SAMPLE / "photos"), "--output", str(out), "--budget", "25",
                  "--detector", detector, "--classifier", str(clf),
                  env=dict(os.environ, ODIN_MODELS=str(tmp_path / "empty")))
    assert result.returncode == 2, result.stderr
    assert "the detector is the motion baseline" in result.stderr and "models fetch md-v5a" in result.stderr
    assert not out.exists()
