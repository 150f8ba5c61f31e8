"""Screenshots of the dashboard's pages for the README, taken in Debian's Chromium.

    python docs/screenshots.py [--home PATH] [--out docs/images]

The home defaults to the one the notebooks read (AIOS_HOME, else the demo's): run
``aios demo --exit`` first so the pictures show what really happened there.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aios.dashboard.pages import PAGES
from aios.dashboard.server import DashboardServer
from aios.insights import chosen_home
from aios.prefect_api import read_up

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", help="AIOS home (default: AIOS_HOME, else the demo's)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "images"))
    parser.add_argument("--width", type=int, default=1400)
    args = parser.parse_args(argv)
    paths = chosen_home(args.home)
    if not paths.events.is_dir():
        print(f"{paths.root} has no event log: run `aios demo --exit` first", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ui = (read_up(paths) or {}).get("ui_url") or "http://127.0.0.1:4200"
    server = DashboardServer(paths, port=0, ui_url=lambda: ui)
    server.start()
    try:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": args.width, "height": 900})
            for name in PAGES:
                page.goto(f"{server.url}/#{name}")
                page.wait_for_selector(f"main[data-page={name}] .card")
                page.wait_for_timeout(600)  # the charts draw on the next frame
                target = out / f"dashboard-{name}.png"
                partial = target.with_suffix(".png.tmp")
                partial.write_bytes(page.screenshot(full_page=True))
                partial.replace(target)
                print(target)
            browser.close()
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
