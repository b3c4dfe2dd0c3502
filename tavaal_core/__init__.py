"""TA-VAAL Explorer core: datasets, pools, task learners, strategies and the stage engine.

Public API (other packages and users build on these names)::

    from tavaal_core import ExperimentConfig, ActiveLearner, available_methods, available_datasets
    learner = ActiveLearner(ExperimentConfig(dataset="moons", method="tavaal", stages=5)).start()
    record = learner.step()                 # one stage -> StageRecord
    picks = learner.what_if(["vaal", "coreset"])   # other methods' picks from the same state
"""
from .config import ExperimentConfig
from .data import available_datasets, load_dataset
from .engine import ActiveLearner, OracleResult
from .errors import ConfigError, DatasetUnavailable, TavaalError
from .records import StageRecord
from .strategies import available_methods, get_strategy

__all__ = ["ExperimentConfig", "ActiveLearner", "OracleResult", "StageRecord", "available_methods",
           "available_datasets", "load_dataset", "get_strategy", "ConfigError", "DatasetUnavailable",
           "TavaalError"]
