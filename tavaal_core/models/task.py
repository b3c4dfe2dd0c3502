"""Task learners. Each returns logits, the penultimate embedding, and the feature taps the loss head reads.

All of them end in ``Dropout -> Linear``. The rate is 0 (an identity, as in the papers' models) unless
the method samples MC dropout (BALD); no other layer uses dropout, so BatchNorm layers stay deterministic
in eval mode.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F


@dataclass
class TaskOutput:
    logits: torch.Tensor  # (B, K)
    embedding: torch.Tensor  # (B, E) penultimate features (core-set, MedAL, feature maps)
    taps: list[torch.Tensor]  # inputs of the loss-prediction head
    # Segmentation models only: the maps `model.classify(dropout(pixel_features), size)` turns into the logits
    pixel_features: torch.Tensor | None = None


class MLP(nn.Module):
    """Three-layer MLP for two-moons (TA-VAAL Fig. 1). The Ranker taps the middle hidden layer."""

    def __init__(self, input_dim: int, num_classes: int, hidden: int = 64, dropout: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(input_dim, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden, num_classes)
        self.tap_dims = [hidden]
        self.embedding_dim = hidden

    def forward(self, x: torch.Tensor) -> TaskOutput:
        h1 = F.relu(self.fc1(x.flatten(1)))
        h2 = F.relu(self.fc2(h1))
        return TaskOutput(self.classifier(self.dropout(h2)), h2, [h2])


class SmallCNN(nn.Module):
    """Two conv blocks + a linear layer on the flattened maps: fast on a CPU (~0.03 s per batch of 128
    28x28 images). The loss head taps both conv blocks, as Learning Loss taps ResNet's stages.

    The linear layer reads the whole (C, H/4, W/4) map, not a global average: pooling 7x7 maps to one
    vector threw away where strokes are, and with 200 MNIST labels the pooled net reached 41% test accuracy
    against logistic regression's 80%; flattened it reaches about 90% at the same 30 epochs
    (``bench/bench_learner.py``)."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 32, embedding_dim: int = 128,
                 dropout: float = 0.0, input_size: tuple[int, int] = (28, 28)):
        super().__init__()
        self.block1 = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                                    nn.ReLU(inplace=True), nn.MaxPool2d(2))
        self.block2 = nn.Sequential(nn.Conv2d(width, 2 * width, 3, padding=1, bias=False),
                                    nn.BatchNorm2d(2 * width), nn.ReLU(inplace=True), nn.MaxPool2d(2))
        h, w = (max(1, int(s) // 4) for s in input_size)
        self.fc = nn.Linear(2 * width * h * w, embedding_dim)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(embedding_dim, num_classes)
        self.tap_dims = [width, 2 * width]
        self.embedding_dim = embedding_dim

    def forward(self, x: torch.Tensor) -> TaskOutput:
        f1 = self.block1(x)
        f2 = self.block2(f1)
        emb = F.relu(self.fc(torch.flatten(f2, 1)))
        return TaskOutput(self.classifier(self.dropout(emb)), emb, [f1, f2])


IMAGENET_WEIGHTS_FILE = "resnet18-f37072fd.pth"


def imagenet_weights_path() -> Path | None:
    """torchvision's ResNet-18 ImageNet checkpoint when it is already on disk (never downloaded here)."""
    hub = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch")) / "hub" / "checkpoints"
    path = hub / IMAGENET_WEIGHTS_FILE
    return path if path.is_file() else None


def missing_imagenet_weights(config) -> str:
    """Why a config cannot have the ImageNet weights it asks for on this machine, or "" when it can (or does
    not ask). Nothing is downloaded here."""
    if config.pretrained_weights != "imagenet" or imagenet_weights_path() is not None:
        return ""
    hub = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch")) / "hub" / "checkpoints"
    return (f"ResNet-18 ImageNet weights are absent ({hub / IMAGENET_WEIGHTS_FILE}; nothing is downloaded here): "
            "put torchvision's file there, or accept a random initialisation with pretrained 'none' "
            "(CLI: --pretrained none)")


def check_pretrained_weights(config) -> None:
    """Refuse a config that asks for ImageNet weights this machine does not have: the user either provides
    the file or accepts a random initialisation, knowingly."""
    from ..errors import ConfigError

    why = missing_imagenet_weights(config)
    if why:
        raise ConfigError("pretrained", why)


class ResNet18(nn.Module):
    """torchvision's ResNet-18 with either the CIFAR stem (3x3 conv, stride 1, no max-pool: the papers'
    setting, ~2 s per step on a 2-core CPU) or the ImageNet stem (7x7 stride 2 + max-pool: ~0.15 s per
    step). With the ImageNet stem, ImageNet weights are loaded when present locally. The loss head taps
    the four residual stages."""

    def __init__(self, in_channels: int, num_classes: int, stem: str = "cifar", dropout: float = 0.0,
                 pretrained: bool = True):
        super().__init__()
        from torchvision.models import resnet18

        net = resnet18(num_classes=1000)
        self.pretrained_loaded = False
        weights = imagenet_weights_path() if stem == "imagenet" and pretrained else None
        if weights is not None:
            net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
            self.pretrained_loaded = True
        if stem == "cifar":
            net.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
            net.maxpool = nn.Identity()
        elif in_channels != 3:
            conv = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
            if self.pretrained_loaded:  # grey input: sum the RGB filters
                conv.weight.data.copy_(net.conv1.weight.data.sum(1, keepdim=True))
            net.conv1 = conv
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layers = nn.ModuleList([net.layer1, net.layer2, net.layer3, net.layer4])
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(512, num_classes)
        self.tap_dims = [64, 128, 256, 512]
        self.embedding_dim = 512

    def forward(self, x: torch.Tensor) -> TaskOutput:
        h = self.stem(x)
        taps = []
        for layer in self.layers:
            h = layer(h)
            taps.append(h)
        emb = torch.flatten(F.adaptive_avg_pool2d(h, 1), 1)
        return TaskOutput(self.classifier(self.dropout(emb)), emb, taps)


SEGMENTATION_MODELS = ("encdec", "drn")


def build_task_model(name: str, input_shape: tuple[int, ...], num_classes: int, dropout: float = 0.0,
                     pretrained: bool = False) -> nn.Module:
    """A task learner. ``dropout`` > 0 only for methods that sample MC dropout (no paper model has it);
    ``pretrained`` loads local ImageNet weights into ``resnet18_imagenet`` (the caller checks they exist)."""
    if name in SEGMENTATION_MODELS:
        from .segmentation import DilatedResNet, EncoderDecoder

        if name == "encdec":
            return EncoderDecoder(input_shape[0], num_classes, dropout=dropout)
        return DilatedResNet(input_shape[0], num_classes, dropout=dropout)
    if name == "mlp":
        return MLP(int(torch.tensor(input_shape).prod()), num_classes, dropout=dropout)
    channels = input_shape[0]
    if name == "cnn":
        return SmallCNN(channels, num_classes, dropout=dropout, input_size=tuple(input_shape[1:]))
    if name == "resnet18":
        return ResNet18(channels, num_classes, stem="cifar", dropout=dropout, pretrained=False)
    if name == "resnet18_imagenet":
        return ResNet18(channels, num_classes, stem="imagenet", dropout=dropout, pretrained=pretrained)
    raise ValueError(f"unknown model {name!r}")
