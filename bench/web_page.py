"""The install page's weight and its time from load to ready buttons in headless Chromium.

    .venv/bin/python bench/web_page.py [--dist dist] [--runs 5] [--screenshot FILE]

Needs a page (`rtflash ci --web`) and Debian's chromium. Serves dist/ with rtflash's own server on
127.0.0.1, then loads it with a fresh headless Chromium per run (testkit/chromium.py) and prints:
the bytes of HTML + JS the page loads before its buttons are ready, everything vendored (the install
dialog and flasher chunks load only on a click), and load-to-buttons-ready (performance.now() at the
moment every <esp-web-install-button> has its shadow root; navigation start is 0).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rtflash.web import VENDOR_DIR, make_server  # noqa: E402
from testkit import chromium  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dist", type=Path, default=Path("dist"))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--screenshot", type=Path, default=None, help="Save the first run's screenshot (PNG) here.")
    args = ap.parse_args()
    server = make_server(args.dist.resolve(), 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        runs = [chromium.load_page(url) for _ in range(args.runs)]
    finally:
        server.shutdown()
        server.server_close()
    first = runs[0]
    if args.screenshot:
        args.screenshot.parent.mkdir(parents=True, exist_ok=True)
        args.screenshot.write_bytes(first.screenshot)
    html_js = 0
    for req in first.requests:
        if req.endswith((".html", ".js", "/")):
            html_js += _local(args.dist, url, req).stat().st_size
    vendored = sum(p.stat().st_size for p in (args.dist / VENDOR_DIR).glob("*.js"))
    ready = [r.load_to_ready_ms for r in runs]
    print(f"boards on the page:           {len(first.ready.get('boards', []))} "
          f"({len(first.ready.get('buttons', []))} install buttons)")
    print(f"requests at load:             {len(first.requests)} (all to {url})")
    print(f"page weight at load (HTML+JS): {html_js / 1024:.1f} KB "
          f"(index.html {(args.dist / 'index.html').stat().st_size / 1024:.1f} KB + install-button.js)")
    print(f"vendored ESP Web Tools JS:     {vendored / 1024:.1f} KB (dialog and flasher load on click)")
    print(f"load to buttons ready:         median {statistics.median(ready):.0f} ms, "
          f"min {min(ready):.0f} ms, max {max(ready):.0f} ms over {len(ready)} cold browser starts")
    print(f"console errors:                {sum(len(r.console_errors) for r in runs)}")


def _local(dist: Path, base: str, req: str) -> Path:
    rel = req[len(base):] or "index.html"
    return dist / rel


if __name__ == "__main__":
    main()
