"""`rtflash monitor` end to end: a socket:// or pty device, in-process (CliRunner) and the installed script."""

from __future__ import annotations

import json
import os
import random
import re
import select
import subprocess
import tempfile
import termios
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.test_canary import API_KEY, PASSWORD

BOOT = (b"ESP-ROM:esp32s3-20210327\r\n"
        b"\x1b[0;32mI (25) boot: ESP-IDF v5.5.1 2nd stage bootloader\x1b[0m\r\n"
        b"\x1b[0;32mI (310) rtflash: firmware 0.1.0 board sonatino\x1b[0m\r\n"
        b"\x1b[0;32mI (1200) wifi_sta: connected to HomeNet\x1b[0m\r\n"
        b"\x1b[0;33mW (1300) wifi_sta: disconnected (reason 201), retry in 2000 ms\x1b[0m\r\n"
        b"\x1b[0;32mI (3500) wifi_sta: got ip: 192.168.1.23\x1b[0m\r\n"
        b"D (3600) esp_netif: debug chatter\r\n"
        b"\x1b[0;32mI (4100) rt_session: peer state: CONNECTED\x1b[0m\r\n"
        b"\x1b[0;32mI (4200) rt_session: datachannel open: oai-events\x1b[0m\r\n"
        b"\x1b[0;32mI (4300) rt_session: event: session.created\x1b[0m\r\n"
        b"binary \x00\xff\xfe noise\r\n"
        b"esp32> ")
BOOT_TEXT = ["ESP-ROM:esp32s3-20210327", "I (25) boot: ESP-IDF v5.5.1 2nd stage bootloader",
             "I (310) rtflash: firmware 0.1.0 board sonatino", "I (1200) wifi_sta: connected to HomeNet",
             "W (1300) wifi_sta: disconnected (reason 201), retry in 2000 ms",
             "I (3500) wifi_sta: got ip: 192.168.1.23", "D (3600) esp_netif: debug chatter",
             "I (4100) rt_session: peer state: CONNECTED", "I (4200) rt_session: datachannel open: oai-events",
             "I (4300) rt_session: event: session.created", "binary \\x00\\xff\\xfe noise", "esp32> "]
STATUS = ("wifi 192.168.1.23 | webrtc CONNECTED | dc oai-events open | event session.created (#1) "
          "| fw 0.1.0 on sonatino")


def ended_with_the_device(result, url: str) -> bool:
    """--no-reconnect and the device went away: exit 1, and the last line of stderr is the one error line."""
    last = result.stderr.strip().splitlines()[-1]
    assert result.exit_code == 1 and last == (
        f"error: port {url} gone (read failed: socket disconnected) and --no-reconnect was given: check the "
        "device and its cable, or leave out --no-reconnect to wait for it to come back"), result.stderr
    assert "Traceback" not in result.stderr and "--- port" not in result.stderr, "said once"
    return True


def test_shows_parsed_lines_and_ends_with_the_stream(invoke, device_server):
    server = device_server(BOOT)
    result = invoke("monitor", "--port", server.url, "--no-reconnect")
    assert ended_with_the_device(result, server.url)
    assert result.stdout.splitlines() == BOOT_TEXT
    err = result.stderr.splitlines()
    assert err[0] == f"--- monitoring {server.url} at 115200 baud"
    assert f"--- status: {STATUS}" in err


def test_colour_follows_rich_and_no_color_turns_it_off(invoke, device_server):
    server = device_server(BOOT)
    coloured = invoke("monitor", "--port", server.url, "--no-reconnect", env={"FORCE_COLOR": "1", "NO_COLOR": None})
    assert "\x1b[32mI (25) boot: ESP-IDF v5.5.1 2nd stage bootloader\x1b[0m\n" in coloured.stdout
    server = device_server(BOOT)
    plain = invoke("monitor", "--port", server.url, "--no-reconnect", env={"FORCE_COLOR": "1", "NO_COLOR": "1"})
    assert "I (25) boot: ESP-IDF v5.5.1 2nd stage bootloader\n" in plain.stdout
    assert not re.search(r"\x1b\[[0-9;]*m", plain.stdout), "NO_COLOR: no styling at all"


