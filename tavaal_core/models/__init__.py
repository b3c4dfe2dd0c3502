"""Task learners (with feature taps), the loss head / Ranker, VAEs and discriminators."""
from .loss_head import LossPredictionHead, margin_ranking_loss, ranking_bce_loss
from .task import MLP, ResNet18, SmallCNN, TaskOutput, build_task_model

__all__ = ["LossPredictionHead", "margin_ranking_loss", "ranking_bce_loss", "MLP", "ResNet18", "SmallCNN",
           "TaskOutput", "build_task_model"]
