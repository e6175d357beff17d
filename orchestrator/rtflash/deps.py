"""Firmware dependencies: the pinned manifest (firmware-src/deps.toml), a local cache, fetch and check.

Why: third-party C code (libpeer, and the registry components below) is never copied into the repo; it is
pinned by URL and full commit SHA and fetched with git into a cache, so a build is reproducible and,
once fetched, works offline (`rtflash build --deps-dir DIR`). ESP Component Registry components are
fetched by ESP-IDF's component manager, or, for offline builds, found in DIR/components/<ns>__<name>
(the component manager's own folder naming); their pins are checked against the component manifests
(idf_component.yml) so the one manifest and the build never disagree.

A dependency is verified whatever its form: a git checkout by `git rev-parse HEAD` against the pinned
commit, a plain tree (an offline bundle, a registry archive) by its tree fingerprint against the one
deps.toml records (`tree`), a registry component also by the version its idf_component.yml declares.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from rtflash.deps_manifest import (  # noqa: F401  (re-exported: callers use rtflash.deps.*)
    _SHA,
    TARGETS,
    GitDep,
    Manifest,
    RegistryDep,
    load_manifest,
    manifest_path,
)
from rtflash.errors import ConfigError, ToolFailed

OK, MISSING, MISMATCH, MANAGED = "ok", "missing", "mismatch", "managed"
GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true"}


@dataclass(frozen=True)
class Status:
    name: str
    kind: str          # git | registry
    state: str         # ok | missing | mismatch | managed
    detail: str
    path: Path | None = None

    @property
    def ok(self) -> bool:
        return self.state in (OK, MANAGED)

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "state": self.state, "detail": self.detail,
                "path": str(self.path) if self.path else None}


# The shell form of tree_fingerprint for any layout (symlinks hashed by their target text, as git stores
# them); in a tree without symlinks it equals `find . -type f -print0 | LC_ALL=C sort -z | xargs -0
# sha256sum | sha256sum`, the command ../shared's ESP-IDF.md documents for its plain copies.
FINGERPRINT_SHELL = (
    "find . -path ./.git -prune -o \\( -type f -o -type l \\) -print0 | LC_ALL=C sort -z | xargs -0 sh -c "
    "'for f; do if [ -L \"$f\" ]; then printf \"%s  %s\\n\" \"$(readlink -n \"$f\" | sha256sum | cut -c1-64)\" "
    "\"$f\"; else sha256sum \"$f\"; fi; done' sh | sha256sum")


def tree_fingerprint(root: Path) -> str:
    """sha256 over `<sha256>  ./<path>` lines of every file, sorted by path bytes, `.git/` left out.

    A symlink (to a file or a directory, dangling or not) is hashed as git stores it: the bytes of
    its target text, never followed. So a git checkout, its `cp -a` copy and a copy where each link
    became a plain file holding its target (as ../shared may arrive) all give one value; for a tree
    without links it is `find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum`,
    and FINGERPRINT_SHELL is the shell form for any layout, so anyone can check a pin by hand."""
    root = Path(root)
    entries: dict[bytes, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if here == root:
            dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in [*dirnames, *filenames]:
            full = here / name
            rel = ("./" + full.relative_to(root).as_posix()).encode()
            if full.is_symlink():
                entries[rel] = hashlib.sha256(os.fsencode(os.readlink(full))).hexdigest()
            elif name in filenames and full.is_file():
                entries[rel] = hashlib.sha256(full.read_bytes()).hexdigest()
    outer = hashlib.sha256()
    for rel in sorted(entries):
        outer.update(entries[rel].encode() + b"  " + rel + b"\n")
    return outer.hexdigest()


def cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where fetched dependencies live: $RTFLASH_DEPS_CACHE, else $XDG_CACHE_HOME/rtflash/deps, else ~/.cache/..."""
    from rtflash.resources import user_path

    return user_path("cache", "deps", "RTFLASH_DEPS_CACHE", env)


def _git(*args: str, cwd: Path | None = None, timeout: float = 600):
    from rtflash import proc

    return proc.run(["git", "-c", "advice.detachedHead=false", *args], cwd=cwd, env=GIT_ENV, timeout=timeout,
                    check=False)


def head_of(checkout: Path) -> str | None:
    """The commit checked out in `checkout`, or None when it is not a git checkout."""
    if not (checkout / ".git").exists():
        return None
    result = _git("rev-parse", "HEAD", cwd=checkout, timeout=30)
    head = result.output.strip()
    return head if result.returncode == 0 and _SHA.match(head) else None


def has_commit(repo: Path, commit: str) -> bool:
    """Does the git repository at `repo` hold `commit` (at any branch or HEAD)?"""
    if not (repo / ".git").exists():
        return False
    return _git("cat-file", "-e", f"{commit}^{{commit}}", cwd=repo, timeout=30).returncode == 0


