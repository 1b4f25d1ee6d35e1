"""YOLOv9 as the MIT implementation builds it (WongKinYiu/YOLO, MIT licence; PytorchWildlife vendors it as
``models/detection/yolo_mit``), written for Odin from its model configs ``yolo/config/model/v9-s.yaml`` and
``v9-c.yaml`` and the layer definitions of ``yolo/model/module.py``, read 2026-11-24.

Which config MegaDetector v6 uses: PytorchWildlife's ``yolo_mit_base.py`` builds MDV6-mit-yolov9-c from
``config_v9s.yaml`` and MDV6-mit-yolov9-e from ``config_v9c.yaml`` (Zenodo record 15178680), at 640 px, 3
classes; its model zoo gives 9.7 M and 51 M parameters, which are v9-s and v9-c *with* the auxiliary branch
that only training uses (``count_with_auxiliary``). Inference, and this stand-in, keep the main branch.

The head is anchor-free with distribution focal loss (reg_max 16): per scale, a box branch (64 channels out,
grouped) and a class branch. ``forward`` decodes it as PytorchWildlife's ``Vec2Box`` does (anchor point minus
and plus the expected left/top/right/bottom distance, times the stride) and gives the engine's ``v8`` layout:
(batch, 4 + classes, boxes), centre x, centre y, width, height in input pixels, then sigmoid class scores;
NMS outside the network, as PytorchWildlife's ``PostProcess`` does it.
"""

from __future__ import annotations

import torch
from standins import ConvBN, RepConv
from torch import nn

REG_MAX = 16
STRIDES = (8, 16, 32)


def conv(c_in, c_out, k=1, s=1, groups=1, act=nn.SiLU):
    return ConvBN(c_in, c_out, k, s, groups=groups, act=act, eps=1e-3)


