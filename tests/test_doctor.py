"""`rtflash doctor` checks: each finding says the fix; nothing crashes the report."""

from __future__ import annotations

from pathlib import Path

from rtflash import doctor


def fake_idf(root: Path, major: int, minor: int) -> Path:
    cmake = root / "tools" / "cmake"
    cmake.mkdir(parents=True)
    (cmake / "version.cmake").write_text(
        f"set(IDF_VERSION_MAJOR {major})\nset(IDF_VERSION_MINOR {minor})\nset(IDF_VERSION_PATCH 1)\n")
    return root


def test_idf_version_checks(tmp_path):
    assert doctor.check_idf({}).status == doctor.WARN
    ok = doctor.check_idf({"IDF_PATH": str(fake_idf(tmp_path / "a", 5, 5))})
    assert ok.status == doctor.OK and "v5.5.1" in ok.detail
    old = doctor.check_idf({"IDF_PATH": str(fake_idf(tmp_path / "b", 5, 1))})
    assert old.status == doctor.FAIL and "v5.4" in old.detail and old.fix
    bogus = doctor.check_idf({"IDF_PATH": str(tmp_path)})
    assert bogus.status == doctor.FAIL and "not an ESP-IDF tree" in bogus.detail


def test_toolchain_lookup(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "xtensa-esp32s3-elf-gcc"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    found = doctor.check_toolchains({"esp32s3"}, {"PATH": str(bin_dir)})
    assert found[0].status == doctor.OK
    missing = doctor.check_toolchains({"esp32s3"}, {"PATH": str(tmp_path)})
    assert missing[0].status == doctor.WARN and "install.sh esp32s3" in missing[0].fix


def test_platformio_platform_missing(tmp_path):
    check = doctor.check_platformio({"PLATFORMIO_CORE_DIR": str(tmp_path), "PATH": ""})
    assert check.status == doctor.WARN and "espressif32" in check.detail
    (tmp_path / "platforms" / "espressif32").mkdir(parents=True)
    assert doctor.check_platformio({"PLATFORMIO_CORE_DIR": str(tmp_path), "PATH": ""}).status == doctor.OK


def test_broken_extra_check_is_reported_not_raised():
    def credentials():
        raise RuntimeError("keyring exploded")

    checks = doctor.run_checks({"linux"}, extra=[credentials], env={"PATH": ""})
    last = checks[-1]
    assert last.name == "credentials" and last.status == doctor.FAIL and "keyring exploded" in last.detail
    assert {c.name for c in checks} >= {"python", "python packages", "ESP-IDF", "idf.py", "PlatformIO"}


def test_serial_ports_only_usb_bridges_with_access(monkeypatch, tmp_path):
    from rtflash import doctor
    from rtflash.ports import PortInfo

    mine = tmp_path / "ttyACM0"
    mine.write_text("")
    locked = tmp_path / "ttyUSB0"
    locked.write_text("")
    monkeypatch.setattr("rtflash.ports.list_ports", lambda: [
        PortInfo(str(mine), 0x303A, 0x1001, "F4", "USB JTAG/serial debug unit", "1-2", "usb-serial-jtag"),
        PortInfo(str(locked), 0x1A86, 0x55D3, "54", "USB Single Serial", "1-3", "ch34x"),
        PortInfo("/dev/ttyS0")])
    monkeypatch.setattr(doctor.os, "access", lambda path, mode: path == str(mine))
    checks = doctor.check_serial_ports()
    assert [(c.status, c.detail) for c in checks] == [
        ("ok", f"{mine} 303a:1001 usb-serial-jtag USB JTAG/serial debug unit"),
        ("fail", f"{locked} 1a86:55d3 ch34x USB Single Serial")]
    assert "dialout" in checks[1].fix and "udev rule" in checks[1].fix
    monkeypatch.setattr("rtflash.ports.list_ports", lambda: [PortInfo("/dev/ttyS0")])
    assert [c.status for c in doctor.check_serial_ports()] == ["warn"]


def _chk(name, status, detail):
    return doctor.Check(name, status, detail)


def test_backend_check_fails_when_nothing_can_build():
    no_idf = _chk("ESP-IDF", doctor.WARN, "IDF_PATH is not set")
    no_py = _chk("idf.py", doctor.WARN, "not found")
    no_pio = _chk("PlatformIO", doctor.WARN, doctor.PIO_MISSING)
    pio = _chk("PlatformIO", doctor.OK, "/usr/bin/pio; espressif32 in ~/.platformio")
    idf = _chk("ESP-IDF", doctor.OK, "v5.5.1 at /idf")
    py = _chk("idf.py", doctor.OK, "/idf/tools/idf.py")
    gcc = [_chk("toolchain esp32s3", doctor.OK, "/x/xtensa-esp32s3-elf-gcc"), _chk("toolchain linux", doctor.OK, "gcc")]
    none = doctor.check_backends(no_idf, no_py, no_pio, {"esp32s3", "linux"})
    assert none.status == doctor.FAIL and "pip install platformio" in none.fix
    only_pio = doctor.check_backends(no_idf, no_py, pio, {"esp32s3", "linux"}, gcc)
    assert only_pio.status == doctor.WARN and "linux board needs ESP-IDF" in only_pio.detail
    assert doctor.check_backends(no_idf, no_py, pio, {"esp32s3"}).status == doctor.OK
    assert doctor.check_backends(idf, py, no_pio, {"esp32s3", "linux"}, gcc).status == doctor.OK
    old = _chk("ESP-IDF", doctor.FAIL, "v5.1.1 at /idf; firmware-src needs v5.4 or newer")
    assert doctor.check_backends(old, py, no_pio, {"linux"}).status == doctor.FAIL


def test_backend_check_says_which_board_builds_where_and_fails_without_an_xtensa_compiler():
    """ESP-IDF active but no xtensa-esp32s3-elf-gcc and no PlatformIO: only linux builds, so doctor
    fails (exit 1) and names the install.sh step; with PlatformIO the ESP32-S3 boards build there."""
    idf = _chk("ESP-IDF", doctor.OK, "v5.5.1 at /idf")
    py = _chk("idf.py", doctor.OK, "/idf/tools/idf.py")
    no_pio = _chk("PlatformIO", doctor.WARN, doctor.PIO_MISSING)
    pio = _chk("PlatformIO", doctor.OK, "/usr/bin/pio")
    no_gcc = [_chk("toolchain esp32s3", doctor.WARN, "xtensa-esp32s3-elf-gcc not on PATH"),
              _chk("toolchain linux", doctor.OK, "/usr/bin/gcc")]
    boards = {"esp32s3": ["freenove-s3", "sonatino"], "linux": ["linux"]}
    stuck = doctor.check_backends(idf, py, no_pio, {"esp32s3", "linux"}, no_gcc, boards)
    assert stuck.status == doctor.FAIL
    assert "esp32s3 (freenove-s3, sonatino): nothing; linux (linux): ESP-IDF" in stuck.detail
    assert "xtensa-esp32s3-elf-gcc" in stuck.detail and "install.sh esp32s3" in stuck.fix
    via_pio = doctor.check_backends(idf, py, pio, {"esp32s3", "linux"}, no_gcc, boards)
    assert via_pio.status == doctor.OK
    assert via_pio.detail == "esp32s3 (freenove-s3, sonatino): PlatformIO; linux (linux): ESP-IDF"


def test_doctor_exits_1_without_a_build_backend_and_reports_on_stdout(invoke, monkeypatch):
    monkeypatch.setattr(doctor, "check_platformio", lambda env: doctor.Check("PlatformIO", doctor.WARN,
                                                                             doctor.PIO_MISSING, "pip install platformio"))
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    result = invoke("doctor")
    assert result.exit_code == 1
    assert "fail build backend: no build tool usable" in result.stdout  # the report is the result: stdout
    assert "python:" in result.stdout and "Traceback" not in result.output
