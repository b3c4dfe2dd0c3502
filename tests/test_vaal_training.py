"""VAEs, discriminator, the VAAL / TA-VAAL losses (TA-VAAL eqs. 4-7) and their training loops."""
from __future__ import annotations

import math

import pytest
import torch

from tavaal_core.vaal_training import (
    VAALModels,
    VAALSettings,
    adversarial_loss,
    discriminator_likelihood,
    discriminator_loss,
    encode_mu,
    kl_divergence,
    rank_inputs,
    reconstruction_kl_loss,
    train_unsupervised_vae,
    train_vaal,
    transductive_vae_loss,
)
from tavaal_core.errors import ConfigError
from tavaal_core.models.discriminator import Discriminator
from tavaal_core.models.vae import ConvVAE, UnsupervisedVAE, VectorVAE, build_vae

IMAGE_SHAPES = [(1, 8, 8), (1, 28, 28), (3, 32, 32), (3, 28, 28), (1, 7, 9)]


def identity(t):
    return t


def to_unit(t):
    return t.float().div(255.0)


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def log1pexp(z):
    return math.log1p(math.exp(z))


# ----------------------------------------------------------------------------------------------
# Losses, by hand
# ----------------------------------------------------------------------------------------------
def test_kl_of_standard_normal_is_zero():
    mu, logvar = torch.zeros(3, 4), torch.zeros(3, 4)
    assert kl_divergence(mu, logvar, "mean").item() == 0.0
    assert kl_divergence(mu, logvar, "sum").item() == 0.0


def test_kl_mean_vs_sum():
    # each element: -0.5 * (1 + 0 - 1 - 1) = 0.5
    mu, logvar = torch.ones(2, 2), torch.zeros(2, 2)
    assert kl_divergence(mu, logvar, "mean").item() == pytest.approx(0.5)
    assert kl_divergence(mu, logvar, "sum").item() == pytest.approx(2.0)
    # logvar = log 2, mu = 0: -0.5 * (1 + log 2 - 2) = 0.5 * (1 - log 2)
    lv = torch.full((1, 3), math.log(2.0))
    assert kl_divergence(torch.zeros(1, 3), lv, "mean").item() == pytest.approx(0.5 * (1 - math.log(2)))


def test_reconstruction_kl_loss_by_hand():
    x, recon = torch.zeros(2, 2), torch.ones(2, 2)  # MSE = 1
    mu, logvar = torch.ones(2, 2), torch.zeros(2, 2)
    assert reconstruction_kl_loss(x, recon, torch.zeros(2, 2), logvar).item() == pytest.approx(1.0)
    assert reconstruction_kl_loss(x, recon, mu, logvar).item() == pytest.approx(1.5)
    assert reconstruction_kl_loss(x, recon, mu, logvar, kl_reduction="sum").item() == pytest.approx(3.0)
    assert reconstruction_kl_loss(x, recon, mu, logvar, beta=0.5, kl_reduction="sum").item() == pytest.approx(2.0)
    recon2 = torch.tensor([[0.0, 2.0], [0.0, 0.0]])  # MSE = 4 / 4
    assert reconstruction_kl_loss(x, recon2, torch.zeros(2, 2), logvar).item() == pytest.approx(1.0)


def test_bad_kl_reduction_names_the_field():
    with pytest.raises(ConfigError) as e:
        reconstruction_kl_loss(torch.zeros(1), torch.zeros(1), torch.zeros(1, 1), torch.zeros(1, 1), kl_reduction="max")
    assert e.value.field == "kl_reduction"
    with pytest.raises(ConfigError):
        VAALSettings(kl_reduction="none")


