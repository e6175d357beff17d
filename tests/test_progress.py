"""rtflash.builder.progress: the first error a user sees, and the saved build log."""

from __future__ import annotations

import stat

from rtflash.builder.progress import BuildLog, first_error


def test_cmake_error_gives_the_message_under_its_header():
    lines = ["-- Configuring incomplete, errors occurred!",
             "CMake Error at /idf/tools/cmake/build.cmake:332 (message):",
             "  Failed to resolve component '78__esp-opus' required by component",
             "  'rt_opus': unknown name.",
             "",
             "Call Stack (most recent call first):",
             "  /idf/tools/cmake/build.cmake:373 (__build_resolve_and_add_req)"]
    assert first_error(lines) == ("CMake: /idf/tools/cmake/build.cmake:332: Failed to resolve component "
                                  "'78__esp-opus' required by component 'rt_opus': unknown name.")


def test_cmake_error_without_location():
    assert first_error(['CMake Error: The source directory "/x" does not exist.']) == \
        'CMake: The source directory "/x" does not exist.'


def test_ninja_missing_rule_is_named():
    lines = ["ninja: error: 'esp-idf/peer/libpeer.a', needed by 'fw.elf', missing and no known rule to make it"]
    assert first_error(lines) == "'esp-idf/peer/libpeer.a', needed by 'fw.elf', missing and no known rule to make it"


def test_builder_assertion_and_linker_lines():
    assert first_error(["AssertionError: Missing auto-generated SDK configuration file `/p/sdkconfig.b`"]) == \
        "AssertionError: Missing auto-generated SDK configuration file `/p/sdkconfig.b`"
    line = "/usr/bin/ld: /usr/lib/x86_64-linux-gnu/Scrt1.o: in function `_start': undefined reference to `main'"
    assert first_error(["[66/66] Linking C executable fw.elf", line]) == line


def test_compiler_error_wins_over_later_tool_lines():
    lines = ["CMake Error at x.cmake:1 (message):", "  later", "/p/main/a.c:7:3: error: expected ';'"]
    assert first_error(lines) == "/p/main/a.c:7: expected ';'"


def test_logs_in_the_same_second_do_not_share_a_file(tmp_path):
    logs = [BuildLog(tmp_path, "idf") for _ in range(3)]
    for n, log in enumerate(logs):
        log.add(f"line {n}")
        log.close()
    paths = [log.path for log in logs]
    assert len(set(paths)) == 3
    assert [p.read_text() for p in paths] == ["line 0\n", "line 1\n", "line 2\n"]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in paths)
