"""The detector line-up: catalogue entries, the e2e and rtdetr output layouts (tiny ONNX models with planted
outputs), MDv6's architectures in their catalogue layouts, fetching by hash from a file:// address, the --speed
presets, and `cost optimize` on a planted table."""

from __future__ import annotations

import copy
import json
import os
import re

import cv2
import numpy as np
import pytest
import yaml
from conftest import ROOT, SAMPLE, odin

from wildlife import budget, costopt, detect, presets
from wildlife.detect import catalog, engine

PHOTO_WH = (1000, 730)  # 1000x730 -> letterboxed at 640: ratio 0.64, 640x467 padded to 640x480, 6 px on top


def _planted_onnx(path, rows, hw=None):
    """An ONNX model that outputs ``rows`` (its one output, per photo) whatever image it gets; ``hw``: the only
    input size it accepts (a model exported at a fixed size), else any."""
    import onnx  # noqa: PLC0415
    from onnx import TensorProto, helper, numpy_helper  # noqa: PLC0415

    rows = np.asarray(rows, np.float32)[None]
    dims = [1, 3, *hw] if hw else ["batch", 3, "height", "width"]
    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, dims)
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", *rows.shape[1:]])
    nodes = [helper.make_node("Shape", ["images"], ["shape"]),
             helper.make_node("Slice", ["shape", "zero", "one"], ["batch"]),
             helper.make_node("Concat", ["batch", "rest"], ["out_shape"], axis=0),
             helper.make_node("Expand", ["rows", "out_shape"], ["output"])]
    inits = [numpy_helper.from_array(rows, "rows"), numpy_helper.from_array(np.array([0], np.int64), "zero"),
             numpy_helper.from_array(np.array([1], np.int64), "one"),
             numpy_helper.from_array(np.array(rows.shape[1:], np.int64), "rest")]
    graph = helper.make_graph(nodes, "planted", [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # what every onnxruntime reads
    onnx.save(model, str(path))
    return path


def _photo(tmp_path):
    path = tmp_path / "photo.jpg"
    cv2.imwrite(str(path), np.full((PHOTO_WH[1], PHOTO_WH[0], 3), 90, np.uint8))
    return {"uri": str(path), "photo_id": "p", "width": PHOTO_WH[0], "height": PHOTO_WH[1]}


def _load(path, layout, input_size=640):
    path.with_suffix(".json").write_text(json.dumps({"layout": layout, "input_size": input_size, "stride": 32}))
    detector, warnings = detect.load(str(path))
    assert warnings == []
    return detector


def test_e2e_layout_takes_final_boxes_in_letterboxed_pixels_without_nms(tmp_path):
    rows = [[288, 182, 352, 310, 0.9, 0],   # an animal: 450..550 x 275..475 in the photo
            [290, 184, 354, 312, 0.8, 0],   # an overlapping animal: an end-to-end model's output is final, kept
            [288, 182, 352, 310, 0.5, 1],   # a person
            [10, 10, 20, 20, 0.001, 0]]     # below the output threshold
    detector = _load(_planted_onnx(tmp_path / "e2e.onnx", rows), "e2e")
    (res,) = detector.detect([_photo(tmp_path)])
    assert res.failure is None
    assert [(d.category, d.conf) for d in res.detections] == [("animal", 0.9), ("animal", 0.8), ("person", 0.5)]
    assert res.detections[0].bbox == (0.45, round(275 / 730, 4), 0.1, round(200 / 730, 4))


def test_rtdetr_layout_stretches_the_photo_and_maps_normalised_boxes_back(tmp_path):
    # (cx, cy, w, h) in 0..1 of the input, then animal/person/vehicle probabilities
    rows = [[0.5, 0.5, 0.1, 0.2, 0.9, 0.05, 0.0],
            [0.25, 0.75, 0.1, 0.1, 0.1, 0.7, 0.0],
            [0.5, 0.5, 0.5, 0.5, 0.001, 0.002, 0.0]]  # below the output threshold
    # the model takes only 640x640: a letterboxed 640x480 input would fail every photo
    detector = _load(_planted_onnx(tmp_path / "rtdetr.onnx", rows, hw=(640, 640)), "rtdetr")
    (res,) = detector.detect([_photo(tmp_path)])
    assert res.failure is None
    animal, person = res.detections
    assert (animal.category, animal.conf, animal.bbox) == ("animal", 0.9, (0.45, 0.4, 0.1, 0.2))
    assert (person.category, person.conf, person.bbox) == ("person", 0.7, (0.2, 0.7, 0.1, 0.1))


def test_a_model_whose_output_is_not_its_layout_is_refused_before_any_work(tmp_path):
    path = _planted_onnx(tmp_path / "wrong.onnx", [[1, 2, 3, 4, 0.5, 0, 0]])  # 7 columns: not e2e's 6
    path.with_suffix(".json").write_text(json.dumps({"layout": "e2e", "input_size": 640}))
    with pytest.raises(detect.DetectorUnavailable, match=r"layout e2e needs \(batch, boxes, 6\)"):
        detect.load(str(path))
    path.with_suffix(".json").write_text(json.dumps({"layout": "yolo-nas"}))
    with pytest.raises(detect.DetectorUnavailable, match="layout must be one of v5, v8, e2e, rtdetr"):
        detect.load(str(path))


def test_the_catalogue_records_each_models_source_licence_size_and_accuracy():
    assert {"md-v5a", "md-v5b", "mdv1000-redwood", "mdv1000-spruce"} <= set(catalog.KNOWN)
    for key, info in catalog.KNOWN.items():
        assert info["architecture"] and info["licence"] and info["input_size"] in (640, 1280), key
        value, metric = info["accuracy"]
        assert 0.5 < value < 1.1 and "[" in metric, key  # relative to MDv5a, with its source
        if info["format"] == "yolov5":  # through the safe loader, pinned by the publisher's MD5
            assert re.fullmatch(r"[0-9a-f]{32}", info["md5"]) and info["url"].endswith(info["file"]), key
        else:  # MDv6: ONNX in a layout the engine decodes, from a permissive-licence model
            assert info["layout"] in engine.LAYOUTS and info["file"] == f"{key}.onnx", key
    onnx = [i for i in catalog.KNOWN.values() if i["format"] == "onnx"]
    assert {key: i["layout"] for key, i in catalog.KNOWN.items() if i["format"] == "onnx"} == {
        "mdv6-apa-rtdetr-c": "rtdetr", "mdv6-apa-rtdetr-e": "rtdetr",
        "mdv6-mit-yolov9-c": "v8"}  # PytorchWildlife decodes per anchor and runs NMS outside the network
    assert all(i["licence"].startswith(("Apache-2.0", "MIT")) for i in onnx)
    assert catalog.KNOWN["mdv1000-spruce"]["md5"] == "1c9d1d2b3ba54931881471fdd508e6f2"  # known_models
    assert catalog.KNOWN["mdv1000-redwood"]["md5"] == "74474b3aec9cf1a990da38b37ddf9197"


def test_the_readme_model_and_preset_tables_are_the_catalogues():
    from conftest import ROOT  # noqa: PLC0415

    readme = (ROOT / "README.md").read_text()
    for key, info in catalog.KNOWN.items():
        row = next((line for line in readme.splitlines() if line.startswith(f"| `{key}` |")), "")
        assert row.startswith(f"| `{key}` | {info['architecture']} | {info['input_size']} |"), key
        assert f"{info['accuracy'][0]:.3f}" in row, key
    for name, preset in presets.PRESETS.items():
        assert f"| `{name}` | `{preset.model}`, {catalog.KNOWN[preset.model]['input_size']} px |" in readme


@pytest.mark.parametrize("key", list(catalog.KNOWN))
def test_every_catalogue_model_is_priced_locally_and_on_aws(key):
    prices = budget.load_prices()
    for target in ("local", "aws"):
        est = budget.estimate(1000, 10**9, target=target, detector=key, prices=prices)
        assert est.detector == catalog.KNOWN[key]["family"] and est.wall_time_s > 0


def test_fetch_an_onnx_model_by_its_sha256_from_a_file_url_then_run_it_by_name(tmp_path, monkeypatch):
    monkeypatch.setenv("ODIN_MODELS", str(tmp_path / "cache"))
    # v8: (4 + classes, boxes): one animal box (centre 320, 246, 64 x 128 in letterboxed pixels), one box below
    export = _planted_onnx(tmp_path / "my-export.onnx", [[320, 100], [246, 100], [64, 20], [128, 20], [0.9, 0.001],
                                                         [0.01, 0.0], [0.0, 0.0]])
    sha, _ = catalog.digests(export)
    key = "mdv6-mit-yolov9-c"
    with pytest.raises(ValueError, match=f"published as a PyTorch checkpoint only.*models fetch {key} --url"):
        catalog.download(key)  # no official ONNX, no hash to pin: says how
    with pytest.raises(ValueError, match="SHA-256 mismatch"):
        catalog.download(key, sha256="0" * 64, url=export.as_uri())
    assert list((tmp_path / "cache").iterdir()) == []  # nothing unverified is kept
    result = odin("models", "fetch", key, "--url", export.as_uri(), "--sha256", sha,
                  env={**os.environ, "ODIN_MODELS": str(tmp_path / "cache")})
    assert result.returncode == 0, result.stderr
    side = json.loads((tmp_path / "cache" / f"{key}.json").read_text())
    assert (side["layout"], side["input_size"], side["source_sha256"]) == ("v8", 640, sha)
    assert side["licence"].startswith("MIT")
    detector, _ = detect.load(key)
    (res,) = detector.detect([_photo(tmp_path)])
    assert [d.category for d in res.detections] == ["animal"] and detector.version == "MDV6-mit-yolov9-c"


@pytest.mark.parametrize("key", ["mdv6-mit-yolov9-c", "mdv6-apa-rtdetr-c"])
def test_an_mdv6_network_exported_in_its_catalogue_layout_runs_by_its_key_on_either_runtime(tmp_path, monkeypatch,
                                                                                          key):
    """A network of the model's architecture (a narrow random stand-in, tests/arch_*.py), exported to ONNX in
    the layout the catalogue gives it and cached under its key, loads and finds boxes inside the photo."""
    import photofactory as pf  # noqa: PLC0415
    import standins  # noqa: PLC0415 - torch, only here

    monkeypatch.setenv("ODIN_MODELS", str(tmp_path / "cache"))
    narrow = {"width": 0.125, "depth": 0.34} if key == "mdv6-mit-yolov9-c" else {"width": 0.125}
    standins.export(standins.build(key, photos=2, **narrow), tmp_path / "cache" / f"{key}.onnx", key)
    uri = pf.write_photo(tmp_path / "photo.jpg", pf.with_animal(pf.scene(1000, 730, seed=3), (0.3, 0.4, 0.2, 0.25)))
    for runtime in ("onnxruntime", "openvino"):
        monkeypatch.setenv("ODIN_ONNX_RUNTIME", runtime)
        detector, _ = detect.load(key)
        assert detector.backend.runtime == runtime
        (res,) = detector.detect([{"uri": str(uri), "photo_id": "p", "width": 1000, "height": 730}])
        assert res.failure is None and res.detections, runtime
        for d in res.detections:
            x, y, w, h = d.bbox
            assert min(x, y) >= 0 and min(w, h) > 0 and max(x + w, y + h) <= 1.0001, (runtime, d)


def test_fetch_spruce_checks_its_hash_and_exports_at_640(tmp_path, monkeypatch):
    from tinymodels import save_checkpoint  # noqa: PLC0415 - torch, only here

    from wildlife.detect import weights, yolo  # noqa: PLC0415

    monkeypatch.setenv("ODIN_MODELS", str(tmp_path / "cache"))
    source = tmp_path / "spruce.pt"
    save_checkpoint(dict(yolo.p5(3, 0.33, 0.125), names=["animal", "person", "vehicle"]), source)
    with pytest.raises(ValueError, match=r"MD5 mismatch.*expected 1c9d1d2b3ba54931881471fdd508e6f2"):
        weights.fetch("mdv1000-spruce", url=source.as_uri())
    sha, _ = catalog.digests(source)
    path = weights.fetch("mdv1000-spruce", sha256=sha, url=source.as_uri())
    assert path.name == "md_v1000.0.0-spruce.pt"
    side = json.loads((path.parent / "mdv1000-spruce.json").read_text())
    assert side["input_size"] == 640 and side["version"] == "v1000.0.0-spruce"
    assert side["thresholds"]["typical"] == 0.3  # MegaDetector's advice for the MDv1000 models


def test_a_preset_names_its_model_and_overrides_the_detector():
    assert presets.detector_of({"speed": "fast", "detector": "motion"}) == "mdv1000-spruce"
    assert presets.detector_of({"speed": None, "detector": "motion"}) == "motion"
    accurate, fast = catalog.KNOWN[presets.PRESETS["accurate"].model], catalog.KNOWN[presets.PRESETS["fast"].model]
    assert accurate["input_size"] == 1280 and accurate["accuracy"][0] == 1.0
    assert fast["input_size"] == 640 and fast["family"] != "megadetector"
    assert "mdv1000-spruce (YOLOv5s, 640 px" in presets.describe("fast") and "0.864 x MDv5a" in presets.describe("fast")


def test_run_with_a_preset_whose_weights_are_missing_stops_before_any_work(tmp_path):
    """Without --speed, the default --detector auto falls back to motion; the preset must not."""
    env = {**os.environ, "ODIN_MODELS": str(tmp_path / "empty")}
    out = tmp_path / "out"
    result = odin("run", "--input", str(SAMPLE / "photos"), "--output", str(out), "--budget", "5",
                  "--speed", "fast", env=env)
    assert result.returncode == 2, result.stderr
    assert "models fetch mdv1000-spruce" in result.stderr and "--detector motion" in result.stderr
    assert not out.exists()


def test_estimate_prints_the_time_of_each_preset(tmp_path):
    result = odin("estimate", "--input", str(SAMPLE / "photos"), "--budget", "5", "--target", "aws")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stderr.split())
    for name, preset in presets.PRESETS.items():
        assert f"{name}: {preset.model}" in text
    seconds = [float(s.replace(",", "")) for s in re.findall(r"([\d,]+) s, [\d.]+ DKK", text)]
    assert len(seconds) == 3 and seconds[0] >= seconds[2]  # accurate is no faster than fast


def _planted_prices():
    prices = copy.deepcopy(budget.load_prices())
    prices["instances"] = {  # a slow cheap CPU and a fast dear GPU
        "slow.cheap": {"kind": "cpu", "vcpus": 8, "on_demand": 0.003, "spot": 0.001,
                       "ms_per_photo": {"megadetector": 10_000, "motion": 1}},
        "fast.dear": {"kind": "gpu", "vcpus": 4, "on_demand": 3.0, "spot": 1.0,
                      "ms_per_photo": {"megadetector": 100, "motion": 1}},
    }
    prices["default_instance"] = "slow.cheap"
    return prices


def test_cost_optimize_picks_the_cheapest_option_within_budget_and_deadline():
    prices, photos = _planted_prices(), 10_000
    every = costopt.options(photos, 10**10, prices, budget_dkk=100, deadline_s=None, classifier="none")
    assert len(every) == 2 * 2 * len(presets.PRESETS)
    # 5 array children side by side (64 vCPUs hold 8 of slow.cheap): 10k photos x 10 s / 5 + start + Lambda
    slow = next(o for o in every if (o.instance_type, o.use_spot, o.preset) == ("slow.cheap", True, "accurate"))
    assert slow.estimate.rates["parallel_jobs"] == 5
    assert slow.estimate.wall_time_s == pytest.approx(240 + photos * 10 / 5 + photos * 0.003)
    best = costopt.cheapest(every)  # no deadline: the cheap instance, spot, the preset the stock image runs
    assert (best.instance_type, best.use_spot, best.preset) == ("slow.cheap", True, "accurate")
    fast = next(o for o in every if (o.instance_type, o.use_spot, o.preset) == ("slow.cheap", True, "fast"))
    assert fast.estimate.total_dkk < best.estimate.total_dkk and not fast.feasible  # cheaper, but not in the image
    assert not fast.in_stock_image and fast.within_budget and fast.within_deadline
    accurate = costopt.options(photos, 10**10, prices, 100, 2 * 3600, ("accurate",))
    best = costopt.cheapest(accurate)  # MDv5a on the slow CPU takes 5.6 h: only the GPU meets 2 h
    assert (best.instance_type, best.use_spot, best.preset) == ("fast.dear", True, "accurate")
    assert all(not o.within_deadline for o in accurate if o.instance_type == "slow.cheap")
    too_little = costopt.options(photos, 10**10, prices, best.estimate.total_dkk / 2, 2 * 3600, ("accurate",))
    assert costopt.cheapest(too_little) is None


def test_cost_optimize_prints_the_run_command_or_says_nothing_fits(tmp_path):
    prices = _planted_prices()
    prices["instances"]["slow.cheap"]["ms_per_photo"]["megadetector"] = 1_000_000  # 10 photos / 2 jobs: 1.4 h
    table = tmp_path / "prices.yaml"
    table.write_text(yaml.safe_dump(prices))
    args = ["cost", "optimize", "--input", str(SAMPLE / "photos"), "--prices", str(table), "--speed", "accurate"]
    result = odin(*args, "--budget", "10", "--deadline", "30m")
    assert result.returncode == 0, result.stderr
    command = result.stdout.strip()
    assert command.startswith("scripts/run.py run --target aws") and "--speed accurate" in command
    assert "--instance-type fast.dear --use-spot --max-job-duration 1800" in command
    assert "cheapest within the budget 10 DKK, deadline 1,800 s" in " ".join(result.stderr.split())
    refused = odin(*args, "--budget", "0.001", "--deadline", "2h")
    assert refused.returncode == 3 and "no option meets the budget 0.001 DKK" in " ".join(refused.stderr.split())
    assert refused.stdout == ""


def test_the_stock_image_model_is_what_the_aws_images_bake_in():
    """Regression: cost optimize recommended --speed fast, whose model the stock AWS image does not hold: the
    recommended run would fail in Batch. The images' ARG MODEL default and the catalogue's fact are one."""
    for dockerfile in ("images/detector/Dockerfile", "images/detector-cpu/Dockerfile"):
        defaults = set(re.findall(r"^ARG MODEL=(\S+)$", (ROOT / dockerfile).read_text(), re.M))
        assert defaults == {catalog.STOCK_IMAGE_MODEL}, dockerfile

