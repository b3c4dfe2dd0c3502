"""View renderers. Each takes a ``Source`` (a live session or a saved run) and a stage, reads the stored
records, and draws; none of them trains a model (the what-if view computes, behind its button).
Figures come from ``tavaal_core.figures``; numbers from ``tavaal_core.analysis``."""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from tavaal_core import analysis, embedding, figures
from tavaal_core.strategies import method_label
from tavaal_core.phases import PHASE_SCORING

from .progress import TaskProgress
from .runtime import COMPUTE_LOCK
from .source import Source
from .text import EXPLAIN

CHART_CONFIG = {"displaylogo": False, "toImageButtonOptions": {"format": "png", "scale": 2}}
PAGE_KEY = "_page_name"  # the page being drawn (for PNG file names), set by links.PageLink


def explain(name: str) -> None:
    st.caption(EXPLAIN[name])


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in str(text).lower()).strip("-")


def export_name(what: str | None = None, methods=None, stage: int | None = None) -> str:
    """The PNG export's file name: page, what the chart shows, method(s) and stage, e.g.
    ``tavaal-two-moons-panels-random-coreset-vaal-tavaal-stage-2``."""
    parts = ["tavaal", st.session_state.get(PAGE_KEY) or "chart"]
    if what:
        parts.append(what)
    if methods:
        parts += [methods] if isinstance(methods, str) else list(methods)
    if stage is not None:
        parts.append(f"stage-{int(stage)}")
    return "-".join(_slug(p) for p in parts if p)


def chart(fig, key: str | None = None, what: str | None = None, methods=None, stage: int | None = None,
          where=None, **kw):
    """A plotly chart with the app's toolbar: its PNG export is named after the page, ``what``, the
    method(s) and the stage; in presenter mode fonts, markers and lines are larger."""
    from . import links

    config = dict(CHART_CONFIG, toImageButtonOptions=dict(CHART_CONFIG["toImageButtonOptions"],
                                                          filename=export_name(what or key, methods, stage)))
    if links.presenting():
        fig = figures.for_presentation(fig)
    return (where or st).plotly_chart(fig, key=key, config=config, **kw)


# -- two moons ---------------------------------------------------------------------------------------------
def moons_panels(source: Source, stage: int | None, methods: list[str] | None = None, cols: int | None = None,
                 key: str = "moons_panels", session=None, clickable: bool = True) -> None:
    """Small multiples at ``stage`` (None: the initial labels, before any step). With a live ``session``
    whose oracle is not trained yet, the data is drawn first and redrawn with the oracle's line. A click
    on a point (after a step) opens its explanation (``why.panel``)."""
    slot = st.empty()
    if session is not None and source.oracle is None:
        _moons_panels(slot, source, stage, methods, cols, key + "_pending", clickable=False)
        with st.spinner("Training the oracle (the same model on every label) for the dashed line…"):
            session.ensure_oracle()
    _moons_panels(slot, source, stage, methods, cols, key, clickable=clickable and stage is not None)


def _moons_panels(slot, source, stage, methods, cols, key, clickable: bool) -> None:
    from . import why

    meta = source.meta
    methods = methods or list(source.records)
    n = len(meta.labels)
    if stage is None:
        labeled = next(iter(source.learners.values())).pool.labeled if source.learners else np.zeros(0, np.int64)
        panels = [figures.MoonsPanel(f"{method_label(m)} · not trained yet", labeled, method=m) for m in methods]
    else:
        recs = source.at(stage, methods)
        panels = [figures.moons_panel(r, n_points=n) for r in recs.values()]
    fig = figures.moons_small_multiples(meta.points, meta.labels, panels, source.oracle, meta.class_names, cols=cols,
                                        panel_height=300 if len(panels) > 2 else 380, clickable=clickable)
    kw = dict(on_select=why.on_click(key, source, why.curve_methods(fig)), selection_mode="points") if clickable else {}
    chart(fig, key=key, what="panels", methods=[p.method for p in panels], stage=stage, where=slot, **kw)


