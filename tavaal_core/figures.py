"""Plotly figure builders: records in, ``go.Figure`` out. Pure (no streamlit, no training), so every view
can be drawn for any stage of a live session or a saved run, and tested from its figure JSON.

Conventions: colour = class for data points and = method for per-method series (``method_color``);
labeled points are filled with a dark outline, unlabeled ones small and faint, a stage's picks are black
crosses. Every point's hover names its dataset index, class and, where it was a candidate, its score.
Traces carry ``meta = {"method": ..., "role": ...}`` so tests (and the app) can find them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from . import analysis
from .analysis import curves_from_records  # noqa: F401  (part of this module's contract)
from .statistics import CURVE_COLUMNS, curve_metric, metric_label
from .records import StageRecord
from .strategies import method_color, method_label

# Colour-blind-safe palettes: Okabe & Ito's eight (without black, kept for picks, and yellow, unreadable
# as a faint dot on white) and Paul Tol's muted set for the rest. ``cvd_min_distance`` checks them under
# simulated protanopia, deuteranopia and tritanopia (tests/test_figures.py).
CLASS_COLORS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#882255", "#999933",
                "#332288", "#DDCC77"]
PICK_COLOR = "#111111"
USER_COLOR = "#d4008f"
BOUNDARY_COLOR = "#222222"
ORACLE_COLOR = "#666666"
FONT = dict(family="Inter, Segoe UI, Helvetica, Arial, sans-serif", size=13)


def class_color(k: int) -> str:
    if k < len(CLASS_COLORS):
        return CLASS_COLORS[k]
    import plotly.colors

    palette = plotly.colors.qualitative.Alphabet
    return palette[k % len(palette)]


IGNORED_PIXEL_RGB = (255, 255, 255)
BACKGROUND_PIXEL_RGB = (43, 43, 43)


def colorize_mask(mask: np.ndarray, num_classes: int, background_class: int | None = None) -> np.ndarray:
    """A segmentation mask (H, W) of class indices as an RGB image (H, W, 3) uint8 in the class colours of
    every other view; the background class dark grey, ignored pixels (IGNORE_INDEX) white."""
    palette = np.zeros((256, 3), np.uint8)
    palette[:] = IGNORED_PIXEL_RGB
    for k in range(min(num_classes, 255)):
        hex_color = class_color(k).lstrip("#")
        palette[k] = [int(hex_color[i:i + 2], 16) for i in (0, 2, 4)]
    if background_class is not None:
        palette[background_class] = BACKGROUND_PIXEL_RGB
    return palette[np.asarray(mask, np.uint8)]


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


# -- colour vision deficiency check --------------------------------------------------------------------------
# Machado, Oliveira & Fernandes (2009) simulation matrices at full severity, on linear RGB.
CVD_MATRICES = {
    "protanopia": np.array([[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216],
                            [-0.003882, -0.048116, 1.051998]]),
    "deuteranopia": np.array([[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413],
                              [-0.011820, 0.042940, 0.968881]]),
    "tritanopia": np.array([[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602],
                            [0.004733, 0.691367, 0.303900]]),
}


def _lab(hex_colors, matrix=None) -> np.ndarray:
    """CIE Lab (D65) of sRGB hex colours, optionally after a colour-vision simulation matrix."""
    rgb = np.array([[int(h.lstrip("#")[i:i + 2], 16) / 255 for i in (0, 2, 4)] for h in hex_colors])
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    if matrix is not None:
        lin = np.clip(lin @ matrix.T, 0, 1)
    xyz = lin @ np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]).T
    xyz /= np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], 1)


def cvd_min_distance(hex_colors, deficiency: str | None = None) -> float:
    """The smallest CIE76 colour difference between any two of ``hex_colors`` as seen with ``deficiency``
    (None: normal vision). About 20+ reads as clearly different; under 10 risks confusion."""
    lab = _lab(hex_colors, CVD_MATRICES[deficiency] if deficiency else None)
    d = np.sqrt(((lab[:, None, :] - lab[None, :, :]) ** 2).sum(-1))
    return float(d[np.triu_indices(len(hex_colors), 1)].min()) if len(hex_colors) > 1 else float("inf")


# -- presentation --------------------------------------------------------------------------------------------
def for_presentation(fig: go.Figure, scale: float = 1.5) -> go.Figure:
    """A copy of ``fig`` for a projector: fonts, markers and lines ``scale`` times larger."""
    fig = go.Figure(fig)

    def bigger(value, by=scale):
        if value is None:
            return None
        if isinstance(value, (int, float)):
            return value * by
        return [v * by for v in value] if isinstance(value, (list, tuple)) else np.asarray(value) * by

    size = (fig.layout.font.size or FONT["size"]) if fig.layout.font else FONT["size"]
    fig.update_layout(font=dict(size=size * scale))
    if fig.layout.title and fig.layout.title.font and fig.layout.title.font.size:
        fig.layout.title.font.size *= scale
    if fig.layout.legend and fig.layout.legend.font and fig.layout.legend.font.size:
        fig.layout.legend.font.size *= scale
    for ann in fig.layout.annotations or ():
        if ann.font and ann.font.size:
            ann.font.size *= scale
    for trace in fig.data:
        marker = getattr(trace, "marker", None)
        if marker is not None and getattr(marker, "size", None) is not None and trace.type in ("scatter", "scattergl"):
            marker.size = bigger(marker.size, scale * 1.1)
            if marker.line is not None and marker.line.width:
                marker.line.width = marker.line.width * scale
        line = getattr(trace, "line", None)
        if line is not None and getattr(line, "width", None):
            line.width = line.width * scale
        if trace.type in ("scatter", "scattergl") and getattr(trace, "textfont", None) is not None \
                and trace.textfont.size:
            trace.textfont.size *= scale
    if fig.layout.height:
        fig.layout.height = int(fig.layout.height * 1.15)
    return fig


def _layout(fig: go.Figure, title: str | None = None, height: int | None = None, legend_below: float | None = None,
            **kw) -> go.Figure:
    # Figures with subplot titles put their legend below (at ``legend_below``, in plot fractions), where it
    # cannot collide with the titles.
    legend = dict(orientation="h", xanchor="left", x=0.0, font=dict(size=12))
    legend.update(dict(yanchor="top", y=legend_below) if legend_below is not None else dict(yanchor="bottom", y=1.02))
    fig.update_layout(
        title=dict(text=title, x=0.0, xanchor="left", font=dict(size=16)) if title else None,
        template="plotly_white", font=FONT, height=height,
        margin=dict(l=10, r=10, t=(60 if title else 30) if legend_below is None else (50 if title else 30), b=10),
        legend=legend,
        hoverlabel=dict(font_size=12), **kw,
    )
    return fig


def _grid(n: int, cols: int | None) -> tuple[int, int]:
    cols = max(1, min(n, cols or (n if n <= 4 else 3)))
    return math.ceil(n / cols), cols


def _class_name(class_names, k) -> str:
    return str(class_names[k]) if class_names is not None and k < len(class_names) else str(k)


def _hover(indices, labels, class_names, scores=None, extra: str | None = None) -> dict:
    """Trace keywords for a hover naming the dataset index, the class and the score (when known).

    customdata stays numeric (plotly sends it as a compact typed array); the class goes into the template
    as text when the trace holds one class, else into ``text`` per point."""
    indices = np.asarray(indices, np.int64)
    scores = np.full(len(indices), np.nan) if scores is None else np.asarray(scores, np.float64)
    classes = np.asarray(labels, np.int64)[indices]
    # float32 halves what the browser receives; exact for indices below 2**24
    small = not len(indices) or indices.max() < 2**24
    kw = {"customdata": np.column_stack([indices, scores]).astype(np.float32 if small else np.float64)}
    one = np.unique(classes)
    if len(one) <= 1:
        cls = _class_name(class_names, int(one[0])) if len(one) else ""
    else:
        kw["text"] = [_class_name(class_names, int(k)) for k in classes]
        cls = "%{text}"
    template = "index %{customdata[0]:d}<br>class " + cls
    if np.isfinite(scores).any():
        template += "<br>score %{customdata[1]:.4g}"
    if extra:
        template += "<br>" + extra
    kw["hovertemplate"] = template + "<extra>%{fullData.name}</extra>"
    return kw


def _click_styles(opacity: float) -> dict:
    """A clicked point turns large and magenta; the others keep their look (plotly would dim them)."""
    return dict(selected=dict(marker=dict(color=USER_COLOR, size=15, opacity=1.0)),
                unselected=dict(marker=dict(opacity=opacity)))


# -- two moons ---------------------------------------------------------------------------------------
@dataclass
class MoonsPanel:
    """One small multiple: who is labeled, what was picked, the model's P(class 1) grid (or None)."""

    title: str
    labeled: np.ndarray
    selected: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    boundary: tuple | None = None  # (grid_x, grid_y, prob)
    scores: np.ndarray | None = None  # per dataset index (NaN where not a candidate), for hover
    method: str = ""


