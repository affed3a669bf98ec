"""Figures that must stay readable."""
import numpy as np

from birdseg.plots import plot_history


def test_plot_history_past_twenty_epochs():
    epochs = 25
    history = {"loss": list(np.linspace(1, 0.1, epochs)), "val_loss": list(np.linspace(1.1, 0.2, epochs)),
               "iou_score": list(np.linspace(0, 0.9, epochs)), "val_iou_score": list(np.linspace(0, 0.8, epochs))}
    figure = plot_history(history)
    ticks = figure.axes[0].get_xticks()
    assert all(float(t).is_integer() for t in ticks) and len(ticks) < epochs
