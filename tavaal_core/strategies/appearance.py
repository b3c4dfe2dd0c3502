"""How methods appear in every view: a label (the strategy's own ``label``) and one colour per method.
Beside the registry, so a new strategy gets its label and colour where it is registered."""
from __future__ import annotations

from ..errors import ConfigError
from .base import get_strategy

# Families share a hue (core-set greens, learning-loss reds, VAAL ambers); TA-VAAL gets the strongest colour.
# The four default methods (random, core-set, VAAL, TA-VAAL) were chosen to stay apart for every colour-vision
# deficiency (minimum CIE76 difference about 40; tests/test_figures_teaching.py).
METHOD_COLORS = {"random": "#bbbbbb", "entropy": "#56B4E9", "bald": "#0072B2", "coreset": "#117733",
                 "medal": "#44AA99", "coreset_vae": "#999933", "medal_vae": "#88CCEE", "lloss": "#D55E00",
                 "lloss_v2": "#CC6677", "lloss_vae": "#882255", "vaal": "#E69F00", "tavaal": "#6a3d9a",
                 "vaal_lloss": "#DDCC77"}
_SPARE_COLORS = ["#882255", "#661100", "#6699CC", "#888888", "#117733", "#AA4466", "#4477AA"]


def method_color(method: str) -> str:
    """One colour per method, the same in every view (random is grey)."""
    if method in METHOD_COLORS:
        return METHOD_COLORS[method]
    return _SPARE_COLORS[sum(map(ord, method)) % len(_SPARE_COLORS)]  # a method registered later


def method_label(method: str) -> str:
    try:
        return get_strategy(method).label or method
    except ConfigError:  # a saved run may name a method this version does not have
        return method
