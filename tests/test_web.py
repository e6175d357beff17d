"""`rtflash ci --web` and `rtflash web`: the ESP Web Tools install page, vendored, served, in a real browser.

The page is built by the installed `rtflash ci --web` from the stand-in idf.py's images (merged by
esptool), with ESP Web Tools vendored from the pinned npm tarball that .ci/run fetches. A real headless
Chromium (Debian's) then loads it from `rtflash web`'s server on 127.0.0.1: every board listed, each
install button upgraded by the custom element, every manifest fetched (200) and parsed, no console
error, no request to any other origin. The screenshot goes to .cache/artifacts/ (CI keeps it).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import threading
import urllib.request
from pathlib import Path

import pytest

from rtflash import web
from rtflash.errors import ConfigError
from testkit import chromium
from testkit.shared import need_installed

REPO = Path(__file__).resolve().parent.parent
TARBALL = REPO / ".cache" / "npm" / web.tarball_name()
ARTIFACTS = REPO / ".cache" / "artifacts"
BOARDS = ["sonatino", "esp32-s3-box-3", "atoms3r-echo", "freenove-s3", "linux"]


@pytest.fixture(scope="module")
def tarball() -> Path:
    need_installed(TARBALL.is_file(), f"{TARBALL} missing (`{web.npm_hint(TARBALL.parent)}`)")
    return TARBALL


def run(exe, *args, cwd, env=None, timeout=300):
    return subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


@pytest.fixture
def site(rtflash_exe, project, fake_idf, tarball) -> Path:
    result = run(rtflash_exe, "ci", "--boards", ",".join(BOARDS), "--out", "dist", "--web", cwd=project,
                 env={web.ENV_TARBALL: str(tarball)})
    assert result.returncode == 0, result.stderr
    assert "install page:" in result.stderr
    return project / "dist"


def test_page_lists_every_board_with_its_manifest_and_vendored_module(site: Path):
    html = (site / "index.html").read_text()
    for board in BOARDS:
        assert f'data-board="{board}"' in html
    installable = [b for b in BOARDS if b != "linux"]
    assert re.findall(r'<esp-web-install-button manifest="([^"]+)"', html) == [f"{b}/manifest.json" for b in installable]
    for board in installable:
        manifest = json.loads((site / board / "manifest.json").read_text())
        assert manifest["new_install_prompt_erase"] is True and manifest["version"]
        build = manifest["builds"][0]
        assert build["chipFamily"] == "ESP32-S3" and build["parts"] == [{"path": f"{board}-factory.bin", "offset": 0}]
        image = site / board / f"{board}-factory.bin"
        sums = dict(reversed(line.split("  ")) for line in (site / board / "SHA256SUMS").read_text().splitlines())
        assert sums[image.name] in html and f"{image.stat().st_size:,} bytes" in html
    # nothing off-origin: every src/href is relative (or a data: favicon), and the CSP says so too
    for url in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert not re.match(r"^[a-z]+:", url) or url == "data:,", url
    assert "default-src 'self'" in html and "connect-src 'self'" in html
    assert 'src="esp-web-tools/install-button.js"' in html
    vendored = sorted(p.name for p in (site / "esp-web-tools").iterdir())
    assert "install-button.js" in vendored and "LICENSE" in vendored and len(vendored) > 10
    assert "Improv" in html and "erases any Wi-Fi password and API key" in html and "Chrome" in html
    assert (site / ".nojekyll").is_file()


def test_factory_image_blanks_the_nvs_partition(site: Path):
    """What the page promises: a browser install (the merged image from 0) leaves no old key in NVS."""
    import struct

    for board in ("sonatino", "esp32-s3-box-3"):
        table = (site / board / "partition-table-0x8000.bin").read_bytes()
        entries = [struct.unpack_from("<HBBII16sI", table, i) for i in range(0, len(table) - 31, 32)]
        nvs = [(off, size) for magic, _t, _s, off, size, name, _f in entries
               if magic == 0x50AA and name.rstrip(b"\0") == b"nvs"]
        assert len(nvs) == 1, entries
        offset, size = nvs[0]
        image = (site / board / f"{board}-factory.bin").read_bytes()
        assert len(image) > offset + size
        assert image[offset:offset + size] == b"\xff" * size


def test_ci_web_refuses_a_missing_or_altered_tarball_before_building(rtflash_exe, project, fake_idf, tarball,
                                                                     tmp_path: Path):
    missing = run(rtflash_exe, "ci", "--boards", "sonatino", "--web", "--esp-web-tools", str(tmp_path / "no.tgz"),
                  cwd=project)
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    errors = [ln for ln in missing.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "npm pack esp-web-tools@" in errors[0], missing.stderr
    assert not (project / "dist").exists() and "building" not in missing.stderr
    altered = tmp_path / web.tarball_name()
    altered.write_bytes(tarball.read_bytes() + b"\0")
    bad = run(rtflash_exe, "ci", "--boards", "sonatino", "--web", "--esp-web-tools", str(altered), cwd=project)
    assert bad.returncode == 1 and "is not the pinned esp-web-tools" in bad.stderr
    assert not (project / "dist").exists()


def test_vendor_takes_only_the_browser_build(tmp_path: Path, tarball: Path, monkeypatch):
    """A tarball with the pinned hash is vendored; members outside dist/web (or with ../) are not."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, body in [("package/dist/web/install-button.js", b"x"), ("package/../evil.js", b"bad"),
                           ("package/dist/web/sub/deep.js", b"no"), ("package/LICENSE", b"Apache")]:
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    fake = tmp_path / "fake.tgz"
    fake.write_bytes(buf.getvalue())
    monkeypatch.setattr(web, "ESP_WEB_TOOLS_SHA256", __import__("hashlib").sha256(buf.getvalue()).hexdigest())
    out = tmp_path / "dist"
    out.mkdir()
    assert web.vendor(fake, out) == ["esp-web-tools/LICENSE", "esp-web-tools/install-button.js"]
    assert not (tmp_path / "evil.js").exists()
    assert gzip.decompress(fake.read_bytes())  # a real gzip stream


