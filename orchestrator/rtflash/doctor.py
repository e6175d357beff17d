"""`rtflash doctor`: is this machine ready to build, flash and monitor? Each check says the fix.

Checks are plain functions returning `Check`s; none of them prints or fails hard, so one broken
part of the set-up never hides the others. Credentials are reported present/missing, never shown.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

OK, WARN, FAIL = "ok", "warn", "fail"
MIN_IDF = (5, 4)
PACKAGES = ("esptool", "pyserial", "click", "jinja2", "rich", "platformio", "esp-idf-nvs-partition-gen",
            "esp-idf-panic-decoder", "esp-idf-size", "esp-idf-kconfig", "pyelftools")
TOOLCHAIN = {"esp32s3": "xtensa-esp32s3-elf-gcc", "linux": "gcc"}
UDEV_RULE = 'SUBSYSTEMS=="usb", ATTRS{idVendor}=="303a", MODE="0660", TAG+="uaccess"'


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str
    fix: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def idf_version(idf_path: Path) -> tuple[int, int, int] | None:
    """ESP-IDF's version from tools/cmake/version.cmake (set(IDF_VERSION_MAJOR 5) ...)."""
    try:
        text = (idf_path / "tools" / "cmake" / "version.cmake").read_text()
    except OSError:
        return None
    parts = [re.search(rf"IDF_VERSION_{k}\s+(\d+)", text) for k in ("MAJOR", "MINOR", "PATCH")]
    if not all(parts):
        return None
    return tuple(int(m.group(1)) for m in parts)  # type: ignore[return-value]


def check_python() -> Check:
    version = ".".join(map(str, sys.version_info[:3]))
    if sys.version_info < (3, 10):
        return Check("python", FAIL, f"Python {version}", "use Python 3.10 or newer")
    return Check("python", OK, f"Python {version} ({sys.executable})")


def check_packages() -> Check:
    from importlib import metadata

    missing, found = [], []
    for name in PACKAGES:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            missing.append(name)
    if missing:
        return Check("python packages", FAIL, "missing: " + ", ".join(missing), "pip install --upgrade rtflash")
    return Check("python packages", OK, ", ".join(found))


def check_idf(env: dict[str, str]) -> Check:
    raw = env.get("IDF_PATH", "")
    if not raw:
        return Check("ESP-IDF", WARN, "IDF_PATH is not set (builds will use PlatformIO)",
                     "install ESP-IDF v5.4+ and run `. $IDF_PATH/export.sh`, or build with "
                     "`rtflash build --backend pio`")
    path = Path(raw)
    version = idf_version(path)
    if version is None:
        return Check("ESP-IDF", FAIL, f"IDF_PATH={path} is not an ESP-IDF tree (no tools/cmake/version.cmake)",
                     "point IDF_PATH at your esp-idf checkout")
    shown = ".".join(map(str, version))
    if version[:2] < MIN_IDF:
        return Check("ESP-IDF", FAIL, f"v{shown} at {path}; firmware-src needs v5.4 or newer",
                     "check out ESP-IDF v5.4 or v5.5 and run install.sh esp32s3")
    return Check("ESP-IDF", OK, f"v{shown} at {path}")


def check_idf_py(env: dict[str, str]) -> Check:
    found = shutil.which("idf.py", path=env.get("PATH"))
    if found:
        return Check("idf.py", OK, found)
    if env.get("IDF_PATH") and (Path(env["IDF_PATH"]) / "tools" / "idf.py").is_file():
        return Check("idf.py", WARN, "in IDF_PATH but not on PATH", "run `. $IDF_PATH/export.sh`")
    return Check("idf.py", WARN, "not found", "run `. $IDF_PATH/export.sh`, or build with `rtflash build --backend pio`")


def check_toolchains(chips: set[str], env: dict[str, str]) -> list[Check]:
    checks = []
    for chip in sorted(chips):
        program = TOOLCHAIN.get(chip)
        if program is None:
            continue
        found = shutil.which(program, path=env.get("PATH"))
        fix = "apt-get install gcc" if chip == "linux" else f"run `$IDF_PATH/install.sh {chip}` then `. $IDF_PATH/export.sh`"
        checks.append(Check(f"toolchain {chip}", OK if found else WARN, found or f"{program} not on PATH",
                            "" if found else fix))
    return checks


def check_platformio(env: dict[str, str]) -> Check:
    pio = shutil.which("pio", path=env.get("PATH")) or shutil.which("pio", path=str(Path(sys.executable).parent))
    if not pio:
        return Check("PlatformIO", WARN, PIO_MISSING, "pip install platformio")
    core = Path(env.get("PLATFORMIO_CORE_DIR") or Path.home() / ".platformio")
    install = ("`rtflash render -b BOARD` then `pio pkg install -d build/BOARD/project -e BOARD` (network, once: "
               "the pinned platform and exactly the packages that board's build needs)")
    if not (core / "platforms" / "espressif32").is_dir():
        return Check("PlatformIO", WARN, f"{pio}; platform espressif32 not installed in {core}", install)
    try:  # the builds pin espressif32 @ 6.13.0 (templates/platformio.ini.j2); another version is not used
        version = json.loads((core / "platforms" / "espressif32" / "platform.json").read_text()).get("version")
    except (OSError, ValueError):
        version = None
    if version and version != PIO_PLATFORM:
        return Check("PlatformIO", WARN, f"{pio}; espressif32 {version} in {core}, builds pin {PIO_PLATFORM}", install)
    return Check("PlatformIO", OK, f"{pio}; espressif32{' ' + version if version else ''} in {core}")


