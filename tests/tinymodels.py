"""Random-weight YOLOv5 models saved the way MegaDetector's checkpoints are: pickled training checkpoints
whose classes live in YOLOv5's ``models.yolo`` / ``models.common`` modules, weights in fp16.

The classes are stand-ins made on the spot (subclasses of ours, renamed into those modules) and removed
from ``sys.modules`` after saving, so loading proves that nothing from YOLOv5 is needed or imported.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import torch

from wildlife.detect import yolo

_NAMES = {"Conv": "models.common", "Bottleneck": "models.common", "C3": "models.common", "SPPF": "models.common",
          "Concat": "models.common", "Detect": "models.yolo", "YoloModel": "models.yolo"}


def save_checkpoint(cfg: dict, path: Path, seed: int = 0) -> yolo.YoloModel:
    """Build a random model from ``cfg``, save it in MegaDetector's layout; returns the float model as saved."""
    torch.manual_seed(seed)
    model = yolo.YoloModel(cfg).eval()
    with torch.no_grad():  # non-trivial batch-norm statistics, so fusing is really exercised
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    pkg = types.ModuleType("models")
    pkg.__path__ = []
    mods = {"models": pkg, "models.common": types.ModuleType("models.common"),
            "models.yolo": types.ModuleType("models.yolo")}
    sys.modules.update(mods)
    try:
        stand_ins = {}
        for base_name, module_name in _NAMES.items():
            base = getattr(yolo, base_name)
            name = "Model" if base_name == "YoloModel" else base_name
            cls = type(name, (base,), {"__module__": module_name, "__qualname__": name})
            setattr(mods[module_name], name, cls)
            stand_ins[base] = cls
        saved = yolo.YoloModel(cfg).eval()
        saved.load_state_dict(model.state_dict())
        for m in saved.modules():
            if type(m) in stand_ins:
                m.__class__ = stand_ins[type(m)]
        saved.yaml = saved.cfg
        del saved.cfg
        torch.save({"epoch": -1, "best_fitness": None, "model": saved.half(), "ema": None, "updates": None,
                    "optimizer": None, "date": "2022-01-01"}, path)
    finally:
        for name in mods:
            sys.modules.pop(name, None)
    # what the file holds, in float: the reference for exactness checks
    model.load_state_dict({k: v.half().float() for k, v in model.state_dict().items()})
    return model


