"""The loss-prediction head (Learning Loss, Yoo & Kweon 2019) = TA-VAAL's Ranker, and its two losses."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class LossPredictionHead(nn.Module):
    """Each tap -> global average pool -> Linear(C, hidden) -> ReLU; concatenate -> Linear(., 1).

    ``hidden=None`` skips the per-tap layer (two-moons: "one linear layer on the middle hidden layer").
    ``extra_dim`` > 0 appends extra features (Godwin et al. 2022: the VAE's ``mu``, scaled by alpha) to the
    concatenated vector before the last linear layer.
    """

    def __init__(self, tap_dims: list[int], hidden: int | None = 128, extra_dim: int = 0):
        super().__init__()
        self.hidden = hidden
        self.extra_dim = extra_dim
        if hidden is None:
            self.tap_layers = nn.ModuleList([nn.Identity() for _ in tap_dims])
            concat_dim = sum(tap_dims)
        else:
            self.tap_layers = nn.ModuleList([nn.Linear(c, hidden) for c in tap_dims])
            concat_dim = hidden * len(tap_dims)
        self.out = nn.Linear(concat_dim + extra_dim, 1)

    def features(self, taps: list[torch.Tensor]) -> torch.Tensor:
        parts = []
        for tap, layer in zip(taps, self.tap_layers):
            if tap.dim() == 4:
                tap = F.adaptive_avg_pool2d(tap, 1).flatten(1)
            parts.append(tap if self.hidden is None else F.relu(layer(tap)))
        return torch.cat(parts, dim=1)

    def forward(self, taps: list[torch.Tensor], extra: torch.Tensor | None = None) -> torch.Tensor:
        c = self.features(taps)
        if self.extra_dim:
            if extra is None:
                raise ValueError("this head was built with extra features; pass `extra`")
            c = torch.cat([c, extra.to(c.dtype)], dim=1)
        return self.out(c).squeeze(1)


def _pairs(predicted: torch.Tensor, true_loss: torch.Tensor):
    """Split the batch in two halves, pairing sample i with sample B-1-i (the Learning Loss code's
    ``x - x.flip(0)``); an odd batch drops its middle sample."""
    half = predicted.shape[0] // 2
    true_loss = true_loss.detach()
    return (predicted[:half], predicted.flip(0)[:half], true_loss[:half], true_loss.flip(0)[:half])


def margin_ranking_loss(predicted: torch.Tensor, true_loss: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """Learning Loss: mean over pairs of max(0, -s * (l_hat_i - l_hat_j) + xi), s = +1 if l_i > l_j else -1."""
    p_i, p_j, l_i, l_j = _pairs(predicted, true_loss)
    if p_i.numel() == 0:
        return predicted.sum() * 0.0
    sign = torch.where(l_i > l_j, 1.0, -1.0).to(predicted.dtype)
    return torch.clamp(-sign * (p_i - p_j) + margin, min=0).mean()


def ranking_bce_loss(predicted: torch.Tensor, true_loss: torch.Tensor) -> torch.Tensor:
    """TA-VAAL eq. (1): BCE(sigmoid(l_hat_i - l_hat_j), 1[l_i > l_j]) over pairs."""
    p_i, p_j, l_i, l_j = _pairs(predicted, true_loss)
    if p_i.numel() == 0:
        return predicted.sum() * 0.0
    target = (l_i > l_j).to(predicted.dtype)
    return F.binary_cross_entropy_with_logits(p_i - p_j, target)


HEAD_LOSSES = {"margin": margin_ranking_loss, "ranking": ranking_bce_loss}
