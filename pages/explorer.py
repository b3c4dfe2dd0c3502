"""Stage explorer: the same loop on image datasets, with a gallery of what each method picked."""
import streamlit as st

from explorer_ui import controls, costs, links, play, views, why

link = links.PageLink("explorer", "Stage explorer")
if link.query:
    link.apply(links.image_params(link.text("dataset") or controls.persisted("img_dataset", "digits"))[:1])
    link.apply(links.image_params(controls.persisted("img_dataset", "digits"))[1:])
views.explain("explorer")
settings, form = controls.image_settings()
if settings.config is not None:
    views.device_note(settings.config)
session = play.toolbar("images", "Stage explorer", settings, form, with_oracle=False, stepped=link.get(links.STEPPED),
                       cost=costs.step_estimate)


def publish(stage=None):
    values = session.values if session is not None else (settings.values or controls.image_values())
    dataset = values.get("img_dataset", "digits")
    query = links.query_of(links.image_params(dataset), values)
    if session is not None:
        query["stepped"] = str(session.stage)
    if stage is not None:
        query["stage"] = str(stage)
        if why.as_param(session.source):
            query["why"] = why.as_param(session.source)
    link.publish(query)


if session is None:
    publish()
    st.stop()
source = session.source
if not session.stage:
    st.info(f"{source.meta.description}. Press **Step** to train every method on the labeled images below and see "
            "what each one picks.", icon=":material/info:")
    views.initial_gallery(source, session.initial_labeled())
    publish()
    st.stop()
if link.get(links.STAGE) is not None:
    controls.pin_stage(source, "explorer_stage", link.get(links.STAGE))
why.from_param(source, link.text("why"))
stage = controls.stage_picker(source, key="explorer_stage")
views.accuracy_table(source, stage)
st.subheader(f"What each method picked at stage {stage}")
views.gallery(source, stage)
why.panel(source, stage)
publish(stage)
views.timings(source, stage)
st.caption("Look closer in the **Views** pages: feature map, discriminator, loss, class balance, learning curves.")
