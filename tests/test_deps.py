"""Firmware dependencies: the shipped manifest, fetch/check with real git on local repositories
(file:// URLs, no network), the `rtflash deps` command, doctor, and `build --deps-dir`."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from rtflash import deps
from rtflash.errors import ConfigError, ToolFailed

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid",
                           "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false", *args],
                          cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.fixture
def upstream(tmp_path: Path) -> dict:
    """A local 'upstream' repo with two commits; the pin is the FIRST one, so HEAD is not it."""
    repo = tmp_path / "upstream" / "libfoo"
    repo.mkdir(parents=True)
    git("init", "-q", cwd=repo)
    (repo / "src").mkdir()
    (repo / "src" / "foo.c").write_text("int foo(void) { return 1; }\n")
    git("add", ".", cwd=repo)
    git("commit", "-q", "-m", "one", cwd=repo)
    first = git("rev-parse", "HEAD", cwd=repo)
    (repo / "src" / "foo.c").write_text("int foo(void) { return 2; }\n")
    git("commit", "-q", "-am", "two", cwd=repo)
    second = git("rev-parse", "HEAD", cwd=repo)
    return {"repo": repo, "url": repo.as_uri(), "first": first, "second": second}


def write_manifest(path: Path, url: str, commit: str, extra: str = "") -> Path:
    path.write_text(f'[git.libfoo]\nurl = "{url}"\ncommit = "{commit}"\ntargets = ["esp32s3", "linux"]\n{extra}')
    return path


# -- the shipped manifest ---------------------------------------------------------------------------

def test_shipped_manifest_is_pinned_and_consistent():
    manifest = deps.load_manifest()
    names = {d.name for d in manifest.git}
    assert names == {"libpeer"}  # esp-protocols' linux shims are not needed (ESP-IDF's POSIX port)
    libpeer = manifest.get("libpeer")
    assert libpeer.url == "https://github.com/sepfy/libpeer" and len(libpeer.commit) == 40
    assert {d.name for d in manifest.registry} == {"espressif/esp_codec_dev", "78/esp-opus", "sepfy/srtp"}
    for dep in manifest.registry:   # deps.toml and each idf_component.yml pin the same version
        status = deps.check_registry(dep)
        assert status.state == deps.MANAGED, status.detail
        assert dep.manifest.is_file()


def test_no_third_party_source_is_vendored():
    from rtflash.resources import firmware_dir

    fw = firmware_dir()
    own = {"rt_core", "rt_opus", "rt_audio", "rt_session", "peer"}
    assert {p.name for p in (fw / "components").iterdir() if p.is_dir()} <= own
    assert not list(fw.rglob("peer_connection.c")) and not list(fw.rglob("opus_encoder.c"))
    assert not (fw / ".gitmodules").exists() and not (fw.parent / ".gitmodules").exists()


@pytest.mark.parametrize("body, message", [
    ('[git.x]\nurl = "https://h/x"\ncommit = "main"\ntargets = ["linux"]\n', "full 40-character"),
    ('[git.x]\nurl = "http://h/x"\ncommit = "' + "a" * 40 + '"\ntargets = ["linux"]\n', "url must be"),
    ('[git.x]\nurl = "https://h/x"\ncommit = "' + "a" * 40 + '"\ntargets = ["esp32"]\n', "targets must be"),
    ('[git.x]\nurl = "https://h/x"\ncommit = "' + "a" * 40 + '"\ntargets = ["linux"]\nbranch = "main"\n',
     "unknown key(s) branch"),
    ('[registry."espressif/x"]\nversion = "^1.0"\ntargets = ["linux"]\nmanifest = "a/idf_component.yml"\n',
     "exact version"),
    ('[registry."x"]\nversion = "1.0.0"\ntargets = ["linux"]\nmanifest = "a/idf_component.yml"\n', "NAMESPACE/NAME"),
    ("[submodules]\n", "unknown table"),
    ("[git.x\n", "invalid TOML"),
])
def test_manifest_validation_names_file_and_entry(tmp_path, body, message):
    path = tmp_path / "deps.toml"
    path.write_text(body)
    with pytest.raises(ConfigError) as err:
        deps.load_manifest(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_cache_dir_precedence(tmp_path):
    assert deps.cache_dir({"RTFLASH_DEPS_CACHE": str(tmp_path / "c")}) == tmp_path / "c"
    assert deps.cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "rtflash" / "deps"
    assert deps.cache_dir({}) == Path.home() / ".cache" / "rtflash" / "deps"


def test_pinned_in_reads_inline_and_nested(tmp_path):
    yml = tmp_path / "idf_component.yml"
    yml.write_text('dependencies:\n  idf:\n    version: ">=5.4"\n  espressif/a:\n    version: "==1.2.3"\n'
                   '    rules:\n      - if: "target in [esp32s3]"\n  b/c: "2.0.0"  # inline\n')
    assert deps.pinned_in(yml, "espressif/a") == "1.2.3"
    assert deps.pinned_in(yml, "b/c") == "2.0.0"
    assert deps.pinned_in(yml, "nope/x") is None
    dep = deps.RegistryDep("espressif/a", "1.2.4", ("linux",), yml)
    status = deps.check_registry(dep)
    assert status.state == deps.MISMATCH and "pins 1.2.3, deps.toml pins 1.2.4" in status.detail


# -- fetch and check with real git -------------------------------------------------------------------

def test_fetch_checks_out_the_pin_not_head(tmp_path, upstream):
    manifest = deps.load_manifest(write_manifest(tmp_path / "deps.toml", upstream["url"], upstream["first"]))
    cache = tmp_path / "cache"
    assert deps.check(manifest, cache)[0].state == deps.MISSING
    status = deps.fetch(manifest.get("libfoo"), cache)
    assert status.state == deps.OK and status.path == cache / "libfoo"
    assert git("rev-parse", "HEAD", cwd=cache / "libfoo") == upstream["first"]
    assert (cache / "libfoo" / "src" / "foo.c").read_text() == "int foo(void) { return 1; }\n"
    assert [p.name for p in cache.iterdir()] == ["libfoo"]   # no temp dirs left behind
    # a second fetch is a no-op that does not touch the network or the files
    stamp = (cache / "libfoo" / "src" / "foo.c").stat().st_mtime_ns
    shutil.rmtree(upstream["repo"])
    again = deps.fetch(manifest.get("libfoo"), cache)
    assert again.state == deps.OK and (cache / "libfoo" / "src" / "foo.c").stat().st_mtime_ns == stamp


def test_moving_the_pin_refetches_and_a_wrong_checkout_is_reported(tmp_path, upstream):
    cache = tmp_path / "cache"
    old = deps.load_manifest(write_manifest(tmp_path / "a.toml", upstream["url"], upstream["first"]))
    deps.fetch(old.get("libfoo"), cache)
    new = deps.load_manifest(write_manifest(tmp_path / "b.toml", upstream["url"], upstream["second"]))
    stale = deps.check(new, cache)[0]
    assert stale.state == deps.MISMATCH and f"is at {upstream['first'][:12]}" in stale.detail
    deps.fetch(new.get("libfoo"), cache)
    assert deps.check(new, cache)[0].state == deps.OK
    assert (cache / "libfoo" / "src" / "foo.c").read_text() == "int foo(void) { return 2; }\n"


def test_unknown_commit_fails_and_leaves_nothing(tmp_path, upstream):
    manifest = deps.load_manifest(write_manifest(tmp_path / "deps.toml", upstream["url"], "b" * 40))
    cache = tmp_path / "cache"
    with pytest.raises(ToolFailed, match="is not in .*the pin in deps.toml is wrong"):
        deps.fetch(manifest.get("libfoo"), cache)
    assert not (cache / "libfoo").exists() and list(cache.iterdir()) == []


def test_unreachable_url_fails_clearly(tmp_path, upstream):
    manifest = deps.load_manifest(write_manifest(tmp_path / "deps.toml", (tmp_path / "gone").as_uri(),
                                                 upstream["first"]))
    with pytest.raises(ToolFailed, match="cannot fetch libfoo .*rtflash deps --fetch --from DIR"):
        deps.fetch(manifest.get("libfoo"), tmp_path / "cache")


def test_offline_copy_is_used_when_the_url_is_unreachable(tmp_path, upstream):
    offline = tmp_path / "usb-stick"
    offline.mkdir()
    subprocess.run(["git", "clone", "-q", upstream["url"], str(offline / "libfoo")], check=True)
    manifest = deps.load_manifest(write_manifest(tmp_path / "deps.toml", (tmp_path / "no-network").as_uri(),
                                                 upstream["first"]))
    status = deps.fetch(manifest.get("libfoo"), tmp_path / "cache", offline_dirs=[offline])
    assert status.state == deps.OK and str(offline / "libfoo") in status.detail
    assert git("rev-parse", "HEAD", cwd=tmp_path / "cache" / "libfoo") == upstream["first"]


def test_from_dir_without_the_pin_never_falls_back_to_the_network(tmp_path, upstream):
    """--from DIR is an offline fetch: with DIR/libfoo missing the pin, the URL (reachable here, a local
    repo) is not tried, nothing lands in the cache, and the line does not advise the --from just given."""
    empty = tmp_path / "usb-stick"
    empty.mkdir()
    manifest = deps.load_manifest(write_manifest(tmp_path / "deps.toml", upstream["url"], upstream["first"]))
    with pytest.raises(ToolFailed) as err:
        deps.fetch(manifest.get("libfoo"), tmp_path / "cache", offline_dirs=[empty])
    line = str(err.value)
    assert f"{empty / 'libfoo'} holds no git checkout with commit {upstream['first'][:12]}" in line
    assert "drop --from" in line and "--from DIR" not in line
    assert not (tmp_path / "cache" / "libfoo").exists()
    dep = registry_manifest(tmp_path).registry[0]
    missing = deps.fetch_registry(dep, tmp_path / "cache", offline_dirs=[empty])
    assert missing.state == deps.MISSING and str(empty / "components" / "ns__thing") in missing.detail
    assert "--from DIR" not in missing.detail


def test_plain_directory_without_a_recorded_tree_cannot_be_verified(tmp_path, upstream):
    manifest = deps.load_manifest(write_manifest(tmp_path / "deps.toml", upstream["url"], upstream["first"]))
    (tmp_path / "cache" / "libfoo").mkdir(parents=True)
    status = deps.check(manifest, tmp_path / "cache")[0]
    assert status.state == deps.MISMATCH and "not a git checkout" in status.detail
    assert "no tree fingerprint" in status.detail


# -- plain trees and registry components (offline bundles) ------------------------------------------

def plain_tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_tree_fingerprint_is_the_documented_shell_line(tmp_path):
    tree = plain_tree(tmp_path / "t", {"b.c": "b\n", "a/x.h": "x\n", "A/y.h": "y\n", ".hidden": "h\n",
                                       "name with space.txt": "s\n"})
    shell = subprocess.run("find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum",
                           shell=True, cwd=tree, capture_output=True, text=True, check=True).stdout.split()[0]
    assert deps.tree_fingerprint(tree) == shell
    git("init", "-q", cwd=tree)  # .git/ is not part of the tree
    assert deps.tree_fingerprint(tree) == shell


def shell_fingerprint(command: str, tree: Path) -> str:
    return subprocess.run(command, shell=True, cwd=tree, capture_output=True, text=True, check=True,
                          executable="/bin/sh").stdout.split()[0]


def test_symlinks_hash_as_git_stores_them_in_all_three_layouts(tmp_path):
    """libpeer's include/peer*.h are symlinks: a git checkout, its `cp -a` copy and a checkout with
    links as plain files (git's core.symlinks=false, as ../shared may arrive) give one fingerprint,
    from rtflash, from rt_deps.cmake and from the documented shell lines."""
    origin = plain_tree(tmp_path / "origin", {"src/peer.h": "int peer(void);\n", "src/sub/a.c": "a\n",
                                               "README": "r\n"})
    (origin / "include").mkdir()
    (origin / "include" / "peer.h").symlink_to("../src/peer.h")
    (origin / "include" / "gone.h").symlink_to("../src/nowhere.h")   # dangling: still its target text
    (origin / "srcdir").symlink_to("src/sub")                       # a directory link is not followed
    git("init", "-q", cwd=origin)
    git("add", "-A", cwd=origin)
    git("commit", "-q", "-m", "t", cwd=origin)
    checkout = tmp_path / "checkout"
    git("clone", "-q", str(origin), str(checkout), cwd=tmp_path)
    copied = tmp_path / "copied"
    subprocess.run(["cp", "-a", str(checkout), str(copied)], check=True)
    as_files = tmp_path / "as-files"
    git("-c", "core.symlinks=false", "clone", "-q", str(origin), str(as_files), cwd=tmp_path)
    assert (checkout / "include" / "peer.h").is_symlink() and (copied / "srcdir").is_symlink()
    assert not (as_files / "include" / "peer.h").is_symlink()
    assert (as_files / "include" / "peer.h").read_text() == "../src/peer.h"
    layouts = [checkout, copied, as_files]
    values = {deps.tree_fingerprint(t) for t in layouts}
    assert len(values) == 1, values
    value = values.pop()
    assert {shell_fingerprint(deps.FINGERPRINT_SHELL, t) for t in layouts} == {value}
    # ../shared's ESP-IDF.md command (find -type f) agrees where the links arrived as files
    plain = "find . -path ./.git -prune -o -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum"
    assert shell_fingerprint(plain, as_files) == value
    assert shell_fingerprint(plain, checkout) != value   # it skips links: why the link-aware line exists
    # the link is hashed, not followed: changing the target file changes one entry, not two
    (checkout / "include" / "peer.h").unlink()
    (checkout / "include" / "peer.h").symlink_to("../src/other.h")
    assert deps.tree_fingerprint(checkout) != value
    if shutil.which("cmake"):
        script = tmp_path / "fp.cmake"
        from rtflash.resources import firmware_dir
        script.write_text(f'cmake_minimum_required(VERSION 3.16)\ninclude("{firmware_dir() / "cmake" / "rt_deps.cmake"}")\n'
                          'rt_deps_tree_fingerprint("${D}" got)\nmessage(STATUS "fp=${got}")\n')
        for tree in (copied, as_files):
            done = subprocess.run(["cmake", f"-DD={tree}", "-P", str(script)], capture_output=True, text=True,
                                  check=False)
            assert f"fp={value}" in done.stdout, done.stdout + done.stderr


def test_pinned_libpeer_fingerprint_holds_for_the_shared_copy(shared_deps):
    """The pin in deps.toml is the value of ../shared's libpeer (its include/ links arrive as files)."""
    pinned = deps.load_manifest(deps.manifest_path()).get("libpeer").tree
    assert deps.tree_fingerprint(shared_deps / "libpeer") == pinned
    assert shell_fingerprint(deps.FINGERPRINT_SHELL, shared_deps / "libpeer") == pinned


def test_plain_tree_is_verified_by_its_fingerprint_and_copied_from_a_local_bundle(tmp_path, upstream):
    bundle = plain_tree(tmp_path / "bundle" / "libfoo", {"src/foo.c": "int foo(void) { return 1; }\n"})
    pinned = deps.tree_fingerprint(bundle)
    manifest = deps.load_manifest(write_manifest(tmp_path / "deps.toml", (tmp_path / "offline").as_uri(),
                                                 upstream["first"], f'tree = "{pinned}"\n'))
    dep = manifest.get("libfoo")
    assert deps.verify(dep, bundle).state == deps.OK
    status = deps.fetch(dep, tmp_path / "cache", offline_dirs=[tmp_path / "bundle"])
    assert status.state == deps.OK and "copied" in status.detail
    assert deps.verify(dep, tmp_path / "cache" / "libfoo").state == deps.OK
    (tmp_path / "cache" / "libfoo" / "src" / "foo.c").write_text("int foo(void) { return 666; }\n")
    changed = deps.verify(dep, tmp_path / "cache" / "libfoo")
    assert changed.state == deps.MISMATCH and "differs from the pinned tree" in changed.detail


def registry_manifest(tmp_path: Path, tree: str = "") -> deps.Manifest:
    (tmp_path / "comp").mkdir(exist_ok=True)
    (tmp_path / "comp" / "idf_component.yml").write_text('dependencies:\n  ns/thing:\n    version: "==1.2.3"\n')
    path = tmp_path / "deps.toml"
    path.write_text('[registry."ns/thing"]\nversion = "1.2.3"\ntargets = ["linux"]\n'
                    'manifest = "comp/idf_component.yml"\n' + (f'tree = "{tree}"\n' if tree else ""))
    return deps.load_manifest(path)


def test_registry_component_in_a_deps_dir_is_checked_for_version_and_tree(tmp_path):
    good = plain_tree(tmp_path / "usb" / "components" / "ns__thing",
                      {"idf_component.yml": "version: 1.2.3\n", "CMakeLists.txt": "idf_component_register()\n"})
    dep = registry_manifest(tmp_path, deps.tree_fingerprint(good)).registry[0]
    assert dep.folder == "ns__thing"
    assert deps.check_registry(dep).state == deps.MANAGED            # no local copy: the manager fetches it
    assert deps.check_registry(dep, tmp_path / "usb").state == deps.OK
    fetched = deps.fetch_registry(dep, tmp_path / "cache", offline_dirs=[tmp_path / "usb"])
    assert fetched.state == deps.OK and (tmp_path / "cache/components/ns__thing/CMakeLists.txt").is_file()
    (good / "idf_component.yml").write_text("version: 1.2.4\n")
    wrong = deps.check_registry(dep, tmp_path / "usb")
    assert wrong.state == deps.MISMATCH and "is version 1.2.4, the pin is 1.2.3" in wrong.detail


def test_shipped_pins_match_the_offline_bundle(shared_deps, invoke):
    """deps.toml pins only what exists: every dependency of the offline bundle CI builds from verifies
    (git deps as plain trees by fingerprint, registry components by version and fingerprint)."""
    result = invoke("deps", "--check", "--json", "--cache", str(shared_deps))
    data = json.loads(result.stdout)
    assert result.exit_code == 0, data
    assert {d["name"]: d["state"] for d in data["deps"]} == {
        "libpeer": "ok", "espressif/esp_codec_dev": "ok", "78/esp-opus": "ok",
        "sepfy/srtp": "ok"}


def run_rt_deps(tmp_path: Path, deps_dir: Path, manifest: Path, component_manager: str = "0"):
    from rtflash.resources import firmware_dir

    script = tmp_path / "resolve.cmake"
    script.write_text(f'cmake_minimum_required(VERSION 3.16)\ninclude("{firmware_dir() / "cmake" / "rt_deps.cmake"}")\n'
                      f'set(RT_DEPS_DIR "{deps_dir}")\nrt_deps_resolve("linux" "{manifest}")\n')
    return subprocess.run(["cmake", "-P", str(script)], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "IDF_COMPONENT_MANAGER": component_manager})


