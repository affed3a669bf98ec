"""An interactive viewer for predictions: browse images, move the threshold, switch overlay/mask.

In a live Jupyter session it is an ipywidgets panel. Headless (papermill, nbconvert, plain Python)
widgets cannot be shown, so it draws the same views as static figures instead.
"""
import os

from birdseg import plots
from birdseg.defaults import THRESHOLD, TTA
from birdseg.model import confusion_counts, scores_from_counts
from birdseg.predict import predict_pairs

# Set for the kernels that Jupyter Server (Notebook 7, Lab) and VS Code start; papermill and nbconvert set
# neither (jupyter_client's JPY_PARENT_PID is set for every kernel, headless ones too, so it cannot tell).
LIVE_SESSION_VARIABLES = ("JPY_SESSION_NAME", "VSCODE_PID")


def running_live():
    """Whether this kernel was started by a live Jupyter server or VS Code (so widgets can be shown)."""
    return any(name in os.environ for name in LIVE_SESSION_VARIABLES)


def viewer_figure(image, truth, probability, threshold=THRESHOLD, view="overlay", title=""):
    """Photo, true mask and one `view` ("overlay", "predicted_mask" or "probability") at `threshold`, titled
    with the image's IoU; returns the figure."""
    pred = probability > threshold
    iou = scores_from_counts(*confusion_counts(truth, pred)[:3])["iou"]
    shown = {"overlay": plots.overlay(image, pred), "predicted_mask": pred, "probability": probability}
    panels = {"photo": image, "true_mask": truth}
    panels[view] = shown[view]
    return plots.visualize(title=f"{title}  threshold {threshold:.2f}  IoU {iou:.3f}", **panels)


def show_viewer(model, pairs, interactive=None, max_images=24, tta=TTA):
    """Show the viewer for the first `max_images` (image_path, mask_path) pairs; returns the widget or figures."""
    import matplotlib.pyplot as plt

    predicted = list(predict_pairs(model, list(pairs)[:max_images], tta=tta))
    loaded = [(image, truth) for _, image, truth, _ in predicted]
    probabilities = [probability for *_, probability in predicted]
    names = [image_path.name for (image_path, _), *_ in predicted]
    if interactive is None:
        interactive = running_live()
    if not interactive:
        figures = [
            viewer_figure(image, truth, prob, threshold, title=name)
            for (image, truth), prob, name in zip(loaded[:2], probabilities, names)
            for threshold in (0.3, THRESHOLD, 0.7)
        ]
        plt.show()
        return figures
    import ipywidgets as widgets
    from IPython.display import display

    output = widgets.Output()
    index = widgets.IntSlider(0, 0, len(predicted) - 1, description="image")
    threshold = widgets.FloatSlider(THRESHOLD, min=0.05, max=0.95, step=0.05, description="threshold")
    view = widgets.ToggleButtons(options=["overlay", "predicted_mask", "probability"], description="view")

    def redraw(_=None):
        with output:
            output.clear_output(wait=True)
            image, truth = loaded[index.value]
            viewer_figure(image, truth, probabilities[index.value], threshold.value, view.value, names[index.value])
            plt.show()

    for control in (index, threshold, view):
        control.observe(redraw, names="value")
    panel = widgets.VBox([widgets.HBox([index, threshold]), view, output])
    display(panel)
    redraw()
    return panel
