"""Learning curves: accuracy against labels spent, for the methods of a session."""
import streamlit as st

from explorer_ui import controls, play, views

st.title("Learning curves")
views.explain("curves")

source = play.view_source()
if source is None:
    st.stop()
methods = controls.methods_picker(source, "curve_methods")
views.learning_curves(source, methods)