class Bottleneck(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1, self.conv2 = RepConv(c, c, eps=1e-3), conv(c, c, 3)

    def forward(self, x):
        return x + self.conv2(self.conv1(x))


class RepNCSP(nn.Module):
    def __init__(self, c_in, c_out, repeat):
        super().__init__()
        neck = c_out // 2
        self.conv1, self.conv2, self.conv3 = conv(c_in, neck), conv(c_in, neck), conv(2 * neck, c_out)
        self.bottleneck = nn.Sequential(*[Bottleneck(neck) for _ in range(repeat)])

    def forward(self, x):
        return self.conv3(torch.cat([self.bottleneck(self.conv1(x)), self.conv2(x)], 1))


class ELAN(nn.Module):
    """1x1 conv split in two halves; the second goes through two stages; all four are concatenated and mixed.
    ``repeat`` None: the plain ELAN (3x3 convs); else RepNCSPELAN (each stage a RepNCSP then a 3x3 conv)."""

    def __init__(self, c_in, c_out, part, repeat=None):
        super().__init__()
        proc = part // 2
        self.conv1 = conv(c_in, part)
        if repeat is None:
            self.conv2, self.conv3 = conv(part // 2, proc, 3), conv(proc, proc, 3)
        else:
            self.conv2 = nn.Sequential(RepNCSP(part // 2, proc, repeat), conv(proc, proc, 3))
            self.conv3 = nn.Sequential(RepNCSP(proc, proc, repeat), conv(proc, proc, 3))
        self.conv4 = conv(part + 2 * proc, c_out)

    def forward(self, x):
        x1, x2 = self.conv1(x).chunk(2, 1)
        x3 = self.conv2(x2)
        x4 = self.conv3(x3)
        return self.conv4(torch.cat([x1, x2, x3, x4], 1))


class AConv(nn.Module):
    """2x2 average pool (stride 1, no padding), then a 3x3 stride-2 conv."""

    def __init__(self, c_in, c_out):
        super().__init__()
        self.conv = conv(c_in, c_out, 3, 2)

    def forward(self, x):
        return self.conv(nn.functional.avg_pool2d(x, 2, 1))


class ADown(nn.Module):
    """The same average pool, then half the channels through a 3x3 stride-2 conv, half through a 3x3 stride-2
    max pool and a 1x1 conv."""

    def __init__(self, c_in, c_out):
        super().__init__()
        self.conv1, self.conv2 = conv(c_in // 2, c_out // 2, 3, 2), conv(c_in // 2, c_out // 2)

    def forward(self, x):
        x1, x2 = nn.functional.avg_pool2d(x, 2, 1).chunk(2, 1)
        return torch.cat([self.conv1(x1), self.conv2(nn.functional.max_pool2d(x2, 3, 2, 1))], 1)


class SPPELAN(nn.Module):
    def __init__(self, c_in, c_out):
        super().__init__()
        neck = c_out // 2
        self.conv1, self.conv5 = conv(c_in, neck), conv(4 * neck, c_out)

    def forward(self, x):
        feats = [self.conv1(x)]
        for _ in range(3):
            feats.append(nn.functional.max_pool2d(feats[-1], 5, 1, 2))
        return self.conv5(torch.cat(feats, 1))


class Up(nn.Module):
    def forward(self, x):
        return nn.functional.interpolate(x, scale_factor=2.0, mode="nearest")


class Cat(nn.Module):
    def forward(self, xs):
        return torch.cat(xs, 1)


class Head(nn.Module):
    """One scale of MultiheadDetection: box distributions (4 x reg_max) and class logits."""

    def __init__(self, first, c_in, nc):
        super().__init__()
        box = max(-(-(first // 4) // 4) * 4, 4 * REG_MAX)
        cls = max(first, min(nc * 2, 128))
        self.box = nn.Sequential(conv(c_in, box, 3), conv(box, box, 3, groups=4),
                                 nn.Conv2d(box, 4 * REG_MAX, 1, groups=4))
        self.cls = nn.Sequential(conv(c_in, cls, 3), conv(cls, cls, 3), nn.Conv2d(cls, nc, 1))

    def forward(self, x, stride):
        b, _, h, w = x.shape
        dist = self.box(x).view(b, 4, REG_MAX, h * w).softmax(2)
        dist = (dist * torch.arange(REG_MAX, dtype=x.dtype).view(1, 1, -1, 1)).sum(2) * stride  # l, t, r, b
        ys, xs = torch.meshgrid(torch.arange(h, dtype=x.dtype), torch.arange(w, dtype=x.dtype), indexing="ij")
        ax, ay = (xs.reshape(1, -1) + 0.5) * stride, (ys.reshape(1, -1) + 0.5) * stride
        left, top, right, bottom = dist.unbind(1)
        boxes = torch.stack([ax + (right - left) / 2, ay + (bottom - top) / 2, left + right, top + bottom], 1)
        return torch.cat([boxes, self.cls(x).flatten(2).sigmoid()], 1)


# (tag, layer, arguments, source): the main branch of each config, its channels; ELAN arguments are
# (out, part, RepNCSP repeats or None for the plain ELAN); a source is -1 (the layer before) or tags
V9S = [("", "conv", (32, 3, 2), -1), ("", "conv", (64, 3, 2), -1), ("", "ELAN", (64, 64, None), -1),
       ("", "AConv", (128,), -1), ("B3", "ELAN", (128, 128, 3), -1),
       ("", "AConv", (192,), -1), ("B4", "ELAN", (192, 192, 3), -1),
       ("", "AConv", (256,), -1), ("B5", "ELAN", (256, 256, 3), -1),
       ("N3", "SPPELAN", (256,), -1), ("", "Up", (), -1), ("", "Cat", (), [-1, "B4"]),
       ("N4", "ELAN", (192, 192, 3), -1), ("", "Up", (), -1), ("", "Cat", (), [-1, "B3"]),
       ("P3", "ELAN", (128, 128, 3), -1), ("", "AConv", (96,), -1), ("", "Cat", (), [-1, "N4"]),
       ("P4", "ELAN", (192, 192, 3), -1), ("", "AConv", (128,), -1), ("", "Cat", (), [-1, "N3"]),
       ("P5", "ELAN", (256, 256, 3), -1)]
V9S_AUX = [("A5", "SPPELAN", (256,), "B5"), ("", "Up", (), -1), ("", "Cat", (), [-1, "B4"]),
           ("A4", "ELAN", (192, 192, 3), -1), ("", "Up", (), -1), ("", "Cat", (), [-1, "B3"]),
           ("A3", "ELAN", (128, 128, 3), -1)]
V9C = [("", "conv", (64, 3, 2), -1), ("", "conv", (128, 3, 2), -1), ("", "ELAN", (256, 128, 1), -1),
       ("", "ADown", (256,), -1), ("B3", "ELAN", (512, 256, 1), -1),
       ("", "ADown", (512,), -1), ("B4", "ELAN", (512, 512, 1), -1),
       ("", "ADown", (512,), -1), ("B5", "ELAN", (512, 512, 1), -1),
       ("N3", "SPPELAN", (512,), -1), ("", "Up", (), -1), ("", "Cat", (), [-1, "B4"]),
       ("N4", "ELAN", (512, 512, 1), -1), ("", "Up", (), -1), ("", "Cat", (), [-1, "B3"]),
       ("P3", "ELAN", (256, 256, 1), -1), ("", "ADown", (256,), -1), ("", "Cat", (), [-1, "N4"]),
       ("P4", "ELAN", (512, 512, 1), -1), ("", "ADown", (512,), -1), ("", "Cat", (), [-1, "N3"]),
       ("P5", "ELAN", (512, 512, 1), -1)]
CONFIGS = {"v9-s": V9S, "v9-c": V9C}


class YoloV9(nn.Module):
    layout = "v8"

    def __init__(self, config: str = "v9-s", nc: int = 3, width: float = 1.0, depth: float = 1.0,
                 auxiliary: bool = False):
        """``width``/``depth``: multipliers of channels and RepNCSP repeats, below 1 for fast tests only.
        ``auxiliary``: also build v9-s's training-only branch (to count its parameters; never run)."""
        super().__init__()
        ch = {}  # tag or index -> channels out
        self.layers, self.sources, self.tags = nn.ModuleList(), [], []
        c_prev = 3

        def scaled(c):
            return max(8, int(c * width) // 8 * 8)

        spec = CONFIGS[config] + (V9S_AUX if auxiliary else [])
        for i, (tag, kind, args, source) in enumerate(spec):
            srcs = source if isinstance(source, list) else [source]
            c_in = [ch[i - 1] if s == -1 else ch[s] for s in srcs] if i else [3]
            c_prev = c_in[0]
            if kind == "conv":
                layer, c_out = conv(c_prev, scaled(args[0]), args[1], args[2]), scaled(args[0])
            elif kind == "ELAN":
                reps = None if args[2] is None else max(1, round(args[2] * depth))
                layer, c_out = ELAN(c_prev, scaled(args[0]), scaled(args[1]), reps), scaled(args[0])
            elif kind in ("AConv", "ADown", "SPPELAN"):
                cls = {"AConv": AConv, "ADown": ADown, "SPPELAN": SPPELAN}[kind]
                layer, c_out = cls(c_prev, scaled(args[0])), scaled(args[0])
            elif kind == "Up":
                layer, c_out = Up(), c_prev
            else:
                layer, c_out = Cat(), sum(c_in)
            self.layers.append(layer)
            self.sources.append(source)
            self.tags.append(tag)
            ch[i] = c_out
            if tag:
                ch[tag] = c_out
        self.main = len(CONFIGS[config])
        self.heads = nn.ModuleList(Head(ch["P3"], ch[t], nc) for t in ("P3", "P4", "P5"))
        if auxiliary:
            self.aux_heads = nn.ModuleList(Head(ch["A3"], ch[t], nc) for t in ("A3", "A4", "A5"))
        self.score_layers = [h.cls[-1] for h in self.heads]

    def forward(self, x):
        outs, tagged = [], {}
        for layer, source, tag in zip(self.layers[: self.main], self.sources, self.tags, strict=False):
            if isinstance(source, list):
                x = layer([x if s == -1 else tagged[s] for s in source])
            else:
                x = layer(x if source == -1 else tagged[source])
            if tag:
                tagged[tag] = x
        for head, tag, stride in zip(self.heads, ("P3", "P4", "P5"), STRIDES, strict=True):
            outs.append(head(tagged[tag], stride))
        return torch.cat(outs, 2)

