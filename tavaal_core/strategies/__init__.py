"""Strategy registry. Importing the modules registers their strategies, in the order users see them."""
from . import uncertainty, distance, loss_prediction, adversarial  # noqa: F401  (registration)
from .base import Needs, Selection, SelectionContext, Strategy, available_methods, get_strategy, top_k
from .appearance import METHOD_COLORS, method_color, method_label

__all__ = ["METHOD_COLORS", "Needs", "Selection", "SelectionContext", "Strategy", "available_methods", "get_strategy",
           "method_color", "method_label", "top_k"]
