"""The two loss-prediction losses on hand-made tensors, and the head's shape."""
import math

import torch

from tavaal_core.models.loss_head import LossPredictionHead, margin_ranking_loss, ranking_bce_loss


def test_margin_loss_by_hand():
    # Pairs: (0, 3) and (1, 2). True losses: l0=3 > l3=1 -> s=+1; l1=0 < l2=2 -> s=-1.
    predicted = torch.tensor([2.0, 0.5, 1.0, 1.5])
    true_loss = torch.tensor([3.0, 0.0, 2.0, 1.0])
    # pair (0,3): max(0, -1*(2.0-1.5) + 1) = 0.5 ; pair (1,2): max(0, +1*(0.5-1.0) + 1) = 0.5
    assert torch.isclose(margin_ranking_loss(predicted, true_loss, margin=1.0), torch.tensor(0.5))
    # A well-ordered prediction beyond the margin costs nothing.
    good = torch.tensor([5.0, -5.0, 5.0, -5.0])
    assert margin_ranking_loss(good, true_loss, margin=1.0).item() == 0.0


def test_ranking_bce_by_hand():
    predicted = torch.tensor([2.0, 0.5, 1.0, 1.5])
    true_loss = torch.tensor([3.0, 0.0, 2.0, 1.0])
    # pair (0,3): d=0.5, target 1 -> -log(sigmoid(0.5)); pair (1,2): d=-0.5, target 0 -> -log(1-sigmoid(-0.5))
    sig = 1 / (1 + math.exp(-0.5))
    expected = (-math.log(sig) - math.log(1 - (1 - sig))) / 2
    assert math.isclose(ranking_bce_loss(predicted, true_loss).item(), expected, rel_tol=1e-6)


def test_losses_do_not_backprop_into_true_loss():
    true_loss = torch.tensor([3.0, 0.0, 2.0, 1.0], requires_grad=True)
    predicted = torch.tensor([2.0, 0.5, 1.0, 1.5], requires_grad=True)
    (margin_ranking_loss(predicted, true_loss) + ranking_bce_loss(predicted, true_loss)).backward()
    assert true_loss.grad is None and predicted.grad is not None


def test_odd_batch_drops_middle_sample():
    predicted = torch.tensor([2.0, 0.5, 9.0, 1.0, 1.5])
    true_loss = torch.tensor([3.0, 0.0, 9.0, 2.0, 1.0])
    even = margin_ranking_loss(predicted[[0, 1, 3, 4]], true_loss[[0, 1, 3, 4]])
    assert torch.isclose(margin_ranking_loss(predicted, true_loss), even)


def test_head_pools_taps_and_appends_extra_features():
    head = LossPredictionHead([4, 8], hidden=16, extra_dim=3)
    taps = [torch.randn(5, 4, 6, 6), torch.randn(5, 8, 3, 3)]
    assert head(taps, torch.randn(5, 3)).shape == (5,)
    assert head.out.in_features == 2 * 16 + 3