def moons_panel(record: StageRecord, title: str | None = None, n_points: int | None = None) -> MoonsPanel:
    """The panel of one stage: the labeled set the model was trained on, its picks, its boundary."""
    bound = (record.boundary_x, record.boundary_y, record.boundary_prob) if record.boundary_prob.size else None
    scores = analysis.scores_by_index(record, np.arange(n_points)) if n_points else None
    label = title or f"{method_label(record.method)} · acc {record.accuracy:.1%}"
    return MoonsPanel(label, record.labeled, record.selected, bound, scores, record.method)


def _moons_traces(fig, row, col, points, labels, class_names, panel: MoonsPanel, oracle, shown: set,
                  user_picks=None, selectable: bool = False, clickable: bool = False):
    """Add one panel's traces. ``shown``: legend groups already in the legend (each appears once, from
    the first panel that has data for it)."""

    def legend(group: str) -> bool:
        if group in shown:
            return False
        shown.add(group)
        return True

    n = len(points)
    labeled = np.zeros(n, bool)
    labeled[np.asarray(panel.labeled, np.int64)] = True
    scores = panel.scores if panel.scores is not None else np.full(n, np.nan)
    meta = {"method": panel.method}
    for k in np.unique(labels):
        color = class_color(int(k))
        for is_lab in (False, True):
            idx = np.flatnonzero((labels == k) & (labeled == is_lab))
            if not len(idx):
                continue
            fig.add_trace(go.Scatter(
                x=points[idx, 0], y=points[idx, 1], mode="markers",
                name=f"{'Labeled' if is_lab else 'Unlabeled'} · {_class_name(class_names, int(k))}",
                legendgroup=f"c{k}-{is_lab}", showlegend=legend(f"c{k}-{is_lab}"),
                marker=dict(size=9 if is_lab else 5, color=color, opacity=1.0 if is_lab else 0.35,
                            line=dict(width=1.2, color="#1a1a1a") if is_lab else dict(width=0)),
                **_hover(idx, labels, class_names, scores[idx], "labeled" if is_lab else "unlabeled"),
                meta=dict(meta, role="labeled" if is_lab else "unlabeled"),
                **(_click_styles(1.0 if is_lab else 0.35) if clickable else dict(
                    selected=dict(marker=dict(opacity=1.0)) if selectable else None,
                    unselected=dict(marker=dict(opacity=0.35 if not is_lab else 1.0)) if selectable else None)),
            ), row=row, col=col)
    sel = np.asarray(panel.selected, np.int64)
    if len(sel):
        fig.add_trace(go.Scatter(
            x=points[sel, 0], y=points[sel, 1], mode="markers", name="Picked this stage", legendgroup="picks",
            showlegend=legend("picks"), marker=dict(symbol="x-thin", size=11, line=dict(width=2.5, color=PICK_COLOR),
                                          color=PICK_COLOR),
            **_hover(sel, labels, class_names, scores[sel], "picked this stage"), meta=dict(meta, role="picks"),
            **(_click_styles(1.0) if clickable else {}),
        ), row=row, col=col)
    if user_picks is not None and len(user_picks):
        up = np.asarray(user_picks, np.int64)
        fig.add_trace(go.Scatter(
            x=points[up, 0], y=points[up, 1], mode="markers", name="Your picks", legendgroup="user",
            showlegend=legend("user"),
            marker=dict(symbol="circle-open", size=14, line=dict(width=2.5, color=USER_COLOR)),
            **_hover(up, labels, class_names, scores[up], "your pick"), meta=dict(meta, role="user"),
        ), row=row, col=col)
    lines = ((oracle, "Oracle boundary (all labels)", ORACLE_COLOR, "dash", "oracle"),
             (panel.boundary, "Model boundary (p = 0.5)", BOUNDARY_COLOR, "solid", "boundary"))
    for bound, name, color, dash, role in lines:
        trace = _contour(*bound, name=name, color=color, dash=dash, meta=dict(meta, role=role)) if bound is not None else None
        if trace is not None:  # a model that predicts one class everywhere has no boundary to draw
            trace.showlegend = legend(role)
            fig.add_trace(trace, row=row, col=col)


