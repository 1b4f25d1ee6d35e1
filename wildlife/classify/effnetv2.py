"""EfficientNetV2-M in plain torch (no torchvision): the network SpeciesNet's classifier is built on.

The architecture is the published one (Tan & Le 2021, "EfficientNetV2: Smaller Models and Faster Training",
arXiv:2104.00298; the M variant's stage table from the authors' ``effnetv2_configs.py`` and Keras'
``efficientnet_v2.py``, ``efficientnetv2-m``): a 3x3 stride-2 stem of 24 channels, seven stages of
Fused-MBConv then MBConv blocks (squeeze-and-excitation in the MBConv stages, reduced to a quarter of the
block's *input* width), SiLU everywhere, a 1x1 head convolution to 1280 channels, global average pooling and
one dense layer with one output per label. 480x480 crops in, logits out.

It is kept in inference form: every batch normalisation is folded into the convolution before it, so each
convolution has a bias and there is no BatchNorm module. SpeciesNet's PyTorch release is already in this form
(tf2onnx folds Conv+BatchNormalization pairs); ``fold_batchnorm`` folds a release that is not.

Padding follows TensorFlow's ``same``: symmetric for stride 1, and for the stride-2 layers one extra row and
column at the bottom and right, which is what ``same`` gives on an even input. The five stride-2 layers see
even sizes when the input side is a multiple of 32 (480 = 15 x 32), so the model requires that.

``width`` and ``depth`` scale the channels and the repeats (1.0 and 1.0 are the M model); tests use small
widths to build the same structure with tiny weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

# (block type, repeats, kernel, stride, expand ratio, input channels, output channels, SE ratio)
# "fused": Fused-MBConv, "mb": MBConv. The M variant, effnetv2_configs.py ``v2_m_block``.
STAGES_M = (
    ("fused", 3, 3, 1, 1, 24, 24, 0.0),
    ("fused", 5, 3, 2, 4, 24, 48, 0.0),
    ("fused", 5, 3, 2, 4, 48, 80, 0.0),
    ("mb", 7, 3, 2, 4, 80, 160, 0.25),
    ("mb", 14, 3, 1, 6, 160, 176, 0.25),
    ("mb", 18, 3, 2, 6, 176, 304, 0.25),
    ("mb", 5, 3, 1, 6, 304, 512, 0.25),
)
HEAD_CHANNELS = 1280
# Keras' EfficientNetV2 builds in ``Rescaling(scale=1/128, offset=-1)`` unless include_preprocessing=False
# (keras/src/applications/efficientnet_v2.py); a release whose graph has it keeps it.
KERAS_RESCALE = (1.0 / 128.0, -1.0)
SIZE_MULTIPLE = 32  # five stride-2 layers: TF-same padding below is exact on sides that divide by 32


def round_channels(channels: float, width: float, divisor: int = 8) -> int:
    """Channels scaled by ``width``, rounded to a multiple of ``divisor`` (as the reference implementations)."""
    scaled = channels * width
    out = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if out < 0.9 * scaled:
        out += divisor
    return int(out)


class Conv(nn.Module):
    """Convolution (batch norm folded in, so with a bias), TF-``same`` padding, then SiLU where ``act``."""

    def __init__(self, c_in: int, c_out: int, k: int = 1, stride: int = 1, groups: int = 1, act: bool = True):
        super().__init__()
        # stride 1: k//2 on every side; stride 2 on an even side: (k-2)//2 before, k//2 after (TF "same")
        self.pad = nn.ZeroPad2d(((k - 2) // 2, k // 2, (k - 2) // 2, k // 2)) if stride == 2 else nn.Identity()
        self.conv = nn.Conv2d(c_in, c_out, k, stride, k // 2 if stride == 1 else 0, groups=groups, bias=True)
        self.act = nn.SiLU() if act else nn.Identity()

    def forward(self, x):
        return self.act(self.conv(self.pad(x)))


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduced: int):
        super().__init__()
        self.reduce = nn.Conv2d(channels, reduced, 1)
        self.expand = nn.Conv2d(reduced, channels, 1)

    def forward(self, x):
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.expand(nn.functional.silu(self.reduce(s))))


class Block(nn.Module):
    """One Fused-MBConv or MBConv block; the residual where the shape is kept (stochastic depth is training)."""

    def __init__(self, kind: str, k: int, stride: int, expand: int, c_in: int, c_out: int, se: float):
        super().__init__()
        mid = c_in * expand
        layers: dict[str, nn.Module] = {}  # named for reading; the order is the forward order
        if kind == "fused":
            if expand == 1:  # a single kxk convolution, activated
                layers["project"] = Conv(c_in, c_out, k, stride)
            else:
                layers["expand"] = Conv(c_in, mid, k, stride)
                layers["project"] = Conv(mid, c_out, 1, act=False)
        else:
            if expand != 1:
                layers["expand"] = Conv(c_in, mid, 1)
            layers["depthwise"] = Conv(mid, mid, k, stride, groups=mid)
            if se > 0:
                layers["se"] = SqueezeExcite(mid, max(1, int(c_in * se)))
            layers["project"] = Conv(mid, c_out, 1, act=False)
        self.layers = nn.Sequential(*layers.values())
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x):
        y = self.layers(x)
        return x + y if self.residual else y


@dataclass(frozen=True)
class Spec:
    num_classes: int
    width: float = 1.0
    depth: float = 1.0


class EfficientNetV2(nn.Module):
    """EfficientNetV2-M (at width=depth=1). ``nhwc``: the input is (batch, height, width, 3), as SpeciesNet's."""

    def __init__(self, num_classes: int, width: float = 1.0, depth: float = 1.0, nhwc: bool = True,
                 rescale: tuple[float, float] | None = None):
        super().__init__()
        self.spec = Spec(num_classes, width, depth)
        self.nhwc = nhwc
        self.rescale = rescale  # Keras' Rescaling layer in the graph, x * scale + offset, where a model has one
        c_stem = round_channels(STAGES_M[0][5], width)
        self.stem = Conv(3, c_stem, 3, 2)
        blocks = []
        c_in = c_stem
        for kind, repeats, k, stride, expand, _, c_out, se in STAGES_M:
            c_out = round_channels(c_out, width)
            for i in range(max(1, math.ceil(repeats * depth))):
                blocks.append(Block(kind, k, stride if i == 0 else 1, expand, c_in, c_out, se))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.head = Conv(c_in, round_channels(HEAD_CHANNELS, width), 1)
        self.fc = nn.Linear(round_channels(HEAD_CHANNELS, width), num_classes)

    def forward(self, x):
        if self.rescale is not None:
            x = x * self.rescale[0] + self.rescale[1]
        if self.nhwc:
            x = x.permute(0, 3, 1, 2)
        x = self.head(self.blocks(self.stem(x)))
        return self.fc(x.mean((2, 3)))


def convolutions(model: EfficientNetV2) -> list[tuple[str, nn.Conv2d]]:
    """Every convolution in the order the forward pass runs them (stem, each block's, head), with its name."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def fold_batchnorm(weight: torch.Tensor, bias: torch.Tensor | None, gamma: torch.Tensor, beta: torch.Tensor,
                   mean: torch.Tensor, var: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """A convolution followed by inference-mode batch norm, as one convolution with a bias."""
    scale = gamma / torch.sqrt(var + eps)
    b = bias if bias is not None else torch.zeros_like(mean)
    return weight * scale.reshape(-1, *([1] * (weight.dim() - 1))), (b - mean) * scale + beta
