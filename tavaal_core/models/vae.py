"""Variational auto-encoders for VAAL / TA-VAAL (adversarial) and for VAE-augmented selection.

Every VAE here has the same small interface::

    encode(x) -> (mu, logvar)          # (N, latent_dim) each; the encoder never sees r
    decode(z, r=None) -> recon         # same shape as the (normalised) input
    forward(x, r=None) -> (recon, mu, logvar)
    latent_dim                         # int attribute

``r`` is TA-VAAL's rank input (Kim et al., CVPR 2021, section 3.2): the Ranker's sigmoid output,
``(N,)`` or ``(N, rank_dim)``; it is concatenated to ``z`` at the decoder input only. A VAE built
with ``rank_dim=0`` (plain VAAL) takes no ``r``.

Reparameterisation ``z = mu + eps * exp(logvar / 2)`` happens only in train mode; in eval mode
``z = mu`` (VAAL's reference code samples in eval mode too, which only adds noise to
reconstructions; selection never uses the decoder anyway, see docs/METHODS.md "Known waste").

Classes
-------
VectorVAE      MLP VAE for vector data (two-moons).
ConvVAE        VAAL's conv VAE: stride-2 Conv-BN-ReLU blocks, linear mu/logvar, transposed-conv
               decoder. ``ConvVAE.reference`` reproduces VAAL's 23M-parameter VAE for 32x32x3.
UnsupervisedVAE  Godwin et al. 2022: four stride-2 convs + two linear heads; decoder
               one up-sampling conv then four size-preserving convs.
build_vae      Factory used by the training loops.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError

__all__ = ["VectorVAE", "ConvVAE", "UnsupervisedVAE", "build_vae", "reparameterize"]


def reparameterize(mu: Tensor, logvar: Tensor, training: bool, generator: torch.Generator | None = None) -> Tensor:
    """``z = mu + eps * std`` in train mode, ``z = mu`` in eval mode. ``eps`` comes from ``generator`` when
    given (the same numbers as ``randn_like`` after seeding the global RNG alike), else from the global RNG."""
    if not training:
        return mu
    eps = torch.randn(mu.shape, dtype=mu.dtype, device=mu.device, generator=generator)
    return mu + eps * torch.exp(0.5 * logvar)


def _kaiming_init(module: nn.Module) -> None:
    """VAAL's ``kaiming_init``: Linear and Conv2d weights He-normal, biases 0; BN weight 1, bias 0.
    (Transposed convolutions keep PyTorch's default init, as in the reference code.)"""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.kaiming_normal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class _RankInput(nn.Module):
    """Shared handling of the decoder's rank input ``r``."""

    rank_dim: int
    latent_dim: int
    # The reparameterisation noise's own generator while training (set by the training loop): no draw from
    # torch's global RNG, so two models can train at once in two threads and each stays deterministic.
    noise: torch.Generator | None = None

    def _decoder_input(self, z: Tensor, r: Tensor | None) -> Tensor:
        if self.rank_dim == 0:
            if r is not None:
                raise ValueError("this VAE was built with rank_dim=0 and takes no rank input r")
            return z
        if r is None:
            raise ValueError(f"this VAE was built with rank_dim={self.rank_dim} and needs a rank input r")
        r = r.reshape(z.shape[0], self.rank_dim).to(dtype=z.dtype)
        return torch.cat([z, r], dim=1)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:  # pragma: no cover - overridden
        raise NotImplementedError

    def decode(self, z: Tensor, r: Tensor | None = None) -> Tensor:  # pragma: no cover - overridden
        raise NotImplementedError

    def forward(self, x: Tensor, r: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        mu, logvar = self.encode(x)
        z = reparameterize(mu, logvar, self.training, self.noise)
        return self.decode(z, r), mu, logvar


# ----------------------------------------------------------------------------------------------
# Vector data
# ----------------------------------------------------------------------------------------------
class VectorVAE(_RankInput):
    """MLP VAE for vector data, shapes ``(N, input_dim)``.

    Encoder ``D -> hidden -> hidden`` (ReLU) then linear ``mu`` and ``logvar``; decoder
    ``latent_dim + rank_dim -> hidden -> hidden -> D`` (ReLU, linear output).
    """

    def __init__(self, input_dim: int, latent_dim: int = 8, hidden: int = 64, rank_dim: int = 0):
        super().__init__()
        self.input_shape = (int(input_dim),)
        self.latent_dim = int(latent_dim)
        self.rank_dim = int(rank_dim)
        self.encoder = nn.Sequential(
            nn.Linear(input_dim, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden), nn.ReLU(inplace=True),
        )
        self.fc_mu = nn.Linear(hidden, latent_dim)
        self.fc_logvar = nn.Linear(hidden, latent_dim)
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim + rank_dim, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, input_dim),
        )
        _kaiming_init(self)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.encoder(x.flatten(1))
        return self.fc_mu(h), self.fc_logvar(h)

    def decode(self, z: Tensor, r: Tensor | None = None) -> Tensor:
        return self.decoder(self._decoder_input(z, r))


