"""``inv lint``: every check of .pre-commit-config.yaml, plus actionlint when installed.

``inv lint`` only checks (the hooks of the ``manual`` stage never write a file);
``inv lint.fix`` runs the rewriting hooks (yamlfmt, mdformat, whitespace), then checks.
The hooks install from PyPI only, so no git host needs to be reachable. Like pre-commit
itself, they see the files git knows about: ``git add`` a new file to lint it.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from invoke.collection import Collection
from invoke.context import Context

from tasks.lib.errors import UserError
from tasks.lib.paths import Paths, paths_for
from tasks.lib.taskdef import task
from tasks.lib.terminal import color_enabled
from tasks.lib.tools.runner import find_tool, is_dry, require, run

CHECK_STAGE = "manual"


def colour() -> str:
    """pre-commit's --color: the hooks' output reaches the user through a pipe (so its own
    `auto` never colours); colour when our stdout is a terminal and NO_COLOR is unset."""
    return "always" if color_enabled() else "never"


FIX_HOOKS = ("yamlfmt", "mdformat", "whitespace")
FIX_HINT = "run `inv lint.fix` to rewrite what can be fixed automatically"


def pre_commit(c: Context, paths: Paths, *selection: str, stage: str = CHECK_STAGE) -> bool:
    """Run pre-commit on all files (``selection``: a hook id or alias); True when it passed."""
    require(c, "pre-commit")
    if not (paths.root / ".pre-commit-config.yaml").exists():
        raise UserError(f"{paths.rel(paths.root / '.pre-commit-config.yaml')} not found")
    argv = ["pre-commit", "run", *selection, "--all-files", "--hook-stage", stage, "--color", colour()]
    return run(c, argv, cwd=paths.root, stream=True, check=False).ok


def actionlint(c: Context, paths: Paths) -> bool:
    """Run actionlint over the workflows when it is installed; say so when it is not."""
    if find_tool("actionlint") is None and not is_dry(c):
        print(
            "actionlint: skipped — not installed (`mise install` installs the version pinned in "
            ".mise.toml); zizmor still audited the workflows"
        )
        return True
    argv = ["actionlint", "-color"] if color_enabled() else ["actionlint"]
    ok = run(c, argv, cwd=paths.root, stream=True, check=False).ok
    if ok and not is_dry(c):
        print("actionlint: ok")
    return ok


#: Where the Python code lives; ruff checks each that exists, mypy reads its own file list
#: (strict) from pyproject.toml.
PYTHON_DIRS = ("tasks", "tests", "scripts", "templates/scripts")


def python_commands(paths: Paths) -> list[list[str]]:
    """ruff's lint and format check over the Python folders, then mypy; none without code."""
    dirs = [d for d in PYTHON_DIRS if (paths.root / d).is_dir()]
    if not dirs or not (paths.root / "pyproject.toml").exists():
        return []
    return [["ruff", "check", *dirs], ["ruff", "format", "--check", *dirs], ["mypy"]]


def python_checks(c: Context, paths: Paths) -> bool:
    """Run every Python check (all of them, even after one fails); True when all passed."""
    commands = python_commands(paths)
    if not commands:
        return True
    require(c, "ruff", "mypy")
    results = [run(c, argv, cwd=paths.root, stream=True, check=False).ok for argv in commands]
    return all(results)


def finish(c: Context, failed: list[str], hint: str = FIX_HINT) -> None:
    if failed:
        raise UserError(f"lint failed: {', '.join(failed)} — {hint}")
    print("lint: would run the checks above" if is_dry(c) else "lint: all checks passed")


@task(name="all", default=True)
def lint_all(c: Context) -> None:
    """Check everything (YAML, Markdown, whitespace, secrets, workflows, Python and its types);
    changes nothing."""
    paths = paths_for(c)
    failed = [] if pre_commit(c, paths) else ["pre-commit hooks"]
    if not actionlint(c, paths):
        failed.append("actionlint")
    if not python_checks(c, paths):
        failed.append("python (ruff, mypy)")
    finish(c, failed)


@task
def fix(c: Context) -> None:
    """Rewrite what can be fixed (yamlfmt, mdformat, whitespace), then check everything."""
    paths = paths_for(c)
    for hook in FIX_HOOKS:
        pre_commit(c, paths, hook, stage="pre-commit")
    failed = [] if pre_commit(c, paths) else ["pre-commit hooks"]
    if not actionlint(c, paths):
        failed.append("actionlint")
    finish(c, failed, hint="these need a fix by hand")


@task
def yaml(c: Context) -> None:
    """Check YAML: yamlfmt formatting (.yamlfmt.yaml) and syntax."""
    paths = paths_for(c)
    finish(c, [] if pre_commit(c, paths, "yaml") else ["yaml"])


@task
def markdown(c: Context) -> None:
    """Check Markdown formatting (mdformat with GFM tables)."""
    paths = paths_for(c)
    finish(c, [] if pre_commit(c, paths, "markdown") else ["markdown"])


