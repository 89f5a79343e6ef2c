"""Render the templates with makejinja, in-process, into a directory of our choosing.

``makejinja.toml`` stays the single description of the render (so the makejinja CLI and
``inv configure`` produce the same files); we only redirect its output and hand the plugin
the context we already validated, so nothing is loaded or decrypted twice.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tomllib
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from tasks.lib.config.template_context import RenderContext
from tasks.lib.errors import UserError
from tasks.lib.paths import Paths

_ACTIVE: ContextVar[RenderContext | None] = ContextVar("home_ops_render_context", default=None)


def active_context() -> RenderContext | None:
    """The context of the render in progress, for the makejinja plugin."""
    return _ACTIVE.get()


@contextlib.contextmanager
def activated(context: RenderContext) -> Iterator[None]:
    token = _ACTIVE.set(context)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def bytecode_cache() -> Any:
    """Compiled templates kept in the user's cache directory, so a render compiles only the
    templates that changed since the last one. Entries are keyed by template name alone
    (Jinja still checks each one against its source), so copies of the repository share."""
    from jinja2 import FileSystemBytecodeCache

    class ByName(FileSystemBytecodeCache):
        def get_cache_key(self, name: str, filename: str | None = None) -> str:
            return super().get_cache_key(name)

    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    directory = base / "home-ops" / "jinja"
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None  # a read-only home: compile every time
    return ByName(str(directory))


def read_settings(paths: Paths) -> dict[str, Any]:
    label = paths.rel(paths.makejinja_config)
    try:
        settings = tomllib.loads(paths.makejinja_config.read_text())["makejinja"]
    except FileNotFoundError:
        raise UserError(f"{label} not found — the repository is incomplete") from None
    except (tomllib.TOMLDecodeError, KeyError) as error:
        raise UserError(f"{label}: invalid makejinja settings: {error}") from None
    return dict(settings)


#: Templates of files that get encrypted, and of the .sops.yaml that says how.
SOPS_TEMPLATES = "*.sops.*.j2"

Part = Literal["all", "secrets", "rest"]


def makejinja_config(paths: Paths, output: Path, part: Part = "all") -> Any:
    """makejinja's own Config from makejinja.toml, with paths resolved from the repository
    root, the output redirected and data files dropped (the plugin supplies the data).

    ``part`` narrows the render to the secrets (with every directory, so their parents
    exist) or to everything else, so encryption can start before the rest is rendered."""
    from makejinja.config import Config, Delimiter

    settings = read_settings(paths)
    delimiter = Delimiter(**settings.pop("delimiter", {}))
    settings.update(
        inputs=tuple(paths.root / p for p in settings.get("inputs", ())),
        import_paths=tuple(paths.root / p for p in settings.get("import_paths", ())),
        output=output,
        data=(),
        quiet=True,
        delimiter=delimiter,
    )
    if part == "secrets":
        settings["include_patterns"] = ("**", f"**/{SOPS_TEMPLATES}")
    elif part == "rest":
        settings["exclude_patterns"] = (*settings.get("exclude_patterns", ()), SOPS_TEMPLATES)
    if "undefined" in settings:
        from makejinja.config import Undefined

        settings["undefined"] = Undefined[settings["undefined"]]
    return Config(**settings)


def render(paths: Paths, context: RenderContext, output: Path, part: Part = "all") -> list[Path]:
    """Render the templates (all, or one ``part``) into ``output``; returns every file now in
    it, relative to it."""
    from jinja2 import TemplateError
    from makejinja.app import makejinja

    config = makejinja_config(paths, output, part)
    try:
        with activated(context):
            makejinja(config)
    except TemplateError as error:
        raise UserError(template_error_line(error, paths)) from None
    finally:
        for path in config.import_paths:
            with contextlib.suppress(ValueError):
                sys.path.remove(str(path.resolve()))
    return sorted(p.relative_to(output) for p in output.rglob("*") if p.is_file())


def template_error_line(error: Exception, paths: Paths) -> str:
    name = getattr(error, "filename", None) or getattr(error, "name", None) or "templates"
    line = getattr(error, "lineno", None)
    where = paths.rel(Path(name)) if name and Path(name).is_absolute() else str(name)
    message = getattr(error, "message", None) or str(error)
    return f"{where}:{line}: template error: {message}" if line else f"{where}: template error: {message}"
