"""The page at `/` in a real browser: Debian's chromium, driven by Playwright, against a real `imgsearch serve`.

Playwright never downloads a browser here; the test uses /usr/bin/chromium (.ci/run installs it with apt). Where
chromium or Playwright is missing the test is skipped with the reason, except under CI=true, where that fails.
"""

from __future__ import annotations

import os

import pytest
from conftest import add_black_border, jpeg_bytes
from serve_process import indexed_gallery, served


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera", "coins", "motorcycle")


def _missing(reason: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the browser test must run; .ci/run installs chromium)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("Playwright for Python is not installed (pip install '.[test]')")
    if not os.access(CHROMIUM, os.X_OK):
        _missing(f"{CHROMIUM} is missing (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory, photo_dir, vgg_weights):
    root = tmp_path_factory.mktemp("page")
    uri = indexed_gallery(root, photo_dir, PHOTOS, vgg_weights)
    with served(uri, vgg_weights, root / "serve.log") as server:
        yield server
    assert "Traceback" not in server.log_text()


def test_upload_an_edited_copy_and_see_the_original_first(browser, server, sample_images, tmp_path):
    query = tmp_path / "rocket-edited.jpg"
    query.write_bytes(jpeg_bytes(add_black_border(sample_images["rocket"], 0.1), quality=40))
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server.url + "/")
    page.wait_for_function("document.getElementById('status').textContent.includes('images')")
    assert "7 images" in page.text_content("#status")

    page.set_input_files("#file", str(query))
    page.wait_for_selector(".hit")
    first = page.locator(".hit").nth(0)
    assert first.locator(".path").first.text_content().endswith("/rocket.jpg")
    assert float(first.locator(".similarity").text_content()) > 0.9
    first.locator(".thumb img").wait_for()  # its thumbnail came through the API
    assert page.locator("#drop img").count() == 1  # the query is shown beside the results

    # The default minimum similarity is the API's; hits below it, asked for, carry no "similar" badge.
    assert page.input_value("#threshold") == "0.8"
    page.fill("#threshold", "-1")
    page.dispatch_event("#threshold", "change")
    page.wait_for_function("document.querySelectorAll('.hit').length >= 7")
    for i in range(page.locator(".hit").count()):
        hit = page.locator(".hit").nth(i)
        badge = hit.locator(".badge").all_text_contents()
        similarity = float(hit.locator(".similarity").text_content())
        if badge == ["similar"]:
            assert similarity >= 0.8, (i, similarity)
        elif not badge:
            assert similarity < 0.8, (i, similarity)
    assert page.locator(".hit").nth(0).locator(".badge").text_content() == "copy"
    assert page.locator(".hit .badge").count() < page.locator(".hit").count()  # the unrelated photos: no badge

    # The owner filter: nobody called "nobody" owns anything.
    page.fill("#owner", "nobody")
    page.dispatch_event("#owner", "change")
    page.wait_for_function("document.querySelectorAll('.hit').length === 0")
    assert "no image" in page.text_content("#summary")
    page.screenshot(path=str(tmp_path / "page.png"))
    assert errors == []