def test_json_lines_and_status_objects(invoke, device_server):
    server = device_server(BOOT)
    result = invoke("monitor", "--port", server.url, "--no-reconnect", "--json")
    assert ended_with_the_device(result, server.url)
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    lines = [r for r in rows if r["type"] == "line"]
    assert [r["text"] for r in lines] == BOOT_TEXT
    assert lines[5] | {"host_time": 0} == {"type": "line", "host_time": 0, "level": "I", "device_time": "3500",
                                           "tag": "wifi_sta", "message": "got ip: 192.168.1.23",
                                           "text": "I (3500) wifi_sta: got ip: 192.168.1.23", "kind": "log"}
    assert rows.index(lines[5]) < rows.index(next(r for r in rows if r["type"] == "status" and r.get("ip")))
    assert [r for r in rows if r["type"] == "status"][-1]["summary"] == STATUS


def test_filter_applies_to_the_screen_and_the_log_keeps_everything(invoke, device_server, project):
    server = device_server(BOOT)
    log = project / "logs" / "device.log"
    result = invoke("monitor", "--port", server.url, "--no-reconnect", "--filter", "wifi_sta:W",
                    "--filter", "rt_session:I", "--log", str(log))
    assert ended_with_the_device(result, server.url)
    assert result.stdout.splitlines() == [
        "W (1300) wifi_sta: disconnected (reason 201), retry in 2000 ms",
        "I (4100) rt_session: peer state: CONNECTED", "I (4200) rt_session: datachannel open: oai-events",
        "I (4300) rt_session: event: session.created"]
    saved = log.read_text().splitlines()
    assert saved[0] == f"--- rtflash: monitoring {server.url} at 115200 baud"
    assert saved[1:-1] == BOOT_TEXT
    assert saved[-1] == f"--- rtflash: port {server.url} gone (read failed: socket disconnected)"


def test_timeout_ends_a_quiet_monitor(invoke, device_server):
    server = device_server(lambda conn: (conn.sendall(b"I (1) app: hello\r\n"), server.drain(conn, 10)))
    start = time.monotonic()
    result = invoke("monitor", "--port", server.url, "--timeout", "1")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "I (1) app: hello\n" and time.monotonic() - start < 8


def test_reconnect_shows_everything_after_the_reopen(invoke, device_server):
    after = b"".join(b"I (%d) boot: line %d after the reset\r\n" % (i, i) for i in range(2000))
    server = device_server(b"I (9) app: before the reset\r\n", after)
    result = invoke("monitor", "--port", server.url, "--timeout", "3")
    assert result.exit_code == 0, result.stderr
    out = result.stdout.splitlines()
    assert out == ["I (9) app: before the reset"] + [f"I ({i}) boot: line {i} after the reset" for i in range(2000)]
    err = result.stderr.splitlines()
    assert len(err) == 3, "one line per reconnect, none while waiting"
    assert re.fullmatch(rf"--- reconnected on {re.escape(server.url)} after \d+\.\d s "
                        r"\(port gone: read failed: socket disconnected\)", err[1]), err
    assert err[2] == (f"--- stopped while waiting for {server.url} to come back "
                      "(port gone: read failed: socket disconnected)")


def test_raw_passes_bytes_through(invoke, device_server, project):
    server = device_server(BOOT)
    log = project / "raw.log"
    result = invoke("monitor", "--port", server.url, "--no-reconnect", "--raw", "--log", str(log))
    assert ended_with_the_device(result, server.url)
    assert result.stdout_bytes == BOOT and log.read_bytes() == BOOT


def test_backtrace_decoded_under_its_line(invoke, device_server, crash_elf):
    sym, src = crash_elf["symbols"], crash_elf["source"]
    pc = sym["crash_now"] + 4
    panic = (b"Guru Meditation Error: Core  0 panic'ed (LoadProhibited). Exception was unhandled.\r\n\r\n"
             b"Backtrace: 0x%08x:0x3fc9a2f0 0x%08x:0x3fc9a310\r\n\r\nRebooting...\r\n" % (pc, sym["main"] + 4))
    server = device_server(panic)
    result = invoke("monitor", "--board", "linux", "--port", server.url, "--no-reconnect",
                    "--elf", str(crash_elf["elf"]))
    assert ended_with_the_device(result, server.url)
    out = result.stdout.splitlines()
    at = out.index(f"Backtrace: 0x{pc:08x}:0x3fc9a2f0 0x{sym['main'] + 4:08x}:0x3fc9a310")
    assert out[at + 1] == f"  0x{pc:08x}: crash_now at {src}:9"
    assert out[at + 2].startswith(f"  0x{sym['main'] + 4:08x}: main at {src}:")
    assert out[at + 3:] == ["", "Rebooting..."]


