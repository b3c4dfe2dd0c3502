"""Task learners (with feature taps), the loss head / Ranker, VAEs and discriminators."""
from .loss_head import LossPredictionHead, margin_ranking_loss, ranking_bce_loss
from .discriminator import Discriminator
from .task import MLP, ResNet18, SmallCNN, TaskOutput, build_task_model
from .vae import ConvVAE, UnsupervisedVAE, VectorVAE, build_vae

__all__ = ["LossPredictionHead", "margin_ranking_loss", "ranking_bce_loss", "MLP", "ResNet18", "SmallCNN",
           "TaskOutput", "build_task_model", "Discriminator", "ConvVAE", "UnsupervisedVAE", "VectorVAE", "build_vae"]