def test_web_without_a_page_is_one_line(rtflash_exe, project):
    result = run(rtflash_exe, "web", "--dist", "nowhere", "--port", "0", cwd=project, timeout=30)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "index.html not found: run `rtflash ci --web" in result.stderr
    with pytest.raises(ConfigError, match="run `rtflash ci` first"):
        web.page_boards(project, None)


def _serve(rtflash_exe: str, site: Path) -> tuple[subprocess.Popen, str]:
    """`rtflash web --port 0` as a process; returns it and the URL it printed."""
    proc = subprocess.Popen([rtflash_exe, "web", "--dist", str(site), "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    url = proc.stdout.readline().strip()
    assert url.startswith("http://127.0.0.1:"), url + proc.stderr.read()
    return proc, url


def test_rtflash_web_serves_the_page_and_manifests_on_loopback(rtflash_exe, site: Path):
    proc, url = _serve(rtflash_exe, site)
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            assert resp.status == 200 and b"esp-web-install-button" in resp.read()
        with urllib.request.urlopen(url + "sonatino/manifest.json", timeout=10) as resp:
            assert resp.headers["Content-Type"] == "application/json"
            assert json.loads(resp.read())["builds"][0]["chipFamily"] == "ESP32-S3"
        with urllib.request.urlopen(url + "esp-web-tools/install-button.js", timeout=10) as resp:
            assert resp.headers["Content-Type"].startswith("text/javascript")
    finally:
        proc.terminate()
        proc.wait(10)


def test_headless_chromium_loads_the_page_and_every_button_is_upgraded(rtflash_exe, site: Path):
    need_installed(chromium.chromium_path() is not None, "chromium is not installed (apt-get install chromium)")
    proc, url = _serve(rtflash_exe, site)
    try:
        page = chromium.load_page(url)
    finally:
        proc.terminate()
        proc.wait(10)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "install-page.png").write_bytes(page.screenshot)
    assert page.screenshot.startswith(b"\x89PNG")
    ready = page.ready
    assert not ready.get("timeout"), ready
    assert ready["boards"] == BOARDS
    assert ready["secure"] is True  # 127.0.0.1 counts as a secure context: Web Serial is allowed there
    installable = [b for b in BOARDS if b != "linux"]
    assert [b["manifest"] for b in ready["buttons"]] == [f"{b}/manifest.json" for b in installable]
    for button in ready["buttons"]:
        assert button["shadow"], button
        # with Web Serial the element renders its Connect button; without, its "unsupported" slot
        assert ("Connect" in button["shadowHtml"]) if button["supported"] else ("unsupported" in button["shadowHtml"])
    for manifest in page.manifests:
        assert manifest["status"] == 200 and not manifest["error"], manifest
        assert manifest["parsed"]["builds"][0]["chipFamily"] == "ESP32-S3"
    assert page.console_errors == []
    origin = url.rstrip("/")
    assert page.requests and all(r.startswith(origin + "/") for r in page.requests), page.requests
    assert any(r.endswith("/esp-web-tools/install-button.js") for r in page.requests)
    (ARTIFACTS / "install-page.json").write_text(json.dumps(
        {"url": url, "requests": page.requests, "load_to_ready_ms": page.load_to_ready_ms,
         "serial": ready["serial"], "python": sys.version.split()[0]}, indent=2))


def test_serving_stops_cleanly_in_process(site: Path):
    server = web.make_server(site, 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/../../etc/passwd", timeout=10) as resp:
            assert b"root:" not in resp.read()  # the handler maps paths inside dist/ only
    except urllib.error.HTTPError as exc:
        assert exc.code == 404
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_page_only_from_merged_ci_artifacts(rtflash_exe, site: Path, tarball: Path):
    """The Pages job: each board's CI job uploads dist/<board>/; merged, there is no one index.json."""
    (site / "index.json").unlink()
    (site / "index.html").unlink()
    result = run(rtflash_exe, "web", "--dist", str(site), "--page-only", "--esp-web-tools", str(tarball),
                 cwd=site.parent)
    assert result.returncode == 0, result.stderr
    html = (site / "index.html").read_text()
    assert re.findall(r'data-board="([^"]+)"', html) == ["atoms3r-echo", "esp32-s3-box-3", "freenove-s3", "linux",
                                                          "sonatino"]
    assert len(re.findall(r"<esp-web-install-button ", html)) == 4
