"""Figures for a class: colour-blind-safe palettes, presenter styling, the clickable gallery."""
import numpy as np
import pytest

from tavaal_core import figures
from tavaal_core.figures import CLASS_COLORS, cvd_min_distance
from tavaal_core.strategies import METHOD_COLORS

DEFAULT_METHODS = ["random", "coreset", "vaal", "tavaal"]


@pytest.mark.parametrize("deficiency", [None, "protanopia", "deuteranopia", "tritanopia"])
def test_palettes_stay_distinct_for_colour_blind_viewers(deficiency):
    # two moons' two classes, and the four default methods side by side, must never be confused
    assert cvd_min_distance(CLASS_COLORS[:2], deficiency) > 40
    assert cvd_min_distance([METHOD_COLORS[m] for m in DEFAULT_METHODS], deficiency) > 20
    # the first four classes, shown together on most image views
    assert cvd_min_distance(CLASS_COLORS[:4], deficiency) > 15


def test_the_old_red_green_pair_would_fail_the_check():
    # tab10's green and red (the palette before): close for a deuteranope, far for normal vision
    assert cvd_min_distance(["#2ca02c", "#d62728"], "deuteranopia") < 15 < cvd_min_distance(["#2ca02c", "#d62728"])


def test_presentation_scales_fonts_markers_and_lines_without_touching_the_original():
    panel = figures.MoonsPanel("m", np.array([0, 1]), np.array([2]), method="random")
    pts = np.random.default_rng(0).normal(size=(6, 2)).astype(np.float32)
    fig = figures.moons_small_multiples(pts, np.array([0, 1, 0, 1, 0, 1]), [panel])
    big = figures.for_presentation(fig, scale=1.5)
    assert big.layout.font.size == pytest.approx(1.5 * fig.layout.font.size)
    sizes = [t.marker.size for t in fig.data if t.mode == "markers"]
    assert [t.marker.size for t in big.data if t.mode == "markers"] == pytest.approx([s * 1.65 for s in sizes])
    assert fig.data[0].marker.size == sizes[0]  # a copy


def png_pixels(uri: str) -> np.ndarray:
    """The (H, W, 3) pixels of a ``data:image/png;base64,...`` URI."""
    import base64
    import io

    from PIL import Image

    assert uri.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB"))


def test_gallery_tiles_are_clickable_and_captioned():
    images = np.zeros((30, 1, 8, 8), np.uint8)
    images[7] = 255
    labels = np.arange(30) % 3
    fig = figures.image_gallery(images, [7, 3, 12], labels, ["a", "b", "c"], [0.9, 0.5, 0.1], cols=2, method="vaal")
    mosaic, picks, captions = fig.data
    pixels = png_pixels(mosaic.source)  # a PNG, not a JSON pixel array
    assert mosaic.type == "image" and mosaic.z is None and pixels.shape == (2 * (8 + 6 + 2), 2 * (8 + 2), 3)
    assert pixels[:8, :8].min() == 255  # tile 1 is image 7
    assert pixels[:8, 10:18].max() == 0  # tile 2 is image 3 (black)
    assert picks.meta == {"role": "picks", "method": "vaal"}
    assert [int(c[0]) for c in picks.customdata] == [7, 3, 12]
    assert list(captions.text) == ["b · 0.9", "a · 0.5", "a · 0.1"]