def save_onnx(path: Path, kind: str) -> Path:
    """A tiny valid ONNX model that cannot work as a YOLO detector, of a ``kind``:

    ``wrong-output``: any image in, one score per channel out, (batch, 3): not YOLO's (batch, boxes, 5 + nc).
    ``fixed-size``: takes only (1, 3, 128, 128) and gives YOLO-shaped zeros for it, as a model exported at a
    fixed size does: it passes a check at its own size and fails on every real photo.
    """
    import onnx  # noqa: PLC0415
    from onnx import TensorProto, helper  # noqa: PLC0415

    if kind == "wrong-output":
        x = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, "height", "width"])
        y = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 3])
        nodes = [helper.make_node("ReduceMean", ["images"], ["output"], axes=[2, 3], keepdims=0)]
        inits = []
    elif kind == "fixed-size":
        x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 128, 128])
        y = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 6144, 8])
        shape = helper.make_tensor("shape", TensorProto.INT64, [3], [1, 6144, 8])
        nodes, inits = [helper.make_node("Reshape", ["images", "shape"], ["output"])], [shape]
    else:
        raise ValueError(kind)
    graph = helper.make_graph(nodes, kind, [x], [y], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def save_zip_bomb(path: Path, unpacked_gib: float = 2.1) -> Path:
    """A PyTorch-layout checkpoint of a few megabytes whose tensor storage unpacks to ``unpacked_gib``: the
    pickle is a real one that names that storage, as a malicious checkpoint would."""
    import zipfile  # noqa: PLC0415

    small = path.with_suffix(".small")
    torch.save({"model": torch.zeros(4)}, small)
    block = bytes(16 << 20)
    with zipfile.ZipFile(small) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as dst:
        for info in src.infolist():
            if info.filename.endswith("/data/0"):
                with dst.open(info.filename, "w", force_zip64=True) as f:
                    for _ in range(int(unpacked_gib * 2**30) // len(block)):
                        f.write(block)
            else:
                dst.writestr(info.filename, src.read(info.filename))
    small.unlink()
    return path


# Labels of the planted classifier: the crop's mean colour decides (red -> fox, green -> badger, blue -> roe deer;
# a grey crop -> the bare "animal" label)
COLOUR_LABELS = [
    "e4d1e892-0e4b-475a-a8ac-b5c3502e0d55;mammalia;carnivora;canidae;vulpes;vulpes;red fox",
    "a1b2c3d4-0000-4000-8000-000000000001;mammalia;carnivora;mustelidae;meles;meles;european badger",
    "a1b2c3d4-0000-4000-8000-000000000002;mammalia;cetartiodactyla;cervidae;capreolus;capreolus;western roe deer",
    "1f689929-883d-4dae-958c-3d57ab5b6c16;;;;;;animal",
]


def save_classifier(folder: Path, layout: str = "nhwc", *, size: int = 32, output: str = "logits",
                    mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), labels_in_file: bool = True, n_labels: int | None = None,
                    name: str = "colours", extra: dict | None = None, batch: int | str = "batch") -> Path:
    """A real ONNX classifier in SpeciesNet's ``layout`` (nhwc) or PyTorch's (nchw) whose output is planted: it
    depends only on the crop's mean colour (``COLOUR_LABELS``), so a test can tell which pixels it was fed.

    Logit c = 20 * (mean of channel c in 0..1 - 0.5) for red, green, blue; 1 for "animal". The model undoes the
    sidecar's ``mean``/``std`` itself, so any normalisation gives the same labels when Odin applies it right.
    ``n_labels`` writes that many labels to the sidecar (a wrong count, for the checks); an int ``batch`` makes
    a model exported for that batch size only.
    """
    import json  # noqa: PLC0415

    import numpy as np  # noqa: PLC0415
    import onnx  # noqa: PLC0415
    from onnx import TensorProto, helper, numpy_helper  # noqa: PLC0415

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.onnx"
    dims = [batch, size, size, 3] if layout == "nhwc" else [batch, 3, size, size]
    axes = [1, 2] if layout == "nhwc" else [2, 3]
    weights = np.zeros((3, 4), np.float32)
    weights[[0, 1, 2], [0, 1, 2]] = 20 * np.array(std, np.float32)
    bias = np.array([*(20 * (np.array(mean, np.float32) - 0.5)), 1.0], np.float32)
    nodes = [helper.make_node("ReduceMean", ["input"], ["rgb"], axes=axes, keepdims=0),
             helper.make_node("MatMul", ["rgb", "w"], ["wx"]),
             helper.make_node("Add", ["wx", "b"], ["logits" if output == "logits" else "raw"])]
    if output == "probabilities":
        nodes.append(helper.make_node("Softmax", ["raw"], ["logits"], axis=1))
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("input", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 4])],
        initializer=[numpy_helper.from_array(weights, "w"), numpy_helper.from_array(bias, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    labels = (COLOUR_LABELS * 2)[:n_labels or 4]
    if labels_in_file:
        (folder / f"{name}.labels.txt").write_text("\n".join(labels) + "\n")
    side = {"kind": "classifier", "name": name, "version": "test-1", "input_size": size, "layout": layout,
            "crop": "box", "resize": "stretch", "scale": 255.0, "mean": list(mean), "std": list(std),
            "output": output, "labels": f"{name}.labels.txt" if labels_in_file else labels, "geofence": None,
            "min_detection_conf": 0.1, **(extra or {})}
    path.with_suffix(".json").write_text(json.dumps(side))
    return path


def save_planted_detector(path: Path, rows: list[list[float]], input_size: int = 640, stride: int = 64) -> Path:
    """A real ONNX YOLOv5-layout detector that finds the same boxes in every photo: ``rows`` of (x centre,
    y centre, width, height, objectness, animal, person, vehicle) in letterboxed pixels, with its sidecar."""
    import json  # noqa: PLC0415

    import numpy as np  # noqa: PLC0415
    import onnx  # noqa: PLC0415
    from onnx import TensorProto, helper, numpy_helper  # noqa: PLC0415

    planted = np.array([rows], np.float32)
    nodes = [helper.make_node("ReduceMean", ["images"], ["m"], axes=[1, 2, 3], keepdims=1),
             helper.make_node("Reshape", ["m", "shape"], ["m3"]),
             helper.make_node("Mul", ["m3", "zero"], ["z"]),
             helper.make_node("Add", ["z", "rows"], ["output"])]
    graph = helper.make_graph(
        nodes, "planted", [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, "h", "w"])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", len(rows), 8])],
        initializer=[numpy_helper.from_array(np.array([-1, 1, 1], np.int64), "shape"),
                     numpy_helper.from_array(np.zeros((1,), np.float32), "zero"),
                     numpy_helper.from_array(planted, "rows")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    path.with_suffix(".json").write_text(json.dumps({"name": "planted", "version": "test", "input_size": input_size,
                                                     "stride": stride, "layout": "v5"}))
    return path