def test_missing_toolchain_and_wrong_elf_are_said_once(invoke, device_server, crash_elf, project):
    pc = crash_elf["symbols"]["crash_now"] + 4
    stream = (b"I (30) app_init: ELF file SHA256:  00112233445566778\r\n"
              + b"Backtrace: 0x%08x:0x3fc9a2f0\r\n" % pc * 3
              + b"ELF file SHA256: 00112233445566778\r\n")
    server = device_server(stream)
    result = invoke("monitor", "--board", "sonatino", "--port", server.url, "--no-reconnect",
                    "--elf", str(crash_elf["elf"]), env={"PATH": "/usr/bin:/bin"})
    assert ended_with_the_device(result, server.url)
    err = result.stderr
    assert err.count("xtensa-esp32s3-elf-addr2line not found on PATH") == 1
    assert err.count("different firmware") == 1
    assert result.stdout.count("Backtrace:") == 3 and " at " not in result.stdout


def test_no_elf_from_a_missing_build_is_said_once(invoke, device_server):
    server = device_server(b"Backtrace: 0x42001234:0x3fc9a2f0\r\n" * 2)
    result = invoke("monitor", "--board", "sonatino", "--port", server.url, "--no-reconnect")
    assert ended_with_the_device(result, server.url)
    assert result.stderr.count("no ELF to decode backtraces with: build first "
                               "(rtflash build --board sonatino) or pass --elf FILE") == 1


def test_wrong_baud_says_which_to_try_once(invoke, device_server):
    rng = random.Random(3)
    server = device_server(bytes(rng.randrange(256) for _ in range(6000)))
    result = invoke("monitor", "--port", server.url, "--no-reconnect", "--baud", "921600")
    assert ended_with_the_device(result, server.url)
    assert result.stderr.count("try --baud 115200") == 1
    assert "wrong baud rate?" in result.stderr


def test_canary_secrets_are_masked_on_screen_in_the_log_and_in_json(invoke, device_server, project):
    (project / ".env").write_text(f"OPENAI_API_KEY={API_KEY}\n")
    leak = (f"I (5) wifi_sta: joining with password {PASSWORD}\r\n"
            f"D (6) rt_session: Authorization: Bearer {API_KEY}\r\n"
            f"half a key: {API_KEY[:12]}").encode()
    for extra in ([], ["--json"], ["--raw"]):
        server = device_server(leak)
        log = project / f"leak{len(extra)}{''.join(extra)}.log"
        result = invoke("monitor", "--port", server.url, "--no-reconnect", "--log", str(log), *extra,
                        env={"RTFLASH_WIFI_PASSWORD": PASSWORD})
        assert ended_with_the_device(result, server.url)
        for where, text in (("stdout", result.stdout), ("stderr", result.stderr), ("log", log.read_text())):
            assert PASSWORD not in text and API_KEY[10:] not in text, f"leak in {where} with {extra}"
        assert result.stdout.count("********") >= 2, "masked, not dropped"


@pytest.mark.parametrize("args, message", [
    (["--port", "/dev/ttyNOPE0"], "error: serial port /dev/ttyNOPE0 not found"),
    (["--port", "socket://127.0.0.1:9"], "error: nothing is listening at socket://127.0.0.1:9"),
    (["--port", "socket://x:1", "--filter", "wifi:Q"], "error: --filter 'wifi:Q': use TAG:LEVEL"),
    (["--port", "socket://x:1", "--grep", "(unclosed"], "error: --grep '(unclosed': not a valid regular expression"),
    (["--port", "socket://x:1", "--raw", "--json"], "error: --raw and --json do not mix"),
    (["--port", "socket://x:1", "--board", "nosuch"], "error: unknown board 'nosuch'"),
])
def test_bad_input_is_one_line(invoke, args, message):
    result = invoke("monitor", *args)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), result.stderr
    assert "Traceback" not in result.stderr


