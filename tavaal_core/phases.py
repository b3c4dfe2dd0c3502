"""The phases of a stage, by the names progress callbacks, per-stage timings (``StageRecord.timings``),
the metrics table's ``time_<phase>`` columns, the time estimate and the app's progress bars use. Defined
once here (torch-free, so the app imports them without the engine)."""

PHASE_UNSUP_VAE = "unsupervised VAE"  # Godwin et al. 2022's VAE, trained once per trial
PHASE_TASK = "task training"
PHASE_VAE = "VAE / discriminator"  # VAAL / TA-VAAL
PHASE_SCORING = "scoring"
PHASE_INFERENCE = "inference"  # the time estimate's share of predicting the pool (part of scoring)

PHASES = (PHASE_UNSUP_VAE, PHASE_TASK, PHASE_VAE, PHASE_SCORING)  # in the order a stage runs them
