"""Every ESP32-S3 board configures with the real ESP-IDF and every TU compiles under real Xtensa front ends.

Per board: `idf.py reconfigure` through rtflash's own build path (build_board(action="reconfigure")),
offline from ../shared/deps, then every translation unit of firmware-src and of the pinned deps
(libpeer, esp-opus, srtp, esp_codec_dev) re-run from compile_commands.json under the stand-in GCC and
clang-22 --target=xtensa (testkit/xtensa_check.py). Also: libpeer's RTP/RTCP headers are laid out
little-endian with the flags components/peer passes (the bytes the Xtensa compilers emit).
Needs ../shared (skips only where it is absent), clang-22 and gcc-xtensa-lx106 (as on CI).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from testkit import xtensa_check as xc
from testkit.shared import (
    NO_SHARED,
    REPO,
    SHARED_DEPS,
    SHARED_IDF,
    pio_offline_dir,
)

BOARDS = ("sonatino", "freenove-s3", "atoms3r-echo", "esp32-s3-box-3")
# each board also as rtflash.toml [security] nvs_encryption = "hmac" sets it up (main.c's encrypted-NVS
# path, nvs_sec_provider): "board+hmac" in the parameters
VARIANTS = BOARDS + tuple(f"{b}+hmac" for b in BOARDS)


def settings_for(variant: str):
    from rtflash.settings import Settings

    board, _, security = variant.partition("+")
    if not security:
        return board, None
    return board, Settings(security={"nvs_encryption": "hmac", "nvs_hmac_key_block": 2, "boards": {}})
FIRMWARE = REPO / "firmware-src"
# Lower bounds on what the selection must find per dep (ESP32-S3, pinned versions): 130 esp-opus TUs,
# 19 srtp, 19 esp_codec_dev today. An empty or partial selection cannot pass.
FLOORS = {"esp-opus": 120, "srtp": 19, "esp_codec_dev": 15}


@pytest.fixture(scope="session")
def xtensa_env():
    """The real ESP-IDF, the stand-in Xtensa tool set on PATH and the two front ends, for the session."""
    if not (SHARED_IDF / "tools" / "idf.py").is_file() or not (SHARED_DEPS / "libpeer").is_dir():
        pytest.skip(NO_SHARED)
    env, missing = xc.tool_env(pio_offline_dir())
    if missing:
        pytest.fail("missing: " + "; ".join(missing))
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {**env, "RTFLASH_NO_CCACHE": "1"}.items():
            mp.setenv(key, value)
        for key in ("RTFLASH_DEPS_DIR", "IDF_TARGET"):
            mp.delenv(key, raising=False)
        yield env


@pytest.fixture(scope="session")
def configured(xtensa_env, tmp_path_factory):
    """board -> its compile_commands.json; one reconfigure per board per session."""
    done: dict[str, Path] = {}

    def get(variant: str) -> Path:
        if variant not in done:
            board, settings = settings_for(variant)
            done[variant] = xc.reconfigure(board, tmp_path_factory.mktemp(f"xtensa-{board}"), SHARED_DEPS,
                                           settings)
        return done[variant]

    return get


@pytest.fixture(scope="session")
def checked(configured):
    """board -> (selected units, results under both front ends); computed once per board."""
    done: dict[str, tuple[list[xc.Unit], list[xc.TuResult]]] = {}

    def get(board: str):
        if board not in done:
            units = xc.select_units(configured(board), FIRMWARE, SHARED_DEPS)
            done[board] = (units, xc.check_units(units))
        return done[board]

    return get


@pytest.mark.parametrize("board", VARIANTS)
def test_configures_and_every_tu_compiles(board, checked, configured):
    units, results = checked(board)
    if board.endswith("+hmac"):   # the encrypted-NVS configuration really took
        sdkconfig = (configured(board).parent / "sdkconfig").read_text()
        for line in ("CONFIG_NVS_ENCRYPTION=y", "CONFIG_NVS_SEC_KEY_PROTECT_USING_HMAC=y",
                     "CONFIG_NVS_SEC_HMAC_EFUSE_KEY_ID=2"):
            assert line in sdkconfig.splitlines(), f"{board}: {line} missing from the final sdkconfig"
    by_group: dict[str, list[xc.Unit]] = {}
    for unit in units:
        by_group.setdefault(unit.group, []).append(unit)
    # the selection is complete: every C file of ours, every libpeer source components/peer builds,
    # and at least the known number of each registry component's TUs
    assert {u.file for u in by_group.get("firmware", [])} == xc.expected_firmware_sources(FIRMWARE)
    assert {u.file.name for u in by_group.get("libpeer", [])} == xc.expected_libpeer_sources(SHARED_DEPS)
    for group, floor in FLOORS.items():
        assert len(by_group.get(group, [])) >= floor, f"{group}: only {len(by_group.get(group, []))} TUs found"
    assert len(results) == len(units) * len(xc.FRONTENDS)
    failures = [f"{r.frontend}: {line}" for r in results for line in r.unexcused]
    assert not failures, f"{board}: {len(failures)} unexcused errors:\n" + "\n".join(failures[:40])


def test_every_excuse_is_still_needed(checked):
    """A stale excuse would hide the next real error of the same kind in that file."""
    results = [r for board in BOARDS for r in checked(board)[1]]
    assert not xc.unused_excuses(results)
    for excuse in xc.EXCUSES:
        assert excuse.frontend in xc.FRONTENDS and excuse.reason.strip() and excuse.diagnostic.strip()


PROBE = """\
#include <stdint.h>
#include "rtp.h"
#include "rtcp.h"
const RtpHeader rt_rtp_probe = {.version = 2, .padding = 0, .extension = 0, .csrccount = 0,
                                .markerbit = 1, .type = PT_OPUS};