@task
def actions(c: Context) -> None:
    """Audit GitHub Actions workflows: zizmor always, actionlint when installed."""
    paths = paths_for(c)
    failed = [] if pre_commit(c, paths, "actions") else ["zizmor"]
    if not actionlint(c, paths):
        failed.append("actionlint")
    finish(c, failed, hint="see the findings above")


@task
def python(c: Context) -> None:
    """Check the Python code: ruff (lint and format) and mypy (strict types)."""
    if not python_checks(c, paths_for(c)):
        raise UserError("python checks failed — `ruff format` fixes formatting; the rest needs an edit")
    print("python: would run the checks above" if is_dry(c) else "python: ok")


@task
def install(c: Context) -> None:
    """Install the git hook: every commit is formatted and checked for plaintext secrets."""
    paths = paths_for(c)
    require(c, "pre-commit")
    run(c, ["pre-commit", "install", "--install-hooks"], cwd=paths.root, stream=True)


@task(
    help={"extract": "also run Renovate's offline extraction and fail when two managers claim one dependency"}
)
def renovate(c: Context, extract: bool = False) -> None:
    """Validate .renovaterc.json5 with the Renovate version the Renovate workflow runs.

    Installs that release from the npm registry once (into ~/.cache/home-ops/renovate; needs
    npm) and runs its `renovate-config-validator --strict`. With --extract, also lists what
    Renovate finds, offline, and fails on a dependency that two managers would update.
    """
    from tasks.lib import renovate as rv

    paths = paths_for(c)
    version = rv.workflow_version(paths.root)
    if not rv.is_installed(version):
        _check_node(c, version, _published_engine(c, version))  # before downloading anything
        _install_renovate(c, version)
    _check_node(c, version)
    env = rv.run_env(version)
    if env and not is_dry(c):
        print(f"renovate {version}: RE2 not built here, patterns are checked as JavaScript regexes")
    print(f"renovate {version}: validating {rv.CONFIG}")
    if not run(c, rv.validator_argv(version), cwd=paths.root, env=env, stream=True, check=False).ok:
        raise UserError(f"Renovate {version} rejects {rv.CONFIG}: fix what it reports above")
    if not extract:
        return
    with tempfile.TemporaryDirectory(prefix="home-ops-renovate-") as base:
        extract_env = {**env, **rv.extract_env(Path(base))}
        result = run(c, rv.extract_argv(version), cwd=paths.root, env=extract_env, check=False)
    if is_dry(c):
        return
    lines = result.stdout.splitlines()
    deps = rv.extracted(lines)
    if result.failed or not deps:
        raise UserError(
            f"renovate {version}: extraction failed (exit {result.returncode})",
            *rv.log_problems(lines),
        )
    for line in rv.summary(deps):
        print(line)
    doubled = rv.duplicates(deps)
    if doubled:
        raise UserError(*doubled)
    print(f"renovate: {len(deps)} dependencies, each found by one manager")


def _check_node(c: Context, version: str, engine: str | None = None) -> None:
    """Renovate on an unsupported Node.js fails in ways that name neither (or, worse,
    validates differently): check its ``engines`` first — the installed release's, or
    ``engine`` as the registry gave it before the download."""
    from tasks.lib import renovate as rv

    if is_dry(c):
        return
    found = run(c, ["node", "--version"]).stdout.strip() if find_tool("node") else "none"
    engine = rv.node_engine(version) if engine is None else engine
    if found == "none" or not rv.node_satisfies(found, engine):
        raise UserError(
            f"Renovate {version} needs Node.js {engine or '(any)'}, found {found}: {_node_hint(c)}"
            + ("" if rv.is_installed(version) else " (nothing was downloaded)")
        )


def _published_engine(c: Context, version: str) -> str:
    """The Node.js range the registry says ``renovate@version`` needs ("" when npm cannot
    say: the check after the install still holds)."""
    from tasks.lib import renovate as rv

    if is_dry(c) or not find_tool("npm"):
        return ""
    result = run(c, rv.engine_argv(version), check=False, timeout=60)
    return rv.parse_engine(result.stdout) if result.ok else ""


def _node_hint(c: Context) -> str:
    """How to get the Node.js (with npm) that .mise.toml pins."""
    from tasks.lib.tools.pins import mise_pins

    pin = mise_pins(paths_for(c).mise_config).get("node")
    return f"install Node.js {pin} (pinned in .mise.toml) with `mise install`" if pin else "install Node.js"


def _install_renovate(c: Context, version: str) -> None:
    """npm install into a scratch directory beside the cache entry, then rename it into
    place: an interrupted install never leaves a half-installed release behind."""
    from tasks.lib import renovate as rv

    if not (find_tool("npm") or is_dry(c)):
        raise UserError(f"npm not found: it installs Renovate from the npm registry; {_node_hint(c)}")
    target = rv.install_dir(version)
    if is_dry(c):
        run(c, rv.install_argv(version, target))
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=target.parent))
    try:
        print(f"renovate {version}: installing from the npm registry into {target}")
        run(c, rv.install_argv(version, scratch), stream=True)
        scratch.replace(target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


ns = Collection("lint")
for _task in (lint_all, fix, yaml, markdown, actions, python, renovate, install):
    ns.add_task(_task)
