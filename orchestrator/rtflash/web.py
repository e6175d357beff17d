"""`rtflash ci --web` and `rtflash web`: the ESP Web Tools install page in dist/.

Why: someone without Python or ESP-IDF installs the firmware from a browser (ESP Web Tools over Web
Serial), then sets Wi-Fi through Improv Serial. The page is static (GitHub Pages or any host) and
self-contained: the ESP Web Tools module is vendored into dist/ from the npm package's tarball,
pinned by version and SHA-256 here (.ci/run fetches it with `npm pack`), never loaded from a CDN,
and a Content-Security-Policy keeps every request on the page's own origin.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

from rtflash.errors import ConfigError

# The pinned npm package (`npm pack esp-web-tools@VERSION`); .ci/run reads these two lines.
ESP_WEB_TOOLS_VERSION = "10.4.0"
ESP_WEB_TOOLS_SHA256 = "f18da75335d2f0dca044c4bb052848c0696e7b03cc23d61d8530dd6eba0a9008"
VENDOR_DIR = "esp-web-tools"  # inside dist/
ENV_TARBALL = "RTFLASH_ESP_WEB_TOOLS"


def tarball_name() -> str:
    return f"esp-web-tools-{ESP_WEB_TOOLS_VERSION}.tgz"


def npm_hint(dest: Path) -> str:
    return f"npm pack esp-web-tools@{ESP_WEB_TOOLS_VERSION} --pack-destination {dest}"


def find_tarball(project_dir: Path, given: Path | None = None) -> Path:
    """The pinned tarball: --esp-web-tools, $RTFLASH_ESP_WEB_TOOLS, else <project>/.cache/npm/."""
    path = given or (Path(os.environ[ENV_TARBALL]) if os.environ.get(ENV_TARBALL) else None)
    path = path or project_dir / ".cache" / "npm" / tarball_name()
    if not path.is_file():
        raise ConfigError(f"ESP Web Tools {ESP_WEB_TOOLS_VERSION} not found at {path}: run "
                          f"`{npm_hint(path.parent)}` (.ci/run does), or pass --esp-web-tools FILE")
    return path


def verify_tarball(path: Path) -> bytes:
    """The tarball's bytes, refused unless they hash to the pinned SHA-256."""
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != ESP_WEB_TOOLS_SHA256:
        raise ConfigError(f"{path}: SHA-256 {digest[:16]}... is not the pinned esp-web-tools "
                          f"{ESP_WEB_TOOLS_VERSION} ({ESP_WEB_TOOLS_SHA256[:16]}...); fetch it again with "
                          f"`{npm_hint(path.parent)}`")
    return data


def vendor(tarball: Path, out_dir: Path) -> list[str]:
    """Copy the package's browser build (dist/web/*.js) and its LICENSE into out_dir/esp-web-tools/."""
    import io
    import shutil
    import tempfile

    from rtflash.files import write_atomic

    data = verify_tarball(tarball)
    wanted: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar.getmembers():
            name = member.name
            leaf = name.rsplit("/", 1)[-1]
            is_web = name.startswith("package/dist/web/") and name.count("/") == 3 and leaf.endswith(".js")
            if member.isfile() and (is_web or name == "package/LICENSE"):
                wanted[leaf] = tar.extractfile(member).read()
    if "install-button.js" not in wanted:
        raise ConfigError(f"{tarball}: no dist/web/install-button.js in the package")
    dest = out_dir / VENDOR_DIR
    stage = Path(tempfile.mkdtemp(prefix=".esp-web-tools.", dir=out_dir))
    try:
        for leaf, body in wanted.items():
            write_atomic(stage / leaf, body, mode=0o644)
        if dest.exists():
            shutil.rmtree(dest)
        stage.rename(dest)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return sorted(f"{VENDOR_DIR}/{leaf}" for leaf in wanted)


@dataclass(frozen=True)
class PageBoard:
    """One row of the page. manifest is "" for boards a browser cannot install (linux, failed)."""

    name: str
    chip: str
    description: str = ""
    flash_size: str = ""
    version: str = ""
    image: str = ""
    image_bytes: int = 0
    sha256: str = ""
    manifest: str = ""
    error: str = ""


def _sums(board_dir: Path) -> dict[str, str]:
    sums = {}
    path = board_dir / "SHA256SUMS"
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            digest, _, name = line.partition("  ")
            sums[name] = digest
    return sums


