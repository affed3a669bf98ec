"""A run folder's layout and the metric runs are judged by, each named once: the package, the notebook and the
scripts read these names from here (docs/reliability.md describes the folder)."""

MODEL_FILE = "model.keras"  # the kept model: the best epoch's by MONITOR
CONFIG_FILE = "config.json"  # recipe, parameters, versions, git commit, device, encoder weights
HISTORY_FILE = "history.csv"  # one row per completed epoch
METRICS_FILE = "metrics.json"  # the test set's scores
PER_IMAGE_FILE = "per_image.csv"  # each test image's scores
HISTORY_FIGURE = "history.png"
EPOCH_FIGURE_PREFIX = "results_epoch_"  # results_epoch_N.png: predictions on validation images after epoch N
LOGS_DIR = "logs"  # TensorBoard's
CHECKPOINT_DIR = "checkpoint"  # the last completed epoch's weights and optimizer state, for resuming
STATE_FILE = "state.json"  # in CHECKPOINT_DIR: which epoch, which file, why training ended
MY_PHOTOS_DIR = "my_photos"  # the notebook's masks and overlays of MY_PHOTOS
RUNTIMES_DIR = "runtimes"  # the model converted for inference runtimes, one folder per runtime and model file
RECORDS = (CONFIG_FILE, METRICS_FILE, HISTORY_FILE)  # published with the figures: the numbers they show

MONITOR = "val_iou_score"  # the best model and early stopping follow the metric users care about


def epoch_figure(epoch):
    """The name of the figure of predictions after `epoch` (counted from 1)."""
    return f"{EPOCH_FIGURE_PREFIX}{epoch}.png"
