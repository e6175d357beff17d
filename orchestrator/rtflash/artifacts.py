"""What a build produced, in one value: the flasher (flash.py) and CI (ci) read only this.

ESP-IDF describes its outputs in `<build>/flasher_args.json` (written by tools/cmake/project.cmake):
`flash_settings` (flash_mode/flash_size/flash_freq), `flash_files` (offset -> path relative to the
build dir), per-part entries (`bootloader`, `partition-table`, `app`, `otadata`, ...) and
`extra_esptool_args` (`chip`, ...).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from rtflash.errors import ConfigError


@dataclass(frozen=True)
class FlashRegion:
    """One image to write: `name` is flasher_args.json's part name ("bootloader", "app", ...)."""

    name: str
    offset: int
    path: Path


@dataclass(frozen=True)
class Artifacts:
    board: str
    chip: str
    build_dir: Path
    regions: tuple[FlashRegion, ...]  # sorted by offset
    flash_mode: str = "dio"
    flash_freq: str = "80m"
    flash_size: str = "keep"
    elf: Path | None = None

    def region(self, name: str) -> FlashRegion | None:
        return next((r for r in self.regions if r.name == name), None)

    @property
    def app(self) -> FlashRegion | None:
        return self.region("app")


def load_flasher_args(build_dir: Path, board: str = "") -> Artifacts:
    """Read an ESP-IDF build dir's flasher_args.json into Artifacts."""
    build_dir = Path(build_dir)
    path = build_dir / "flasher_args.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path} not found; build first: rtflash build --board {board or 'NAME'}") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: unreadable ({exc}); rebuild with rtflash build") from None
    names = {part["file"]: name for name, part in data.items()
             if isinstance(part, dict) and "offset" in part and "file" in part}
    regions = tuple(sorted(
        (FlashRegion(names.get(rel, Path(rel).stem), int(off, 16), build_dir / rel)
         for off, rel in data.get("flash_files", {}).items()),
        key=lambda r: r.offset))
    for region in regions:  # a half-deleted build dir is a clear error, not a crash while flashing
        if not region.path.is_file():
            raise ConfigError(f"{region.path} is missing (listed in {path}); rebuild with "
                              f"`rtflash build --board {board or build_dir.name}`")
    settings = data.get("flash_settings", {})
    chip = data.get("extra_esptool_args", {}).get("chip", "")
    elf = find_elf(build_dir)
    return Artifacts(board or build_dir.name, chip, build_dir, regions, settings.get("flash_mode", "dio"),
                     settings.get("flash_freq", "80m"), settings.get("flash_size", "keep"), elf)


def find_elf(build_dir: Path) -> Path | None:
    """The app ELF named in project_description.json (`app_elf`), if the build dir has one."""
    desc = build_dir / "project_description.json"
    try:
        elf = json.loads(desc.read_text(encoding="utf-8")).get("app_elf")
    except (OSError, ValueError):
        return None
    return build_dir / elf if elf else None


def linux_artifacts(build_dir: Path, board: str) -> Artifacts:
    """The linux target builds a host ELF only (no images, no flasher_args.json)."""
    elf = find_elf(build_dir)
    if elf is None or not elf.is_file():
        raise ConfigError(f"{build_dir}/project_description.json names no ELF; rebuild with rtflash build --clean")
    return Artifacts(board, "linux", build_dir, (), "", "", "", elf)


def pio_artifacts(board, env_dir: Path, config_dir: Path) -> Artifacts:
    """PlatformIO's outputs as Artifacts: bootloader.bin, partitions.bin, firmware.bin/.elf, and
    ota_data_initial.bin, which the espidf builder writes into the env dir when the partition table has
    an `otadata` (data/ota) partition (the ESP-IDF path flashes it too)."""
    from rtflash.errors import ToolFailed
    from rtflash.partitions import read_csv

    layout = read_csv(config_dir / "partitions.csv")
    regions = [FlashRegion("bootloader", 0x0, env_dir / "bootloader.bin"),
               FlashRegion("partition-table", 0x8000, env_dir / "partitions.bin")]
    otadata = next((p for p in layout.partitions if p.type == "data" and p.subtype == "ota"), None)
    if otadata is not None:
        regions.append(FlashRegion("otadata", otadata.offset, env_dir / "ota_data_initial.bin"))
    regions.append(FlashRegion("app", layout.app.offset, env_dir / "firmware.bin"))
    missing = [str(r.path) for r in regions if not r.path.is_file()]
    if missing:
        raise ToolFailed(f"PlatformIO finished but {missing[0]} is missing; rebuild with --clean")
    return Artifacts(board.name, board.chip, env_dir, tuple(regions), "dio", "80m", board.flash_size,
                     env_dir / "firmware.elf")


def last_build(board, build_dir: Path) -> Artifacts:
    """The images of the board's last build: ESP-IDF's flasher_args.json, else PlatformIO's outputs."""
    build_dir = Path(build_dir)
    if (build_dir / "flasher_args.json").is_file():
        return load_flasher_args(build_dir, board.name)
    env_dir = build_dir / "pio" / board.name
    if (env_dir / "firmware.bin").is_file():
        return pio_artifacts(board, env_dir, build_dir / "config")
    raise ConfigError(f"no build of board {board.name} in {build_dir}: run rtflash build --board {board.name}")