def _contour(gx, gy, prob, name, color, dash, meta) -> go.Scatter | None:
    """The p = 0.5 contour as one line trace (paths joined by gaps), far lighter than a go.Contour;
    None when the level is never crossed."""
    xs, ys = [], []
    for path in analysis.contour_paths(gx, gy, prob, 0.5):
        xs += [*np.round(path[:, 0], 4), None]
        ys += [*np.round(path[:, 1], 4), None]
    if not xs:
        return None
    return go.Scatter(x=xs, y=ys, mode="lines", name=name, legendgroup=name,
                      line=dict(color=color, width=2.2, dash=dash), hoverinfo="skip", meta=meta)


def _moons_range(points, oracle, panels):
    for bound in [oracle] + [p.boundary for p in panels]:
        if bound is not None:
            return [float(bound[0][0]), float(bound[0][-1])], [float(bound[1][0]), float(bound[1][-1])]
    lo, hi = points.min(0), points.max(0)
    pad = 0.1 * (hi - lo)
    return [float(lo[0] - pad[0]), float(hi[0] + pad[0])], [float(lo[1] - pad[1]), float(hi[1] + pad[1])]


def moons_small_multiples(points, labels, panels: list[MoonsPanel], oracle=None, class_names=None,
                          cols: int | None = None, title: str | None = None, panel_height: int = 300,
                          clickable: bool = False) -> go.Figure:
    """One panel per method over the same 2-d pool: class colours, labeled vs unlabeled, picks as black
    crosses, the model's boundary (solid) and the oracle's (dashed). ``oracle``: (grid_x, grid_y, prob).
    ``clickable``: a clicked point is highlighted (the app explains it)."""
    points = np.asarray(points, np.float32)
    labels = np.asarray(labels, np.int64)
    rows, cols = _grid(max(1, len(panels)), cols)
    fig = make_subplots(rows=rows, cols=cols, shared_xaxes="all", shared_yaxes="all",
                        subplot_titles=[p.title for p in panels], horizontal_spacing=0.02, vertical_spacing=0.08)
    shown: set = set()
    for i, panel in enumerate(panels):
        _moons_traces(fig, i // cols + 1, i % cols + 1, points, labels, class_names, panel, oracle, shown,
                      clickable=clickable)
    xr, yr = _moons_range(points, oracle, panels)
    fig.update_xaxes(range=xr, showgrid=False, zeroline=False, showticklabels=False)
    fig.update_yaxes(range=yr, showgrid=False, zeroline=False, showticklabels=False)
    for ann in fig.layout.annotations:
        ann.font = dict(size=14)
    return _layout(fig, title, height=panel_height * rows + 90, legend_below=-0.02)


def moons_pick_chart(points, labels, panel: MoonsPanel, oracle=None, class_names=None, user_picks=None,
                     title: str | None = None, height: int = 460) -> go.Figure:
    """One large panel to box- or lasso-select your own batch on (your picks ringed in magenta)."""
    points = np.asarray(points, np.float32)
    labels = np.asarray(labels, np.int64)
    fig = go.Figure()
    _moons_traces(fig, None, None, points, labels, class_names, panel, oracle, set(), user_picks=user_picks,
                  selectable=True)
    xr, yr = _moons_range(points, oracle, [panel])
    fig.update_xaxes(range=xr, showgrid=False, zeroline=False, showticklabels=False)
    fig.update_yaxes(range=yr, showgrid=False, zeroline=False, showticklabels=False)
    # drag = box select (lasso in the toolbar); the legend goes below, clear of the toolbar
    return _layout(fig, title, height=height, legend_below=-0.02, dragmode="select")