def test_elf_that_is_not_an_elf_and_unwritable_log_are_one_line(invoke, device_server, project):
    (project / "app.bin").write_bytes(b"\xe9\x03\x02\x20" * 8)
    server = device_server(BOOT)
    result = invoke("monitor", "--port", server.url, "--elf", "app.bin")
    assert result.exit_code == 1 and result.stderr.strip() == (
        "error: --elf app.bin is not an ELF file; pass build/<board>/<app>.elf (not the .bin)")
    (project / "afile").write_text("")
    result = invoke("monitor", "--port", server.url, "--log", "afile/x.log")
    assert result.exit_code == 1 and result.stderr.strip().startswith("error: --log afile/x.log: cannot write")


def test_busy_port_is_one_line(invoke):
    import serial

    master, slave = os.openpty()
    path = os.ttyname(slave)
    holder = serial.Serial(path, 115200, exclusive=True)
    try:
        result = invoke("monitor", "--port", path)
        assert result.exit_code == 1
        assert result.stderr.strip().startswith(f"error: {path} is busy: close the other program")
    finally:
        holder.close()
        os.close(master)
        os.close(slave)


def run_exe(exe: str, *args: str, cwd, env=None, user=None, timeout=60) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("RTFLASH_", "WIFI_", "OPENAI_"))}
    argv = [exe, *args]
    if user is not None:
        argv = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *argv]
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False,
                          env={**clean, "COLUMNS": "200", **(env or {})})


def test_installed_script_against_a_socket_device(rtflash_exe, project, device_server):
    server = device_server(BOOT)
    result = run_exe(rtflash_exe, "monitor", "--port", server.url, "--no-reconnect", "--timestamps", cwd=project)
    assert result.returncode == 1 and result.stderr.strip().splitlines()[-1].startswith(
        f"error: port {server.url} gone"), result.stderr
    out = result.stdout.splitlines()
    assert [re.sub(r"^\d\d:\d\d:\d\d\.\d{3} ", "", line) for line in out] == BOOT_TEXT
    assert all(re.match(r"\d\d:\d\d:\d\d\.\d{3} ", line) for line in out)


def test_installed_script_masks_secrets_from_the_environment(rtflash_exe, project, device_server):
    server = device_server(f"I (1) wifi_sta: pw {PASSWORD} key {API_KEY}\r\n".encode())
    result = run_exe(rtflash_exe, "monitor", "--port", server.url, "--no-reconnect", "--json", cwd=project,
                     env={"WIFI_PASSWORD": PASSWORD, "OPENAI_API_KEY": API_KEY})
    assert result.returncode == 1 and result.stderr.strip().splitlines()[-1].startswith(
        f"error: port {server.url} gone"), result.stderr
    assert PASSWORD not in result.stdout + result.stderr and API_KEY[10:] not in result.stdout + result.stderr
    assert json.loads(result.stdout.splitlines()[0])["message"] == "pw ******** key ********"


def test_permission_denied_is_one_line_with_the_fix(rtflash_exe):
    master, slave = os.openpty()
    path = os.ttyname(slave)
    os.chmod(path, 0o600)
    workdir = tempfile.mkdtemp()
    os.chmod(workdir, 0o755)
    try:
        user = 65534 if os.geteuid() == 0 else None  # root may open anything: run as nobody
        if user is None:
            os.chmod(path, 0o000)
        result = run_exe(rtflash_exe, "monitor", "--port", path, cwd=workdir, user=user,
                         env={"HOME": workdir})
        assert result.returncode == 1
        assert result.stderr.strip().splitlines() == [
            (f"error: permission denied on {path}: add yourself to the serial group (sudo usermod -aG dialout "
             "$USER, then log in again; 'uucp' on Arch) or install the udev rule shown by `rtflash doctor`")]
    finally:
        os.close(master)
        os.close(slave)
        os.rmdir(workdir)


def read_until(fd: int, needle: str, seen: list[str], timeout: float = 15.0) -> str:
    """Read a pty master until the ANSI-stripped output contains `needle`."""
    end = time.monotonic() + timeout
    while True:
        text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", "".join(seen))
        if needle in text:
            return text
        assert time.monotonic() < end, f"{needle!r} not shown; got {text[-2000:]!r}"
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                seen.append(os.read(fd, 65536).decode("utf-8", "replace"))
            except OSError:
                pass


@contextmanager
def on_a_terminal(argv: list[str], cwd, env: dict):
    """Run `argv` with a pty as its terminal; yields (process, master fd, slave fd, the terminal settings
    from before it started); always cleans up."""
    master, slave = os.openpty()
    before = termios.tcgetattr(slave)
    proc = subprocess.Popen(argv, cwd=cwd, stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                            env=env)
    try:
        yield proc, master, slave, before
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
        os.close(slave)


