"""--firmware DIR (rtflash.external): what DIR is, the one-line errors, the private copy, the board layer,
the secrets refusal, and `[firmware] path` in rtflash.toml. Fast tier: a small ESP-IDF project is made in
the test; the upstream SDK's own files are read from ../shared where a test needs them (real tier:
tests/test_external_upstream.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from rtflash import external
from rtflash.boards import load_catalog
from rtflash.errors import ConfigError
from rtflash.external import inspect, sync_copy, tree_digest
from testkit.shared import NO_SHARED, SHARED

SDK = SHARED / "upstream-sdk"
API_KEY = "sk-" + "canary-ext-" + "9d0e4c21aa57"
PASSWORD = "canary-pw-" + "e81b"

PROJECT_CMAKE = "cmake_minimum_required(VERSION 3.16)\ninclude($ENV{IDF_PATH}/tools/cmake/project.cmake)\nproject(demo)\n"


def board(name: str):
    return load_catalog().get(name)


def make_project(root: Path, defaults: str = "", extra: dict[str, str] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "CMakeLists.txt").write_text(PROJECT_CMAKE)
    (root / "main").mkdir(exist_ok=True)
    (root / "main" / "CMakeLists.txt").write_text('idf_component_register(SRCS "main.c")\n')
    (root / "main" / "main.c").write_text("void app_main(void) {}\n")
    if defaults:
        (root / "sdkconfig.defaults").write_text(defaults)
    for rel, text in (extra or {}).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def fake_sdk(root: Path) -> Path:
    """The upstream SDK's recognisable shape (its files named as in the real tree), for the fast tier."""
    cmake = ('if(NOT DEFINED ENV{OPENAI_API_KEY})\n  message(FATAL_ERROR "Env variable OPENAI_API_KEY must be set")\n'
             'endif()\nadd_compile_definitions(OPENAI_REALTIMEAPI="https://api.openai.com/v1/realtime")\n' + PROJECT_CMAKE)
    make_project(root, "CONFIG_SPIRAM=y\nCONFIG_SPIRAM_MODE_OCT=y\nCONFIG_PARTITION_TABLE_CUSTOM=y\n", {
        "src/media.cpp": "#define MCLK_PIN 0\n#define DAC_BCLK_PIN 15\n#define DAC_LRCLK_PIN 16\n#define DAC_DATA_PIN 17\n"
                         "#define ADC_BCLK_PIN 38\n#define ADC_LRCLK_PIN 39\n#define ADC_DATA_PIN 40\n",
        "src/webrtc.cpp": "", "components/peer/CMakeLists.txt": "",
        "partitions.csv": "nvs, data, nvs, 0x9000, 0x6000,\nphy_init, data, phy, 0xf000, 0x1000,\n"
                          "factory, app, factory, 0x10000, 0x180000,\n"})
    (root / "CMakeLists.txt").write_text(cmake)
    return root


def one_error(result) -> str:
    lines = [ln for ln in result.output.splitlines() if ln.startswith("error:")]
    assert result.exit_code != 0 and len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


# --- what DIR is --------------------------------------------------------------------------------------

def test_a_plain_project_and_the_sdk_are_told_apart(tmp_path):
    assert inspect(make_project(tmp_path / "demo")).kind == external.PROJECT
    sdk = inspect(fake_sdk(tmp_path / "openai-realtime-embedded-sdk"))
    assert sdk.is_upstream and sdk.build_name(board("sonatino")) == "sonatino-openai-realtime-embedded-sdk"


def test_the_real_sdk_is_recognised_by_its_files():
    if not (SDK / "CMakeLists.txt").is_file():
        pytest.skip(NO_SHARED)
    found = inspect(SDK)
    assert found.is_upstream and set(found.submodules) >= {"deps/libpeer", "components/esp-libopus"}
    assert external.upstream_pins(found) == {"MCLK_PIN": 0, "DAC_BCLK_PIN": 15, "DAC_LRCLK_PIN": 16, "DAC_DATA_PIN": 17,
                                             "ADC_BCLK_PIN": 38, "ADC_LRCLK_PIN": 39, "ADC_DATA_PIN": 40}


