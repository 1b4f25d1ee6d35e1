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