def check_fits(artifacts: Artifacts, partitions_csv: Path, layout=None) -> None:
    """Every image must fit the partition it is written to: in `layout` (the binary table the build
    writes, when read already), else in the rendered CSV."""
    from rtflash.partitions import read_csv

    layout = layout or read_csv(partitions_csv)
    for region in artifacts.regions:
        part = next((p for p in layout.partitions if p.offset == region.offset), None)
        size = region.path.stat().st_size
        if part is not None and size > part.size:
            raise ConfigError(f"{region.path.name} is {size:#x} bytes but partition '{part.name}' holds "
                              f"{part.size:#x} (over by {size - part.size:#x}); shrink the app or use a "
                              "bigger app partition")


def sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def merged_image(artifacts: Artifacts) -> bytes:
    """One factory image (offset 0) made by esptool's merge_bin: what ESP Web Tools flashes."""
    import contextlib
    import io

    from esptool.cmds import merge_bin

    pairs = [(r.offset, str(r.path)) for r in artifacts.regions]
    with contextlib.redirect_stdout(io.StringIO()):  # esptool prints hints; our stdout is for data
        return merge_bin(pairs, artifacts.chip, output=None, flash_mode=artifacts.flash_mode or "keep",
                         flash_freq=artifacts.flash_freq or "keep", flash_size=artifacts.flash_size or "keep")


def web_tools_manifest(artifacts: Artifacts, merged_name: str, version: str) -> dict:
    """ESP Web Tools manifest.json: one build, the merged image at offset 0."""
    family = {"esp32s3": "ESP32-S3"}.get(artifacts.chip, artifacts.chip.upper())
    return {"name": f"rtflash firmware ({artifacts.board})", "version": version, "new_install_prompt_erase": True,
            "builds": [{"chipFamily": family, "parts": [{"path": merged_name, "offset": 0}]}]}


def size_summary(artifacts: Artifacts) -> dict:
    """Image sizes, and esp-idf-size's figures when the build left a linker map."""
    summary = {"images": {r.name: r.path.stat().st_size for r in artifacts.regions}}
    maps = sorted(artifacts.build_dir.glob("*.map"))
    if maps:
        import sys

        from rtflash import proc

        result = proc.run([sys.executable, "-m", "esp_idf_size", "--format", "json2", str(maps[0])],
                          check=False, timeout=120)
        if result.returncode == 0:
            try:
                summary["esp_idf_size"] = json.loads(result.output[result.output.find("{"):])
            except ValueError:
                summary["esp_idf_size_error"] = "unparsable output"
        else:
            summary["esp_idf_size_error"] = result.output.strip().splitlines()[-1:] or ["failed"]
    return summary


def collect_dist(artifacts: Artifacts, out_dir: Path, version: str = "") -> list[Path]:
    """Write dist/<board>/: merged image, separate bins, manifest.json, SHA256SUMS, size.json.

    Everything is staged in a temp dir and swapped in at the end, so a failure (a full disk) leaves
    the previous good dist/<board>/ untouched. nvs.bin (credentials) is never copied.
    """
    import shutil
    import tempfile

    from rtflash import __version__
    from rtflash.files import write_atomic

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        files: list[str] = []
        if artifacts.chip == "linux":
            if artifacts.elf:
                shutil.copy2(artifacts.elf, stage / artifacts.elf.name)
                files.append(artifacts.elf.name)
        else:
            for region in artifacts.regions:
                name = f"{region.name}-{region.offset:#x}.bin"
                shutil.copyfile(region.path, stage / name)
                files.append(name)
            merged = f"{artifacts.board}-factory.bin"
            write_atomic(stage / merged, merged_image(artifacts))
            files.append(merged)
            manifest = web_tools_manifest(artifacts, merged, version or __version__)
            write_atomic(stage / "manifest.json", json.dumps(manifest, indent=2) + "\n")
            files.append("manifest.json")
            write_atomic(stage / "size.json", json.dumps(size_summary(artifacts), indent=2) + "\n")
            files.append("size.json")
        if artifacts.elf and artifacts.elf.is_file() and artifacts.chip != "linux":
            shutil.copy2(artifacts.elf, stage / artifacts.elf.name)
            files.append(artifacts.elf.name)
        sums = "".join(f"{sha256(stage / f)}  {f}\n" for f in sorted(files))
        write_atomic(stage / "SHA256SUMS", sums)
        files.append("SHA256SUMS")
        old = out_dir.with_name(f".{out_dir.name}.old")
        if old.exists():
            shutil.rmtree(old)
        if out_dir.exists():
            out_dir.rename(old)
        stage.rename(out_dir)
        shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        shutil.rmtree(stage, ignore_errors=True)
        raise ConfigError(f"cannot write {out_dir}: {exc.strerror}; previous artifacts kept") from None
    except ConfigError as exc:
        shutil.rmtree(stage, ignore_errors=True)
        raise ConfigError(f"{exc}; previous artifacts in {out_dir} kept") from None
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return [out_dir / f for f in sorted(files)]
