import matplotlib.pyplot as plt
import numpy as np

from birdseg import viewer
from birdseg.data import find_pairs


def test_headless_viewer_draws_static_figures(trained_model, tiny_dataset, monkeypatch):
    for name in viewer.LIVE_SESSION_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    figures = viewer.show_viewer(trained_model, find_pairs(tiny_dataset / "test"))
    assert len(figures) == 6  # two images at three thresholds
    titles = [fig._suptitle.get_text() for fig in figures]
    assert "threshold 0.30" in titles[0] and "threshold 0.70" in titles[2] and "IoU" in titles[0]
    plt.close("all")


def test_live_session_gets_widgets(trained_model, tiny_dataset, monkeypatch):
    monkeypatch.setenv("JPY_SESSION_NAME", "test.ipynb")
    panel = viewer.show_viewer(trained_model, find_pairs(tiny_dataset / "test"))
    index, threshold = panel.children[0].children
    assert index.max == 2 and threshold.value == 0.5
    threshold.value = 0.9  # redraws without error
    plt.close("all")


def test_viewer_figure_views():
    image = np.zeros((8, 8, 3), np.uint8)
    truth = np.zeros((8, 8), np.uint8)
    truth[2:4, 2:4] = 1
    probability = truth.astype(np.float32) * 0.8
    for view in ("overlay", "predicted_mask", "probability"):
        fig = viewer.viewer_figure(image, truth, probability, 0.5, view, "x")
        assert "IoU 1.000" in fig._suptitle.get_text()
    plt.close("all")
