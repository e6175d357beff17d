"""The upstream OpenAI Realtime SDK (../shared/upstream-sdk) built through `rtflash --firmware`, for real.

- linux: `rtflash build --board linux --firmware COPY --bake-secrets` with a canary key, offline with
  ../shared/esp-idf; COPY is unchanged byte for byte (also after a failed build); the canary is in the
  ELF but in no output, log or error text; the ELF then starts under `rtflash exec` and POSTs its offer
  to the 127.0.0.1 Realtime stand-in. The SDK compiles in https://api.openai.com/v1/realtime?model=...;
  for that one process an LD_PRELOAD override (testkit/net_redirect.c, built here with cc) resolves
  api.openai.com as 127.0.0.1 and sends port 443 to the stand-in's port; it blocks and logs any attempt
  to reach a non-loopback address (DNS included), and the test asserts there was none. TLS: the SDK's
  own setting (CONFIG_ESP_TLS_SKIP_SERVER_CERT_VERIFY=y) means it does not check the stand-in's
  certificate; the stand-in serves the SDK's endpoint through its opt-in `legacy_endpoint` extra case.
- every ESP32-S3 board: configured through rtflash's --firmware build path, every C/C++ TU of the SDK
  compiled under the stand-in GCC and clang-22 --target=xtensa (testkit/xtensa_check.py).
- `rtflash check --firmware`: 0 unknown symbols and 0 dropped assignments for all five boards.
Needs ../shared (skips only where it is absent, never on CI).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from rtflash.external import tree_digest
from testkit import xtensa_check as xc
from testkit.shared import HERE, NO_SHARED, SHARED, SHARED_IDF, idf_venv, pio_offline_dir, real_idf_env

SDK = SHARED / "upstream-sdk"
API_KEY = "sk-" + "canary-upstream-" + "5b2d4a6f8e0c"  # two pieces: no key-shaped literal in the tree
SSID = "canary-ssid-" + "a41f"
PASSWORD = "canary-pw-" + "c93e77b2"
BOARDS = ("sonatino", "freenove-s3", "atoms3r-echo", "esp32-s3-box-3")
ALL_BOARDS = ("linux", *BOARDS)
CANARIES = (API_KEY, PASSWORD)


def _need_shared():
    if not (SHARED_IDF / "tools" / "idf.py").is_file() or not (SDK / "CMakeLists.txt").is_file():
        pytest.skip(NO_SHARED)
    if not (idf_venv() / "bin" / "python").is_file():
        pytest.fail(f"ESP-IDF Python env missing at {idf_venv()}: run `bash .ci/run`")


def copy_sdk(dest: Path) -> Path:
    """The SDK as a user's recursive clone, copied out of ../shared (symlinks kept as links)."""
    shutil.copytree(SDK, dest, symlinks=True)
    for root, dirs, files in os.walk(dest):
        for name in dirs + files:
            path = Path(root, name)
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | 0o200)
    return dest


def assert_no_canary(text: str, where: str) -> None:
    for canary in CANARIES:
        assert canary not in text, f"canary secret in {where}"