def pick_your_own(source: Source, stage: int, key: str = "pick") -> None:
    """A selectable chart of one method's state at ``stage``; the user's batch vs every method's picks."""
    meta = source.meta
    recs = source.at(stage)
    if not recs:
        return
    c1, c2 = st.columns([2, 1])
    with c2:
        ref = st.selectbox("Pick from the state of", list(recs), format_func=method_label, key=f"{key}_ref",
                           help="Which method's labeled set and boundary you pick on (they differ after stage 0).")
    record = recs[ref]
    selection_key = f"{key}_chart_{source.key}_{ref}_{stage}"
    state = st.session_state.get(selection_key)
    chosen = _selected_indices(state)
    unlabeled = np.setdiff1d(chosen, record.labeled)
    panel = figures.moons_panel(record, title=None, n_points=len(meta.labels))
    panel.selected = np.zeros(0, np.int64)  # your picks are the point here; the method's are in the table
    fig = figures.moons_pick_chart(meta.points, meta.labels, panel, source.oracle, meta.class_names,
                                   user_picks=unlabeled, height=440)
    with c1:
        chart(fig, key=selection_key, what="your-batch", methods=ref, stage=stage, on_select="rerun",
              selection_mode=("box", "lasso"))
    with c2:
        if not len(unlabeled):
            st.info("Drag a box over some unlabeled points to pick them (or choose the lasso in the chart's toolbar).")
            return
        extra = len(unlabeled) - len(record.selected)
        st.metric("Your batch", f"{len(unlabeled)} points", delta=f"{extra:+d} vs the budget" if extra else None,
                  delta_color="off")
    batches = {"you": unlabeled, **{m: r.selected for m, r in recs.items()}}
    bounds = {m: (r.boundary_x, r.boundary_y, r.boundary_prob) for m, r in recs.items() if r.boundary_prob.size}
    if ref in bounds:
        bounds["you"] = bounds[ref]
    table = analysis.compare_batches(batches, meta.points, bounds, reference="you")
    table["batch"] = ["Your batch"] + [method_label(m) for m in recs]
    table = table.rename(columns={"batch": "Batch", "size": "Points", "overlap": "Shared with yours",
                                  "mean_distance_to_boundary": "Mean distance to boundary", "spread": "Spread"})
    st.dataframe(table, hide_index=True, width="stretch",
                 column_config={"Mean distance to boundary": st.column_config.NumberColumn(format="%.3f"),
                                "Spread": st.column_config.NumberColumn(format="%.3f"),
                                "Shared with yours": st.column_config.NumberColumn(format="%d")})
    st.caption("Distance to boundary: your batch is measured against the boundary of the state you pick on, each "
               "method against its own model's. Small = uncertain points. Spread = mean distance between the points "
               "of a batch: large = diverse. An empty distance means the model drew no boundary (one class everywhere).")


def _selected_indices(state) -> np.ndarray:
    """Dataset indices of the points selected on a chart (its customdata[0])."""
    try:
        points = state["selection"]["points"]
    except (KeyError, TypeError):
        return np.zeros(0, np.int64)
    out = []
    for p in points:
        custom = p.get("customdata")
        # a list, or {"0": index, "1": score} when plotly sent customdata as a typed array
        first = custom.get("0") if isinstance(custom, dict) else custom[0] if custom else None
        try:
            out.append(int(first))
        except (TypeError, ValueError):
            pass
    return np.unique(np.asarray(out, np.int64))


