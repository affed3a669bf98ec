"""Training recipes: the original notebook's, made for a pretrained encoder, and one that learns from random
initialisation on a CPU. Each is one frozen value; the notebook picks one (`choose_recipe`), overrides fields with
the parameters given explicitly (`Recipe.override`) and prints it as a table. Every recipe value is defined here
and nowhere else.
"""
from dataclasses import asdict, dataclass, fields, replace
from numbers import Integral, Real

SIZE_DIVISOR = 32  # five 2x down-samplings in the U-Net encoder
DECODER_BLOCKS = 5  # one per up-sampling, back to the input size
LR_SCHEDULES = ("plateau", "cosine")
AUGMENTATIONS = ("flips", "photometric", "zoom")
LOSS_NAMES = ("bce_jaccard", "bce_jaccard_per_image", "focal_jaccard")  # model.LOSSES: their functions


def check_image_size(height, width):
    """The encoder halves the size five times, so both sides must be positive multiples of 32."""
    for name, value in (("IMAGE_HEIGHT", height), ("IMAGE_WIDTH", width)):
        if isinstance(value, bool) or not isinstance(value, Integral) or value < SIZE_DIVISOR or value % SIZE_DIVISOR:
            nearest = (max(SIZE_DIVISOR, round(value / SIZE_DIVISOR) * SIZE_DIVISOR)
                       if isinstance(value, Real) and value else SIZE_DIVISOR)
            raise ValueError(f"{name}={value!r} must be a positive multiple of {SIZE_DIVISOR}, e.g. {nearest}")


def check_copy_paste(probability):
    """COPY_PASTE is the share of training samples that get another sample's birds pasted in: 0 to 1."""
    if isinstance(probability, bool) or not isinstance(probability, Real) or not 0 <= probability <= 1:
        raise ValueError(f"COPY_PASTE={probability!r}: expected a probability from 0 (off) to 1")
    return float(probability)


def decoder_filters(width):
    """The filters of the decoder's five blocks: `width` (DECODER_WIDTH) for the first, half as many in each next."""
    step = 2 ** (DECODER_BLOCKS - 1)  # the last block keeps at least one filter
    if isinstance(width, bool) or not isinstance(width, Integral) or width < step or width % step:
        raise ValueError(f"DECODER_WIDTH={width!r}: expected a positive multiple of {step} "
                         f"(each of the {DECODER_BLOCKS} decoder blocks halves it), e.g. 256")
    return tuple(width // 2**block for block in range(DECODER_BLOCKS))


def check_share(name, value, high, open_ends=False):
    """`value` within 0..`high` (both ends excluded with `open_ends`: a factor that must change something)."""
    inside = isinstance(value, Real) and not isinstance(value, bool) and (
        0 < value < high if open_ends else 0 <= value <= high)
    if not inside:
        bounds = f"between 0 and {high}, both excluded" if open_ends else f"from 0 to {high}"
        raise ValueError(f"{name.upper()}={value!r}: expected a number {bounds}")


def check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name}={value!r}: expected " + " or ".join(repr(choice) for choice in choices))