def test_keys_on_a_real_terminal(rtflash_exe, project, device_server):
    """Ctrl-T T, Ctrl-T R, typing, Ctrl-] over a pty stdin; the terminal settings come back unchanged."""
    server = device_server(lambda conn: (conn.sendall(BOOT), server.drain(conn, 30)))
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("RTFLASH_", "WIFI_", "OPENAI_", "NO_COLOR"))}
    argv = [rtflash_exe, "monitor", "--port", server.url, "--timeout", "60"]
    env = {**clean, "TERM": "xterm-256color", "COLUMNS": "120"}
    with on_a_terminal(argv, project, env) as (proc, master, slave, before):
        seen: list[str] = []
        read_until(master, "Ctrl-] quit | Ctrl-T H help", seen)
        read_until(master, "event: session.created", seen)
        os.write(master, b"\x14t")
        read_until(master, "host timestamps on", seen)
        os.write(master, b"\x14r")
        read_until(master, "reset the device (EN pulsed through RTS)", seen)
        os.write(master, b"\x14h")
        read_until(master, "Ctrl-T F rebuild + flash", seen)
        os.write(master, b"help\r")
        end = time.monotonic() + 10
        while bytes(server.received) != b"help\r" and time.monotonic() < end:
            time.sleep(0.05)
        assert bytes(server.received) == b"help\r"
        os.write(master, b"\x1d")
        assert proc.wait(timeout=15) == 0
        text = read_until(master, f"--- status: {STATUS}", seen)
        assert "\x1b[32mI (25) boot: ESP-IDF v5.5.1" in "".join(seen), "coloured on a terminal"
        assert "binary \\x00\\xff\\xfe noise" in text
        assert termios.tcgetattr(slave) == before, "terminal restored"


def test_terminal_restored_when_killed(rtflash_exe, project, device_server):
    """SIGTERM (a closed terminal sends SIGHUP) still runs the cleanup: terminal settings, log file."""
    import signal

    server = device_server(lambda conn: (conn.sendall(BOOT), server.drain(conn, 30)))
    log = project / "killed.log"
    argv = [rtflash_exe, "monitor", "--port", server.url, "--log", str(log)]
    with on_a_terminal(argv, project, {**os.environ, "TERM": "xterm-256color"}) as (proc, master, slave, before):
        seen: list[str] = []
        read_until(master, "event: session.created", seen)
        assert termios.tcgetattr(slave) != before, "cbreak while running"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 128 + signal.SIGTERM
        assert termios.tcgetattr(slave) == before, "terminal restored"
        assert log.read_text().splitlines()[1:] == BOOT_TEXT, "the log is complete and closed"
        read_until(master, "terminated (SIGTERM)", seen)
        assert "error: terminated (SIGTERM)" in "".join(seen) and "Traceback" not in "".join(seen)


def test_rebuild_key_builds_flashes_and_resumes(project, fake_idf, emulators):
    """Ctrl-T F: the port is closed, the same build and fast reflash run, the monitor shows the new app's log."""
    import io
    import queue

    from rtflash.cli import App
    from rtflash.cli.monitor import make_rebuild
    from rtflash.monitor.keys import Action
    from rtflash.monitor.reader import SerialReader
    from rtflash.monitor.session import Monitor, MonitorOptions
    from rtflash.monitor.view import View

    emu = emulators()
    app = App(project_dir=project)
    board = app.board("sonatino")
    reader = SerialReader(emu.url, 115200, queue.Queue(), retry=0.05)
    out, err = io.StringIO(), io.StringIO()

    class StopWhenBooted(View):
        def show(self, lines):
            super().show(lines)
            if "got ip" in out.getvalue():
                reader.events.put(("key", Action("quit")))

    view = StopWhenBooted(out, err, "plain")
    reader.events.put(("key", Action("rebuild")))
    reason = Monitor(MonitorOptions(url=emu.url, timeout=60), reader, view=view,
                     rebuild=make_rebuild(app, board)).run()
    assert reason == "quit", err.getvalue()
    assert emu.chip.app_started == 1
    notices = err.getvalue().splitlines()
    assert notices[:2] == ["--- rebuilding and flashing; the monitor resumes afterwards", "--- flashed; resuming"]
    assert f"--- resumed on {emu.url}" in notices
    assert "I (25) boot: ESP-IDF v5.5.1 2nd stage bootloader" in out.getvalue().splitlines()
    assert (Path(project) / "build" / "sonatino" / "flasher_args.json").is_file()