def rtflash(exe: str, *args: str, cwd: Path, env: dict, timeout: float = 1500) -> subprocess.CompletedProcess:
    return subprocess.run([exe, *args], check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def upstream(tmp_path_factory, rtflash_exe_module):
    """One real linux build of a copy of the SDK for the module: (project, sdk copy, env, first result, digest)."""
    _need_shared()
    root = tmp_path_factory.mktemp("upstream")
    sdk = copy_sdk(root / "openai-realtime-embedded-sdk")
    digest = tree_digest(sdk)
    project = root / "project"
    project.mkdir()
    env = {**os.environ, **real_idf_env(), "RTFLASH_OPENAI_API_KEY": API_KEY, "RTFLASH_WIFI_SSID": SSID,
           "RTFLASH_WIFI_PASSWORD": PASSWORD, "RTFLASH_SECRETS_FILE": str(root / "no-secrets.toml"),
           "RTFLASH_CACHE_DIR": str(root / "cache")}
    for var in ("WIFI_SSID", "WIFI_PASSWORD", "OPENAI_API_KEY", "IDF_TARGET", "RTFLASH_DEPS_DIR"):
        env.pop(var, None)
    refused = rtflash(rtflash_exe_module, "build", "--board", "linux", "--firmware", str(sdk), cwd=project, env=env)
    built = rtflash(rtflash_exe_module, "build", "--board", "linux", "--firmware", str(sdk), "--bake-secrets",
                    cwd=project, env=env)
    return {"project": project, "sdk": sdk, "env": env, "refused": refused, "built": built, "digest": digest,
            "root": root}


@pytest.fixture(scope="module")
def rtflash_exe_module() -> str:
    import sys

    exe = Path(sys.executable).parent / "rtflash"
    assert exe.exists(), "rtflash console script not installed: pip install -e .[test]"
    return str(exe)


def test_without_bake_secrets_stops_before_cmake(upstream):
    refused = upstream["refused"]
    assert refused.returncode != 0
    errors = [ln for ln in refused.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, refused.stderr
    line = errors[0]
    for needed in ("WIFI_SSID", "WIFI_PASSWORD", "OPENAI_API_KEY", "--bake-secrets", "NVS", "silently"):
        assert needed in line
    assert "Traceback" not in refused.stderr
    assert_no_canary(refused.stdout + refused.stderr, "the refusal")


def test_linux_builds_for_real_and_dir_is_untouched(upstream):
    built, project, sdk = upstream["built"], upstream["project"], upstream["sdk"]
    assert built.returncode == 0, built.stderr[-3000:]
    out = built.stdout + built.stderr
    assert_no_canary(out, "build output")
    assert "OpenAI Realtime Embedded SDK" in out and "--bake-secrets: the binary" in out and "TLS:" in out
    build_dir = project / "build" / f"linux-{sdk.name}"
    elf = build_dir / json.loads((build_dir / "project_description.json").read_text())["app_elf"]
    assert API_KEY.encode() in elf.read_bytes()  # baked in: the point of --bake-secrets
    for log in (build_dir / "log").iterdir():
        assert_no_canary(log.read_text(errors="replace"), str(log))
    assert oct(build_dir.stat().st_mode & 0o777) == "0o700"  # build.ninja etc. hold the key: owner only
    # the SDK's CMake rewrote libpeer's config.h in the private copy, never in DIR
    assert "KEEPALIVE_CONNCHECK 0" in (build_dir / "project/deps/libpeer/src/config.h").read_text()
    assert "KEEPALIVE_CONNCHECK 10000" in (sdk / "deps/libpeer/src/config.h").read_text()
    assert tree_digest(sdk) == upstream["digest"]
    # the board layer came after the SDK's own defaults, and the SDK's settings reached the build
    sdkconfig = (build_dir / "sdkconfig").read_text()
    assert "CONFIG_ESP_MAIN_TASK_STACK_SIZE=16384" in sdkconfig and 'CONFIG_IDF_TARGET="linux"' in sdkconfig


def test_noop_rebuild_keeps_the_copy_and_dir(upstream, rtflash_exe_module):
    again = rtflash(rtflash_exe_module, "build", "--board", "linux", "--firmware", str(upstream["sdk"]),
                    "--bake-secrets", cwd=upstream["project"], env=upstream["env"])
    assert again.returncode == 0, again.stderr[-2000:]
    assert_no_canary(again.stdout + again.stderr, "no-op build output")
    assert tree_digest(upstream["sdk"]) == upstream["digest"]


def test_check_has_no_problem_for_linux(upstream, rtflash_exe_module):
    done = rtflash(rtflash_exe_module, "check", "--board", "linux", "--firmware", str(upstream["sdk"]), "--json",
                   cwd=upstream["project"], env=upstream["env"], timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] and report["problems"] == [] and report["checked"] > 0
    # the SDK's own esp32s3 settings (PSRAM, CPU, partitions) do not exist on linux: listed, not hidden
    assert {p["symbol"] for p in report["not_in_target"]} <= {"SPIRAM", "SPIRAM_MODE_OCT", "PARTITION_TABLE_CUSTOM",
                                                              "ESP_DEFAULT_CPU_FREQ_MHZ_240"}


@pytest.fixture(scope="module")
def redirect_so(tmp_path_factory) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc, "a host C compiler (cc) is needed to build testkit/net_redirect.c"
    out = tmp_path_factory.mktemp("redirect") / "net_redirect.so"
    subprocess.run([cc, "-shared", "-fPIC", "-O1", "-Wall", "-Werror", "-o", str(out), str(HERE / "net_redirect.c"),
                    "-ldl"], check=True, capture_output=True, text=True)
    return out


def test_elf_sends_its_offer_to_the_loopback_standin(upstream, rtflash_exe_module, redirect_so):
    from testkit.realtime_standin import StandInThread, make_pki

    assert upstream["built"].returncode == 0
    pki = make_pki(upstream["root"] / "pki")
    net_log = upstream["root"] / "net.log"
    with StandInThread(pki, API_KEY, legacy_endpoint=True) as stand:
        env = {**upstream["env"], "LD_PRELOAD": str(redirect_so), "RTFLASH_REDIRECT_HOSTS": "api.openai.com",
               "RTFLASH_REDIRECT_PORT": str(stand.standin.port), "RTFLASH_NET_LOG": str(net_log)}
        child = subprocess.Popen([rtflash_exe_module, "exec", "--board", "linux", "--firmware", str(upstream["sdk"])],
                                 cwd=upstream["project"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 start_new_session=True)
        try:
            offered = stand.wait_until(lambda: len(stand.standin.requests) >= 1, 60)
            stand.wait_until(lambda: any(c.state == "connected" for c in stand.standin.calls), 10)
        finally:
            os.killpg(child.pid, signal.SIGTERM)
            try:
                output = child.communicate(timeout=10)[0].decode(errors="replace")
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                output = child.communicate()[0].decode(errors="replace")
        assert offered, f"no offer reached the stand-in; firmware said: {output[-1500:]}"
        request = stand.standin.requests[0]
        assert request.path_qs == "/v1/realtime?model=gpt-4o-mini-realtime-preview-2024-12-17"
        assert request.headers.get("Content-Type") == "application/sdp" and request.body.startswith("v=0")
        assert "m=audio" in request.body and request.status == 201
    assert_no_canary(output, "the firmware's console")
    events = net_log.read_text().splitlines()
    assert "resolve api.openai.com" in events and any(e.startswith("redirect ") for e in events)
    assert not [e for e in events if e.startswith("blocked")], f"the firmware tried to leave 127.0.0.1: {events}"
    assert tree_digest(upstream["sdk"]) == upstream["digest"]


def test_dir_unchanged_after_a_failed_build(upstream, rtflash_exe_module):
    """A compile error in the SDK's own src/http.cpp: ninja prints the failing command line, which holds
    -DOPENAI_API_KEY="<key>"; the error text and the log mask it. The SDK's CMake ran (and rewrote
    config.h, in the copy) before the failure; DIR is unchanged."""
    broken = copy_sdk(upstream["root"] / "broken-sdk")
    http = broken / "src" / "http.cpp"
    http.write_text(http.read_text() + "\nstatic int rtflash_test_error = undeclared_on_purpose;\n")
    digest = tree_digest(broken)
    failed = rtflash(rtflash_exe_module, "build", "--board", "linux", "--firmware", str(broken), "--bake-secrets",
                     cwd=upstream["project"], env=upstream["env"], timeout=1500)
    assert failed.returncode != 0
    errors = [ln for ln in failed.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "undeclared_on_purpose" in errors[0] and "full log:" in errors[0], failed.stderr[-2000:]
    assert_no_canary(failed.stdout + failed.stderr, "a failed build's error text")
    log = Path(errors[0].rsplit("full log: ", 1)[1].rstrip(")"))
    text = log.read_text()
    assert "FAILED:" in text and "-DOPENAI_API_KEY=" in text  # the command line was there, its value masked
    assert_no_canary(text, str(log))
    assert tree_digest(broken) == digest
    copy = upstream["project"] / "build" / "linux-broken-sdk" / "project"
    assert "KEEPALIVE_CONNCHECK 0" in (copy / "deps/libpeer/src/config.h").read_text()


# --- ESP32-S3 boards: configure, check, every TU under both Xtensa front ends -------------------------

@pytest.fixture(scope="module")
def xtensa_env():
    _need_shared()
    env, missing = xc.tool_env(pio_offline_dir())
    if missing:
        pytest.fail("missing: " + "; ".join(missing))
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {**env, "RTFLASH_NO_CCACHE": "1", "RTFLASH_OPENAI_API_KEY": API_KEY,
                           "RTFLASH_WIFI_SSID": SSID, "RTFLASH_WIFI_PASSWORD": PASSWORD}.items():
            mp.setenv(key, value)
        for key in ("RTFLASH_DEPS_DIR", "IDF_TARGET", "WIFI_SSID", "WIFI_PASSWORD", "OPENAI_API_KEY"):
            mp.delenv(key, raising=False)
        yield env


@pytest.fixture(scope="module")
def configured_sdk(xtensa_env, tmp_path_factory):
    """board -> (project, sdk copy, compile_commands.json): one configure per board, through build_board."""
    from rtflash.boards import load_catalog
    from rtflash.builder import build_board
    from rtflash.external import inspect
    from rtflash.settings import Settings

    root = tmp_path_factory.mktemp("upstream-s3")
    sdk = copy_sdk(root / "openai-realtime-embedded-sdk")
    digest = tree_digest(sdk)
    done: dict[str, tuple[Path, Path, Path]] = {}

    def get(board: str):
        if board not in done:
            project = root / board
            project.mkdir()
            build_board(load_catalog().get(board), Settings(), project, "idf", firmware=inspect(sdk),
                        bake_secrets=True, action="reconfigure")
            assert tree_digest(sdk) == digest
            done[board] = (project, sdk, project / "build" / f"{board}-{sdk.name}" / "compile_commands.json")
        return done[board]

    return get


TU_TABLE: dict[str, dict] = {}


@pytest.mark.parametrize("board", BOARDS)
def test_esp32s3_board_configures_and_every_sdk_tu_compiles(board, configured_sdk):
    _project, _sdk, compile_commands = configured_sdk(board)
    build_dir = compile_commands.parent
    sdkconfig = (build_dir / "sdkconfig").read_text()
    from rtflash.boards import load_catalog

    b = load_catalog().get(board)
    assert f"CONFIG_ESPTOOLPY_FLASHSIZE_{b.flash_size}=y" in sdkconfig  # the board layer fixed the 2 MB default
    assert ("CONFIG_SPIRAM=y" in sdkconfig) == (b.psram != "none")
    assert "CONFIG_ESP_TLS_INSECURE=y" in sdkconfig  # the SDK's own setting, left as it is (said in one line)
    units = xc.select_project_units(compile_commands, build_dir / "project")
    groups = {u.group for u in units}
    assert {"src", "deps/libpeer", "components/srtp", "components/esp-libopus"} <= groups
    assert len([u for u in units if u.group == "src"]) == 5  # main, webrtc, http, wifi, media (esp32s3 only)
    results = xc.check_units(units, excuses=xc.SDK_EXCUSES)
    assert len(results) == 2 * len(units)
    failures = [f"{r.frontend}: {line}" for r in results for line in r.unexcused]
    TU_TABLE[board] = {"tus": len(units), "failures": len(failures),
                       "excused": sum(1 for r in results if r.excused)}
    print(f"\n{board}: {len(units)} TUs x 2 front ends, {len(failures)} unexcused failures, "
          f"{TU_TABLE[board]['excused']} excused (stand-in false positives, xtensa_check.SDK_EXCUSES)")
    assert not failures, f"{board}: {len(failures)} unexcused errors:\n" + "\n".join(failures[:40])
    assert_no_canary(json.dumps(TU_TABLE), "the TU table")


@pytest.mark.parametrize("board", ALL_BOARDS)
def test_check_finds_no_unknown_or_dropped_symbol(board, xtensa_env, configured_sdk, rtflash_exe_module):
    """Against the real Kconfig of the SDK's configured build (linux: ESP-IDF's expansion of its components)."""
    if board == "linux":
        _, sdk, _ = configured_sdk("sonatino")
        project = sdk.parent / "linux-check"
        project.mkdir(exist_ok=True)
    else:
        project, sdk, _ = configured_sdk(board)
    env = {**os.environ}
    done = rtflash(rtflash_exe_module, "check", "--board", board, "--firmware", str(sdk), "--json", cwd=project,
                   env=env, timeout=300)
    report = json.loads(done.stdout)
    assert done.returncode == 0 and report["ok"], report["problems"]
    assert report["problems"] == [] and report["checked"] >= 15
    if board != "linux":
        assert report["not_in_target"] == []