def test_transductive_loss_is_the_sum_over_both_pools():
    g = torch.Generator().manual_seed(0)
    xl, xu = torch.randn(4, 3, generator=g), torch.randn(5, 3, generator=g)
    out_l = (torch.randn(4, 3, generator=g), torch.randn(4, 2, generator=g), torch.randn(4, 2, generator=g))
    out_u = (torch.randn(5, 3, generator=g), torch.randn(5, 2, generator=g), torch.randn(5, 2, generator=g))
    for red in ("mean", "sum"):
        got = transductive_vae_loss(xl, out_l, xu, out_u, beta=0.7, kl_reduction=red)
        want = reconstruction_kl_loss(xl, *out_l, beta=0.7, kl_reduction=red) + reconstruction_kl_loss(
            xu, *out_u, beta=0.7, kl_reduction=red
        )
        assert got.item() == pytest.approx(want.item())


def test_adversarial_and_discriminator_losses_by_hand():
    zl, zu = torch.tensor([0.0, 2.0]), torch.tensor([-1.0])
    bce_l_1 = (log1pexp(-0.0) + log1pexp(-2.0)) / 2  # BCE(z, 1) = log(1 + e^-z)
    adv = bce_l_1 + log1pexp(1.0)  # BCE(-1, 1)
    dsc = bce_l_1 + log1pexp(-1.0)  # BCE(-1, 0) = log(1 + e^z)
    assert adversarial_loss(zl, zu).item() == pytest.approx(adv, rel=1e-6)
    assert discriminator_loss(zl, zu).item() == pytest.approx(dsc, rel=1e-6)
    z = torch.zeros(3)
    assert adversarial_loss(z, z).item() == pytest.approx(2 * math.log(2))
    assert discriminator_loss(z, z).item() == pytest.approx(2 * math.log(2))
    # large logits stay finite (logits, not probabilities)
    big = torch.tensor([200.0])
    assert math.isfinite(discriminator_loss(-big, big).item())


# ----------------------------------------------------------------------------------------------
# Rank input r
# ----------------------------------------------------------------------------------------------
def test_rank_inputs_sigmoid_and_raw_modes():
    out = torch.tensor([-2.0, 0.0, 3.0])
    r_dec, r_disc = rank_inputs(out, 3, "sigmoid")
    assert r_dec.shape == (3, 1)
    assert torch.allclose(r_dec.squeeze(1), torch.sigmoid(out))
    assert torch.equal(r_dec, r_disc)
    r_dec, r_disc = rank_inputs(out.unsqueeze(1), 3, "raw")
    assert torch.allclose(r_dec.squeeze(1), torch.sigmoid(out))
    assert torch.equal(r_disc.squeeze(1), out)  # the reference code's fault, as an option


def test_rank_inputs_uniform_without_ranker():
    r1, r1d = rank_inputs(None, 500, "raw", torch.Generator().manual_seed(3))
    r2, _ = rank_inputs(None, 500, "sigmoid", torch.Generator().manual_seed(3))
    assert r1.shape == (500, 1) and torch.equal(r1, r1d) and torch.equal(r1, r2)
    assert 0.0 <= r1.min().item() and r1.max().item() < 1.0
    assert abs(r1.mean().item() - 0.5) < 0.06


def test_rank_inputs_refuses_bad_input():
    with pytest.raises(ConfigError) as e:
        rank_inputs(torch.zeros(2), 2, "tanh")
    assert e.value.field == "discriminator_rank_input"
    with pytest.raises(ValueError):
        rank_inputs(torch.zeros(3), 2)


# ----------------------------------------------------------------------------------------------
# Architectures
# ----------------------------------------------------------------------------------------------
def _rank_vaes():
    return [VectorVAE(2, latent_dim=4, rank_dim=1), ConvVAE((1, 8, 8), latent_dim=6, width=8, rank_dim=1)]