# -- feature map ---------------------------------------------------------------------------------------
def feature_map(coords, indices, labels, class_names=None, labeled=(), selected=(), scores=None,
                title: str | None = None, height: int = 480, axis_title: str = "", method: str = "",
                clickable: bool = False) -> go.Figure:
    """A 2-d map of analysis points: colour = class, labeled filled with an outline, unlabeled faint,
    this stage's picks as black crosses. ``indices``: dataset index of each row of ``coords``;
    ``scores``: per row (NaN where not a candidate)."""
    coords = np.asarray(coords, np.float64)
    indices = np.asarray(indices, np.int64)
    labels = np.asarray(labels, np.int64)
    is_lab = np.isin(indices, np.asarray(labeled, np.int64))
    is_sel = np.isin(indices, np.asarray(selected, np.int64))
    scores = np.full(len(indices), np.nan) if scores is None else np.asarray(scores, np.float64)
    y = labels[indices]
    big = len(indices) > 1500
    Scatter = go.Scattergl if big else go.Scatter
    fig = go.Figure()
    for lab in (False, True):
        for k in np.unique(y):
            rows = np.flatnonzero((y == k) & (is_lab == lab))
            if not len(rows):
                continue
            fig.add_trace(Scatter(
                x=coords[rows, 0], y=coords[rows, 1], mode="markers",
                name=f"{_class_name(class_names, int(k))}" + (" (labeled)" if lab else ""),
                legendgroup=f"class{k}", marker=dict(size=8 if lab else 5, color=class_color(int(k)),
                                                    opacity=1.0 if lab else 0.4,
                                                    line=dict(width=1, color="#1a1a1a") if lab else dict(width=0)),
                **_hover(indices[rows], labels, class_names, scores[rows], "labeled" if lab else "unlabeled"),
                meta={"role": "labeled" if lab else "unlabeled", "class": int(k), "method": method},
                **(_click_styles(1.0 if lab else 0.4) if clickable else {}),
            ))
    rows = np.flatnonzero(is_sel)
    fig.add_trace(Scatter(
        x=coords[rows, 0], y=coords[rows, 1], mode="markers", name="Picked this stage",
        marker=dict(symbol="x-thin", size=11, line=dict(width=2.5, color=PICK_COLOR), color=PICK_COLOR),
        **_hover(indices[rows], labels, class_names, scores[rows], "picked this stage"),
        meta={"role": "picks", "method": method}, **(_click_styles(1.0) if clickable else {}),
    ))
    fig.update_xaxes(showticklabels=False, zeroline=False, title=axis_title + " 1" if axis_title else None)
    fig.update_yaxes(showticklabels=False, zeroline=False, title=axis_title + " 2" if axis_title else None)
    return _layout(fig, title, height=height, legend_below=-0.1)


