"""`rtflash flash`, `erase`, `ports` and `provision --port` against emulated devices, in-process and installed."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from rtflash import nvs
from tests.test_canary import API_KEY, PASSWORD, SSID, assert_no_canary, scan_tree

CREDS = {"RTFLASH_WIFI_SSID": SSID, "RTFLASH_WIFI_PASSWORD": PASSWORD, "RTFLASH_OPENAI_API_KEY": API_KEY}


@pytest.fixture
def built(invoke, fake_idf, project):
    result = invoke("build", "--board", "sonatino")
    assert result.exit_code == 0, result.stderr
    return json.loads((project / "build" / "sonatino" / "flasher_args.json").read_text())


def images(project, flasher_args):
    return {int(off, 16): (project / "build" / "sonatino" / rel).read_bytes()
            for off, rel in flasher_args["flash_files"].items()}


def on_device(emu, files) -> bool:
    return all(emu.chip.flash[off:off + len(data)] == data for off, data in files.items())


def test_flash_writes_build_and_credentials(invoke, built, project, emulators, monkeypatch):
    for k, v in CREDS.items():
        monkeypatch.setenv(k, v)
    emu = emulators()
    result = invoke("flash", "--board", "sonatino", "--port", emu.url)
    assert result.exit_code == 0, result.stderr
    assert on_device(emu, images(project, built))
    assert f"ok   {emu.url}: esp32s3 7c:df:a1:e0:c0:de: wrote" in result.stderr and "verified" in result.stderr
    stored = {i.key: i.value for i in nvs.read_image(bytes(emu.chip.flash[0x9000:0xF000])).items}
    assert stored["wifi_pass"] == PASSWORD and stored["api_key"] == API_KEY and stored["wifi_ssid"] == SSID
    assert_no_canary(result.output, "flash output")
    assert not (project / "build" / "sonatino" / "nvs.bin").exists(), "flash keeps the credentials in memory"


def test_flash_json_and_fast_reflash(invoke, built, project, emulators):
    emu = emulators()
    first = json.loads(invoke("flash", "--board", "sonatino", "--port", emu.url, "--no-credentials",
                              "--json").stdout)
    again = json.loads(invoke("flash", "--board", "sonatino", "--port", emu.url, "--no-credentials",
                              "--json").stdout)
    assert set(first) == {"port", "ok", "chip", "mac", "bytes_written", "bytes_skipped", "bytes_sent", "seconds",
                          "verified", "mode", "error", "warnings"}
    assert (again["mode"], again["verified"]) == ("unchanged", True)
    total = sum(len(d) for d in images(project, built).values())
    assert first["bytes_written"] + first["bytes_skipped"] == total == again["bytes_skipped"]
    assert first["bytes_written"] > 0.9 * total, "an erased device: only the image's own blank sectors are skipped"
    assert again["bytes_sent"] < 0.01 * first["bytes_written"]
    human = invoke("flash", "--board", "sonatino", "--port", emu.url, "--no-credentials")
    assert (f"7c:df:a1:e0:c0:de: already on the device ({total} bytes, MD5 verified), sent"
            in human.stderr)
    full = json.loads(invoke("flash", "--board", "sonatino", "--port", emu.url, "--no-credentials", "--full",
                             "--json").stdout)
    assert full["mode"] == "full" and full["bytes_sent"] > 10 * again["bytes_sent"]


def test_flash_parallel_one_row_each_exit_status(invoke, built, project, emulators):
    good = [emulators(mac=bytes([2, 0, 0, 0, 0, i])) for i in range(2)]
    bad = emulators(chip="esp32c3")
    args = ["flash", "--board", "sonatino", "--no-credentials", "--json"]
    for e in (good[0], bad, good[1]):
        args += ["--port", e.url]
    result = invoke(*args)
    assert result.exit_code == 1
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["ok"] for r in rows] == [True, False, True]
    assert all(on_device(e, images(project, built)) for e in good)


def test_flash_without_build_is_one_line(invoke, project):
    result = invoke("flash", "--board", "sonatino", "--port", "socket://127.0.0.1:9", "--no-credentials")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"error: no build of board sonatino in {project / 'build' / 'sonatino'}: run rtflash build --board sonatino"]


def test_flash_image_too_big_for_partition(invoke, built, project, emulators):
    app = project / "build" / "sonatino" / built["app"]["file"]
    app.write_bytes(app.read_bytes() + b"\0" * 0x400000)
    emu = emulators()
    result = invoke("flash", "--board", "sonatino", "--port", emu.url, "--no-credentials")
    assert result.exit_code == 1 and "(or --force to write anyway)" in result.stderr
    assert "partition 'ota_0'" in result.stderr and set(emu.chip.flash) == {0xFF}


def test_flash_missing_credentials_names_the_fix(invoke, built, emulators):
    result = invoke("flash", "--board", "sonatino", "--port", emulators().url)
    assert result.exit_code == 1 and "RTFLASH_WIFI_SSID" in result.stderr


def test_flash_linux_board(invoke):
    result = invoke("flash", "--board", "linux", "--port", "socket://127.0.0.1:9")
    assert result.exit_code == 1 and "rtflash exec --board linux" in result.stderr


def test_flash_port_auto_without_boards(invoke, built, monkeypatch):
    monkeypatch.setattr("rtflash.ports.list_ports", list)
    result = invoke("flash", "--board", "sonatino", "--no-credentials")
    assert result.exit_code == 1 and "no serial port found for --port auto" in result.stderr


def test_erase_region_and_bad_region(invoke, emulators):
    emu = emulators()
    emu.chip.flash[0x9000:0xA000] = b"\0" * 0x1000
    assert invoke("erase", "--board", "sonatino", "--port", emu.url, "--region", "0x9000", "0x6000").exit_code == 0
    assert set(emu.chip.flash[0x9000:0xF000]) == {0xFF}
    bad = invoke("erase", "--board", "sonatino", "--port", emu.url, "--region", "0x9001", "0x1000")
    assert bad.exit_code == 1 and "multiples of 0x1000" in bad.stderr


def test_erase_region_past_the_end_is_refused(invoke, emulators):
    emu = emulators()
    emu.chip.flash[0x7FF000:] = b"\0" * 0x1000
    past = invoke("erase", "--board", "sonatino", "--port", emu.url, "--region", "0x7ff000", "0x2000")
    assert past.exit_code == 1
    assert past.stderr.strip().splitlines() == [
        "error: --region 0x7ff000 0x2000: ends at 0x801000, past the end of board sonatino's 8MB flash "
        "(0x800000); give a region inside it"]
    forced = invoke("erase", "--board", "sonatino", "--port", emu.url, "--region", "0x7ff000", "0x2000", "--force")
    assert forced.exit_code == 1 and "past the end of the device's 8MB flash" in forced.stderr
    assert set(emu.chip.flash[0x7FF000:]) == {0}, "nothing erased"


def test_whole_chip_erase_needs_yes_without_a_terminal(invoke, emulators):
    emu = emulators()
    emu.chip.flash[0x100000:0x101000] = b"\0" * 0x1000
    refused = invoke("erase", "--board", "sonatino", "--port", emu.url)
    assert refused.exit_code == 1
    assert refused.stderr.strip().splitlines() == [
        f"error: erase the whole flash of {emu.url} (firmware and Wi-Fi/API settings): pass --yes to confirm "
        "(no terminal to ask on), or --region OFFSET SIZE"]
    assert emu.chip.connections == 0 and set(emu.chip.flash[0x100000:0x101000]) == {0}
    assert invoke("erase", "--board", "sonatino", "--port", emu.url, "--yes").exit_code == 0
    assert set(emu.chip.flash) == {0xFF}


def test_flash_erase_needs_yes_without_a_terminal(invoke, built, project, emulators):
    """`flash --erase` wipes the whole chip first, as `erase` does: same question, same --yes."""
    emu = emulators()
    emu.chip.flash[0x700000:0x701000] = b"\0" * 0x1000  # outside every image: only an erase clears it
    refused = invoke("flash", "--board", "sonatino", "--port", emu.url, "--erase", "--no-credentials")
    assert refused.exit_code == 1
    assert refused.stderr.strip().splitlines() == [
        f"error: erase the whole flash of {emu.url} (firmware and Wi-Fi/API settings): pass --yes to confirm "
        "(no terminal to ask on), or leave out --erase"]
    assert emu.chip.connections == 0
    done = invoke("flash", "--board", "sonatino", "--port", emu.url, "--erase", "--yes", "--no-credentials")
    assert done.exit_code == 0, done.stderr
    assert set(emu.chip.flash[0x700000:0x701000]) == {0xFF}
    assert on_device(emu, images(project, built))


def test_whole_chip_erase_asks_on_a_terminal(rtflash_exe, project, emulators):
    """The installed script on a pty: 'n' leaves the flash alone, 'y' erases it."""
    import pty
    import select
    import time

    emu = emulators()
    emu.chip.flash[0x100000:0x101000] = b"\0" * 0x1000
    for answer, code in (("n", 1), ("y", 0)):
        master, slave = pty.openpty()
        proc = subprocess.Popen([rtflash_exe, "erase", "--board", "sonatino", "--port", emu.url], cwd=project,
                                stdin=slave, stdout=slave, stderr=slave, env={**os.environ, "COLUMNS": "200"})
        os.close(slave)
        seen, deadline = b"", time.monotonic() + 30
        while b"[y/N]" not in seen and time.monotonic() < deadline:
            if select.select([master], [], [], 0.5)[0]:
                seen += os.read(master, 4096)
        assert b"erase the whole flash of " + emu.url.encode() in seen
        os.write(master, answer.encode() + b"\n")
        assert proc.wait(timeout=60) == code
        while select.select([master], [], [], 0.2)[0]:
            try:
                seen += os.read(master, 4096)
            except OSError:
                break
        os.close(master)
        if answer == "n":
            assert b"nothing erased" in seen and set(emu.chip.flash[0x100000:0x101000]) == {0}
    assert set(emu.chip.flash) == {0xFF}


def test_flash_force_never_offered_for_another_chip(invoke, built, project, emulators):
    """An image for one chip cannot run on another: refused with the fix, --force neither offered nor obeyed."""
    emu = emulators(chip="esp32c3")
    line = (f"error: {emu.url}: found ESP32-C3 but board sonatino is esp32s3, and an esp32s3 image cannot run on it: "
            "pick a board of that chip with --board")
    for extra in ((), ("--force",)):
        result = invoke("flash", "--board", "sonatino", "--port", emu.url, "--no-credentials", *extra)
        assert result.exit_code == 1 and result.stderr.strip().splitlines()[-1] == line
    assert set(emu.chip.flash) == {0xFF}


def test_flash_force_writes_to_a_smaller_flash_with_a_warning(invoke, built, project, emulators):
    emu = emulators(flash_mb=4)
    refused = invoke("flash", "--board", "sonatino", "--port", emu.url, "--no-credentials")
    assert refused.exit_code == 1 and "run again" not in refused.stderr
    assert "flash is 4MB but board sonatino needs 8MB; pick the right --board, or --force to write anyway" in \
        refused.stderr
    forced = invoke("flash", "--board", "sonatino", "--port", emu.url, "--no-credentials", "--force")
    assert forced.exit_code == 0, forced.stderr
    assert f"warning: {emu.url}: flash is 4MB but board sonatino needs 8MB (--force)" in forced.stderr
    assert on_device(emu, images(project, built))


def test_ports_lists_known_bridges(invoke, monkeypatch):
    from rtflash.ports import PortInfo

    monkeypatch.setattr("rtflash.ports.list_ports", lambda: [
        PortInfo("/dev/ttyACM0", 0x303A, 0x1001, "F4:12:FA:00:11:22", "USB JTAG/serial debug unit", "1-2",
                 "usb-serial-jtag"),
        PortInfo("/dev/ttyS0")])
    rows = json.loads(invoke("ports", "--json").stdout)
    assert [(r["device"], r["usb_id"], r["bridge"]) for r in rows] == [("/dev/ttyACM0", "303a:1001", "usb-serial-jtag")]
    assert len(json.loads(invoke("ports", "--all", "--json").stdout)) == 2


def test_provision_port_writes_only_the_nvs_partition(invoke, project, emulators, monkeypatch):
    for k, v in CREDS.items():
        monkeypatch.setenv(k, v)
    emu = emulators()
    result = invoke("provision", "--board", "sonatino", "--port", emu.url)
    assert result.exit_code == 0, result.stderr
    assert nvs.read_image(bytes(emu.chip.flash[0x9000:0xF000])).items
    assert set(emu.chip.flash[:0x9000]) == {0xFF} and set(emu.chip.flash[0xF000:]) == {0xFF}
    assert not (project / "build" / "sonatino" / "nvs.bin").exists()
    assert_no_canary(result.output, "provision output")


def test_installed_script_flash_never_leaks_the_canary(rtflash_exe, built, project, emulators):
    """End to end: the installed script, credentials from the environment, a device, then every file."""
    emu = emulators()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("RTFLASH_WIFI", "RTFLASH_OPENAI"))},
           **CREDS, "COLUMNS": "200"}
    for argv in (["flash", "--board", "sonatino", "--port", emu.url],
                 ["--verbose", "flash", "--board", "sonatino", "--port", emu.url, "--json"]):
        result = subprocess.run([rtflash_exe, *argv], cwd=project, env=env, capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, result.stderr
        assert_no_canary(result.stdout + result.stderr, " ".join(argv))
    assert PASSWORD.encode() in emu.chip.flash, "the canary must reach the device, or the test proves nothing"
    assert scan_tree(project) >= 5
    cache = os.environ["RTFLASH_CACHE_DIR"]
    cached = [os.path.join(d, f) for d, _, fs in os.walk(cache) for f in fs]
    assert cached and all(PASSWORD.encode() not in open(p, "rb").read() for p in cached)


def _signal_mid_write(rtflash_exe, project, emu, sig):
    """Start the installed `rtflash flash` on a slow emulated wire, send `sig` after 5 blocks; returns
    (the process, its stderr, its argv, its env) so a test can check the one line and run it again."""
    import time

    env = {**os.environ, "COLUMNS": "200"}
    argv = [rtflash_exe, "flash", "--board", "sonatino", "--port", emu.url, "--no-credentials"]
    proc = subprocess.Popen(argv, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while emu.chip.blocks < 5 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    return proc, err, argv, env


def test_ctrl_c_mid_write_is_one_line_and_a_rerun_finishes(rtflash_exe, built, project, emulators):
    import signal

    emu = emulators(baud=115200)  # a wire as slow as a real one, so there is time to interrupt
    proc, err, argv, env = _signal_mid_write(rtflash_exe, project, emu, signal.SIGINT)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == ("error: interrupted: the device stays in its bootloader; run the same "
                                            "command again to finish (it writes only what is still missing, and "
                                            "verifies)")
    assert not on_device(emu, images(project, built))
    emu.baud = None
    again = subprocess.run([*argv, "--json"], cwd=project, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert on_device(emu, images(project, built))
    row = json.loads(again.stdout)
    assert row["bytes_skipped"] > 0, "what the cut write got onto the device is not written again"
    assert row["bytes_written"] + row["bytes_skipped"] == sum(len(d) for d in images(project, built).values())


def test_flash_off_a_terminal_prints_progress_lines_at_most_one_a_second(invoke, built, project, emulators):
    """stderr is not a terminal here (CliRunner, like a pipe or a CI log): no live bar, but a line per
    second or less while the write runs, so a long write is not silent."""
    import re

    emu = emulators(baud=3_000_000)  # a wire slow enough for a write of a few seconds
    result = invoke("flash", "--board", "sonatino", "--port", emu.url, "--no-credentials")
    assert result.exit_code == 0, result.stderr
    seconds = float(re.search(r"in ([0-9.]+) s, verified", result.stderr).group(1))
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith(f"{emu.url}: ") and "%" in ln]
    assert seconds > 2 and 2 <= len(lines) <= seconds + 1, (seconds, result.stderr)
    assert all(re.fullmatch(rf"{re.escape(emu.url)}: .+ \d+% \(\d+ of \d+\)", ln) for ln in lines), lines
    assert "\r" not in result.stderr and "\x1b[" not in result.stderr, "no live bar redraws in a pipe"


def test_reflash_after_ctrl_c_that_cannot_reach_the_device_says_so_within_10_s(rtflash_exe, built, project,
                                                                                emulators):
    """Ctrl-C mid-write, then the device stops answering (its port still open: unplugged behind a hub,
    a wedged bridge): the re-run says so, one line with the fix, well within 10 s, and the piped first
    run printed progress lines while it wrote."""
    import signal
    import socket
    import threading
    import time

    emu = emulators(baud=115200)
    env = {**os.environ, "COLUMNS": "200"}
    argv = [rtflash_exe, "flash", "--board", "sonatino", "--port", emu.url, "--no-credentials"]
    proc = subprocess.Popen(argv, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while emu.chip.blocks < 5 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(1.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and f"{emu.url}: writing at" in err, err
    port = emu.port
    emu.close()
    silent = socket.create_server(("127.0.0.1", port))  # the same URL, now nothing answers on it
    held: list[socket.socket] = []

    def accept() -> None:
        silent.settimeout(15)
        try:
            while True:
                held.append(silent.accept()[0])
        except OSError:
            return

    threading.Thread(target=accept, daemon=True).start()
    try:
        start = time.monotonic()
        again = subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True, timeout=60, check=False)
        took = time.monotonic() - start
    finally:
        silent.close()
        for conn in held:
            conn.close()
    assert again.returncode == 1 and took < 10, (took, again.stderr)
    errors = [ln for ln in again.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "no ESP32 bootloader answered" in errors[0] and "hold BOOT" in errors[0], again.stderr


def test_sigterm_mid_write_is_one_line_and_exit_143(rtflash_exe, built, project, emulators):
    """SIGTERM (a service manager, CI's timeout) stops the write like Ctrl-C: one line, exit 143."""
    import signal

    emu = emulators(baud=115200)
    proc, err, _, _ = _signal_mid_write(rtflash_exe, project, emu, signal.SIGTERM)
    assert proc.returncode == 143, err
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert errors == [("error: terminated (SIGTERM): the device stays in its bootloader; run the same command "
                       "again to finish (it writes only what is still missing, and verifies)")], err
    assert "Traceback" not in err
