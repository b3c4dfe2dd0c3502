"""Discriminator: likelihood histograms for labeled, unlabeled and picked, VAAL beside TA-VAAL (Figure 7b)."""
import streamlit as st

from explorer_ui import controls, play, views

st.title("Discriminator")
views.explain("discriminator")

source = play.view_source()
if source is None:
    st.stop()
methods = controls.methods_picker(source, "disc_methods", candidates=views.methods_with(source, "likelihood"))
stage = controls.stage_picker(source)
views.discriminator(source, stage, methods)
