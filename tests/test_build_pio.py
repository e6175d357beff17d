"""The PlatformIO backend against what PlatformIO really reads and does.

- The rendered platformio.ini, loaded with PlatformIO's own ProjectConfig, carries what the v6.13.0
  espidf builder reads (builder/frameworks/espidf.py): the sdkconfig path, partitions, flash size, the
  CMake extra args as the builder splits them, the src_dir that becomes `__idf_main`, the platform pin.
- First run offline, each state made in a PLATFORMIO_CORE_DIR of the test's own: rtflash names what is
  missing (platform, packages, SCons, the ESP-IDF Python env, registry components) in seconds.
- The real builder (PlatformIO Core + platform-espressif32 v6.13.0 + the real ESP-IDF CMake, from
  ../shared/pio-offline), driven through the installed `rtflash build --backend pio` for every ESP32-S3
  board: configure succeeds and every firmware translation unit compiles (judged from the stand-in's
  TU log); rtflash says the stand-in links nothing. `--deps-dir` reaches CMake on every run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.shell_completion import (
    split_arg_string,  # what the builder calls as click.parser.split_arg_string
)

from rtflash.boards import load_catalog
from rtflash.builder import pio as pio_mod
from rtflash.builder.pio import PioBackend, pio_artifacts
from rtflash.errors import ConfigError, ToolFailed
from rtflash.render import project_dir_of, render_board
from rtflash.resources import firmware_dir
from rtflash.settings import Settings
from testkit.shared import NO_SHARED, SHARED_PIO, pio_offline_dir

S3_BOARDS = ["sonatino", "freenove-s3", "atoms3r-echo", "esp32-s3-box-3"]


def render(root: Path, name: str):
    board = load_catalog().get(name)
    config = root / "build" / name / "config"
    render_board(board, Settings(), config)
    return board, config, project_dir_of(config)


@pytest.mark.parametrize("name", S3_BOARDS)
def test_rendered_ini_is_what_the_espidf_builder_reads(tmp_path, monkeypatch, name):
    import semantic_version
    from platformio.package.meta import PackageSpec
    from platformio.project.config import ProjectConfig

    monkeypatch.setenv("RTFLASH_DEPS_DIR", "/some/deps")
    board, config, project = render(tmp_path, name)
    build = tmp_path / "build" / name
    ini = ProjectConfig(str(project / "platformio.ini"))
    ini.validate(envs=[name], silent=True)
    env = f"env:{name}"
    # -d build/<board>/project: the builder's PROJECT_DIR, CMake's source dir (is_proper_idf_project)
    assert (project / "CMakeLists.txt").is_file() and "rt_project.cmake" in (project / "CMakeLists.txt").read_text()
    # src_dir: added by the builder as an extra component, target __idf_<basename> must be __idf_main
    src_dir = Path(ini.get("platformio", "src_dir"))
    assert src_dir == firmware_dir() / "main" and src_dir.name == "main" and (src_dir / "CMakeLists.txt").is_file()
    assert ini.get("platformio", "build_dir") == str(build / "pio")
    assert " " not in str(build)
    # SDKCONFIG_PATH = board "build.esp-idf.sdkconfig_path", else <project>/sdkconfig.<env>
    assert ini.get(env, "board_build.esp-idf.sdkconfig_path") == str(build / "sdkconfig.pio")
    # the builder: split_arg_string(board.get("build.cmake_extra_args"))
    args = split_arg_string(ini.get(env, "board_build.cmake_extra_args"))
    assert not any(a.startswith("-DSDKCONFIG=") for a in args), "would override the builder's own -DSDKCONFIG"
    assert f"-DSDKCONFIG_DEFAULTS={firmware_dir()}/sdkconfig.defaults;{config}/sdkconfig.defaults" in args
    assert all((Path(p)).is_file() for p in args[args.index(next(a for a in args if "DEFAULTS" in a))]
               .split("=", 1)[1].split(";"))
    assert "-DRT_DEPS_DIR=/some/deps" in args  # ${sysenv.RTFLASH_DEPS_DIR}, expanded at every run
    assert "-DRT_PROJECT_MAIN_ADDED=TRUE" in args  # rt_project.cmake: main is already src_dir
    assert not any(a.startswith("-DEXTRA_COMPONENT_DIRS") for a in args), "would replace the builder's src_dir"
    partitions = Path(ini.get(env, "board_build.partitions"))
    assert partitions == config / "partitions.csv" and partitions.is_file()
    assert ini.get(env, "board_upload.flash_size") == board.flash_size
    assert ini.get(env, "board") == board.pio_board and ini.get(env, "framework") == ["espidf"]
    # the platform pin admits 6.13.0 (ESP-IDF 5.5.3) and nothing that ships ESP-IDF < 5.4
    spec = PackageSpec(ini.get(env, "platform"))
    assert spec.name == "espressif32"
    admits = semantic_version.SimpleSpec(str(spec.requirements)).match
    assert admits(semantic_version.Version("6.13.0"))
    assert not any(admits(semantic_version.Version(v)) for v in ("6.9.0", "6.10.0", "6.12.0", "7.0.0"))


def test_deps_dir_unset_expands_empty(tmp_path, monkeypatch):
    from platformio.project.config import ProjectConfig

    monkeypatch.delenv("RTFLASH_DEPS_DIR", raising=False)
    _, _, project = render(tmp_path, "sonatino")
    args = split_arg_string(
        ProjectConfig(str(project / "platformio.ini")).get("env:sonatino", "board_build.cmake_extra_args"))
    assert "-DRT_DEPS_DIR=" in args  # empty: rt_deps.cmake uses the deps cache


def test_pio_artifacts_include_ota_data(tmp_path):
    board, config, _ = render(tmp_path, "sonatino")
    env_dir = tmp_path / "env"
    env_dir.mkdir()
    for name in ("bootloader.bin", "partitions.bin", "ota_data_initial.bin", "firmware.bin", "firmware.elf"):
        (env_dir / name).write_bytes(b"\0")
    art = pio_artifacts(board, env_dir, config)
    regions = {r.name: (r.offset, r.path.name) for r in art.regions}
    assert regions["otadata"] == (0xF000, "ota_data_initial.bin")  # partitions.csv: otadata at 0xf000
    assert regions["app"][0] == 0x20000 and regions["bootloader"][0] == 0 and regions["partition-table"][0] == 0x8000
    (env_dir / "ota_data_initial.bin").unlink()
    with pytest.raises(ToolFailed, match="ota_data_initial.bin is missing"):
        pio_artifacts(board, env_dir, config)


def test_pio_refuses_linux():
    assert "cannot build the linux target" in PioBackend().unavailable(load_catalog().get("linux"))


def test_space_in_project_path_refused_before_pio_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(pio_mod, "probe", lambda *a: pytest.fail("pio must not run"))
    root = tmp_path / "my project"
    board, config, _ = render(root, "sonatino")
    with pytest.raises(ConfigError, match="contains a space.*PlatformIO's ESP-IDF builder refuses.*without spaces"):
        PioBackend().build(board, root, config, lambda line: None)


# ---- first run, offline: each state in a core dir of the test's own ----------------------------------

def offline_packages() -> Path:
    packages = pio_offline_dir() / "packages"
    if not (SHARED_PIO / "make-packages.sh").is_file():
        pytest.skip(NO_SHARED)
    assert (packages / "framework-espidf" / "package.json").is_file(), \
        f"{packages} missing: run ../shared/pio-offline/make-packages.sh {pio_offline_dir()} (.ci/run does)"
    return packages


def make_core(root: Path, platform=False, scons=False, penv=False) -> Path:
    """A PLATFORMIO_CORE_DIR holding only what a state needs, from .cache/pio-offline/core."""
    source = pio_offline_dir() / "core"
    core = root / "core"
    (core / "platforms").mkdir(parents=True)
    (core / "packages").mkdir()
    (core / "penv").mkdir()
    if platform:
        shutil.copytree(source / "platforms" / "espressif32", core / "platforms" / "espressif32", symlinks=True)
    if scons:
        (core / "packages" / "tool-scons").symlink_to(source / "packages" / "tool-scons")
    if penv:
        for venv in (source / "penv").glob(".espidf-*"):
            (core / "penv" / venv.name).symlink_to(venv)
    return core


@pytest.fixture
def offline(monkeypatch, project):
    """No server reachable; PlatformIO's own checks off; returns (board, config dir)."""
    monkeypatch.setattr(pio_mod, "reachable", lambda need, timeout=3.0: False)
    monkeypatch.setenv("PLATFORMIO_SETTING_ENABLE_TELEMETRY", "no")
    monkeypatch.setenv("PLATFORMIO_SETTING_CHECK_PLATFORMIO_INTERVAL", "3650")
    monkeypatch.delenv(pio_mod.PACKAGES_ENV, raising=False)
    monkeypatch.setenv("RTFLASH_DEPS_CACHE", str(project / "empty-deps-cache"))
    board, config, _ = render(project, "sonatino")
    return board, config