def test_rt_deps_cmake_verifies_plain_trees_and_registry_components(tmp_path):
    """The build refuses a plain tree or registry copy that is not the pinned one (it used to only warn)."""
    if shutil.which("cmake") is None:
        pytest.skip("cmake is not installed")
    lib = plain_tree(tmp_path / "d" / "libfoo", {"src/foo.c": "int foo(void);\n"})
    comp = plain_tree(tmp_path / "d" / "components" / "ns__thing", {"idf_component.yml": "version: 1.2.3\n"})
    manifest = tmp_path / "deps.toml"
    (tmp_path / "comp").mkdir()
    manifest.write_text(f'[git.libfoo]\nurl = "file:///nowhere"\ncommit = "{"a" * 40}"\n'
                        f'tree = "{deps.tree_fingerprint(lib)}"\ntargets = ["linux"]\n\n'
                        f'[registry."ns/thing"]\nversion = "1.2.3"\ntree = "{deps.tree_fingerprint(comp)}"\n'
                        f'targets = ["linux"]\nmanifest = "comp/idf_component.yml"\n')
    ok = run_rt_deps(tmp_path, tmp_path / "d", manifest)
    assert ok.returncode == 0, ok.stderr
    (lib / "src" / "foo.c").write_text("int foo(void) { return 2; }\n")
    bad = run_rt_deps(tmp_path, tmp_path / "d", manifest)
    assert bad.returncode != 0 and "differs from the pinned libfoo" in bad.stderr
    (lib / "src" / "foo.c").write_text("int foo(void);\n")
    (comp / "idf_component.yml").write_text("version: 1.2.4\n")
    wrong = run_rt_deps(tmp_path, tmp_path / "d", manifest)
    assert wrong.returncode != 0 and "is version 1.2.4, deps.toml pins 1.2.3" in wrong.stderr
    shutil.rmtree(comp)
    gone = run_rt_deps(tmp_path, tmp_path / "d", manifest)
    assert gone.returncode != 0 and "has no components/ns__thing/ and the component manager is off" in gone.stderr
    assert run_rt_deps(tmp_path, tmp_path / "d", manifest, component_manager="1").returncode == 0


