"""birdseg_utils: the helpers behind Bird_Segmentation_Model.ipynb, and its command line.

A thin facade over the `birdseg` package: what the notebook and user scripts call, in one import (the rest is in
the package's modules, `birdseg/__init__.py` lists them by layer):

    import birdseg_utils as bu
    model = bu.load_model("runs/<run>/model.keras")
    mask = bu.predict_image(model, bu.read_image("photo.jpg"))

Command line: `python -m birdseg_utils --help`.
"""
import birdseg  # noqa: F401  (sets SM_FRAMEWORK and friends before anything imports segmentation_models)

if __name__ == "__main__":  # the CLI imports only what each command needs
    from birdseg.cli import main

    raise SystemExit(main())

from birdseg.archive import ensure_dataset
from birdseg.callbacks import BestModelCheckpoint, PredictionFigure, TrainingBudget
from birdseg.dataset_check import check_dataset
from birdseg.devices import distribution_strategy, gpu_available, set_precision, set_seed
from birdseg.errors import DatasetError
from birdseg.evaluate import evaluate_pairs, format_metrics, save_metrics
from birdseg.figures import FigureSamples, evaluation_figures, publish_figures, show_overlays
from birdseg.files import save_figure
from birdseg.images import read_image, read_pair
from birdseg.layout import HISTORY_FIGURE, LOGS_DIR, MODEL_FILE, MONITOR, MY_PHOTOS_DIR
from birdseg.loader import Dataloader, Dataset, DrawnDataset
from birdseg.media import media_files, predict_files
from birdseg.model import (
    BACKBONE,
    IMAGENET_MEAN,
    IMAGENET_STD,
    LOSSES,
    ThresholdScore,
    build_model,
    configure_encoder,
    describe_weights,
    load_model,
    load_starting_weights,
)
from birdseg.pairs import find_pairs
from birdseg.plots import overlay, plot_history, visualize
from birdseg.predict import predict_image
from birdseg.pretrained import locate_encoder_weights
from birdseg.recipe import choose_recipe, decoder_filters
from birdseg.runs import record_encoder_weights, start_run
from birdseg.runtimes import load_predictor
from birdseg.speedups import adam, speed_up_layers
from birdseg.synthetic import synthetic_style
from birdseg.train import ResumableRun
from birdseg.video import is_video_file
from birdseg.viewer import show_viewer

__all__ = [
    "BACKBONE",
    "BestModelCheckpoint",
    "Dataloader",
    "Dataset",
    "DrawnDataset",
    "DatasetError",
    "FigureSamples",
    "HISTORY_FIGURE",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "LOGS_DIR",
    "LOSSES",
    "MODEL_FILE",
    "MONITOR",
    "MY_PHOTOS_DIR",
    "PredictionFigure",
    "ResumableRun",
    "ThresholdScore",
    "TrainingBudget",
    "adam",
    "build_model",
    "check_dataset",
    "choose_recipe",
    "configure_encoder",
    "decoder_filters",
    "describe_weights",
    "distribution_strategy",
    "ensure_dataset",
    "evaluate_pairs",
    "evaluation_figures",
    "find_pairs",
    "format_metrics",
    "gpu_available",
    "is_video_file",
    "load_model",
    "load_predictor",
    "load_starting_weights",
    "locate_encoder_weights",
    "media_files",
    "overlay",
    "plot_history",
    "predict_files",
    "predict_image",
    "publish_figures",
    "read_image",
    "read_pair",
    "record_encoder_weights",
    "save_figure",
    "save_metrics",
    "set_precision",
    "set_seed",
    "show_overlays",
    "show_viewer",
    "speed_up_layers",
    "start_run",
    "synthetic_style",
    "visualize",
]
