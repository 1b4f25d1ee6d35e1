"""RT-DETRv2 as MegaDetector v6 (Apache) builds it, written for Odin from the configs and layer definitions
that PytorchWildlife vendors from lyuwenyu/RT-DETR (Apache-2.0), ``models/detection/rtdetr_apache/
rtdetrv2_pytorch``, read 2026-11-24:

- MDV6-apa-rtdetr-c: ``rtdetrv2_r18vd_120e_megadetector.yml``: ResNet-18-vd backbone (deep stem, average-pool
  shortcuts), hybrid encoder with hidden 256, feed-forward 1024, CSP expansion 0.5, decoder of 3 layers;
- MDV6-apa-rtdetr-e: ``rtdetrv2_r101vd_6x_megadetector.yml``: ResNet-101-vd, encoder hidden 384, feed-forward
  2048, expansion 1.0, decoder of 6 layers;
- both (``include/rtdetrv2_r50vd.yml``): 640 x 640 input, features at strides 8/16/32, one transformer
  encoder layer (8 heads, GELU) on the stride-32 map, 300 queries picked from the encoder's best anchors, a
  decoder of hidden 256, 8 heads, feed-forward 1024, deformable cross-attention with 4 points per level,
  3 classes. The publisher's parameter counts: 20 M and 76 M (PytorchWildlife's model zoo, RT-DETRv2's README).

``forward`` gives the engine's ``rtdetr`` layout: (batch, 300, 4 + classes), the last decoder layer's boxes
(centre x, centre y, width, height in 0..1 of the input) and sigmoid class probabilities, which is what the
publisher's post-processor reads before its top-k (``RTDETRPostProcessor``, focal loss: sigmoid scores).
Training-only parts (denoising queries, auxiliary outputs) are left out but for the denoising embedding's few
parameters, kept so that the count compares.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from standins import ConvBN, RepConv
from torch import nn

DEPTHS = {18: (2, 2, 2, 2), 101: (3, 4, 23, 3)}
# model: (ResNet depth, encoder hidden, encoder feed-forward, CSP expansion, decoder layers)
CONFIGS = {"r18": (18, 256, 1024, 0.5, 3), "r101": (101, 384, 2048, 1.0, 6)}


class Block(nn.Module):
    """ResNet-vd block: basic (two 3x3) below 50 layers, else bottleneck (1x1, 3x3 with the stride, 1x1 x4);
    a changing shortcut is a 2x2 average pool then a 1x1 conv when it strides, else a 1x1 conv."""

    def __init__(self, c_in, c, stride, bottleneck):
        super().__init__()
        c_out = c * 4 if bottleneck else c
        if bottleneck:
            self.branch = nn.Sequential(ConvBN(c_in, c, 1, act=nn.ReLU), ConvBN(c, c, 3, stride, act=nn.ReLU),
                                        ConvBN(c, c_out, 1, act=None))
        else:
            self.branch = nn.Sequential(ConvBN(c_in, c, 3, stride, act=nn.ReLU), ConvBN(c, c, 3, act=None))
        if c_in == c_out and stride == 1:
            self.short = nn.Identity()
        elif stride == 2:
            self.short = nn.Sequential(nn.AvgPool2d(2, 2, 0, ceil_mode=True), ConvBN(c_in, c_out, 1, act=None))
        else:
            self.short = ConvBN(c_in, c_out, 1, act=None)

    def forward(self, x):
        return F.relu(self.branch(x) + self.short(x))


class ResNetVD(nn.Module):
    def __init__(self, depth, width=1.0):
        super().__init__()
        w = [max(8, int(c * width)) for c in (32, 64, 128, 256, 512)]
        self.stem = nn.Sequential(ConvBN(3, w[0], 3, 2, act=nn.ReLU), ConvBN(w[0], w[0], 3, act=nn.ReLU),
                                  ConvBN(w[0], w[1], 3, act=nn.ReLU), nn.MaxPool2d(3, 2, 1))
        bottleneck = depth >= 50
        self.stages, c_in = nn.ModuleList(), w[1]
        for i, (count, c) in enumerate(zip(DEPTHS[depth], w[1:], strict=True)):
            blocks = []
            for j in range(count):
                blocks.append(Block(c_in, c, 2 if j == 0 and i else 1, bottleneck))
                c_in = c * 4 if bottleneck else c
            self.stages.append(nn.Sequential(*blocks))
        self.out_channels = [c * (4 if bottleneck else 1) for c in w[2:]]

    def forward(self, x):
        x, outs = self.stem(x), []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i:
                outs.append(x)
        return outs


class CSPRep(nn.Module):
    def __init__(self, c_in, c_out, n, expansion):
        super().__init__()
        hidden = int(c_out * expansion)
        self.conv1, self.conv2 = ConvBN(c_in, hidden, 1), ConvBN(c_in, hidden, 1)
        self.blocks = nn.Sequential(*[RepConv(hidden, hidden) for _ in range(n)])
        self.conv3 = ConvBN(hidden, c_out, 1) if hidden != c_out else nn.Identity()

    def forward(self, x):
        return self.conv3(self.blocks(self.conv1(x)) + self.conv2(x))


def sincos(h, w, dim, temperature=10000.0):
    """2-D sine-cosine position embedding, (1, h*w, dim), in the order of the flattened map."""
    gw, gh = torch.meshgrid(torch.arange(w, dtype=torch.float32), torch.arange(h, dtype=torch.float32),
                            indexing="ij")
    omega = 1.0 / temperature ** (torch.arange(dim // 4, dtype=torch.float32) / (dim // 4))
    ow, oh = gw.flatten()[:, None] * omega, gh.flatten()[:, None] * omega
    return torch.cat([ow.sin(), ow.cos(), oh.sin(), oh.cos()], 1)[None]


class EncoderLayer(nn.Module):
    """Post-norm transformer layer; ``cross``: deformable cross-attention between self-attention and the FFN
    (a decoder layer), else an encoder layer."""

    def __init__(self, dim, ffn, act, cross=None):
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, 8, batch_first=True)
        self.cross = cross
        self.norm_cross = nn.LayerNorm(dim) if cross is not None else None
        self.linear1, self.linear2, self.act = nn.Linear(dim, ffn), nn.Linear(ffn, dim), act()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(self, x, pos, ref=None, memory=None, shapes=None):
        q = x + pos
        x = self.norm1(x + self.attn(q, q, x, need_weights=False)[0])
        if self.cross is not None:
            x = self.norm_cross(x + self.cross(x + pos, ref, memory, shapes))
        return self.norm2(x + self.linear2(self.act(self.linear1(x))))


class HybridEncoder(nn.Module):
    def __init__(self, in_channels, hidden, ffn, expansion):
        super().__init__()
        self.hidden = hidden
        self.proj = nn.ModuleList(ConvBN(c, hidden, 1, act=None) for c in in_channels)
        self.encoder = EncoderLayer(hidden, ffn, nn.GELU)
        self.lateral = nn.ModuleList(ConvBN(hidden, hidden, 1) for _ in range(2))
        self.fpn = nn.ModuleList(CSPRep(2 * hidden, hidden, 3, expansion) for _ in range(2))
        self.down = nn.ModuleList(ConvBN(hidden, hidden, 3, 2) for _ in range(2))
        self.pan = nn.ModuleList(CSPRep(2 * hidden, hidden, 3, expansion) for _ in range(2))

    def forward(self, feats):
        p = [proj(f) for proj, f in zip(self.proj, feats, strict=True)]
        b, c, h, w = p[2].shape
        p[2] = self.encoder(p[2].flatten(2).transpose(1, 2), sincos(h, w, c)).transpose(1, 2).reshape(b, c, h, w)
        inner = [p[2]]
        for i, low in enumerate((p[1], p[0])):  # top-down
            inner[0] = self.lateral[i](inner[0])
            inner.insert(0, self.fpn[i](torch.cat([F.interpolate(inner[0], scale_factor=2.0), low], 1)))
        outs = [inner[0]]
        for i in range(2):  # bottom-up
            outs.append(self.pan[i](torch.cat([self.down[i](outs[-1]), inner[i + 1]], 1)))
        return outs


def mlp(dims):
    layers = []
    for a, b in itertools.pairwise(dims):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


class DeformableAttention(nn.Module):
    """Multi-scale deformable attention, RT-DETRv2's form: 4 points per level around each query's reference
    box, offsets scaled by the box's size / points / 2, bilinear sampling, weights softmaxed over all points."""

    def __init__(self, dim=256, heads=8, levels=3, points=4):
        super().__init__()
        self.heads, self.levels, self.points = heads, levels, points
        self.offsets = nn.Linear(dim, heads * levels * points * 2)
        self.weights = nn.Linear(dim, heads * levels * points)
        self.value, self.out = nn.Linear(dim, dim), nn.Linear(dim, dim)

    def forward(self, query, ref, memory, shapes):
        b, q, dim = query.shape
        n, hd = self.levels * self.points, dim // self.heads
        value = self.value(memory).view(b, -1, self.heads, hd).permute(0, 2, 3, 1).reshape(b * self.heads, hd, -1)
        offset = self.offsets(query).view(b, q, self.heads, n, 2) / self.points * ref[:, :, None, None, 2:] * 0.5
        grid = (2 * (ref[:, :, None, None, :2] + offset) - 1).permute(0, 2, 1, 3, 4).flatten(0, 1)
        weights = self.weights(query).view(b, q, self.heads, n).softmax(-1)
        sampled, start = [], 0
        for lvl, (h, w) in enumerate(shapes):
            v = value[:, :, start:start + h * w].reshape(b * self.heads, hd, h, w)
            pts = grid[:, :, lvl * self.points:(lvl + 1) * self.points]
            sampled.append(F.grid_sample(v, pts, mode="bilinear", padding_mode="zeros", align_corners=False))
            start += h * w
        weights = weights.permute(0, 2, 1, 3).reshape(b * self.heads, 1, q, n)
        out = (torch.cat(sampled, -1) * weights).sum(-1).view(b, dim, q).transpose(1, 2)
        return self.out(out)


