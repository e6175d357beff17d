"""Render a board's configuration from Jinja templates into `build/<board>/config/`.

StrictUndefined turns a missing variable into an error naming template and line; autoescape is off
because none of the outputs is HTML. Files are written only when their content changes, so a no-op
render keeps mtimes and ESP-IDF does not reconfigure.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from rtflash.boards import Board
from rtflash.errors import ConfigError
from rtflash.files import write_if_changed
from rtflash.partitions import Layout, layout_for
from rtflash.settings import Settings, security_for

# Template -> output file, relative to the config dir. The linux target has no flash, partitions or
# PlatformIO board. The project folder (build/<board>/project, beside config/) is what idf.py builds,
# so firmware-src is never written to (firmware-src/cmake/rt_project.cmake).
TEMPLATES = {
    "sdkconfig.defaults.j2": "sdkconfig.defaults",
    "partitions.csv.j2": "partitions.csv",
    "platformio.ini.j2": "../project/platformio.ini",  # PlatformIO's project dir is the project folder
    "project/CMakeLists.txt.j2": "../project/CMakeLists.txt",
}
LINUX_TEMPLATES = ("sdkconfig.defaults.j2", "project/CMakeLists.txt.j2")
MAIN_STACK = 16384


@dataclass(frozen=True)
class RenderResult:
    board: str
    out_dir: Path
    written: tuple[Path, ...]
    unchanged: tuple[Path, ...]
    seconds: float

    @property
    def files(self) -> tuple[Path, ...]:
        return tuple(sorted(self.written + self.unchanged))


def environment(templates: Path | None = None):
    """The one Jinja environment: strict, no autoescape, whitespace-tidy, newline-preserving."""
    import jinja2

    from rtflash.resources import templates_dir

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates or templates_dir())),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_template(env, name: str, context: dict) -> str:
    """Render one template; a template bug becomes one ConfigError naming the template and line."""
    import jinja2

    try:
        return env.get_template(name).render(**context)
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(f"template {exc.name or name}:{exc.lineno}: {exc.message}") from None
    except jinja2.UndefinedError as exc:
        raise ConfigError(f"template {name}:{_template_line(exc, name)}: {exc.message}; "
                          "the template uses a variable rtflash does not provide") from None
    except jinja2.TemplateNotFound as exc:
        raise ConfigError(f"template {exc.name} not found; reinstall rtflash or check templates/") from None


def _template_line(exc: BaseException, name: str) -> str:
    tb = exc.__traceback__
    line = "?"
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.endswith(name):
            line = str(tb.tb_lineno)
        tb = tb.tb_next
    return line


def board_context(board: Board, settings: Settings, out_dir: Path, external=None) -> dict:
    """Template variables; with `external` (an ExternalFirmware, --firmware DIR) the sdkconfig layer holds
    only what the board decides, over DIR's own defaults, and DIR's partition table is kept if it fits."""
    from rtflash.resources import firmware_dir

    layout: Layout | None = None if board.is_linux else layout_for(board.flash_bytes)
    out_dir = Path(out_dir).resolve()
    return {
        "firmware_dir": str(firmware_dir()),
        "config_dir": str(out_dir),
        "build_dir": str(out_dir.parent),
        "board": board,
        "settings": settings,
        "layout": layout,
        "partitions_csv": str((out_dir / "partitions.csv").resolve()),
        "main_stack": MAIN_STACK,
        "security": security_for(settings, board.name),
        "app_size": layout.app_size if layout else 0,
        "external": external,
        "own_partitions": True,
        "partition_note": "",
        "external_unset": [],
    }


def external_names(board: Board, own_partitions: bool) -> tuple[str, ...]:
    """What --firmware DIR needs rendered: the board layer, rtflash's table only when DIR's does not fit,
    and platformio.ini (into the private copy, PlatformIO's project dir)."""
    if board.is_linux:
        return ("sdkconfig.defaults.j2",)
    names = ("sdkconfig.defaults.j2", "partitions.csv.j2") if own_partitions else ("sdkconfig.defaults.j2",)
    return (*names, "platformio.ini.j2")


def render_external(board: Board, settings: Settings, out_dir: Path, external, templates: Path | None = None
                    ) -> tuple[RenderResult, str]:
    """Render the board layer for --firmware DIR into `out_dir`; returns it and the partition-table note."""
    from rtflash.external import overridden_choices, partition_choice

    start = time.perf_counter()
    env = environment(templates)
    context = board_context(board, settings, out_dir, external)
    own, note = partition_choice(external, board)
    copy = project_dir_of(out_dir)
    src = next((copy / d for d in ("main", "src") if (external.source / d).is_dir()), copy / "main")
    defaults = [p for p in (copy / "sdkconfig.defaults",) if (external.source / "sdkconfig.defaults").is_file()]
    context.update(own_partitions=own, partition_note=note, external_src_dir=str(src),
                   external_defaults=";".join(str(p) for p in [*defaults, Path(context["config_dir"]) / "sdkconfig.defaults"]))
    if not board.is_linux:
        from rtflash.external import partition_source
        from rtflash.partitions import read_csv

        table = output_path(out_dir, "partitions.csv.j2") if own else partition_source(external)
        if table.is_file():
            context["app_size"] = read_csv(table).app.size
    first = render_template(env, "sdkconfig.defaults.j2", context)
    context["external_unset"] = overridden_choices(external, first)
    written, unchanged = [], []
    for name in external_names(board, own):
        path = output_path(out_dir, name)
        (written if write_if_changed(path, render_template(env, name, context)) else unchanged).append(path)
    if not own and not board.is_linux:  # the table DIR's build uses, where rtflash's size checks and flash read it
        from rtflash.external import partition_source

        path = output_path(out_dir, "partitions.csv.j2")
        (written if write_if_changed(path, partition_source(external).read_bytes()) else unchanged).append(path)
    return RenderResult(board.name, Path(out_dir), tuple(written), tuple(unchanged), time.perf_counter() - start), note


def render_board(board: Board, settings: Settings, out_dir: Path, templates: Path | None = None) -> RenderResult:
    """Render every config file for `board` into `out_dir`; unchanged files are left untouched."""
    start = time.perf_counter()
    env = environment(templates)
    context = board_context(board, settings, out_dir)
    names = LINUX_TEMPLATES if board.is_linux else tuple(TEMPLATES)
    rendered = {output_path(out_dir, name): render_template(env, name, context) for name in names}
    written, unchanged = [], []
    for path, text in rendered.items():
        (written if write_if_changed(path, text) else unchanged).append(path)
    return RenderResult(board.name, out_dir, tuple(written), tuple(unchanged), time.perf_counter() - start)


def output_path(out_dir: Path, template: str) -> Path:
    """Where `template` is rendered for config dir `out_dir` (normalised: no `..` in the result)."""
    return Path(os.path.normpath(Path(out_dir) / TEMPLATES[template]))


def project_dir_of(config: Path) -> Path:
    """The rendered ESP-IDF project folder that belongs to config dir `config`."""
    return output_path(config, "project/CMakeLists.txt.j2").parent


def config_dir(project_dir: Path, board_name: str) -> Path:
    return Path(project_dir) / "build" / board_name / "config"


def ensure_rendered(board: Board, settings: Settings, project_dir: Path) -> RenderResult:
    """Render unless every output is newer than the board file and the templates (cheap no-op path)."""
    out = config_dir(project_dir, board.name)
    try:
        from rtflash.resources import firmware_dir, templates_dir

        inputs = [board.path, *templates_dir().rglob("*.j2")]
        settings_file = Path(settings.path) if settings.path else None
        if settings_file:
            inputs.append(settings_file)
        names = LINUX_TEMPLATES if board.is_linux else tuple(TEMPLATES)
        outputs = [output_path(out, n) for n in names]
        newest_in = max(p.stat().st_mtime_ns for p in inputs)
        # the project file names firmware-src by absolute path: a reinstall elsewhere must re-render
        # it even when the installed templates carry old mtimes
        current = f'"{firmware_dir()}"' in project_dir_of(out).joinpath("CMakeLists.txt").read_text()
        if current and all(o.stat().st_mtime_ns >= newest_in for o in outputs):
            return RenderResult(board.name, out, (), tuple(outputs), 0.0)
    except (OSError, ValueError):
        pass
    return render_board(board, settings, out)
