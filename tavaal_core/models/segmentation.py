"""Segmentation task learners: per-pixel logits, a pooled embedding and the feature taps of the loss head.

Both return a :class:`~.task.TaskOutput` whose ``logits`` are (B, K, H, W) at the input's size,
``embedding`` the globally pooled deepest features (core-set, MedAL, feature maps), ``taps`` the feature
maps the loss head pools (as Learning Loss taps ResNet's stages), and ``pixel_features`` the maps that
``classify`` turns into logits. Dropout sits only right before the 1x1 classifier, so MC dropout (BALD)
samples ``classify(dropout(pixel_features))`` without re-running the network, and BatchNorm stays
deterministic in eval mode.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .task import TaskOutput


def _conv_bn_relu(cin: int, cout: int, dilation: int = 1, stride: int = 1, kernel: int = 3) -> nn.Sequential:
    pad = dilation * (kernel // 2)
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, pad, dilation=dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class EncoderDecoder(nn.Module):
    """A small U-Net-shaped encoder-decoder for CPU demos (about 21k parameters at the default width 8:
    about 5 ms per 32x32 image and training step on one loaded CPU core, half of width 16's cost for a
    few points of mean IoU on the shapes set).

    Encoder: a 3x3 conv-BN-ReLU at full size (w), then two stages of two conv-BN-ReLU after a 2x2
    max-pool (2w at 1/2, 4w at 1/4). Decoder: bilinear up-sampling, a 1x1 projection added to the encoder
    map of that size (additive skips are cheaper than concatenation at full size), one conv-BN-ReLU per
    level; then dropout and a 1x1 classifier. The loss head taps the three encoder stages; the embedding
    is the bottleneck (4w) averaged over the image. Any input size works.
    """

    def __init__(self, in_channels: int, num_classes: int, width: int = 8, dropout: float = 0.2):
        super().__init__()
        w = width
        self.enc1 = _conv_bn_relu(in_channels, w)
        self.enc2 = nn.Sequential(_conv_bn_relu(w, 2 * w), _conv_bn_relu(2 * w, 2 * w))
        self.enc3 = nn.Sequential(_conv_bn_relu(2 * w, 4 * w), _conv_bn_relu(4 * w, 4 * w))
        self.up3 = nn.Conv2d(4 * w, 2 * w, 1, bias=False)
        self.dec2 = _conv_bn_relu(2 * w, 2 * w)
        self.up2 = nn.Conv2d(2 * w, w, 1, bias=False)
        self.dec1 = _conv_bn_relu(w, w)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Conv2d(w, num_classes, 1)
        self.tap_dims = [w, 2 * w, 4 * w]
        self.embedding_dim = 4 * w

    def forward(self, x: torch.Tensor) -> TaskOutput:
        f1 = self.enc1(x)
        f2 = self.enc2(F.max_pool2d(f1, 2, ceil_mode=True))
        f3 = self.enc3(F.max_pool2d(f2, 2, ceil_mode=True))
        d2 = self.dec2(f2 + F.interpolate(self.up3(f3), size=f2.shape[2:], mode="bilinear", align_corners=False))
        d1 = self.dec1(f1 + F.interpolate(self.up2(d2), size=f1.shape[2:], mode="bilinear", align_corners=False))
        emb = torch.flatten(F.adaptive_avg_pool2d(f3, 1), 1)
        return TaskOutput(self.classify(self.dropout(d1), x.shape[2:]), emb, [f1, f2, f3], pixel_features=d1)

    def classify(self, features: torch.Tensor, size) -> torch.Tensor:
        return self.classifier(features)  # already at the input's size


class _BasicBlock(nn.Module):
    """ResNet's basic block with dilation (DRN keeps the resolution and dilates instead of striding)."""

    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1, residual: bool = True):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, dilation, dilation=dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.residual = residual
        self.down = None
        if residual and (stride != 1 or cin != cout):
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        if self.residual:
            out = out + (x if self.down is None else self.down(x))
        return F.relu(out, inplace=True)


class DilatedResNet(nn.Module):
    """A dilated residual network after DRN-C-26 (Yu, Koltun & Funkhouser, "Dilated Residual Networks",
    CVPR 2017), the task learner of VAAL's and TA-VAAL's Cityscapes experiments.

    Output stride 8: a 7x7 stem (16) and two conv levels (16, 32 with stride 2), two residual levels
    with stride 2 (64, 128, two basic blocks each), two dilated residual levels (256 at dilation 2,
    512 at dilation 4), then DRN-C's two degridding levels without residuals (512 at dilation 2, then 1).
    Segmentation head: dropout, a 1x1 conv to the classes, bilinear up-sampling to the input size.
    The loss head taps the four residual levels (64, 128, 256, 512), like ResNet-18's stages; the
    embedding is the last feature map averaged over the image (512). About 21M parameters; written
    here from the paper's description (no pretrained weights are loaded).
    """

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.2):
        super().__init__()
        self.stem = nn.Sequential(
            _conv_bn_relu(in_channels, 16, kernel=7),
            _BasicBlock(16, 16, residual=False),
            _BasicBlock(16, 32, stride=2, residual=False),
        )
        self.level3 = nn.Sequential(_BasicBlock(32, 64, stride=2), _BasicBlock(64, 64))
        self.level4 = nn.Sequential(_BasicBlock(64, 128, stride=2), _BasicBlock(128, 128))
        self.level5 = nn.Sequential(_BasicBlock(128, 256, dilation=2), _BasicBlock(256, 256, dilation=2))
        self.level6 = nn.Sequential(_BasicBlock(256, 512, dilation=4), _BasicBlock(512, 512, dilation=4))
        self.degrid = nn.Sequential(_BasicBlock(512, 512, dilation=2, residual=False),
                                    _BasicBlock(512, 512, dilation=1, residual=False))
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Conv2d(512, num_classes, 1)
        self.tap_dims = [64, 128, 256, 512]
        self.embedding_dim = 512
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> TaskOutput:
        h = self.stem(x)
        taps = []
        for level in (self.level3, self.level4, self.level5, self.level6):
            h = level(h)
            taps.append(h)
        h = self.degrid(h)
        emb = torch.flatten(F.adaptive_avg_pool2d(h, 1), 1)
        return TaskOutput(self.classify(self.dropout(h), x.shape[2:]), emb, taps, pixel_features=h)

    def classify(self, features: torch.Tensor, size) -> torch.Tensor:
        return F.interpolate(self.classifier(features), size=tuple(size), mode="bilinear", align_corners=False)