# ----------------------------------------------------------------------------------------------
# Images: VAAL's conv VAE
# ----------------------------------------------------------------------------------------------
def _pad_crop(size: int, multiple: int) -> tuple[int, int, int]:
    """(padded size, pad before, pad after) so that ``size`` becomes a multiple of ``multiple``."""
    target = int(math.ceil(size / multiple) * multiple)
    before = (target - size) // 2
    return target, before, target - size - before


def conv_blocks_for(height: int, width: int) -> int:
    """Number of stride-2 blocks for an image: 8x8 -> 2, 16..31 -> 3 (28x28 -> 3), >= 32 -> 4."""
    return max(1, min(4, int(math.floor(math.log2(min(height, width)))) - 1))


class ConvVAE(_RankInput):
    """VAAL's convolutional VAE (Sinha et al. 2019), sized to the input.

    Encoder: ``n`` blocks ``Conv2d(k=4, s=2, p=1, bias=False) -> BN -> ReLU`` with widths
    ``width * 2**i``; ``n`` is chosen from the image size (8x8 -> 2, 28x28 -> 3, 32x32 -> 4). Sizes
    that are not a multiple of ``2**n`` are zero-padded symmetrically (28 -> 32) and the decoder's
    output is cropped back, so ``recon`` always has exactly the input's ``(C, H, W)``.
    Then linear ``fc_mu``, ``fc_logvar`` from the flattened last feature map.

    Decoder, two layouts:

    - ``"mirror"`` (default, CPU-friendly): ``Linear(latent + rank_dim -> C_last * s * s)`` at the
      encoder's last spatial size ``s``, then ``n`` transposed convs (k=4, s=2, p=1) halving the
      widths, BN+ReLU after all but the last, whose output has the image's channels.
    - ``"vaal"`` (VAAL's reference code): ``Linear(latent + rank_dim -> C_last * 2s * 2s)``, ``n - 1``
      transposed conv blocks (k=4, s=2, p=1, BN, ReLU), then ``ConvTranspose2d(width, C, 1)``.
      With ``width=128`` and a 32x32x3 input this is VAAL's VAE exactly (22.8M parameters;
      TA-VAAL adds one decoder input for ``r``): see :meth:`reference`.

    Default sizes (width 32, latent 32, mirror): about 92k parameters for 8x8x1, 0.53M for
    28x28x1, 1.5M for 32x32x3.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        latent_dim: int = 32,
        width: int = 32,
        rank_dim: int = 0,
        layout: str = "mirror",
    ):
        super().__init__()
        if len(input_shape) != 3:
            raise ValueError(f"ConvVAE needs an image shape (C, H, W), got {tuple(input_shape)}")
        if layout not in ("mirror", "vaal"):
            raise ConfigError("vae_layout", f"must be 'mirror' or 'vaal', got {layout!r}")
        c, h, w = (int(v) for v in input_shape)
        self.input_shape = (c, h, w)
        self.latent_dim = int(latent_dim)
        self.rank_dim = int(rank_dim)
        self.layout = layout
        n = conv_blocks_for(h, w)
        self.n_blocks = n
        ph, self._pad_top, self._pad_bottom = _pad_crop(h, 2 ** n)
        pw, self._pad_left, self._pad_right = _pad_crop(w, 2 ** n)
        self._needs_pad = (ph, pw) != (h, w)
        widths = [width * 2 ** i for i in range(n)]

        enc: list[nn.Module] = []
        cin = c
        for cout in widths:
            enc += [nn.Conv2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
            cin = cout
        self.encoder = nn.Sequential(*enc)
        sh, sw = ph // 2 ** n, pw // 2 ** n
        flat = widths[-1] * sh * sw
        self.fc_mu = nn.Linear(flat, latent_dim)
        self.fc_logvar = nn.Linear(flat, latent_dim)

        dec: list[nn.Module] = []
        rev = widths[::-1]
        if layout == "mirror":
            self._dec_shape = (rev[0], sh, sw)
            outs = rev[1:] + [c]
            for i, (ci, co) in enumerate(zip(rev, outs)):
                last = i == len(outs) - 1
                dec.append(nn.ConvTranspose2d(ci, co, 4, 2, 1, bias=last))
                if not last:
                    dec += [nn.BatchNorm2d(co), nn.ReLU(inplace=True)]
        else:
            self._dec_shape = (rev[0], 2 * sh, 2 * sw)
            for ci, co in zip(rev[:-1], rev[1:]):
                dec += [nn.ConvTranspose2d(ci, co, 4, 2, 1, bias=False), nn.BatchNorm2d(co), nn.ReLU(inplace=True)]
            dec.append(nn.ConvTranspose2d(rev[-1], c, 1))
        self.fc_decode = nn.Linear(latent_dim + rank_dim, int(math.prod(self._dec_shape)))
        self.decoder = nn.Sequential(*dec)
        _kaiming_init(self)

    @classmethod
    def reference(cls, input_shape: Sequence[int], rank_dim: int = 0, latent_dim: int = 32) -> "ConvVAE":
        """VAAL's large VAE (widths 128, 256, 512, 1024 for 32x32; about 23M parameters)."""
        return cls(input_shape, latent_dim=latent_dim, width=128, rank_dim=rank_dim, layout="vaal")

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self._needs_pad:
            x = F.pad(x, (self._pad_left, self._pad_right, self._pad_top, self._pad_bottom))
        h = self.encoder(x).flatten(1)
        return self.fc_mu(h), self.fc_logvar(h)

    def decode(self, z: Tensor, r: Tensor | None = None) -> Tensor:
        h = self.fc_decode(self._decoder_input(z, r)).view(z.shape[0], *self._dec_shape)
        out = self.decoder(h)
        if self._needs_pad:
            _, h_in, w_in = self.input_shape
            out = out[:, :, self._pad_top:self._pad_top + h_in, self._pad_left:self._pad_left + w_in]
        return out