# -- image gallery --------------------------------------------------------------------------------------
def png_data_uri(rgb: np.ndarray) -> str:
    """An (H, W, 3) uint8 image as a ``data:image/png;base64,...`` URI (a plotly Image's ``source``)."""
    import base64
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, np.uint8)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def image_gallery(images, indices, labels, class_names=None, scores=None, cols: int = 10, method: str = "",
                  title: str | None = None, gap: int = 2, caption_px: int | None = None) -> go.Figure:
    """The images of ``indices`` (pick order) as one mosaic, each tile clickable (an invisible marker over
    it carries the dataset index and score) and captioned with its true class and the method's score.
    ``images``: (N, C, H, W) uint8 for the whole training set."""
    indices = np.asarray(indices, np.int64)
    scores = np.full(len(indices), np.nan) if scores is None else np.asarray(scores, np.float64)
    n = len(indices)
    _, c, h, w = np.asarray(images).shape
    cols = max(1, min(cols, n)) if n else 1
    rows = max(1, math.ceil(n / cols))
    cap = caption_px if caption_px is not None else max(6, h // 3)
    cell_w, cell_h = w + gap, h + cap + gap
    canvas = np.full((rows * cell_h, cols * cell_w, 3), 255, np.uint8)
    cx, cy = [], []
    for i, idx in enumerate(indices):
        r, q = divmod(i, cols)
        img = np.asarray(images[idx])
        tile = np.repeat(img[:1], 3, 0) if c == 1 else img[:3]
        y0, x0 = r * cell_h, q * cell_w
        canvas[y0:y0 + h, x0:x0 + w] = np.transpose(tile, (1, 2, 0))
        cx.append(x0 + w / 2 - 0.5)
        cy.append(y0 + h / 2 - 0.5)
    # the mosaic as a PNG (source), not as a pixel array (z): a 20-image MNIST gallery is ~15 KB instead of
    # ~250 KB of JSON, which the server serialised and the browser parsed for every method after every Step
    fig = go.Figure(go.Image(source=png_data_uri(canvas), hoverinfo="skip", meta={"role": "mosaic", "method": method}))
    classes = np.asarray(labels, np.int64)[indices] if n else np.zeros(0, np.int64)
    captions = [f"{_class_name(class_names, int(k))} · {s:.3g}" if np.isfinite(s) else _class_name(class_names, int(k))
                for k, s in zip(classes, scores)]
    fig.add_trace(go.Scatter(
        x=cx, y=cy, mode="markers", name="picks", showlegend=False,
        marker=dict(symbol="square", size=30, color="rgba(0,0,0,0)", line=dict(width=0)),
        selected=dict(marker=dict(color="rgba(212,0,143,0.35)")), unselected=dict(marker=dict(opacity=1.0)),
        **_hover(indices, labels, class_names, scores, "click: why was it picked?"),
        meta={"role": "picks", "method": method},
    ))
    fig.add_trace(go.Scatter(
        x=cx, y=[y + h / 2 + cap / 2 for y in cy], mode="text", text=captions, showlegend=False,
        textfont=dict(size=11), hoverinfo="skip", meta={"role": "captions", "method": method},
    ))
    fig.update_xaxes(visible=False, range=[-0.5, cols * cell_w - 0.5])
    fig.update_yaxes(visible=False, range=[rows * cell_h - 0.5, -0.5], scaleanchor="x")
    height = 40 + rows * 120 + (40 if title else 0)
    return _layout(fig, title, height=height, dragmode=False)


# -- discriminator ---------------------------------------------------------------------------------------
def has_likelihood(record: StageRecord) -> bool:
    return bool(record.candidate_likelihood.size)


def discriminator_histograms(records: dict[str, StageRecord], bins: int = 40, title: str | None = None,
                             height: int = 380) -> go.Figure:
    """Per method (side by side, shared axes): the discriminator's likelihood ("labeled") for the labeled
    set, the unlabeled candidates it did not pick, and its picks, as shares of each group; a dotted line
    at the cut-off (the highest likelihood among the picks). Methods without a discriminator are skipped."""
    recs = {m: r for m, r in records.items() if has_likelihood(r)}
    n = max(1, len(recs))
    titles = []
    for m, r in recs.items():
        cut = analysis.selection_cutoff(r)
        titles.append(f"{method_label(m)} · cut-off {cut:.3f}" if np.isfinite(cut) else method_label(m))
    fig = make_subplots(rows=1, cols=n, shared_yaxes=True, horizontal_spacing=0.04, subplot_titles=titles or [""])
    pools = [("Labeled", "labeled", "#2b6cb0"), ("Unlabeled (not picked)", "unlabeled", "#f08c2e"),
             ("Picked", "picks", PICK_COLOR)]
    xbins = dict(start=0.0, end=1.0 + 1e-9, size=1.0 / bins)
    for c, (m, r) in enumerate(recs.items(), start=1):
        mask = r.selected_mask
        values = {"labeled": r.labeled_likelihood, "unlabeled": r.candidate_likelihood[~mask],
                  "picks": r.candidate_likelihood[mask]}
        for name, role, color in pools:
            v = np.asarray(values[role], np.float64)
            fig.add_trace(go.Histogram(
                x=v, name=name, legendgroup=role, showlegend=c == 1, xbins=xbins, histnorm="percent",
                marker=dict(color=color, line=dict(width=0)), opacity=0.55 if role != "picks" else 0.85,
                hovertemplate=f"{name}: %{{y:.1f}}% of {len(v)} with D in %{{x}}<extra>{method_label(m)}</extra>",
                meta={"method": m, "role": role, "count": int(len(v))},
            ), row=1, col=c)
        cut = analysis.selection_cutoff(r)
        if np.isfinite(cut):
            fig.add_vline(x=cut, line=dict(color="#c53030", width=2, dash="dot"), row=1, col=c)
    fig.update_layout(barmode="overlay")
    fig.update_xaxes(range=[0, 1], title="discriminator output: P(labeled)")
    fig.update_yaxes(title="% of group", col=1)
    return _layout(fig, title, height=height, legend_below=-0.2)


# -- loss vs likelihood, predicted vs real loss -------------------------------------------------------------
def _loss_axis(loss: np.ndarray) -> np.ndarray:
    # log axis: the per-sample loss spans orders of magnitude; clip zeros so they still show
    return np.clip(np.asarray(loss, np.float64), 1e-6, None)


def _scatter_panels(records: dict[str, StageRecord], xs: dict, ys: dict, x_title: str, y_title: str,
                    labels, class_names, log_x: bool, log_y: bool, title: str | None, height: int,
                    rho_of: str) -> go.Figure:
    names = list(xs)
    subtitles = []
    for m in names:
        rho = analysis.spearman(xs[m], ys[m])
        value = f"Spearman ρ = {rho:+.2f}" if np.isfinite(rho) else "ρ undefined"
        subtitles.append(f"{method_label(m)}: {value}")
    fig = make_subplots(rows=1, cols=max(1, len(names)), shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=subtitles or [""])
    for c, m in enumerate(names, start=1):
        r = records[m]
        mask = r.selected_mask
        scores = np.asarray(r.candidate_scores, np.float64) if r.candidate_scores.size else None
        for picked in (False, True):
            rows = np.flatnonzero(mask == picked)
            fig.add_trace(go.Scatter(
                x=xs[m][rows], y=ys[m][rows], mode="markers", name="Picked" if picked else "Candidates",
                legendgroup="picked" if picked else "cand", showlegend=c == 1,
                marker=dict(size=10 if picked else 5, color=PICK_COLOR if picked else method_color(m),
                            symbol="x-thin" if picked else "circle", opacity=1.0 if picked else 0.45,
                            line=dict(width=2.2, color=PICK_COLOR) if picked else dict(width=0)),
                **_hover(r.candidates[rows], labels, class_names, None if scores is None else scores[rows],
                         f"{x_title} %{{x:.3g}}<br>{y_title} %{{y:.3g}}"),
                meta={"method": m, "role": "picks" if picked else "candidates",
                                                             "rho": rho_of},
            ), row=1, col=c)
    fig.update_xaxes(title=x_title, type="log" if log_x else None, exponentformat="power" if log_x else None)
    fig.update_yaxes(type="log" if log_y else None, exponentformat="power" if log_y else None)
    fig.update_yaxes(title=y_title, col=1)
    return _layout(fig, title, height=height, legend_below=-0.2)


def loss_vs_likelihood(records: dict[str, StageRecord], labels, class_names=None, title: str | None = None,
                       height: int = 400) -> go.Figure:
    """TA-VAAL Figure 8: each candidate's real task loss (hidden labels) against the discriminator's
    likelihood, picks highlighted, Spearman rho per method in the panel title."""
    recs = {m: r for m, r in records.items() if has_likelihood(r) and r.candidate_loss.size}
    xs = {m: np.asarray(r.candidate_likelihood, np.float64) for m, r in recs.items()}
    ys = {m: _loss_axis(r.candidate_loss) for m, r in recs.items()}
    return _scatter_panels(recs, xs, ys, "discriminator P(labeled)", "real loss", labels, class_names,
                           log_x=False, log_y=True, title=title, height=height, rho_of="likelihood-loss")


def has_predicted_loss(record: StageRecord) -> bool:
    return bool(record.candidate_predicted_loss.size and record.candidate_loss.size)


def predicted_vs_real_loss(records: dict[str, StageRecord], labels, class_names=None, title: str | None = None,
                           height: int = 400) -> go.Figure:
    """The Ranker / loss head's predicted loss against the real loss per candidate, picks highlighted,
    Spearman rho per method (a good ranker has rho near +1)."""
    recs = {m: r for m, r in records.items() if has_predicted_loss(r)}
    xs = {m: _loss_axis(r.candidate_loss) for m, r in recs.items()}
    ys = {m: np.asarray(r.candidate_predicted_loss, np.float64) for m, r in recs.items()}
    return _scatter_panels(recs, xs, ys, "real loss", "predicted loss", labels, class_names,
                           log_x=True, log_y=False, title=title, height=height, rho_of="predicted-real")


# -- class balance -----------------------------------------------------------------------------------------
def class_entropy_bars(records: dict[str, list[StageRecord]], title: str | None = None, height: int = 360) -> go.Figure:
    """TA-VAAL Figure 7a: the labeled set's class entropy (normalised: 1 = balanced) at each stage,
    bars grouped by stage, one colour per method."""
    fig = go.Figure()
    for m, recs in records.items():
        if not recs:
            continue
        fig.add_trace(go.Bar(
            x=[r.stage for r in recs], y=[r.class_entropy_normalized for r in recs], name=method_label(m),
            marker_color=method_color(m), customdata=np.column_stack([[r.labeled_count for r in recs],
                                                                      [r.class_entropy for r in recs]]),
            hovertemplate="stage %{x}<br>normalised entropy %{y:.3f}<br>entropy %{customdata[1]:.3f} nats"
                          "<br>%{customdata[0]} labeled<extra>" + method_label(m) + "</extra>",
            meta={"method": m, "role": "entropy"},
        ))
    fig.update_layout(barmode="group", bargap=0.25)
    fig.update_xaxes(title="stage", dtick=1)
    fig.update_yaxes(title="class entropy / log K", range=[0, 1.05])
    return _layout(fig, title, height=height)


def class_counts_bars(counts: dict[str, np.ndarray], pool_counts, class_names=None, title: str | None = None,
                      height: int = 360, unit: str = "samples") -> go.Figure:
    """Per-class shares of each method's labeled set beside the pool's (hover gives the counts, in
    ``unit``: "samples", or "pixels" for segmentation)."""
    pool = np.asarray(pool_counts, np.float64)
    k = len(pool)
    x = [_class_name(class_names, i) for i in range(k)]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=x, y=100 * pool / max(pool.sum(), 1), name="Pool (all training data)",
                         marker=dict(color="rgba(0,0,0,0)", line=dict(color="#4a5568", width=2)),
                         customdata=pool.astype(int),
                         hovertemplate="%{x}: %{y:.1f}% (%{customdata} " + unit + ")<extra>pool</extra>",
                         meta={"role": "pool"}))
    for m, c in counts.items():
        c = np.asarray(c, np.float64)[:k]
        fig.add_trace(go.Bar(x=x, y=100 * c / max(c.sum(), 1), name=method_label(m), marker_color=method_color(m),
                             customdata=c.astype(int),
                             hovertemplate="%{x}: %{y:.1f}% (%{customdata} labeled " + unit + ")<extra>"
                                           + method_label(m) + "</extra>",
                             meta={"method": m, "role": "labeled"}))
    fig.update_layout(barmode="group", bargap=0.2)
    fig.update_xaxes(title="class", type="category")
    fig.update_yaxes(title="% of the set" if unit == "samples" else f"% of the set's {unit}", rangemode="tozero")
    return _layout(fig, title, height=height)


