"""`rtflash build`, `exec` and `ci` end to end with the installed script and the stand-in idf.py."""

from __future__ import annotations

import json
import os
import subprocess


def run(exe, *args, cwd, env=None):
    return subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def test_build_json(rtflash_exe, project, fake_idf):
    result = run(rtflash_exe, "build", "--board", "sonatino", "--json", cwd=project)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["board"] == "sonatino" and [r["offset"] for r in data["regions"]][-1] == "0x20000"


def test_build_failure_one_line(rtflash_exe, project, fake_idf):
    result = run(rtflash_exe, "build", "--board", "sonatino", cwd=project, env={"FAKE_IDF_FAIL": "compile"})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "main.c:12:" in errors[0] and "full log:" in errors[0]


def test_exec_linux(rtflash_exe, project, fake_idf):
    assert run(rtflash_exe, "build", "--board", "linux", cwd=project).returncode == 0
    ok = run(rtflash_exe, "exec", cwd=project, env={"OPENAI_API_KEY": "sk-" + "exec-abcdefghijklmnopqrst"})
    assert ok.returncode == 0 and "api key present" in ok.stdout
    clean_env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "RTFLASH_OPENAI_API_KEY")}
    missing = subprocess.run([rtflash_exe, "exec"], cwd=project, capture_output=True, text=True, timeout=60,
                             env={**clean_env, "RTFLASH_SECRETS_FILE": str(project / "none.toml")})
    assert missing.returncode == 1 and "OpenAI API key is not set" in missing.stderr


def test_ci_end_to_end(rtflash_exe, project, fake_idf):
    result = run(rtflash_exe, "ci", "--boards", "sonatino,linux,esp32-s3-box-3", "--out", "dist", cwd=project,
                 env={"RTFLASH_WIFI_PASSWORD": "never-read-pw-1"})
    assert result.returncode == 0, result.stderr
    index = json.loads((project / "dist" / "index.json").read_text())
    assert [b["board"] for b in index["boards"]] == ["sonatino", "linux", "esp32-s3-box-3"]
    for entry in index["boards"]:
        for rel in entry["files"]:
            assert (project / "dist" / rel).is_file()
            assert b"never-read-pw-1" not in (project / "dist" / rel).read_bytes()
    assert "3 of 3 boards built." in (project / "dist" / "summary.md").read_text()


def test_ci_one_board_failing(rtflash_exe, project, fake_idf):
    result = run(rtflash_exe, "ci", "--boards", "sonatino,freenove-s3", cwd=project, env={"FAKE_IDF_FAIL": "compile"})
    assert result.returncode == 1
    index = json.loads((project / "dist" / "index.json").read_text())
    assert [b["ok"] for b in index["boards"]] == [False, False]
    bad = run(rtflash_exe, "ci", "--boards", "sonatino,nope", cwd=project)
    assert bad.returncode == 1 and "unknown board 'nope'" in bad.stderr


def test_ci_matrix(rtflash_exe, project):
    result = run(rtflash_exe, "ci", "--boards", "all", "--matrix", cwd=project)
    matrix = json.loads(result.stdout)
    assert {row["board"] for row in matrix["include"]} >= {"sonatino", "linux"}