# -- the command, doctor and build --deps-dir ----------------------------------------------------------

@pytest.fixture
def local_manifest(tmp_path, upstream, monkeypatch) -> Path:
    path = write_manifest(tmp_path / "deps.toml", upstream["url"], upstream["first"])
    monkeypatch.setattr("rtflash.deps_manifest.manifest_path", lambda: path)
    cache = tmp_path / "cache"
    monkeypatch.setenv("RTFLASH_DEPS_CACHE", str(cache))
    return cache


def test_cli_check_fetch_json(invoke, local_manifest):
    missing = invoke("deps", "--check", "--json")
    assert missing.exit_code == 1
    data = json.loads(missing.stdout)
    assert data["ok"] is False and data["deps"][0]["state"] == "missing"
    fetched = invoke("deps", "--fetch")
    assert fetched.exit_code == 0, fetched.output
    assert "fetched" in fetched.stderr + fetched.stdout
    ok = invoke("deps", "--check", "--json", "--target", "linux")
    assert ok.exit_code == 0 and json.loads(ok.stdout)["deps"][0]["state"] == "ok"


def test_doctor_check(local_manifest, upstream):
    from rtflash.doctor import FAIL, OK, WARN, Check

    before = deps.doctor_check()
    assert isinstance(before, Check) and before.status == WARN and "libfoo" in before.detail
    deps.fetch_all(deps.load_manifest(), local_manifest)
    assert deps.doctor_check().status == OK
    git("checkout", "-q", upstream["second"], cwd=local_manifest / "libfoo")
    assert deps.doctor_check().status == FAIL