def fails_fast(board, project, config, deps_dir=None) -> str:
    start = time.perf_counter()
    with pytest.raises(ToolFailed) as info:
        PioBackend().build(board, project, config, lambda line: None, deps_dir=deps_dir)
    assert time.perf_counter() - start < 15, "offline must be said in seconds, not after PlatformIO's retries"
    return str(info.value)


def test_offline_no_platform(offline, project, monkeypatch, tmp_path):
    board, config = offline
    monkeypatch.setenv("PLATFORMIO_CORE_DIR", str(make_core(tmp_path)))
    msg = fails_fast(board, project, config)
    assert "the platform `espressif32 @ 6.13.0` and its packages" in msg
    assert "api.registry.platformio.org unreachable" in msg and "tool-scons" in msg
    assert f"pio pkg install -d {project_dir_of(config)} -e sonatino" in msg
    assert "ESP Component Registry components (espressif/esp_codec_dev, 78/esp-opus, sepfy/srtp)" in msg
    assert "pinned git dependencies (libpeer)" in msg and "rtflash deps --fetch" in msg


def test_offline_platform_without_packages(offline, project, monkeypatch, tmp_path):
    offline_packages()
    board, config = offline
    monkeypatch.setenv("PLATFORMIO_CORE_DIR", str(make_core(tmp_path, platform=True, scons=True)))
    msg = fails_fast(board, project, config)
    # exactly the packages PlatformIO itself says this environment requires (its platform.py, esp32s3)
    for name in ("framework-espidf", "toolchain-xtensa-esp-elf", "tool-cmake", "tool-ninja", "tool-esptoolpy"):
        assert name in msg
    assert "packages of espressif32 @ 6.13.0" in msg and "tool-scons" not in msg
    assert "pio pkg install -d" in msg and "Python env" in msg and "pypi.org unreachable" in msg


