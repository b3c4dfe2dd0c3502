"""TA-VAAL Explorer core: datasets, pools, task learners, strategies and the stage engine.

Public API (other packages and users build on these names)::

    from tavaal_core import ExperimentConfig, ActiveLearner, available_methods, available_datasets
    learner = ActiveLearner(ExperimentConfig(dataset="moons", method="tavaal", stages=5)).start()
    record = learner.step()                 # one stage -> StageRecord
    picks = learner.what_if(["vaal", "coreset"])   # other methods' picks from the same state
"""
import os as _os

# OpenMP worker threads spin while waiting by default; when anything else is busy on a 2-core machine
# (the browser, a test runner, another stage) that spinning made a small-model stage 50x slower in our
# measurements. Passive waiting costs nothing measurable when the machine is idle. Only effective when
# set before torch is first imported (the Makefile and the app set it too).
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .config import ExperimentConfig  # noqa: E402
from .data import available_datasets, load_dataset
from .engine import ActiveLearner, OracleResult
from .errors import ConfigError, DatasetUnavailable, TavaalError
from .records import StageRecord
from .strategies import available_methods, get_strategy

__all__ = ["ExperimentConfig", "ActiveLearner", "OracleResult", "StageRecord", "available_methods",
           "available_datasets", "load_dataset", "get_strategy", "ConfigError", "DatasetUnavailable",
           "TavaalError"]
