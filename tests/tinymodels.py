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