def test_offline_packages_without_registry_components(offline, project, monkeypatch, tmp_path):
    packages = offline_packages()
    board, config = offline
    monkeypatch.setenv("PLATFORMIO_CORE_DIR", str(make_core(tmp_path, platform=True, scons=True, penv=True)))
    monkeypatch.setenv(pio_mod.PACKAGES_ENV, str(packages))  # local file:// packages: no download needed
    msg = fails_fast(board, project, config)
    assert "ESP Component Registry components (espressif/esp_codec_dev, 78/esp-opus, sepfy/srtp) " \
           "(components.espressif.com unreachable)" in msg
    assert "--deps-dir DIR" in msg and "packages of" not in msg and "Python env" not in msg


def test_offline_no_pypi_for_the_builders_python_env(offline, project, monkeypatch, tmp_path, shared_deps):
    packages = offline_packages()
    board, config = offline
    monkeypatch.setenv("PLATFORMIO_CORE_DIR", str(make_core(tmp_path, platform=True, scons=True)))
    monkeypatch.setenv(pio_mod.PACKAGES_ENV, str(packages))
    msg = fails_fast(board, project, config, deps_dir=shared_deps)
    assert "the builder's ESP-IDF Python env" in msg and ".espidf-5.5.5" in msg and "pypi.org unreachable" in msg
    assert "packages of" not in msg and "Component Registry" not in msg


# ---- the real builder, through the installed rtflash ---------------------------------------------------

