"""Learning curves: accuracy against labels spent, for the methods of a session."""
from explorer_ui import controls, play, views

link, source = play.open_view("learning-curves", "Learning curves", "curves")
methods = controls.methods_picker(source, "curve_methods")
views.learning_curves(source, methods)
play.close_view(link, source, "learning-curves")
