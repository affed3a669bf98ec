"""birdseg_utils: the helpers behind Bird_Segmentation_Model.ipynb, and its command line.

A thin facade over the `birdseg` package (layers: data -> model -> train -> predict -> evaluate -> cli), so the
notebook and user scripts need one import:

    import birdseg_utils as bu
    model = bu.load_model("runs/<run>/model.keras")
    mask = bu.predict_image(model, bu.read_image("photo.jpg"))

Command line: `python -m birdseg_utils --help`.
"""
import birdseg  # noqa: F401  (sets SM_FRAMEWORK and friends before anything imports segmentation_models)

if __name__ == "__main__":  # the CLI imports only what each command needs
    from birdseg.cli import main

    raise SystemExit(main())

from birdseg.callbacks import BestModelCheckpoint, PredictionFigure, TrainingBudget
from birdseg.cli import main
from birdseg.data import (
    Dataloader,
    Dataset,
    DatasetError,
    ensure_dataset,
    find_pairs,
    get_validation_augmentation,
    load_split,
    read_image,
    read_mask,
    read_pair,
)
from birdseg.dataset_tools import check_dataset
from birdseg.devices import distribution_strategy, set_seed
from birdseg.evaluate import evaluate_pairs, evaluate_split, format_metrics, save_metrics
from birdseg.figures import FigureSamples, evaluation_figures, publish_figures, show_overlays
from birdseg.files import read_json, save_figure, write_json
from birdseg.metrics import confusion_counts, scores_from_counts
from birdseg.model import (
    BACKBONE,
    IMAGENET_MEAN,
    IMAGENET_STD,
    LOSSES,
    ThresholdScore,
    WeightsFallbackWarning,
    bce_jaccard_loss,
    build_model,
    compile_model,
    configure_encoder,
    describe_weights,
    gpu_available,
    load_model,
    load_starting_weights,
    set_precision,
)
from birdseg.plots import (
    overlay,
    overlay_gallery,
    plot_history,
    prediction_grid,
    visualize,
)
from birdseg.predict import check_tta, media_files, predict_files, predict_image, predict_probabilities
from birdseg.pretrained import EncoderWeightsError, locate_encoder_weights
from birdseg.recipe import RECIPES, Recipe, choose_recipe, decoder_filters
from birdseg.runs import load_history, record_encoder_weights, start_run
from birdseg.speedups import FusedAdam, SpeedupOffWarning, adam, speed_up_layers
from birdseg.train import ResumableRun, TrainingDiverged
from birdseg.video import is_video_file, predict_video
from birdseg.viewer import show_viewer

__all__ = [
    "BACKBONE",
    "BestModelCheckpoint",
    "Dataloader",
    "Dataset",
    "DatasetError",
    "EncoderWeightsError",
    "FigureSamples",
    "FusedAdam",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "LOSSES",
    "PredictionFigure",
    "RECIPES",
    "Recipe",
    "ResumableRun",
    "SpeedupOffWarning",
    "ThresholdScore",
    "TrainingBudget",
    "TrainingDiverged",
    "WeightsFallbackWarning",
    "adam",
    "bce_jaccard_loss",
    "build_model",
    "check_dataset",
    "check_tta",
    "choose_recipe",
    "compile_model",
    "configure_encoder",
    "confusion_counts",
    "decoder_filters",
    "describe_weights",
    "distribution_strategy",
    "ensure_dataset",
    "evaluate_pairs",
    "evaluate_split",
    "evaluation_figures",
    "find_pairs",
    "format_metrics",
    "get_validation_augmentation",
    "gpu_available",
    "is_video_file",
    "load_history",
    "load_model",
    "load_split",
    "load_starting_weights",
    "locate_encoder_weights",
    "main",
    "media_files",
    "overlay",
    "overlay_gallery",
    "plot_history",
    "predict_files",
    "predict_image",
    "predict_probabilities",
    "predict_video",
    "prediction_grid",
    "publish_figures",
    "read_image",
    "read_json",
    "read_mask",
    "read_pair",
    "record_encoder_weights",
    "save_figure",
    "save_metrics",
    "scores_from_counts",
    "set_precision",
    "set_seed",
    "show_overlays",
    "show_viewer",
    "speed_up_layers",
    "start_run",
    "visualize",
    "write_json",
]