# -- learning curves -----------------------------------------------------------------------------------------
def learning_curves(curves: pd.DataFrame, improvement: bool | None = None, p_values: bool = True,
                    alpha: float = 0.05, title: str | None = None, height: int | None = None,
                    x: str = "labeled_count", relative: bool | None = None) -> go.Figure:
    """The metric (accuracy, or mean IoU for segmentation) against the labeled count, one line per method
    (mean over trials), a +-1 std band when there are several trials, and optionally a second panel with
    the improvement over random, in percentage points or, with ``relative``, in percent of random's value
    (TA-VAAL Figure 5 shows mean IoU this way; ``relative=None`` picks it for mean IoU); stages where the
    paired t-test gives p < ``alpha`` are starred, and every hover shows the p-value when there is one.

    ``curves``: tidy frame with ``CURVE_COLUMNS`` (``improvement_mean``/``p_value_vs_random`` may be NaN).
    A sweep's frame also has ``setting_label``: one line per (method, setting), the method's colour with a
    dash style per setting, improvement against random under the same setting.
    ``improvement``: None draws the second panel when any improvement is known."""
    missing = [c for c in CURVE_COLUMNS if c not in curves.columns]
    if missing:
        raise ValueError(f"curves lacks columns: {', '.join(missing)}")
    if "setting_label" in curves.columns and curves["setting_label"].nunique() > 1:
        return _sweep_learning_curves(curves, improvement, title, height, x, relative)
    # keep the methods in the order given (legend order), stages in order within each
    order = {m: i for i, m in enumerate(dict.fromkeys(curves["method"]))}
    df = curves.assign(_o=curves["method"].map(order)).sort_values(["_o", x]) if len(curves) else curves
    fig, name, gain, rows, relative = _curve_panels(df, improvement, relative)
    methods = list(dict.fromkeys(df["method"])) if len(df) else []
    for m in methods:
        d = df[df["method"] == m]
        color, label = method_color(m), method_label(m)
        xs = d[x].to_numpy()
        mean = 100 * d["metric_mean"].to_numpy(np.float64)
        std = 100 * d["metric_std"].to_numpy(np.float64)
        pv = d["p_value_vs_random"].to_numpy(np.float64)
        trials = d["trials"].to_numpy()
        band = (trials > 1) & np.isfinite(std)
        if band.any():
            bx, lo, hi = xs[band], (mean - std)[band], (mean + std)[band]
            fig.add_trace(go.Scatter(
                x=np.concatenate([bx, bx[::-1]]), y=np.concatenate([hi, lo[::-1]]), fill="toself",
                fillcolor=_rgba(color, 0.15), line=dict(width=0), hoverinfo="skip", showlegend=False,
                legendgroup=m, name=f"{label} ± std", meta={"method": m, "role": "band"},
            ), row=1, col=1)
        p_txt = ["" if not np.isfinite(p) else f"<br>p vs random = {p:.3g}" for p in pv]
        custom = np.column_stack([d["stage"].to_numpy(), trials, np.nan_to_num(std, nan=0.0), p_txt])
        fig.add_trace(go.Scatter(
            x=xs, y=mean, mode="lines+markers", name=label, legendgroup=m, line=dict(color=color, width=2.5),
            marker=dict(size=7), customdata=custom,
            hovertemplate="stage %{customdata[0]} · %{x} labeled<br>" + name + " %{y:.1f}%"
                          "<br>%{customdata[1]} trial(s), std %{customdata[2]:.1f}%{customdata[3]}"
                          "<extra>" + label + "</extra>",
            meta={"method": m, "role": "mean"},
        ), row=1, col=1)
        if rows == 2:
            imp = 100 * d[gain].to_numpy(np.float64)
            ok = np.isfinite(imp)
            fig.add_trace(go.Scatter(
                x=xs[ok], y=imp[ok], mode="lines+markers", name=label, legendgroup=m, showlegend=False,
                line=dict(color=color, width=2), marker=dict(size=6), customdata=np.array(p_txt, dtype=object)[ok],
                hovertemplate="%{x} labeled<br>%{y:+.1f}" + ("%" if relative else " points")
                              + "%{customdata}<extra>" + label + "</extra>",
                meta={"method": m, "role": "improvement"},
            ), row=2, col=1)
            sig = ok & np.isfinite(pv) & (pv < alpha)
            if p_values and sig.any():
                fig.add_trace(go.Scatter(
                    x=xs[sig], y=imp[sig], mode="markers", name=f"p < {alpha:g}", legendgroup="significant",
                    showlegend=False, marker=dict(symbol="star", size=13, color=color, line=dict(width=1, color="#1a1a1a")),
                    customdata=pv[sig], hovertemplate="p = %{customdata:.3g}<extra>" + label + "</extra>",
                    meta={"method": m, "role": "significant"},
                ), row=2, col=1)
    return _finish_curves(fig, rows, name, relative, x, title, height or (580 if rows == 2 else 420))