@dataclass(frozen=True)
class Recipe:
    """How the U-Net is trained. Field names are the notebook's parameters in lower case."""

    name: str
    image_height: int  # model input, a multiple of 32
    image_width: int
    batch_size: int
    epochs: int  # exactly this many, unless the recipe's early stopping (patience) ends sooner
    learning_rate: float  # Adam's
    lr_schedule: str  # "plateau": cut by PLATEAU_FACTOR when the validation loss stalls; "cosine": warm-up, then down
    patience: int | None  # early stopping after this many epochs without a better validation IoU (None: off)
    bn_momentum: float | None  # BatchNorm's moving statistics (None: Keras' 0.99)
    augmentation: str  # "flips": resize, pad, h/v flips p=0.3; "photometric" adds geometry, colour, blur, noise
    copy_paste: float  # share of training samples that get another sample's birds pasted in
    drop_connect_rate: float  # the encoder's stochastic depth
    loss: str  # "bce_jaccard" (the original notebook's: Jaccard over the batch), "bce_jaccard_per_image", "focal_jaccard"
    decoder_width: int  # filters of the U-Net decoder's first block, halved in each of the next four
    max_training_minutes: float | None = None  # a wall-clock budget that may end training early (None: off)
    flip_probability: float = 0.3  # of each training flip, left-right and upside down
    plateau_factor: float = 0.5  # "plateau": the rate is multiplied by this ...
    plateau_patience: int = 3  # ... after this many epochs without a lower validation loss,
    min_learning_rate: float = 1e-6  # ... down to this
    warmup_share: float = 0.03  # "cosine": the share of the run's steps that ramp the rate up, from LR_FLOOR times it
    lr_floor: float = 1e-3  # "cosine": where the warm-up starts and the decay ends, as a share of the rate
    fresh_drawings: bool = False  # synthetic data only: each epoch's training images drawn anew by its generator

    def __post_init__(self):
        check_image_size(self.image_height, self.image_width)
        decoder_filters(self.decoder_width)
        check_copy_paste(self.copy_paste)
        check_choice("LR_SCHEDULE", self.lr_schedule, LR_SCHEDULES)
        check_choice("AUGMENTATION", self.augmentation, AUGMENTATIONS)
        check_choice("LOSS", self.loss, LOSS_NAMES)
        for name in ("batch_size", "epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
                raise ValueError(f"{name.upper()}={value!r}: expected a whole number of at least 1")
        if self.patience is not None and (not isinstance(self.patience, Integral) or self.patience < 0):
            raise ValueError(f"PATIENCE={self.patience!r}: expected a whole number of epochs, or None (off)")
        if self.max_training_minutes is not None and not (isinstance(self.max_training_minutes, Real)
                                                          and self.max_training_minutes > 0):
            raise ValueError(f"MAX_TRAINING_MINUTES={self.max_training_minutes!r}: expected a positive number of "
                             "minutes, or None (no budget)")
        for name in ("learning_rate", "min_learning_rate"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name.upper()}={getattr(self, name)!r}: expected a positive number")
        if not isinstance(self.fresh_drawings, bool):
            raise ValueError(f"FRESH_DRAWINGS={self.fresh_drawings!r}: expected True or False")
        for name in ("flip_probability", "warmup_share"):
            check_share(name, getattr(self, name), high=1)
        for name in ("plateau_factor", "lr_floor"):
            check_share(name, getattr(self, name), high=1, open_ends=True)
        if isinstance(self.plateau_patience, bool) or not isinstance(self.plateau_patience, Integral) \
                or self.plateau_patience < 0:
            raise ValueError(f"PLATEAU_PATIENCE={self.plateau_patience!r}: expected a whole number of epochs")

    def override(self, **values):
        """A copy with the fields given; None keeps the recipe's value (a parameter left at None)."""
        unknown = set(values) - set(self.parameters())
        if unknown:
            raise ValueError(f"not recipe fields: {sorted(unknown)}; they are {list(self.parameters())}")
        return replace(self, **{key: value for key, value in values.items() if value is not None})

    def parameters(self):
        """{field: value} of every recipe field (the name left out)."""
        return {key: value for key, value in asdict(self).items() if key != "name"}

    def changed_from(self, other):
        """Fields whose value differs from `other`'s, in field order."""
        return [key for key, value in self.parameters().items() if getattr(other, key) != value]

    def table(self):
        """The recipe as a table for people: parameter, value, and whether it is the recipe's own value."""
        base = RECIPES[self.name]
        rows = [(key.upper(), repr(value), "" if getattr(base, key) == value else f"given (recipe: {getattr(base, key)!r})")
                for key, value in self.parameters().items()]
        width = max(len(name) for name, _, _ in rows)
        value_width = max(len(value) for _, value, _ in rows)
        lines = [f"recipe '{self.name}'"]
        lines += [f"  {name:<{width}}  {value:<{value_width}}  {note}".rstrip() for name, value, note in rows]
        return "\n".join(lines)

    @classmethod
    def from_parameters(cls, name, parameters):
        """The recipe `name` with the values saved in a run's config.json (keys in either case)."""
        saved = {key.lower(): value for key, value in parameters.items()}
        return replace(RECIPES[name], **{field.name: saved[field.name] for field in fields(cls)
                                         if field.name in saved and field.name != "name"})


PRETRAINED = Recipe(  # the original notebook's: small steps that fine-tune ImageNet features
    name="pretrained",
    image_height=384,
    image_width=640,
    batch_size=1,
    epochs=10,
    learning_rate=1e-4,
    lr_schedule="plateau",
    patience=5,
    bn_momentum=None,  # Keras' 0.99: the pretrained moving statistics are already right
    augmentation="flips",
    copy_paste=0.0,
    drop_connect_rate=0.2,  # the encoder's own stochastic depth
    loss="bce_jaccard",
    decoder_width=256,  # segmentation_models' U-Net: 256, 128, 64, 32, 16 filters
)

SCRATCH = Recipe(  # from random initialisation: benchmarks/README.md, "Recipe for a random encoder"
    name="scratch",
    image_height=128,  # smaller inputs, more steps: the short run underfits, and fits more of its data this way
    image_width=192,
    batch_size=4,  # BatchNorm needs batch statistics of several images
    epochs=10,  # the documented default run within 20 minutes on a 2-core CPU (README: measured)
    learning_rate=1e-3,
    lr_schedule="cosine",  # warm-up, then down to nearly zero at the last step
    patience=None,  # from scratch, validation IoU stalls for a while and recovers
    bn_momentum=0.9,  # moving statistics that catch up within a few dozen steps
    augmentation="flips",
    copy_paste=0.0,  # tied in a 5-minute ranking and did not help on real clips
    drop_connect_rate=0.0,  # a short run from scratch underfits: no stochastic depth
    loss="bce_jaccard_per_image",  # small birds weigh as much as large ones: the randomised scenes fit better
    decoder_width=256,  # 128: a quarter faster per step, but a lower score in the same minutes
)

RECIPES = {recipe.name: recipe for recipe in (PRETRAINED, SCRATCH)}


def choose_recipe(recipe, encoder_pretrained, init_model=None):
    """The recipe to train with, and one line saying why.

    Args:
        recipe: "auto", "pretrained" or "scratch". "auto" follows what the encoder really starts from.
        encoder_pretrained: whether the encoder really starts from pretrained weights.
        init_model: INIT_MODEL, a trained birdseg model the whole U-Net starts from (None: none). "auto" then
            takes "scratch": its batches of 4 and BatchNorm momentum 0.9 are what such a model was trained with by
            default, and what the real-photo benchmark measured for fine-tuning it.

    Returns:
        (Recipe, reason)
    """
    check_choice("RECIPE", recipe, ("auto", *RECIPES))
    if recipe == "auto" and init_model:
        name, why = "scratch", f"the model starts from {init_model} (INIT_MODEL): continue with the from-scratch recipe"
    elif recipe == "auto":
        name = "pretrained" if encoder_pretrained else "scratch"
        why = ("the encoder starts from pretrained weights: the original notebook's fine-tuning recipe"
               if encoder_pretrained
               else "the encoder starts from random initialisation: the recipe that learns from scratch")
    else:
        name, why = recipe, "chosen with RECIPE"
    return RECIPES[name], f"recipe '{name}' ({why})"
