#!/usr/bin/env python3
"""STAND-IN for ESP-IDF's `idf.py`, for tests on machines without ESP-IDF. Not the real tool.

It reproduces the parts of idf.py's documented contract rtflash relies on, as ESP-IDF v5.5 does them:
- command line: `-C PROJECT`, `-B BUILD`, `-D KEY=VALUE` (SDKCONFIG, SDKCONFIG_DEFAULTS "a;b",
  IDF_TARGET), `--preview`, `--ccache`, `--version`, actions `set-target T`, `build`/`all`,
  `fullclean`, `reconfigure`; the target from IDF_TARGET or CONFIG_IDF_TARGET in the defaults, and
  the "Target settings are not consistent" error when it differs from the build dir's CMakeCache.txt;
- output lines: "Executing action: all (aliases: build)", "Running cmake in directory ...",
  "Running ninja in directory ...", `Executing "ninja all"...`, "[N/M] Building C object ...",
  "ninja: no work to do.", "Project build complete. To flash, run:" and, on a compiler error,
  "FAILED: ...", "file:line:col: error: ...", "ninja: build stopped: subcommand failed." and
  "ninja failed with exit code 1, output of the command is in the ...";
- build-dir files: CMakeCache.txt, sdkconfig (defaults layered, later wins), project_description.json,
  flasher_args.json, flash_args, bootloader/bootloader.bin, partition_table/partition-table.bin
  (the real binary table: 32-byte 0x50AA entries plus the 0xEBEB MD5 entry), ota_data_initial.bin,
  <project>.bin (a valid ESP32-S3 image written with esptool's image classes), <project>.elf,
  <project>.map; for the linux target a host <project>.elf built with the host C compiler, no .bin
  and no flasher_args.json, and "build_type": "ram_app".
Test hooks (environment): FAKE_IDF_FAIL=compile|too-large, FAKE_IDF_APP_KB (app size, default 1200),
FAKE_IDF_VERSION (default 5.5.1), FAKE_IDF_LOG (append each argv to this file).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import struct
import subprocess
import sys
from pathlib import Path

VERSION = os.environ.get("FAKE_IDF_VERSION", "5.5.1")
APP_TYPES = {"app": 0x00, "data": 0x01}
SUBTYPES = {"factory": 0x00, "ota_0": 0x10, "ota_1": 0x11, "ota": 0x00, "phy": 0x01, "nvs": 0x02,
            "coredump": 0x03, "nvs_keys": 0x04, "efuse": 0x05, "fat": 0x81, "spiffs": 0x82}
FLASH_SIZE_CODE = {"2MB": 0x10, "4MB": 0x20, "8MB": 0x30, "16MB": 0x40, "32MB": 0x50}


def parse(argv: list[str]) -> tuple[dict, list[str]]:
    opts: dict = {"C": ".", "B": None, "D": {}, "preview": False}
    actions: list[str] = []
    it = iter(argv)
    for arg in it:
        if arg in ("-C", "--project-dir"):
            opts["C"] = next(it)
        elif arg in ("-B", "--build-dir"):
            opts["B"] = next(it)
        elif arg.startswith("-D"):
            key, _, value = (arg[2:] or next(it)).partition("=")
            opts["D"][key] = value
        elif arg == "--preview":
            opts["preview"] = True
        elif arg in ("--ccache", "--no-ccache", "-v", "--verbose"):
            pass
        elif arg == "--version":
            print(f"ESP-IDF v{VERSION}")
            sys.exit(0)
        else:
            actions.append(arg)
    return opts, actions


def read_config(paths: list[Path]) -> dict[str, str]:
    values: dict[str, str] = {}
    for path in paths:
        if path.is_file():
            for line in path.read_text().splitlines():
                if line.startswith("CONFIG_") and "=" in line:
                    key, _, value = line.partition("=")
                    values[key] = value
    return values


def partition_table(csv_path: Path) -> tuple[bytes, list[dict]]:
    entries, parts = b"", []
    for line in csv_path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, ptype, subtype, offset, size = [c.strip() for c in line.split(",")[:5]]
        part = {"name": name, "type": ptype, "subtype": subtype, "offset": int(offset, 0), "size": int(size, 0)}
        parts.append(part)
        entries += struct.pack("<2sBBII16sI", b"\xaa\x50", APP_TYPES[ptype], SUBTYPES[subtype],
                               part["offset"], part["size"], name.encode(), 0)
    table = entries + b"\xeb\xeb" + b"\xff" * 14 + hashlib.md5(entries).digest()
    return table + b"\xff" * (0xC00 - len(table)), parts


def esp_image(path: Path, size: int, seed: bytes, flash_size: str, bootloader: bool = False) -> None:
    from esptool.bin_image import ELFSection, ESP32S3FirmwareImage

    rng = random.Random(seed)
    img = ESP32S3FirmwareImage()
    img.entrypoint = 0x40375000
    img.flash_mode = 2  # dio
    img.flash_size_freq = FLASH_SIZE_CODE.get(flash_size, 0x20) | 0x0F  # 80m
    if bootloader:  # loaded into RAM by the ROM: DRAM and IRAM segments, no flash mapping, ~20 KB
        img.entrypoint = 0x403C8000
        img.segments = [ELFSection(b".dram0.data", 0x3FCE2700, rng.randbytes(4096), 0),
                        ELFSection(b".iram0.text", 0x403C8700, rng.randbytes(size - 4096), 0)]
    else:
        img.segments = [ELFSection(b".flash.rodata", 0x3C000020, rng.randbytes(4096), 0),
                        ELFSection(b".flash.text", 0x42000020, rng.randbytes(max(size - 4096, 1024)), 0)]
    img.append_digest = True
    img.save(str(path))


def say(text: str) -> None:
    print(text, flush=True)


def sources_root(project: Path) -> Path:
    """The firmware sources: RT_FIRMWARE_DIR when the project is rtflash's rendered project folder."""
    text = (project / "CMakeLists.txt").read_text() if (project / "CMakeLists.txt").is_file() else ""
    for line in text.splitlines():
        if line.strip().startswith("set(RT_FIRMWARE_DIR "):
            return Path(line.split('"')[1])
    return project


