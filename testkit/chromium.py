"""Drive Debian's headless Chromium over the DevTools protocol (a websocket, with aiohttp).

Used by tests/test_web.py and bench/bench_web_page.py to load the install page from a server on
127.0.0.1 and record what the page did: every request, console errors and exceptions, the time
until each ESP Web Tools button was upgraded, and a screenshot. The browser runs with a fresh
profile, its background networking off and a host resolver that resolves nothing, so nothing but the
local server is ever contacted.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from testkit.shared import stop_process

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions",
    "--disable-default-apps", "--disable-domain-reliability", "--disable-client-side-phishing-detection",
    "--disable-breakpad", "--metrics-recording-only", "--no-pings", "--mute-audio", "--hide-scrollbars",
    "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication,InterestFeedContentSuggestions",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--window-size=1100,1400",
]

# Waits until every <esp-web-install-button> has its shadow root and says whether it is supported.
READY_JS = """
new Promise((resolve) => {
  const t0 = performance.now();
  const check = () => {
    const buttons = [...document.querySelectorAll('esp-web-install-button')];
    const ready = buttons.filter(b => b.shadowRoot &&
      (b.hasAttribute('install-supported') || b.hasAttribute('install-unsupported')));
    if (customElements.get('esp-web-install-button') && ready.length === buttons.length) {
      resolve(JSON.stringify({
        readyMs: performance.now(), waitedMs: performance.now() - t0,
        navStartToLoad: performance.timing.loadEventEnd - performance.timing.navigationStart,
        buttons: buttons.map(b => ({manifest: b.getAttribute('manifest'), shadow: !!b.shadowRoot,
          supported: b.hasAttribute('install-supported'),
          shadowHtml: b.shadowRoot ? b.shadowRoot.innerHTML.slice(0, 200) : ''})),
        boards: [...document.querySelectorAll('article.board')].map(a => a.dataset.board),
        serial: 'serial' in navigator, secure: window.isSecureContext}));
    } else if (performance.now() - t0 > 15000) {
      resolve(JSON.stringify({timeout: true, buttons: buttons.length, ready: ready.length}));
    } else { setTimeout(check, 5); }
  };
  check();
})
"""

MANIFESTS_JS = """
Promise.all([...document.querySelectorAll('esp-web-install-button')].map(async b => {
  const url = new URL(b.getAttribute('manifest'), location.href).href;
  const r = await fetch(url);
  let parsed = null, error = '';
  try { parsed = await r.json(); } catch (e) { error = String(e); }
  return {url, status: r.status, parsed, error};
})).then(x => JSON.stringify(x))
"""


def chromium_path() -> str | None:
    """$RTFLASH_CHROMIUM, else Debian's chromium (what .ci/run installs), else a Chrome on PATH."""
    import os

    return (os.environ.get("RTFLASH_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
            or shutil.which("google-chrome"))


@dataclass
class PageRun:
    url: str
    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    ready: dict = field(default_factory=dict)
    manifests: list[dict] = field(default_factory=list)
    screenshot: bytes = b""
    load_to_ready_ms: float = 0.0


class _Cdp:
    def __init__(self, ws) -> None:
        self.ws, self.next_id, self.pending, self.events = ws, 0, {}, []

    async def pump(self) -> None:
        async for msg in self.ws:
            data = json.loads(msg.data)
            if "id" in data and data["id"] in self.pending:
                self.pending.pop(data["id"]).set_result(data)
            else:
                self.events.append(data)

    async def call(self, method: str, timeout: float = 30, **params) -> dict:
        self.next_id += 1
        fut = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = fut
        await self.ws.send_str(json.dumps({"id": self.next_id, "method": method, "params": params}))
        reply = await asyncio.wait_for(fut, timeout)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})


async def _drive(exe: str, url: str, profile: Path) -> PageRun:
    import aiohttp

    import os

    env = {**os.environ, "TMPDIR": str(profile)}  # its own temp files go with the profile
    proc = subprocess.Popen([exe, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
                             "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    run = PageRun(url)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not port_file.is_file() or len(port_file.read_text().splitlines()) < 2:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"chromium did not start (exit {proc.poll()})")
            await asyncio.sleep(0.05)
        port = port_file.read_text().splitlines()[0]
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/json/list") as resp:
                targets = await resp.json()
            page = next(t for t in targets if t.get("type") == "page")
            async with http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=64 * 1024 * 1024) as ws:
                cdp = _Cdp(ws)
                pump = asyncio.create_task(cdp.pump())
                for domain in ("Page", "Runtime", "Log", "Network"):
                    await cdp.call(f"{domain}.enable")
                start = time.perf_counter()
                await cdp.call("Page.navigate", url=url)
                while not any(e.get("method") == "Page.loadEventFired" for e in cdp.events):
                    if time.perf_counter() - start > 30:
                        raise RuntimeError("page did not load in 30 s")
                    await asyncio.sleep(0.005)
                got = await cdp.call("Runtime.evaluate", expression=READY_JS, awaitPromise=True, returnByValue=True)
                run.ready = json.loads(got["result"]["value"])
                run.load_to_ready_ms = run.ready.get("readyMs", 0.0)
                got = await cdp.call("Runtime.evaluate", expression=MANIFESTS_JS, awaitPromise=True,
                                     returnByValue=True)
                run.manifests = json.loads(got["result"]["value"])
                shot = await cdp.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
                run.screenshot = base64.b64decode(shot["data"])
                await asyncio.sleep(0.2)  # late console messages
                pump.cancel()
                for e in cdp.events:
                    method, params = e.get("method"), e.get("params", {})
                    if method == "Network.requestWillBeSent":
                        run.requests.append(params["request"]["url"])
                    elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                        run.console_errors.append(" ".join(str(a.get("value", a.get("description", "")))
                                                           for a in params.get("args", [])))
                    elif method == "Runtime.exceptionThrown":
                        run.console_errors.append(params["exceptionDetails"].get("text", "exception"))
                    elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                        run.console_errors.append(params["entry"].get("text", ""))
    finally:
        stop_process(proc, 10)
    return run


def load_page(url: str, exe: str | None = None) -> PageRun:
    """Start a fresh headless Chromium, load url, wait for the install buttons, and stop it."""
    exe = exe or chromium_path()
    if not exe:
        raise RuntimeError("chromium is not installed (apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="rtflash-chromium-") as profile:
        return asyncio.run(_drive(exe, url, Path(profile)))