def test_build_passes_deps_dir_to_idf(invoke, project, fake_idf, monkeypatch, tmp_path):
    log = tmp_path / "argv.log"
    monkeypatch.setenv("FAKE_IDF_LOG", str(log))
    local = tmp_path / "deps"
    local.mkdir()
    result = invoke("build", "--board", "sonatino", "--backend", "idf", "--deps-dir", str(local))
    assert result.exit_code == 0, result.output
    argv = json.loads(log.read_text().splitlines()[0])
    assert f"-DRT_DEPS_DIR={local}" in argv
    missing = invoke("build", "--board", "sonatino", "--backend", "idf", "--deps-dir", str(tmp_path / "nope"))
    assert missing.exit_code != 0


@pytest.mark.parametrize("argv", [["run", "--board", "sonatino", "--backend", "idf", "--port", "socket://127.0.0.1:9",
                                   "--no-credentials", "--no-monitor"],
                                  ["ci", "--boards", "sonatino", "--backend", "idf", "--out", "dist"]])
def test_run_and_ci_pass_deps_dir_to_idf(argv, invoke, project, fake_idf, monkeypatch, tmp_path):
    """`--deps-dir` means the same on run and ci as on build: -DRT_DEPS_DIR on the idf.py line."""
    log = tmp_path / "argv.log"
    monkeypatch.setenv("FAKE_IDF_LOG", str(log))
    local = tmp_path / "deps"
    local.mkdir()
    invoke(*argv[:1], "--deps-dir", str(local), *argv[1:])
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert calls and all(f"-DRT_DEPS_DIR={local}" in c for c in calls), calls