@pytest.mark.parametrize("case", ["missing", "file", "readme-only", "no-cmake", "not-idf", "no-submodules"])
def test_each_bad_dir_is_one_line_with_the_fix(case, tmp_path, invoke, project):
    target = tmp_path / "sdk"
    want = {
        "missing": "no such directory",
        "file": "is a file, not a directory",
        "readme-only": "git -C",
        "no-cmake": "not an ESP-IDF project (no CMakeLists.txt",
        "not-idf": "does not include ESP-IDF's tools/cmake/project.cmake",
        "no-submodules": "git -C",
    }[case]
    if case == "file":
        target.write_text("not a folder\n")
    elif case == "readme-only":
        target.mkdir()
        (target / "README.md").write_text("# openai-realtime-embedded\n")
        (target / "LICENSE").write_text("MIT\n")
    elif case == "no-cmake":
        target.mkdir()
        (target / "main.c").write_text("int main(void) { return 0; }\n")
    elif case == "not-idf":
        target.mkdir()
        (target / "CMakeLists.txt").write_text("cmake_minimum_required(VERSION 3.16)\nproject(plain C)\n")
    elif case == "no-submodules":
        fake_sdk(target)
        (target / ".gitmodules").write_text('[submodule "deps/libpeer"]\n\tpath = deps/libpeer\n\turl = x\n'
                                            '[submodule "components/srtp"]\n\tpath = components/srtp\n\turl = y\n')
        (target / "deps" / "libpeer").mkdir(parents=True)
    before = tree_digest(target) if target.is_dir() else None
    for command in ("build", "render", "check"):
        line = one_error(invoke(command, "--board", "sonatino", "--firmware", str(target)))
        assert want in line and "--firmware" in line
    if case == "readme-only":
        assert "checkout esp32" in line and "submodule update --init --recursive" in line and "3abe5fb" in line
    if case == "no-submodules":
        assert "deps/libpeer, components/srtp" in line and "submodule update --init --recursive" in line
    assert not (project / "build").exists()
    if before is not None:
        assert tree_digest(target) == before