# Stand-in artefacts (../shared/pio-offline/README.md), the only failures allowed among the firmware's TUs:
# esp-opus' LX7 DSP macros, which the lx106 assembler rejects, and GCC 12's -Wstringop-overflow false
# positive in silk_HP_variable_cutoff.
ARTEFACTS = ("unknown opcode or format name", "silk_HP_variable_cutoff")


@pytest.fixture(scope="module")
def pio_env(tmp_path_factory):
    """Environment for `rtflash build --backend pio` with the offline packages, in a core of its own."""
    packages = offline_packages()
    root = tmp_path_factory.mktemp("pio")
    core = make_core(root, platform=True, scons=True, penv=True)
    env = {**os.environ, "PLATFORMIO_CORE_DIR": str(core), pio_mod.PACKAGES_ENV: str(packages),
           "PLATFORMIO_SETTING_ENABLE_TELEMETRY": "no", "PLATFORMIO_SETTING_CHECK_PLATFORMIO_INTERVAL": "3650"}
    for var in ("IDF_PATH", "SCONSFLAGS", "PIO_STANDIN_TU_LOG", "RTFLASH_DEPS_DIR"):
        env.pop(var, None)
    return root, env


def judge_tus(log: Path) -> tuple[int, list[str]]:
    """(TUs compiled, failures that are not stand-in artefacts) from PIO_STANDIN_TU_LOG."""
    count, bad = 0, []
    for line in log.read_text().splitlines():
        rc, source, _obj, err = line.split("\t")
        if "/CMakeFiles/" in source or source.startswith("/usr/share/cmake"):
            continue  # CMake's own try-compile checks
        count += 1
        if rc == "0":
            continue
        text = Path(err).read_text(errors="replace") if err != "-" and Path(err).is_file() else ""
        errors = [ln for ln in text.splitlines() if "error" in ln.lower()]
        if not errors or not all(any(a in ln for a in ARTEFACTS) or "some warnings being treated" in ln
                                 for ln in errors):
            bad.append(f"{source}: {errors[0] if errors else text[-300:]}")
    return count, bad


@pytest.mark.parametrize("name", S3_BOARDS)
def test_real_builder_compiles_every_firmware_tu(pio_env, rtflash_exe, shared_deps, name):
    root, env = pio_env
    work = root / name
    work.mkdir()
    tu_log = root / f"{name}-tu.log"
    result = subprocess.run([rtflash_exe, "build", "--board", name, "--backend", "pio", "--deps-dir",
                             str(shared_deps)], cwd=work, env={**env, "PIO_STANDIN_TU_LOG": str(tu_log)},
                            capture_output=True, text=True, check=False, timeout=1800)
    out = result.stdout + result.stderr
    assert result.returncode != 0, "the stand-in links nothing: there can be no firmware image"
    assert "Traceback" not in out
    assert "compile-only stand-in toolchain" in out, out[-2000:]
    log = max((work / "build" / name / "log").glob("build-*-pio.log"))
    text = log.read_text()
    assert "Reading CMake configuration..." in text and "AssertionError" not in text  # configure passed
    assert "rtflash: firmware target: main, " in text
    for component in ("rt_core", "rt_audio", "rt_session", "peer", "sepfy__srtp", "78__esp-opus"):
        assert component in text
    assert (work / "build" / name / "sdkconfig.pio").is_file()  # where board_build.esp-idf.sdkconfig_path says
    for written in (f"sdkconfig.{name}", "sdkconfig", "dependencies.lock", "managed_components", ".pio"):
        assert not (firmware_dir() / written).exists(), f"{written} written into firmware-src"
    count, bad = judge_tus(tu_log)
    sources = tu_log.read_text()
    assert "/firmware-src/main/main.c" in sources and "libpeer-src/peer_connection.c" in sources
    assert count > 150, f"only {count} TUs compiled"
    assert not bad, "firmware TUs failing with real errors:\n" + "\n".join(bad)
    if name == "sonatino":  # --deps-dir reaches CMake on the next run too, never a cached value
        other = root / "empty-deps"
        (other / "components").mkdir(parents=True, exist_ok=True)
        again = subprocess.run([rtflash_exe, "build", "--board", name, "--backend", "pio", "--deps-dir",
                                str(other)], cwd=work, env=env, capture_output=True, text=True, check=False, timeout=600)
        assert again.returncode != 0
        assert f"--deps-dir {other} has no libpeer/" in again.stdout + again.stderr


