"""Discriminator: likelihood histograms for labeled, unlabeled and picked, VAAL beside TA-VAAL (Figure 7b)."""
from explorer_ui import controls, play, views

link, source = play.open_view("discriminator", "Discriminator", "discriminator")
methods = controls.methods_picker(source, "disc_methods", candidates=views.methods_with(source, "likelihood"))
stage = controls.stage_picker(source)
views.discriminator(source, stage, methods)
play.close_view(link, source, "discriminator", stage)