def _index_from_dirs(out_dir: Path, catalog) -> dict:
    """No index.json (artifacts of several CI jobs merged into one dist/): each <board>/SHA256SUMS is a build."""
    found = [d.name for d in out_dir.iterdir() if d.is_dir() and (d / "SHA256SUMS").is_file()] \
        if out_dir.is_dir() else []
    if not found:
        return {"boards": []}
    order = {name: i for i, name in enumerate(catalog.names())}
    boards = []
    for name in sorted(found, key=lambda n: (order.get(n, len(order)), n)):
        try:
            chip = catalog.get(name).chip
        except Exception:  # a board unknown to this checkout: listed with what its manifest says
            chip = ""
        boards.append({"board": name, "chip": chip, "ok": True})
    return {"boards": boards}


def page_boards(out_dir: Path, catalog) -> list[PageBoard]:
    """The boards of dist/index.json (else of dist/*/SHA256SUMS), with each board's manifest and sums."""
    index_path = out_dir / "index.json"
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        index = _index_from_dirs(out_dir, catalog)
        if not index["boards"]:
            raise ConfigError(f"{out_dir}: no index.json and no <board>/SHA256SUMS; run `rtflash ci` first") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{index_path}: {getattr(exc, 'strerror', None) or exc}; run `rtflash ci` first") from None
    rows = []
    for entry in index.get("boards", []):
        name = entry["board"]
        try:
            board = catalog.get(name)
            description, flash = board.description, board.flash_size
        except Exception:  # a board file removed since the build: the page still lists what was built
            description, flash = "", ""
        if not entry.get("ok"):
            rows.append(PageBoard(name, entry.get("chip", ""), description, flash, error=entry.get("error", "")))
            continue
        manifest_path = out_dir / name / "manifest.json"
        if not manifest_path.is_file():
            rows.append(PageBoard(name, entry.get("chip", ""), description, flash))
            continue
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            image = manifest["builds"][0]["parts"][0]["path"]
        except (ValueError, KeyError, IndexError) as exc:
            raise ConfigError(f"{manifest_path}: not an ESP Web Tools manifest ({exc}); run `rtflash ci` again") from None
        image_path = out_dir / name / image
        rows.append(PageBoard(name, entry.get("chip", ""), description, flash, manifest.get("version", ""), image,
                              image_path.stat().st_size if image_path.is_file() else 0,
                              _sums(out_dir / name).get(image, ""), f"{name}/manifest.json"))
    return rows


def render_page(rows: list[PageBoard]) -> str:
    """index.html, autoescaped (board descriptions and errors are text, not markup)."""
    import jinja2

    from rtflash import __version__
    from rtflash.resources import templates_dir

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates_dir() / "web")),
                             undefined=jinja2.StrictUndefined, autoescape=True, trim_blocks=True, lstrip_blocks=True)
    return env.get_template("index.html.j2").render(
        boards=rows, rtflash_version=__version__, ewt_version=ESP_WEB_TOOLS_VERSION, vendor=VENDOR_DIR)


def write_page(out_dir: Path, catalog, tarball: Path) -> list[str]:
    """Vendor ESP Web Tools and write index.html; returns the files written, relative to out_dir."""
    from rtflash.files import write_atomic

    rows = page_boards(out_dir, catalog)
    files = vendor(tarball, out_dir)
    write_atomic(out_dir / "index.html", render_page(rows), mode=0o644)
    # GitHub Pages: serve the files as they are (no Jekyll processing of the vendored names)
    write_atomic(out_dir / ".nojekyll", "", mode=0o644)
    return ["index.html", *files]


def make_server(dist: Path, port: int = 0):
    """A threaded static server for dist/ on 127.0.0.1 (port 0: any free port); the caller serves it."""
    import functools
    import http.server

    index = dist / "index.html"
    if not index.is_file():
        raise ConfigError(f"{index} not found: run `rtflash ci --web --out {dist}` first")

    class Handler(http.server.SimpleHTTPRequestHandler):
        extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                          ".js": "text/javascript", ".json": "application/json", ".bin": "application/octet-stream"}

        def end_headers(self) -> None:
            self.send_header("Cache-Control", "no-cache")
            super().end_headers()

        def log_message(self, format: str, *args) -> None:  # noqa: A002 (the stdlib's name)
            pass  # quiet: the CLI says where it serves; requests are not worth a line each

    handler = functools.partial(Handler, directory=str(dist))
    try:
        return http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError as exc:
        raise ConfigError(f"cannot serve on 127.0.0.1:{port}: {exc.strerror}; choose another --port") from None
