"""File fields in Chromium, on SQLite and PostgreSQL, with the demo's data: an item's photo chosen with
the file input is uploaded with a progress bar (portal.js sends the form by XMLHttpRequest), the record
page shows its thumbnail and downloads the file; a file that is no image comes back refused at its
field with the typed name kept; files dropped on the drop zone land in the input. The form and the
record page are looked at in English and Chinese, at 1280 and 390 px."""

from __future__ import annotations

import io
import random
import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from app.demo import DEMO_PASSWORD
from tests.browser.test_admin_flow import sign_in
from tests.browser.test_inventory_approval_flow import _demo
from tests.browser.test_phone import PHONE, page_width

pytestmark = pytest.mark.browser

WIDE = {"width": 1280, "height": 900}
ITEMS = "/t/demo/p/inventory/inventory/items"

# Records what the progress bar showed at each upload progress event (listeners run in order: the
# page's own first, so this sees the value it set).
WATCH_PROGRESS = """() => {
  window.__progress = [];
  const send = XMLHttpRequest.prototype.send;
  XMLHttpRequest.prototype.send = function (body) {
    const bar = document.querySelector('[data-upload-progress]');
    const note = (type) => window.__progress.push({type: type, value: bar.value, hidden: bar.hidden});
    this.upload.addEventListener('progress', () => note('progress'));
    this.addEventListener('load', () => note('load'));
    const result = send.call(this, body);
    note('sent');
    // Chromium reports an upload over loopback in one go (or not at all when it takes under its 100 ms
    // polling): a half-way event from here shows the bar follows what the browser reports.
    this.upload.dispatchEvent(new ProgressEvent('progress', {lengthComputable: true, loaded: 1, total: 2}));
    return result;
  };
}"""

DROP = """([selector, name, bytes]) => {
  const zone = document.querySelector(selector);
  const data = new DataTransfer();
  data.items.add(new File([new Uint8Array(bytes)], name, {type: 'image/png'}));
  zone.dispatchEvent(new DragEvent('dragover', {bubbles: true, cancelable: true, dataTransfer: data}));
  zone.dispatchEvent(new DragEvent('drop', {bubbles: true, cancelable: true, dataTransfer: data}));
}"""


def photo(tmp_path: Path) -> Path:
    # Noise, so the PNG is large enough (~1 MB) for the upload to report progress.
    image = Image.frombytes("RGB", (600, 600), random.Random(1).randbytes(600 * 600 * 3))
    path = tmp_path / "bolt photo.png"
    image.save(path, "PNG")
    return path


def test_photo_upload_with_progress_thumbnail_and_download(
    page: Page, live_server: Any, settings_env: dict[str, str], shot: Any, tmp_path: Path
) -> None:
    _demo(settings_env)
    page.set_viewport_size(WIDE)
    sign_in(page, "alice@demo.test", DEMO_PASSWORD)
    page.goto(ITEMS)
    page.locator("table.records tbody tr a").first.click()
    record_url = page.url
    page.get_by_role("link", name="Edit").first.click()
    zone = page.locator("[data-dropzone]")
    expect(zone.locator("input[type=file]")).to_have_attribute("accept", re.compile("image/png"))
    shot(page, "form-1280-en", full_page=True)

    # Not an image (a text file named .png): refused at its field, the typed name kept.
    fake = tmp_path / "fake.png"
    fake.write_text("just text, not a picture")
    page.get_by_label("Name").fill("Bolt, typed")
    page.get_by_label("Photo").set_input_files(str(fake))
    expect(zone.locator("[data-file-names]")).to_have_text("fake.png")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#e-photo")).to_contain_text("this field accepts image/png")
    expect(page.get_by_label("Name")).to_have_value("Bolt, typed")
    shot(page, "refused-1280-en", full_page=True)

    # Dropping a file on the zone puts it in the input (not sent here).
    page.evaluate(DROP, ["[data-dropzone]", "dropped.png", list(photo(tmp_path).read_bytes()[:64])])
    expect(zone.locator("[data-file-names]")).to_have_text("dropped.png")
    assert page.evaluate("document.querySelector('[data-dropzone] input').files.length") == 1

    # The real photo, with the progress bar.
    page.evaluate(WATCH_PROGRESS)
    page.get_by_label("Photo").set_input_files(str(photo(tmp_path)))
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".flash:not(.error)")).to_contain_text("saved")
    expect(page).to_have_url(record_url)
    progress = page.evaluate("window.__progress")
    assert [p["type"] for p in progress][:2] == ["sent", "progress"], progress
    assert progress[0] == {"type": "sent", "value": 0, "hidden": False}, progress  # shown at once
    assert progress[1]["value"] == 50, progress
    assert {"type": "load", "value": 100, "hidden": False} in progress, progress  # full once answered
    thumb = page.locator("dd.files img.thumb")
    expect(thumb).to_be_visible()
    assert page.evaluate("document.querySelector('dd.files img.thumb').naturalWidth") == 256
    shot(page, "detail-1280-en", full_page=True)

    with page.expect_download() as caught:
        page.locator("dd.files a[download]").click()
    download = caught.value
    assert download.suggested_filename == "bolt photo.png"
    saved = Path(download.path()).read_bytes()
    assert Image.open(io.BytesIO(saved)).size == (600, 600)

    # Chinese, and a phone's width.
    page.get_by_role("button", name="中文").click()
    expect(page.locator("dd.files img.thumb")).to_be_visible()
    shot(page, "detail-1280-zh", full_page=True)
    page.set_viewport_size(PHONE)
    page.reload()
    assert page_width(page) <= PHONE["width"], page_width(page)
    shot(page, "detail-390-zh", full_page=True)
    page.get_by_role("link", name="编辑").first.click()
    expect(page.locator(".file-list li")).to_have_count(1)
    assert page_width(page) <= PHONE["width"], page_width(page)
    shot(page, "form-390-zh", full_page=True)
    page.get_by_role("button", name="English").click()
    expect(page.get_by_text("Remove")).to_be_visible()
    assert page_width(page) <= PHONE["width"], page_width(page)
    shot(page, "form-390-en", full_page=True)
    page.goto(record_url)
    shot(page, "detail-390-en", full_page=True)
    page.set_viewport_size(WIDE)
    page.goto(record_url + "/edit")
    page.get_by_role("button", name="中文").click()
    shot(page, "form-1280-zh", full_page=True)
