"""The interactive viewer where users see it: Jupyter in a real (headless) browser.

Starts JupyterLab on localhost, opens a small notebook that shows the viewer, runs it, switches the view to the
predicted mask, moves the threshold slider and checks that the displayed mask changed. The model is one whose
probabilities are known (a 1x1 convolution of brightness), not a trained one: a tiny trained model's flat
probabilities, and where they fall, depend on the machine's arithmetic. The screenshot and the two figures
compared are kept in `test-artifacts/` (or $BIRDSEG_TEST_ARTIFACTS). Needs Playwright (PyPI) and Chromium
(Debian's `chromium`), looked for before anything is started: on a developer's machine without them the test is
skipped, saying why; where BIRDSEG_CI is set (.ci/run) it fails instead.
"""
import io
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request

import nbformat
import numpy as np
import pytest
from conftest import ROOT
from PIL import Image

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Chromium's own background traffic fails on a closed network and slows every start.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
TOKEN = "birdseg-browser-test"
REDRAW_MS = 180_000  # a second alone; under the whole suite's load one redraw did not come within 60 s


@pytest.fixture
def browser():
    """Playwright's sync API and the Chromium to drive, or a skip (a failure under BIRDSEG_CI)."""
    missing = None
    try:
        from playwright import sync_api
    except ImportError:
        missing = "Playwright is not installed (pip install playwright)"
    if CHROMIUM is None:
        missing = "no Chromium on this machine (Debian: apt-get install chromium)"
    if missing:
        if os.environ.get("BIRDSEG_CI"):
            pytest.fail(f"BIRDSEG_CI is set (CI must run this test) but {missing}")
        pytest.skip(missing)
    return sync_api


