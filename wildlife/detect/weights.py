"""MegaDetector weights: loaded without running anything from the file, converted to ONNX, cached.

MDv5 checkpoints are pickled YOLOv5 training checkpoints: the whole model object, its classes named
``models.yolo.Model``, ``models.common.C3`` and so on. Unpickling them the usual way imports and runs those
classes (and would run anything else a hostile file names). Here a restricted unpickler reads the file:
tensors are rebuilt from the archive's raw storages, the model's classes become inert records of their
attributes, and any other global (``os.system``, ``builtins.eval``, ...) is refused. The tensors and the
architecture description then go into our own implementation (``wildlife.detect.yolo``), strictly.
"""

from __future__ import annotations

import io
import json
import pickle
import warnings
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wildlife.detect.catalog import KNOWN, cache_dir, digests, download, identify
from wildlife.detect.yolo import YoloModel
from wildlife.errors import InputError

MD_THRESHOLDS = {"typical": 0.2, "conservative": 0.05}
STORAGE_DTYPES = {"HalfStorage": torch.float16, "FloatStorage": torch.float32, "DoubleStorage": torch.float64,
                  "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
                  "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8,
                  "BoolStorage": torch.bool}
# classes whose instances become inert records: the model's own, torch.nn's, and harmless metadata
INERT_PREFIXES = ("models.", "utils.", "torch.nn.modules.", "numpy", "argparse.", "pathlib.", "__main__.")
# What a checkpoint may unpack to, checked against the zip's declared sizes before anything is read (zipfile
# never returns more than an entry declares). MDv5 is 281 MB; a few kilobytes can declare gigabytes.
MAX_UNPACKED_BYTES = 2 * 2**30
MAX_PICKLE_BYTES = 64 * 2**20


class RefusedPickle(InputError, pickle.UnpicklingError):
    """The file names something that is not a tensor or a model record; it is not loaded."""


class Record:
    """What an unpickled class instance becomes: its arguments and state, and nothing that runs."""

    def __init__(self, *args, **kwargs):
        self.args = args

    def __setstate__(self, state):
        self.state = state

    def __call__(self, *args, **kwargs):  # used as a factory by REDUCE
        return Record(*args)


def _record_class(name: str):
    return type(name.rsplit(".", 1)[-1], (Record,), {"qualified": name})


def _rebuild_tensor(storage, offset, size, stride, *rest):
    return torch.as_strided(storage, size, stride, offset)


def _reconstruct(cls, base, state):
    return cls() if isinstance(cls, type) and issubclass(cls, Record) else Record()


def _rebuild_parameter(data, *rest):
    return data


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, storages):
        super().__init__(io.BytesIO(data))
        self.storages = storages

    def find_class(self, module: str, name: str):
        module = {"__builtin__": "builtins"}.get(module, module)  # protocol-2 pickles name Python 2 modules
        full = f"{module}.{name}"
        if full == "copyreg._reconstructor":
            return _reconstruct
        if full == "torch._utils._rebuild_tensor_v2":
            return _rebuild_tensor
        if full in ("torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state"):
            return _rebuild_parameter
        if full == "collections.OrderedDict":
            return OrderedDict
        if module == "torch" and name in STORAGE_DTYPES:
            return name
        if full in ("torch.Size", "builtins.set", "builtins.frozenset", "builtins.slice"):
            return {"torch.Size": torch.Size, "builtins.set": set, "builtins.frozenset": frozenset,
                    "builtins.slice": slice}[full]
        if full.startswith(INERT_PREFIXES):
            return _record_class(full)
        raise RefusedPickle(f"refused to load {full}: a checkpoint may hold tensors and model records only")

    def persistent_load(self, pid):
        kind, storage_type, key, _location, numel = pid[:5]
        if kind != "storage":
            raise RefusedPickle(f"unknown persistent id {kind!r}")
        dtype = STORAGE_DTYPES.get(storage_type) if isinstance(storage_type, str) else None
        if dtype is None:  # newer torch writes torch.storage.UntypedStorage with the dtype in the tensor
            dtype = torch.uint8
        return self.storages(key, dtype, numel)


