"""Feature map: the model's features in 2-d (PCA / t-SNE / UMAP), beside the VAE-augmented features."""
import streamlit as st

from explorer_ui import controls, play, runtime, views, why
from tavaal_core.embedding import PROJECTION_LABELS, PROJECTIONS

# UMAP's numba compile starts in a background worker when this page is first opened (it opens on PCA),
# not inside a click, and not while someone steps the playground.
runtime.start_background_warmups()
link, source = play.open_view("feature-map", "Feature map", "feature_map")
c1, c2, c3 = st.columns([1.2, 1.2, 1])
with c1:
    # a method with a VAE first, so both maps show
    method = controls.method_picker(source, "fmap_method", prefer=views.methods_with(source, "vae"))
with c2:
    controls.widget_default("fmap_projection", "pca")
    projection = st.segmented_control("Projection", PROJECTIONS, format_func=PROJECTION_LABELS.get,
                                      key="fmap_projection", on_change=controls.keep("fmap_projection")) or "pca"
with c3:
    controls.widget_default("fmap_alpha", 1.0)
    alpha = st.slider("alpha (VAE weight)", 0.0, 4.0, step=0.25, key="fmap_alpha", on_change=controls.keep("fmap_alpha"),
                      help="Scales the VAE features appended to the task features (Godwin et al. 2022, eq. 6).")
stage = controls.stage_picker(source)
views.feature_maps(source, stage, method, projection, alpha)
why.panel(source, stage)
play.close_view(link, source, "feature-map", stage)