def verify(dep: GitDep, checkout: Path) -> Status:
    """Is `checkout` `dep` at exactly its pin: a git checkout at the commit, or a plain tree with the
    pinned tree fingerprint?"""
    if not checkout.is_dir():
        return Status(dep.name, "git", MISSING, f"not fetched: run `rtflash deps --fetch` ({dep.url})", checkout)
    head = head_of(checkout)
    if head is None:
        return verify_tree(dep.name, "git", dep.tree, checkout, f"{dep.commit[:12]} (plain tree)")
    if head != dep.commit:
        return Status(dep.name, "git", MISMATCH, f"{checkout} is at {head[:12]}, the pin is {dep.commit[:12]}: "
                      "run `rtflash deps --fetch`", checkout)
    return Status(dep.name, "git", OK, f"{dep.commit[:12]} in {checkout}", checkout)


def verify_tree(name: str, kind: str, pinned: str, tree: Path, what: str) -> Status:
    """A plain (non-git) tree is the pinned one only if its fingerprint is the one deps.toml records."""
    if not pinned:
        return Status(name, kind, MISMATCH, f"{tree} is not a git checkout and deps.toml records no tree "
                      "fingerprint for it: it cannot be verified; fetch a git checkout instead", tree)
    got = tree_fingerprint(tree)
    if got != pinned:
        return Status(name, kind, MISMATCH, f"{tree} differs from the pinned tree (fingerprint {got[:12]}, "
                      f"deps.toml {pinned[:12]}): replace it with the pinned copy", tree)
    return Status(name, kind, OK, f"{what} in {tree}", tree)


def fetch(dep: GitDep, cache: Path, offline_dirs: Sequence[Path] = ()) -> Status:
    """Put `dep` at its pinned commit in cache/<name>; clone from a local copy in offline_dirs that has it.

    The clone goes to a temporary directory beside the target and is renamed into place only once
    `git rev-parse HEAD` equals the pin, so an interrupted or wrong fetch never leaves a bad copy.
    """
    target = Path(cache) / dep.name
    current = verify(dep, target)
    if current.state == OK:
        return current
    for local in (Path(d) / dep.name for d in offline_dirs):
        if local.is_dir() and head_of(local) is None and verify(dep, local).state == OK:
            return _copy_tree(dep.name, "git", local, target, dep.commit[:12])
    sources = [Path(d) / dep.name for d in offline_dirs if has_commit(Path(d) / dep.name, dep.commit)]
    if offline_dirs and not sources:  # --from means offline: never fall back to the network
        where = ", ".join(str(Path(d) / dep.name) for d in offline_dirs)
        raise ToolFailed(f"cannot fetch {dep.name}: {where} holds no git checkout with commit {dep.commit[:12]} "
                         f"(nor the pinned plain tree); put a clone of {dep.url} there, or drop --from to fetch "
                         "it from the network")
    source = str(sources[0]) if sources else dep.url
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dep.name}-", dir=target.parent))
    try:
        clone = _git("clone", "--filter=blob:none", "--no-checkout", "--quiet", source, str(tmp / "src"))
        if clone.returncode != 0:
            raise ToolFailed(f"cannot fetch {dep.name} from {source}: {_last_line(clone.output)}; "
                             "check the network, or fetch from a local copy: "
                             f"`rtflash deps --fetch --from DIR` (DIR/{dep.name})")
        checkout = _git("checkout", "--quiet", "--detach", dep.commit, cwd=tmp / "src")
        if checkout.returncode != 0:
            raise ToolFailed(f"{dep.name}: commit {dep.commit} is not in {source}: {_last_line(checkout.output)}; "
                             "the pin in deps.toml is wrong or the history was rewritten")
        got = head_of(tmp / "src")
        if got != dep.commit:
            raise ToolFailed(f"{dep.name}: checked out {got} but the pin is {dep.commit}")
        if target.exists():
            shutil.rmtree(target)
        (tmp / "src").rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return Status(dep.name, "git", OK, f"fetched {dep.commit[:12]} from {source}", target)


def _copy_tree(name: str, kind: str, source: Path, target: Path, what: str) -> Status:
    """Copy a verified plain tree into place through a temporary sibling (never a half copy)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        shutil.copytree(source, tmp / "src", symlinks=True)
        if target.exists():
            shutil.rmtree(target)
        (tmp / "src").rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return Status(name, kind, OK, f"copied {what} from {source}", target)


def _last_line(output: str) -> str:
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"


def pinned_in(manifest: Path, name: str) -> str | None:
    """The exact version an idf_component.yml pins for `name` ("==1.2.3" or "1.2.3"), else None."""
    try:
        lines = manifest.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    inside = False
    for line in lines:
        stripped = line.split("#", 1)[0].rstrip()
        if not stripped:
            continue
        key = re.match(r"^  ([^\s:][^:]*):\s*(.*)$", stripped)
        if key:
            inside = key.group(1).strip("'\"") == name
            inline = key.group(2).strip().strip("'\"")
            if inside and inline:
                return inline.removeprefix("==")
            continue
        version = re.match(r"^\s{4}version:\s*(.+)$", stripped)
        if inside and version:
            return version.group(1).strip().strip("'\"").removeprefix("==")
    return None


def declared_version(component: Path) -> str | None:
    """`version:` of a component's own idf_component.yml (registry archives carry it), else None."""
    try:
        text = (component / "idf_component.yml").read_text(encoding="utf-8")
    except OSError:
        return None
    m = re.search(r"^version:\s*['\"]?([^'\"\s#]+)", text, re.MULTILINE)
    return m.group(1) if m else None