# ----------------------------------------------------------------------------------------------
# Images: Godwin et al. 2022's VAE
# ----------------------------------------------------------------------------------------------
class UnsupervisedVAE(_RankInput):
    """The VAE of VAE-augmented active learning (Godwin et al. 2022).

    Encoder: four ``Conv2d(k=3, s=2, p=1) -> BN -> ReLU`` layers (widths ``width * [1, 2, 4, 8]``),
    then two linear layers for ``mu`` and ``logvar``. Decoder: a linear map from ``z`` to the
    encoder's last feature map, ONE up-sampling conv (nearest up-sampling straight to the input's
    ``H x W``, then ``Conv2d(k=3, p=1) -> BN -> ReLU`` to ``width`` channels), then FOUR
    size-preserving ``Conv2d(k=3, p=1)`` layers (BN+ReLU after the first three; the fourth outputs
    the image's channels).

    Small images: with ``k=3, s=2, p=1`` each stride-2 conv maps a side ``s`` to ``ceil(s / 2)``,
    so four of them never shrink a side below 1 (8x8 -> 4, 2, 1, 1; 28x28 -> 14, 7, 4, 2;
    32x32 -> 16, 8, 4, 2). Up-sampling directly to ``(H, W)`` returns exactly the input's size
    for any ``H, W``: no padding or cropping needed. The paper gives no channel widths; ``width``
    sets them. Vector data uses :class:`VectorVAE` instead (see :func:`build_vae`).
    """

    def __init__(self, input_shape: Sequence[int], latent_dim: int = 32, width: int = 32):
        super().__init__()
        if len(input_shape) != 3:
            raise ValueError(f"UnsupervisedVAE needs an image shape (C, H, W), got {tuple(input_shape)}")
        c, h, w = (int(v) for v in input_shape)
        self.input_shape = (c, h, w)
        self.latent_dim = int(latent_dim)
        self.rank_dim = 0
        widths = [width, 2 * width, 4 * width, 8 * width]
        enc: list[nn.Module] = []
        cin, sh, sw = c, h, w
        for cout in widths:
            enc += [nn.Conv2d(cin, cout, 3, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
            cin, sh, sw = cout, (sh + 1) // 2, (sw + 1) // 2
        self.encoder = nn.Sequential(*enc)
        flat = widths[-1] * sh * sw
        self.fc_mu = nn.Linear(flat, latent_dim)
        self.fc_logvar = nn.Linear(flat, latent_dim)
        self._dec_shape = (widths[-1], sh, sw)
        self.fc_decode = nn.Linear(latent_dim, flat)
        self.upsample = nn.Upsample(size=(h, w), mode="nearest")
        self.up_conv = nn.Sequential(
            nn.Conv2d(widths[-1], width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)
        )
        same: list[nn.Module] = []
        for _ in range(3):
            same += [nn.Conv2d(width, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        same.append(nn.Conv2d(width, c, 3, 1, 1))
        self.decoder = nn.Sequential(*same)
        _kaiming_init(self)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.encoder(x).flatten(1)
        return self.fc_mu(h), self.fc_logvar(h)

    def decode(self, z: Tensor, r: Tensor | None = None) -> Tensor:
        z = self._decoder_input(z, r)
        h = self.fc_decode(z).view(z.shape[0], *self._dec_shape)
        return self.decoder(self.up_conv(self.upsample(h)))


# ----------------------------------------------------------------------------------------------
# Factory
# ----------------------------------------------------------------------------------------------
def build_vae(
    kind: str,
    input_shape: Sequence[int],
    latent_dim: int = 32,
    width: int = 32,
    rank_dim: int = 0,
    preset: str = "small",
) -> nn.Module:
    """Build the VAE a method needs.

    Parameters
    ----------
    kind : ``"adversarial"`` (VAAL / TA-VAAL: :class:`ConvVAE`) or ``"unsupervised"`` (Godwin et al. 2022:
        :class:`UnsupervisedVAE`). Vector data, ``input_shape == (D,)``, always gets
        :class:`VectorVAE` with ``hidden = width``.
    input_shape : ``(D,)`` or ``(C, H, W)``.
    rank_dim : 1 for TA-VAAL's rank-conditioned decoder, else 0 (``"unsupervised"`` takes none).
    preset : ``"small"`` (CPU-sized, mirror decoder) or ``"reference"`` (VAAL's VAE, widths from
        128; adversarial image VAEs only). Ignored for vector data (VAAL's code has no vector VAE
        to reproduce); an error for ``kind="unsupervised"`` (Godwin et al. 2022 gives no widths).
    """
    if kind not in ("adversarial", "unsupervised"):
        raise ConfigError("vae_kind", f"must be 'adversarial' or 'unsupervised', got {kind!r}")
    if preset not in ("small", "reference"):
        raise ConfigError("vae_preset", f"must be 'small' or 'reference', got {preset!r}")
    if latent_dim < 1:
        raise ConfigError("latent_dim", f"must be >= 1, got {latent_dim}")
    if width < 1:
        raise ConfigError("vae_width", f"must be >= 1, got {width}")
    if kind == "unsupervised" and rank_dim:
        raise ConfigError("rank_dim", "the unsupervised VAE takes no rank input")
    shape = tuple(int(v) for v in input_shape)
    if len(shape) == 1:
        return VectorVAE(shape[0], latent_dim=latent_dim, hidden=width, rank_dim=rank_dim)
    if len(shape) != 3:
        raise ValueError(f"input_shape must be (D,) or (C, H, W), got {shape}")
    if kind == "unsupervised":
        if preset != "small":
            raise ConfigError("vae_preset", "the unsupervised VAE (Godwin et al. 2022) has only the 'small' preset")
        return UnsupervisedVAE(shape, latent_dim=latent_dim, width=width)
    if preset == "reference":
        return ConvVAE.reference(shape, rank_dim=rank_dim, latent_dim=latent_dim)
    return ConvVAE(shape, latent_dim=latent_dim, width=width, rank_dim=rank_dim)
