"""End to end: the Train tab in headless Chromium against `serve --train`'s app under uvicorn."""

import threading
import time

import pytest
from playwright.sync_api import expect, sync_playwright

from convlayer import checkpoint
from convlayer.models import MNISTModel
from convlayer.web.app import create_app
from convlayer.web.train import Trainer
from test_web_browser import CHROMIUM, CHROMIUM_ARGS, _free_port

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def served():
    import uvicorn

    ck = checkpoint.Checkpoint(MNISTModel(8, 10), meta={"dataset": "digits", "input_dim": 8})
    trainer = Trainer()
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(ck, trainer=trainer), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", trainer
    server.should_exit = True
    thread.join(timeout=20)
    assert not trainer.running and not trainer.folder.exists()  # the server's shutdown stopped and cleaned up


def test_train_watch_scrub_and_fork_in_the_page(served):
    url, trainer = served
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        problems = []
        page.on("pageerror", lambda exc: problems.append(str(exc)))
        page.goto(url)
        page.click("button.tab[data-tab=train]")
        page.fill("#t-epochs", "3")
        page.fill("#t-limit", "384")
        page.click("#t-start")
        expect(page.locator("#t-status")).to_contain_text("run 1 done", timeout=60_000)
        assert page.locator("#t-filters").evaluate("c => [c.width, c.height]") == [8 * 6 + 1, 4 * 6 + 1]
        assert page.locator("#t-maps").evaluate("c => [c.width, c.height]") == [8 * 9 + 1, 4 * 9 + 1]
        assert "epoch 3" in page.locator("#t-epoch-label").inner_text()
        page.locator("#t-epoch").fill("0")  # scrub back to epoch 1
        expect(page.locator("#t-epoch-label")).to_contain_text("epoch 1")
        drawn = page.locator("#t-chart").evaluate(
            "c => c.getContext('2d').getImageData(0, 0, c.width, c.height).data.some((v, i) => i % 4 == 3 && v)")
        assert drawn
        page.fill("#t-new-lr", "0.003")
        page.click("#t-fork")
        expect(page.locator("#t-status")).to_contain_text("run 2 done", timeout=60_000)
        assert trainer.runs[2].parent == (1, 1)
        assert {e["learning_rate"] for e in trainer.runs[2].events if e["type"] == "progress"} == {0.003}
        assert problems == []
        browser.close()