# --- the secrets refusal ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["linux", "sonatino"])
def test_sdk_without_bake_secrets_is_refused_before_anything_is_written(name, tmp_path, invoke, project, monkeypatch):
    sdk = fake_sdk(tmp_path / "openai-realtime-embedded-sdk")
    monkeypatch.setenv("RTFLASH_OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)  # the SDK's CMake would read this one: never passed
    monkeypatch.setenv("WIFI_PASSWORD", PASSWORD)
    before = tree_digest(sdk)
    result = invoke("build", "--board", name, "--firmware", str(sdk))
    line = one_error(result)
    for needed in ("WIFI_SSID", "WIFI_PASSWORD", "OPENAI_API_KEY", "--bake-secrets", "NVS"):
        assert needed in line
    assert API_KEY not in result.output and PASSWORD not in result.output
    assert not (project / "build").exists() and tree_digest(sdk) == before


def test_sdk_env_without_bake_is_stripped_and_with_it_comes_from_the_store(tmp_path, project, monkeypatch):
    from rtflash.builder import _build_external
    from rtflash.settings import Settings

    sdk = inspect(fake_sdk(tmp_path / "openai-realtime-embedded-sdk"))
    monkeypatch.setenv("RTFLASH_OPENAI_API_KEY", API_KEY)
    seen = {}

    class Recorder:
        name = "idf"

        def unavailable(self, b):
            return None

        def build(self, b, project_dir, config_dir, on_line, external=None, **kw):
            seen.update(external=external, config=config_dir, kw=kw)

    monkeypatch.setattr("rtflash.builder.choose", lambda name, b: Recorder())
    _build_external(board("linux"), Settings(), project, sdk, "idf", None, False, "build", True)
    env = seen["external"].env
    assert env["OPENAI_API_KEY"] == API_KEY and env["WIFI_SSID"] is None and env["WIFI_PASSWORD"] is None
    layers = seen["external"].layers
    assert layers[0] == project / "build" / "linux-openai-realtime-embedded-sdk" / "project" / "sdkconfig.defaults"
    assert layers[1] == seen["config"] / "sdkconfig.defaults"
    assert (seen["config"].parent.stat().st_mode & 0o777) == 0o700
    copy = seen["external"].project
    (copy / "written-by-cmake.h").write_text("x\n")
    _build_external(board("linux"), Settings(), project, sdk, "idf", None, True, "build", True)
    assert not (copy / "written-by-cmake.h").exists() and (copy / "CMakeLists.txt").is_file()  # --clean: afresh


def test_proc_drops_a_variable_given_as_none(monkeypatch):
    from rtflash import proc

    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    out = proc.run(["sh", "-c", 'echo "[${OPENAI_API_KEY-unset}]"'], env={"OPENAI_API_KEY": None}).output
    assert out.strip() == "[unset]"


def test_notices_name_pins_tls_and_baking(tmp_path):
    sdk = inspect(fake_sdk(tmp_path / "sdk"))
    box = external.notices(sdk, board("esp32-s3-box-3"), bake=True)
    assert len(box) == 4 and all("\n" not in line for line in box)
    assert any(line.startswith("audio pins:") and "DAC_BCLK=15" in line and "esp32-s3-box-3" in line for line in box)
    assert any(line.startswith("TLS:") and "firmware-src" not in line and "own firmware" in line for line in box)
    assert any(line.startswith("--bake-secrets:") for line in box)
    sonatino = external.notices(sdk, board("sonatino"), bake=False)
    assert not any(line.startswith("audio pins") for line in sonatino)  # the SDK's pins are the Sonatino's


# --- the private copy ---------------------------------------------------------------------------------

def test_copy_is_refreshed_when_dir_changes_and_keeps_what_the_build_wrote(tmp_path):
    src = make_project(tmp_path / "demo", extra={"lib/config.h": "#define KEEPALIVE 10000\n", "old.txt": "x\n"})
    (src / "build").mkdir()
    (src / "build" / "junk.o").write_text("in-tree output\n")
    (src / ".git").mkdir()
    (src / ".git" / "HEAD").write_text("ref: refs/heads/esp32\n")
    os.symlink("main/main.c", src / "link.c")
    before = tree_digest(src)
    dest = tmp_path / "build" / "project"
    assert sync_copy(src, dest) == 6
    assert (dest / "link.c").is_symlink() and not (dest / "build").exists() and not (dest / ".git").exists()
    (dest / "lib" / "config.h").write_text("#define KEEPALIVE 0\n")  # what the SDK's CMake does in the copy
    (dest / "platformio.ini").write_text("[env:x]\n")  # generated into the copy by rtflash
    assert sync_copy(src, dest) == 0 and (dest / "lib" / "config.h").read_text() == "#define KEEPALIVE 0\n"
    (src / "main" / "main.c").write_text("void app_main(void) { /* changed */ }\n")
    (src / "old.txt").unlink()
    assert sync_copy(src, dest) == 1
    assert "changed" in (dest / "main" / "main.c").read_text() and not (dest / "old.txt").exists()
    assert (dest / "platformio.ini").is_file()
    (src / "lib" / "config.h").write_text("#define KEEPALIVE 20000\n")
    os.utime(src / "lib" / "config.h", ns=(1, 1))
    assert sync_copy(src, dest) == 1 and "20000" in (dest / "lib" / "config.h").read_text()
    assert tree_digest(src) != before  # (the test changed it itself) and the copy never wrote back:
    assert not (src / "platformio.ini").exists()


def test_unreadable_file_in_dir_is_one_line(tmp_path, monkeypatch):
    src = make_project(tmp_path / "demo")

    def refuse(a, b, **kw):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("shutil.copy2", refuse)
    with pytest.raises(ConfigError) as err:
        sync_copy(src, tmp_path / "copy")
    assert "cannot copy it" in str(err.value) and "chmod -R u+rX" in str(err.value)


def test_read_only_dir_builds_from_its_copy(tmp_path):
    """DIR is only read: a read-only checkout (like ../shared) is fine, the copy is writable."""
    src = make_project(tmp_path / "demo")
    for path in [*src.rglob("*"), src]:
        path.chmod(path.stat().st_mode & ~0o222)
    try:
        dest = tmp_path / "copy"
        sync_copy(src, dest)
        assert os.access(dest / "main" / "main.c", os.W_OK) or os.geteuid() == 0
        assert (dest / "main" / "main.c").stat().st_mode & 0o200
    finally:
        for path in [src, *src.rglob("*")]:
            path.chmod(path.stat().st_mode | 0o200)


# --- the board layer ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["sonatino", "freenove-s3", "atoms3r-echo", "esp32-s3-box-3", "linux"])
def test_board_layer_holds_only_board_settings(name, tmp_path, invoke, project):
    sdk = fake_sdk(tmp_path / "sdk")
    result = invoke("render", "--board", name, "--firmware", str(sdk), "--json")
    assert result.exit_code == 0, result.output
    out = Path(json.loads(result.output)["out_dir"])
    assert out == project / "build" / f"{name}-sdk" / "config"
    layer = (out / "sdkconfig.defaults").read_text()
    assert "CONFIG_RT_" not in layer and "MBEDTLS" not in layer and "MAIN_TASK_STACK" not in layer
    b = board(name)
    if b.is_linux:
        assert 'CONFIG_IDF_TARGET="linux"' in layer
        return
    assert f"CONFIG_ESPTOOLPY_FLASHSIZE_{b.flash_size}=y" in layer
    assert "CONFIG_PARTITION_TABLE_CUSTOM_FILENAME" not in layer  # the SDK's own table fits every board
    assert (out / "partitions.csv").read_bytes() == (sdk / "partitions.csv").read_bytes()
    if b.psram == "none":
        assert "# CONFIG_SPIRAM is not set" in layer and "# CONFIG_SPIRAM_MODE_OCT is not set" in layer
    elif b.psram == "quad":
        assert "CONFIG_SPIRAM_MODE_QUAD=y" in layer and "# CONFIG_SPIRAM_MODE_OCT is not set" in layer
    else:
        assert "CONFIG_SPIRAM_MODE_OCT=y" in layer and "is not set" not in layer.split("# Console")[0]


def test_a_table_that_does_not_fit_is_replaced_and_said(tmp_path):
    big = make_project(tmp_path / "big", "CONFIG_PARTITION_TABLE_CUSTOM=y\n",
                       {"partitions.csv": "nvs, data, nvs, 0x9000, 0x6000,\nfactory, app, factory, 0x10000, 0x1000000,\n"})
    own, why = external.partition_choice(inspect(big), board("sonatino"))
    assert own and "past board sonatino's 8MB flash" in why
    plain = make_project(tmp_path / "plain")
    own, why = external.partition_choice(inspect(plain), board("sonatino"))
    assert own and "sets no custom partition table" in why


# --- rtflash.toml, ci --------------------------------------------------------------------------------

def test_firmware_path_in_rtflash_toml(tmp_path, invoke, project):
    sdk = fake_sdk(project / "vendor" / "sdk")
    (project / "rtflash.toml").write_text('board = "freenove-s3"\n[firmware]\npath = "vendor/sdk"\n')
    result = invoke("render", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["out_dir"] == str(project / "build" / "freenove-s3-sdk" / "config")
    assert sdk.is_dir()
    (project / "rtflash.toml").write_text('[firmware]\npaht = "vendor/sdk"\n')
    assert "firmware.paht: unknown setting" in one_error(invoke("render", "--board", "sonatino"))


def test_ci_refuses_bake_secrets_and_an_sdk_it_would_have_to_bake(tmp_path, invoke, project):
    sdk = fake_sdk(tmp_path / "sdk")
    line = one_error(invoke("ci", "--boards", "linux", "--firmware", str(sdk), "--bake-secrets"))
    assert "--bake-secrets" in line and "artifact" in line
    line = one_error(invoke("ci", "--boards", "linux", "--firmware", str(sdk)))
    assert "OPENAI_API_KEY" in line and "ci" in line
    assert not (project / "dist").exists()


# --- a plain ESP-IDF project end to end with the stand-in idf.py -------------------------------------

def test_plain_project_builds_out_of_tree_and_ci_collects_it(tmp_path, invoke, project, fake_idf, monkeypatch):
    log = project / "argv.log"
    monkeypatch.setenv("FAKE_IDF_LOG", str(log))
    demo = make_project(tmp_path / "demo", "CONFIG_PARTITION_TABLE_CUSTOM=y\nCONFIG_FREERTOS_HZ=1000\n",
                        {"partitions.csv": "nvs, data, nvs, 0x9000, 0x6000,\nphy_init, data, phy, 0xf000, 0x1000,\n"
                                           "factory, app, factory, 0x10000, 0x180000,\n"})
    before = tree_digest(demo)
    result = invoke("build", "--board", "freenove-s3", "--firmware", str(demo), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    build_dir = project / "build" / "freenove-s3-demo"
    assert data["elf"] == str(build_dir / "demo.elf")
    argv = json.loads(log.read_text().splitlines()[0])
    assert argv[argv.index("-C") + 1] == str(build_dir / "project")
    assert argv[argv.index("-B") + 1] == str(build_dir) and "-DIDF_TARGET=esp32s3" in argv
    defaults = next(a for a in argv if a.startswith("-DSDKCONFIG_DEFAULTS="))
    assert defaults == (f"-DSDKCONFIG_DEFAULTS={build_dir / 'project' / 'sdkconfig.defaults'};"
                        f"{build_dir / 'config' / 'sdkconfig.defaults'}")
    assert not any(a.startswith("-DRT_DEPS_DIR") for a in argv)
    sdkconfig = (build_dir / "sdkconfig").read_text()
    assert "CONFIG_FREERTOS_HZ=1000" in sdkconfig and "CONFIG_ESPTOOLPY_FLASHSIZE_8MB=y" in sdkconfig
    assert tree_digest(demo) == before
    assert not (project / "build" / "freenove-s3").exists()  # firmware-src's build dir is another one
    done = invoke("ci", "--boards", "freenove-s3", "--firmware", str(demo))
    assert done.exit_code == 0, done.output
    assert (project / "dist" / "freenove-s3" / "freenove-s3-factory.bin").is_file()
    assert tree_digest(demo) == before


def test_exec_and_flash_look_in_the_firmware_build_dir(tmp_path, invoke, project):
    demo = make_project(tmp_path / "demo")
    line = one_error(invoke("exec", "--board", "linux", "--firmware", str(demo)))
    assert str(project / "build" / "linux-demo") in line and f"--firmware {demo}" in line
    line = one_error(invoke("flash", "--board", "sonatino", "--firmware", str(demo), "--port", "socket://127.0.0.1:9"))
    assert "sonatino-demo" in line


def test_pio_adds_its_component_to_the_copy_only(tmp_path):
    """The SDK has set(COMPONENTS src) (ESP-IDF's hello_world MINIMAL_BUILD ON), which leaves out PlatformIO's
    espidf builder's own component (v6.13.0, builder/frameworks/espidf.py, find_default_component/__pio_env):
    rtflash inserts, once, before project() in its private copy, lines that add it when rtflash's platformio.ini
    passes -DRTFLASH_PIO_COMPONENT; DIR is never written."""
    sdk = fake_sdk(tmp_path / "sdk")
    cmake = (sdk / "CMakeLists.txt").read_text()
    (sdk / "CMakeLists.txt").write_text(cmake.replace("include(", 'set(COMPONENTS src)  # project(x) in a comment\n'
                                                      'set(EXTRA_COMPONENT_DIRS "src" "components/peer")\ninclude(', 1))
    firmware = inspect(sdk)
    assert external.pio_incompatible(firmware) is None
    note = external.pio_note(firmware)
    assert "set(COMPONENTS ...)" in note and "__pio_env" in note and "private copy" in note
    before = external.tree_digest(sdk)
    copy = tmp_path / "copy"
    external.sync_copy(sdk, copy)
    assert external.pio_add_component(copy) and not external.pio_add_component(copy)  # once
    text = (copy / "CMakeLists.txt").read_text()
    assert text.count(external.PIO_MARK) == 1
    lines = text.splitlines()
    project_at = next(i for i, ln in enumerate(lines) if ln.startswith("project("))
    assert lines.index(next(ln for ln in lines if ln.startswith(external.PIO_MARK))) < project_at
    assert "list(APPEND COMPONENTS ${RTFLASH_PIO_COMPONENT})" in text and "if(RTFLASH_PIO_COMPONENT)" in text
    assert text.index("include(") < text.index(external.PIO_MARK)  # after project.cmake: idf_build_get_property exists
    assert external.tree_digest(sdk) == before
    external.sync_copy(sdk, copy)  # DIR unchanged: the copy keeps its lines
    assert external.PIO_MARK in (copy / "CMakeLists.txt").read_text()
    assert external.pio_note(inspect(make_project(tmp_path / "plain"))) is None  # nothing to add: nothing said
    minimal = make_project(tmp_path / "minimal")
    (minimal / "CMakeLists.txt").write_text(PROJECT_CMAKE.replace("project(", "idf_build_set_property(MINIMAL_BUILD ON)\n"
                                                                  "project("))
    assert external.pio_incompatible(inspect(minimal)) is None
    assert "MINIMAL_BUILD ON" in external.pio_note(inspect(minimal))


def test_rendered_ini_passes_the_pio_component_switch(tmp_path):
    """Only rtflash's platformio.ini turns the added lines on; --backend idf (same copy) passes nothing."""
    from rtflash.boards import load_catalog
    from rtflash.render import render_external
    from rtflash.settings import Settings

    sdk = fake_sdk(tmp_path / "sdk")
    config = tmp_path / "build" / "sonatino-sdk" / "config"
    external.sync_copy(sdk, config.parent / "project")
    render_external(load_catalog().get("sonatino"), Settings(), config, inspect(sdk))
    ini = (config.parent / "project" / "platformio.ini").read_text()
    assert "-DRTFLASH_PIO_COMPONENT=__pio_env" in ini


def test_pio_refuses_in_one_line_where_it_still_cannot_work(tmp_path, invoke, project, monkeypatch):
    """set(COMPONENT_DIRS ...) drops ESP-IDF's components/ folder, where the builder keeps __pio_env; a
    COMPONENTS list with no top-level project() after the include leaves rtflash nowhere to add it."""
    dirs = make_project(tmp_path / "dirs")
    (dirs / "CMakeLists.txt").write_text(PROJECT_CMAKE.replace("include(", 'set(COMPONENT_DIRS "comps")\ninclude('))
    line = one_error(invoke("build", "--board", "sonatino", "--backend", "pio", "--firmware", str(dirs)))
    assert "set(COMPONENT_DIRS ...)" in line and "__pio_env" in line and "--backend idf" in line
    nested = make_project(tmp_path / "nested")
    (nested / "CMakeLists.txt").write_text(PROJECT_CMAKE.replace("include(", "set(COMPONENTS main)\ninclude(")
                                           .replace("project(", "  project("))
    assert "no top-level project()" in external.pio_incompatible(inspect(nested))


def test_real_sdk_gets_the_pio_component_added():
    if not (SDK / "CMakeLists.txt").is_file():
        pytest.skip(NO_SHARED)
    assert external.pio_incompatible(inspect(SDK)) is None
    assert "set(COMPONENTS ...)" in external.pio_note(inspect(SDK))


def test_first_line_names_dir_and_that_firmware_wins(tmp_path, invoke, project, fake_idf):
    """#23: a build inside a checkout builds that checkout's firmware-src and says so first; an explicit
    --firmware DIR wins over it, and the first line says that too (then the backend line names DIR)."""
    demo = make_project(tmp_path / "demo")
    result = invoke("build", "--board", "sonatino", "--firmware", str(demo))
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines[0].startswith(f"{demo}: an ESP-IDF project") and "--firmware, which wins over" in lines[0]
    assert "firmware-src" in lines[0]
    assert f"building sonatino with ESP-IDF from {demo} (--firmware)" in lines


def test_flash_checks_the_images_of_a_firmware_build(tmp_path, invoke, project, fake_idf):
    """#23's image checks run before any byte is written for a --firmware DIR build as for firmware-src's,
    and the fix they name rebuilds that DIR."""
    demo = make_project(tmp_path / "demo")
    built = invoke("build", "--board", "sonatino", "--firmware", str(demo), "--json")
    assert built.exit_code == 0, built.output
    app = project / "build" / "sonatino-demo" / "demo.bin"
    data = bytearray(app.read_bytes())
    data[0x100] ^= 0xFF
    app.write_bytes(bytes(data))
    line = one_error(invoke("flash", "--board", "sonatino", "--firmware", str(demo), "--port", "socket://127.0.0.1:9"))
    assert str(app) in line and "does not match" in line
    assert f"rtflash build --board sonatino --firmware {demo}" in line


# --- --deps-dir fills the empty submodules of a clone without --recursive -----------------------------

def _git(*args: str, cwd: Path) -> str:
    import subprocess

    done = subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@127.0.0.1", "-c", "init.defaultBranch=main",
                           "-c", "commit.gpgsign=false", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def _component_checkout(root: Path, text: str) -> tuple[Path, str]:
    """A git checkout of a component (what `rtflash deps --fetch` or a clone leaves): (folder, HEAD)."""
    root.mkdir(parents=True)
    (root / "CMakeLists.txt").write_text('idf_component_register(SRCS "widget.c")\n')
    (root / "widget.c").write_text(text)
    _git("init", "-q", cwd=root)
    _git("add", "-A", cwd=root)
    _git("commit", "-q", "-m", "widget", cwd=root)
    return root, _git("rev-parse", "HEAD", cwd=root)


def _clone_without_submodules(tmp_path: Path, commit: str) -> Path:
    """A project whose git HEAD pins components/widget at `commit` (a gitlink), left empty as
    `git clone` without --recursive leaves it."""
    demo = make_project(tmp_path / "demo", extra={
        ".gitmodules": '[submodule "components/widget"]\n\tpath = components/widget\n'
                       "\turl = https://127.0.0.1/widget.git\n"})
    _git("init", "-q", cwd=demo)
    _git("add", "-A", cwd=demo)
    _git("update-index", "--add", "--cacheinfo", f"160000,{commit},components/widget", cwd=demo)
    _git("commit", "-q", "-m", "demo", cwd=demo)
    (demo / "components" / "widget").mkdir(parents=True)
    return demo


def test_deps_dir_fills_an_empty_submodule_verified_by_commit(tmp_path, invoke, project, fake_idf):
    deps = tmp_path / "deps"
    widget, commit = _component_checkout(deps / "widget", "int widget(void) { return 1; }\n")
    demo = _clone_without_submodules(tmp_path, commit)
    before = tree_digest(demo)
    line = one_error(invoke("build", "--board", "sonatino", "--firmware", str(demo)))
    assert "components/widget" in line and "submodule update --init --recursive" in line and "--deps-dir" in line
    done = invoke("build", "--board", "sonatino", "--firmware", str(demo), "--deps-dir", str(deps), "--json")
    assert done.exit_code == 0, done.output
    copied = project / "build" / "sonatino-demo" / "project" / "components" / "widget" / "widget.c"
    assert copied.read_text() == (widget / "widget.c").read_text()
    assert not (copied.parent / ".git").exists()
    assert tree_digest(demo) == before and not any((demo / "components" / "widget").iterdir())
    # exec/flash use the build, not DIR's sources: no --deps-dir needed there
    line = one_error(invoke("flash", "--board", "sonatino", "--firmware", str(demo), "--port", "/dev/rtflash-nope"))
    assert "/dev/rtflash-nope" in line


def test_deps_dir_refuses_a_checkout_at_another_commit_or_a_plain_tree(tmp_path, invoke, project, fake_idf):
    deps = tmp_path / "deps"
    widget, commit = _component_checkout(deps / "widget", "int widget(void) { return 1; }\n")
    demo = _clone_without_submodules(tmp_path, commit)
    (widget / "widget.c").write_text("int widget(void) { return 2; }\n")
    _git("commit", "-q", "-am", "moved on", cwd=widget)
    moved = _git("rev-parse", "HEAD", cwd=widget)
    line = one_error(invoke("build", "--board", "sonatino", "--firmware", str(demo), "--deps-dir", str(deps)))
    assert f"is at {moved[:12]}" in line and f"pins {commit[:12]} for components/widget" in line
    import shutil

    shutil.rmtree(widget / ".git")
    line = one_error(invoke("build", "--board", "sonatino", "--firmware", str(demo), "--deps-dir", str(deps)))
    assert "not a git checkout" in line and commit[:12] in line
    line = one_error(invoke("build", "--board", "sonatino", "--firmware", str(demo), "--deps-dir", str(tmp_path / "none")))
    assert "has no" in line and commit[:12] in line
    assert not (project / "build" / "sonatino-demo" / "project").exists()