def inverse_sigmoid(x, eps=1e-5):
    x = x.clamp(0, 1)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))


class Decoder(nn.Module):
    def __init__(self, feat_channels, nc, layers, dim=256, queries=300, ffn=1024):
        super().__init__()
        self.queries = queries
        self.proj = nn.ModuleList(ConvBN(c, dim, 1, act=None) for c in feat_channels)
        self.layers = nn.ModuleList(EncoderLayer(dim, ffn, nn.ReLU, cross=DeformableAttention(dim))
                                    for _ in range(layers))
        self.denoising_class_embed = nn.Embedding(nc + 1, dim)  # training only; kept for the parameter count
        self.query_pos = mlp([4, 2 * dim, dim])
        self.enc_output = nn.Sequential(nn.Linear(dim, dim), nn.LayerNorm(dim))
        self.enc_score, self.enc_bbox = nn.Linear(dim, nc), mlp([dim, dim, dim, 4])
        self.dec_score = nn.ModuleList(nn.Linear(dim, nc) for _ in range(layers))
        self.dec_bbox = nn.ModuleList(mlp([dim, dim, dim, 4]) for _ in range(layers))

    @staticmethod
    def anchors(shapes, eps=0.01):
        out = []
        for lvl, (h, w) in enumerate(shapes):
            ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
            xy = (torch.stack([xs, ys], -1).reshape(-1, 2).float() + 0.5) / torch.tensor([w, h])
            out.append(torch.cat([xy, torch.full_like(xy, 0.05 * 2.0**lvl)], -1))
        anchors = torch.cat(out)[None]
        valid = ((anchors > eps) & (anchors < 1 - eps)).all(-1, keepdim=True)
        return torch.where(valid, torch.log(anchors / (1 - anchors)), torch.inf), valid

    def forward(self, feats):
        maps = [proj(f) for proj, f in zip(self.proj, feats, strict=True)]
        shapes = [tuple(m.shape[2:]) for m in maps]
        memory = torch.cat([m.flatten(2).transpose(1, 2) for m in maps], 1)
        anchors, valid = self.anchors(shapes)
        memory = valid.to(memory.dtype) * memory
        enc = self.enc_output(memory)
        top = self.enc_score(enc).max(-1).values.topk(self.queries, dim=1).indices[..., None]
        target = enc.gather(1, top.expand(-1, -1, enc.shape[-1]))
        ref = (self.enc_bbox(enc) + anchors).gather(1, top.expand(-1, -1, 4)).sigmoid()
        for layer, bbox in zip(self.layers, self.dec_bbox, strict=True):
            target = layer(target, self.query_pos(ref), ref, memory, shapes)
            ref = (bbox(target) + inverse_sigmoid(ref)).sigmoid()
        return torch.cat([ref, self.dec_score[-1](target).sigmoid()], -1)


class RTDETRv2(nn.Module):
    layout = "rtdetr"

    def __init__(self, config="r18", nc=3, width=1.0):
        """``width``: multiplier of every channel count, below 1 for fast tests only."""
        super().__init__()
        depth, hidden, ffn, expansion, layers = CONFIGS[config]
        hidden = max(32, int(hidden * width) // 32 * 32)
        self.backbone = ResNetVD(depth, width)
        self.encoder = HybridEncoder(self.backbone.out_channels, hidden, ffn, expansion)
        dim = max(64, int(256 * width) // 32 * 32)
        self.decoder = Decoder([hidden] * 3, nc, layers, dim=dim, ffn=4 * dim)
        self.score_layers = [self.decoder.dec_score[-1]]

    def forward(self, x):
        return self.decoder(self.encoder(self.backbone(x)))