const RtcpHeader rt_rtcp_probe = {.version = 2, .padding = 0, .rc = 1, .type = RTCP_RR, .length = 7};
"""


@pytest.mark.parametrize("frontend", xc.FRONTENDS)
def test_rtp_rtcp_headers_are_little_endian_on_esp32s3(frontend, configured, tmp_path):
    """libpeer's rtp.h/rtcp.h, compiled with the exact flags of components/peer's rtp.c, must put
    V=2 in the top bits of the first byte, as RFC 3550 sends it: 0x80 (| M/PT 0xEF), RTCP RR 0x81 0xC9."""
    units = xc.select_units(configured("sonatino"), FIRMWARE, SHARED_DEPS)
    rtp = next(u for u in units if u.group == "libpeer" and u.file.name == "rtp.c")
    source = tmp_path / "rt_rtp_probe.c"
    source.write_text(PROBE)
    assembly = xc.assemble(rtp, frontend, source, tmp_path / "rt_rtp_probe.s")
    assert xc.data_bytes(assembly, "rt_rtp_probe")[:2].hex() == "80ef"
    assert xc.data_bytes(assembly, "rt_rtcp_probe")[:4].hex() == "81c90700"


@pytest.mark.parametrize("frontend", xc.FRONTENDS)
def test_int32_is_long_as_with_espressifs_toolchain(frontend, configured, tmp_path):
    """The emulation the whole check rests on: without it, a class of real errors stays hidden."""
    units = xc.select_units(configured("sonatino"), FIRMWARE, SHARED_DEPS)
    unit = next(u for u in units if u.group == "firmware")
    source = tmp_path / "rt_int32_probe.c"
    source.write_text("#include <stdint.h>\n"
                      "_Static_assert(__builtin_types_compatible_p(int32_t, long), \"int32_t is long\");\n"
                      "_Static_assert(__builtin_types_compatible_p(uint32_t, unsigned long), \"uint32_t\");\n"
                      "const int rt_probe = 1;\n")
    assert "rt_probe" in xc.assemble(unit, frontend, source, tmp_path / "rt_int32_probe.s")


# The checker's own parsing (no ../shared needed).

def test_errors_parsed_from_both_front_ends_and_excused_only_by_file_and_diagnostic():
    output = ("a/srtp.c:730:52: error: passing argument 3 from incompatible pointer type "
              "[-Werror=incompatible-pointer-types]\n"
              "b/ekt.c:201:35: error: variable 'p' is uninitialized [-Werror,-Wuninitialized-const-pointer]\n"
              "c/ports.c:15:10: fatal error: ifaddrs.h: No such file or directory\n"
              "a/srtp.c:9:1: warning: unused [-Wunused]\n")
    errors = xc.parse_errors(output)
    assert [(d.file, d.line, d.flag) for d in errors] == [
        ("a/srtp.c", 730, "-Wincompatible-pointer-types"), ("b/ekt.c", 201, "-Wuninitialized-const-pointer"),
        ("c/ports.c", 15, "")]
    excuse = xc.Excuse("b/ekt.c", "clang", "-Wuninitialized-const-pointer", "why")
    assert excuse.covers("clang", errors[1])
    assert not excuse.covers("gcc", errors[1])          # one front end
    assert not excuse.covers("clang", errors[0])        # one file
    other = xc.Diagnostic("b/ekt.c", 3, "x", "-Wother")
    assert not excuse.covers("clang", other)            # one diagnostic
    unit = xc.Unit("srtp", Path("b/ekt.c"), Path("."), ("cc",))
    result = xc.TuResult(unit, "clang", 1, 0.1, output, errors[1:2], [(errors[1], excuse)])
    assert result.unexcused == []
    assert xc.TuResult(unit, "clang", 1, 0.1, "cc1: killed", []).unexcused  # a failure with no error line


def test_data_bytes_reads_gcc_and_clang_assembly():
    gcc = "rt_rtp_probe:\n\t.byte\t-128\n\t.byte\t239\n\t.zero\t10\n\t.text\n"
    clang = ("rt_rtp_probe:\n\t.short\t61312                           # 0xef80\n\t.short\t0\n\t.long\t0\n"
             "\t.size\trt_rtp_probe, 12\n")
    assert xc.data_bytes(gcc, "rt_rtp_probe")[:2].hex() == "80ef"
    assert xc.data_bytes(clang, "rt_rtp_probe").hex() == "80ef" + "00" * 6
