import pytest

from birdseg.recipe import PARAMETERS, RECIPES, choose_recipe

NONE = {key: None for key in PARAMETERS}


def test_auto_follows_what_the_encoder_starts_from():
    name, values, reason = choose_recipe("auto", encoder_pretrained=True, **NONE)
    assert name == "pretrained" and values == RECIPES["pretrained"] and "pretrained weights" in reason
    assert values["LEARNING_RATE"] == 1e-4 and values["BATCH_SIZE"] == 1  # the seed's
    name, values, reason = choose_recipe("auto", encoder_pretrained=False, **NONE)
    assert name == "scratch" and values == RECIPES["scratch"] and "random initialisation" in reason


def test_given_values_win_and_are_named():
    _, values, reason = choose_recipe("auto", encoder_pretrained=False, **{**NONE, "BATCH_SIZE": 2, "EPOCHS": 3})
    assert values["BATCH_SIZE"] == 2 and values["EPOCHS"] == 3
    assert values["LEARNING_RATE"] == RECIPES["scratch"]["LEARNING_RATE"]
    assert reason.endswith("given explicitly: BATCH_SIZE, EPOCHS")


def test_explicit_recipe_and_errors():
    assert choose_recipe("scratch", encoder_pretrained=True)[0] == "scratch"
    with pytest.raises(ValueError, match="RECIPE='fast'"):
        choose_recipe("fast", encoder_pretrained=True)
    with pytest.raises(ValueError, match="not recipe parameters"):
        choose_recipe("auto", encoder_pretrained=True, SEED=1)


def test_a_starting_model_gets_the_scratch_recipe_and_says_why():
    name, values, reason = choose_recipe("auto", encoder_pretrained=False, init_model="runs/a", **NONE)
    assert name == "scratch" and values == RECIPES["scratch"] and "runs/a (INIT_MODEL)" in reason
    assert choose_recipe("pretrained", encoder_pretrained=False, init_model="runs/a")[0] == "pretrained"
