"""Stage explorer: the same loop on image datasets, with a gallery of what each method picked."""
import streamlit as st

from explorer_ui import controls, play, views

st.title("Stage explorer")
views.explain("explorer")

settings, form = controls.image_settings()
if settings.config is not None:
    views.device_note(settings.config)
session = play.toolbar("images", "Stage explorer", settings, form, with_oracle=False)
if session is None:
    st.stop()

source = session.source
if not session.stage:
    st.info(f"{source.meta.description}. Press **Step** to train every method on the labeled images below and see "
            "what each one picks.", icon=":material/info:")
    views.initial_gallery(source, session.initial_labeled())
    st.stop()

stage = controls.stage_picker(source, key="explorer_stage")
views.accuracy_table(source, stage)
st.subheader(f"What each method picked at stage {stage}")
views.gallery(source, stage)
views.timings(source, stage)
st.caption("Look closer in the **Views** pages: feature map, discriminator, loss, class balance, learning curves.")
