"""Class balance: entropy of the labeled set per stage and method (Figure 7a), class counts vs the pool."""
from explorer_ui import controls, play, views

link, source = play.open_view("class-balance", "Class balance", "balance")
methods = controls.methods_picker(source, "balance_methods")
stage = controls.stage_picker(source)
views.class_balance(source, stage, methods)
play.close_view(link, source, "class-balance", stage)
