"""End to end: the real server (uvicorn) and a real headless Chromium driven by Playwright.

These tests are not skipped when Chromium is missing: they fail and say how to install it
(``make setup-test`` runs ``scripts/apt-deps.sh browser``). Set ``CONVLAYER_CHROMIUM`` to use
another binary, and ``CONVLAYER_DOCS_SCREENSHOT=1`` to also refresh docs/img/web-screenshot.png.
"""

import os
import socket
import threading
import time
import types
from pathlib import Path

import numpy as np
import pytest

from convlayer import checkpoint
from convlayer.models import MNISTModel

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture fails with the install hint
    expect = None

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

CHROMIUM = os.environ.get("CONVLAYER_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CLASS_NAMES = [str(i) for i in range(10)]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``convlayer serve``'s app under uvicorn on 127.0.0.1, a free port, in a background thread."""
    try:
        import uvicorn

        from convlayer.web.app import create_app
    except ImportError as exc:
        pytest.fail(f"the web extra is missing ({exc}); run `make setup-test` or pip install -e '.[web,test]'.")
    path = tmp_path_factory.mktemp("web") / "tiny.npz"
    checkpoint.save(path, MNISTModel(28, 10, seed=5), meta={"dataset": "mnist", "class_names": CLASS_NAMES,
                                                              "input_dim": 28})
    rng = np.random.default_rng(0)
    images = np.zeros((20, 28, 28), np.float32)  # (N, H, W): a bright vertical bar at a random column
    for image in images:
        column = rng.integers(8, 20)
        image[5:23, column:column + 3] = 1.0
    data = types.SimpleNamespace(x_test=images, y_test=np.arange(20, dtype=np.int64) % 10,
                                 class_names=tuple(CLASS_NAMES))
    port = _free_port()
    config = uvicorn.Config(create_app(path, dataset_loader=lambda name: data), host="127.0.0.1", port=port,
                            log_level="warning", lifespan="off")
    uvicorn_server = uvicorn.Server(config)
    thread = threading.Thread(target=uvicorn_server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not uvicorn_server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail(f"uvicorn did not start on 127.0.0.1:{port}")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    uvicorn_server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright for Python is missing: pip install playwright (do not run `playwright install`; "
                    "the tests use Debian's Chromium).")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"Chromium not found at {CHROMIUM}: run `make setup-test` (scripts/apt-deps.sh browser), "
                    "or `apt-get install chromium`, or set CONVLAYER_CHROMIUM to a Chromium binary.")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server):
    """A fresh page on the app that records console errors and every URL it requests."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.problems, page.urls = [], []
    page.on("console", lambda msg: msg.type == "error" and page.problems.append(msg.text))
    page.on("pageerror", lambda exc: page.problems.append(str(exc)))
    page.on("request", lambda request: page.urls.append(request.url))
    page.goto(server)
    expect(page.locator("#model-info")).to_contain_text("10 classes")
    yield page
    context.close()


def _stroke(page, points):
    box = page.locator("#pad").bounding_box()
    page.mouse.move(box["x"] + points[0][0], box["y"] + points[0][1])
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(box["x"] + x, box["y"] + y, steps=8)
    page.mouse.up()


def _assert_only_local(page, server, refused=0):
    """Every request went to our server; no script errors (``refused`` 4xx answers were provoked on purpose)."""
    assert page.urls and all(url.startswith(server) or url.startswith("data:") for url in page.urls), page.urls
    provoked = [p for p in page.problems if "the server responded with a status of 4" in p]
    assert len(provoked) == refused and [p for p in page.problems if p not in provoked] == []


def test_drawing_a_digit_shows_top3_input_and_feature_maps(page, server):
    with page.expect_response("**/api/predict") as answer:
        _stroke(page, [(140, 40), (140, 240)])  # a '1'
    assert answer.value.status == 200
    page.wait_for_selector("#results:not([hidden]) #top3 li")
    assert page.locator("#top3 li").count() == 3
    assert page.locator("#maps .map canvas").count() == 2
    assert page.locator("#maps .map").evaluate_all("els => els.map(e => e.dataset.name)") == ["conv1", "conv2"]
    # conv1: 8 columns x 4 rows of 28x28 maps with 1-pixel gaps; conv2: 8 x 8 of 14x14.
    sizes = page.locator("#maps canvas").evaluate_all("els => els.map(c => [c.width, c.height])")
    assert sizes == [[8 * 29 + 1, 4 * 29 + 1], [8 * 15 + 1, 8 * 15 + 1]]
    # The network input shows ink: some pixel of the 28x28 canvas is bright.
    brightest = page.evaluate("""() => {
        const c = document.getElementById('input-view');
        return Math.max(...c.getContext('2d').getImageData(0, 0, c.width, c.height).data.filter((_, i) => i % 4 == 0));
    }""")
    assert (page.locator("#input-view").evaluate("c => [c.width, c.height]"), brightest) == ([28, 28], 255)
    with page.expect_response("**/api/predict") as answer:
        _stroke(page, [(60, 60), (220, 60)])  # each stroke sends the drawing again: now a '7'
    top = answer.value.json()["top"]
    expect(page.locator("#top3 li .name").first).to_have_text(top[0]["name"])
    probabilities = [float(t.split()[-1].rstrip("%")) for t in page.locator("#top3 li").all_inner_texts()]
    assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) <= 100.05
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web.png"), full_page=True)
    if os.environ.get("CONVLAYER_DOCS_SCREENSHOT"):
        page.screenshot(path=str(ROOT / "docs" / "img" / "web-screenshot.png"), full_page=True)
    page.click("#clear")
    assert page.locator("#results").is_hidden()
    _assert_only_local(page, server)


def test_gallery_shows_a_test_image_and_its_views(page, server):
    page.click("button.tab[data-tab=gallery]")
    page.fill("#g-index", "3")
    page.click("#gallery-form button[type=submit]")
    page.wait_for_selector("#results:not([hidden]) #top3 li")
    assert "test image #3 of 20: true class 3" in page.locator("#gallery-status").inner_text()
    page.fill("#g-seed", "11")
    page.click("#g-random")
    expected = int(np.random.default_rng(11).integers(20))
    expect(page.locator("#gallery-status")).to_contain_text(f"#{expected} of 20 (random, seed 11)")
    assert page.locator("#g-seed").input_value() == "12"
    assert page.locator("#maps .map canvas").count() == 2
    page.fill("#g-index", "99")
    page.click("#gallery-form button[type=submit]")
    page.wait_for_selector("#error:not([hidden])")
    assert "0..19" in page.locator("#error").inner_text()
    _assert_only_local(page, server, refused=1)


def test_convolution_panel_steps_the_window_with_the_trace_numbers(page, server):
    page.click("button.tab[data-tab=conv]")
    page.wait_for_selector("#c-output td")
    assert page.locator("#c-pos").inner_text() == "step 1 of 16"  # 6x6 input, 3x3 kernel, valid
    assert page.locator("#c-input td.win").count() == 9
    page.click("#c-next")
    assert page.locator("#c-pos").inner_text() == "step 2 of 16"
    assert page.locator("#c-output td.done").count() == 1 and page.locator("#c-output td.now").count() == 1
    # 'same' padding, stride 2: padded cells appear and the output is ceil(6 / 2) = 3 a side.
    with page.expect_response("**/api/trace"):  # let the padding's own trace arrive first (no race)
        page.select_option("#c-pad", "same")
    page.fill("#c-stride", "2")
    with page.expect_response("**/api/trace") as answer:
        page.press("#c-stride", "Tab")  # leaving the field fires 'change', as for a person
    trace = answer.value.json()
    assert (trace["padding_name"], trace["strides"]) == ("same", [2, 2])
    expect(page.locator("#c-pos")).to_have_text("step 1 of 9")
    assert page.locator("#c-input td.pad").count() == 7 * 7 - 6 * 6  # one zero row at the bottom, one column right
    assert "'same' wants ceil(6 / 2) = 3 outputs" in page.locator("#c-notes").inner_text()
    assert page.locator("#c-kernel input").count() == 9
    # The page shows the server's numbers: the padded input table is the trace's padded array.
    shown = page.locator("#c-input td").all_inner_texts()
    assert shown == [f"{v[0]:g}" for row in trace["padded"] for v in row]
    page.click("#c-prev")  # wraps to the last step
    assert page.locator("#c-pos").inner_text() == "step 9 of 9"
    total = page.locator("#c-output td.now").inner_text()
    assert page.locator("#c-step").inner_text().rstrip().endswith(f"= {total}")
    page.click("#c-play")
    expect(page.locator("#c-pos")).to_have_text("step 2 of 9", timeout=5_000)
    page.click("#c-play")
    assert page.locator("#c-play").inner_text() == "Play"
    # An impossible configuration shows the library's message instead of breaking the page.
    page.select_option("#c-pad", "valid")
    page.fill("#c-k", "5")
    page.press("#c-k", "Tab")
    page.fill("#c-size", "3")
    page.press("#c-size", "Tab")
    page.wait_for_selector("#error:not([hidden])")
    assert "does not fit" in page.locator("#error").inner_text()
    assert page.locator("#c-output-shape").inner_text() == ""  # no stale size beside the emptied output
    _assert_only_local(page, server, refused=1)


def test_a_single_dot_is_classified_with_a_warning_and_the_preprocessing_is_shown(page, server):
    with page.expect_response("**/api/predict") as answer:
        _stroke(page, [(140, 140), (142, 141)])
    assert answer.value.json()["note"]
    expect(page.locator("#input-note")).to_contain_text("nearly empty")
    assert "prepared like MNIST" in page.locator("#input-method").inner_text()
    with page.expect_response("**/api/predict") as answer:
        _stroke(page, [(140, 40), (140, 240)])
    assert answer.value.json()["note"] is None
    expect(page.locator("#input-note")).to_be_hidden()
    _assert_only_local(page, server)
