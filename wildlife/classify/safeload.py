"""SpeciesNet's classifier file read as tensors into our EfficientNetV2-M: its pickled code never runs.

The file is ``torch.save`` of a whole ``torch.fx.GraphModule`` that onnx2torch built from a tf2onnx export of
the Keras model; the usual ``torch.load`` runs the Python source pickled inside it (``reduce_graph_module``
execs the module's import block and compiles its forward code). Here the detector's allow-list unpickler
(``wildlife.detect.weights``) reads it, taught three more things: a GraphModule becomes an inert record of its
attributes (its code is never compiled or run; its forward source is only parsed with ``ast`` for the order
of the calls), onnx2torch's, torch.fx's and torch's own classes and functions (onnx2torch's modules keep the
torch function they call) become inert records, ``getattr`` works on such records only, and torch dtypes are
plain values. Anything else it names (``os.system``, ``builtins.eval``...) is refused.

The convolutions are then matched, in the order the graph runs them and strictly by shape, stride and groups,
to ``wildlife.classify.effnetv2``; a batch norm right after a convolution is folded into it; the dense layer
is an ``nn.Linear`` or onnx2torch's MatMul + Add initializers; Keras' built-in input Rescaling (two scalars,
1/128 and -1) is kept where the graph has it; any other float tensor left over refuses the conversion, since
our model would not use it and its numbers would differ from the release's.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wildlife.classify import effnetv2
from wildlife.classify.effnetv2 import EfficientNetV2, convolutions
from wildlife.detect import weights


class _GraphModuleRecord(weights.Record):
    qualified = "torch.fx.graph_module.GraphModule"


def _graph_module(body, *rest):
    """What ``torch.fx.graph_module.reduce_graph_module`` becomes: its attributes, its import block ignored."""
    record = _GraphModuleRecord()
    record.state = body if isinstance(body, dict) else {}
    return record


def _inert_getattr(obj, name):
    """``builtins.getattr`` as pickles use it to name a function (``torch.add`` is pickled as
    ``getattr(torch._C._VariableFunctionsClass, "add")``): allowed on inert records only, answered inertly."""
    if isinstance(obj, weights.Record) or (isinstance(obj, type) and issubclass(obj, weights.Record)):
        return weights._record_class(f"{getattr(obj, 'qualified', '?')}.{name}")
    raise weights.RefusedPickle(f"refused getattr on {type(obj).__name__}: a checkpoint may hold tensors and model "
                                "records only")


class _ReleaseUnpickler(weights._Unpickler):
    def find_class(self, module: str, name: str):
        module = {"__builtin__": "builtins"}.get(module, module)
        full = f"{module}.{name}"
        if full in ("torch.fx.graph_module.reduce_graph_module", "torch.fx.graph_module._deserialize_graph_module"):
            return _graph_module
        if full == "builtins.getattr":
            return _inert_getattr
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        if full.startswith(("onnx2torch.", "torch.fx.")):
            return weights._record_class(full)
        try:
            return super().find_class(module, name)
        except weights.RefusedPickle:
            # onnx2torch's modules keep the torch function they call (OnnxBinaryMathOperation: torch.add...):
            # named by torch, it becomes an inert record too; nothing outside torch is let through
            if module == "torch" or module.startswith("torch."):
                return weights._record_class(full)
            raise


def _call_order(code: Any) -> list[str]:
    """The submodules a GraphModule's forward source calls, in order, read with ``ast`` (never run)."""
    if not isinstance(code, str):
        return []
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    calls: list[tuple[int, int, str]] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        if (isinstance(f, ast.Call) and isinstance(f.func, ast.Name) and f.func.id == "getattr" and len(f.args) == 2
                and isinstance(f.args[0], ast.Name) and f.args[0].id == "self" and isinstance(f.args[1], ast.Constant)):
            calls.append((node.lineno, node.col_offset, str(f.args[1].value)))
        elif isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id == "self":
            calls.append((node.lineno, node.col_offset, f.attr))
    return list(dict.fromkeys(name for *_, name in sorted(calls)))