# --- a secret split by a stalled device, real time, the installed script ------------------------

DRIP = f"pw {PASSWORD} key sk-test-CANARY12\r\n".encode()


def _split_plan() -> list[tuple[int, float]]:
    """(cut, pause) per copy of the line: cuts before, in and at the edges of each secret; ~2 s of pauses."""
    from tests.test_monitor_session import LINE, SHAPED_KEY

    pw, key, shaped = (LINE.index(s.encode()) for s in (PASSWORD, API_KEY, SHAPED_KEY))
    return [(pw + 5, 0.15), (key + 1, 0.3), (key + 3, 1.0), (key + 20, 0.0), (shaped + 2, 0.5),
            (shaped + 10, 0.2), (pw - 1, 0.25)]


def _stalling_device(line: bytes, plan: list[tuple[int, float]]):
    def session(conn):
        for cut, pause in plan:
            conn.sendall(line[:cut])
            time.sleep(pause)
            conn.sendall(line[cut:])
        time.sleep(0.2)
    return session


def _start_exe(exe: str, *args: str, cwd, env: dict, stdin=None) -> subprocess.Popen:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("RTFLASH_", "WIFI_", "OPENAI_", "NO_COLOR"))}
    return subprocess.Popen([exe, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**clean, "COLUMNS": "200", **env}, stdin=stdin or subprocess.DEVNULL)


def test_installed_script_never_shows_a_secret_split_by_a_stalled_device(rtflash_exe, project, device_server):
    """Screen, --json and --log, a socket:// device that stalls 0-1 s inside each secret, and a pty that
    drips a line one byte at a time. (Every byte position and pause: test_monitor_session.py.)"""
    from tests.test_monitor_session import LINE, MASKED

    secrets = {"RTFLASH_WIFI_PASSWORD": PASSWORD, "OPENAI_API_KEY": API_KEY}
    plan = _split_plan()
    runs = {}
    for name, extra in (("json", ["--json"]), ("plain", [])):
        server = device_server(_stalling_device(LINE, plan))
        log = project / f"{name}.log"
        runs[name] = (_start_exe(rtflash_exe, "monitor", "--port", server.url, "--no-reconnect", "--log", str(log),
                                 *extra, cwd=project, env=secrets), log, server)
    master, slave = os.openpty()
    drip_log = project / "drip.log"
    drip = _start_exe(rtflash_exe, "monitor", "--port", os.ttyname(slave), "--no-reconnect", "--log", str(drip_log),
                      cwd=project, env=secrets)
    try:
        assert drip.stderr.readline().startswith("--- monitoring"), "the monitor opened the pty"
        for i in range(len(DRIP)):  # a pause past the idle flush after every other byte: ~2.5 s
            os.write(master, DRIP[i:i + 1])
            time.sleep(0.11 if i % 2 else 0.0)
        time.sleep(0.3)
        os.close(master)
        drip_out, drip_err = drip.communicate(timeout=30)
    finally:
        if drip.poll() is None:
            drip.kill()
        os.close(slave)
    outputs = {name: proc.communicate(timeout=60) + (log.read_text(), server) for name, (proc, log, server) in runs.items()}

    for name, (out, err, saved, server) in outputs.items():
        for where, text in (("stdout", out), ("stderr", err), ("log", saved)):
            assert PASSWORD not in text and API_KEY[3:] not in text and "CANARY12" not in text, (name, where, text)
        shown = [json.loads(row)["text"] for row in out.splitlines()] if name == "json" else out.splitlines()
        assert "".join(shown) == MASKED * len(plan), (name, shown)
        if name == "json":
            assert len(shown) > len(plan), "the stalled lines were shown in pieces, up to each secret"
        else:  # piped: a line paused mid-secret stays one line (its pieces are written as they come)
            assert shown == [MASKED] * len(plan), shown
        assert saved.splitlines()[1:-1] == [MASKED] * len(plan)
        assert err.strip().splitlines()[-1].startswith(f"error: port {server.url} gone")
    masked_drip = "pw ******** key ********"
    assert PASSWORD not in drip_out + drip_log.read_text() and "CANARY12" not in drip_out + drip_log.read_text()
    assert drip_out == masked_drip + "\n" and drip_log.read_text().splitlines()[1] == masked_drip, drip_out
    assert drip.returncode == 1 and drip_err.strip().splitlines()[-1].startswith("error: port /dev/pts/")