def build(opts: dict, project: Path, build_dir: Path, configure_only: bool = False) -> int:
    name = project_name(project)
    sdkconfig = Path(opts["D"].get("SDKCONFIG") or project / "sdkconfig")
    layers = [Path(p) for p in opts["D"].get("SDKCONFIG_DEFAULTS", str(project / "sdkconfig.defaults")).split(";") if p]
    defaults = read_config(layers)
    target = (os.environ.get("IDF_TARGET") or opts["D"].get("IDF_TARGET")
              or defaults.get("CONFIG_IDF_TARGET", '"esp32"').strip('"'))
    cache = build_dir / "CMakeCache.txt"
    if cache.is_file():
        cached = next((ln.split("=", 1)[1] for ln in cache.read_text().splitlines()
                       if ln.startswith("IDF_TARGET:STRING=")), target)
        if cached != target:
            say(f"Target settings are not consistent: '{target}' in the environment, '{cached}' in CMakeCache.txt. "
                "Run 'idf.py fullclean' to start again.")
            return 2
    if target == "linux" and not opts["preview"]:
        say("Target 'linux' is a preview target; use --preview")
        return 2
    root = sources_root(project)
    inputs = [*layers, *root.rglob("*.c"), *root.rglob("CMakeLists.txt"), *root.rglob("Kconfig*"),
              project / "CMakeLists.txt"]
    newest = max((p.stat().st_mtime_ns for p in inputs if p.is_file()), default=0)
    stamp = build_dir / ".fake-idf-stamp"
    say("Executing action: reconfigure" if configure_only else "Executing action: all (aliases: build)")
    if configure_only or not cache.is_file() or not sdkconfig.is_file() or max(p.stat().st_mtime_ns for p in layers if p.is_file()) > sdkconfig.stat().st_mtime_ns:
        say(f"Running cmake in directory {build_dir}")
        say(f'Executing "cmake -G Ninja -DPYTHON_DEPS_CHECKED=1 -DESP_PLATFORM=1 -DIDF_TARGET={target} '
            f'-DSDKCONFIG=\'{sdkconfig}\' -DCCACHE_ENABLE=0 {project}"...')
        say(f"-- Building ESP-IDF components for target {target}")
        say(f"-- Project sdkconfig file {sdkconfig}")
        build_dir.mkdir(parents=True, exist_ok=True)
        cache.write_text(f"CMAKE_PROJECT_NAME:STATIC={name}\nIDF_TARGET:STRING={target}\n")
        merged = {"CONFIG_IDF_TARGET": f'"{target}"', **defaults}
        sdkconfig.write_text("".join(f"{k}={v}\n" for k, v in merged.items()))
        say("-- Configuring done")
        say("-- Generating done")
        say(f"-- Build files have been written to: {build_dir}")
    if configure_only:
        return 0
    say(f"Running ninja in directory {build_dir}")
    say('Executing "ninja all"...')
    if stamp.is_file() and stamp.stat().st_mtime_ns >= max(newest, sdkconfig.stat().st_mtime_ns):
        say("ninja: no work to do.")
        return done(target, build_dir, name)
    sources = sorted(p for p in root.rglob("*.c") if "host-tests" not in p.parts)
    steps = len(sources) + 40
    for n, src in enumerate(sources, 1):
        say(f"[{n}/{steps}] Building C object esp-idf/main/CMakeFiles/__idf_main.dir/{src.name}.obj")
    if os.environ.get("FAKE_IDF_FAIL") == "compile":
        src = root / "main" / "main.c"  # the app's own source, whatever components sort before it
        say(f"FAILED: esp-idf/main/CMakeFiles/__idf_main.dir/{src.name}.obj")
        say(f"{src}:12:5: error: 'undeclared_thing' undeclared (first use in this function)")
        say("ninja: build stopped: subcommand failed.")
        say(f"ninja failed with exit code 1, output of the command is in the {build_dir}/log/idf_py_stderr_output_1 "
            f"and {build_dir}/log/idf_py_stdout_output_1")
        return 2
    for n in range(len(sources) + 1, steps + 1):
        say(f"[{n}/{steps}] Building C object esp-idf/freertos/CMakeFiles/__idf_freertos.dir/part{n}.c.obj")
    config = read_config([sdkconfig])
    if target == "linux":
        linux_outputs(build_dir, name, project)
    else:
        code = flash_outputs(build_dir, name, config, target, project)
        if code:
            return code
    description(build_dir, name, target, project, sdkconfig)
    stamp.write_text("")
    return done(target, build_dir, name)


