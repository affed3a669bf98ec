"""Training recipes: the seed's, made for a pretrained encoder, and one that learns from random init on a CPU.

The notebook picks one by itself ("auto": "pretrained" when the encoder really starts from ImageNet or a
local weights file, "scratch" when it starts random) and prints which and why. Any value given
explicitly (in the parameters cell or with papermill's -p) wins over the recipe's.
"""

RECIPES = {
    # The original notebook's recipe: small steps that fine-tune ImageNet features.
    "pretrained": {
        "IMAGE_HEIGHT": 384,
        "IMAGE_WIDTH": 640,
        "BATCH_SIZE": 1,
        "EPOCHS": 10,
        "LEARNING_RATE": 1e-4,
        "BN_MOMENTUM": None,  # Keras' 0.99: the pretrained moving statistics are already right
        "MAX_TRAINING_MINUTES": None,
        "LR_SCHEDULE": "plateau",  # halve the learning rate after 3 epochs without a lower validation loss
        "PATIENCE": 5,  # early stopping after 5 epochs without a better validation IoU
        "AUGMENTATION": "flips",  # resize, pad, h/v flips p=0.3
        "COPY_PASTE": 0.0,  # the seed pastes no birds
        "DROP_CONNECT_RATE": 0.2,  # the encoder's own stochastic depth
        "LOSS": "bce_jaccard",  # the seed's
        "DECODER_WIDTH": 256,  # segmentation_models' U-Net: 256, 128, 64, 32, 16 filters
    },
    # From random initialisation: see benchmarks/README.md ("Recipe for a random encoder") for the ablation.
    "scratch": {
        "IMAGE_HEIGHT": 192,
        "IMAGE_WIDTH": 320,
        "BATCH_SIZE": 4,  # BatchNorm needs batch statistics of several images
        "EPOCHS": 200,  # the time budget ends it first
        "LEARNING_RATE": 1e-3,
        "BN_MOMENTUM": 0.9,  # moving statistics that catch up within a few dozen steps
        "MAX_TRAINING_MINUTES": 17,  # the whole notebook then takes about 18 of the 20 minutes it may take on 2 cores
        "LR_SCHEDULE": "cosine",  # warm-up, then down to zero when the budget ends
        "PATIENCE": None,  # no early stopping: from scratch, validation IoU stalls for a while and recovers
        "AUGMENTATION": "flips",
        "COPY_PASTE": 0.0,  # copy-paste tied in a 5-minute ranking and did not help on real clips
        "DROP_CONNECT_RATE": 0.0,  # a short run from scratch underfits: no stochastic depth
        "LOSS": "bce_jaccard",  # focal + Jaccard tied in a 5-minute ranking
        "DECODER_WIDTH": 256,  # 128: a quarter faster per step, but a lower score in the same minutes
    },
}
PARAMETERS = tuple(RECIPES["pretrained"])


def choose_recipe(recipe, encoder_pretrained, init_model=None, **given):
    """Resolve the recipe and the values of its parameters.

    Args:
        recipe: "auto", "pretrained" or "scratch".
        encoder_pretrained: whether the encoder really starts from pretrained weights.
        init_model: INIT_MODEL, a trained birdseg model the whole U-Net starts from (None: none). "auto" then
            takes "scratch": its batches of 4, BatchNorm momentum 0.9 and time budget are what such a model was
            trained with by default, and what the real-photo benchmark measured for fine-tuning it.
        given: parameter values; None means "the recipe's".

    Returns:
        (name, values, reason): the recipe's name, every parameter's value, and one line saying why.
    """
    if recipe not in ("auto", *RECIPES):
        raise ValueError(f"RECIPE={recipe!r}: expected 'auto', " + " or ".join(repr(name) for name in RECIPES))
    unknown = set(given) - set(PARAMETERS)
    if unknown:
        raise ValueError(f"not recipe parameters: {sorted(unknown)}; they are {list(PARAMETERS)}")
    if recipe == "auto" and init_model:
        name, why = "scratch", f"the model starts from {init_model} (INIT_MODEL): continue with the from-scratch recipe"
    elif recipe == "auto":
        name = "pretrained" if encoder_pretrained else "scratch"
        why = ("the encoder starts from pretrained weights: the seed's fine-tuning recipe" if encoder_pretrained
               else "the encoder starts from random initialisation: the recipe that learns from scratch on a CPU")
    else:
        name, why = recipe, "chosen with RECIPE"
    values = {key: given[key] if given.get(key) is not None else RECIPES[name][key] for key in PARAMETERS}
    overridden = sorted(key for key in PARAMETERS if given.get(key) is not None and given[key] != RECIPES[name][key])
    reason = f"recipe '{name}' ({why})" + (f"; given explicitly: {', '.join(overridden)}" if overridden else "")
    return name, values, reason
