"""The command line as users run it: in-process through main() and end to end with the script."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
from pathlib import Path

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
    written = json.loads(result.stdout)["written"]
    assert len(written) >= 3 and any(w.endswith("sdkconfig.defaults") for w in written)


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
    written = result.stdout.count("written")
    assert written >= 3 and again.stdout.count("unchanged") == written and "written" not in again.stdout
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


# --- advice that exists: every `rtflash CMD ... --opt` the source suggests is a real option of CMD ------

SOURCE = Path(__file__).resolve().parent.parent / "orchestrator" / "rtflash"


def _source_strings():
    """(file:line, text) of every string literal in the package; f-string fields become `{}`."""
    for path in sorted(SOURCE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                yield f"{path.name}:{node.lineno}", node.value
            elif isinstance(node, ast.JoinedStr):
                text = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
                yield f"{path.name}:{node.lineno}", text


def _command_path(words: list[str]):
    """Resolve `rtflash WORDS...` to (chain of click commands, leftover words); root options skipped."""
    import click

    from rtflash.cli import cli

    ctx = click.Context(cli)
    chain, rest = [cli], list(words)
    takes_value = {o for p in cli.params if isinstance(p, click.Option) and not p.is_flag for o in p.opts}
    while rest:
        word = rest[0]
        if word in takes_value:
            rest = rest[2:]
            continue
        group = chain[-1]
        if not isinstance(group, click.Group) or word.startswith("-"):
            break
        sub = group.get_command(ctx, word)
        if sub is None:
            break
        chain.append(sub)
        rest = rest[1:]
    return chain, rest


def _options(command) -> set[str]:
    import click

    return {o.split("=")[0] for p in command.params if isinstance(p, click.Option) for o in p.opts + p.secondary_opts}


def options_of(*command_words: str) -> set[str]:
    """Options accepted by `rtflash WORDS` (its own and the root group's), for error-line checks."""
    chain, _ = _command_path(list(command_words))
    return _options(chain[0]) | _options(chain[-1]) | {"--help"}


def test_every_suggested_command_and_option_exists():
    bad = []
    for where, text in _source_strings():
        for m in re.finditer(r"`rtflash ([^`]*)`", text):
            words = m.group(1).split()
            chain, rest = _command_path(words)
            if words and not words[0].startswith("-") and len(chain) == 1:
                bad.append(f"{where}: `rtflash {m.group(1)}`: no command {words[0]!r}")
                continue
            allowed = _options(chain[0]) | _options(chain[-1]) | {"--help"}
            for word in rest:
                opt = word.split("=")[0]
                if opt.startswith("--") and opt != "--" and opt not in allowed:
                    name = " ".join(c.name for c in chain[1:])
                    bad.append(f"{where}: `rtflash {m.group(1)}`: `rtflash {name}` has no {opt}")
    assert not bad, "\n".join(bad)


def test_every_bare_option_advice_exists_somewhere():
    """`pass --x` / `use --x` / `with --x` outside a named command must at least be some command's option
    (the bad-input corpus checks each error line against the command that printed it)."""
    import click

    from rtflash.cli import COMMANDS, cli

    ctx = click.Context(cli)
    known = _options(cli)
    stack = [cli.get_command(ctx, name) for name in COMMANDS]
    while stack:
        command = stack.pop()
        known |= _options(command)
        if isinstance(command, click.Group):
            stack += [command.get_command(ctx, n) for n in command.list_commands(ctx)]
    bad = []
    for where, text in _source_strings():
        plain = re.sub(r"`[^`]*`", "", text)
        for m in re.finditer(r"\b(?:pass|use|with|or|add|give)\s+(--[a-z][a-z0-9-]*)", plain):
            if m.group(1) not in known:
                bad.append(f"{where}: suggests {m.group(1)}, which no rtflash command has")
    assert not bad, "\n".join(bad)


def test_credential_options_named_by_messages_exist():
    from rtflash.credentials import FIELDS

    assert {f.option for f in FIELDS} <= options_of("secrets", "set")
    assert {f.option for f in FIELDS} <= options_of("provision")


# --- results on stdout, progress/warnings/errors on stderr (as git and pip) ------------------------------

def test_results_go_to_stdout(invoke, project, monkeypatch):
    monkeypatch.setenv("RTFLASH_SECRETS_FILE", str(project / "secrets.toml"))
    monkeypatch.setenv("RTFLASH_DEPS_CACHE", str(project / "deps-cache"))
    render = invoke("render", "--board", "sonatino")
    assert render.exit_code == 0 and "written  " in render.stdout and render.stderr == ""
    check = invoke("check", "--board", "sonatino")
    assert "assignments checked against" in check.stdout
    shown = invoke("secrets", "show")
    assert shown.exit_code == 0 and "openai_api_key" in shown.stdout and "missing" in shown.stdout
    deps = invoke("deps")
    assert "manifest " in deps.stdout and "libpeer" in deps.stdout
    doctor = invoke("doctor")
    assert "python:" in doctor.stdout and "credentials:" in doctor.stdout
    boards = invoke("boards")
    assert boards.exit_code == 0 and "sonatino" in boards.stdout
    assert boards.stderr == ""  # shipped boards: no strapping-pin warnings (notes in `boards show`)
    assert "note" in invoke("boards", "show", "esp32-s3-box-3").stdout


def test_build_summary_on_stdout(rtflash_exe, project, fake_idf):
    result = run(rtflash_exe, "build", "--board", "sonatino", cwd=project)
    assert result.returncode == 0, result.stderr
    assert "built sonatino in" in result.stdout and "0x20000" in result.stdout
    assert "built sonatino" not in result.stderr


def test_boards_reports_every_broken_file(invoke, project):
    (project / "mine").mkdir()
    (project / "mine" / "one.toml").write_text(I2S_BOARD.replace("din = 6", "din = 35"))
    (project / "mine" / "two.toml").write_text("chip = \"esp32s3\"\ncolour = 1\n")
    result = invoke("--boards-dir", "mine", "boards")
    assert result.exit_code == 1 and "sonatino" in result.stdout
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 2 and "one.toml" in errors[0] and "two.toml" in errors[1]
    as_json = invoke("--boards-dir", "mine", "boards", "--json")
    data = json.loads(as_json.stdout)
    assert as_json.exit_code == 1 and len([b for b in data if b.get("error")]) == 2


def test_json_failures_print_a_json_error(invoke, rtflash_exe, project, fake_idf):
    for args in (("build", "--board", "nope", "--json"), ("check", "--board", "nope", "--json"),
                 ("render", "--board", "nope", "--json")):
        result = invoke(*args)
        data = json.loads(result.stdout)
        assert result.exit_code == 1 and data["ok"] is False and "unknown board 'nope'" in data["error"]
        assert "error: unknown board" in result.stderr
    failed = run(rtflash_exe, "build", "--board", "sonatino", "--json", cwd=project, env={"FAKE_IDF_FAIL": "compile"})
    data = json.loads(failed.stdout)
    assert failed.returncode == 1 and data["ok"] is False and data["kind"] == "ToolFailed"
    assert "main.c:12:" in data["error"] and "full log:" in data["error"]
    ok = run(rtflash_exe, "build", "--board", "sonatino", "--json", cwd=project)
    assert json.loads(ok.stdout)["ok"] is True


def test_linux_without_esp_idf_is_not_sent_to_platformio(invoke, monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    for args in (("build", "--board", "linux"), ("build", "--board", "linux", "--backend", "idf")):
        result = invoke(*args)
        assert result.exit_code == 1 and "linux target builds only with ESP-IDF" in result.stderr
        assert "--backend pio" not in result.stderr


def test_provision_out_example_names_the_board(invoke, project, monkeypatch):
    monkeypatch.setenv("RTFLASH_SECRETS_FILE", str(project / "none.toml"))
    result = invoke("provision", "--board", "sonatino", "--out", "build/x.bin")
    assert result.exit_code == 1 and "~/nvs-sonatino.bin" in result.stderr and "{" not in result.stderr
