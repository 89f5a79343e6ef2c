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

from jinja2 import FileSystemBytecodeCache, TemplateError

from tasks.lib.boundary import outside_problems
from tasks.lib.config.template_context import RenderContext
from tasks.lib.errors import UserError
from tasks.lib.files import read_text
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
    if not paths.makejinja_config.exists():
        raise UserError(f"{label} not found — the repository is incomplete")
    try:
        settings = tomllib.loads(read_text(paths.makejinja_config, label))["makejinja"]
    except (tomllib.TOMLDecodeError, KeyError, TypeError) as error:
        raise UserError(f"{label}: invalid makejinja settings: {one_line(error)}") from None
    if not isinstance(settings, dict):
        raise UserError(f"{label}: invalid makejinja settings: [makejinja] must be a table")
    return dict(settings)


#: Templates of files that get encrypted, and of the .sops.yaml that says how.
SOPS_TEMPLATES = "*.sops.*.j2"

Part = Literal["all", "secrets", "rest"]


def makejinja_config(paths: Paths, output: Path, part: Part = "all") -> Any:
    """makejinja's own Config from makejinja.toml, with paths resolved from the repository
    root, the output redirected and data files dropped (the plugin supplies the data).

    ``part="rest"`` leaves out the secrets (rendered in memory by :func:`render_secrets`)."""
    makejinja_app(paths)  # the first import of makejinja: a broken makejinja.toml is one line
    # deferred: importing makejinja reads makejinja.toml (see makejinja_app)
    from makejinja.config import Config, Delimiter

    settings = read_settings(paths)
    folders = {key: folders_inside(paths, key, settings.get(key, ())) for key in ("inputs", "import_paths")}
    try:
        delimiter = Delimiter(**settings.pop("delimiter", {}))
        settings.update(
            inputs=folders["inputs"],
            import_paths=folders["import_paths"],
            output=output,
            data=(),
            quiet=True,
            delimiter=delimiter,
        )
        if part == "rest":
            settings["exclude_patterns"] = (*settings.get("exclude_patterns", ()), SOPS_TEMPLATES)
        if "undefined" in settings:
            # deferred: importing makejinja reads makejinja.toml (see makejinja_app)
            from makejinja.config import Undefined

            settings["undefined"] = Undefined[settings["undefined"]]
        return Config(**settings)
    except Exception as error:  # attrs/typing errors of every kind for a wrong value
        label = paths.rel(paths.makejinja_config)
        raise UserError(f"{label}: invalid makejinja settings: {one_line(error)}") from None


def folders_inside(paths: Paths, key: str, values: object) -> tuple[Path, ...]:
    """The folders ``makejinja.toml`` names under ``key``, each inside the repository (a
    template folder elsewhere would render files from anywhere into the tree)."""
    label = paths.rel(paths.makejinja_config)
    if not isinstance(values, list | tuple) or not all(isinstance(v, str) for v in values):
        raise UserError(f"{label}: {key}: expected a list of folders")
    folders = tuple(paths.root / value for value in values)
    if problems := outside_problems(paths.root, folders):
        raise UserError(*(f"{label}: {key}: {problem}" for problem in problems))
    return folders


def one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())[:200]
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def makejinja_app(paths: Paths) -> Any:
    """``makejinja.app``. Importing makejinja reads ``makejinja.toml`` from the working
    directory (its command line's defaults), so a broken file fails the import itself."""
    try:
        # deferred: importing makejinja reads makejinja.toml: a broken one must be one line
        import makejinja.app
    except Exception as error:
        label = paths.rel(paths.makejinja_config)
        raise UserError(f"{label}: invalid makejinja settings: {one_line(error)}") from None
    return makejinja.app


def preload_renderer(paths: Paths) -> None:
    """Import makejinja now (while another process works); a broken ``makejinja.toml`` is
    still reported where the render first needs it."""
    with contextlib.suppress(UserError):
        makejinja_app(paths)


def render(paths: Paths, context: RenderContext, output: Path, part: Part = "all") -> list[Path]:
    """Render the templates (all, or one ``part``) into ``output``; returns every file now in
    it, relative to it."""
    config = makejinja_config(paths, output, part)
    makejinja = makejinja_app(paths).makejinja
    with template_errors(paths), import_paths(config), activated(context):
        makejinja(config)
    return sorted(p.relative_to(output) for p in output.rglob("*") if p.is_file())


def render_secrets(paths: Paths, context: RenderContext) -> dict[str, str]:
    """Render the secret templates (``*.sops.*.j2``, and ``.sops.yaml`` that says how to
    encrypt them) into memory: relative output path -> text. Nothing is written, so the
    plaintext exists only in this process until sops has encrypted it.

    The same steps as makejinja's own render loop (environment, plugins, per-file data),
    applied to those templates only."""
    config = makejinja_config(paths, paths.root, "all")
    app = makejinja_app(paths)
    rendered: dict[str, str] = {}
    with template_errors(paths), import_paths(config), activated(context):
        data = app.load_data(config)
        env = app.init_jinja_env(config, data)
        for plugin_name in (*config.plugins, *config.loaders):
            app.load_plugin(plugin_name, env, data, config)
        for base in (p for p in config.inputs if p.is_dir()):
            for template in sorted(base.glob(f"**/{SOPS_TEMPLATES}")):
                if not template.is_file() or any(template.match(x) for x in config.exclude_patterns):
                    continue
                name = template.relative_to(base).as_posix()
                text = env.get_template(name).render(app.load_file_data(name, config))
                if text.strip() or config.keep_empty:
                    rendered[name.removesuffix(config.jinja_suffix)] = text
    return rendered


@contextlib.contextmanager
def import_paths(config: Any) -> Iterator[None]:
    """makejinja's import paths on ``sys.path`` while the render runs (makejinja adds them
    and never removes them)."""
    added = [str(path.resolve()) for path in config.import_paths]
    sys.path.extend(added)
    try:
        yield
    finally:
        for path in {str(p.resolve()) for p in config.import_paths}:
            while path in sys.path:
                sys.path.remove(path)


@contextlib.contextmanager
def template_errors(paths: Paths) -> Iterator[None]:
    """Any error raised while rendering (a Jinja error, an undefined variable, a filter such
    as ``nthhost`` failing on a value) becomes one line naming the template and its line."""
    try:
        yield
    except UserError:
        raise
    except Exception as error:
        raise UserError(template_error_line(error, paths)) from None


def template_location(error: BaseException, paths: Paths) -> tuple[str | None, int | None]:
    """The innermost template frame of the error's traceback (Jinja rewrites tracebacks so
    that template code shows with the template's file name and line)."""
    name = getattr(error, "filename", None) or getattr(error, "name", None)
    line = getattr(error, "lineno", None)
    trace = error.__traceback__
    while trace is not None:
        filename = trace.tb_frame.f_code.co_filename
        if filename.endswith(".j2"):
            name, line = filename, trace.tb_lineno
        trace = trace.tb_next
    return name, line


def template_error_line(error: BaseException, paths: Paths) -> str:
    name, line = template_location(error, paths)
    if name and Path(name).is_absolute():
        where = paths.rel(Path(name))
    elif name:
        where = f"templates/config/{name}" if not str(name).startswith("templates/") else str(name)
    else:
        where = "templates"

    message = getattr(error, "message", None) or str(error)
    message = " ".join(str(message).split())[:300]
    if not isinstance(error, TemplateError):
        message = f"{type(error).__name__}: {message}" if message else type(error).__name__
    return f"{where}:{line}: template error: {message}" if line else f"{where}: template error: {message}"
