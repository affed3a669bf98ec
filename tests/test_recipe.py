import dataclasses

import pytest

from birdseg.recipe import PRETRAINED, RECIPES, SCRATCH, Recipe, choose_recipe


def test_auto_follows_what_the_encoder_starts_from():
    recipe, reason = choose_recipe("auto", encoder_pretrained=True)
    assert recipe is PRETRAINED and "pretrained weights" in reason
    # the original notebook's
    assert (recipe.learning_rate, recipe.batch_size, recipe.epochs, recipe.patience) == (1e-4, 1, 10, 5)
    recipe, reason = choose_recipe("auto", encoder_pretrained=False)
    assert recipe is SCRATCH and "random initialisation" in reason


def test_a_starting_model_gets_the_scratch_recipe_and_says_why():
    recipe, reason = choose_recipe("auto", encoder_pretrained=False, init_model="runs/a")
    assert recipe is SCRATCH and "runs/a (INIT_MODEL)" in reason
    assert choose_recipe("pretrained", encoder_pretrained=False, init_model="runs/a")[0] is PRETRAINED


def test_explicit_recipe_and_errors():
    assert choose_recipe("scratch", encoder_pretrained=True)[0] is SCRATCH
    with pytest.raises(ValueError, match="RECIPE='fast': expected 'auto' or 'pretrained' or 'scratch'"):
        choose_recipe("fast", encoder_pretrained=True)


def test_override_changes_the_fields_given_and_keeps_the_rest():
    recipe = SCRATCH.override(batch_size=2, epochs=3, learning_rate=None)
    assert (recipe.batch_size, recipe.epochs, recipe.learning_rate) == (2, 3, SCRATCH.learning_rate)
    assert recipe.changed_from(SCRATCH) == ["batch_size", "epochs"] and SCRATCH.epochs != 3  # a copy
    with pytest.raises(dataclasses.FrozenInstanceError):
        recipe.epochs = 5
    with pytest.raises(ValueError, match=r"not recipe fields: \['seed'\]"):
        SCRATCH.override(seed=1)


def test_table_lists_every_parameter_and_marks_those_given():
    table = SCRATCH.override(epochs=3).table().splitlines()
    assert table[0] == "recipe 'scratch'" and len(table) == 1 + len(SCRATCH.parameters())
    assert any(line.split()[:2] == ["EPOCHS", "3"] and line.endswith(f"given (recipe: {SCRATCH.epochs})")
               for line in table)
    assert any(line.split() == ["LEARNING_RATE", "0.001"] for line in table)


def test_saved_parameters_give_the_recipe_back_in_either_case():
    saved = {"IMAGE_HEIGHT": 64, "EPOCHS": 3, "SEED": 7, "TTA": "none"}  # a run's config.json: other keys too
    assert Recipe.from_parameters("scratch", saved) == SCRATCH.override(image_height=64, epochs=3)
    assert Recipe.from_parameters("pretrained", {"batch_size": 2}) == PRETRAINED.override(batch_size=2)
    assert Recipe.from_parameters("scratch", {"NAME": "other"}).name == "scratch"  # the name is the recipe's own