@pytest.mark.parametrize("vae", _rank_vaes(), ids=["vector", "conv"])
def test_r_enters_decoder_not_encoder(vae):
    torch.manual_seed(0)
    vae.eval()
    shape = vae.input_shape
    x = torch.randn(5, *shape)
    r1, r2 = torch.zeros(5, 1), torch.ones(5, 1)
    rec1, mu1, lv1 = vae(x, r1)
    rec2, mu2, lv2 = vae(x, r2)
    assert torch.equal(mu1, mu2) and torch.equal(lv1, lv2)
    assert not torch.allclose(rec1, rec2)
    # the encoder's first layer sees only x; the decoder's first layer takes latent + 1
    first_enc = next(m for m in vae.encoder.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)))
    assert (first_enc.in_features if isinstance(first_enc, torch.nn.Linear) else first_enc.in_channels) == shape[0]
    dec_in = vae.decoder[0] if isinstance(vae, VectorVAE) else vae.fc_decode
    assert dec_in.in_features == vae.latent_dim + 1
    with pytest.raises(ValueError):
        vae.decode(mu1)  # r is required


def test_r_enters_discriminator():
    torch.manual_seed(0)
    d = Discriminator(4, rank_dim=1, hidden=16, layers=3)
    mu = torch.randn(6, 4)
    a, b = d(mu, torch.zeros(6)), d(mu, torch.ones(6, 1))
    assert a.shape == (6,) and not torch.allclose(a, b)
    assert d.net[0].in_features == 5
    assert sum(isinstance(m, torch.nn.Linear) for m in d.modules()) == 3
    d0 = Discriminator(4, hidden=64, layers=2)
    assert sum(isinstance(m, torch.nn.Linear) for m in d0.modules()) == 2
    assert d0(mu).shape == (6,)
    with pytest.raises(ValueError):
        d0(mu, torch.zeros(6))


@pytest.mark.parametrize("shape", IMAGE_SHAPES)
def test_conv_vae_shapes(shape):
    for vae in (ConvVAE(shape, latent_dim=16, width=8), ConvVAE(shape, latent_dim=16, width=8, rank_dim=1),
                UnsupervisedVAE(shape, latent_dim=16, width=8)):
        x = torch.randn(3, *shape)
        r = torch.rand(3) if vae.rank_dim else None
        recon, mu, logvar = vae(x, r)
        assert recon.shape == x.shape
        assert mu.shape == (3, 16) and logvar.shape == (3, 16)
        assert vae.encode(x)[0].shape == (3, 16)


def test_block_counts_follow_image_size():
    assert ConvVAE((1, 8, 8)).n_blocks == 2
    assert ConvVAE((1, 28, 28)).n_blocks == 3
    assert ConvVAE((3, 32, 32)).n_blocks == 4


def test_reference_preset_and_small_default_sizes():
    ref = ConvVAE.reference((3, 32, 32))
    assert 22e6 < n_params(ref) < 24e6  # VAAL's VAE: 22,835,139 parameters
    assert n_params(ConvVAE.reference((3, 32, 32), rank_dim=1)) == n_params(ref) + 4 * 4 * 1024
    x = torch.randn(2, 3, 32, 32)
    assert ref(x)[0].shape == x.shape
    small = ConvVAE((1, 28, 28))
    assert 1e5 < n_params(small) < 1e6
    assert n_params(build_vae("adversarial", (3, 32, 32), preset="reference")) == n_params(ref)


def test_build_vae_dispatch():
    assert isinstance(build_vae("adversarial", (2,), 8, 64, rank_dim=1), VectorVAE)
    assert isinstance(build_vae("unsupervised", (2,), 8, 64), VectorVAE)
    assert isinstance(build_vae("adversarial", (1, 8, 8)), ConvVAE)
    assert isinstance(build_vae("unsupervised", (1, 8, 8)), UnsupervisedVAE)
    with pytest.raises(ConfigError):
        build_vae("gan", (1, 8, 8))
    with pytest.raises(ConfigError):
        build_vae("adversarial", (1, 8, 8), preset="huge")