def _leaves(record: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """(path, record) of every submodule in forward order: the graph's call order, then declaration order."""
    state = getattr(record, "state", None)
    modules = (state.get("_modules") or {}) if isinstance(state, dict) else {}
    if not modules:
        return [(prefix.rstrip("."), record)]
    called = [n for n in _call_order(state.get("_code")) if n in modules]
    names = called + [n for n in modules if n not in called]
    out = []
    for name in names:
        if modules[name] is not None:
            out.extend(_leaves(modules[name], f"{prefix}{name}."))
    return out


def _kind(record: Any) -> str:
    return str(getattr(type(record), "qualified", "")).rsplit(".", 1)[-1]


def _own(record: Any, name: str) -> torch.Tensor | None:
    state = getattr(record, "state", None) or {}
    for group in ("_parameters", "_buffers"):
        t = (state.get(group) or {}).get(name)
        if isinstance(t, torch.Tensor):
            return t
    return None


@dataclass
class _Conv:
    name: str
    weight: torch.Tensor
    bias: torch.Tensor | None
    stride: int
    groups: int
    padding: tuple[int, ...]
    padded: bool  # a pad module runs right before it (onnx2torch's OnnxPadStatic for asymmetric pads)
    bn: bool = False


def load_classifier(path: str | Path, num_classes: int) -> EfficientNetV2:
    """SpeciesNet's classifier file as our EfficientNetV2-M, strictly; fp32, eval mode. Raises
    ``RefusedPickle`` for a file that names code, ``ValueError`` for one that is not this architecture."""
    root = weights.read_checkpoint(path, unpickler=_ReleaseUnpickler)
    if not isinstance(getattr(root, "state", None), dict):
        raise ValueError(f"{path}: not a saved PyTorch module (SpeciesNet's classifier is a whole GraphModule)")
    used: set[int] = set()
    convs: list[_Conv] = []
    linears = []
    previous = ""
    for name, rec in _leaves(root):
        kind, after = _kind(rec), previous
        previous = kind
        w = _own(rec, "weight")
        if kind in ("Conv2d", "Conv") and w is not None and w.dim() == 4:
            st = rec.state
            stride = st.get("stride", (1, 1))
            pad = st.get("padding", 0)
            convs.append(_Conv(name, w, _own(rec, "bias"), int(stride[0] if isinstance(stride, tuple) else stride),
                               int(st.get("groups", 1)), tuple(pad) if isinstance(pad, tuple | list) else (pad, pad),
                               "Pad" in after))
            used.update(id(t) for t in (w, _own(rec, "bias")) if t is not None)
        elif kind.startswith("BatchNorm") and after in ("Conv2d", "Conv") and not convs[-1].bn:  # Keras: conv, BN
            t = [_own(rec, k) for k in ("weight", "bias", "running_mean", "running_var")]
            if any(x is None for x in t):
                raise ValueError(f"{path}: batch norm {name} lacks its statistics")
            c = convs[-1]
            c.weight, c.bias = effnetv2.fold_batchnorm(c.weight.float(), None if c.bias is None else c.bias.float(),
                                              *(x.float() for x in t), float(rec.state.get("eps", 1e-5)))
            c.bn = True
            used.update(id(x) for x in t)
        elif kind == "Linear" and w is not None:
            linears.append((w, _own(rec, "bias")))
    head_w, head_b = _dense(path, root, linears, convs, num_classes, used)
    model = _fit(path, convs, head_w, head_b, num_classes)
    rest = {k: t for k, t in weights._tensors(root).items()
            if id(t) not in used and t.is_floating_point() and t.numel() > 0}
    values = sorted(float(t) for t in rest.values() if t.numel() == 1)
    if len(rest) == 2 and len(values) == 2 and np.allclose(values, sorted(effnetv2.KERAS_RESCALE), atol=1e-7):
        model.rescale, rest = effnetv2.KERAS_RESCALE, {}  # the graph's two scalars are Keras' Rescaling layer
    leftover = [f"{k} {tuple(t.shape)}" for k, t in rest.items()]
    if leftover:
        raise ValueError(f"{path}: holds float tensors an EfficientNetV2-M does not use ({', '.join(leftover[:5])}"
                         f"{'...' if len(leftover) > 5 else ''}); converted without them its outputs would differ")
    return model


def _dense(path, root, linears, convs, num_classes, used):
    """The dense layer: an ``nn.Linear``, or onnx2torch's MatMul + Add initializers (weight stored in x out)."""
    c_head = convs[-1].weight.shape[0] if convs else -1
    if len(linears) == 1:
        w, b = linears[0]
        used.update(id(t) for t in (w, b) if t is not None)
        return w, b
    spare = [t for t in weights._tensors(root).values() if id(t) not in used and t.is_floating_point()]
    mats = [t for t in spare if t.dim() == 2 and sorted(t.shape) == sorted((c_head, num_classes))]
    biases = [t for t in spare if t.dim() == 1 and t.shape[0] == num_classes]
    if len(mats) != 1 or len(biases) > 1 or c_head == num_classes:
        raise ValueError(f"{path}: no single dense layer from {c_head} features to the {num_classes} labels "
                         f"({len(mats)} candidate weights)")
    used.update(id(t) for t in (mats[0], *biases))
    w = mats[0] if mats[0].shape[0] == num_classes else mats[0].t()
    return w, biases[0] if biases else None


def _fit(path, convs: list[_Conv], head_w, head_b, num_classes: int) -> EfficientNetV2:
    """Our EfficientNetV2-M of the release's width, filled with its tensors layer by layer, strictly."""
    if not convs:
        raise ValueError(f"{path}: no convolutions inside; not an EfficientNetV2 classifier")
    # The M model's head has 1280 channels; a narrower or shallower file (the tests' tiny ones) is the same
    # structure scaled, found from its head width and its number of layers.
    width = convs[-1].weight.shape[0] / effnetv2.HEAD_CHANNELS
    for depth in (1.0, *(x / 10 for x in range(1, 10))):
        model = EfficientNetV2(num_classes, width=width, depth=depth)
        ours = convolutions(model)
        if len(ours) == len(convs):
            break
    if len(ours) != len(convs):
        raise ValueError(f"{path}: {len(convs)} convolutions, where an EfficientNetV2-M has {len(ours)}")
    state = {}
    for (name, conv), theirs in zip(ours, convs, strict=True):
        if (tuple(conv.weight.shape) != tuple(theirs.weight.shape) or conv.stride[0] != theirs.stride
                or conv.groups != theirs.groups):
            raise ValueError(f"{path}: layer {theirs.name} (weight {tuple(theirs.weight.shape)}, stride "
                             f"{theirs.stride}, groups {theirs.groups}) does not fit EfficientNetV2-M's {name} "
                             f"(weight {tuple(conv.weight.shape)}, stride {conv.stride[0]}, groups {conv.groups})")
        # TF "same": stride 1 pads symmetrically inside the convolution, stride 2 needs a pad before it (bottom/right)
        same = (theirs.padded and theirs.padding == (0, 0)) if conv.stride[0] == 2 else (
            not theirs.padded and theirs.padding == tuple(conv.padding))
        if not same:
            raise ValueError(f"{path}: layer {theirs.name} pads {theirs.padding}"
                             f"{' after a pad' if theirs.padded else ''}, not as TensorFlow's 'same' padding that "
                             f"EfficientNetV2-M's {name} reproduces")
        state[f"{name}.weight"] = theirs.weight.float()
        state[f"{name}.bias"] = (theirs.bias.float() if theirs.bias is not None
                                 else torch.zeros(conv.weight.shape[0]))
    if tuple(head_w.shape) != tuple(model.fc.weight.shape):
        raise ValueError(f"{path}: dense layer {tuple(head_w.shape)} does not fit {tuple(model.fc.weight.shape)}")
    state["fc.weight"] = head_w.float()
    state["fc.bias"] = head_b.float() if head_b is not None else torch.zeros(num_classes)
    model.load_state_dict(state, strict=True)
    return model.eval()
