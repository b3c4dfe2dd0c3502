"""Loss vs likelihood (TA-VAAL Figure 8) and predicted vs real loss."""
import streamlit as st

from explorer_ui import controls, play, views

st.title("Loss vs likelihood")

source = play.view_source()
if source is None:
    st.stop()
methods = controls.methods_picker(
    source, "loss_methods",
    candidates=list(dict.fromkeys(views.methods_with(source, "likelihood") + views.methods_with(source, "predicted_loss"))))
stage = controls.stage_picker(source)
views.loss_views(source, stage, methods)
