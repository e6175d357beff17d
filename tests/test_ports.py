"""rtflash.ports: bridge guesses, --port auto, finding a re-enumerated device, one-line open errors."""

from __future__ import annotations

import errno
import os
import tty

import pytest

from rtflash import ports
from rtflash.boards import load_catalog
from rtflash.errors import PortError
from rtflash.ports import PortInfo

JTAG = PortInfo("/dev/ttyACM0", 0x303A, 0x1001, "F4:12:FA:00:11:22", "USB JTAG/serial debug unit", "1-2",
                "usb-serial-jtag")
CH343 = PortInfo("/dev/ttyUSB0", 0x1A86, 0x55D3, "5434012345", "USB Single Serial", "1-3", "ch34x")
PLAIN = PortInfo("/dev/ttyS0")


@pytest.mark.parametrize(("vid", "pid", "bridge"), [
    (0x303A, 0x1001, "usb-serial-jtag"), (0x303A, 0x4001, "espressif-usb"), (0x10C4, 0xEA60, "cp210x"),
    (0x1A86, 0x7523, "ch34x"), (0x0403, 0x6001, "ftdi"), (0x1234, 0x5678, "unknown"), (None, None, "unknown")])
def test_bridge_of(vid, pid, bridge):
    assert ports.bridge_of(vid, pid) == bridge


def test_auto_picks_the_only_candidate_and_prefers_the_boards_usb_id():
    freenove = load_catalog(None).get("freenove-s3")
    assert ports.resolve("auto", ports=[PLAIN, CH343]) == "/dev/ttyUSB0"
    assert ports.resolve("auto", freenove, ports=[PLAIN, CH343, PortInfo("/dev/ttyUSB1", 0x0403, 0x6001,
                                                                        bridge="ftdi")]) == "/dev/ttyUSB0"


def test_auto_with_none_or_several_is_one_line():
    with pytest.raises(PortError, match=r"^no serial port found for --port auto: plug the board in"):
        ports.resolve("auto", ports=[PLAIN])
    with pytest.raises(PortError, match=r"several serial ports could be the board \(/dev/ttyACM0, /dev/ttyUSB0\)"):
        ports.resolve("auto", ports=[JTAG, CH343])
    assert ports.resolve("auto", ask=lambda found: found[1], ports=[JTAG, CH343]) == "/dev/ttyUSB0"


def test_explicit_ports_and_urls_pass_through():
    assert ports.resolve("socket://127.0.0.1:5555") == "socket://127.0.0.1:5555"
    assert ports.resolve("/dev/ttyACM7") == "/dev/ttyACM7"


def test_find_again_under_a_new_path():
    moved = PortInfo("/dev/ttyACM1", 0x303A, 0x1001, "F4:12:FA:00:11:22", "USB JTAG/serial debug unit", "1-2",
                     "usb-serial-jtag")
    other = PortInfo("/dev/ttyACM2", 0x303A, 0x1001, "F4:12:FA:99:99:99", "", "1-4", "usb-serial-jtag")
    assert ports.find_again(JTAG, [other, moved]) == "/dev/ttyACM1"
    assert ports.find_again(JTAG, [other]) is None
    no_serial = PortInfo("/dev/ttyUSB0", 0x1A86, 0x7523, None, "", "1-3", "ch34x")
    assert no_serial.same_device(PortInfo("/dev/ttyUSB4", 0x1A86, 0x7523, None, "", "1-3", "ch34x"))
    assert not no_serial.same_device(PortInfo("/dev/ttyUSB4", 0x1A86, 0x7523, None, "", "1-5", "ch34x"))


@pytest.mark.parametrize(("exc", "start"), [
    (OSError(errno.EACCES, "Permission denied"), "permission denied on /dev/ttyX: add yourself to the serial group"),
    (OSError(errno.EBUSY, "Device or resource busy"), "/dev/ttyX is busy: close the other program"),
    (OSError(errno.ENOENT, "No such file or directory"), "serial port /dev/ttyX not found"),
    (OSError(errno.ECONNREFUSED, "Connection refused"), "nothing is listening at /dev/ttyX"),
])
def test_port_errors_name_port_and_fix(exc, start):
    assert str(ports.port_error("/dev/ttyX", exc)).startswith(start)


def test_open_missing_and_busy_ports():
    with pytest.raises(PortError, match=r"^serial port /dev/ttyNOPE9 not found"):
        ports.open_serial("/dev/ttyNOPE9", 115200)
    master, slave = os.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)
    try:
        first = ports.open_serial(path, 115200)
        with pytest.raises(PortError, match=rf"^{path} is busy: close the other program"):
            ports.open_serial(path, 115200)
        first.close()
    finally:
        os.close(master)
        os.close(slave)


def test_refused_socket_url():
    import socket

    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]
    with pytest.raises(PortError, match=rf"^nothing is listening at socket://127.0.0.1:{port}"):
        ports.open_serial(f"socket://127.0.0.1:{port}", 115200)