def check_registry(dep: RegistryDep, root: Path | None = None) -> Status:
    """The firmware's idf_component.yml must pin what deps.toml pins; a copy in root/components/<ns>__<name>
    must be that version and tree. Without a copy the component manager fetches it (needs the registry)."""
    pinned = pinned_in(dep.manifest, dep.name)
    if pinned is None:
        return Status(dep.name, "registry", MISMATCH, f"{dep.manifest} does not declare {dep.name}", dep.manifest)
    if pinned != dep.version:
        return Status(dep.name, "registry", MISMATCH, f"{dep.manifest} pins {pinned}, deps.toml pins {dep.version}: "
                      "make them equal", dep.manifest)
    local = Path(root) / "components" / dep.folder if root else None
    if local is None or not local.is_dir():
        return Status(dep.name, "registry", MANAGED, f"=={dep.version}, fetched by ESP-IDF's component manager "
                      f"(needs the registry once; offline: `rtflash deps --fetch --from DIR` with "
                      f"DIR/components/{dep.folder})", dep.manifest)
    version = declared_version(local)
    if version != dep.version:
        return Status(dep.name, "registry", MISMATCH, f"{local} is version {version or 'unknown'}, the pin is "
                      f"{dep.version}: replace it with the pinned copy", local)
    return verify_tree(dep.name, "registry", dep.tree, local, f"=={dep.version}")


def fetch_registry(dep: RegistryDep, cache: Path, offline_dirs: Sequence[Path] = ()) -> Status:
    """Copy a verified local copy (DIR/components/<ns>__<name>) into the cache; else leave it managed."""
    current = check_registry(dep, cache)
    if current.state == OK or (current.state == MISMATCH and current.path == dep.manifest):
        return current  # in the cache already, or the two manifests disagree (no copy can fix that)
    for root in offline_dirs:
        if check_registry(dep, Path(root)).state == OK:
            return _copy_tree(dep.name, "registry", Path(root) / "components" / dep.folder,
                              Path(cache) / "components" / dep.folder, f"=={dep.version}")
    if offline_dirs:  # asked for offline copies: say where none was, not "use --from"
        where = ", ".join(str(Path(d) / "components" / dep.folder) for d in offline_dirs)
        return Status(dep.name, "registry", MISSING, f"=={dep.version} is not in {where}: copy the pinned version "
                      "there (or drop --from: ESP-IDF's component manager then fetches it)", dep.manifest)
    return current


def check(manifest: Manifest, cache: Path, target: str | None = None) -> list[Status]:
    """Status of every dependency (for one IDF target, or all)."""
    wanted = [d for d in manifest.git if target is None or target in d.targets]
    statuses = [verify(d, Path(cache) / d.name) for d in wanted]
    statuses += [check_registry(d, cache) for d in manifest.registry if target is None or target in d.targets]
    return statuses


def fetch_all(manifest: Manifest, cache: Path, offline_dirs: Sequence[Path] = (),
              target: str | None = None) -> list[Status]:
    """Fetch every git dependency (for a target, or all); registry components from local copies."""
    statuses = [fetch(d, cache, offline_dirs) for d in manifest.git if target is None or target in d.targets]
    statuses += [fetch_registry(d, cache, offline_dirs) for d in manifest.registry
                 if target is None or target in d.targets]
    return statuses


def doctor_check():
    """For `rtflash doctor`: are the firmware's dependencies fetched at their pins?"""
    from rtflash.doctor import FAIL, WARN, Check
    from rtflash.doctor import OK as DOCTOR_OK

    try:
        manifest = load_manifest()
    except ConfigError as exc:
        return Check("firmware deps", FAIL, str(exc), "fix firmware-src/deps.toml")
    cache = cache_dir()
    statuses = check(manifest, cache)
    bad = [s for s in statuses if s.state == MISMATCH]
    missing = [s for s in statuses if s.state == MISSING]
    if bad:
        return Check("firmware deps", FAIL, "; ".join(f"{s.name}: {s.detail}" for s in bad),
                     "rtflash deps --fetch")
    if missing:
        return Check("firmware deps", WARN, f"not fetched yet: {', '.join(s.name for s in missing)} (cache {cache})",
                     "rtflash deps --fetch (needs network once; builds fetch them too)")
    return Check("firmware deps", DOCTOR_OK, f"{len(statuses)} pinned, fetched in {cache}")
