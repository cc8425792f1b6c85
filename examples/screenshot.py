"""Screenshot a report page in headless Chromium (the Debian package, never a download).

    python examples/screenshot.py out/report.html out/report.png [--width 1200] [--height 900]

Playwright drives the system's ``chromium`` (``shutil.which("chromium")``); the page is
opened from a ``file://`` URL with the network off, exactly as a reader opens it offline.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

#: How pricecalc starts Chromium everywhere (tests too): headless, no sandbox (containers),
#: nothing fetched in the background.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


#: The exit code when there is no browser to take the picture with (``make run`` goes on).
NO_BROWSER = 3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page", type=Path)
    parser.add_argument("png", type=Path)
    parser.add_argument("--width", type=int, default=1200)
    parser.add_argument("--height", type=int, default=900)
    parser.add_argument("--full-page", action="store_true", help="the whole page, not a screen")
    args = parser.parse_args(argv)
    chromium = shutil.which("chromium")
    if chromium is None:
        print("screenshot: chromium is not installed (apt-get install chromium)", file=sys.stderr)
        return NO_BROWSER
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("screenshot: playwright is not installed (pip install -e '.[dev]')", file=sys.stderr)
        return 1
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": args.width, "height": args.height})
            page.route("http*://**", lambda route: route.abort())  # offline, as promised
            page.goto(args.page.resolve().as_uri())
            page.screenshot(path=str(args.png), full_page=args.full_page)
        finally:
            browser.close()
    print(f"screenshot of {args.page} saved to {args.png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