def flash_outputs(build_dir: Path, name: str, config: dict, target: str, project: Path) -> int:
    csv_path = Path(config.get("CONFIG_PARTITION_TABLE_CUSTOM_FILENAME", '"partitions.csv"').strip('"'))
    if not csv_path.is_absolute():  # as partition_table/project_include.cmake: relative to the project dir
        csv_path = project / csv_path
    table, parts = partition_table(csv_path)
    flash_size = next((k.rsplit("_", 1)[1] for k in config if k.startswith("CONFIG_ESPTOOLPY_FLASHSIZE_")), "2MB")
    app_part = next(p for p in parts if p["type"] == "app")
    size = int(os.environ.get("FAKE_IDF_APP_KB", "1200")) * 1024
    if os.environ.get("FAKE_IDF_FAIL") == "too-large":
        size = app_part["size"] + 0x1000
    (build_dir / "bootloader").mkdir(parents=True, exist_ok=True)
    (build_dir / "partition_table").mkdir(exist_ok=True)
    esp_image(build_dir / "bootloader" / "bootloader.bin", 20 * 1024, b"bootloader", flash_size, bootloader=True)
    (build_dir / "partition_table" / "partition-table.bin").write_bytes(table)
    seed = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(build_dir.parent.glob("*/config/*")))).digest()
    esp_image(build_dir / f"{name}.bin", size, seed + (build_dir / "sdkconfig").read_bytes()[:64], flash_size)
    app_size = (build_dir / f"{name}.bin").stat().st_size
    if app_size > app_part["size"]:
        say(f"Error: app partition is too small for binary {name}.bin size {app_size:#x}:")
        say(f"  - Part '{app_part['name']}' 0/{app_part['subtype']} @ {app_part['offset']:#x} size "
            f"{app_part['size']:#x} (overflow {app_size - app_part['size']:#x})")
        return 2
    (build_dir / f"{name}.elf").write_bytes(b"\x7fELF\x01\x01\x01" + b"\0" * 9 + seed)
    (build_dir / f"{name}.map").write_text("Archive member included to satisfy reference by file (symbol)\n")
    files = {"bootloader": (0x0, "bootloader/bootloader.bin"),
             "partition-table": (0x8000, "partition_table/partition-table.bin"),
             "app": (app_part["offset"], f"{name}.bin")}
    if any(p["subtype"] == "ota" for p in parts):
        ota = next(p for p in parts if p["subtype"] == "ota")
        (build_dir / "ota_data_initial.bin").write_bytes(b"\xff" * ota["size"])
        files["otadata"] = (ota["offset"], "ota_data_initial.bin")
    settings = {"flash_mode": "dio", "flash_size": flash_size, "flash_freq": "80m"}
    args = {
        "write_flash_args": ["--flash_mode", "dio", "--flash_size", flash_size, "--flash_freq", "80m"],
        "flash_settings": settings,
        "flash_files": {hex(off): rel for off, rel in sorted(files.values())},
        **{part: {"offset": hex(off), "file": rel, "encrypted": "false"} for part, (off, rel) in files.items()},
        "extra_esptool_args": {"after": "hard_reset", "before": "default_reset", "stub": True, "chip": target},
    }
    (build_dir / "flasher_args.json").write_text(json.dumps(args, indent=4))
    (build_dir / "flash_args").write_text("--flash_mode dio --flash_freq 80m --flash_size " + flash_size + "\n"
                                          + "".join(f"{hex(o)} {r}\n" for o, r in sorted(files.values())))
    return 0


