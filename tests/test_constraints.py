"""The one constraint vocabulary (tavaal_core.constraints) and its users: every settings class checks its
fields with it, so a bad value names the field and the allowed values the same way everywhere."""
import numpy as np
import pytest

from tavaal_core import ConfigError, config
from tavaal_core.constraints import Boolean, Interval, Options, Text, check, parse_number


def test_interval_names_the_field_the_bound_and_the_value():
    rule = Interval(int, 1, 10, hint=" (a hint)")
    assert check("n", np.int64(3), rule) == 3 and type(check("n", np.int64(3), rule)) is int
    with pytest.raises(ConfigError) as e:
        check("n", 11, rule)
    assert e.value.field == "n" and "<= 10 (a hint), got 11" in str(e.value)
    for bad in (True, 2.5, "3"):
        with pytest.raises(ConfigError, match="whole number"):
            check("n", bad, rule)
    with pytest.raises(ConfigError, match="> 0"):
        check("lr", 0.0, Interval(float, 0, 1, open_low=True))
    with pytest.raises(ConfigError, match="finite"):
        check("lr", float("nan"), Interval(float, 0, 1))
    assert check("lr", None, Interval(float, 0, 1, optional=True)) is None
    with pytest.raises(ConfigError, match="required"):
        check("lr", None, Interval(float, 0, 1))


def test_options_booleans_and_text():
    with pytest.raises(ConfigError) as e:
        check("kl_reduction", "median", Options(config.KL_REDUCTIONS))
    assert e.value.field == "kl_reduction" and "choose one of: mean, sum" in str(e.value)
    with pytest.raises(ConfigError, match="unknown method"):
        check("method", ["random"], Options(lambda: ["random"], what="method"))  # unhashable: just not a name
    assert check("flag", np.bool_(True), Boolean()) is True
    with pytest.raises(ConfigError, match="true or false"):
        check("flag", 1, Boolean())
    with pytest.raises(ConfigError, match="must be text"):
        check("description", 3, Text())


def test_command_line_words_are_read_by_the_same_rules():
    assert parse_number("7", Interval(int, 1)) == 7
    with pytest.raises(ConfigError, match="whole number >= 1, got '1e3'"):
        parse_number("1e3", Interval(int, 1))


def test_each_allowed_value_list_has_one_home():
    from tavaal_core import vaal_training, cli, experiment
    from tavaal_core.executors import EXECUTORS

    assert vaal_training.VAAL_RULES["kl_reduction"].allowed is config.KL_REDUCTIONS
    assert vaal_training.VAAL_RULES["discriminator_rank_input"].allowed is config.RANK_INPUTS
    assert vaal_training.VAAL_RULES["vae_preset"].allowed is config.VAE_PRESETS
    assert experiment.SPEC_RULES["methods"] is config.FIELD_RULES["method"]
    actions = {a.dest: a for sub in cli.build_parser()._subparsers._group_actions for p in sub.choices.values()
               for a in p._actions}
    assert actions["pretrained"].choices is config.PRETRAINED and actions["executor"].choices is EXECUTORS


def test_a_strategy_declaration_with_a_typo_is_refused_naming_the_field():
    from tavaal_core.strategies.base import Needs

    with pytest.raises(ConfigError) as e:
        Needs(vae="adverserial")
    assert e.value.field == "vae" and "adversarial" in str(e.value)
