"""An installed rtflash (a wheel, not only `pip install -e`) carries its boards, templates and firmware."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(out), str(REPO)], check=True, capture_output=True, timeout=300)
    return next(out.glob("rtflash-*.whl"))


def test_wheel_ships_data(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for board in ("sonatino", "freenove-s3", "atoms3r-echo", "esp32-s3-box-3", "linux"):
        assert f"rtflash/_data/boards/{board}.toml" in names
    assert "rtflash/_data/templates/sdkconfig.defaults.j2" in names
    assert "rtflash/_data/firmware/main/Kconfig.projbuild" in names
    assert any(n.startswith("rtflash-") and n.endswith("entry_points.txt") for n in names)


def test_wheel_ships_every_command_module(wheel):
    """Every command in the CLI table, and every package module, is in the wheel (a missing package
    entry in pyproject.toml only shows once installed non-editable)."""
    from rtflash.cli import COMMANDS

    names = set(zipfile.ZipFile(wheel).namelist())
    for module, _attr, _help in COMMANDS.values():
        assert f"rtflash/cli/{module}.py" in names
    for path in (REPO / "orchestrator" / "rtflash").rglob("*.py"):
        assert path.relative_to(REPO / "orchestrator").as_posix() in names, path
    assert "rtflash/_data/firmware/deps.toml" in names


def test_unpacked_wheel_finds_its_data(wheel, tmp_path):
    zipfile.ZipFile(wheel).extractall(tmp_path)
    code = ("from rtflash.boards import load_catalog; from rtflash.resources import templates_dir;"
            "c = load_catalog(); print(len(c.names()), c.files['sonatino'].parent, templates_dir())")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                            env={"PYTHONPATH": str(tmp_path)}, timeout=60)
    assert result.returncode == 0, result.stderr
    count, boards, templates = result.stdout.split()
    assert int(count) >= 5
    assert boards == str(tmp_path / "rtflash" / "_data" / "boards")
    assert templates == str(tmp_path / "rtflash" / "_data" / "templates")


@pytest.mark.slow
def test_pip_install_leaves_nothing_in_build(tmp_path):
    """`pip install .` builds in the source tree; setuptools' lib/ and bdist.*/ must stay out of build/,
    where rtflash builds boards (setup.cfg moves setuptools' build base to .cache/setuptools-build)."""
    import time

    start = time.time() - 1
    result = subprocess.run([sys.executable, "-m", "pip", "install", ".", "--no-deps", "--no-build-isolation",
                             "--target", str(tmp_path / "target")], cwd=REPO, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr.lower(), result.stderr
    assert (tmp_path / "target" / "rtflash" / "flash.py").is_file()
    build = REPO / "build"
    fresh = [p.name for p in build.iterdir() if p.name == "lib" or p.name.startswith("bdist.")
             if p.stat().st_mtime >= start] if build.is_dir() else []
    assert fresh == [], f"pip left {fresh} in {build}"
    assert (REPO / ".cache" / "setuptools-build" / "lib" / "rtflash").is_dir(), "the build went to its own base"


def import_graph() -> dict[str, set[str]]:
    """rtflash module -> the rtflash modules it imports, at the top or inside a function (lazy ones count:
    a cycle through them still ties the two modules together)."""
    import ast

    root = REPO / "orchestrator"
    modules = {}
    for path in (root / "rtflash").rglob("*.py"):
        parts = list(path.relative_to(root).with_suffix("").parts)
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def test_no_import_cycles():
    """artifacts <-> builder.pio, builder <-> builder.idf and cli.flash <-> cli.provision once imported each
    other; the shared pieces moved a floor down (artifacts.pio_artifacts, builder.progress.ccache_available,
    cli.nvs_image, cli.devices). No module may reach itself again through its imports."""
    graph = import_graph()
    assert {"rtflash.artifacts", "rtflash.builder.pio", "rtflash.cli.flash", "rtflash.cli.provision"} <= set(graph)
    cycles = []
    for start in graph:
        stack, seen = [(start, (start,))], set()
        while stack:
            node, path = stack.pop()
            for nxt in graph[node]:
                if nxt == start:
                    cycles.append(" -> ".join((*path, start)))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, (*path, nxt)))
    assert cycles == [], "\n".join(sorted(cycles)[:10])


def test_editable_install_prints_at_most_5_warning_lines(tmp_path):
    """`pip install -e .` in a fresh venv, verbose so the build backend's own output shows. pip's config
    files are left out (PIP_CONFIG_FILE=os.devnull): a machine's extra index that lacks a project makes
    pip warn once per dependency, which says nothing about rtflash; --no-deps --no-build-isolation keep
    it offline (setuptools and wheel come from this test env)."""
    import os
    import sysconfig
    import venv

    venv.create(tmp_path / "v", with_pip=True)
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull, "PYTHONPATH": sysconfig.get_paths()["purelib"],
           "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PIP_FIND_LINKS", None)
    done = subprocess.run([str(tmp_path / "v" / "bin" / "python"), "-m", "pip", "install", "-v", "--no-deps",
                           "--no-build-isolation", "-e", str(REPO)], capture_output=True, text=True, env=env,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [ln for ln in (done.stdout + done.stderr).splitlines() if "warning" in ln.lower()]
    assert len(lines) <= 5, "\n".join(lines)


def test_installed_rtflash_builds_the_checkouts_firmware_src(wheel, tmp_path):
    """After `pip install .` the wheel carries its own firmware-src copy; run inside a checkout (-C, or
    the working directory, or below it) rtflash builds the checkout's firmware-src, where the user edits,
    and its first build line says which tree and why."""
    import os

    from testkit.shared import install_fake_idf

    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    checkout = tmp_path / "my-rtflash"
    (checkout / "work").mkdir(parents=True)
    (checkout / "pyproject.toml").write_text('[project]\nname = "rtflash"\nversion = "0"\n')
    (checkout / "firmware-src").symlink_to(REPO / "firmware-src")  # the user's clone of it
    env = {**os.environ, **install_fake_idf(tmp_path / "idf"), "PYTHONPATH": str(site), "RTFLASH_NO_CCACHE": "1",
           "RTFLASH_CACHE_DIR": str(tmp_path / "device-cache")}
    code = "from rtflash.cli import main; main()"
    done = subprocess.run([sys.executable, "-c", code, "-C", str(checkout / "work"), "build", "-b", "sonatino"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    first = done.stderr.splitlines()[0]
    assert first == (f"building sonatino with ESP-IDF from {checkout / 'firmware-src'} (the checkout at "
                     f"{checkout})"), done.stderr
    project = (checkout / "work" / "build" / "sonatino" / "project" / "CMakeLists.txt").read_text()
    assert f'"{checkout / "firmware-src"}"' in project
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run([sys.executable, "-c", code, "build", "-b", "sonatino"], cwd=elsewhere, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[0] == (f"building sonatino with ESP-IDF from {site / 'rtflash' / '_data' / 'firmware'}"
                                           " (the copy installed with rtflash: no checkout at or above the project dir)")
