"""Our own PyTorch implementation of the YOLOv5 P5/P6 family, enough to run MegaDetector v5 weights.

The network is built from the architecture description that every YOLOv5 checkpoint carries (its ``yaml``
dict: depth and width multiples, anchors, and the layer list), so a checkpoint loads strictly: every tensor
name and shape of the file must match the module built here. Layer types: Conv (conv + batch norm + SiLU),
Bottleneck, C3 (CSP with three convs), SPPF (spatial pyramid pooling, fast), nn.Upsample, Concat, Detect.

``MDV5`` (YOLOv5x6 at 1280 px, MegaDetector v5a/v5b and the same-architecture MDv1000-redwood) and
``SMALL_P5`` (YOLOv5s-size) are written out here so tests and benchmarks can build random-weight models
in the same layout as the released checkpoints.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn


def _pad(k: int, p: int | None) -> int:
    return k // 2 if p is None else p


class Conv(nn.Module):
    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1, p: int | None = None, g: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, _pad(k, p), groups=g, bias=False)
        self.bn = nn.BatchNorm2d(c2, eps=0.001, momentum=0.03)
        self.act = nn.SiLU()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    def __init__(self, c1: int, c2: int, shortcut: bool = True, g: int = 1, e: float = 0.5):
        super().__init__()
        c_ = int(c2 * e)
        self.cv1 = Conv(c1, c_, 1, 1)
        self.cv2 = Conv(c_, c2, 3, 1, g=g)
        self.add = shortcut and c1 == c2

    def forward(self, x):
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C3(nn.Module):
    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = True, g: int = 1, e: float = 0.5):
        super().__init__()
        c_ = int(c2 * e)
        self.cv1 = Conv(c1, c_, 1, 1)
        self.cv2 = Conv(c1, c_, 1, 1)
        self.cv3 = Conv(2 * c_, c2, 1)
        self.m = nn.Sequential(*(Bottleneck(c_, c_, shortcut, g, e=1.0) for _ in range(n)))

    def forward(self, x):
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))


class SPPF(nn.Module):
    def __init__(self, c1: int, c2: int, k: int = 5):
        super().__init__()
        c_ = c1 // 2
        self.cv1 = Conv(c1, c_, 1, 1)
        self.cv2 = Conv(c_ * 4, c2, 1, 1)
        self.m = nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2)

    def forward(self, x):
        x = self.cv1(x)
        y1 = self.m(x)
        y2 = self.m(y1)
        return self.cv2(torch.cat((x, y1, y2, self.m(y2)), 1))


class Concat(nn.Module):
    def __init__(self, dimension: int = 1):
        super().__init__()
        self.d = dimension

    def forward(self, x):
        return torch.cat(x, self.d)


class Detect(nn.Module):
    """Per level a 1x1 conv to na*(5+nc) channels; decodes to (batch, boxes, 5+nc) in input pixels, xywh."""

    def __init__(self, nc: int, anchors: list[list[float]], ch: list[int]):
        super().__init__()
        self.nc, self.no, self.nl = nc, nc + 5, len(anchors)
        self.na = len(anchors[0]) // 2
        self.register_buffer("anchors", torch.tensor(anchors).float().view(self.nl, -1, 2))
        self.m = nn.ModuleList(nn.Conv2d(x, self.no * self.na, 1) for x in ch)
        self.stride = torch.ones(self.nl)

    def forward(self, xs):
        out = []
        for i in range(self.nl):
            x = self.m[i](xs[i])
            bs, _, ny, nx = x.shape
            x = x.view(bs, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2).sigmoid()
            yv, xv = torch.meshgrid(torch.arange(ny, dtype=x.dtype), torch.arange(nx, dtype=x.dtype), indexing="ij")
            grid = torch.stack((xv, yv), 2).view(1, 1, ny, nx, 2) - 0.5
            anchor = (self.anchors[i] * self.stride[i]).view(1, self.na, 1, 1, 2)
            xy = (x[..., :2] * 2 + grid) * self.stride[i]
            wh = (x[..., 2:4] * 2) ** 2 * anchor
            out.append(torch.cat((xy, wh, x[..., 4:]), -1).view(bs, -1, self.no))
        return torch.cat(out, 1)


MODULES = {"Conv": Conv, "Bottleneck": Bottleneck, "C3": C3, "SPPF": SPPF, "Concat": Concat, "Detect": Detect,
           "nn.Upsample": nn.Upsample, "Upsample": nn.Upsample}


def _divisible(x: float, d: int = 8) -> int:
    return int(math.ceil(x / d) * d)


class YoloModel(nn.Module):
    """``model.<i>`` layers as in YOLOv5 checkpoints; ``forward`` returns decoded (batch, boxes, 5+nc)."""

    def __init__(self, cfg: dict[str, Any], ch: int = 3):
        super().__init__()
        self.cfg = cfg
        nc, gd, gw = cfg["nc"], cfg["depth_multiple"], cfg["width_multiple"]
        anchors = cfg["anchors"]
        no = (len(anchors[0]) // 2) * (nc + 5)
        layers, self.save, chs = [], set(), [ch]
        for i, (f, n, m, args) in enumerate(cfg["backbone"] + cfg["head"]):
            if m not in MODULES:
                raise ValueError(f"layer {i}: module {m!r} is not part of Odin's YOLOv5 implementation")
            # checkpoints keep YOLOv5's yaml as written: names stand for values
            args = [{"nc": nc, "anchors": anchors, "None": None}.get(a, a) if isinstance(a, str) else a for a in args]
            n = max(round(n * gd), 1) if n > 1 else n
            if m in ("Conv", "Bottleneck", "C3", "SPPF"):
                c1, c2 = chs[f], args[0]
                c2 = _divisible(c2 * gw) if c2 != no else c2
                args = [c1, c2, *args[1:]]
                if m == "C3":
                    args.insert(2, n)
                    n = 1
            elif m == "Concat":
                c2 = sum(chs[x] for x in f)
            elif m == "Detect":
                args.append([chs[x] for x in f])
                c2 = chs[f[0]]
            else:
                c2 = chs[f]
            module = nn.Sequential(*(MODULES[m](*args) for _ in range(n))) if n > 1 else MODULES[m](*args)
            module.f, module.i = f, i
            self.save.update(x % i for x in ([f] if isinstance(f, int) else f) if x != -1)
            layers.append(module)
            if i == 0:
                chs = []
            chs.append(c2)
        self.model = nn.Sequential(*layers)
        detect = self.model[-1]
        with torch.no_grad():
            feats = self._features(torch.zeros(1, ch, 256, 256))
        detect.stride = torch.tensor([256 / x.shape[-2] for x in feats])
        self.stride = detect.stride
        self.names = cfg.get("names") or [str(i) for i in range(nc)]

    def _features(self, x):
        y: list = []
        for m in self.model[:-1]:
            x = self._run(m, x, y)
        return [y[j] for j in self.model[-1].f]

    @staticmethod
    def _run(m, x, y):
        if m.f != -1:
            x = y[m.f] if isinstance(m.f, int) else [x if j == -1 else y[j] for j in m.f]
        x = m(x)
        y.append(x)
        return x

    def forward(self, x):
        y: list = []
        for m in self.model:
            x = self._run(m, x, y)
        return x

    def fuse(self) -> YoloModel:
        """Fold each batch norm into its conv (same outputs, fewer operations) for inference."""
        with torch.no_grad():
            self._fuse()
        return self

    def _fuse(self) -> None:
        for m in self.modules():
            if isinstance(m, Conv) and isinstance(m.bn, nn.BatchNorm2d):
                conv, bn = m.conv, m.bn
                fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                                  groups=conv.groups, bias=True)
                scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                fused.weight.data = conv.weight * scale.view(-1, 1, 1, 1)
                fused.bias.data = bn.bias - bn.running_mean * scale
                m.conv, m.bn = fused, nn.Identity()


_ANCHORS_P6 = [[19, 27, 44, 40, 38, 94], [96, 68, 86, 152, 180, 137], [140, 301, 303, 264, 238, 542],
               [436, 615, 739, 380, 925, 792]]
_ANCHORS_P5 = [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]]


def p6(nc: int, depth: float, width: float) -> dict[str, Any]:
    """A P6 (four output levels, strides 8-64) YOLOv5 description; YOLOv5x6 is depth 1.33, width 1.25."""
    return {"nc": nc, "depth_multiple": depth, "width_multiple": width, "anchors": _ANCHORS_P6,
            "backbone": [[-1, 1, "Conv", [64, 6, 2, 2]], [-1, 1, "Conv", [128, 3, 2]], [-1, 3, "C3", [128]],
                         [-1, 1, "Conv", [256, 3, 2]], [-1, 6, "C3", [256]], [-1, 1, "Conv", [512, 3, 2]],
                         [-1, 9, "C3", [512]], [-1, 1, "Conv", [768, 3, 2]], [-1, 3, "C3", [768]],
                         [-1, 1, "Conv", [1024, 3, 2]], [-1, 3, "C3", [1024]], [-1, 1, "SPPF", [1024, 5]]],
            "head": [[-1, 1, "Conv", [768, 1, 1]], [-1, 1, "nn.Upsample", [None, 2, "nearest"]],
                     [[-1, 8], 1, "Concat", [1]], [-1, 3, "C3", [768, False]],
                     [-1, 1, "Conv", [512, 1, 1]], [-1, 1, "nn.Upsample", [None, 2, "nearest"]],
                     [[-1, 6], 1, "Concat", [1]], [-1, 3, "C3", [512, False]],
                     [-1, 1, "Conv", [256, 1, 1]], [-1, 1, "nn.Upsample", [None, 2, "nearest"]],
                     [[-1, 4], 1, "Concat", [1]], [-1, 3, "C3", [256, False]],
                     [-1, 1, "Conv", [256, 3, 2]], [[-1, 20], 1, "Concat", [1]], [-1, 3, "C3", [512, False]],
                     [-1, 1, "Conv", [512, 3, 2]], [[-1, 16], 1, "Concat", [1]], [-1, 3, "C3", [768, False]],
                     [-1, 1, "Conv", [768, 3, 2]], [[-1, 12], 1, "Concat", [1]], [-1, 3, "C3", [1024, False]],
                     [[23, 26, 29, 32], 1, "Detect", ["nc", "anchors"]]]}


def p5(nc: int, depth: float, width: float) -> dict[str, Any]:
    """A P5 (three output levels, strides 8-32) YOLOv5 description; YOLOv5s is depth 0.33, width 0.5."""
    return {"nc": nc, "depth_multiple": depth, "width_multiple": width, "anchors": _ANCHORS_P5,
            "backbone": [[-1, 1, "Conv", [64, 6, 2, 2]], [-1, 1, "Conv", [128, 3, 2]], [-1, 3, "C3", [128]],
                         [-1, 1, "Conv", [256, 3, 2]], [-1, 6, "C3", [256]], [-1, 1, "Conv", [512, 3, 2]],
                         [-1, 9, "C3", [512]], [-1, 1, "Conv", [1024, 3, 2]], [-1, 3, "C3", [1024]],
                         [-1, 1, "SPPF", [1024, 5]]],
            "head": [[-1, 1, "Conv", [512, 1, 1]], [-1, 1, "nn.Upsample", [None, 2, "nearest"]],
                     [[-1, 6], 1, "Concat", [1]], [-1, 3, "C3", [512, False]],
                     [-1, 1, "Conv", [256, 1, 1]], [-1, 1, "nn.Upsample", [None, 2, "nearest"]],
                     [[-1, 4], 1, "Concat", [1]], [-1, 3, "C3", [256, False]],
                     [-1, 1, "Conv", [256, 3, 2]], [[-1, 14], 1, "Concat", [1]], [-1, 3, "C3", [512, False]],
                     [-1, 1, "Conv", [512, 3, 2]], [[-1, 10], 1, "Concat", [1]], [-1, 3, "C3", [1024, False]],
                     [[17, 20, 23], 1, "Detect", ["nc", "anchors"]]]}


MDV5 = dict(p6(3, 1.33, 1.25), names=["animal", "person", "vehicle"])
SMALL_P5 = dict(p5(3, 0.33, 0.50), names=["animal", "person", "vehicle"])