@pytest.mark.parametrize("field,value,message", [
    ("image_width", 100, "IMAGE_WIDTH=100 must be a positive multiple of 32, e.g. 96"),
    ("image_height", 0, "IMAGE_HEIGHT=0 must be a positive multiple of 32, e.g. 32"),
    ("image_width", "wide", "IMAGE_WIDTH='wide' must be a positive multiple of 32, e.g. 32"),
    ("decoder_width", 24, "DECODER_WIDTH=24: expected a positive multiple of 16"),
    ("copy_paste", 1.5, "COPY_PASTE=1.5: expected a probability from 0 .off. to 1"),
    ("lr_schedule", "linear", "LR_SCHEDULE='linear': expected 'plateau' or 'cosine'"),
    ("augmentation", "heavy", "AUGMENTATION='heavy': expected 'flips' or 'photometric'"),
    ("loss", "dice", "LOSS='dice': expected 'bce_jaccard' or 'bce_jaccard_per_image' or 'focal_jaccard'"),
    ("epochs", 0, "EPOCHS=0: expected a whole number of at least 1"),
    ("batch_size", 2.5, "BATCH_SIZE=2.5: expected a whole number of at least 1"),
    ("patience", -1, "PATIENCE=-1: expected a whole number of epochs, or None"),
    ("learning_rate", 0, "LEARNING_RATE=0: expected a positive number"),
    ("max_training_minutes", 0, "MAX_TRAINING_MINUTES=0: expected a positive number of minutes, or None"),
    ("decoder_width", 8, "DECODER_WIDTH=8: expected a positive multiple of 16"),
    ("decoder_width", True, "DECODER_WIDTH=True: expected a positive multiple of 16"),
    ("decoder_width", 32.0, "DECODER_WIDTH=32.0: expected a positive multiple of 16"),
    ("epochs", True, "EPOCHS=True: expected a whole number of at least 1"),
    ("patience", 1.5, "PATIENCE=1.5: expected a whole number of epochs"),
    ("flip_probability", 1.01, r"FLIP_PROBABILITY=1.01: expected a number from 0 to 1$"),
    ("flip_probability", -0.01, "FLIP_PROBABILITY=-0.01: expected a number from 0 to 1"),
    ("warmup_share", "0.1", "WARMUP_SHARE='0.1': expected a number from 0 to 1"),
    ("flip_probability", True, "FLIP_PROBABILITY=True: expected a number from 0 to 1"),
    ("plateau_factor", 1, r"PLATEAU_FACTOR=1: expected a number between 0 and 1, both excluded$"),
    ("plateau_factor", 0, "PLATEAU_FACTOR=0: expected a number between 0 and 1, both excluded"),
    ("lr_floor", 1, "LR_FLOOR=1: expected a number between 0 and 1, both excluded"),
    ("lr_floor", 0, "LR_FLOOR=0: expected a number between 0 and 1, both excluded"),
    ("plateau_patience", -1, r"PLATEAU_PATIENCE=-1: expected a whole number of epochs$"),
    ("plateau_patience", True, "PLATEAU_PATIENCE=True: expected a whole number of epochs"),
    ("plateau_patience", 2.0, "PLATEAU_PATIENCE=2.0: expected a whole number of epochs"),
    ("min_learning_rate", 0, "MIN_LEARNING_RATE=0: expected a positive number"),
    ("fresh_drawings", 1, "FRESH_DRAWINGS=1: expected True or False"),
    ("fresh_drawings", "yes", "FRESH_DRAWINGS='yes': expected True or False"),
])
def test_bad_values_stop_with_the_parameter_named(field, value, message):
    with pytest.raises(ValueError, match=message):
        SCRATCH.override(**{field: value})


def test_every_recipe_is_valid_and_names_itself():
    assert all(name == recipe.name for name, recipe in RECIPES.items())
    assert PRETRAINED.max_training_minutes is None and SCRATCH.max_training_minutes is None  # epochs, not the clock


def test_the_edges_of_each_range_are_valid():
    edge = SCRATCH.override(epochs=1, batch_size=1, patience=0, plateau_patience=0, max_training_minutes=0.5,
                            flip_probability=1, warmup_share=0, decoder_width=16, plateau_factor=0.999, lr_floor=1e-9)
    assert (edge.epochs, edge.patience, edge.plateau_patience, edge.flip_probability) == (1, 0, 0, 1)
    assert SCRATCH.override(flip_probability=0, warmup_share=1).warmup_share == 1


def test_decoder_filters_halve_from_the_width():
    from birdseg.recipe import decoder_filters

    assert decoder_filters(256) == (256, 128, 64, 32, 16) and decoder_filters(16) == (16, 8, 4, 2, 1)
    assert all(isinstance(filters, int) for filters in decoder_filters(48))


def test_parameters_are_the_fields_without_the_name_and_the_table_has_no_trailing_spaces():
    assert "name" not in SCRATCH.parameters() and list(SCRATCH.parameters())[0] == "image_height"
    table = SCRATCH.table().splitlines()
    assert table[1] == "  IMAGE_HEIGHT          128" and all(line == line.rstrip() for line in table)


def test_each_choice_says_why_in_words():
    assert choose_recipe("auto", encoder_pretrained=True)[1] == ("recipe 'pretrained' (the encoder starts from "
                                                                 "pretrained weights: the original notebook's "
                                                                 "fine-tuning recipe)")
    assert choose_recipe("auto", encoder_pretrained=False)[1] == ("recipe 'scratch' (the encoder starts from random "
                                                                  "initialisation: the recipe that learns from scratch)")
    assert choose_recipe("scratch", encoder_pretrained=True)[1] == "recipe 'scratch' (chosen with RECIPE)"
