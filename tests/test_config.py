"""Every config error names its field and the allowed values."""
import pytest

from tavaal_core import ActiveLearner, ConfigError, ExperimentConfig


@pytest.mark.parametrize(
    "kwargs, field, fragment",
    [
        (dict(dataset="imagenet"), "dataset", "moons"),
        (dict(method="magic"), "method", "tavaal"),
        (dict(task_epochs=0), "task_epochs", ">= 1"),
        (dict(task_epochs=-3), "task_epochs", ">= 1"),
        (dict(vae_epochs=0), "vae_epochs", ">= 1"),
        (dict(budget=0), "budget", ">= 1"),
        (dict(imbalance_ratio=0.5), "imbalance_ratio", ">= 1"),
        (dict(subset_factor=-1), "subset_factor", ">= 0"),
        (dict(model="vgg"), "model", "resnet18"),
        (dict(optimizer="rmsprop"), "optimizer", "adam"),
        (dict(kl_reduction="max"), "kl_reduction", "mean"),
        (dict(discriminator_rank_input="tanh"), "discriminator_rank_input", "sigmoid"),
        (dict(lr=0), "lr", "> 0"),
        (dict(dropout=1.5), "dropout", "<= 0.9"),
        (dict(stages=0), "stages", ">= 1"),
        (dict(seed=-1), "seed", ">= 0"),
        (dict(batch_size=1.5), "batch_size", "whole number"),
        (dict(head_stop_fraction=2), "head_stop_fraction", "<= 1"),
        (dict(imbalance_ratio=10, class_counts=(5, 5)), "class_counts", "not both"),
    ],
)
def test_bad_values_name_their_field(kwargs, field, fragment):
    with pytest.raises(ConfigError) as err:
        ExperimentConfig(**kwargs)
    assert err.value.field == field
    assert str(err.value).startswith(field) and fragment in str(err.value)


def test_budget_larger_than_pool_is_refused_at_start():
    with pytest.raises(ConfigError) as err:
        ActiveLearner(ExperimentConfig(dataset="moons", budget=200, stages=5)).start()
    assert err.value.field == "budget" and "550" in str(err.value)
    with pytest.raises(ConfigError) as err:
        ActiveLearner(ExperimentConfig(dataset="moons", initial_size=600)).start()
    assert err.value.field == "initial_size"


def test_unknown_dataset_option_is_named():
    with pytest.raises(ConfigError) as err:
        ActiveLearner(ExperimentConfig(dataset="moons", dataset_options={"colour": 1})).start()
    assert err.value.field == "colour"


def test_dataset_defaults_follow_the_dataset_not_the_previous_config():
    moons = ExperimentConfig(dataset="moons").resolve()
    assert (moons.model, moons.task_epochs, moons.initial_size, moons.budget) == ("mlp", 100, 20, 10)
    digits = ExperimentConfig(dataset="moons").with_(dataset="digits").resolve()
    assert digits.model == "cnn"
    cifar = ExperimentConfig(dataset="cifar10").resolve()
    assert (cifar.model, cifar.optimizer, cifar.lr, cifar.momentum, cifar.weight_decay, cifar.task_epochs) == (
        "resnet18", "sgd", 0.1, 0.9, 5e-4, 200)
    assert ExperimentConfig(dataset="moons", task_epochs=7).resolve().task_epochs == 7


def test_round_trip_through_dict():
    cfg = ExperimentConfig(dataset="digits", method="coreset", class_counts=(3, 4), budget=9)
    assert ExperimentConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError) as err:
        ExperimentConfig.from_dict({"dataset": "moons", "bugdet": 3})
    assert err.value.field == "bugdet"
