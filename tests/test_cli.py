"""The command line as users run it: in-process through main() and end to end with the script."""

from __future__ import annotations

import json
import os
import subprocess

from rtflash import __version__
from tests.test_boards import I2S_BOARD, SHIPPED


def run(exe: str, *args: str, cwd=None, env=None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run([exe, *args], capture_output=True, text=True, cwd=cwd, env=full_env, timeout=60)


def test_version_and_help(invoke):
    result = invoke("--version")
    assert result.exit_code == 0 and __version__ in result.output
    result = invoke("--help")
    assert result.exit_code == 0
    for name in ("boards", "render", "check"):
        assert name in result.output


def test_boards_json_lists_shipped_boards(invoke):
    result = invoke("boards", "--json")
    assert result.exit_code == 0
    names = [b["name"] for b in json.loads(result.stdout)]
    assert set(SHIPPED) <= set(names)


def test_boards_table_and_show(invoke):
    result = invoke("boards")
    assert result.exit_code == 0
    assert "sonatino" in result.stdout and "PSRAM" in result.stdout
    shown = invoke("boards", "show", "esp32-s3-box-3")
    assert shown.exit_code == 0 and "audio.codec.i2c_sda" in shown.stdout
    data = json.loads(invoke("boards", "show", "linux", "--json").stdout)
    assert data["chip"] == "linux"


def test_unknown_board_one_line_no_traceback(invoke):
    result = invoke("render", "--board", "sonatno")
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "did you mean 'sonatino'" in lines[0]
    assert "Traceback" not in result.output


def test_render_needs_a_board(invoke):
    result = invoke("render")
    assert result.exit_code == 1 and "--board" in result.stderr


def test_default_board_from_settings(invoke, project):
    (project / "rtflash.toml").write_text('board = "linux"\n')
    result = invoke("render")
    assert result.exit_code == 0
    assert (project / "build" / "linux" / "config" / "sdkconfig.defaults").is_file()


def test_user_boards_dir_option(invoke, project):
    (project / "mine").mkdir()
    (project / "mine" / "custom.toml").write_text(I2S_BOARD)
    result = invoke("--boards-dir", "mine", "render", "-b", "custom", "--json")
    assert result.exit_code == 0
    assert len(json.loads(result.stdout)["written"]) == 3


def test_bad_board_file_in_user_dir(invoke, project):
    (project / "mine").mkdir()
    (project / "mine" / "broken.toml").write_text(I2S_BOARD.replace("din = 6", "din = 35"))
    result = invoke("--boards-dir", "mine", "render", "-b", "broken")
    assert result.exit_code == 1
    assert "broken.toml: audio.mic.din: GPIO35 is taken by octal PSRAM" in result.stderr


def test_unknown_command_suggests(invoke):
    result = invoke("rendr")
    assert result.exit_code == 2 and "did you mean `render`" in result.output


def test_verbose_shows_traceback(invoke):
    result = invoke("--verbose", "render", "--board", "nope")
    assert result.exit_code == 1 and "Traceback" in result.stderr


def test_installed_script_end_to_end(rtflash_exe, project):
    result = run(rtflash_exe, "render", "--board", "sonatino", cwd=project)
    assert result.returncode == 0, result.stderr
    assert (project / "build" / "sonatino" / "config" / "partitions.csv").is_file()
    again = run(rtflash_exe, "render", "--board", "sonatino", cwd=project)
    assert again.stderr.count("unchanged") == 3
    bad = run(rtflash_exe, "boards", "show", "nosuch", cwd=project)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr and bad.stdout == ""


def test_no_color_respected(rtflash_exe, project):
    result = run(rtflash_exe, "render", "--board", "nosuch", cwd=project,
                 env={"NO_COLOR": "1", "FORCE_COLOR": "1", "TERM": "xterm-256color"})
    assert "\x1b[" not in result.stderr
    coloured = run(rtflash_exe, "render", "--board", "nosuch", cwd=project,
                   env={"FORCE_COLOR": "1", "TERM": "xterm-256color"})
    assert "\x1b[" in coloured.stderr


def test_shell_completion(rtflash_exe, project):
    script = run(rtflash_exe, env={"_RTFLASH_COMPLETE": "bash_source"})
    assert "_rtflash_completion" in script.stdout
    boards = run(rtflash_exe, env={"_RTFLASH_COMPLETE": "bash_complete", "COMP_WORDS": "rtflash render --board so",
                                   "COMP_CWORD": "3"})
    assert "sonatino" in boards.stdout
