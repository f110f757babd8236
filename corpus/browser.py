"""Debian's Chromium driven by Playwright through its executable path (no browser download),
as a real window on the current X display; the truth comes from the DOM.

`launch_chromium` is shared with the browser tests; `Browser.render` shows one page in a
1280x800 viewport and returns its screenshot and the boxes of every `data-kind` element.
"""

from __future__ import annotations

import io
import shutil
from typing import Any

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
VIEWPORT = {"width": 1280, "height": 800}

#: the truth: one row per `data-kind` element that is fully inside the viewport
TRUTH_JS = """() => {
  const out = [];
  for (const el of document.querySelectorAll('[data-kind]')) {
    const r = el.getBoundingClientRect();
    if (r.width < 2 || r.height < 2 || r.left < 0 || r.top < 0 ||
        r.right > window.innerWidth || r.bottom > window.innerHeight) continue;
    out.push({kind: el.dataset.kind, text: el.dataset.text ?? el.innerText.trim(),
              cls: el.tagName.toLowerCase(), x: Math.round(r.left), y: Math.round(r.top),
              w: Math.round(r.right) - Math.round(r.left),
              h: Math.round(r.bottom) - Math.round(r.top)});
  }
  return out;
}"""


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        raise RuntimeError("chromium is not installed (apt-get install chromium; make install)")
    return path


def launch_chromium(playwright: Any, headless: bool = False, args: list[str] | None = None):
    """Debian's chromium via Playwright; headed (on $DISPLAY) unless told otherwise."""
    return playwright.chromium.launch(executable_path=chromium_path(), headless=headless,
                                      args=CHROMIUM_ARGS + (args or []))


class Browser:
    """One Chromium window reused for many pages."""

    def __enter__(self) -> Browser:
        from playwright.sync_api import sync_playwright

        self._pw = sync_playwright().start()
        self._browser = launch_chromium(self._pw)
        self.page = self._browser.new_page(viewport=VIEWPORT)
        return self

    def __exit__(self, *exc: object) -> None:
        self._browser.close()
        self._pw.stop()

    def render(self, html: str) -> tuple[Any, list[dict[str, Any]]]:
        """Screenshot (PIL image) and truth rows of one page."""
        from PIL import Image

        self.page.set_content(html)
        self.page.evaluate("() => document.fonts.ready")
        self.page.mouse.move(1279, 799)  # no hover effect on the page
        png = self.page.screenshot()
        return Image.open(io.BytesIO(png)).convert("RGB"), self.page.evaluate(TRUTH_JS)