# -- image gallery ---------------------------------------------------------------------------------------------
def _tile(image: np.ndarray, size: int = 64) -> np.ndarray:
    """(C, H, W) uint8 -> an upscaled (about size x size) HxW or HxWx3 array (nearest neighbour keeps pixels sharp)."""
    c, h, w = image.shape
    rep = max(1, size // max(h, w))
    img = image.repeat(rep, axis=1).repeat(rep, axis=2)
    return img[0] if c == 1 else np.transpose(img[:3], (1, 2, 0))


def image_grid(images: list[np.ndarray], captions: list[str], per_row: int = 10, width: int = 64) -> None:
    """Tiles in a fixed grid, each with its caption underneath."""
    for start in range(0, len(images), per_row):
        cols = st.columns(per_row, gap="small")
        for col, img, cap in zip(cols, images[start:start + per_row], captions[start:start + per_row]):
            col.image(img, caption=cap, width=width)


def device_note(config) -> None:
    """Where this page's stages run, and in which precision (a caption)."""
    from tavaal_core import TavaalError
    from tavaal_core.training import describe_device

    resolved = config.resolve()
    try:
        st.caption(describe_device(resolved.device, resolved.model, resolved.precision))
    except TavaalError as e:  # a device or precision this machine lacks: say so
        st.caption(str(e))


def score_rule(record) -> str:
    """How a record's scores explain its picks, in words (caption text)."""
    if record.greedy:
        return ("greedy, in pick order: each pick had the highest value among the remaining candidates at its "
                "turn, and every value is re-computed after each pick")
    return f"{'higher' if record.higher_is_better else 'lower'} is picked first"


def _mask_tile(meta, mask: np.ndarray, size: int = 64) -> np.ndarray:
    tile = figures.colorize_mask(mask, meta.num_classes, meta.background_class)  # (H, W, 3)
    rep = max(1, size // max(tile.shape[:2]))
    return tile.repeat(rep, axis=0).repeat(rep, axis=1)


def mask_legend(meta) -> None:
    """The class colours of the masks, as one line of coloured names."""
    chips = []
    for k, name in enumerate(meta.class_names):
        rgb = figures.colorize_mask(np.array([[k]]), meta.num_classes, meta.background_class)[0, 0]
        chips.append(f"<span style='display:inline-block;width:0.9em;height:0.9em;background:rgb({rgb[0]},{rgb[1]},"
                     f"{rgb[2]});border:1px solid #999;margin-right:0.25em;vertical-align:middle'></span>{name}")
    chips.append("<span style='display:inline-block;width:0.9em;height:0.9em;background:#fff;border:1px solid #999;"
                 "margin-right:0.25em;vertical-align:middle'></span>no label (ignored)")
    st.markdown(" &nbsp; ".join(chips), unsafe_allow_html=True)


def segmentation_gallery(meta, record, limit: int = 8) -> None:
    """Each pick as a row of three: the image, its true mask, the mask the stage's model predicted."""
    scores = analysis.pick_scores(record)
    predicted = record.selected_predicted_masks
    shown = record.selected[:min(limit, len(predicted))]
    per_row = 3  # picks per row, three tiles each
    for start in range(0, len(shown), per_row):
        cols = st.columns(3 * per_row, gap="small")
        for j, i in enumerate(shown[start:start + per_row]):
            pos = start + j
            score = f" · {scores[pos]:.3g}" if pos < len(scores) else ""
            cols[3 * j].image(_tile(meta.images[i]), caption=f"#{int(i)}{score}", width=72)
            cols[3 * j + 1].image(_mask_tile(meta, meta.masks[i]), caption="true", width=72)
            cols[3 * j + 2].image(_mask_tile(meta, predicted[pos]), caption="predicted", width=72)


def gallery(source: Source, stage: int, methods: list[str] | None = None, limit: int = 20,
            clickable: bool = True) -> None:
    """The images each method picked at ``stage``, in pick order, with their true label and score; a click
    on a tile opens its explanation (segmentation: each pick beside its true and its predicted mask)."""
    from . import why

    meta = source.meta
    if meta.images is None:
        st.info("This dataset has no images to show.")
        return
    recs = source.at(stage, methods)
    if meta.segmentation and recs:
        mask_legend(meta)
    for m, r in recs.items():
        scores = analysis.pick_scores(r)
        label = f"**{method_label(m)}** · picked {len(r.selected)} · score: {r.score_name} ({score_rule(r)})"
        st.markdown(label)
        if meta.segmentation:
            segmentation_gallery(meta, r, limit=min(limit, 9))
            if len(r.selected) > min(limit, 9, len(r.selected_predicted_masks)):
                st.caption(f"First {min(limit, 9, len(r.selected_predicted_masks))} of {len(r.selected)} picks shown; "
                           "the masks are the stage's model's predictions (before the pick is labeled).")
            continue
        shown = r.selected[:limit]
        fig = figures.image_gallery(meta.images, shown, meta.labels, meta.class_names, scores[:limit], method=m)
        key = f"gallery_{m}"
        kw = dict(on_select=why.on_click(key, source, why.curve_methods(fig)), selection_mode="points") \
            if clickable else {}
        chart(fig, key=key if clickable else None, what="gallery", methods=m, stage=stage, **kw)
        if len(r.selected) > limit:
            st.caption(f"First {limit} of {len(r.selected)} picks shown.")


def initial_gallery(source: Source, labeled, limit: int = 40) -> None:
    """The labeled images every method starts from, with their labels and the class counts."""
    meta = source.meta
    if meta.images is None or not len(labeled):
        return
    if meta.segmentation:
        counts = meta.pixel_counts[np.asarray(labeled)].sum(0)
        share = 100 * counts / max(counts.sum(), 1)
        st.markdown(f"**The {len(labeled)} labeled images every method starts from**, with their masks · pixels per "
                    "class: " + ", ".join(f"{meta.class_names[k]}: {p:.1f}%" for k, p in enumerate(share)))
        mask_legend(meta)
        shown = np.asarray(labeled)[:min(limit, 24)]
        tiles, caps = [], []
        for i in shown:
            tiles += [_tile(meta.images[i]), _mask_tile(meta, meta.masks[i])]
            caps += [f"#{int(i)}", "mask"]
        image_grid(tiles, caps, per_row=12, width=56)
        if len(labeled) > len(shown):
            st.caption(f"First {len(shown)} of {len(labeled)} shown.")
        return
    counts = np.bincount(meta.labels[labeled], minlength=meta.num_classes)
    st.markdown(f"**The {len(labeled)} labeled images every method starts from** · per class: "
                + ", ".join(f"{meta.class_names[k]}: {c}" for k, c in enumerate(counts)))
    shown = np.asarray(labeled)[:limit]
    image_grid([_tile(meta.images[i]) for i in shown], [meta.class_names[int(meta.labels[i])] for i in shown],
               per_row=12, width=56)
    if len(labeled) > limit:
        st.caption(f"First {limit} of {len(labeled)} shown.")


def timings(source: Source, stage: int) -> None:
    """Seconds per phase of each method's stage, in a closed expander."""
    recs = {m: r for m, r in source.at(stage).items() if r.timings}
    if recs:
        with st.expander("Where the time went"):
            chart(figures.timings_bars(recs, title=f"Seconds per phase at stage {stage}",
                                       height=120 + 40 * len(recs)), key="timings", what="timings", stage=stage)


def accuracy_table(source: Source, stage: int) -> None:
    recs = source.at(stage)
    if not recs:
        return
    per_row = min(len(recs), 6)
    for i, (m, r) in enumerate(recs.items()):
        if i % per_row == 0:
            cols = st.columns(per_row)
        col = cols[i % per_row]
        prev = source.records[m][stage - 1].metric if stage > 0 else None
        delta = f"{(r.metric - prev) * 100:+.1f} pts" if prev is not None else None
        if r.metric_name == "mean_iou":
            per_class = ", ".join(f"{n} {v:.0%}" for n, v in zip(source.meta.class_names, r.per_class_iou)
                                  if np.isfinite(v))
            col.metric(f"{method_label(m)} · mean IoU", f"{r.mean_iou:.1%}", delta=delta,
                       help=f"Test mean IoU of the model trained on {r.labeled_count} labeled images at stage {stage} "
                            f"(pixel accuracy {r.accuracy:.1%}). Per class: {per_class}.")
        else:
            col.metric(method_label(m), f"{r.accuracy:.1%}", delta=delta,
                       help=f"Test accuracy of the model trained on {r.labeled_count} labels at stage {stage}.")


# -- feature map ---------------------------------------------------------------------------------------------
def _feature_map(source: Source, method: str, space: str, projection: str, alpha: float) -> embedding.FeatureMap:
    store = st.session_state.setdefault("_feature_maps", {})
    key = (source.uid, method, space, projection, round(float(alpha), 4) if space == "vae" else None)
    if key not in store:
        store[key] = embedding.FeatureMap(projection, seed=0)
    return store[key]


def _features(record, space: str, alpha: float):
    if space == "task":
        return record.analysis_features
    return embedding.augmented_features(record.analysis_features, record.analysis_vae_mu, alpha)


def _placed(source: Source, method: str, stage: int, space: str, projection: str, alpha: float) -> np.ndarray:
    """Coordinates of the analysis points at ``stage``: the map is fitted on stage 0 of this method, later
    stages are placed into it (cached; only the first view of a stage computes)."""
    fmap = _feature_map(source, method, space, projection, alpha)
    recs = source.records[method]
    todo = [s for s in ([0] if not fmap.fitted else []) + [stage] if s not in fmap._placed]
    if todo and projection == "pca":  # instant: no progress box
        for s in todo:
            fmap.place(s, _features(recs[s], space, alpha))
    elif todo:
        label = embedding.PROJECTION_LABELS[projection]
        waiting = projection == "umap" and not embedding.umap_ready()
        which = "task" if space == "task" else "VAE-augmented"
        progress = TaskProgress(f"{label} map of {method_label(method)} ({which} features)"
                                + (": waiting for UMAP's one-time compile…" if waiting else "…"))
        for s in todo:
            fmap.place(s, _features(recs[s], space, alpha), progress=progress)
        progress.finish()
    return fmap.place(stage, _features(recs[stage], space, alpha))


def feature_maps(source: Source, stage: int, method: str, projection: str, alpha: float,
                 clickable: bool = True) -> None:
    from . import why

    meta = source.meta
    record = source.records[method][stage]
    if not record.analysis_features.size:
        st.info("This record holds no features (analysis sample size 0).")
        return
    idx = record.analysis_indices
    scores = analysis.scores_by_index(record, idx)
    label = embedding.PROJECTION_LABELS[projection]
    left, right = st.columns(2)
    with left:
        xy = _placed(source, method, stage, "task", projection, alpha)
        fig = figures.feature_map(xy, idx, meta.labels, meta.class_names, record.labeled, record.selected, scores,
                                  title=f"Task features · {label}", axis_title=label, method=method,
                                  clickable=clickable)
        kw = dict(on_select=why.on_click("fmap_task", source, why.curve_methods(fig)), selection_mode="points") \
            if clickable else {}
        chart(fig, key="fmap_task", what=f"task-features-{projection}", methods=method, stage=stage, **kw)
    with right:
        if record.analysis_vae_mu.size:
            xy = _placed(source, method, stage, "vae", projection, alpha)
            fig = figures.feature_map(xy, idx, meta.labels, meta.class_names, record.labeled, record.selected,
                                      scores, title=f"Task + {alpha:g} × VAE features · {label}", axis_title=label,
                                      method=method, clickable=clickable)
            kw = dict(on_select=why.on_click("fmap_vae", source, why.curve_methods(fig)),
                      selection_mode="points") if clickable else {}
            chart(fig, key="fmap_vae", what=f"vae-features-alpha-{alpha:g}-{projection}", methods=method,
                  stage=stage, **kw)
        else:
            st.info(f"{method_label(method)} trains no VAE, so there are no VAE features to add. Choose VAAL, "
                    "TA-VAAL or a '+ VAE' method for the VAE-augmented map.")
    st.caption(f"The map is fitted once on stage 0 of {method_label(method)}; later stages are placed into it, so the "
               "axes stay the same while you move the stage slider. Showing "
               f"{len(idx)} of {len(meta.labels)} training samples.")


# -- discriminator, loss ----------------------------------------------------------------------------------------
def discriminator(source: Source, stage: int, methods: list[str]) -> None:
    recs = {m: r for m, r in source.at(stage, methods).items() if figures.has_likelihood(r)}
    if not recs:
        st.info("No method in this selection trains a discriminator. Step VAAL or TA-VAAL (on Two moons or the "
                "Stage explorer) to see this view.")
        return
    chart(figures.discriminator_histograms(recs, title=f"Discriminator output at stage {stage}"), key="disc_hist",
          what="histograms", methods=list(recs), stage=stage)
    rows = []
    for m, r in recs.items():
        rows.append({"Method": method_label(m), "Cut-off": analysis.selection_cutoff(r),
                     "Median (labeled)": float(np.median(r.labeled_likelihood)) if r.labeled_likelihood.size else np.nan,
                     "Median (unlabeled)": float(np.median(r.candidate_likelihood)),
                     "Spread (IQR, unlabeled)": float(np.subtract(*np.percentile(r.candidate_likelihood, [75, 25])))})
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch",
                 column_config={c: st.column_config.NumberColumn(format="%.3f")
                                for c in ("Cut-off", "Median (labeled)", "Median (unlabeled)", "Spread (IQR, unlabeled)")})


def loss_views(source: Source, stage: int, methods: list[str]) -> None:
    meta = source.meta
    recs = source.at(stage, methods)
    st.subheader("Real loss against the discriminator's likelihood")
    explain("loss")
    with_d = {m: r for m, r in recs.items() if figures.has_likelihood(r)}
    if with_d:
        chart(figures.loss_vs_likelihood(with_d, meta.labels, meta.class_names), key="loss_lik",
              what="loss-vs-likelihood", methods=list(with_d), stage=stage)
        st.caption("Losses below 10⁻⁶ (confidently right) are drawn at 10⁻⁶. Crosses: this stage's picks.")
    else:
        st.info("No method in this selection has a discriminator (VAAL, TA-VAAL, VAAL + learning loss).")
    st.subheader("Predicted loss against real loss")
    explain("ranker")
    with_head = {m: r for m, r in recs.items() if figures.has_predicted_loss(r)}
    if with_head:
        chart(figures.predicted_vs_real_loss(with_head, meta.labels, meta.class_names), key="loss_pred",
              what="predicted-vs-real-loss", methods=list(with_head), stage=stage)
    else:
        st.info("No method in this selection has a loss head or Ranker (Learning loss, Learning loss v2, TA-VAAL).")


# -- class balance, learning curves -----------------------------------------------------------------------------
def class_balance(source: Source, stage: int, methods: list[str]) -> None:
    meta = source.meta
    records = {m: source.records[m] for m in methods if source.records.get(m)}
    chart(figures.class_entropy_bars(records, title="Class entropy of the labeled set, per stage"), key="entropy",
          what="class-entropy", methods=list(records))
    recs = source.at(stage, methods)
    counts = {m: analysis.labeled_counts_after(r, meta.num_classes, meta.pixel_counts) for m, r in recs.items()}
    unit = "pixels" if meta.segmentation else "samples"
    what = "Labeled pixels per class" if meta.segmentation else "Labeled set"
    chart(figures.class_counts_bars(counts, meta.pool_class_counts, meta.class_names, unit=unit,
                                    title=f"{what} after stage {stage}'s picks vs the pool"), key="counts",
          what="class-counts", methods=list(recs), stage=stage)


def improvement_choice(curves, key: str = "curve_gain") -> bool:
    """Points or relative (%) for the improvement panel; relative by default for mean IoU (TA-VAAL Fig. 5)."""
    from tavaal_core.statistics import curve_metric

    default = "relative (%)" if curve_metric(curves) == "mean_iou" else "points"
    options = ["points", "relative (%)"]
    choice = st.radio("Improvement over random in", options, index=options.index(persisted_choice(key, default)),
                      horizontal=True, key=key, help="Points: method minus random. Relative: (method - random) / "
                      "random, as TA-VAAL's Figure 5 shows mean IoU on Cityscapes.")
    return choice == "relative (%)"


def persisted_choice(key: str, default: str) -> str:
    from .controls import persisted

    return persisted(key, default)


def learning_curves(source: Source, methods: list[str]) -> None:
    records = {m: source.records[m] for m in methods if source.records.get(m)}
    curves = figures.curves_from_records(records)
    relative = improvement_choice(curves)
    chart(figures.learning_curves(curves, relative=relative), key="curves", what="learning-curves",
          methods=list(records))
    if source.stages < 2:
        st.caption("One stage so far: step more to draw lines.")
    with st.expander("Numbers"):
        table = curves.pivot(index=["stage", "labeled_count"], columns="method", values="metric_mean")
        table.columns = [method_label(m) for m in table.columns]
        st.dataframe((100 * table).round(1), width="stretch")


# -- what-if -------------------------------------------------------------------------------------------------
def what_if(source: Source, base: str, methods: list[str], key: str = "what_if") -> None:
    """Every method's picks from ``base``'s current state (computed on demand, cached per state)."""
    learner = source.learners.get(base)
    if learner is None:
        st.info("What-if needs a live session (its models are not stored in a saved run).")
        return
    cache = st.session_state.setdefault("_what_if", {})
    state_key = (source.uid, base, learner.stage, tuple(methods))
    result = cache.get(state_key)
    st.caption(f"From {method_label(base)}'s labeled set after {learner.stage} stage(s): "
               f"{len(learner.pool.labeled)} labels.")
    if result is None:
        if not st.button("Compute what each method would pick", type="primary", key=f"{key}_go", disabled=not methods):
            return
        from .progress import StepProgress

        progress = StepProgress(methods, label=f"What-if at stage {learner.stage}…")
        try:
            with COMPUTE_LOCK:
                result = learner.what_if(methods, progress=_what_if_progress(progress, methods))
        except Exception as e:  # noqa: BLE001 - shown to the user, the session is unchanged
            progress.finish(f"What-if failed: {e}", error=True)
            return
        progress.finish()
        cache[state_key] = result
    meta = source.meta
    picks = {m: r.selected for m, r in result.items()}
    if meta.points is not None:
        n = len(meta.labels)
        panels = [figures.moons_panel(r, n_points=n) for r in result.values()]
        chart(figures.moons_small_multiples(meta.points, meta.labels, panels, source.oracle, meta.class_names),
              key=f"{key}_panels", what="what-if-panels", methods=list(result), stage=learner.stage)
    else:
        tmp = Source(source.key, source.title, meta, {m: [r] for m, r in result.items()})
        gallery(tmp, 0, limit=12, clickable=False)
    chart(figures.overlap_heatmap(analysis.pairwise_overlap(picks), title="Shared picks between methods"),
          key=f"{key}_overlap", what="what-if-overlap", methods=list(result), stage=learner.stage)


def _what_if_progress(progress, methods):
    index = {m: i for i, m in enumerate(methods)}
    state = {"i": 0}

    def cb(phase, fraction, message):
        # what_if runs the methods in order; the scoring phase ending marks a method done
        i = state["i"]
        progress(i, methods[min(i, len(methods) - 1)], phase, fraction, message)
        if phase == PHASE_SCORING and fraction >= 1.0:
            state["i"] = min(i + 1, len(methods) - 1)

    return cb


def methods_with(source: Source, what: str) -> list[str]:
    """Methods of ``source`` whose records hold ``what`` ("likelihood", "predicted_loss" or "vae")."""
    test = {"likelihood": figures.has_likelihood, "predicted_loss": figures.has_predicted_loss,
            "vae": lambda r: bool(r.analysis_vae_mu.size)}[what]
    return [m for m in source.methods if source.records[m] and test(source.records[m][0])]
