"""Class balance: entropy of the labeled set per stage and method (Figure 7a), class counts vs the pool."""
import streamlit as st

from explorer_ui import controls, play, views

st.title("Class balance")
views.explain("balance")

source = play.view_source()
if source is None:
    st.stop()
methods = controls.methods_picker(source, "balance_methods")
stage = controls.stage_picker(source)
views.class_balance(source, stage, methods)
