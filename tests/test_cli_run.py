"""`rtflash run` end to end: the installed script, the stand-in idf.py, an emulated device, the monitor."""

from __future__ import annotations

import json
import os
import subprocess


def run(exe, *args, cwd, env=None):
    return subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, timeout=180,
                          env={**os.environ, "COLUMNS": "200", **(env or {})})


def flashed(project, emu) -> bool:
    args = json.loads((project / "build" / "sonatino" / "flasher_args.json").read_text())
    return all(emu.chip.flash[int(off, 16):int(off, 16) + (project / "build" / "sonatino" / rel).stat().st_size]
               == (project / "build" / "sonatino" / rel).read_bytes() for off, rel in args["flash_files"].items())


def test_run_renders_builds_flashes_and_monitors(rtflash_exe, project, fake_idf, emulators):
    emu = emulators()
    result = run(rtflash_exe, "run", "--board", "sonatino", "--port", emu.url, "--no-credentials",
                 "--no-reconnect", "--timeout", "3", cwd=project)
    assert result.returncode == 0, result.stderr
    stages = [ln.split("]")[0] + "]" for ln in result.stderr.splitlines() if ln.startswith("[")]
    assert stages == ["[1/4]", "[2/4]", "[3/4]", "[4/4]"]
    assert "[3/4] flash " + emu.url in result.stderr and "verified" in result.stderr
    assert flashed(project, emu) and emu.chip.app_started == 1
    assert "wifi_sta: got ip: 192.168.1.23" in result.stdout, "the monitor shows what the flashed app logs"


def test_run_stops_at_a_failing_build(rtflash_exe, project, fake_idf, emulators):
    emu = emulators()
    result = run(rtflash_exe, "run", "--board", "sonatino", "--port", emu.url, "--no-credentials",
                 cwd=project, env={"FAKE_IDF_FAIL": "compile"})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "[2/4] build sonatino" in result.stderr and "[3/4]" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: build of sonatino failed:")
    assert emu.chip.connections == 0


def test_run_stops_at_a_failing_flash(rtflash_exe, project, fake_idf, emulators):
    emu = emulators(chip="esp32c3")
    result = run(rtflash_exe, "run", "--board", "sonatino", "--port", emu.url, "--no-credentials",
                 cwd=project)
    assert result.returncode == 1 and "[4/4]" not in result.stderr
    assert "found ESP32-C3 but board sonatino is esp32s3" in result.stderr


def test_run_linux_builds_and_executes(rtflash_exe, project, fake_idf):
    result = run(rtflash_exe, "run", "--board", "linux", cwd=project,
                 env={"OPENAI_API_KEY": "sk-" + "exec-abcdefghijklmnopqrst"})
    assert result.returncode == 0, result.stderr
    assert "[3/3] exec" in result.stderr and "api key present" in result.stdout


def test_run_no_monitor(invoke, fake_idf, emulators):
    emu = emulators()
    result = invoke("run", "--board", "sonatino", "--port", emu.url, "--no-credentials", "--no-monitor")
    assert result.exit_code == 0, result.stderr
    assert "[3/3] flash" in result.stderr and "monitor" not in result.stderr


def test_run_without_the_monitor_counts_three_stages(rtflash_exe, project, fake_idf, emulators):
    """--no-monitor runs render, build and flash: numbered [1/3]..[3/3], never "/4"; the build stage
    says which firmware tree it builds."""
    emu = emulators()
    result = run(rtflash_exe, "run", "--board", "sonatino", "--port", emu.url, "--no-credentials", "--no-monitor",
                 cwd=project)
    assert result.returncode == 0, result.stderr
    stages = [ln.split("]")[0] + "]" for ln in result.stderr.splitlines() if ln.startswith("[")]
    assert stages == ["[1/3]", "[2/3]", "[3/3]"] and "/4]" not in result.stderr
    assert "building sonatino with ESP-IDF from " in result.stderr and flashed(project, emu)
