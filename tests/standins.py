"""Random-weight stand-ins for the MegaDetector v6 architectures whose weights cannot be had here, for
``bench/detect.py`` (speed does not depend on the weights) and the layout tests: the MIT YOLOv9 and
RT-DETRv2 (``arch_yolov9``, ``arch_rtdetr``), written for Odin from their published configurations.

This file holds what both share: conv + batch norm, the two-branch RepConv, folding both into plain convs for
inference, batch-norm and score calibration on photos (so a random network behaves like a detector: a few
confident boxes, not every anchor tied), counting parameters and FLOPs, and the ONNX export with the
catalogue's sidecar.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from wildlife.detect import catalog, engine


class ConvBN(nn.Module):
    """conv (no bias) -> batch norm -> activation; ``fuse`` folds the norm into the conv."""

    def __init__(self, c_in, c_out, k=1, s=1, *, groups=1, act=nn.SiLU, eps=1e-5, padding=None):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, s, (k - 1) // 2 if padding is None else padding, groups=groups,
                              bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=eps)
        self.act = act() if act else nn.Identity()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class RepConv(nn.Module):
    """act(BN(3x3 conv) + BN(1x1 conv)): YOLOv9's RepConv and RT-DETR's RepVggBlock; one 3x3 conv once fused."""

    def __init__(self, c_in, c_out, *, act=nn.SiLU, eps=1e-5):
        super().__init__()
        self.conv1 = ConvBN(c_in, c_out, 3, act=None, eps=eps)
        self.conv2 = ConvBN(c_in, c_out, 1, act=None, eps=eps)
        self.act = act() if act else nn.Identity()

    def forward(self, x):
        y = self.conv1(x)
        return self.act(y + self.conv2(x) if self.conv2 is not None else y)


@torch.no_grad()
def fuse(model: nn.Module) -> nn.Module:
    """Inference form, same outputs: each batch norm folded into its conv, each RepConv's branches into one."""
    for m in model.modules():
        if isinstance(m, ConvBN) and isinstance(m.bn, nn.BatchNorm2d):
            conv, bn = m.conv, m.bn
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                              groups=conv.groups, bias=True)
            fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
            fused.bias.copy_(bn.bias - bn.running_mean * scale)
            m.conv, m.bn = fused, nn.Identity()
    for m in model.modules():
        if isinstance(m, RepConv) and m.conv2 is not None:
            m.conv1.conv.weight += F.pad(m.conv2.conv.weight, [1, 1, 1, 1])
            m.conv1.conv.bias += m.conv2.conv.bias
            m.conv2 = None
    return model.eval()


@torch.no_grad()
def calibrate(model: nn.Module, photos: torch.Tensor, boxes_share: float = 0.0005) -> nn.Module:
    """Batch-norm statistics measured on ``photos`` (every layer's output then varies with the picture instead
    of fading or exploding), then the class logits spread to a standard deviation of 2 and shifted so that
    ``boxes_share`` of the scores (anchors or queries x classes) are over 0.5. ``model.score_layers``: the
    last layers whose outputs are the class logits."""
    model.eval()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # a plain average over the photos
            m.train()
    model(photos)
    model.eval()
    seen = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: seen.append(out.flatten())) for m in model.score_layers]
    model(photos)  # the logits of every photo: one photo's spread would be too narrow for the others
    for hook in hooks:
        hook.remove()
    logits = torch.cat(seen)
    scale = 2.0 / float(logits.std())
    shift = float(torch.quantile((logits * scale)[:2**24], 1 - boxes_share))
    for layer in model.score_layers:
        layer.weight *= scale
        layer.bias.mul_(scale).sub_(shift)
    return model


def count(model: nn.Module, size: int) -> tuple[float, float]:
    """(millions of parameters, GFLOPs for one size x size image, 2 per multiply-add as YOLO and RT-DETR count)."""
    from torch.utils.flop_counter import FlopCounterMode  # noqa: PLC0415

    params = sum(p.numel() for p in model.parameters()) / 1e6
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, size, size))
    return params, counter.get_total_flops() / 1e9


def export(model: nn.Module, path: Path, key: str) -> Path:
    """ONNX of ``model`` (opset and exporter as ``weights.export_onnx``) with the catalogue's sidecar for ``key``:
    a letterboxing layout gets a dynamic height and width, a stretched one (RT-DETR) a fixed square."""
    info = catalog.KNOWN[key]
    size, layout = info["input_size"], info["layout"]
    assert model.layout == layout, f"{key} is {layout} in the catalogue, the stand-in gives {model.layout}"
    axes = {"images": {0: "batch"}, "output": {0: "batch"}}
    if engine.RESIZE[layout] == "letterbox":
        axes["images"].update({2: "height", 3: "width"})
        axes["output"][2] = "boxes"
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
        torch.onnx.export(model.eval(), (torch.zeros(1, 3, size, size),), str(path), dynamo=False, opset_version=17,
                          input_names=["images"], output_names=["output"], dynamic_axes=axes)
    catalog.write_sidecar(key, path)
    return path


def photo_batch(size: int, layout: str, n: int = 4, seed: int = 500) -> torch.Tensor:
    """``n`` generated 4:3 camera-trap photos as the engine feeds a model of ``layout``: stretched to a square,
    or letterboxed (to size x size * 3/4)."""
    import photofactory as pf  # noqa: PLC0415

    photos = [pf.with_animal(pf.scene(1024, 768, seed=seed + i), (0.1 + 0.15 * i, 0.4, 0.2, 0.25)) for i in range(n)]
    if engine.RESIZE[layout] == "stretch":
        images = [engine.stretch(p, size)[0] for p in photos]
    else:
        images = [engine.letterbox(p, size, 32)[0] for p in photos]
    return torch.from_numpy(np.ascontiguousarray(engine.to_tensor(images)))


# catalogue key -> (module, class, arguments): the configuration PytorchWildlife builds for that model
ARCHITECTURES = {"mdv6-mit-yolov9-c": ("arch_yolov9", "YoloV9", {"config": "v9-s"}),
                 "mdv6-apa-rtdetr-c": ("arch_rtdetr", "RTDETRv2", {"config": "r18"}),
                 "mdv6-apa-rtdetr-e": ("arch_rtdetr", "RTDETRv2", {"config": "r101"})}


def build(key: str, seed: int = 0, photos: int = 4, **narrow) -> nn.Module:
    """The calibrated (on ``photos`` generated photos), fused stand-in of catalogue model ``key``, 3 classes;
    ``narrow``: the architecture's width/depth multipliers, below 1 for fast tests only."""
    import importlib  # noqa: PLC0415 - the architectures import this module's blocks

    module, cls, kwargs = ARCHITECTURES[key]
    torch.manual_seed(seed)
    model = getattr(importlib.import_module(module), cls)(nc=3, **kwargs, **narrow)
    info = catalog.KNOWN[key]
    return fuse(calibrate(model, photo_batch(info["input_size"], info["layout"], photos)))