def linux_outputs(build_dir: Path, name: str, project: Path) -> None:
    source = build_dir / "fake_linux_main.c"
    source.write_text('#include <stdio.h>\n#include <stdlib.h>\nint main(void){\n'
                      'printf("I (10) main: rtflash firmware (linux target)\\n");\n'
                      'printf("I (11) main: api key %s\\n", getenv("OPENAI_API_KEY") ? "present" : "missing");\n'
                      'return getenv("OPENAI_API_KEY") ? 0 : 3;}\n')
    cc = shutil.which("cc") or shutil.which("gcc")
    subprocess.run([cc, "-o", str(build_dir / f"{name}.elf"), str(source)], check=True)


def description(build_dir: Path, name: str, target: str, project: Path, sdkconfig: Path) -> None:
    data = {"version": "1.2", "project_name": name, "project_version": "0.1.0", "project_path": str(project),
            "idf_path": os.environ.get("IDF_PATH", ""), "build_dir": str(build_dir), "config_file": str(sdkconfig),
            "config_defaults": "", "bootloader_elf": "" if target == "linux" else str(build_dir / "bootloader/bootloader.elf"),
            "app_elf": f"{name}.elf", "app_bin": "" if target == "linux" else f"{name}.bin",
            "build_type": "ram_app" if target == "linux" else "flash_app", "target": target,
            "git_revision": f"v{VERSION}", "monitor_baud": "115200"}
    (build_dir / "project_description.json").write_text(json.dumps(data, indent=4))


def done(target: str, build_dir: Path, name: str) -> int:
    if target != "linux":
        say("Project build complete. To flash, run:")
        say(" idf.py flash")
        say("or")
        say(f' python -m esptool --chip {target} -b 460800 --before default_reset --after hard_reset write_flash "@flash_args"')
    else:
        say(f"Project build complete. Run {build_dir / (name + '.elf')}")
    return 0


def project_name(project: Path) -> str:
    text = (project / "CMakeLists.txt").read_text() if (project / "CMakeLists.txt").is_file() else ""
    for line in text.splitlines():
        if line.strip().startswith("project("):
            return line.split("(", 1)[1].split(")")[0].split()[0]
    return project.name


def main() -> int:
    if os.environ.get("FAKE_IDF_LOG"):
        with open(os.environ["FAKE_IDF_LOG"], "a") as log:
            log.write(json.dumps(sys.argv[1:]) + "\n")
    opts, actions = parse(sys.argv[1:])
    project = Path(opts["C"]).resolve()
    build_dir = Path(opts["B"] or project / "build").resolve()
    for action in actions or ["all"]:
        if action == "fullclean":
            say("Executing action: fullclean")
            if build_dir.is_dir():
                shutil.rmtree(build_dir)
            say("Done")
        elif action in ("build", "all", "reconfigure"):
            code = build(opts, project, build_dir, configure_only=action == "reconfigure")
            if code:
                return code
        elif action == "set-target":
            continue
        elif action in ("esp32s3", "linux", "esp32"):
            os.environ["IDF_TARGET"] = action
        else:
            say(f"Error: No such command '{action}'.")
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
