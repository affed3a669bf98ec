"""An interactive viewer for predictions: browse images, move the threshold, switch overlay/mask/probability.

In a live Jupyter session it is an ipywidgets panel. Headless (papermill, nbconvert, plain Python) widgets cannot
be shown, so it draws the same views as static figures instead. Images may come with a true mask (a dataset's
test split) or without (your own photos).
"""
import threading

from birdseg import display, files, plots
from birdseg.defaults import THRESHOLD, TTA
from birdseg.metrics import score_caption
from birdseg.predict import predict_pairs

VIEWS = ("overlay", "predicted_mask", "probability")


def viewer_figure(image, truth, probability, threshold=THRESHOLD, view="overlay", title="", pyplot=True):
    """Photo, true mask (when there is one) and one `view` ("overlay", "predicted_mask" or "probability") at
    `threshold`, titled with the image's score against its true mask, or its share of bird pixels; returns the
    figure (one pyplot does not track with pyplot=False)."""
    pred = probability > threshold
    score = score_caption(truth, pred) if truth is not None else f"{pred.mean():.1%} of the pixels bird"
    shown = {"overlay": plots.overlay(image, pred), "predicted_mask": pred, "probability": probability}
    panels = {"photo": image} if truth is None else {"photo": image, "true_mask": truth}
    panels[view] = shown[view]
    return plots.visualize(title=f"{title}  threshold {threshold:.2f}  {score}", pyplot=pyplot, **panels)


def show_viewer(model, pairs, interactive=None, max_images=24, tta=TTA):
    """Show the viewer for the first `max_images` (image_path, mask_path or None) pairs; returns the widget panel
    (live) or the static figures (headless: the first two images at thresholds 0.3, 0.5 and 0.7)."""
    import matplotlib.pyplot as plt

    if interactive is None:
        interactive = display.running_live()
    predicted = list(predict_pairs(model, list(pairs)[: max_images if interactive else 2], tta=tta))
    names = [image_path.name for (image_path, _), *_ in predicted]
    if not interactive:  # only what the static figures show is predicted
        figures = [viewer_figure(image, truth, probability, threshold, title=name)
                   for (_, image, truth, probability), name in zip(predicted, names)
                   for threshold in (0.3, THRESHOLD, 0.7)]
        plt.show()
        return figures
    import ipywidgets as widgets
    from IPython.display import display as show

    index = widgets.IntSlider(0, 0, len(predicted) - 1, description="image")
    threshold = widgets.FloatSlider(THRESHOLD, min=0.05, max=0.95, step=0.05, description="threshold")
    view = widgets.ToggleButtons(options=VIEWS, description="view")
    shown = widgets.Image(format="png", layout=widgets.Layout(max_width="100%", height="auto"))  # fits narrow panes
    # Each redraw sends a whole PNG of a figure pyplot does not track: the inline backend displays every tracked
    # figure at any plt.show() or cell end, and once showed the viewer's before its title and layout were on.
    # One redraw at a time: JupyterLab can run widget callbacks in threads of their own (its "comms over
    # subshells" setting), and the image shown last must be of the controls' last values.
    drawing = threading.Lock()

    def redraw(_=None):
        with drawing:
            _, image, truth, probability = predicted[index.value]
            figure = viewer_figure(image, truth, probability, threshold.value, view.value, names[index.value],
                                   pyplot=False)
            shown.value = files.figure_bytes(figure)

    for control in (index, threshold, view):
        control.observe(redraw, names="value")
    redraw()
    panel = widgets.VBox([widgets.HBox([index, threshold]), view, shown])
    show(panel)
    return panel