def server_url(runtime_dir, server):
    """The URL of the Jupyter server started with --port=0, from the file it writes once it listens."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and server.poll() is None:
        for info in runtime_dir.glob("jpserver-*.json"):
            try:
                return f"http://127.0.0.1:{json.loads(info.read_text())['port']}"
            except (ValueError, KeyError):
                pass  # being written
        time.sleep(0.5)
    return None


@pytest.fixture
def brightness_model(tmp_path, tiny_dataset):
    """A saved model whose probability is a steep sigmoid of a pixel's brightness, centred on the first test image's
    median: at the default threshold about half of that image is bird, at either end of the slider far more or
    far less. Returns the loaded model and its file."""
    import keras

    from birdseg.images import read_image
    from birdseg.model import load_model
    from birdseg.pairs import find_pairs

    image = read_image(find_pairs(tiny_dataset / "test")[0][0])
    brightness = image.astype(np.float32).mean(axis=2) / 255.0
    steepness = 4.0 / max(float(np.std(brightness)), 1e-3)  # one standard deviation: probability 0.02 or 0.98
    inputs = keras.Input((64, 96, 3))
    convolution = keras.layers.Conv2D(1, 1, activation="sigmoid")
    model = keras.Model(inputs, convolution(inputs))
    convolution.set_weights([np.full((1, 1, 3, 1), steepness / 3, np.float32),
                             np.array([-steepness * float(np.median(brightness))], np.float32)])
    path = tmp_path / "brightness.keras"
    model.save(path)
    return load_model(path), path


@pytest.fixture
def jupyter_server(browser, tmp_path, brightness_model, tiny_dataset):
    """JupyterLab serving a folder with viewer.ipynb (the viewer on `brightness_model`); yields its base URL."""
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(
        "import birdseg_utils as bu\n"
        f"model = bu.load_model(r'{brightness_model[1]}')\n"
        f"viewer = bu.show_viewer(model, bu.find_pairs(r'{tiny_dataset / 'test'}'))"
    )]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, tmp_path / "viewer.ipynb")
    # no "get Jupyter news?" pop-up over the screenshot
    news = tmp_path / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True)
    news.write_text('{"fetchNews": "false"}')
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--port=0", "--ip=127.0.0.1",
               f"--ServerApp.token={TOKEN}", f"--ServerApp.root_dir={tmp_path}", "--allow-root",
               f"--LabApp.user_settings_dir={tmp_path / 'settings'}",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
           "JUPYTER_DATA_DIR": str(tmp_path / "data"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    with open(tmp_path / "server.log", "w") as log:
        server = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        url = server_url(tmp_path / "runtime", server)
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=2)
                break
            except (OSError, TypeError, ValueError):
                if url is None or server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("JupyterLab did not start:\n" + (tmp_path / "server.log").read_text()[-3000:])
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def redrawn_figure(page, previous):
    """The figure shown after a redraw: the first image that is no longer `previous` (the viewer sends each redraw
    as one finished PNG)."""
    page.wait_for_function("src => document.querySelector('img.widget-image')?.src !== src",
                           arg=previous, timeout=REDRAW_MS)
    return displayed_figure(page)


def displayed_figure(page):
    """The viewer's figure as the browser shows it: the src of the widget's image (a blob: URL, new each redraw)."""
    image = page.locator("img.widget-image").first
    image.wait_for(timeout=60_000)
    return image.get_attribute("src")


def figure_pixels(page, src):
    """The RGB pixels of the PNG at `src`, read back from the page (blob: URLs exist only there)."""
    import base64

    encoded = page.evaluate("""async src => {
        const bytes = new Uint8Array(await (await fetch(src)).arrayBuffer());
        let text = '';
        for (const byte of bytes) text += String.fromCharCode(byte);
        return btoa(text);
    }""", src)
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(encoded))).convert("RGB"))


def threshold_end_that_changes_the_mask(model, pairs):
    """("Home", 0.05) or ("End", 0.95): the end of the threshold slider whose mask of the first image differs most
    from the mask at 0.5. One key press is one value change, so one redraw to wait for."""
    from birdseg.images import read_pair
    from birdseg.predict import predict_probabilities

    image, _ = read_pair(*pairs[0])
    probability = predict_probabilities(model, [image])[0]
    changed = {end: float(((probability > 0.5) != (probability > value)).mean())
               for end, value in (("Home", 0.05), ("End", 0.95))}
    key = max(changed, key=changed.get)
    assert changed[key] > 0.2, f"moving the threshold changes too little of the mask to see: {changed}"
    return key, {"Home": 0.05, "End": 0.95}[key]


@pytest.mark.slow
def test_viewer_in_a_real_browser(browser, jupyter_server, brightness_model, tiny_dataset):
    from birdseg.pairs import find_pairs

    key, threshold_value = threshold_end_that_changes_the_mask(brightness_model[0], find_pairs(tiny_dataset / "test"))
    artifacts = os.environ.get("BIRDSEG_TEST_ARTIFACTS", str(ROOT / "test-artifacts"))
    os.makedirs(artifacts, exist_ok=True)
    with browser.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(f"{jupyter_server}/lab/tree/viewer.ipynb?token={TOKEN}", timeout=60_000)
            page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=60_000)
            page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=60_000)  # the kernel is ready
            page.locator(".jp-Notebook .jp-Cell .jp-InputArea-editor").first.click()
            page.keyboard.press("Shift+Enter")  # run the cell: kernel start, model load, prediction
            first = displayed_figure(page)

            page.get_by_role("button", name="predicted_mask").click()
            mask_view = redrawn_figure(page, first)
            mask_pixels = figure_pixels(page, mask_view)  # now: a blob: URL is revoked once the next one comes

            threshold = page.locator(".widget-slider", has_text="threshold").locator(".noUi-handle")
            threshold.focus()
            page.keyboard.press(key)
            moved_pixels = figure_pixels(page, redrawn_figure(page, mask_view))
            readout = page.locator(".widget-slider", has_text="threshold").locator(".widget-readout").inner_text()
        finally:  # also on failure: the screenshot shows where it got stuck
            page.screenshot(path=os.path.join(artifacts, "viewer_in_browser.png"), full_page=True)
            browser.close()
    for name, pixels in (("viewer_mask_at_0.5.png", mask_pixels), ("viewer_mask_moved.png", moved_pixels)):
        Image.fromarray(pixels).save(os.path.join(artifacts, name))  # the figures compared, to look at
    assert readout.strip() == f"{threshold_value:.2f}"
    before, after = mask_share(mask_pixels), mask_share(moved_pixels)
    # a lower threshold marks more pixels bird (white), a higher one fewer
    assert after > before if key == "Home" else after < before, f"the displayed mask did not change: {before, after}"


def mask_share(pixels):
    """The share of white in the right-hand panel of a viewer figure (the predicted mask; its lower three quarters
    hold no title text)."""
    height, width, _ = pixels.shape
    return float((pixels[height // 4 :, 2 * width // 3 :].min(axis=2) > 200).mean())
