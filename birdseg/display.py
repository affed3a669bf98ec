"""What a notebook shows while it runs: figures inline and progress bars, in a live Jupyter session or a headless
run (papermill), and nothing extra in a plain Python process."""
import os
import sys

# Set for the kernels that Jupyter Server (Notebook 7, Lab) and VS Code start; papermill and nbconvert set
# neither (jupyter_client's JPY_PARENT_PID is set for every kernel, headless ones too, so it cannot tell).
LIVE_SESSION_VARIABLES = ("JPY_SESSION_NAME", "VSCODE_PID")
HEADLESS_REFRESH_SECONDS = 30  # a headless bar is written into the notebook file: a line now and then, not a stream


def in_notebook():
    """Whether this process is a Jupyter kernel (live or headless), where figures can be displayed."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and hasattr(shell, "kernel")


def running_live():
    """Whether this kernel was started by a live Jupyter server or VS Code (so widgets can be shown)."""
    return any(name in os.environ for name in LIVE_SESSION_VARIABLES)


def show_figure(figure):
    """Display a matplotlib figure in the notebook's output now (the cell goes on running), then close it so that
    the cell's end does not show it again; outside a notebook only close it."""
    import matplotlib.pyplot as plt

    if in_notebook():
        from IPython.display import display

        display(figure)
    plt.close(figure)


def notice(text):
    """A line for the person running the notebook or the command, now."""
    print(text, flush=True)


def progress_bar(total, description, unit, enabled=True):
    """A tqdm bar: a widget in a live session, elsewhere text updated every HEADLESS_REFRESH_SECONDS (a headless
    notebook keeps every update in its file)."""
    if running_live():
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=description, unit=unit, disable=not enabled)
    from tqdm import tqdm

    return tqdm(total=total, desc=description, unit=unit, disable=not enabled, file=sys.stdout,
                mininterval=HEADLESS_REFRESH_SECONDS if in_notebook() else 0.1, ncols=100)
