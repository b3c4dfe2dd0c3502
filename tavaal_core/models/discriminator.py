"""VAAL / TA-VAAL discriminator: an MLP on ``concat(mu, r)`` that returns LOGITS.

The reference codes end the MLP with a sigmoid and train it with ``BCELoss``; we return logits and
train with ``BCEWithLogitsLoss`` (the same function, numerically stable). The discriminator
likelihood, "probability labeled", is ``sigmoid(logits)``; VAAL (Sinha et al. 2019) and TA-VAAL
(Kim et al. 2021, eq. 7) select the candidates with the LOWEST likelihood.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import ConfigError

__all__ = ["Discriminator"]


class Discriminator(nn.Module):
    """MLP ``(latent_dim + rank_dim) -> hidden -> ... -> 1`` with ReLU between linear layers.

    Parameters
    ----------
    latent_dim : size of ``mu``.
    rank_dim : 1 for TA-VAAL (``r`` is concatenated to ``mu``), 0 for VAAL.
    hidden : width of the hidden layers (TA-VAAL paper: 512; two-moons: 64).
    layers : number of linear layers in total (TA-VAAL paper, images: 5; two-moons: 2).

    ``forward(mu, r=None) -> logits`` of shape ``(N,)``.
    """

    def __init__(self, latent_dim: int, rank_dim: int = 0, hidden: int = 512, layers: int = 5):
        super().__init__()
        if layers < 1:
            raise ConfigError("discriminator_layers", f"must be >= 1, got {layers}")
        if hidden < 1:
            raise ConfigError("discriminator_hidden", f"must be >= 1, got {hidden}")
        self.latent_dim = int(latent_dim)
        self.rank_dim = int(rank_dim)
        mods: list[nn.Module] = []
        cin = self.latent_dim + self.rank_dim
        for _ in range(layers - 1):
            mods += [nn.Linear(cin, hidden), nn.ReLU(inplace=True)]
            cin = hidden
        mods.append(nn.Linear(cin, 1))
        self.net = nn.Sequential(*mods)
        # VAAL's Discriminator.weight_init: kaiming-normal weights, zero biases.
        for m in self.net:
            if isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, mu: Tensor, r: Tensor | None = None) -> Tensor:
        if self.rank_dim == 0:
            if r is not None:
                raise ValueError("this discriminator was built with rank_dim=0 and takes no rank input r")
            h = mu
        else:
            if r is None:
                raise ValueError(f"this discriminator was built with rank_dim={self.rank_dim} and needs r")
            h = torch.cat([mu, r.reshape(mu.shape[0], self.rank_dim).to(dtype=mu.dtype)], dim=1)
        return self.net(h).squeeze(1)