def test_probe_reads_the_overlay(pio_env):
    """PlatformIO's own view through the overlay: every local package counts as present."""
    root, env = pio_env
    board, _, project = render(root / "probe", "sonatino")
    overlay = project / "platformio-offline.ini"
    overlay.write_text(pio_mod.overlay_text(board, Path(env[pio_mod.PACKAGES_ENV]), standin=True))
    out = subprocess.run([sys.executable, "-m", "rtflash.builder.pio", "--probe", str(project), str(overlay),
                          "sonatino"], env=env, capture_output=True, text=True, check=False, timeout=120).stdout
    data = json.loads(out.strip().splitlines()[-1])
    assert data["platform_installed"] and data["scons"] and data["packages"] == [] and data["penv"] is None


def test_real_builder_builds_a_firmware_dir_out_of_tree(pio_env, rtflash_exe, tmp_path):
    """--firmware DIR with --backend pio: ESP-IDF's own hello_world (from ../shared/esp-idf), configured by
    the real espidf builder from rtflash's private copy, its TU compiled, DIR untouched. Its MINIMAL_BUILD ON
    would leave out the builder's own __pio_env component; the lines rtflash adds to its copy put it back."""
    from rtflash.external import tree_digest
    from testkit.shared import SHARED_IDF

    root, env = pio_env
    hello = tmp_path / "hello_world"
    shutil.copytree(SHARED_IDF / "examples" / "get-started" / "hello_world", hello)
    assert "MINIMAL_BUILD ON" in (hello / "CMakeLists.txt").read_text()
    before = tree_digest(hello)
    work = root / "firmware-dir"
    work.mkdir()
    tu_log = root / "hello-tu.log"
    result = subprocess.run([rtflash_exe, "build", "--board", "sonatino", "--backend", "pio", "--firmware", str(hello)],
                            cwd=work, env={**env, "PIO_STANDIN_TU_LOG": str(tu_log)}, capture_output=True, text=True,
                            check=False, timeout=1800)
    out = result.stdout + result.stderr
    assert result.returncode != 0 and "compile-only stand-in toolchain" in out and "Traceback" not in out, out[-2000:]
    build_dir = work / "build" / "sonatino-hello_world"
    log = max((build_dir / "log").glob("build-*-pio.log")).read_text()
    assert "Reading CMake configuration..." in log and "rtflash: firmware target: main" in log
    count, bad = judge_tus(tu_log)
    compiled = [ln.split("\t")[:2] for ln in tu_log.read_text().splitlines()
                if "/CMakeFiles/" not in ln and "\t/usr/share/cmake" not in ln]
    assert count == 1 and not bad and [(rc, Path(src).name) for rc, src in compiled] == [("0", "hello_world_main.c")]
    assert Path(compiled[0][1]).is_relative_to(build_dir / "project")  # the private copy, not DIR
    assert (build_dir / "sdkconfig.pio").is_file() and "CONFIG_ESPTOOLPY_FLASHSIZE_8MB=y" in (
        build_dir / "sdkconfig.pio").read_text()
    assert tree_digest(hello) == before


# The upstream SDK through PlatformIO: its set(COMPONENTS src) would leave out the builder's __pio_env;
# rtflash adds it in its private copy (external.pio_add_component). Canary secrets, two pieces each.
SDK_KEY = "sk-" + "canary-pio-" + "7c1e9a3b5d20"
SDK_SSID = "canary-ssid-" + "b52e"
SDK_PASSWORD = "canary-pw-" + "d04f88c1"
SDK_TUS: dict[str, tuple[int, int]] = {}