PIO_MISSING = "pio not found"
PIO_PLATFORM = "6.13.0"


def check_backends(idf: Check, idf_py: Check, pio: Check, chips: set[str], toolchains: list[Check] = (),
                   boards: dict[str, list[str]] | None = None) -> Check:
    """Which board can build where; FAIL (doctor exits 1) when no ESP32-S3 board can build at all.

    Mirrors builder.choose: ESP-IDF needs a v5.4+ tree, idf.py (on PATH or in IDF_PATH/tools) and, for a
    chip, its cross compiler on PATH (`toolchains`, the toolchain checks); PlatformIO needs `pio` (it
    installs its platform and toolchain itself) and cannot build the linux target. `boards` names the
    boards of each chip."""
    has_idf = idf.status == OK and idf_py.detail != "not found"
    has_pio = pio.detail != PIO_MISSING
    compilers = {c.name.removeprefix("toolchain "): c.status == OK for c in toolchains}
    fix_idf = "install ESP-IDF v5.4+ (https://docs.espressif.com/projects/esp-idf/) and run `. $IDF_PATH/export.sh`"
    where, stuck, hardware_ok = [], [], False
    for chip in sorted(chips):
        tools = []
        if has_idf and compilers.get(chip, chip == "linux"):
            tools.append("ESP-IDF")
        if has_pio and chip != "linux":
            tools.append("PlatformIO")
        names = ", ".join((boards or {}).get(chip, [])) or chip
        label = f"{chip} ({names})" if boards else chip
        where.append(f"{label}: {' or '.join(tools) or 'nothing'}")
        if not tools:
            stuck.append(chip)
        elif chip != "linux":
            hardware_ok = True
    detail = "; ".join(where)
    if not has_idf and not has_pio:
        return Check("build backend", FAIL, f"no build tool usable: neither ESP-IDF v5.4+ nor PlatformIO found "
                     f"({detail})", f"pip install platformio, or {fix_idf}")
    hardware = [c for c in chips if c != "linux"]
    if hardware and not hardware_ok:
        missing = ", ".join(TOOLCHAIN.get(c, c) for c in hardware)
        return Check("build backend", FAIL, f"no build tool can build the {', '.join(sorted(hardware))} boards: "
                     f"ESP-IDF lacks {missing} and PlatformIO is not installed ({detail})",
                     f"`$IDF_PATH/install.sh {' '.join(sorted(hardware))}` then `. $IDF_PATH/export.sh`, or "
                     "pip install platformio (it installs its own toolchain)")
    if stuck:
        fix = fix_idf if stuck == ["linux"] else "see the toolchain checks above"
        if stuck == ["linux"] and has_pio:
            detail += " (the linux board needs ESP-IDF)"
        return Check("build backend", WARN, detail, fix)
    return Check("build backend", OK, detail)


def check_serial_ports() -> list[Check]:
    """The USB serial ports a board can be (ports.candidates), each readable and writable or the fix."""
    from rtflash.ports import DIALOUT_FIX, candidates, list_ports

    found = candidates(list_ports())
    if not found:
        return [Check("serial ports", WARN, "no USB serial port found",
                      "plug the board in with a data-capable USB cable (`rtflash ports --all` lists every port)")]
    checks = []
    for port in found:
        usable = os.access(port.device, os.R_OK | os.W_OK)
        label = f"{port.device} {port.usb_id()} {port.bridge} {port.description}".rstrip()
        checks.append(Check("serial port", OK if usable else FAIL, label, "" if usable else DIALOUT_FIX))
    return checks


def check_udev() -> Check | None:
    if not sys.platform.startswith("linux"):
        return None
    for folder in (Path("/etc/udev/rules.d"), Path("/lib/udev/rules.d"), Path("/usr/lib/udev/rules.d")):
        for rule in folder.glob("*.rules") if folder.is_dir() else ():
            try:
                if "303a" in rule.read_text(errors="replace").lower():
                    return Check("udev rule 303a", OK, str(rule))
            except OSError:
                continue
    return Check("udev rule 303a", WARN, "no udev rule for Espressif USB (VID 303a)",
                 f"echo '{UDEV_RULE}' | sudo tee /etc/udev/rules.d/60-espressif.rules && sudo udevadm trigger")


def run_checks(chips: set[str], extra: list[Callable[[], Check | list[Check]]] = (),
               env: dict[str, str] | None = None, boards: dict[str, list[str]] | None = None) -> list[Check]:
    """Every check; `extra` lets the CLI add checks that need the project (credentials, deps); `boards`
    (chip -> board names) lets the backend check say which board builds where."""
    env = dict(os.environ if env is None else env)
    idf, idf_py, pio = check_idf(env), check_idf_py(env), check_platformio(env)
    checks: list[Check] = [check_python(), check_packages(), idf, idf_py]
    toolchains = check_toolchains(chips, env)
    checks += toolchains
    checks += [pio, check_backends(idf, idf_py, pio, chips, toolchains, boards)]
    checks += check_serial_ports()
    udev = check_udev()
    if udev:
        checks.append(udev)
    for fn in extra:
        try:
            got = fn()
        except Exception as exc:  # noqa: BLE001 - a broken check is itself a finding, not a crash
            got = Check(getattr(fn, "__name__", "check"), FAIL, f"check failed: {exc}")
        checks += got if isinstance(got, list) else [got]
    return checks