def _curve_panels(curves: pd.DataFrame, improvement: bool | None, relative: bool | None):
    """The learning-curve figure's panels: the metric on top and, when asked and known, the improvement over
    random below (relative for mean IoU unless told). Returns (figure, metric label, gain column, rows,
    relative)."""
    metric = curve_metric(curves)
    name = metric_label(metric)
    relative = (metric == "mean_iou") if relative is None else relative
    gain = "relative_improvement_mean" if relative else "improvement_mean"
    has_improvement = bool(curves[gain].notna().any()) if len(curves) else False
    improvement = has_improvement if improvement is None else (improvement and has_improvement)
    rows = 2 if improvement else 1
    gain_title = ("Relative improvement over random (% of random's " + name + ")" if relative
                  else "Improvement over random (percentage points)")
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        row_heights=[0.62, 0.38] if rows == 2 else None,
                        subplot_titles=["Test " + name, gain_title][:rows])
    return fig, name, gain, rows, relative


def _finish_curves(fig: go.Figure, rows: int, name: str, relative: bool, x: str, title: str | None,
                   height: int) -> go.Figure:
    """Axis titles, the zero line of the improvement panel, and the layout of a learning-curve figure."""
    if rows == 2:
        fig.add_hline(y=0, line=dict(color="#a0aec0", width=1), row=2, col=1)
        fig.update_yaxes(title="% of random" if relative else "points", row=2, col=1)
    fig.update_yaxes(title=f"{name} (%)", row=1, col=1)
    fig.update_xaxes(title="labeled samples" if x == "labeled_count" else x, row=rows, col=1)
    return _layout(fig, title, height=height, legend_below=-0.1)


_SETTING_DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")


def _sweep_learning_curves(curves: pd.DataFrame, improvement: bool | None, title: str | None, height: int | None,
                           x: str, relative: bool | None) -> go.Figure:
    """``learning_curves`` for a sweep: a line per (method, setting); std bands would hide each other, so
    the std is in the hover instead."""
    settings = list(dict.fromkeys(curves["setting_label"]))
    fig, name, gain, rows, relative = _curve_panels(curves, improvement, relative)
    for m in dict.fromkeys(curves["method"]):
        for k, setting in enumerate(settings):
            d = curves[(curves["method"] == m) & (curves["setting_label"] == setting)].sort_values(x)
            if d.empty:
                continue
            color, label = method_color(m), f"{method_label(m)} · {setting}"
            dash = _SETTING_DASHES[k % len(_SETTING_DASHES)]
            xs = d[x].to_numpy()
            std = np.nan_to_num(100 * d["metric_std"].to_numpy(np.float64), nan=0.0)
            pv = d["p_value_vs_random"].to_numpy(np.float64)
            p_txt = ["" if not np.isfinite(p) else f"<br>p vs random = {p:.3g}" for p in pv]
            custom = np.column_stack([d["stage"].to_numpy(), d["trials"].to_numpy(), std, p_txt])
            meta = {"method": m, "setting": setting}
            fig.add_trace(go.Scatter(
                x=xs, y=100 * d["metric_mean"].to_numpy(np.float64), mode="lines+markers", name=label,
                legendgroup=f"{m}|{setting}", line=dict(color=color, width=2.5, dash=dash), marker=dict(size=7),
                customdata=custom,
                hovertemplate="stage %{customdata[0]} · %{x} labeled<br>" + name + " %{y:.1f}%"
                              "<br>%{customdata[1]} trial(s), std %{customdata[2]:.1f}%{customdata[3]}"
                              "<extra>" + label + "</extra>",
                meta=dict(meta, role="mean"),
            ), row=1, col=1)
            if rows == 2:
                imp = 100 * d[gain].to_numpy(np.float64)
                ok = np.isfinite(imp)
                fig.add_trace(go.Scatter(
                    x=xs[ok], y=imp[ok], mode="lines+markers", name=label, legendgroup=f"{m}|{setting}",
                    showlegend=False, line=dict(color=color, width=2, dash=dash), marker=dict(size=6),
                    customdata=np.array(p_txt, dtype=object)[ok],
                    hovertemplate="%{x} labeled<br>%{y:+.1f} " + ("%" if relative else "points")
                                  + "%{customdata}<extra>" + label + "</extra>",
                    meta=dict(meta, role="improvement"),
                ), row=2, col=1)
    return _finish_curves(fig, rows, name, relative, x, title, height or (620 if rows == 2 else 460))


