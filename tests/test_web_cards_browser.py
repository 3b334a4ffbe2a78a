"""The Filters tab in Debian's Chromium (Playwright): a feature map opens its filter's card."""

import pytest

from test_web_browser import _assert_only_local, browser, page, server  # noqa: F401  (the shared fixtures)

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture fails with the install hint
    expect = None

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]


def test_clicking_a_feature_map_opens_its_card(page, server):
    page.click(".tab[data-tab=gallery]")
    page.click("#gallery-form button[type=submit]")
    page.wait_for_selector("#results:not([hidden]) #maps .map canvas")
    conv2 = page.locator("#maps .map[data-name=conv2] canvas")
    box = conv2.bounding_box()
    scale = box["width"] / (8 * 15 + 1)  # conv2: 8 columns of 14x14 maps with 1-pixel gaps
    # map 10 is in row 1, column 2: its cell starts at pixel (1 + 2 * 15, 1 + 1 * 15)
    with page.expect_response("**/api/cards?layer=conv2&filter=10") as answer:
        conv2.click(position={"x": (1 + 2 * 15 + 7) * scale, "y": (1 + 15 + 7) * scale})
    assert answer.value.status == 200
    expect(page.locator("#tab-filters")).to_be_visible()
    expect(page.locator("#f-title")).to_have_text("conv2 filter 10")
    assert page.locator("#f-patches figure").count() == 9
    assert page.locator("#f-classes .f-bar").count() == 10
    assert page.locator("#f-kernel figure").count() == 3  # conv2: its three strongest input channels
    assert page.locator("#f-grid .f-thumb").count() == 64
    expect(page.locator("#f-grid .f-thumb.selected")).to_have_attribute("data-filter", "10")
    # another filter from the grid, then conv1 from the layer menu
    with page.expect_response("**/api/cards?layer=conv2&filter=3"):
        page.click("#f-grid .f-thumb[data-filter='3']")
    expect(page.locator("#f-title")).to_have_text("conv2 filter 3")
    page.select_option("#f-layer", "conv1")
    expect(page.locator("#f-grid .f-thumb")).to_have_count(32)
    _assert_only_local(page, server)
