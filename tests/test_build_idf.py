"""The ESP-IDF backend: against the stand-in idf.py (fast tier), and against the real ESP-IDF v5.5.5 in
../shared (the linux firmware built once per session by the `linux_firmware` fixture, then run)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from rtflash.boards import load_catalog
from rtflash.builder import build_board, choose
from rtflash.builder.progress import first_error, parse_step
from rtflash.errors import ConfigError, ToolFailed, ToolNotFound
from rtflash.settings import Settings
from testkit.shared import SHARED_DEPS


def board(name: str):
    return load_catalog().get(name)


def test_full_build_then_noop(project, fake_idf, monkeypatch):
    log = project / "argv.log"
    monkeypatch.setenv("FAKE_IDF_LOG", str(log))
    lines: list[str] = []
    artifacts = build_board(board("sonatino"), Settings(), project, "idf", lines.append)
    assert [r.name for r in artifacts.regions] == ["bootloader", "partition-table", "otadata", "app"]
    assert artifacts.app.offset == 0x20000 and artifacts.chip == "esp32s3" and artifacts.flash_size == "8MB"
    assert artifacts.elf.name == "rtflash_firmware.elf"
    assert "Executing action: all (aliases: build)" in lines and any(parse_step(x) for x in lines)
    argv = json.loads(log.read_text().splitlines()[0])
    build_dir = project / "build" / "sonatino"
    assert argv[argv.index("-B") + 1] == str(build_dir) and argv[-1] == "build"
    defaults = next(a for a in argv if a.startswith("-DSDKCONFIG_DEFAULTS="))
    assert defaults.endswith(f"firmware-src/sdkconfig.defaults;{build_dir}/config/sdkconfig.defaults")
    config_mtime = (build_dir / "config" / "sdkconfig.defaults").stat().st_mtime_ns
    app_mtime = artifacts.app.path.stat().st_mtime_ns
    again: list[str] = []
    build_board(board("sonatino"), Settings(), project, "idf", again.append)
    assert "ninja: no work to do." in again and not any("Running cmake" in x for x in again)
    assert (build_dir / "config" / "sdkconfig.defaults").stat().st_mtime_ns == config_mtime
    assert artifacts.app.path.stat().st_mtime_ns == app_mtime
    assert len(list((build_dir / "log").glob("build-*-idf.log"))) >= 1


def test_compile_error_names_file_line_and_log(project, fake_idf, monkeypatch):
    monkeypatch.setenv("FAKE_IDF_FAIL", "compile")
    with pytest.raises(ToolFailed) as err:
        build_board(board("freenove-s3"), Settings(), project, "idf")
    message = str(err.value)
    assert "main.c:12: 'undeclared_thing' undeclared" in message and "full log:" in message
    log = Path(message.rsplit("full log: ", 1)[1].rstrip(")"))
    assert "ninja: build stopped" in log.read_text()


def test_app_too_large(project, fake_idf, monkeypatch):
    monkeypatch.setenv("FAKE_IDF_FAIL", "too-large")
    with pytest.raises(ToolFailed, match="app partition is too small"):
        build_board(board("sonatino"), Settings(), project, "idf")


def test_target_mismatch_offers_clean(project, fake_idf):
    build_dir = project / "build" / "sonatino"
    build_dir.mkdir(parents=True)
    (build_dir / "sdkconfig").write_text('CONFIG_IDF_TARGET="esp32"\n')
    (build_dir / "log").mkdir()
    (build_dir / "log" / "old.log").write_text("keep me")
    (build_dir / "nvs.bin").write_bytes(b"credentials from an older rtflash")
    with pytest.raises(ConfigError, match="configured for esp32, board sonatino is esp32s3; rerun with --clean"):
        build_board(board("sonatino"), Settings(), project, "idf")
    build_board(board("sonatino"), Settings(), project, "idf", clean_first=True)
    assert (build_dir / "log" / "old.log").read_text() == "keep me"
    assert not (build_dir / "nvs.bin").exists(), "a clean build dir holds no credentials"


def test_linux_target(project, fake_idf):
    if not (shutil.which("cc") or shutil.which("gcc")):
        pytest.skip("no host C compiler: the stand-in builds the linux ELF with it")
    artifacts = build_board(board("linux"), Settings(), project, "idf")
    assert artifacts.chip == "linux" and artifacts.regions == () and artifacts.elf.is_file()
    desc = json.loads((project / "build" / "linux" / "project_description.json").read_text())
    assert desc["build_type"] == "ram_app" and desc["target"] == "linux"
    assert not (project / "build" / "linux" / "flasher_args.json").exists()


def test_old_esp_idf_refused(project, tmp_path, monkeypatch):
    from testkit.shared import install_fake_idf

    for key, value in install_fake_idf(tmp_path / "old", "5.1.2").items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ToolNotFound, match="ESP-IDF v5.1.2 is too old"):
        build_board(board("sonatino"), Settings(), project, "idf")


def test_no_tool_at_all(project, monkeypatch, tmp_path):
    monkeypatch.delenv("IDF_PATH", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    from rtflash.builder import pio

    monkeypatch.setattr(pio, "pio_path", lambda: (_ for _ in ()).throw(ToolNotFound("pio not found")))
    with pytest.raises(ToolNotFound, match="no build tool usable: idf.py not found.*pio not found"):
        choose("auto", board("sonatino"))


def test_auto_prefers_idf(fake_idf):
    assert choose("auto", board("sonatino")).name == "idf"


def test_idf_without_the_xtensa_compiler_says_the_install_step_and_auto_takes_pio(fake_idf, project, monkeypatch):
    """ESP-IDF active (idf.py, IDF_PATH) but export.sh never put xtensa-esp32s3-elf-gcc on PATH: --backend
    idf is one line naming the compiler and both fixes; auto builds with PlatformIO, which can; linux
    (host gcc) still goes to ESP-IDF."""
    from rtflash.builder import pio

    (Path(fake_idf["PATH"].split(os.pathsep)[0]) / "xtensa-esp32s3-elf-gcc").unlink()
    # and none elsewhere on PATH either (test_firmware_xtensa's session fixture puts the stand-in's there)
    monkeypatch.setenv("PATH", os.pathsep.join(d for d in os.environ["PATH"].split(os.pathsep)
                                               if not (Path(d) / "xtensa-esp32s3-elf-gcc").exists()))
    with pytest.raises(ToolNotFound) as err:
        build_board(board("sonatino"), Settings(), project, "idf")
    line = str(err.value)
    assert "\n" not in line and "xtensa-esp32s3-elf-gcc is not on PATH" in line
    assert "`$IDF_PATH/install.sh esp32s3`" in line and "idf_tools.py install" in line
    assert "--backend pio, which installs its own toolchain" in line
    monkeypatch.setattr(pio, "pio_path", lambda: "/usr/bin/pio")
    assert choose("auto", board("sonatino")).name == "pio"
    assert choose("auto", board("linux")).name == "idf"
    monkeypatch.setattr(pio, "pio_path", lambda: (_ for _ in ()).throw(ToolNotFound("pio not found")))
    with pytest.raises(ToolNotFound, match="no build tool usable: ESP-IDF is active but its esp32s3 toolchain"):
        choose("auto", board("sonatino"))


def test_progress_parsing():
    assert parse_step("[12/345] Building C object x.obj").done == 12
    assert parse_step("Running ninja") is None
    lines = ["FAILED: x", "/p/main/a.c:7:3: error: expected ';'", "/p/b.c:9: error: later"]
    assert first_error(lines) == "/p/main/a.c:7: expected ';'"
    assert first_error(["Target settings are not consistent: 'a' vs 'b'"]).startswith("Target settings")
    assert first_error(["all fine"]) is None


def test_project_folder_reconfigure_and_deps_dir_argv(project, fake_idf, monkeypatch, tmp_path):
    """idf.py runs on the rendered project folder (never firmware-src), RT_DEPS_DIR is passed on every run
    (empty without --deps-dir, so a cached one never sticks), and action="reconfigure" only configures."""
    log = project / "argv.log"
    monkeypatch.setenv("FAKE_IDF_LOG", str(log))
    deps = tmp_path / "deps"
    (deps / "components").mkdir(parents=True)
    assert build_board(board("sonatino"), Settings(), project, "idf", deps_dir=deps, action="reconfigure") is None
    build_board(board("sonatino"), Settings(), project, "idf")
    first, second = (json.loads(line) for line in log.read_text().splitlines())
    build_dir = project / "build" / "sonatino"
    assert first[first.index("-C") + 1] == str(build_dir / "project") and first[-1] == "reconfigure"
    assert f"-DRT_DEPS_DIR={deps.resolve()}" in first
    assert "-DRT_DEPS_DIR=" in second and second[-1] == "build"
    assert (build_dir / "project" / "CMakeLists.txt").is_file()
    with pytest.raises(ConfigError, match="unknown idf.py action 'flash'"):
        build_board(board("sonatino"), Settings(), project, "idf", action="flash")


def test_build_env_turns_component_manager_off_only_with_local_components(tmp_path):
    from rtflash.builder.idf import build_env

    linux = board("linux")
    assert build_env(linux, None) == {"IDF_TARGET": "linux"}
    assert "IDF_COMPONENT_MANAGER" not in build_env(linux, tmp_path)
    (tmp_path / "components").mkdir()
    assert build_env(linux, tmp_path) == {"IDF_TARGET": "linux", "RTFLASH_DEPS_DIR": str(tmp_path),
                                          "IDF_COMPONENT_MANAGER": "0"}


def test_clean_keeps_the_project_folder(project, fake_idf):
    build_board(board("sonatino"), Settings(), project, "idf")
    build_board(board("sonatino"), Settings(), project, "idf", clean_first=True)
    assert (project / "build" / "sonatino" / "project" / "CMakeLists.txt").is_file()


# ---- The real ESP-IDF v5.5.5 from ../shared (CI has it): the linux firmware built and run ----

LINUX_COMPONENTS = {"main", "rt_core", "rt_audio", "rt_opus", "rt_session", "peer", "78__esp-opus", "sepfy__srtp",
                    "esp-tls", "freertos", "mbedtls"}


def latest_log(build_dir: Path) -> str:
    return max((build_dir / "log").glob("build-*-idf.log"), key=lambda p: p.stat().st_mtime_ns).read_text()


def test_real_linux_build(linux_firmware):
    """`rtflash build --board linux --deps-dir ../shared/deps` from scratch, offline: a host ELF, only the
    components the firmware needs, registry components from DIR/components, firmware-src untouched."""
    from rtflash.resources import firmware_dir

    fw = linux_firmware
    assert fw.elf.is_file() and os.access(fw.elf, os.X_OK) and "built linux" in fw.output
    desc = json.loads((fw.build_dir / "project_description.json").read_text())
    assert desc["target"] == "linux" and Path(desc["project_path"]) == fw.build_dir / "project"
    components = set(desc["build_components"]) - {""}
    assert LINUX_COMPONENTS <= components
    assert not components & {"esp_wifi", "bt", "esp_http_server", "lwip", "esp_netif"}, components
    assert len(components) <= 30, f"{len(components)} components built: {sorted(components)}"
    cache = (fw.build_dir / "CMakeCache.txt").read_text()
    assert f"RT_DEPS_DIR:UNINITIALIZED={SHARED_DEPS}" in cache or f"RT_DEPS_DIR:PATH={SHARED_DEPS}" in cache
    log = latest_log(fw.build_dir)
    assert f"dependencies from {SHARED_DEPS}" in log
    firmware = firmware_dir()
    for written in ("dependencies.lock", "managed_components", "build", "sdkconfig", "sdkconfig.old"):
        path = firmware / written   # what ESP-IDF writes into a project dir: never firmware-src
        assert not path.exists() or path.stat().st_mtime < fw.started, f"{path} written by the build"
    assert not (fw.build_dir / "project" / "managed_components").exists()
    ours = [ln for ln in log.splitlines() if "warning:" in ln and str(firmware) in ln]
    assert ours == [], "firmware-src compiles without warnings"


def test_real_linux_noop_rebuild(linux_firmware, rtflash_exe):
    import subprocess

    fw = linux_firmware
    before = fw.elf.stat().st_mtime_ns
    done = subprocess.run([rtflash_exe, "build", "--board", "linux", "--deps-dir", str(SHARED_DEPS)], check=False,
                          cwd=fw.project,
                          env=fw.env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    log = latest_log(fw.build_dir)
    assert "ninja: no work to do." in log and "Running cmake" not in log, "an unchanged tree neither reconfigures"
    assert fw.elf.stat().st_mtime_ns == before


def symlink_farm(path: Path) -> Path:
    """A deps dir that is not ../shared/deps itself (its entries link there)."""
    path.mkdir()
    for entry in SHARED_DEPS.iterdir():
        (path / entry.name).symlink_to(entry)
    return path


def test_real_deps_dir_always_wins_over_the_cache(real_idf, shared_deps, project, tmp_path, monkeypatch):
    """-DRT_DEPS_DIR on every configure: a later --deps-dir replaces an earlier one, and a run without it
    goes back to the default ($RTFLASH_DEPS_DIR here) instead of keeping the old explicit dir."""
    a, b, c = (symlink_farm(tmp_path / n) for n in ("a", "b", "c"))
    linux = board("linux")
    build_dir = project / "build" / "linux"
    for deps, expect in ((a, a), (b, b), (None, c)):
        if deps is None:
            monkeypatch.setenv("RTFLASH_DEPS_DIR", str(c))
        lines: list[str] = []
        build_board(linux, Settings(), project, "idf", lines.append, deps_dir=deps, action="reconfigure")
        assert any(f"dependencies from {expect}" in ln for ln in lines), lines[-20:]
        cache = (build_dir / "CMakeCache.txt").read_text()
        assert f"RT_DEPS_DIR:UNINITIALIZED={deps or ''}\n" in cache


class SignallingServer:
    """A Realtime API stand-in on 127.0.0.1: records each POST and answers an API error (HTTP 400)."""

    def __init__(self, pki) -> None:
        import http.server
        import threading

        self.posts: list[dict] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.posts.append({"path": self.path, "headers": dict(self.headers), "body": body})
                reply = json.dumps({"error": {"message": "stand-in refuses", "type": "invalid_request_error",
                                              "code": "test", "param": None}}).encode()
                self.send_response(400)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.socket = pki.server_context().wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.httpd.server_address[1]}/v1/realtime/calls"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_real_exec_sends_the_offer_and_backs_off(linux_firmware, rtflash_exe, tmp_path):
    """`rtflash exec` runs the linux firmware: settings from the environment, no Wi-Fi, the SDP offer
    POSTed (to 127.0.0.1 only), a clean back-off after the API error, no error spam, no build paths."""
    import signal
    import subprocess
    import time

    from testkit.realtime_standin import make_pki

    fw = linux_firmware
    pki = make_pki(tmp_path / "pki")
    server = SignallingServer(pki)   # https only: the firmware sends the key over verified TLS, never plain http
    key = "sk-test-" + "k" * 40
    out = tmp_path / "exec.log"
    env = {**fw.env, "OPENAI_API_KEY": key, "RTFLASH_API_URL": server.url, "RTFLASH_CA_FILE": str(pki.ca_file),
           "RTFLASH_MODEL": "gpt-realtime"}
    try:
        with out.open("wb") as sink:
            proc = subprocess.Popen([rtflash_exe, "exec", "--board", "linux"], cwd=fw.project, env=env,
                                    stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
            try:
                deadline = time.monotonic() + 30
                while len(server.posts) < 2 and time.monotonic() < deadline and proc.poll() is None:
                    time.sleep(0.1)
                time.sleep(0.3)
            finally:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)
    finally:
        server.close()
    text = out.read_text(errors="replace")
    assert len(server.posts) >= 2, f"offer not sent twice (one retry) within 30 s:\n{text[-3000:]}"
    post = server.posts[0]
    assert post["path"] == "/v1/realtime/calls?model=gpt-realtime"
    assert post["headers"]["Content-Type"] == "application/sdp"
    assert post["headers"]["Authorization"] == f"Bearer {key}"
    sdp = post["body"].decode()
    assert sdp.startswith("v=0\r\n") and "\r\nm=audio " in sdp and "a=fingerprint:sha-256 " in sdp
    assert "a=rtpmap:111 opus/48000/2" in sdp and "webrtc-datachannel" in sdp
    assert f"api_url: {server.url}" in text and "api_key: present" in text
    assert "wifi" not in text.lower(), "the linux target skips Wi-Fi"
    assert "signalling failed: HTTP 400" in text and "stand-in refuses" in text
    assert "reconnecting in" in text
    assert "ESP_ERR_INVALID_STATE" not in text and "Failed to post" not in text
    # libpeer's log goes through the session's capped log (tag libpeer, LOG_REDIRECT): its INFO chatter
    # is debug now, never its raw printf lines ("INFO\t<file>\t<line>")
    assert not any(".c\t" in ln or ln.startswith(("INFO\t", "ERROR\t", "WARN\t")) for ln in text.splitlines())
    assert not any("libpeer: " in ln and "Datachannel allocates heap size" in ln for ln in text.splitlines())
    assert not any(str(fw.build_dir) in ln or "libpeer-src" in ln for ln in text.splitlines())
    assert key not in text, "the key is never logged"