def test_reparameterisation_only_in_train_mode():
    vae = ConvVAE((1, 8, 8), latent_dim=4, width=4)
    x = torch.randn(4, 1, 8, 8)
    vae.eval()
    a, b = vae(x)[0], vae(x)[0]
    assert torch.equal(a, b)
    assert torch.allclose(a, vae.decode(vae.encode(x)[0]))
    vae.train()
    assert not torch.equal(vae(x)[0], vae(x)[0])


# ----------------------------------------------------------------------------------------------
# Training and scoring
# ----------------------------------------------------------------------------------------------
def _blobs(n_l=20, n_u=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    xl = torch.randn(n_l, 2, generator=g) * 0.3 + torch.tensor([2.0, 2.0])
    xu = torch.randn(n_u, 2, generator=g) * 0.3 - torch.tensor([2.0, 2.0])
    return xl, xu


def _images(n, bright, seed):
    g = torch.Generator().manual_seed(seed)
    base = torch.randint(0, 60, (n, 1, 8, 8), generator=g)
    return (base + (180 if bright else 0)).to(torch.uint8)


FAST_MOONS = VAALSettings.two_moons(epochs=30)


def test_train_vaal_is_deterministic_and_ignores_global_rng():
    xl, xu = _blobs()
    s = VAALSettings.two_moons(epochs=3, rank_conditioned=True, batch_size=64)
    torch.manual_seed(1)
    a = train_vaal(xl, xu, identity, s, seed=5, stage=2)
    state = torch.random.get_rng_state()
    torch.manual_seed(999)
    b = train_vaal(xl, xu, identity, s, seed=5, stage=2)
    c = train_vaal(xl, xu, identity, s, seed=6, stage=2)
    for k, v in a.vae.state_dict().items():
        assert torch.equal(v, b.vae.state_dict()[k]), k
    for k, v in a.discriminator.state_dict().items():
        assert torch.equal(v, b.discriminator.state_dict()[k]), k
    assert a.history == b.history
    assert not torch.equal(a.discriminator.net[0].weight, c.discriminator.net[0].weight)
    # the global RNG is not advanced by training
    torch.manual_seed(1)
    train_vaal(xl, xu, identity, s, seed=5, stage=2)
    assert torch.equal(torch.random.get_rng_state(), state)


def test_train_vaal_history_and_progress():
    xl, xu = _blobs()
    calls = []
    s = VAALSettings.two_moons(epochs=25, batch_size=128)
    m = train_vaal(xl, xu, identity, s, progress=lambda f, msg: calls.append((f, msg)))
    assert isinstance(m, VAALModels)
    assert set(m.history) == {"vae", "adversarial", "discriminator"}
    assert all(len(v) == 25 for v in m.history.values())
    assert all(math.isfinite(v) for v in m.final_losses.values())
    assert 1 <= len(calls) <= 20
    fr = [f for f, _ in calls]
    assert fr == sorted(fr) and fr[-1] == 1.0
    assert not m.vae.training and not m.discriminator.training


@pytest.mark.parametrize("rank", [False, True])
def test_discriminator_separates_labeled_from_unlabeled(rank):
    xl, xu = _blobs()
    kw = {}
    if rank:
        kw = dict(ranker_output_labeled=torch.randn(len(xl)), ranker_output_unlabeled=torch.randn(len(xu)))
    s = VAALSettings.two_moons(epochs=30, rank_conditioned=rank)
    m = train_vaal(xl, xu, identity, s, **kw)
    p_l = discriminator_likelihood(m, xl, identity, kw.get("ranker_output_labeled"))
    p_u = discriminator_likelihood(m, xu, identity, kw.get("ranker_output_unlabeled"))
    assert p_l.shape == (len(xl),) and p_u.shape == (len(xu),)
    assert ((0 < p_u) & (p_u < 1)).all()
    assert p_l.mean() > p_u.mean() + 0.1


def test_images_train_score_and_eval_mode():
    xl, xu = _images(16, True, 0), _images(48, False, 1)
    s = VAALSettings.images(epochs=3, batch_size=16, discriminator_hidden=32, vae_width=8, latent_dim=8,
                            rank_conditioned=True, discriminator_rank_input="raw")
    ro_l, ro_u = torch.randn(16), torch.randn(48)
    m = train_vaal(xl, xu, to_unit, s, ranker_output_labeled=ro_l, ranker_output_unlabeled=ro_u)
    assert isinstance(m.vae, ConvVAE) and m.rank_conditioned
    # BatchNorm: scores must not depend on the batch, nor change between calls (eval mode)
    m.vae.train()
    m.discriminator.train()
    a = discriminator_likelihood(m, xu, to_unit, ro_u)
    b = discriminator_likelihood(m, xu, to_unit, ro_u, batch_size=7)
    assert torch.allclose(a, b, atol=1e-6)
    assert torch.equal(a, discriminator_likelihood(m, xu, to_unit, ro_u))
    assert m.vae.training and m.discriminator.training  # modes restored
    # the raw vs sigmoid rank input matters for D
    s_sig = VAALSettings(**{**s.__dict__, "discriminator_rank_input": "sigmoid"})
    assert not torch.allclose(a, discriminator_likelihood(m, xu, to_unit, ro_u, s_sig))
    # without a Ranker: r ~ U(0,1), reproducible
    r1 = discriminator_likelihood(m, xu, to_unit)
    assert torch.equal(r1, discriminator_likelihood(m, xu, to_unit))


def test_scoring_runs_the_encoder_only():
    xl, xu = _blobs(n_u=50)
    m = train_vaal(xl, xu, identity, VAALSettings.two_moons(epochs=2, rank_conditioned=True))

    def boom(*a, **k):
        raise AssertionError("decoder called")

    m.vae.decode = boom
    m.vae.decoder.forward = boom
    mu = encode_mu(m.vae, xu, identity, batch_size=16)
    assert mu.shape == (50, m.vae.latent_dim)
    assert discriminator_likelihood(m, xu, identity, torch.randn(50)).shape == (50,)
    assert torch.allclose(mu, encode_mu(m.vae, xu, identity), atol=1e-5)


def test_settings_validation_and_presets():
    moons = VAALSettings.two_moons()
    assert moons.lr_vae == moons.lr_discriminator == 1e-2 and moons.discriminator_layers == 2
    img = VAALSettings.images()
    assert img.lr_vae == 5e-4 and img.discriminator_layers == 5 and img.discriminator_hidden == 512
    assert VAALSettings.for_shape((2,)) == moons and VAALSettings.for_shape((1, 8, 8)) == img
    for field, value in [("epochs", 0), ("batch_size", -1), ("lr_vae", 0.0), ("beta", -1.0),
                         ("vae_preset", "tiny"), ("discriminator_rank_input", "logit")]:
        with pytest.raises(ConfigError) as e:
            VAALSettings(**{field: value})
        assert e.value.field == field


def test_train_unsupervised_vae():
    x = torch.cat([_images(20, True, 0), _images(20, False, 1)])
    calls = []
    a = train_unsupervised_vae(x, to_unit, epochs=2, batch_size=16, latent_dim=6, width=4, seed=3,
                               progress=lambda f, m: calls.append(f))
    b = train_unsupervised_vae(x, to_unit, epochs=2, batch_size=16, latent_dim=6, width=4, seed=3)
    assert isinstance(a, UnsupervisedVAE) and not a.training
    assert calls[-1] == 1.0
    mu = encode_mu(a, x, to_unit)
    assert mu.shape == (40, 6) and torch.equal(mu, encode_mu(b, x, to_unit))
    v = train_unsupervised_vae(torch.randn(30, 2), identity, epochs=1, latent_dim=3, width=8)
    assert isinstance(v, VectorVAE)
