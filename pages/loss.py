"""Loss vs likelihood (TA-VAAL Figure 8) and predicted vs real loss."""
from explorer_ui import controls, play, views

link, source = play.open_view("loss", "Loss vs likelihood")
methods = controls.methods_picker(
    source, "loss_methods",
    candidates=list(dict.fromkeys(views.methods_with(source, "likelihood") + views.methods_with(source, "predicted_loss"))))
stage = controls.stage_picker(source)
views.loss_views(source, stage, methods)
play.close_view(link, source, "loss", stage)
