"""The convolution panel's "predict the next cell" in Debian's Chromium (Playwright), with the keyboard only."""

import numpy as np
import pytest

from test_web_browser import ARTIFACTS, _assert_only_local, browser, page, server  # noqa: F401  (the shared fixtures)

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture fails with the install hint
    expect = None

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]


def test_a_flipped_kernel_guess_is_named_and_a_right_one_gets_a_tick(page, server):
    with page.expect_response("**/api/trace") as answer:
        page.click("button.tab[data-tab=conv]")
    trace = answer.value.json()
    page.wait_for_selector("#c-output td.now")
    assert page.locator("#c-predict").is_hidden()
    page.focus("#c-predict-on")
    page.keyboard.press("Space")
    expect(page.get_by_label("Predict the next cell")).to_be_checked()
    assert page.locator("#c-play").is_disabled()  # playing would reveal the cells it should ask for

    page.focus("#c-next")
    page.keyboard.press("Enter")  # step 2 waits for a value: output[0, 1]
    guess = page.get_by_label("Your value for output[0, 1]")
    expect(guess).to_be_focused()
    expected = trace["output"][0][1]
    ask = page.locator("#c-output td.ask")
    assert ask.inner_text() == "?" and page.locator("#c-output td.now").count() == 0
    assert page.locator("#c-step").inner_text().rstrip().endswith("= ? (your prediction)")
    window = np.asarray(trace["steps"][1]["window"])[:, :, 0]  # (3, 3) under the kernel
    flipped = float(np.sum(window * np.asarray(trace["kernel"])[::-1, ::-1, 0]) + trace["bias"])
    assert flipped != expected  # the default input and edge kernel make the flip show

    guess.fill("not a number")
    guess.press("Enter")
    expect(page.locator("#error")).to_contain_text("is not a number")
    guess.fill(f"{flipped:g}")
    with page.expect_response("**/api/predict-cell") as answer:
        guess.press("Enter")
    assert answer.value.status == 200
    verdict = page.locator("#c-verdict")
    expect(verdict).to_contain_text(f"Yours: {flipped:g}; output[0, 1] is {expected:g}.")
    expect(verdict.locator("li strong").first).to_have_text("kernel flipped")
    assert "cross-correlation" in verdict.inner_text()  # the rule, in plain words
    expect(page.locator("#c-output td.now")).to_have_text(f"{expected:g}")  # then revealed
    assert page.locator("#c-step").inner_text().rstrip().endswith(f"= {expected:g}")
    expect(page.locator("#c-next")).to_be_focused()
    assert page.locator("#error").is_hidden()
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator("#tab-conv").screenshot(path=str(ARTIFACTS / "web-predict.png"))

    page.keyboard.press("Enter")  # on to output[0, 2]
    guess = page.get_by_label("Your value for output[0, 2]")
    expect(guess).to_be_focused()
    assert verdict.is_hidden()
    guess.type(f"{trace['output'][0][2]:g}")
    guess.press("Enter")
    expect(verdict).to_contain_text(f"✓ {trace['output'][0][2]:g} is right.")
    assert verdict.locator("li").count() == 0
    expect(page.locator("#c-output td.now")).to_have_text(f"{trace['output'][0][2]:g}")
    assert page.locator("#c-output td.done").count() == 2

    page.click("#c-prev")  # going back shows a known cell, it does not ask
    expect(page.locator("#c-predict")).to_be_hidden()
    page.focus("#c-predict-on")
    page.keyboard.press("Space")
    assert page.locator("#c-play").is_enabled()
    _assert_only_local(page, server)