# -- what-if ----------------------------------------------------------------------------------------------
def overlap_heatmap(table: pd.DataFrame, title: str | None = None, height: int | None = None) -> go.Figure:
    """Pairwise shared picks (``analysis.pairwise_overlap``): count in each cell, diagonal = batch size."""
    names = [method_label(m) for m in table.index]
    z = table.to_numpy(np.float64)
    size = np.diag(z).copy()
    share = np.divide(z, np.minimum.outer(size, size), out=np.zeros_like(z), where=np.minimum.outer(size, size) > 0)
    fig = go.Figure(go.Heatmap(
        z=share, x=names, y=names, text=z.astype(int), texttemplate="%{text}", colorscale="Blues", zmin=0, zmax=1,
        colorbar=dict(title="shared", tickformat=".0%"),
        hovertemplate="%{y} and %{x} share %{text} picks<extra></extra>", meta={"role": "overlap"},
    ))
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, title, height=height or 120 + 60 * len(names))


def timings_bars(records: dict[str, StageRecord], title: str | None = None, height: int = 300) -> go.Figure:
    """Seconds per phase for each method's stage (stacked)."""
    phases = list(dict.fromkeys(p for r in records.values() for p in r.timings))
    fig = go.Figure()
    for p in phases:
        fig.add_trace(go.Bar(y=[method_label(m) for m in records], x=[r.timings.get(p, 0.0) for r in records.values()],
                             name=p, orientation="h", meta={"role": "timing", "phase": p},
                             hovertemplate="%{y}: %{x:.2f} s<extra>" + p + "</extra>"))
    fig.update_layout(barmode="stack")
    fig.update_xaxes(title="seconds")
    fig.update_yaxes(autorange="reversed")  # methods top to bottom in the session's order
    return _layout(fig, title, height=height)


# -- paper claims: one panel per claimed ordering, every seed a line ------------------------------------------
VERDICT_COLORS = {"holds": "#2ca02c", "mixed": "#e8a10a", "does not hold": "#d62728"}


def claim_parts(parts: list[dict], title: str | None = None, height: int | None = None) -> go.Figure:
    """Every part of a claim across seeds: one panel per part, the two sides (method a, method b or a
    constant) on the x axis, each seed a grey line joining its two values (so crossing lines are the seeds
    where the ordering failed), and each side's mean with its 95% CI.

    ``parts``: dicts with ``text, metric, a, b, verdict, held, seeds, per_seed`` (``{"trial", "a", "b"}``),
    ``mean_a, ci_a_low, ci_a_high, mean_b, ci_b_low, ci_b_high`` (an audit's ``PartResult.as_row()`` plus
    ``per_seed``)."""
    shown = [p for p in parts if p.get("per_seed", {}).get("a")]
    n = max(1, len(shown))
    rows, cols = _grid(n, 4 if n > 4 else n)
    titles = [f"{i + 1} · {p['verdict']} · {p['held']}/{p['seeds']} seeds" for i, p in enumerate(shown)] or [""]
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, horizontal_spacing=0.08,
                        vertical_spacing=0.18 if rows > 1 else 0.1)
    for i, p in enumerate(shown):
        r, c = i // cols + 1, i % cols + 1
        a_name = method_label(p["a"])
        b_name = method_label(p["b"]) if isinstance(p["b"], str) else f"{float(p['b']):g}"
        per = p["per_seed"]
        for trial, va, vb in zip(per.get("trial", range(len(per["a"]))), per["a"], per["b"]):
            fig.add_trace(go.Scatter(
                x=[a_name, b_name], y=[va, vb], mode="lines+markers", showlegend=False,
                line=dict(color="rgba(120,120,120,0.45)", width=1), marker=dict(size=5, color="rgba(90,90,90,0.7)"),
                hovertemplate=f"seed {trial}<br>%{{x}}: %{{y:.3f}}<extra></extra>",
                meta={"role": "seed", "part": i, "trial": int(trial)}), row=r, col=c)
        for name, side, key in ((a_name, p["a"], "a"), (b_name, p["b"], "b")):
            mean, low, high = p[f"mean_{key}"], p[f"ci_{key}_low"], p[f"ci_{key}_high"]
            if mean != mean:
                continue
            color = method_color(side) if isinstance(side, str) else ORACLE_COLOR
            err = None if low != low else dict(type="data", symmetric=False, array=[high - mean],
                                                 arrayminus=[mean - low], color=color, thickness=2, width=8)
            fig.add_trace(go.Scatter(
                x=[name], y=[mean], mode="markers", showlegend=False, error_y=err,
                marker=dict(size=13, color=color, symbol="diamond", line=dict(color="white", width=1)),
                hovertemplate=f"{name}: mean %{{y:.3f}}" + ("" if low != low else f" (95% CI {low:.3f} to {high:.3f})")
                              + "<extra></extra>",
                meta={"role": "mean", "part": i, "side": key}), row=r, col=c)
        fig.update_yaxes(title_text=p["metric"], row=r, col=c, title_standoff=4)
    for k, annotation in enumerate(fig.layout.annotations):
        if k < len(shown):
            annotation.font = dict(size=13, color=VERDICT_COLORS.get(shown[k]["verdict"], "#333"))
    return _layout(fig, title, height or 300 * rows)


def sweep_heatmap(table: pd.DataFrame, title: str | None = None) -> go.Figure:
    """The claim x setting table as a grid: one row per (field, value), one column per part, coloured by
    verdict, each cell saying ``verdict (held/seeds)``."""
    parts = [c for c in table.columns if c not in ("field", "value", "claim")]
    labels = [f"{f} = {v}" for f, v in zip(table["field"], table["value"])]
    code = {"holds": 2, "mixed": 1, "does not hold": 0}
    z = [[code.get(str(cell).split(" (")[0], np.nan) for cell in table[p]] for p in parts]
    fig = go.Figure(go.Heatmap(
        z=np.array(z, float).T, x=parts, y=labels, text=np.array([[str(c) for c in table[p]] for p in parts]).T,
        texttemplate="%{text}", zmin=0, zmax=2, showscale=False,
        colorscale=[[0, "#f4b6b6"], [0.5, "#fde3a7"], [1, "#b7e1b0"]], hoverongaps=False,
        hovertemplate="%{y}<br>%{x}<br>%{text}<extra></extra>"))
    fig.update_xaxes(side="top", tickangle=0)
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, title, 80 + 40 * len(labels))
