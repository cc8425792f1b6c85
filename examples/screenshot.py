"""Screenshot a report page in headless Chromium (the Debian package, never a download).

    python examples/screenshot.py out/report.html out/report.png [--width 1200] [--height 900]

Playwright drives the system's ``chromium`` (``shutil.which("chromium")``); the page is
opened from a ``file://`` URL with the network off, exactly as a reader opens it offline.

The page's Chinese needs a CJK font on the machine (``fc-list :lang=zh``). Without
chromium or without such a font no picture is taken — a picture of boxes (tofu) would
mislead — and the script says which package to install and exits 0, so ``make run`` goes
on: the page itself is written either way.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
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


def cjk_fonts() -> list[str]:
    """The fonts fontconfig knows that cover Chinese (empty without fontconfig)."""
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        return []
    try:
        listed = subprocess.run([fc_list, ":lang=zh", "family"], capture_output=True,
                                text=True, check=False, timeout=60)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return []
    return [line for line in listed.stdout.splitlines() if line.strip()]


def missing() -> list[tuple[str, str]]:
    """What the picture needs and the machine lacks: (what, the Debian package)."""
    lacking = []
    if shutil.which("chromium") is None:
        lacking.append(("chromium", "chromium"))
    if not cjk_fonts():
        lacking.append(("a CJK font (fc-list :lang=zh finds none)", "fonts-noto-cjk"))
    return lacking


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page", type=Path)
    parser.add_argument("png", type=Path)
    parser.add_argument("--width", type=int, default=1200)
    parser.add_argument("--height", type=int, default=900)
    parser.add_argument("--full-page", action="store_true", help="the whole page, not a screen")
    args = parser.parse_args(argv)
    lacking = missing()
    if lacking:
        print(
            f"screenshot: no picture of {args.page}: {' and '.join(w for w, _ in lacking)} "
            f"not installed; the page is written — for the picture: apt-get install "
            f"{' '.join(p for _, p in lacking)}",
            file=sys.stderr,
        )
        return 0
    chromium = shutil.which("chromium")
    assert chromium is not None
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