def read_checkpoint(path: str | Path, unpickler: type[pickle.Unpickler] | None = None) -> Any:
    """The unpickled object of a torch zip checkpoint, with tensors real and classes inert.

    ``unpickler``: a subclass of this module's allow-list unpickler that knows a few more globals (SpeciesNet).
    """
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        pkl = next((n for n in names if n.endswith("/data.pkl")), None)
        if pkl is None:
            raise ValueError(f"{path}: not a PyTorch zip checkpoint (no data.pkl)")
        unpacked = sum(info.file_size for info in zf.infolist())
        if unpacked > MAX_UNPACKED_BYTES:
            raise ValueError(f"{path}: would unpack to {unpacked / 2**30:.1f} GiB, over the "
                             f"{MAX_UNPACKED_BYTES / 2**30:.0f} GiB a YOLOv5 checkpoint can need (a zip bomb?)")
        if zf.getinfo(pkl).file_size > MAX_PICKLE_BYTES:
            raise ValueError(f"{path}: its pickle would unpack to {zf.getinfo(pkl).file_size / 2**20:.0f} MiB, over "
                             f"the {MAX_PICKLE_BYTES / 2**20:.0f} MiB a YOLOv5 checkpoint needs (a zip bomb?)")
        root = pkl[: -len("data.pkl")]

        def storage(key: str, dtype: torch.dtype, numel: int):
            raw = zf.read(f"{root}data/{key}")
            return torch.from_numpy(np.frombuffer(raw, dtype=_np_dtype(dtype)).copy())

        return (unpickler or _Unpickler)(zf.read(pkl), storage).load()


def _np_dtype(dtype: torch.dtype):
    return {torch.float16: np.float16, torch.float32: np.float32, torch.float64: np.float64,
            torch.int64: np.int64, torch.int32: np.int32, torch.int16: np.int16, torch.int8: np.int8,
            torch.uint8: np.uint8, torch.bool: np.bool_}.get(dtype, np.uint8) if dtype != torch.bfloat16 else np.int16


def _tensors(record: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    state = getattr(record, "state", None)
    if not isinstance(state, dict):
        return {}
    out = {}
    for group in ("_parameters", "_buffers"):
        for name, t in (state.get(group) or {}).items():
            if isinstance(t, torch.Tensor):
                out[prefix + name] = t
    for name, child in (state.get("_modules") or {}).items():
        out.update(_tensors(child, f"{prefix}{name}."))
    return out


@dataclass
class Loaded:
    model: YoloModel
    name: str
    version: str
    sha256: str


def load_yolov5(path: str | Path) -> Loaded:
    """A YOLOv5-layout checkpoint (MegaDetector v5) as our model, strictly, in fp32 eval mode."""
    ckpt = read_checkpoint(path)
    record = (ckpt.get("ema") or ckpt.get("model")) if isinstance(ckpt, dict) else None
    cfg = getattr(record, "state", {}).get("yaml") if record is not None else None
    if not isinstance(cfg, dict):
        raise ValueError(f"{path}: no YOLOv5 model with an architecture description inside")
    cfg = dict(cfg)
    names = getattr(record, "state", {}).get("names")
    if isinstance(names, dict):
        names = [names[k] for k in sorted(names)]
    cfg["names"] = list(names) if names else cfg.get("names")
    tensors = _tensors(record)
    model = YoloModel(cfg)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    shapes = [k for k in expected if k in tensors and tuple(expected[k].shape) != tuple(tensors[k].shape)]
    if missing or unexpected or shapes:
        raise ValueError(f"{path}: tensors do not match the architecture it describes: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}, wrong shape {shapes[:5]}")
    model.load_state_dict({k: v.float() for k, v in tensors.items()}, strict=True)
    model.eval()
    sha, md5 = digests(path)
    name, version = identify(sha, md5, path)
    return Loaded(model, name, version, sha)


def export_onnx(loaded: Loaded, out: Path, imgsz: int = 1280, thresholds: dict[str, float] | None = None) -> Path:
    """ONNX with a dynamic batch and spatial size, and its sidecar JSON (see ``engine.Sidecar``)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    model = loaded.model.fuse().eval()
    stride = int(model.stride.max())
    dummy = torch.zeros(1, 3, imgsz * 3 // 4 // stride * stride, imgsz)
    axes = {"images": {0: "batch", 2: "height", 3: "width"}, "output": {0: "batch", 1: "boxes"}}
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated but exports this model exactly
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model, (dummy,), str(out), dynamo=False, opset_version=17, input_names=["images"],
                          output_names=["output"], dynamic_axes=axes)
    sidecar = {"name": loaded.name, "version": loaded.version, "input_size": imgsz, "stride": stride,
               "layout": "v5", "classes": {str(i + 1): n for i, n in enumerate(model.names)},
               "thresholds": {**MD_THRESHOLDS, **(thresholds or {})}, "source_sha256": loaded.sha256}
    out.with_suffix(".json").write_text(json.dumps(sidecar, indent=2))
    return out


def fetch(key: str, sha256: str | None = None, url: str | None = None, progress=None) -> Path:
    """Download a known YOLOv5 checkpoint (``catalog.download``: checked against its pinned hash), load it
    strictly, export ONNX beside it. Returns the checkpoint's path."""
    target = download(key, sha256=sha256, url=url, progress=progress)
    export_onnx(load_yolov5(target), cache_dir() / f"{key}.onnx", KNOWN[key]["input_size"],
                KNOWN[key].get("thresholds"))
    return target