def test_log_files_are_private(invoke, device_server, project):
    """--log is created 0600; an existing wider one is made 0600 before anything is written; /dev/null is left alone."""
    server = device_server(BOOT)
    fresh = project / "logs" / "fresh.log"
    ended_with_the_device(invoke("monitor", "--port", server.url, "--no-reconnect", "--log", str(fresh)), server.url)
    assert fresh.stat().st_mode & 0o777 == 0o600
    old = project / "old.log"
    old.write_text("an old log, readable by all\n" * 100)
    old.chmod(0o644)
    server = device_server(BOOT)
    ended_with_the_device(invoke("monitor", "--port", server.url, "--no-reconnect", "--raw", "--log", str(old)),
                          server.url)
    assert old.stat().st_mode & 0o777 == 0o600 and old.read_bytes() == BOOT
    null_mode = os.stat("/dev/null").st_mode
    server = device_server(BOOT)
    ended_with_the_device(invoke("monitor", "--port", server.url, "--no-reconnect", "--log", "/dev/null"), server.url)
    assert os.stat("/dev/null").st_mode == null_mode


def test_a_crash_resets_the_status_line(invoke, device_server):
    crash = (b"Guru Meditation Error: Core  0 panic'ed (LoadProhibited). Exception was unhandled.\r\n"
             b"Rebooting...\r\nets Jun  8 2016 00:22:57\r\n\r\nrst:0xc (RTC_SW_CPU_RST),boot:0x8 (SPI_FAST_FLASH_BOOT)\r\n")
    again = b"I (310) rtflash: firmware 0.1.0 board sonatino\r\nI (4300) rt_session: event: session.created\r\n"

    def device(conn):
        for part in (BOOT + b"\r\n", crash, again):
            conn.sendall(part)
            time.sleep(0.3)

    server = device_server(device)
    result = invoke("monitor", "--port", server.url, "--no-reconnect")
    assert ended_with_the_device(result, server.url)
    said = [ln.removeprefix("--- status: ") for ln in result.stderr.splitlines() if ln.startswith("--- status:")]
    assert said[-3:] == [STATUS, "device reset rst:0xc (RTC_SW_CPU_RST)",
                         "event session.created (#1) | fw 0.1.0 on sonatino"], "fresh: nothing stale, counter from 1"


def test_no_addr2line_is_said_once_before_the_register_dump(invoke, device_server, crash_elf, project):
    from tests.test_monitor_session import PANIC

    pc = crash_elf["symbols"]["crash_now"] + 4
    server = device_server(b"I (1) app: running\r\n" + PANIC.format(pc=pc).encode() + b"I (30) app: booted again\r\n")
    log = project / "panic.log"
    result = invoke("monitor", "--board", "sonatino", "--port", server.url, "--no-reconnect", "--log", str(log),
                    "--elf", str(crash_elf["elf"]), env={"PATH": "/usr/bin:/bin"})
    assert ended_with_the_device(result, server.url)
    assert result.stderr.count("xtensa-esp32s3-elf-addr2line not found on PATH") == 1
    saved = log.read_text().splitlines()
    at = next(i for i, text in enumerate(saved) if "addr2line not found" in text)
    assert saved[at - 1] == "I (1) app: running" and saved[at + 1].startswith("Guru Meditation Error")


def test_piped_first_line_is_never_lost_100_runs(invoke, project):
    """A device that talks the moment the port opens (a board reset by the open's DTR/RTS): its first
    line reaches the piped output in each of 100 runs (pyserial's open() flushes the input; the
    monitor opens without that flush)."""
    from tests.conftest import DeviceServer

    first = b"ESP-ROM:esp32s3-20210327\r\n"
    server = DeviceServer([first + b"I (25) boot: second line\r\n"] * 100, settle=0.0)
    try:
        lost = 0
        for _ in range(100):
            result = invoke("monitor", "--port", server.url, "--no-reconnect")
            lost += result.stdout.splitlines()[:1] != ["ESP-ROM:esp32s3-20210327"]
        assert lost == 0, f"first line lost in {lost} of 100 runs"
    finally:
        server.close()
