"""The firmware's dependency manifest (firmware-src/deps.toml): its entries, parsed and validated.

Why apart from rtflash.deps: reading the one manifest (what is pinned) is a different job from
fetching and verifying copies of it (rtflash.deps), and both the CLI and the build use it.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

from rtflash.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_SHA = re.compile(r"^[0-9a-f]{40}$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_REGISTRY_NAME = re.compile(r"^[a-z0-9_.-]+/[a-z0-9_.-]+$", re.IGNORECASE)
_URL = re.compile(r"^(https://|ssh://|git@|file://|/)")
TARGETS = ("esp32s3", "linux")


@dataclass(frozen=True)
class GitDep:
    name: str
    url: str
    commit: str
    targets: tuple[str, ...]
    note: str = ""
    tree: str = ""  # fingerprint of the pinned tree as a plain copy (tree_fingerprint), "" if unknown


@dataclass(frozen=True)
class RegistryDep:
    name: str
    version: str
    targets: tuple[str, ...]
    manifest: Path
    note: str = ""
    tree: str = ""

    @property
    def folder(self) -> str:
        """The component manager's folder name: `ns/name` -> `ns__name`."""
        return self.name.replace("/", "__")


@dataclass(frozen=True)
class Manifest:
    path: Path
    git: tuple[GitDep, ...]
    registry: tuple[RegistryDep, ...]

    def get(self, name: str) -> GitDep:
        for dep in self.git:
            if dep.name == name:
                return dep
        raise ConfigError(f"{self.path}: no git dependency named {name!r}; "
                          f"known: {', '.join(d.name for d in self.git)}")


def manifest_path() -> Path:
    from rtflash.resources import firmware_dir

    return firmware_dir() / "deps.toml"


def _targets(where: str, raw) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw or any(t not in TARGETS for t in raw):
        raise ConfigError(f"{where}: targets must be a non-empty list of {', '.join(TARGETS)}")
    return tuple(raw)


def _tree(where: str, raw) -> str:
    if raw == "":
        return ""
    if not isinstance(raw, str) or not re.match(r"^[0-9a-f]{64}$", raw):
        raise ConfigError(f"{where}: tree must be a 64-hex-digit fingerprint (the top of "
                          "firmware-src/deps.toml says how to compute it)")
    return raw


def load_manifest(path: Path | None = None) -> Manifest:
    """Parse and validate deps.toml; every problem names the file and the entry."""
    path = Path(path or manifest_path())
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the dependency manifest: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    unknown = set(raw) - {"git", "registry"}
    if unknown:
        raise ConfigError(f"{path}: unknown table(s) {', '.join(sorted(unknown))}; use [git.NAME] or [registry.\"NS/NAME\"]")
    git = []
    for name, entry in raw.get("git", {}).items():
        where = f"{path}: [git.{name}]"
        if not _NAME.match(name):
            raise ConfigError(f"{where}: name must be lower-case letters, digits, - _ .")
        extra = set(entry) - {"url", "commit", "targets", "note", "tree"}
        if extra:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(extra))}")
        url, commit = entry.get("url", ""), entry.get("commit", "")
        if not isinstance(url, str) or not _URL.match(url):
            raise ConfigError(f"{where}: url must be an https://, ssh:// or file:// git URL")
        if not isinstance(commit, str) or not _SHA.match(commit):
            raise ConfigError(f"{where}: commit must be a full 40-character lower-case SHA, not a branch or tag")
        git.append(GitDep(name, url, commit, _targets(where, entry.get("targets")), str(entry.get("note", "")),
                          _tree(where, entry.get("tree", ""))))
    registry = []
    for name, entry in raw.get("registry", {}).items():
        where = f"{path}: [registry.\"{name}\"]"
        if not _REGISTRY_NAME.match(name):
            raise ConfigError(f"{where}: name must be NAMESPACE/NAME as on the ESP Component Registry")
        extra = set(entry) - {"version", "targets", "manifest", "note", "tree"}
        if extra:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(extra))}")
        version = entry.get("version", "")
        if not isinstance(version, str) or not re.match(r"^\d+\.\d+\.\d+([~-][0-9A-Za-z.]+)?$", version):
            raise ConfigError(f"{where}: version must be an exact version like 1.2.3")
        manifest = entry.get("manifest")
        if not isinstance(manifest, str) or not manifest.endswith("idf_component.yml"):
            raise ConfigError(f"{where}: manifest must name the idf_component.yml that declares it")
        registry.append(RegistryDep(name, version, _targets(where, entry.get("targets")), path.parent / manifest,
                                    str(entry.get("note", "")), _tree(where, entry.get("tree", ""))))
    return Manifest(path, tuple(git), tuple(registry))