@pytest.fixture(scope="module")
def pio_sdk(tmp_path_factory):
    """A copy of ../shared/upstream-sdk (as a user's recursive clone) and its digest before any build."""
    from rtflash.external import tree_digest
    from tests.test_external_upstream import SDK, copy_sdk

    if not (SDK / "CMakeLists.txt").is_file():
        pytest.skip(NO_SHARED)
    sdk = copy_sdk(tmp_path_factory.mktemp("pio-sdk") / "openai-realtime-embedded-sdk")
    return sdk, tree_digest(sdk)


@pytest.mark.parametrize("name", S3_BOARDS)
def test_real_builder_builds_the_upstream_sdk(pio_env, rtflash_exe, pio_sdk, name):
    """`rtflash build --board B --firmware SDK --backend pio --bake-secrets`: the real espidf builder
    configures the SDK from rtflash's private copy (with __pio_env added there) and every TU of the SDK's
    own components (src, peer/libpeer, srtp, esp-libopus) compiles but for stand-in artefacts; DIR is
    unchanged byte for byte; no canary in rtflash's output or the build log."""
    from rtflash.external import PIO_MARK, tree_digest

    root, env = pio_env
    sdk, digest = pio_sdk
    work = root / f"sdk-{name}"
    work.mkdir()
    tu_log = root / f"sdk-{name}-tu.log"
    secrets = {"RTFLASH_OPENAI_API_KEY": SDK_KEY, "RTFLASH_WIFI_SSID": SDK_SSID, "RTFLASH_WIFI_PASSWORD": SDK_PASSWORD}
    run_env = {k: v for k, v in env.items() if k not in ("WIFI_SSID", "WIFI_PASSWORD", "OPENAI_API_KEY")}
    result = subprocess.run([rtflash_exe, "build", "--board", name, "--backend", "pio", "--firmware", str(sdk),
                             "--bake-secrets"], cwd=work, env={**run_env, **secrets, "PIO_STANDIN_TU_LOG": str(tu_log)},
                            capture_output=True, text=True, check=False, timeout=1800)
    out = result.stdout + result.stderr
    assert result.returncode != 0 and "compile-only stand-in toolchain" in out and "Traceback" not in out, out[-2000:]
    assert "espidf builder cannot build" not in out  # no refusal: rtflash adds the builder's component instead
    note = [ln for ln in out.splitlines() if "__pio_env" in ln]  # what rtflash adds to its copy, and why: one line
    assert len(note) == 1 and "set(COMPONENTS ...)" in note[0] and "private copy" in note[0], out[-2000:]
    build_dir = work / "build" / f"{name}-{sdk.name}"
    log = max((build_dir / "log").glob("build-*-pio.log")).read_text(errors="replace")
    assert "Reading CMake configuration..." in log and "Failed to find the default IDF component" not in log
    assert "rtflash: firmware target: main, esp-libopus, peer, srtp" in log  # main: the SDK's src component
    for canary in (SDK_KEY, SDK_PASSWORD):
        assert canary not in out and canary not in log
    assert PIO_MARK in (build_dir / "project" / "CMakeLists.txt").read_text()
    assert PIO_MARK not in (sdk / "CMakeLists.txt").read_text()
    count, bad = judge_tus(tu_log)
    compiled = [ln.split("\t")[1] for ln in tu_log.read_text().splitlines()
                if "/CMakeFiles/" not in ln and "\t/usr/share/cmake" not in ln]
    copy = build_dir / "project"
    for part in ("src/main.cpp", "src/media.cpp", "deps/libpeer/src/peer_connection.c", "components/srtp/",
                 "components/esp-libopus/"):
        assert any(str(copy / part) in src for src in compiled), f"no {part} TU compiled"
    assert all(Path(src).is_relative_to(copy) or "/__pio_env/" in src for src in compiled)  # the copy, not DIR
    SDK_TUS[name] = (count, len(bad))
    print(f"\n{name}: {count} SDK TUs compiled by the real espidf builder, {len(bad)} real failures")
    assert not bad, f"{name}: SDK TUs failing with real errors:\n" + "\n".join(bad[:40])
    flash = load_catalog().get(name).flash_size
    assert f"CONFIG_ESPTOOLPY_FLASHSIZE_{flash}=y" in (build_dir / "sdkconfig.pio").read_text()
    assert tree_digest(sdk) == digest
